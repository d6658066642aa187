// Copied into a folder-mcp checkout by scripts/test-daemon.mjs and run by the daemon's vitest with its
// ONNXEmbeddingService (src/infrastructure/embeddings/onnx/onnx-embedding-service.js) resolved to this package's
// (or, with the migration edits, re-exported by that file). The daemon's cpu: model is served by a stand-in:
// all-MiniLM-L6-v2 quantized by ONNX Runtime's quantize_dynamic, laid out in its ONNX cache
// ($HOME/.cache/folder-mcp/onnx-models/Xenova/multilingual-e5-small, HOME being a folder of this run).
// - its IndexingOrchestrator indexes a folder with it (its cpu: path: n-gram key phrases scored with these
//   embeddings), and its ONNXModelBridge embeds searches that a vec0 MATCH answers;
// - 25 searches over HTTP through its RESTAPIServer (search_content -> FolderIndexingQueue -> UnifiedModelFactory
//   -> ONNXModelBridge) while a 2,000-chunk job runs on an instance of its own, as its orchestrator makes one;
// - the keep-alive returns memory while its bridge and singleton manager see a usable model;
// - no onnxruntime library is loaded and no worker thread is started; a process that uses it exits by itself;
// - the daemon's own process (src/daemon/index.ts under tsx, with scripts/daemon/loader.mjs for the unchanged run's
//   aliases) indexes a folder configured with the cpu: model, and its own shutdown (SIGTERM -> stop() ->
//   process.exit(0)) exits 0 mid-job and after the resumed job, with no forced GC.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { execFileSync, spawn } from 'child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'fs'
import { createServer } from 'net'
import { homedir, tmpdir } from 'os'
import { join } from 'path'
import { performance } from 'perf_hooks'
import Database from 'better-sqlite3'
import { setupDependencyInjection } from '../../src/di/setup.js'
import { MODULE_TOKENS } from '../../src/di/interfaces.js'
import { CONFIG_SERVICE_TOKENS } from '../../src/config/di-setup.js'
import { SQLiteVecStorage } from '../../src/infrastructure/embeddings/sqlite-vec/sqlite-vec-storage.js'
import { RESTAPIServer } from '../../src/daemon/rest/server.js'
import { FolderIndexingQueue } from '../../src/daemon/services/folder-indexing-queue.js'
import { UnifiedModelFactory } from '../../src/daemon/factories/unified-model-factory.js'
import { ModelDownloadManager } from '../../src/daemon/services/model-download-manager.js'
import { ONNXEmbeddingService } from '../../src/infrastructure/embeddings/onnx/onnx-embedding-service.js'
import { ONNXModelBridge } from '../../src/infrastructure/embeddings/bridges/onnx-model-bridge.js'
import { ONNXSingletonManager } from '../../src/infrastructure/embeddings/onnx-singleton-manager.js'

// The keep-alive for this file's models (the daemon sets it from `testConfig.keepAliveSeconds` for its tests).
process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS = '1'

const MODEL_ID = 'cpu:xenova-multilingual-e5-small'
const JOB_CHUNKS = 2000
const SEARCHES = 25
const quiet = { info() {}, warn() {}, debug() {}, error: (...args: unknown[]) => console.error(...args) }
const onnxCache = () => join(homedir(), '.cache', 'folder-mcp', 'onnx-models')
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
const mb = (bytes: number) => Math.round(bytes / 1048576)
const queries: [string, RegExp][] = [
  ['how do I fix a flat tyre on my bicycle', /bikes/],
  ['what temperature should the oven be for bread', /cooking/],
  ['when should I water tomato plants', /gardening/],
]

/** What the process has loaded that a worker pool over onnxruntime-node would have: its library, its threads. */
function runtimeFootprint() {
  const report: any = process.report!.getReport()
  return {
    onnxruntime: (report.sharedObjects as string[]).filter((s) => /onnxruntime/i.test(s)),
    workers: (report.workers as unknown[]).length,
  }
}

