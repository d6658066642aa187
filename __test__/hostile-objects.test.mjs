// Options objects, texts arrays and signals whose reading throws (getters, Proxy traps, revoked Proxies), in
// every method that takes them, run in a plain Node process with its default unhandled-rejection mode (the
// test runner would catch what Node would die of): each gives one ERR_INVALID_INPUT, nothing goes unhandled,
// and the service keeps working.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { minilmDir, root } from './helpers.mjs'

describe('hostile objects never take the process down', () => {
  it('every hostile options object, texts array and signal gives one coded error and nothing unhandled', () => {
    const child = spawnSync(process.execPath, [path.join(root, '__test__', 'hostile-objects.child.cjs'), minilmDir()], {
      encoding: 'utf8',
      timeout: 120_000,
    })
    // An unhandled rejection would end the child with exit code 1 before it prints its summary.
    expect(child.status, child.stderr).toBe(0)
    const summary = JSON.parse(child.stdout.trim().split('\n').at(-1))
    expect(summary.fatal).toBeUndefined()
    const failed = summary.results.filter((r) => !r.ok)
    expect(failed).toEqual([])
    expect(summary.results.length).toBeGreaterThanOrEqual(80)
    expect(summary.stillWorking).toBe(true)
    expect(child.stderr).not.toMatch(/unhandled|UnhandledPromiseRejection/i)
  })
})
