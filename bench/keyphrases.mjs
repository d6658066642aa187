// Key phrases side by side: this addon's extractKeyphrases against Python KeyBERT (sentence-transformers) on the
// reference texts (fixtures/keybert/texts.json, real documentation chunks), the daemon's arguments, same model,
// alternating rounds. Prints each engine's seconds per round and the ratio.
//
// Usage: node bench/keyphrases.mjs [rounds=3] [threads=2] [--python path/to/python-with-keybert]
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const argv = process.argv.slice(2)
const flag = (name) => {
  const i = argv.indexOf(name)
  return i < 0 ? undefined : argv.splice(i, 2)[1]
}
const python = flag('--python')
const rounds = Number(argv[0] ?? 3)
const threads = Number(argv[1] ?? 2)
const model = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
const textsPath = path.join(root, 'fixtures/keybert/texts.json')
const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8')).map((t) => (typeof t === 'string' ? t : t.text))
const { EmbeddingService } = createRequire(import.meta.url)(root)

async function ours() {
  const svc = new EmbeddingService({ model, threads })
  await svc.extractKeyphrases([texts[0]])
  const start = performance.now()
  await svc.extractKeyphrases(texts)
  const seconds = (performance.now() - start) / 1000
  await svc.close()
  return seconds
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const rows = { ours: [], keybert: [] }
for (let r = 0; r < rounds; r++) {
  rows.ours.push(await ours())
  if (python) {
    const out = execFileSync(python, [path.join(root, 'bench/keybert_py.py'), model, textsPath, String(threads)], {
      encoding: 'utf8',
      env: { ...process.env, HF_HUB_OFFLINE: '1' },
    })
    rows.keybert.push(JSON.parse(out.trim().split('\n').at(-1)).seconds)
  }
  console.log(`round ${r + 1}: ours ${rows.ours[r].toFixed(2)} s${python ? `, Python KeyBERT ${rows.keybert[r].toFixed(2)} s (${(rows.keybert[r] / rows.ours[r]).toFixed(2)}x)` : ''}`)
}
console.log(`${texts.length} texts, ${threads} threads: ours median ${median(rows.ours).toFixed(2)} s` +
  (python ? `, Python KeyBERT median ${median(rows.keybert).toFixed(2)} s; per-round ratios ${rows.keybert.map((k, i) => (k / rows.ours[i]).toFixed(2)).join(', ')}` : ''))
