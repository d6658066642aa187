// Copied into a folder-mcp checkout (built: its dist/) and run there with Node by bench/daemon-cpu.mjs (see there). The daemon's
// cpu: model, served by both of its possible backends in one process, one after the other:
// - pool: its own ONNXEmbeddingService (src/infrastructure/embeddings/onnx/), a pool of worker threads over
//   @xenova/transformers 2 and onnxruntime-node, with the defaults its singleton manager and orchestrator use
//   (2 workers x 2 threads, batchSize 1);
// - ours: ONNXEmbeddingService from embedding-service/daemon (int8, weights from the same ONNX file).
// The load is the one its folder indexing puts on the service (FolderLifecycleService: 4 files at once; the
// IndexingOrchestrator's cpu: path: generateEmbeddings on batches of 10 chunks of a file, one after the other).
// While it runs, a search is embedded every 150 ms as its ONNXModelBridge does it for the REST search (a second
// instance, generateEmbeddingsFromStrings([query], 'passage')). Then: the index the pool built searched with each
// backend's query vectors (top-10 overlap), and each backend's vectors against the f32 model.
import { readFileSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ONNXEmbeddingService as PoolService } from './dist/src/infrastructure/embeddings/onnx/onnx-embedding-service.js'
import daemon from 'embedding-service/daemon'
import binding from 'embedding-service'

const { ONNXEmbeddingService: OurService } = daemon
const { EmbeddingService } = binding

const MODEL_ID = 'cpu:xenova-multilingual-e5-small'
const cacheDirectory = join(homedir(), '.cache', 'folder-mcp', 'onnx-models')
const docs = JSON.parse(readFileSync(process.env.BENCH_CORPUS, 'utf8'))
const FILE_CHUNKS = 50
const CONCURRENT_FILES = 4
const BATCH = 10

// As its singleton manager and orchestrator build it (onnx-configuration.ts defaults).
const make = {
  pool: () => new PoolService({ modelId: MODEL_ID, cacheDirectory, maxSequenceLength: 512, batchSize: 1, workerPoolSize: 2, numThreads: 2 }),
  ours: () => new OurService({ modelId: MODEL_ID, cacheDirectory, maxSequenceLength: 512, batchSize: 1, workerPoolSize: 2, numThreads: 2 }),
}
// Its ONNXModelBridge's instance (batchSize 32).
const makeSearcher = {
  pool: () => new PoolService({ modelId: MODEL_ID, cacheDirectory, batchSize: 32, maxSequenceLength: 512 }),
  ours: () => new OurService({ modelId: MODEL_ID, cacheDirectory, batchSize: 32, maxSequenceLength: 512 }),
}

const subjects = ['the config file', 'my password', 'the cache', 'a flat tyre', 'the index', 'unit tests', 'the GPU', 'a memory leak', 'the release', 'bread dough']
const queries = Array.from({ length: 50 }, (_, i) => {
  if (i % 2) return `How do I deal with ${subjects[i % subjects.length]}?`
  const words = docs[Math.floor((i * docs.length) / 50)].split(/\s+/)
  const at = Math.floor(words.length / 2)
  return words.slice(at, at + 8).join(' ')
})

async function indexFolder(svc) {
  const files = Array.from({ length: Math.ceil(docs.length / FILE_CHUNKS) }, (_, f) => docs.slice(f * FILE_CHUNKS, (f + 1) * FILE_CHUNKS))
  const vectors = new Array(docs.length)
  let next = 0
  const lane = async () => {
    while (next < files.length) {
      const f = next++
      const chunks = files[f].map((content, i) => ({
        content, chunkIndex: i, startPosition: 0, endPosition: content.length, tokenCount: Math.ceil(content.length / 4),
        metadata: { sourceFile: `/docs/file-${f}.md`, sourceType: 'md', totalChunks: files[f].length, hasOverlap: false },
      }))
      for (let b = 0; b < chunks.length; b += BATCH) {
        const got = await svc.generateEmbeddings(chunks.slice(b, b + BATCH))
        got.forEach((v, i) => (vectors[f * FILE_CHUNKS + b + i] = Array.from(v.vector)))
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENT_FILES }, lane))
  return vectors
}

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]
const median = (xs) => quantile(xs, 0.5)
const dot = (a, b) => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}
const cosine = (a, b) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b))
const top10 = (index, q) =>
  index.map((v, i) => [dot(v, q), i]).sort((x, y) => y[0] - x[0]).slice(0, 10).map(([, i]) => i)

// One engine, one round per process (`node native-backend-bench.mjs run pool|ours <round>`), its results written
// to $BENCH_DIR; then `summary` compares them.
const [mode, name, round] = process.argv.slice(2)
const file = (n, r) => join(process.env.BENCH_DIR, `${n}-${r}.json`)

