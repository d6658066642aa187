// Two builds of the addon side by side in one process: this checkout's `service.js` over each `.node` binary,
// rounds alternated ABBA. Per build: load time (a fresh service's `load()`), throughput on corpus chunks, the
// idle query, and queries during an index job (p50 / max). For a refactor that must change nothing, the two
// columns should agree within noise.
//
// Usage: node bench/ab.mjs <a.node> <b.node> [rounds=4] [texts=300] [queries=10] [--service-a=<service.js>]
// `--service-a` runs build A under another checkout's `service.js` (the JS half as it was), for changes that
// touch both halves.
import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpu, quantile } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const flags = process.argv.slice(2).filter((arg) => arg.startsWith('--'))
const args = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))
const serviceA = flags.find((f) => f.startsWith('--service-a='))?.slice('--service-a='.length)
const { createEmbeddingService } = require(path.join(root, 'service.js'))
const createA = serviceA ? require(path.resolve(serviceA)).createEmbeddingService : createEmbeddingService
const [a, b] = args.slice(0, 2).map((p) => path.resolve(p))
const [rounds, count, nQueries] = [4, 300, 10].map((d, i) => Number(args[2 + i] ?? d))
if (!a || !b) {
  console.error('usage: node bench/ab.mjs <a.node> <b.node> [rounds] [texts] [queries]')
  process.exit(2)
}
const corpus = path.join(root, 'target/bench-corpus.json')
if (!fs.existsSync(corpus)) execFileSync(process.execPath, [path.join(root, 'bench/corpus.mjs')], { stdio: 'inherit' })
const docs = JSON.parse(fs.readFileSync(corpus, 'utf8')).slice(0, count)
const model = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
const builds = { A: createA(require(a)), B: createEmbeddingService(require(b)) }
const results = { A: { load: [], tps: [], idle: [], during: [] }, B: { load: [], tps: [], idle: [], during: [] } }

async function round(name) {
  const EmbeddingService = builds[name]
  const r = results[name]
  const svc = new EmbeddingService({ model })
  let t0 = performance.now()
  await svc.load()
  r.load.push(performance.now() - t0)
  t0 = performance.now()
  const out = await svc.embedDetailed(docs)
  const seconds = (performance.now() - t0) / 1000
  r.tps.push(out.tokenCounts.reduce((x, y) => x + y, 0) / seconds)
  for (let i = 0; i < 5; i++) {
    t0 = performance.now()
    await svc.embed([`an idle query ${i}`], { priority: 'query' })
    r.idle.push(performance.now() - t0)
  }
  let finished = false
  const job = svc.embed(docs).then(() => (finished = true))
  for (let i = 0; i < nQueries && !finished; i++) {
    await sleep(150)
    t0 = performance.now()
    await svc.embed([`where is the part about ${i}?`], { priority: 'query' })
    r.during.push(performance.now() - t0)
  }
  await job
  await svc.close()
}

for (let i = 0; i < rounds; i++) {
  for (const name of i % 2 ? ['B', 'A'] : ['A', 'B']) await round(name)
}
const med = (xs) => quantile(xs, 0.5)
console.log(`CPU: ${cpu()}; ${docs.length} chunks, ${rounds} rounds per build, ABBA`)
console.log(`A = ${path.relative(process.cwd(), a)}, B = ${path.relative(process.cwd(), b)}`)
for (const name of ['A', 'B']) {
  const r = results[name]
  console.log(
    `${name}: load ${med(r.load).toFixed(0)} ms, throughput ${med(r.tps).toFixed(0)} tokens/s ` +
      `(rounds ${r.tps.map((x) => x.toFixed(0)).join(', ')}), idle query ${med(r.idle).toFixed(1)} ms, ` +
      `query during the job p50 ${med(r.during).toFixed(1)} ms, max ${Math.max(...r.during).toFixed(1)} ms`,
  )
}
