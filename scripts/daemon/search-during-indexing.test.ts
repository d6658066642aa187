// Copied into a folder-mcp checkout by scripts/test-daemon.mjs and run by the daemon's vitest. Searches go
// through the daemon's own REST search path (RESTAPIServer's POST /api/v1/folders/:folder/search_content ->
// FolderIndexingQueue.processSemanticSearch -> UnifiedModelFactory's PythonModelBridge ->
// generateEmbeddings([chunk labelled 'search-query']) -> vec0 MATCH), over HTTP, while a 2,000-chunk indexing
// job runs on the same backend (the registry's singleton, as its IndexingOrchestrator gets it). The model is the
// curated E5 entry (`gpu:multilingual-e5-large`, requiresPrefix in the daemon's registry), served by a stand-in:
// all-MiniLM-L6-v2's files under that hub id, a folder that declares no prompts, so only the adapter's query
// detection and the registry's word can give the searches E5's "query: " prefix.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'fs'
import { tmpdir } from 'os'
import { join } from 'path'
import { performance } from 'perf_hooks'
import Database from 'better-sqlite3'
import * as sqliteVec from 'sqlite-vec'
import { EmbeddingService } from 'embedding-service'
import { setupDependencyInjection } from '../../src/di/setup.js'
import { MODULE_TOKENS } from '../../src/di/interfaces.js'
import { SQLiteVecStorage } from '../../src/infrastructure/embeddings/sqlite-vec/sqlite-vec-storage.js'
import { RESTAPIServer } from '../../src/daemon/rest/server.js'
import { FolderIndexingQueue } from '../../src/daemon/services/folder-indexing-queue.js'
import { UnifiedModelFactory } from '../../src/daemon/factories/unified-model-factory.js'
import { ModelDownloadManager } from '../../src/daemon/services/model-download-manager.js'
import { PythonEmbeddingServiceRegistry, createPythonEmbeddingService } from '../../src/daemon/factories/model-factories.js'

const MODEL_ID = 'gpu:multilingual-e5-large'
const HUB_ID = 'intfloat/multilingual-e5-large'
const JOB_CHUNKS = 2000
const SEARCHES = 25
const quiet = { info() {}, warn() {}, debug() {}, error: (...args: unknown[]) => console.error(...args) }

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

