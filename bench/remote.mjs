// The remote backend beside the in-process one, on this machine: infinity-emb (scripts/remote-engine.mjs, CPU,
// torch) serving all-MiniLM-L6-v2 on loopback. Rounds alternate the two (ABBA), each embedding the same corpus
// chunks (bench/corpus.mjs), and print tokens/s and texts/s for both; the per-text overhead of the remote path
// is (remote - local) time / texts. Then, through the remote path, one-sentence queries `gapMs` apart during an
// index job of `jobTexts` chunks (the corpus repeated as needed): their latency (p50, p90, max) against the idle
// remote query, and the job's own throughput with the queries going on.
//
// Both engines share this machine's cores, so the ratio says what the HTTP path costs here, not what a GPU box
// would give.
//
// Usage: node bench/remote.mjs [texts=200] [rounds=2] [queries=10] [gapMs=300] [maxBatchTokens=4096] [jobTexts=texts]
// (maxBatchTokens for the remote service: smaller batches make a query's wait behind the step in flight shorter)
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, quantile } from './common.mjs'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEngine } from '../scripts/remote-engine.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const [count, rounds, nQueries, gapMs, batchTokens] = [200, 2, 10, 300, 4096].map((d, i) => Number(process.argv[2 + i] ?? d))
const jobTexts = Number(process.argv[7] ?? count)
const corpus = path.join(root, 'target/bench-corpus.json')
if (!fs.existsSync(corpus)) execFileSync(process.execPath, [path.join(root, 'bench/corpus.mjs')], { stdio: 'inherit' })
const docs = JSON.parse(fs.readFileSync(corpus, 'utf8')).slice(0, count)

const engine = await startEngine({ urlPrefix: '/v1' })
try {
  const model = 'sentence-transformers/all-MiniLM-L6-v2'
  const local = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2') })
  const remote = new EmbeddingService({ model, endpoint: `${engine.url}/v1`, maxBatchTokens: batchTokens })
  await Promise.all([local.embed(docs.slice(0, 8)), remote.embed(docs.slice(0, 8))])
  const times = { local: [], remote: [] }
  let tokens = 0
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 ? ['remote', 'local'] : ['local', 'remote']) {
      const svc = name === 'local' ? local : remote
      const t0 = performance.now()
      const out = await svc.embedDetailed(docs)
      times[name].push((performance.now() - t0) / 1000)
      if (name === 'local') tokens = out.tokenCounts.reduce((a, b) => a + b, 0)
    }
  }
  const median = (xs) => quantile(xs, 0.5)
  const [l, rm] = [median(times.local), median(times.remote)]
  console.log(`CPU: ${cpu()}`)
  console.log(`${docs.length} chunks, ${tokens} tokens (counted in-process), ${rounds} rounds each, remote maxBatchTokens ${batchTokens}, medians:`)
  console.log(`  in-process ${l.toFixed(2)} s: ${(tokens / l).toFixed(0)} tokens/s, ${(docs.length / l).toFixed(1)} texts/s`)
  console.log(`  remote     ${rm.toFixed(2)} s: ${(tokens / rm).toFixed(0)} tokens/s, ${(docs.length / rm).toFixed(1)} texts/s`)
  console.log(`  remote/in-process time ${(rm / l).toFixed(2)}x; ${(((rm - l) / docs.length) * 1000).toFixed(1)} ms more per text`)

  const timed = async (text) => {
    const t0 = performance.now()
    await remote.embed([text], { priority: 'query' })
    return performance.now() - t0
  }
  const idle = []
  for (let i = 0; i < 5; i++) idle.push(await timed(`an idle query ${i}`))
  const during = []
  let finished = false
  const all = JSON.parse(fs.readFileSync(corpus, 'utf8'))
  const jobDocs = Array.from({ length: jobTexts }, (_, i) => `${all[i % all.length]}${i >= all.length ? ` (${i})` : ''}`)
  const jobStarted = performance.now()
  const job = remote.embedDetailed(jobDocs).then((r) => {
    finished = true
    return r
  })
  for (let i = 0; i < nQueries && !finished; i++) {
    await sleep(gapMs)
    during.push(await timed(`How do I scale out the index (${i})?`))
  }
  const jobResult = await job
  const jobSeconds = (performance.now() - jobStarted) / 1000
  const jobTokens = jobResult.tokenCounts.reduce((a, b) => a + b, 0)
  const fmt = (xs) => `p50 ${quantile(xs, 0.5).toFixed(0)} ms, p90 ${quantile(xs, 0.9).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms`
  console.log(`remote query, idle (5): ${fmt(idle)}`)
  console.log(`remote query during a ${jobDocs.length}-chunk index job (${during.length}, ${gapMs} ms apart): ${fmt(during)}`)
  console.log(`the job: ${jobSeconds.toFixed(1)} s, ${(jobDocs.length / jobSeconds).toFixed(1)} texts/s, ${(jobTokens / jobSeconds).toFixed(0)} estimated tokens/s`)
  await Promise.all([local.close(), remote.close()])
} finally {
  await engine.stop()
}
