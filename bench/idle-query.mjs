// Idle-query latency and load time of this addon, one process per call (bench/compare.mjs --query runs it
// side by side with bench/ort_query.py): load() from a warm cache, then the same short query embedded `repeats`
// times on the otherwise idle service, tokenizer to pooled vector. Prints one JSON line.
// Usage: node bench/idle-query.mjs [repeats=50] [threads=2] [--dtype f32|bf16|int8] [--query "text"]
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const argv = process.argv.slice(2)
const flag = (name) => {
  const i = argv.indexOf(name)
  return i < 0 ? undefined : argv.splice(i, 2)[1]
}
const dtype = flag('--dtype') ?? 'f32'
const query = flag('--query') ?? 'how do I configure the embedding model for my folder'
const repeats = Number(argv[0] ?? 50)
const threads = Number(argv[1] ?? 2)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), threads, dtype })
const t0 = performance.now()
await svc.load()
const loadMs = performance.now() - t0
const ms = []
let vector
for (let i = 0; i < repeats + 3; i++) {
  const t = performance.now()
  ;[vector] = await svc.embed([query], { priority: 'query' })
  if (i >= 3) ms.push(performance.now() - t) // the first calls warm the caches and the thread pool
}
await svc.close()
console.log(JSON.stringify({ engine: `ours ${dtype}`, threads, loadMs, medianMs: median(ms), vector: Array.from(vector) }))
