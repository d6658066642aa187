#!/usr/bin/env node
// Runs the Rust kernel, unit and parity tests again with the SIMD level capped below the best this CPU has
// (EMBEDDING_SERVICE_SIMD; see src/kernels/level.rs), so every lower level's kernels are checked on this machine too:
// scalar everywhere, and AVX2 on x86-64 (on an AVX-512 machine that is the AVX2 twin's only run).
// Part of `npm test`; reuses the test binaries `cargo test --release` built.
import { execFileSync } from 'node:child_process'

const levels = process.arch === 'x64' ? ['scalar', 'avx2'] : ['scalar']
for (const level of levels) {
  process.stderr.write(`[simd-levels] EMBEDDING_SERVICE_SIMD=${level}\n`)
  execFileSync('cargo', ['test', '--release', '--lib', '--test', 'kernels', '--test', 'parity'], {
    stdio: 'inherit',
    env: { ...process.env, EMBEDDING_SERVICE_SIMD: level },
  })
}