if (mode === 'run') {
  const started = performance.now()
  const svc = make[name]()
  await svc.initialize()
  const searcher = makeSearcher[name]()
  await searcher.initialize()
  const loadMs = performance.now() - started
  const searchMs = []
  let searchesAfterJob = 0
  let done = false
  const t0 = performance.now()
  const job = indexFolder(svc).then((v) => {
    done = true
    return v
  })
  let q = 0
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 150))
    if (done) break
    const s = performance.now()
    await searcher.generateEmbeddingsFromStrings([queries[q++ % queries.length]], 'passage')
    searchMs.push(performance.now() - s)
    if (done) searchesAfterJob++
  }
  const index = await job
  const seconds = (performance.now() - t0) / 1000
  // The process's resident memory with both instances loaded, the job just done (the worker pools' threads
  // hold their own copies of the model).
  const rssMb = Math.round(process.memoryUsage().rss / 1048576)
  const asked = []
  for (const query of queries) asked.push((await svc.generateQueryEmbedding(query)).vector)
  writeFileSync(file(name, round), JSON.stringify({ seconds, loadMs, searchMs, searchesAfterJob, rssMb, index, asked }))
  console.log(`[bench] round ${round} ${name}: ${seconds.toFixed(2)} s`)
  await searcher.dispose()
  await svc.dispose()
} else if (mode === 'summary') {
  const rounds = Number(process.env.BENCH_ROUNDS)
  const runs = {}
  for (const n of ['pool', 'ours']) {
    const all = Array.from({ length: rounds }, (_, r) => JSON.parse(readFileSync(file(n, r + 1), 'utf8')))
    runs[n] = {
      seconds: all.map((a) => +a.seconds.toFixed(2)),
      loadMs: all.map((a) => a.loadMs),
      searchMs: all.flatMap((a) => a.searchMs),
      searchesAfterJob: all.reduce((t, a) => t + a.searchesAfterJob, 0),
      rssMb: all.map((a) => a.rssMb),
      index: all.at(-1).index,
      asked: all.at(-1).asked,
    }
  }
  // The f32 model (all-MiniLM-L6-v2 from fixtures, truncating at 512 tokens as the export does).
  const f32 = new EmbeddingService({ model: process.env.BENCH_F32_MODEL, threads: 2 })
  const reference = (await f32.embed(docs)).map((v) => Array.from(v))
  const referenceAsked = (await f32.embed(queries)).map((v) => Array.from(v))
  await f32.close()
  const minCos = (vs, ws) => Math.min(...vs.map((v, i) => cosine(v, ws[i])))
  // Top 10 of each query in `index` with `mine`, against those with `theirs`: the share in common.
  const overlap = (index, mine, theirs) => {
    let same = 0
    mine.forEach((q, i) => {
      const want = new Set(top10(index, theirs[i]))
      same += top10(index, q).filter((x) => want.has(x)).length
    })
    return +(same / (10 * mine.length)).toFixed(4)
  }
  const summary = {
    chunks: docs.length,
    rounds,
    seconds: { pool: runs.pool.seconds, ours: runs.ours.seconds },
    speedup_median: +(median(runs.pool.seconds) / median(runs.ours.seconds)).toFixed(2),
    load_ms_median: { pool: Math.round(median(runs.pool.loadMs)), ours: Math.round(median(runs.ours.loadMs)) },
    rss_mb_after_job: { pool: runs.pool.rssMb, ours: runs.ours.rssMb },
    search_embed_ms: Object.fromEntries(
      ['pool', 'ours'].map((n) => [n, {
        count: runs[n].searchMs.length,
        p50: +median(runs[n].searchMs).toFixed(1),
        p90: +quantile(runs[n].searchMs, 0.9).toFixed(1),
        max: +Math.max(...runs[n].searchMs).toFixed(1),
        answered_after_the_job: runs[n].searchesAfterJob,
      }]),
    ),
    min_cosine_to_f32: { pool: +minCos(runs.pool.index, reference).toFixed(5), ours: +minCos(runs.ours.index, reference).toFixed(5) },
    min_cosine_ours_to_pool: +minCos(runs.ours.index, runs.pool.index).toFixed(5),
    top10_overlap: {
      // The goal: the pool's index, searched with our query vectors and with its own.
      pool_index_ours_vs_pool_queries: overlap(runs.pool.index, runs.ours.asked, runs.pool.asked),
      // The same with the f32 model's query vectors: how far the pool's own queries are from the model's.
      pool_index_f32_vs_pool_queries: overlap(runs.pool.index, referenceAsked, runs.pool.asked),
      // The model's own index: our queries and the pool's, each against the f32 model's.
      f32_index_ours_vs_f32_queries: overlap(reference, runs.ours.asked, referenceAsked),
      f32_index_pool_vs_f32_queries: overlap(reference, runs.pool.asked, referenceAsked),
    },
  }
  console.log(`[bench] ${JSON.stringify(summary)}`)
  writeFileSync(process.env.BENCH_OUT, JSON.stringify(summary, null, 2))
}
