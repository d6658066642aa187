// The soak (`npm run soak`: 10,000 requests, 50 load/unload cycles, a 100,000-text request, the event loop during
// a 2,000-text job) in a CI-sized run, so the script and its leak checks stay working. The script itself judges
// memory, threads and open files against the state after its first load/unload cycle, and every vector against
// a serial run; this test reads its report.
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { minilmDir, root } from './helpers.mjs'

describe('soak, CI-sized', () => {
  it('200 requests with aborts, 10 load/unload cycles, a 500-text request and 3 keep-alive cycles: no failure, mismatch or growth', () => {
    const args = ['--expose-gc', path.join(root, 'bench/soak.mjs'), '--json', '--model', minilmDir(),
      '--requests', '200', '--cycles', '10', '--huge', '500', '--job', '0', '--daemon-jobs', '3', '--daemon-texts', '3000']
    const child = spawnSync(process.execPath, args, { encoding: 'utf8' })
    expect(child.signal).toBe(null)
    const report = JSON.parse(child.stdout.trim().split('\n').pop())
    expect(report.problems).toEqual([])
    expect(child.status).toBe(0)
    const { query, index, aborted, mismatched } = report.requests
    expect(query + index + aborted).toBe(200)
    expect(mismatched).toBe(0)
    expect(report.huge).toMatchObject({ texts: 500, mismatched: 0 })
    expect(report.cycles.status).toMatchObject({ state: 'unloaded', modelLoaded: false })
    // Each big job was followed by a keep-alive unload, and memory after the last is within the script's 10 MB.
    expect(report.daemon).toMatchObject({ jobs: 3, texts: 3000, unloads: 3, state: 'unloaded' })
    expect(report.daemon.growthMb).toBeLessThanOrEqual(10)
    if (process.platform === 'linux') {
      expect(report.end.threads).toBeLessThanOrEqual(report.afterFirstCycle.threads)
      expect(report.end.openFiles).toBeLessThanOrEqual(report.afterFirstCycle.openFiles)
      // Closing the service ends its worker, watchdog and compute threads.
      expect(report.afterClose.threads).toBeLessThan(report.end.threads)
    }
    process.stderr.write(`[soak] requests ${JSON.stringify(report.requests)}, RSS growth ${report.rssGrowthMb} MB\n`)
  })
})
