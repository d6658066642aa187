// Query latency while an index job runs, and what the queries cost the job (all-MiniLM-L6-v2, default options).
// The index job is 2,000 documentation chunks (bench/corpus.mjs 2000, ~230 tokens each); during it, one-sentence
// queries are issued 200 ms apart (each `embed(..., { priority: 'query' })` timed from call to resolved promise).
// The same job also runs with no queries, alternated with the first (ABBA order over the pairs), so the two wall
// times are compared in one run. Prints the CPU, the idle query latency, the latencies during the job (p50,
// p90, max) and the job's wall and CPU time with and without queries.
//
// Usage: node bench/query-latency.mjs [pairs=2] [queries=20] [gapMs=200]
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, quantile } from './common.mjs'
import { setTimeout as sleep } from 'node:timers/promises'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const [pairs, nQueries, gapMs] = [2, 20, 200].map((d, i) => Number(process.argv[2 + i] ?? d))
const corpus = path.join(root, 'target/bench-corpus-2000.json')
if (!fs.existsSync(corpus)) execFileSync(process.execPath, [path.join(root, 'bench/corpus.mjs'), '2000'], { stdio: 'inherit' })
const docs = JSON.parse(fs.readFileSync(corpus, 'utf8'))
const subjects = ['the config file', 'my password', 'the cache', 'a flat tyre', 'the index', 'unit tests', 'the GPU',
  'a memory leak', 'the release', 'bread dough']
const queries = Array.from({ length: nQueries }, (_, i) => `How do I deal with ${subjects[i % subjects.length]} (${i})?`)


const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2') })
await svc.embed(queries.slice(0, 2))
const timed = async (text) => {
  const t0 = performance.now()
  await svc.embed([text], { priority: 'query' })
  return performance.now() - t0
}
const idle = []
for (const q of queries) idle.push(await timed(q))

async function job(withQueries) {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const done = svc.embed(docs, { priority: 'index' }).then(() => performance.now() - t0)
  const latencies = []
  if (withQueries) {
    const pending = []
    for (const q of queries) {
      await sleep(gapMs)
      pending.push(timed(q).then((ms) => latencies.push(ms)))
    }
    await Promise.all(pending)
  }
  const ms = await done
  const cpu = process.cpuUsage(cpu0)
  // CPU time of the whole process (the worker's threads are in it): what the job cost, less sensitive than wall
  // time to other tenants of a shared machine.
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, latencies }
}

const alone = []
const withQ = []
const during = []
for (let p = 0; p < pairs; p++) {
  // ABBA: the order alternates, so drift on a shared machine falls on both alike.
  for (const w of p % 2 === 0 ? [false, true] : [true, false]) {
    const r = await job(w)
    ;(w ? withQ : alone).push(r)
    during.push(...r.latencies)
  }
}
await svc.close()

const fmt = (x) => +x.toFixed(1)
const result = {
  cpu: cpu(),
  idleQueryMs: { p50: fmt(quantile(idle, 0.5)), max: fmt(Math.max(...idle)) },
  duringIndexJobMs: { p50: fmt(quantile(during, 0.5)), p90: fmt(quantile(during, 0.9)), max: fmt(Math.max(...during)), n: during.length },
  indexJobMs: { alone: alone.map((r) => Math.round(r.ms)), withQueries: withQ.map((r) => Math.round(r.ms)) },
  indexJobCpuMs: { alone: alone.map((r) => Math.round(r.cpuMs)), withQueries: withQ.map((r) => Math.round(r.cpuMs)) },
  // with queries / alone, pair by pair, and of the medians
  wallRatio: withQ.map((w, i) => +(w.ms / alone[i].ms).toFixed(3)),
  wallRatioOfMedians: +(quantile(withQ.map((r) => r.ms), 0.5) / quantile(alone.map((r) => r.ms), 0.5)).toFixed(3),
  cpuRatio: withQ.map((w, i) => +(w.cpuMs / alone[i].cpuMs).toFixed(3)),
}
console.log(JSON.stringify(result))
