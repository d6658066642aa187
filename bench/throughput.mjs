// Throughput of embed() on the benchmark corpus (bench/corpus.mjs): 500 documentation chunks, all-MiniLM-L6-v2,
// truncation at 256, length-sorted batches of 32. Prints tokens/s per run and the median.
// Usage: node bench/throughput.mjs [runs=3] [threads=physical cores] [first N texts only] [--dtype bf16]
//        [--model folder] [--out file]  (--out writes the last run's vectors as raw float32, for bench/compare.mjs's parity check)
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const flag = (name) => {
  const i = process.argv.indexOf(name)
  return i < 0 ? undefined : process.argv.splice(i, 2)[1]
}
const dtype = flag('--dtype') ?? 'f32'
const model = flag('--model') ?? path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
const out = flag('--out')
const runs = Number(process.argv[2] ?? 3)
const threads = process.argv[3] ? Number(process.argv[3]) : undefined
const limit = process.argv[4] ? Number(process.argv[4]) : undefined
const corpus = JSON.parse(fs.readFileSync(path.join(root, 'target/bench-corpus.json'), 'utf8')).slice(0, limit)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const svc = new EmbeddingService({
  model,
  threads,
  dtype,
  maxBatchSize: 32,
  onProgress: () => {},
})
await svc.load()
const rates = []
let vectors
for (let i = 0; i < runs; i++) {
  const t0 = performance.now()
  vectors = await svc.embed(corpus)
  const s = (performance.now() - t0) / 1000
  rates.push(s)
}
const device = svc.status().device
await svc.close()
if (out) fs.writeFileSync(out, Buffer.concat(vectors.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength))))
console.log(JSON.stringify({ engine: `embedding-service (${dtype}, ${device})`, texts: corpus.length, seconds: rates.map((s) => +s.toFixed(3)), medianSeconds: +median(rates).toFixed(3) }))