describe('searches through the daemon\'s REST path while it indexes (E5 stand-in)', () => {
  const docs = process.env.NATIVE_BACKEND_DOCS!
  const folder = mkdtempSync(join(tmpdir(), 'native-backend-rest-'))
  for (const f of readdirSync(docs).filter((f) => !/^(README|BENCHMARKS)\.md$/.test(f))) cpSync(join(docs, f), join(folder, f))
  let storage: SQLiteVecStorage
  let server: RESTAPIServer
  let port: number

  beforeAll(async () => {
    // The folder's index, by the daemon's own pipeline, with the E5 model.
    const container: any = setupDependencyInjection({ logLevel: 'error', folderPath: folder })
    const orchestrator: any = await container.resolveAsync(MODULE_TOKENS.APPLICATION.INDEXING_WORKFLOW)
    storage = new SQLiteVecStorage({ folderPath: folder, modelName: MODEL_ID, modelDimension: 384 })
    await storage.getDatabaseManager().initialize()
    for (const f of readdirSync(folder).filter((f) => !f.startsWith('.'))) {
      const result = await orchestrator.processFile(join(folder, f), MODEL_ID)
      await storage.addEmbeddings(result.embeddings, result.metadata)
    }
    // The daemon's REST server, its indexing queue (model switching, keep-alive window) and model factory; the
    // FMDM says which model the folder uses and that it is installed, as the daemon's would.
    const fmdm: any = {
      getFMDM: () => ({ folders: [{ path: folder, model: MODEL_ID, status: 'active' }], curatedModels: [{ id: MODEL_ID, installed: true }] }),
    }
    const queue = new FolderIndexingQueue(quiet as any)
    queue.setModelFactory(new UnifiedModelFactory(quiet as any))
    queue.setModelDownloadManager(new ModelDownloadManager(quiet as any, fmdm))
    server = new RESTAPIServer(fmdm, {} as any, {} as any, {} as any, { getQueue: () => queue }, quiet)
    await server.start(0)
    port = ((server as any).server.address() as { port: number }).port
  }, 300000)

  afterAll(async () => {
    await server?.stop()
    await storage?.close()
    await PythonEmbeddingServiceRegistry.getInstance().cleanup()
    rmSync(folder, { recursive: true, force: true })
  })

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

  it('answers with the query embedded as E5 asks ("query: " prefix), not as a passage', async () => {
    const query = 'how do I fix a flat tyre on my bicycle'
    const got = await search(query)
    expect(got.status, JSON.stringify(got.body)).toBe(200)
    expect(got.results[0].file_path).toMatch(/bikes/)
    // The scores the same vec0 MATCH gives for each way of embedding the query, with the same model files.
    const reference = new EmbeddingService({ model: HUB_ID, offline: true, threads: 1 })
    const [asQuery, bare, asPassage] = await reference.embed([`query: ${query}`, query, `passage: ${query}`])
    await reference.close()
    const db = new Database(join(folder, '.folder-mcp', 'embeddings.db'), { readonly: true })
    sqliteVec.load(db)
    const blob = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)
    // vec0's default metric is L2, and the REST path reports 1 - distance.
    const want = db
      .prepare('SELECT chunk_id, (1 - distance) AS score FROM chunk_embeddings WHERE embedding MATCH vec_f32(?) AND k = 5 ORDER BY distance')
      .all(blob(asQuery!)) as { chunk_id: number; score: number }[]
    const scoreOf = (v: Float32Array, chunkId: number) =>
      1 - (db.prepare('SELECT vec_distance_l2(embedding, vec_f32(?)) AS d FROM chunk_embeddings WHERE chunk_id = ?').get(blob(v), chunkId) as { d: number }).d
    const others = [bare!, asPassage!].map((v) => scoreOf(v, want[0]!.chunk_id))
    db.close()
    expect(got.results.map((r) => Number(r.chunk_id))).toEqual(want.map((r) => r.chunk_id))
    got.results.forEach((r, i) => expect(Math.abs(r.relevance_score - want[i]!.score)).toBeLessThan(1e-5))
    // The bare query and a "passage: " one would have scored differently: the check tells them apart.
    for (const other of others) expect(Math.abs(other - want[0]!.score)).toBeGreaterThan(1e-3)
  }, 120000)

  it(`${SEARCHES} searches during a ${JOB_CHUNKS}-chunk indexing job each come back before the job ends`, async () => {
    // The job: the registry's singleton (what the IndexingOrchestrator embeds with), a file's chunks.
    const backend: any = await createPythonEmbeddingService({ modelName: HUB_ID } as any)
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
    const job = backend.generateEmbeddings(chunks).then((v: unknown[]) => {
      jobDoneAt = performance.now()
      return v
    })
    await vi.waitFor(async () => expect((await backend.healthCheck()).queue_size).toBeGreaterThan(0), { timeout: 10000, interval: 5 })

    const queries: [string, RegExp][] = [
      ['how do I fix a flat tyre on my bicycle', /bikes/],
      ['what temperature should the oven be for bread', /cooking/],
      ['when should I water tomato plants', /gardening/],
    ]
    const latencies: number[] = []
    for (let i = 0; i < SEARCHES; i++) {
      const [query, want] = queries[i % queries.length]!
      const got = await search(query)
      const answeredAt = performance.now()
      expect(got.status).toBe(200)
      expect(got.results[0].file_path).toMatch(want)
      expect(answeredAt, `search ${i + 1} came back after the job ended`).toBeLessThan(jobDoneAt)
      latencies.push(got.ms)
      // A person typing: the next search a little later, so the searches spread over the job.
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
    const vectors = await job
    expect(vectors).toHaveLength(JOB_CHUNKS)
    const sorted = [...latencies].sort((a, b) => a - b)
    const summary = {
      searches: latencies.length,
      p50_ms: +percentile(sorted, 50).toFixed(1),
      p90_ms: +percentile(sorted, 90).toFixed(1),
      max_ms: +sorted[sorted.length - 1]!.toFixed(1),
      job_ms: Math.round(jobDoneAt - jobStarted),
    }
    console.log(`[native-backend] REST search during indexing: ${JSON.stringify(summary)}`)
  }, 600000)
})
