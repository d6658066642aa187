// Query latency on an idle service versus during a running 2000-chunk index job (all-MiniLM-L6-v2).
// Prints medians and worst cases over N queries (default 25). Usage: node bench/query-latency.mjs [N]
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const n = Number(process.argv[2] ?? 25)
const texts = JSON.parse(fs.readFileSync(path.join(root, 'fixtures/reference/minilm/texts.json'), 'utf8'))
const docs = Array.from({ length: 2000 }, (_, i) => `${texts[i % texts.length]} (chunk ${i})`)
const query = 'How do I reset my password?'
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const stats = (xs) => ({ medianMs: +median(xs).toFixed(2), worstMs: +Math.max(...xs).toFixed(2), n: xs.length })

const maxBatchTokens = process.env.MAX_BATCH_TOKENS ? Number(process.env.MAX_BATCH_TOKENS) : undefined
const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), maxBatchTokens })
await svc.embed([query])
const time = async () => {
  const t0 = performance.now()
  await svc.embed([query], { priority: 'query' })
  return performance.now() - t0
}

const idle = []
for (let i = 0; i < n; i++) idle.push(await time())

let jobDone = false
const jobStart = performance.now()
const job = svc.embed(docs, { priority: 'index' }).then(() => {
  jobDone = true
  return performance.now() - jobStart
})
const busy = []
while (busy.length < n && !jobDone) {
  const ms = await time()
  if (!jobDone) busy.push(ms)
}
const jobMs = await job
console.log(JSON.stringify({ idle: stats(idle), duringIndexJob: stats(busy), indexJobMs: +jobMs.toFixed(0) }))
await svc.close()