describe('the daemon\'s cpu: models on this package (int8 from its ONNX cache)', () => {
  const docs = process.env.NATIVE_BACKEND_DOCS!
  const folder = mkdtempSync(join(tmpdir(), 'native-backend-cpu-'))
  for (const f of readdirSync(docs).filter((f) => !/^(README|BENCHMARKS)\.md$/.test(f))) cpSync(join(docs, f), join(folder, f))
  let storage: SQLiteVecStorage
  let server: RESTAPIServer
  let port: number

  beforeAll(() => {
    // The run's HOME holds the stand-in where the daemon's ONNX code looks for it.
    expect(readdirSync(join(onnxCache(), 'Xenova', 'multilingual-e5-small', 'onnx'))).toContain('model_quantized.onnx')
  })

  afterAll(async () => {
    await server?.stop()
    await storage?.close()
    await ONNXSingletonManager.getInstance().clearAll()
    rmSync(folder, { recursive: true, force: true })
  })

  it('the daemon\'s ONNXEmbeddingService is this package\'s', () => {
    const service: any = new ONNXEmbeddingService({ modelId: MODEL_ID })
    expect(typeof service.getModelSource).toBe('function')
  })

  it('indexes every file through the IndexingOrchestrator\'s cpu: path into the vec0 store', async () => {
    const container: any = setupDependencyInjection({ logLevel: 'error', folderPath: folder })
    // As the daemon's startup does: its orchestrator's cpu: path reads the ONNX settings from it.
    await container.resolve(CONFIG_SERVICE_TOKENS.CONFIGURATION_COMPONENT).load()
    const orchestrator: any = await container.resolveAsync(MODULE_TOKENS.APPLICATION.INDEXING_WORKFLOW)
    storage = new SQLiteVecStorage({ folderPath: folder, modelName: MODEL_ID, modelDimension: 384 })
    await storage.getDatabaseManager().initialize()
    let chunks = 0
    for (const f of readdirSync(folder).filter((f) => !f.startsWith('.'))) {
      const result = await orchestrator.processFile(join(folder, f), MODEL_ID)
      expect(result.embeddingsCreated).toBeGreaterThan(0)
      for (const e of result.embeddings) expect(e.vector ?? e).toHaveLength(384)
      await storage.addEmbeddings(result.embeddings, result.metadata)
      chunks += result.embeddingsCreated
    }
    const rows = storage.getDatabaseManager().getDatabase().prepare('SELECT key_phrases FROM chunks').all() as { key_phrases: string | null }[]
    expect(rows).toHaveLength(chunks)
    const phrases = rows.map((r) => JSON.parse(r.key_phrases ?? '[]'))
    expect(phrases.every((p) => p.length > 0)).toBe(true)
    expect(runtimeFootprint()).toEqual({ onnxruntime: [], workers: 0 })
    console.log(`[native-backend] cpu: indexed ${chunks} chunks; key phrases of chunk 1: ${JSON.stringify(phrases[0].slice(0, 5))}`)
  }, 600000)

  it('a search through its ONNXModelBridge and a vec0 MATCH finds the file that answers it', async () => {
    const bridge = new ONNXModelBridge({ modelId: MODEL_ID, modelType: 'onnx' } as any, quiet as any)
    await bridge.load()
    const db = storage.getDatabaseManager().getDatabase()
    for (const [query, want] of queries) {
      const [q] = await bridge.generateEmbeddings([{ content: query, chunkIndex: 0 } as any], true)
      const hits = db
        .prepare(
          `SELECT d.file_path FROM chunk_embeddings ce JOIN chunks c ON ce.chunk_id = c.id JOIN documents d ON c.document_id = d.id
           WHERE ce.embedding MATCH vec_f32(?) AND ce.k = 3 ORDER BY ce.distance ASC`,
        )
        .all(new Float32Array(q!.vector)) as { file_path: string }[]
      expect(hits[0]!.file_path).toMatch(want)
    }
    await bridge.unload()
  }, 120000)

  it(`${SEARCHES} REST searches during a ${JOB_CHUNKS}-chunk indexing job each come back before the job ends`, async () => {
    const fmdm: any = {
      getFMDM: () => ({ folders: [{ path: folder, model: MODEL_ID, status: 'active' }], curatedModels: [{ id: MODEL_ID, installed: true }] }),
    }
    const queue = new FolderIndexingQueue(quiet as any)
    queue.setModelFactory(new UnifiedModelFactory(quiet as any))
    queue.setModelDownloadManager(new ModelDownloadManager(quiet as any, fmdm))
    server = new RESTAPIServer(fmdm, {} as any, {} as any, {} as any, { getQueue: () => queue }, quiet)
    await server.start(0)
    port = ((server as any).server.address() as { port: number }).port
    const search = async (query: string) => {
      const started = performance.now()
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/folders/${encodeURIComponent(folder)}/search_content`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ semantic_concepts: [query], limit: 5 }),
      })
      const body: any = await res.json()
      return { ms: performance.now() - started, status: res.status, results: (body.data?.results ?? []) as any[], body }
    }
    const first = await search(queries[0]![0])
    expect(first.status, JSON.stringify(first.body)).toBe(200)
    expect(first.results[0].file_path).toMatch(queries[0]![1])

    // The job: an instance as its orchestrator makes one (getEmbeddingServiceForModel), a file's chunks.
    const indexer: any = new ONNXEmbeddingService({ modelId: MODEL_ID, cacheDirectory: onnxCache(), batchSize: 1, workerPoolSize: 2, numThreads: 2 })
    await indexer.initialize()
    const text = readFileSync(join(docs, 'README.md'), 'utf8').split(/\n\s*\n/).filter((p) => p.trim().length > 80)
    const chunks = Array.from({ length: JOB_CHUNKS }, (_, i) => {
      const content = `${text[i % text.length]} (${i})`
      return {
        content, chunkIndex: i, startPosition: 0, endPosition: content.length, tokenCount: Math.ceil(content.length / 4),
        metadata: { sourceFile: join(folder, 'README.md'), sourceType: 'md', totalChunks: JOB_CHUNKS, hasOverlap: false },
      }
    })
    let jobDoneAt = Infinity
    const jobStarted = performance.now()
    const job = indexer.generateEmbeddings(chunks).then((v: unknown[]) => {
      jobDoneAt = performance.now()
      return v
    })
    await vi.waitFor(() => expect(indexer.status().activeRequests).toBeGreaterThan(0), { timeout: 10000, interval: 5 })
    const latencies: number[] = []
    for (let i = 0; i < SEARCHES; i++) {
      const [query, want] = queries[i % queries.length]!
      const got = await search(query)
      const answeredAt = performance.now()
      expect(got.status).toBe(200)
      expect(got.results[0].file_path).toMatch(want)
      expect(answeredAt, `search ${i + 1} came back after the job ended`).toBeLessThan(jobDoneAt)
      latencies.push(got.ms)
      await new Promise((resolve) => setTimeout(resolve, 150)) // a person typing
    }
    expect(await job).toHaveLength(JOB_CHUNKS)
    const sorted = [...latencies].sort((a, b) => a - b)
    const summary = {
      searches: latencies.length,
      p50_ms: +percentile(sorted, 50).toFixed(1),
      p90_ms: +percentile(sorted, 90).toFixed(1),
      max_ms: +sorted[sorted.length - 1]!.toFixed(1),
      job_ms: Math.round(jobDoneAt - jobStarted),
      chunks_per_s: +((JOB_CHUNKS * 1000) / (jobDoneAt - jobStarted)).toFixed(1),
    }
    console.log(`[native-backend] cpu: REST search during indexing: ${JSON.stringify(summary)}`)
    await indexer.dispose()
  }, 600000)

  it('the keep-alive returns the model\'s memory; its singleton and bridge still see a usable model', async () => {
    // FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS=1 for this file (set above, as the daemon sets it from its test config):
    // the model every instance above shares is unloaded after 1 s of no work, never while work runs.
    const singleton: any = await ONNXSingletonManager.getInstance().getModel(MODEL_ID)
    const bridge = new ONNXModelBridge({ modelId: MODEL_ID, modelType: 'onnx' } as any, quiet as any)
    await bridge.load()
    const unloaded = async () => {
      const deadline = Date.now() + 30000
      while (singleton.status().modelLoaded) {
        if (Date.now() > deadline) throw new Error('the keep-alive did not unload the model')
        await new Promise((resolve) => setTimeout(resolve, 20)) // no event reaches the daemon's objects
      }
    }
    await unloaded()
    const idleBefore = process.memoryUsage().rss
    const probe = 'where do I keep the spare inner tube'
    const [before] = await bridge.generateEmbeddings([{ content: probe, chunkIndex: 0 } as any], true)
    const loaded = process.memoryUsage().rss
    expect(singleton.status().modelLoaded).toBe(true)
    await unloaded()
    const idle = process.memoryUsage().rss
    let started = performance.now()
    expect(await bridge.verifyLoaded()).toBe(true)
    const verifyMs = performance.now() - started
    expect(verifyMs).toBeLessThan(100)
    started = performance.now()
    const [after] = await bridge.generateEmbeddings([{ content: probe, chunkIndex: 0 } as any], true)
    const reloadMs = performance.now() - started
    expect(after!.vector).toEqual(before!.vector)
    console.log(`[native-backend] cpu: keep-alive 1 s: RSS ${mb(idleBefore)} MB unloaded, ${mb(loaded)} MB loaded, ${mb(idle)} MB after the idle unload (${mb(loaded - idle)} of ${mb(loaded - idleBefore)} MB back); verifyLoaded ${verifyMs.toFixed(1)} ms; first search after it ${reloadMs.toFixed(0)} ms (reload included)`)
    expect(loaded - idle).toBeGreaterThanOrEqual((loaded - idleBefore) / 2)
    await bridge.unload()
  }, 120000)

  it('a process that embeds with it and disposes exits by itself, with status 0', () => {
    // What the daemon's shutdown does with its ONNX models (ONNXSingletonManager.clearAll -> dispose), in a
    // process of its own: nothing left running keeps it alive or crashes it on the way out.
    const script = `
      const { ONNXEmbeddingService } = require('embedding-service/daemon')
      const svc = new ONNXEmbeddingService({ modelId: '${MODEL_ID}', cacheDirectory: ${JSON.stringify(onnxCache())} })
      svc.initialize()
        .then(() => svc.generateEmbeddings([{ content: 'hello', chunkIndex: 0, metadata: { sourceFile: 'a.md' } }]))
        .then((v) => { if (v[0].vector.length !== 384) throw new Error('wrong size'); return svc.dispose() })
        .then(() => console.log('disposed'))`
    const out = execFileSync(process.execPath, ['-e', script], { cwd: process.cwd(), encoding: 'utf8', timeout: 60000 })
    expect(out.trim()).toBe('disposed')
  })

  it('the daemon\'s own process indexes with it and its own shutdown exits 0, mid-job and after resuming', async () => {
    // Its entry point as `folder-mcp-daemon` runs it, on a folder of its config (FOLDER_MCP_USER_CONFIG_DIR).
    // Its SIGTERM handler awaits stop() (the folders' orchestrator, the servers) and then calls process.exit(0)
    // while this package's worker may still be inside a batch.
    const daemonFolder = mkdtempSync(join(tmpdir(), 'native-backend-daemon-'))
    for (const f of readdirSync(folder).filter((f) => !f.startsWith('.'))) cpSync(join(folder, f), join(daemonFolder, f))
    for (let i = 1; i <= 6; i++) cpSync(join(docs, 'README.md'), join(daemonFolder, `readme-${i}.md`)) // a job of seconds
    const files = readdirSync(daemonFolder).length
    const configDir = mkdtempSync(join(tmpdir(), 'native-backend-config-'))
    writeFileSync(join(configDir, 'config.yaml'), `folders:\n  list:\n    - path: ${JSON.stringify(daemonFolder)}\n      model: ${MODEL_ID}\n`)
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number }
        probe.close(() => resolve(port))
      })
    })
    const loader = new URL('./loader.mjs', import.meta.url).href
    const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(loader)})`
    const madeCwdStore = !existsSync('.folder-mcp') // the daemon opens a store under its working directory too
    const indexed = () => {
      const db = new Database(join(daemonFolder, '.folder-mcp', 'embeddings.db'), { readonly: true })
      try {
        return (db.prepare('SELECT COUNT(DISTINCT d.id) AS n FROM documents d JOIN chunks c ON c.document_id = d.id').get() as { n: number }).n
      } finally {
        db.close()
      }
    }
    const runUntil = async (stopAt: RegExp) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--import', register, 'src/daemon/index.ts', '--port', String(port)], {
        env: { ...process.env, FOLDER_MCP_USER_CONFIG_DIR: configDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exited = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])))
      let log = ''
      const reached = await new Promise<boolean>((resolve) => {
        const read = (data: Buffer) => {
          log += data
          if (stopAt.test(log)) resolve(true)
        }
        child.stdout!.on('data', read)
        child.stderr!.on('data', read)
        child.on('exit', () => resolve(false))
      })
      expect(reached, `the daemon exited before ${stopAt}:\n${log.slice(-4000)}`).toBe(true)
      const libraries = readFileSync(`/proc/${child.pid}/maps`, 'utf8')
      const doneBeforeStop = log.includes(`Indexing complete for ${daemonFolder}`)
      child.kill('SIGTERM')
      const exit = await exited
      return { exit, log, libraries, doneBeforeStop }
    }
    try {
      // 1. Stopped as the first batches come back: the job is still running.
      const first = await runUntil(/\[OPTIMIZED-ONNX\] Generated embeddings for chunks/)
      expect(first.doneBeforeStop).toBe(false)
      expect(first.libraries).toMatch(/embedding-service\.[\w-]+\.node/)
      expect(first.libraries).not.toMatch(/onnxruntime/i)
      expect(first.exit, first.log.slice(-4000)).toEqual([0, null])
      expect(first.log).toContain('Daemon stopped')
      expect(first.log).not.toMatch(/Check failed|Uncaught exception|Unhandled rejection|FATAL/)
      const afterFirst = indexed()
      expect(afterFirst).toBeLessThan(files)
      // 2. Started again: it resumes the folder, finishes it, and stops as cleanly once idle.
      const second = await runUntil(new RegExp(`Indexing complete for ${daemonFolder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
      expect(second.exit, second.log.slice(-4000)).toEqual([0, null])
      expect(second.log).toContain('Daemon stopped')
      expect(second.log).not.toMatch(/Check failed|Uncaught exception|Unhandled rejection|FATAL/)
      expect(indexed()).toBe(files)
      console.log(`[native-backend] cpu: the daemon's own process: SIGTERM mid-job (${afterFirst} of ${files} files in) exit 0; resumed, ${files} of ${files} files, SIGTERM exit 0`)
    } finally {
      rmSync(daemonFolder, { recursive: true, force: true })
      rmSync(configDir, { recursive: true, force: true })
      if (madeCwdStore) rmSync('.folder-mcp', { recursive: true, force: true })
    }
  }, 600000)
})
