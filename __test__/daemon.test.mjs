// The daemon adapter (embedding-service/daemon) against the real all-MiniLM-L6-v2 and the tiny E5-style
// fixture: the whole contract, model switching, and a search while an indexing batch runs.
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cosine, minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { NativeEmbeddingBackend } = require(path.join(root, 'daemon.js'))
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const e5Dir = path.join(reference('tiny-xlmr-mean-prompts'), 'model')
const e5 = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const chunks = (list) => list.map((content, i) => ({ content, chunkIndex: 100 + i }))

describe('the daemon contract on all-MiniLM-L6-v2', () => {
  const backend = new NativeEmbeddingBackend({ model: minilmDir(), threads: 2 })
  afterAll(() => backend.shutdown())

  it('exports the same class from the ESM subpath', async () => {
    const esm = await import(path.join(root, 'daemon.mjs'))
    expect(esm.NativeEmbeddingBackend).toBe(NativeEmbeddingBackend)
  })

  it('initializes once, however often it is called, and reports the truth before and after', async () => {
    expect(backend.isInitialized()).toBe(false)
    expect(backend.getStatus()).toBe('uninitialized')
    expect(backend.healthCheck()).toMatchObject({ status: 'unhealthy', model_loaded: false, current_model: null })
    await Promise.all([backend.initialize(), backend.initialize()])
    await backend.initialize()
    expect(backend.isInitialized()).toBe(true)
    expect(backend.getStatus()).toBe('ready')
    expect(backend.getServiceType()).toBe('onnx')
    expect(backend.getModelConfig()).toMatchObject({ dimensions: 384, device: 'cpu', dtype: 'f32', prompts: [] })
    expect(backend.getServiceStats().loadCount).toBe(1)
  })

  it('generateEmbeddings gives the documented shape, real token counts and sentence-transformers vectors', async () => {
    const got = await backend.generateEmbeddings(chunks(texts()))
    expect(got).toHaveLength(32)
    got.forEach((v, i) => {
      expect(v.chunkId).toBe(`chunk_${i}_${100 + i}`)
      expect(v.dimensions).toBe(384)
      expect(v.vector).toHaveLength(384)
      expect(Array.isArray(v.vector)).toBe(true)
      expect(v.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(v.metadata).toMatchObject({ tokensUsed: minilm.token_counts[i], confidence: 1, generatedAt: v.createdAt })
    })
    expect(minCosine(got.map((v) => v.vector), minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('single, query and batch calls agree with the golden vectors (MiniLM has no prompts)', async () => {
    const single = await backend.generateSingleEmbedding(texts()[3])
    expect(cosine(single.vector, minilm.embeddings[3])).toBeGreaterThanOrEqual(0.99999)
    const query = await backend.generateQueryEmbedding(texts()[4])
    expect(cosine(query.vector, minilm.embeddings[4])).toBeGreaterThanOrEqual(0.99999)
    const batch = await backend.processBatch(chunks(texts()), 5)
    expect(batch.map((v) => v.chunkId)).toEqual(texts().map((_, i) => `chunk_${i}_${100 + i}`))
    expect(minCosine(batch.map((v) => v.vector), minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('calculateSimilarity is cosine, 0 for a zero vector, and throws on a dimension mismatch', () => {
    expect(backend.calculateSimilarity([1, 0], [1, 0])).toBeCloseTo(1, 12)
    expect(backend.calculateSimilarity([1, 0], [0, 2])).toBeCloseTo(0, 12)
    expect(backend.calculateSimilarity([1, 1], [-2, -2])).toBeCloseTo(-1, 12)
    expect(backend.calculateSimilarity([0, 0], [1, 2])).toBe(0)
    expect(() => backend.calculateSimilarity([1, 2], [1, 2, 3])).toThrow(/dimension/)
  })

  it('estimateProcessingTime follows the measured throughput', () => {
    const stats = backend.getServiceStats()
    expect(stats.texts).toBeGreaterThanOrEqual(32 * 2 + 2)
    const one = backend.estimateProcessingTime(1)
    expect(one).toBeGreaterThan(0)
    expect(backend.estimateProcessingTime(1000)).toBeCloseTo(one * 1000, 6)
    expect(one).toBeCloseTo(1 / stats.textsPerSecond, 6)
  })

  it('a search while an index batch runs comes back before the batch', async () => {
    const many = chunks(Array.from({ length: 400 }, (_, i) => `${texts()[i % 32]} ${i} ${'more text '.repeat(20)}`))
    const order = []
    const indexing = backend.processBatch(many, 400).then(() => order.push('index'))
    await backend.waitForState('ready')
    const query = backend.generateQueryEmbedding('where is the config?').then(() => order.push('query'))
    await Promise.all([indexing, query])
    expect(order).toEqual(['query', 'index'])
  })

  it('unloads truthfully, reports it through waitForState, and reloads on demand', async () => {
    expect(backend.requestModelUnload()).toBe(true)
    await backend.waitForState('idle', 10000)
    expect(backend.healthCheck()).toMatchObject({ status: 'idle', model_loaded: false, state: 'idle', current_model: null })
    expect(backend.getLastHealthCheck().state).toBe('idle')
    const v = await backend.generateSingleEmbedding(texts()[0])
    expect(cosine(v.vector, minilm.embeddings[0])).toBeGreaterThanOrEqual(0.99999)
    expect(backend.healthCheck()).toMatchObject({ status: 'healthy', model_loaded: true, state: 'ready' })
    await backend.unloadModel()
    expect(backend.getStatus()).toBe('idle')
  })

  it('waitForState rejects with ERR_TIMEOUT when the state does not come', async () => {
    await expect(backend.waitForState('loading', 50)).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
  })

  it('rejects an unknown text type with ERR_INVALID_INPUT', async () => {
    await expect(backend.generateEmbeddings(chunks(['a']), 'document')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
  })

  it('knows what is cached, and a cached model "downloads" successfully without the network', async () => {
    expect(backend.isModelCached()).toBe(true)
    expect(backend.isModelCached('/no/such/model')).toBe(false)
    const progress = []
    backend.setDownloadProgressCallback((p) => progress.push(p))
    expect(await backend.downloadModel()).toMatchObject({ success: true, progress: 100 })
    const missing = await backend.downloadModel('org/not-a-model-anywhere-offline')
    expect(missing.success).toBe(false)
    expect(missing.error).toMatch(/^ERR_/)
  })
})

describe('text types map to the model prompts, and models switch', () => {
  it('E5-style prompts: query and passage get their prompts; switching models changes the dimensions', async () => {
    const backend = new NativeEmbeddingBackend({ model: e5Dir, threads: 1, offline: true })
    const query = await backend.generateQueryEmbedding(texts()[5])
    expect(cosine(query.vector, e5.embeddings_by_prompt.query[5])).toBeGreaterThanOrEqual(0.99999)
    const passages = await backend.generateEmbeddings(chunks(texts()))
    expect(minCosine(passages.map((v) => v.vector), e5.embeddings_by_prompt.passage)).toBeGreaterThanOrEqual(0.99999)
    // The prompt's tokens count: "passage: " adds tokens to every text.
    expect(passages[0].metadata.tokensUsed).toBeGreaterThan(e5.token_counts[0])
    expect(backend.getModelConfig()).toMatchObject({ dimensions: 32, prompts: ['document', 'passage', 'query'] })

    await backend.loadModel(minilmDir())
    expect(backend.getStatus()).toBe('ready')
    expect(backend.getModelConfig()).toMatchObject({ name: minilmDir(), dimensions: 384, prompts: [] })
    const v = await backend.generateSingleEmbedding(texts()[1])
    expect(cosine(v.vector, minilm.embeddings[1])).toBeGreaterThanOrEqual(0.99999)
    expect(await backend.shutdown(5)).toBe(true)
    expect(backend.getStatus()).toBe('uninitialized')
    expect(backend.isInitialized()).toBe(false)
    expect(backend.healthCheck().status).toBe('unhealthy')
  })

  it('a model that fails to load puts the backend in error, and healthCheck says so without throwing', async () => {
    const backend = new NativeEmbeddingBackend({ model: '/no/such/model', offline: true })
    await expect(backend.initialize()).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    expect(backend.getStatus()).toBe('error')
    expect(backend.isInitialized()).toBe(false)
    expect(backend.healthCheck()).toMatchObject({ status: 'unhealthy', model_loaded: false, state: 'error' })
    await backend.shutdown()
  })
})
