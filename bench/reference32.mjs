// Times embed() of the 32 reference texts and of one short query on a warm service: medians of repeated runs.
// Usage: node bench/reference32.mjs [runs=20] [threads] [--dtype bf16]
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const dtypeAt = process.argv.indexOf('--dtype')
const dtype = dtypeAt < 0 ? 'f32' : process.argv.splice(dtypeAt, 2)[1]
const runs = Number(process.argv[2] ?? 20)
const threads = process.argv[3] ? Number(process.argv[3]) : undefined
const texts = JSON.parse(fs.readFileSync(path.join(root, 'fixtures/reference/minilm/texts.json'), 'utf8'))
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), threads, dtype })
let t = performance.now()
await svc.embed(['warm up'])
const firstMs = performance.now() - t
const time = async (input) => {
  const xs = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await svc.embed(input)
    xs.push(performance.now() - t0)
  }
  return xs
}
const batch = await time(texts)
const query = await time(['How do I reset my password?'])
console.log(JSON.stringify({
  runs,
  dtype,
  threads: threads ?? 'default',
  firstCallWithLoadMs: +firstMs.toFixed(1),
  reference32: { medianMs: +median(batch).toFixed(2), minMs: +Math.min(...batch).toFixed(2), maxMs: +Math.max(...batch).toFixed(2) },
  oneQuery: { medianMs: +median(query).toFixed(2), minMs: +Math.min(...query).toFixed(2), maxMs: +Math.max(...query).toFixed(2) },
}))
await svc.close()
