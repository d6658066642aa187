// How close `dtype: 'int8'` stays to f32 (which matches sentence-transformers to cosine 1 - 1e-7) where users
// feel it: the vectors of 2,000 documentation chunks (bench/corpus.mjs 2000), and the top 10 chunks that 50
// queries retrieve among them. Queries are a few words from the middle of 50 evenly spaced chunks (each has an
// answer in the index) and, every other one, a question of the query-latency benchmark's kind.
//
// Usage: node bench/int8-quality.mjs [chunks=2000] [queries=50] [threads=2]
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, quantile } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const [count, nQueries, threads] = [2000, 50, 2].map((d, i) => Number(process.argv[2 + i] ?? d))
const corpus = path.join(root, `target/bench-corpus-${count}.json`)
if (!fs.existsSync(corpus)) execFileSync(process.execPath, [path.join(root, 'bench/corpus.mjs'), String(count)], { stdio: 'inherit' })
const docs = JSON.parse(fs.readFileSync(corpus, 'utf8')).slice(0, count)
const subjects = ['the config file', 'my password', 'the cache', 'a flat tyre', 'the index', 'unit tests', 'the GPU', 'a memory leak', 'the release', 'bread dough']
const queries = Array.from({ length: nQueries }, (_, i) => {
  if (i % 2) return `How do I deal with ${subjects[i % subjects.length]}?`
  const words = docs[Math.floor((i * docs.length) / nQueries)].split(/\s+/)
  const at = Math.floor(words.length / 2)
  return words.slice(at, at + 8).join(' ')
})

const { EmbeddingService } = createRequire(import.meta.url)(root)
const model = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
async function vectors(dtype) {
  const svc = new EmbeddingService({ model, dtype, threads })
  const t0 = performance.now()
  const chunks = await svc.embedDocuments(docs)
  const seconds = (performance.now() - t0) / 1000
  const asked = await svc.embed(queries, { inputType: 'query' })
  const simd = svc.status().simd
  await svc.close()
  return { chunks, asked, seconds, simd }
}

const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0)
const cosine = (a, b) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b))
const top10 = (q, chunks) =>
  chunks
    .map((c, i) => [dot(q, c), i])
    .sort((a, b) => b[0] - a[0])
    .slice(0, 10)
    .map(([, i]) => i)

const f32 = await vectors('f32')
const int8 = await vectors('int8')
const cos = f32.chunks.map((v, i) => cosine(v, int8.chunks[i]))
const overlaps = queries.map((_, q) => {
  const a = new Set(top10(f32.asked[q], f32.chunks))
  return top10(int8.asked[q], int8.chunks).filter((i) => a.has(i)).length / 10
})
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length
console.log(`CPU: ${cpu()}; all-MiniLM-L6-v2, ${docs.length} chunks, ${queries.length} queries, ${threads} threads; int8 kernels: ${int8.simd}`)
console.log(`chunks, int8 against f32: minimum cosine ${Math.min(...cos).toFixed(6)}, 1st percentile ${quantile(cos, 0.01).toFixed(6)}, mean ${mean(cos).toFixed(6)}`)
console.log(`top 10 of ${queries.length} queries: mean overlap ${(100 * mean(overlaps)).toFixed(1)}%, worst query ${(100 * Math.min(...overlaps)).toFixed(0)}%`)
console.log(`embedding the chunks: f32 ${f32.seconds.toFixed(1)} s, int8 ${int8.seconds.toFixed(1)} s (${(f32.seconds / int8.seconds).toFixed(2)}x)`)
