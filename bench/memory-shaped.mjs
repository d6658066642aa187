// Resident memory and load time at bge-m3's size (bench/make_shaped_model.py: 24 layers, hidden 1024, a
// 250k-row word table, random weights), f32 against int8 (and bf16 where given): each dtype in fresh processes,
// alternated, measuring RSS before the load, after `load()`, and after embedding a short text.
//
// Usage: node bench/memory-shaped.mjs [rounds=2] [dtypes=f32,int8] [--python .venv-bench/bin/python]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, pythonFrom } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dir = path.join(root, 'target/bge-m3-shaped')
const argv = process.argv.slice(2)

if (argv[0] === '--child') {
  const { createRequire } = await import('node:module')
  const { EmbeddingService } = createRequire(import.meta.url)(root)
  const mb = () => process.memoryUsage.rss() / 1e6
  const before = mb()
  const svc = new EmbeddingService({ model: dir, dtype: argv[1], threads: 2 })
  const t0 = performance.now()
  await svc.load()
  const loadMs = performance.now() - t0
  const loaded = mb()
  await svc.embed(['A short text to embed, once the model is loaded.'])
  const s = svc.status()
  console.log(JSON.stringify({ dtype: argv[1], loadMs, before, loaded, embedded: mb(), weights: s.memory.weightsBytes / 1e6, simd: s.simd }))
  await svc.close()
  process.exit(0)
}

const python = pythonFrom(argv, root)
const rounds = Number(argv[0] ?? 2)
const dtypes = (argv[1] ?? 'f32,int8').split(',')
if (!fs.existsSync(path.join(dir, 'model.safetensors'))) execFileSync(python, [path.join(root, 'bench/make_shaped_model.py'), dir], { stdio: 'inherit' })
const results = Object.fromEntries(dtypes.map((d) => [d, []]))
for (let r = 0; r < rounds; r++) {
  for (const d of r % 2 ? [...dtypes].reverse() : dtypes) {
    const line = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', d], { encoding: 'utf8' }).trim().split('\n').at(-1)
    results[d].push(JSON.parse(line))
  }
}
console.log(`CPU: ${cpu()}; bge-m3-shaped (random weights), 2 threads, ${rounds} rounds per dtype`)
console.log('| dtype | load ms | RSS loaded - before, MB | RSS after an embed - before, MB | weights held, MB | kernels |')
console.log('| --- | --- | --- | --- | --- | --- |')
for (const d of dtypes) {
  const xs = results[d]
  const list = (f) => xs.map(f).map((v) => v.toFixed(0)).join(', ')
  console.log(`| ${d} | ${list((x) => x.loadMs)} | ${list((x) => x.loaded - x.before)} | ${list((x) => x.embedded - x.before)} | ${xs[0].weights.toFixed(0)} | ${xs[0].simd} |`)
}
