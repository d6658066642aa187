// The daemon adapter (embedding-service/daemon) held to folder-mcp's contract for its PythonEmbeddingService,
// as the daemon's registry, bridge, orchestrator, download manager and semantic extraction call it (read from
// okets/folder-mcp at d01bb52). Real all-MiniLM-L6-v2, the tiny E5-style fixture, and KeyBERT references.
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cosine, hubCacheDir, minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { NativeEmbeddingBackend, PythonEmbeddingService, resolveModel, CURATED_MODELS } = require(path.join(root, 'daemon.js'))
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const e5Dir = path.join(reference('tiny-xlmr-mean-prompts'), 'model')
const e5 = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const chunks = (list) => list.map((content, i) => ({ content, chunkIndex: 100 + i }))

describe('the lifecycle the daemon drives (registry and bridge)', () => {
  // As PythonEmbeddingServiceRegistry builds it: no model until loadModel.
  const backend = new PythonEmbeddingService({ modelName: '', batchSize: 32, maxSequenceLength: 512, threads: 2 })
  afterAll(() => backend.shutdown())

  it('exports the same class from the ESM subpath, under both names', async () => {
    const esm = await import(path.join(root, 'daemon.mjs'))
    expect(esm.PythonEmbeddingService).toBe(NativeEmbeddingBackend)
    expect(esm.NativeEmbeddingBackend).toBe(NativeEmbeddingBackend)
  })

  it('starts with no model: initialize loads nothing, health says idle, embedding asks for a model', async () => {
    expect(backend.isInitialized()).toBe(false)
    expect(await backend.getStatus()).toMatchObject({ state: 'uninitialized' })
    await expect(backend.loadModel(minilmDir())).rejects.toMatchObject({ code: 'ERR_NOT_INITIALIZED' })
    await Promise.all([backend.initialize(), backend.initialize()])
    expect(backend.isInitialized()).toBe(true)
    expect(await backend.getStatus()).toEqual({ state: 'idle', model: null, progress: 0 })
    expect(await backend.healthCheck()).toMatchObject({ status: 'idle', model_loaded: false, current_model: null })
    expect(await backend.isKeyBERTAvailable()).toBe(false)
    expect(backend.getServiceStats()).toMatchObject({ initialized: true, loadCount: 0, processId: process.pid })
    await expect(backend.generateSingleEmbedding('x')).rejects.toMatchObject({ code: 'ERR_NO_MODEL' })
  })

  it('loadModel then waitForState("ready"), as the registry does; health agrees, as the bridge checks it', async () => {
    await backend.loadModel(minilmDir())
    await backend.waitForState('ready', 30000)
    expect(backend.config.modelName).toBe(minilmDir())
    const health = await backend.healthCheck()
    expect(health).toMatchObject({ status: 'healthy', model_loaded: true, state: 'ready', current_model: minilmDir() })
    expect(backend.getLastHealthCheck()).toBe(health)
    expect(await backend.getStatus()).toEqual({ state: 'ready', model: minilmDir(), progress: 100 })
    expect(backend.getModelDimensions()).toBe(384)
    expect(await backend.isKeyBERTAvailable()).toBe(true)
    // Loading the loaded model is a no-op.
    await backend.loadModel(minilmDir())
    expect(backend.getServiceStats().loadCount).toBe(1)
  })

  it('generateEmbeddings: the daemon EmbeddingVector shape, real token counts, sentence-transformers vectors', async () => {
    const got = await backend.generateEmbeddings(chunks(texts()))
    expect(got).toHaveLength(32)
    got.forEach((v, i) => {
      expect(v.chunkId).toBe(`chunk_${i}_${100 + i}`)
      expect(v.model).toBe(minilmDir())
      expect(v.dimensions).toBe(384)
      expect(Array.isArray(v.vector)).toBe(true)
      expect(v.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(v.metadata).toMatchObject({ tokensUsed: minilm.token_counts[i], confidence: 1, generatedAt: v.createdAt })
    })
    expect(minCosine(got.map((v) => v.vector), minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('processBatch returns EmbeddingResult[] (chunk, embedding, processingTime, success)', async () => {
    const input = chunks(texts())
    const results = await backend.processBatch(input, 5)
    expect(results).toHaveLength(32)
    results.forEach((r, i) => {
      expect(r.chunk).toBe(input[i])
      expect(r.success).toBe(true)
      expect(r.processingTime).toBeGreaterThanOrEqual(0)
      expect(r.embedding.chunkId).toBe(`chunk_${i}_${100 + i}`)
    })
    expect(minCosine(results.map((r) => r.embedding.vector), minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await expect(backend.processBatch(input, 0)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
  })

  it('calculateSimilarity takes EmbeddingVectors (and arrays)', async () => {
    const [a, b, c] = await Promise.all(
      ['cats and dogs', 'dogs and cats', 'quantum physics'].map((t) => backend.generateSingleEmbedding(t)),
    )
    const ab = backend.calculateSimilarity(a, b)
    expect(ab).toBeCloseTo(cosine(a.vector, b.vector), 12)
    expect(ab).toBeGreaterThan(backend.calculateSimilarity(a, c))
    expect(backend.calculateSimilarity([0, 0], [1, 2])).toBe(0)
    expect(() => backend.calculateSimilarity(a, { vector: [1, 2] })).toThrow(/same dimensions/)
  })

  it('estimateProcessingTime is milliseconds at the measured rate', () => {
    const { texts: n } = backend.getServiceStats()
    expect(n).toBeGreaterThan(60)
    const ten = backend.estimateProcessingTime(10)
    expect(ten).toBeGreaterThan(0)
    expect(backend.estimateProcessingTime(1000)).toBeCloseTo(ten * 100, 6)
    expect(new NativeEmbeddingBackend().estimateProcessingTime(10)).toBe(500)
  })

  it('a search query while an index job runs comes back before the job', async () => {
    const many = chunks(Array.from({ length: 400 }, (_, i) => `${texts()[i % 32]} ${i} ${'more text '.repeat(20)}`))
    const order = []
    const indexing = backend.processBatch(many, 32).then(() => order.push('index'))
    const query = backend.generateQueryEmbedding('where is the config?').then(() => order.push('query'))
    await Promise.all([indexing, query])
    expect(order).toEqual(['query', 'index'])
  })

  it('stays loaded until the daemon unloads it: no keep-alive of its own', async () => {
    expect(backend.getModelConfig()).toMatchObject({ model: minilmDir(), timeout: 30000, device: 'cpu', dimensions: 384 })
    // The daemon's own unload is the one that counts; the service is built with keep-alive off.
    expect(backend.getServiceStats().unloadCount).toBe(0)
    await backend.unloadModel()
    expect(backend.config.modelName).toBe('')
    expect(await backend.healthCheck()).toMatchObject({ status: 'idle', model_loaded: false, current_model: null })
    await backend.waitForState('idle', 1000)
    // The registry writes this after its bridge unloads; it must not throw.
    backend.config.modelName = ''
    await backend.loadModel(minilmDir())
    expect((await backend.healthCheck()).model_loaded).toBe(true)
  })

  it('unloads and reloads by itself only when keepAliveMs is configured', async () => {
    const b = new NativeEmbeddingBackend({ keepAliveMs: 0, threads: 1 })
    await b.initialize()
    await b.loadModel(minilmDir())
    await b.generateSingleEmbedding('a')
    await b.waitForState('idle', 30000)
    expect((await b.healthCheck()).model_loaded).toBe(false)
    const v = await b.generateSingleEmbedding(texts()[2])
    expect(cosine(v.vector, minilm.embeddings[2])).toBeGreaterThanOrEqual(0.99999)
    await b.shutdown()
  })

  it('waitForState rejects with ERR_TIMEOUT when the state does not come', async () => {
    await expect(backend.waitForState('loading', 30)).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
  })

  it('rejects an unknown text type with ERR_INVALID_INPUT', async () => {
    await expect(backend.generateEmbeddings(chunks(['a']), 'document')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
  })

  it('shutdown returns it to uninitialized', async () => {
    const b = new NativeEmbeddingBackend({ threads: 1 })
    await b.initialize()
    await b.loadModel(minilmDir())
    await b.shutdown(5)
    expect(b.isInitialized()).toBe(false)
    expect(await b.healthCheck()).toMatchObject({ status: 'unhealthy', model_loaded: false })
  })
})

describe('model names, prefixes and files as the daemon gives them', () => {
  it('maps curated ids, ONNX exports and bare names to the models they load', () => {
    expect(resolveModel('gpu:bge-m3').source).toBe('BAAI/bge-m3')
    expect(resolveModel('gpu:multilingual-e5-large').source).toBe('intfloat/multilingual-e5-large')
    expect(resolveModel('sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2').curated.id).toBe('gpu:paraphrase-multilingual-minilm')
    expect(resolveModel('cpu:xenova-multilingual-e5-small').source).toBe('intfloat/multilingual-e5-small')
    expect(resolveModel('Xenova/multilingual-e5-large').source).toBe('intfloat/multilingual-e5-large')
    expect(resolveModel('all-MiniLM-L6-v2').source).toBe('sentence-transformers/all-MiniLM-L6-v2')
    expect(() => resolveModel('gpu:not-curated')).toThrow(expect.objectContaining({ code: 'ERR_MODEL_NOT_FOUND' }))
    expect(CURATED_MODELS.filter((m) => m.requiresPrefix).map((m) => m.id)).toEqual([
      'gpu:multilingual-e5-large', 'cpu:xenova-multilingual-e5-small', 'cpu:xenova-multilingual-e5-large',
    ])
  })

  it('a bare name in the constructor loads at initialize from the hub cache, and vectors carry that name', async () => {
    const b = new PythonEmbeddingService({ modelName: 'all-MiniLM-L6-v2', timeout: 30000, cacheDir: hubCacheDir(), offline: true, threads: 1 })
    expect(b.isInitialized()).toBe(false)
    await b.initialize()
    expect((await b.healthCheck()).status).toBe('healthy')
    const v = await b.generateSingleEmbedding(texts()[7])
    expect(v.model).toBe('all-MiniLM-L6-v2')
    expect(cosine(v.vector, minilm.embeddings[7])).toBeGreaterThanOrEqual(0.99999)
    expect(b.getModelConfig()).toMatchObject({ model: 'all-MiniLM-L6-v2', timeout: 30000, source: 'sentence-transformers/all-MiniLM-L6-v2' })
    expect(await b.isModelCached('all-MiniLM-L6-v2')).toBe(true)
    expect(await b.isModelCached('gpu:bge-m3')).toBe(false)
    expect(await b.isModelCached('gpu:no-such')).toBe(false)
    await b.shutdown()
  })

  it('E5 prefixes: queries as queries and passages as passages; off when the registry says so', async () => {
    const b = new NativeEmbeddingBackend({ threads: 1 })
    await b.initialize()
    await b.loadModel(e5Dir)
    const query = await b.generateQueryEmbedding(texts()[5])
    expect(cosine(query.vector, e5.embeddings_by_prompt.query[5])).toBeGreaterThanOrEqual(0.99999)
    const passages = await b.generateEmbeddings(chunks(texts()))
    expect(minCosine(passages.map((v) => v.vector), e5.embeddings_by_prompt.passage)).toBeGreaterThanOrEqual(0.99999)
    expect(passages[0].metadata.tokensUsed).toBeGreaterThan(e5.token_counts[0])
    await b.shutdown()

    const plain = new NativeEmbeddingBackend({ threads: 1 }, { requiresPrefix: false })
    await plain.initialize()
    await plain.loadModel(e5Dir)
    const raw = await plain.generateEmbeddings(chunks(texts()))
    expect(minCosine(raw.map((v) => v.vector), e5.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await plain.shutdown()
  })

  it('switches models on loadModel, and a failed load is an error state it recovers from', async () => {
    const b = new NativeEmbeddingBackend({ threads: 1, offline: true })
    await b.initialize()
    await b.loadModel(e5Dir)
    expect(b.getModelDimensions()).toBe(32)
    await expect(b.loadModel('/no/such/model')).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    // As the registry follows loadModel with waitForState('ready'): it rejects at once instead of waiting.
    await expect(b.waitForState('ready', 30000)).rejects.toThrow(/error state/)
    expect(await b.healthCheck()).toMatchObject({ status: 'unhealthy', model_loaded: false, state: 'error' })
    await b.loadModel(minilmDir())
    expect(b.getModelDimensions()).toBe(384)
    const v = await b.generateSingleEmbedding(texts()[1])
    expect(cosine(v.vector, minilm.embeddings[1])).toBeGreaterThanOrEqual(0.99999)
    await b.shutdown()
  })

  it('a constructor model that cannot load fails initialize with its code, and leaves it uninitialized', async () => {
    const b = new NativeEmbeddingBackend({ modelName: '/no/such/model', offline: true })
    await expect(b.initialize()).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND', message: expect.stringMatching(/^Failed to initialize/) })
    expect(b.isInitialized()).toBe(false)
  })

  it('downloadModel: curated models only, a result object (never a rejection), progress as a number', async () => {
    const b = new NativeEmbeddingBackend({ cacheDir: hubCacheDir(), offline: true, supportedModels: ['all-MiniLM-L6-v2'] })
    expect(await b.downloadModel('unsupported-model')).toEqual({ success: false, error: 'Model unsupported-model not in supported list', progress: 0 })
    const progress = []
    b.setDownloadProgressCallback((p) => progress.push(p))
    expect(await b.downloadModel('all-MiniLM-L6-v2')).toMatchObject({ success: true, progress: 100 })
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.every((p) => typeof p === 'number' && p >= 0 && p <= 100)).toBe(true)
    expect(progress.at(-1)).toBe(100)
    const offline = await b.downloadModel('gpu:bge-m3')
    expect(offline.success).toBe(false)
    expect(offline.error).toMatch(/^ERR_MODEL_NOT_FOUND/)
  })

  it('calls itself "gpu", the daemon\'s label for the backend with KeyBERT', () => {
    expect(new NativeEmbeddingBackend().getServiceType()).toBe('gpu')
  })
})

describe('KeyBERT key phrases, as the daemon\'s semantic extraction asks for them', () => {
  const ref = () => readJson(path.join(root, 'fixtures', 'keybert', 'reference.json'))
  const backend = new NativeEmbeddingBackend({ threads: 2 })
  afterAll(() => backend.shutdown())

  let docs

  it('needs a model, then gives {text, score} lists that agree with Python KeyBERT', async () => {
    await expect(backend.extractKeyPhrasesKeyBERT('x')).rejects.toMatchObject({ code: 'ERR_NOT_INITIALIZED' })
    await backend.initialize()
    await expect(backend.extractKeyPhrasesKeyBERT('x')).rejects.toMatchObject({ code: 'ERR_NO_MODEL' })
    await backend.loadModel(minilmDir())
    docs = ref().texts.filter((t) => t.mmr.length >= 5).slice(0, 6)
    const batch = await backend.extractKeyPhrasesKeyBERTBatch(docs.map((d) => d.text))
    expect(batch).toHaveLength(docs.length)
    let overlap = 0
    batch.forEach((phrases, i) => {
      expect(phrases).toHaveLength(10)
      for (const p of phrases) expect(Object.keys(p).sort()).toEqual(['score', 'text'])
      const want = docs[i].mmr.slice(0, 5).map(([t]) => t)
      overlap += phrases.slice(0, 5).filter((p) => want.includes(p.text)).length
      // Scores are KeyBERT's (cosine to the document, 4 decimals) for the phrases both chose.
      for (const p of phrases) {
        const match = docs[i].mmr.find(([t]) => t === p.text)
        if (match) expect(Math.abs(p.score - match[1])).toBeLessThanOrEqual(2e-4)
      }
    })
    expect(overlap / (5 * docs.length)).toBeGreaterThanOrEqual(0.9)
    const single = await backend.extractKeyPhrasesKeyBERT(docs[0].text)
    expect(single).toEqual(batch[0])
  })

  it('honours the daemon options, boosts structured candidates, and returns [] for nothing to extract', async () => {
    const doc = docs[1].text
    const five = await backend.extractKeyPhrasesKeyBERT(doc, { maxKeyPhrases: 5, useMmr: false, ngramRange: [1, 1] })
    expect(five).toHaveLength(5)
    expect(five.every((p) => !p.text.includes(' '))).toBe(true)
    const plain = await backend.extractKeyPhrasesKeyBERT(doc, { maxKeyPhrases: 10 })
    const last = plain.at(-1).text
    const boosted = await backend.extractKeyPhrasesKeyBERT(doc, { maxKeyPhrases: 10, structuredCandidates: { metadata: [last] } })
    const at = boosted.findIndex((p) => p.text === last)
    expect(boosted[at].score).toBeCloseTo(0.3 + 0.7 * plain.at(-1).score, 10)
    expect(at).toBeLessThan(9)
    // The daemon's own handler with structured candidates, as recorded from Python (fixtures/keybert).
    for (const run of ref().daemon_weighted) {
      const text = ref().texts.find((t) => t.id === run.id).text
      const got = await backend.extractKeyPhrasesKeyBERT(text, { structuredCandidates: run.structured_candidates })
      expect(got.map((p) => p.text)).toEqual(run.result.map(([t]) => t))
      got.forEach((p, i) => expect(p.score).toBeCloseTo(run.result[i][1], 4))
    }
    expect(await backend.extractKeyPhrasesKeyBERTBatch(['', 'and the of to', doc])).toEqual([[], [], expect.any(Array)])
    expect(await backend.extractKeyPhrasesKeyBERTBatch([])).toEqual([])
  })
})
