// What streaming costs: the same corpus chunks embedded as one `embed` call and through `embedBatches`
// (batches of 256, one computed ahead), rounds alternated. Reports tokens/s for each and, for the stream, how
// soon its first batch arrived (a single call gives nothing until the end).
//
// Usage: node bench/stream.mjs [rounds=4] [texts=2000] [batchSize=256]
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, quantile } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const [rounds, count, batchSize] = [4, 2000, 256].map((d, i) => Number(process.argv[2 + i] ?? d))
const corpus = path.join(root, 'target/bench-corpus.json')
if (!fs.existsSync(corpus)) execFileSync(process.execPath, [path.join(root, 'bench/corpus.mjs')], { stdio: 'inherit' })
const docs = JSON.parse(fs.readFileSync(corpus, 'utf8')).slice(0, count)
const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2') })
await svc.load()
const r = { whole: [], stream: [], first: [] }
const sum = (xs) => xs.reduce((a, b) => a + b, 0)

for (let i = 0; i < rounds; i++) {
  for (const way of i % 2 ? ['stream', 'whole'] : ['whole', 'stream']) {
    const t0 = performance.now()
    let tokens = 0
    if (way === 'whole') {
      tokens = sum((await svc.embedDetailed(docs)).tokenCounts)
    } else {
      for await (const batch of svc.embedBatches(docs, { batchSize })) {
        if (batch.start === 0) r.first.push(performance.now() - t0)
        tokens += sum(batch.tokenCounts)
      }
    }
    r[way].push(tokens / ((performance.now() - t0) / 1000))
  }
}
await svc.close()
const med = (xs) => quantile(xs, 0.5)
console.log(`CPU: ${cpu()}; ${docs.length} chunks, ${rounds} rounds each, alternated; medians`)
console.log(`embed (one call):  ${med(r.whole).toFixed(0)} tokens/s (rounds ${r.whole.map((x) => x.toFixed(0)).join(', ')})`)
console.log(
  `embedBatches(${batchSize}): ${med(r.stream).toFixed(0)} tokens/s (rounds ${r.stream.map((x) => x.toFixed(0)).join(', ')}), ` +
    `first batch after ${med(r.first).toFixed(0)} ms; ratio ${(med(r.stream) / med(r.whole)).toFixed(3)}`,
)
