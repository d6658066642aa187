import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.{js,mjs,ts}'],
    // Native addons are loaded per test file in child processes (vitest's default 'forks' pool).
    pool: 'forks',
    // A guard against hangs only; no test asserts on time.
    testTimeout: 120_000,
    // index.d.ts and index.d.mts are checked with tsc against __test__/*.test-d.{ts,mts}.
    typecheck: { enabled: true, include: ['__test__/**/*.test-d.{ts,mts}'], tsconfig: './tsconfig.json' },
  },
})
