// The daemon adapter (embedding-service/daemon) held to folder-mcp's contract for its PythonEmbeddingService,
// as the daemon's registry, bridge, orchestrator, download manager and semantic extraction call it (read from
// okets/folder-mcp at d01bb52). Real all-MiniLM-L6-v2, the tiny E5-style fixture, and KeyBERT references.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cosine, hubCacheDir, minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { NativeEmbeddingBackend, PythonEmbeddingService, resolveModel, CURATED_MODELS } = require(path.join(root, 'daemon.js'))
const { EmbeddingService } = require(path.join(root, 'index.js'))
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const e5Dir = path.join(reference('tiny-xlmr-mean-prompts'), 'model')
const e5 = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const chunks = (list) => list.map((content, i) => ({ content, chunkIndex: 100 + i }))
// A chunk as the daemon labels it (its TextChunk metadata).
const labelled = (content, sourceFile, sourceType = 'text') => ({
  content, chunkIndex: 0, startPosition: 0, endPosition: content.length,
  metadata: { sourceFile, sourceType, totalChunks: 1, hasOverlap: false },
})

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

  it('a search the daemon labels (its REST search and find-documents) is a query: ahead of a running index job', async () => {
    const many = chunks(Array.from({ length: 400 }, (_, i) => `${texts()[i % 32]} ${i} ${'more text '.repeat(20)}`))
    const order = []
    const indexing = backend.generateEmbeddings(many).then(() => order.push('index'))
    // As src/daemon/rest/server.ts builds it: one chunk, no text type, only its label says "query".
    const search = backend.generateEmbeddings([labelled('where is the config?', 'search-query')]).then(() => order.push('search'))
    await Promise.all([indexing, search])
    expect(order).toEqual(['search', 'index'])
  })

  it('the daemon\'s unload is the model\'s end: health idle, waitForState idle, and it loads again', async () => {
    expect(backend.getModelConfig()).toMatchObject({ model: minilmDir(), timeout: 30000, device: 'cpu', dimensions: 384 })
    await backend.unloadModel()
    expect(backend.config.modelName).toBe('')
    expect(await backend.healthCheck()).toMatchObject({ status: 'idle', model_loaded: false, current_model: null })
    await backend.waitForState('idle', 1000)
    // The registry writes this after its bridge unloads; it must not throw.
    backend.config.modelName = ''
    await backend.loadModel(minilmDir())
    expect((await backend.healthCheck()).model_loaded).toBe(true)
  })

  it('the keep-alive returns the model\'s memory unseen: the daemon still sees it ready, the next call reloads', async () => {
    const events = []
    let wake = () => {}
    const b = new NativeEmbeddingBackend({
      threads: 1,
      testConfig: { keepAliveSeconds: 0 },
      onProgress: (e) => {
        events.push(e.status)
        if (e.status === 'idle') wake()
      },
    })
    // Resolves once the model is out of memory; each 'idle' event (the keep-alive's unload) re-checks.
    const unloaded = async () => {
      while ((await b.healthCheck()).model_resident) await new Promise((resolve) => (wake = resolve))
    }
    await b.initialize()
    await b.loadModel(minilmDir())
    const before = await b.generateSingleEmbedding(texts()[2])
    await unloaded()
    expect(events).toContain('unloading_model')
    const { loadCount, unloadCount } = b.getServiceStats()
    expect(unloadCount).toBe(loadCount)
    // What the bridge's load() and verifyLoaded() read: a usable model, nothing to poll for.
    expect(await b.healthCheck()).toMatchObject({
      status: 'healthy', state: 'ready', model_loaded: true, model_resident: false, keep_alive_seconds: 0,
      current_model: minilmDir(), gpu_available: false,
    })
    expect(await b.getStatus()).toEqual({ state: 'ready', model: minilmDir(), progress: 100 })
    await b.waitForState('ready', 1)
    expect(b.getModelConfig()).toMatchObject({ device: 'cpu', dtype: 'f32', dimensions: 384 })
    const after = await b.generateSingleEmbedding(texts()[2])
    expect(after.vector).toEqual(before.vector)
    expect(cosine(after.vector, minilm.embeddings[2])).toBeGreaterThanOrEqual(0.99999)
    expect(b.getServiceStats().loadCount).toBe(loadCount + 1)
    await b.shutdown()
  })

  it('keep-alive as the Python service reads it: 60 min, system-configuration.json, keepAliveMinutes, env, testConfig', async () => {
    const seconds = async (config) => (await new NativeEmbeddingBackend(config).healthCheck()).keep_alive_seconds
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daemon-system-config-'))
    const systemConfigPath = path.join(dir, 'system-configuration.json')
    fs.writeFileSync(systemConfigPath, JSON.stringify({ embeddings: { python: { processManagement: { keepAliveMinutes: 5 } } } }))
    const saved = process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
    try {
      delete process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
      expect(await seconds({})).toBe(3600)
      expect(await seconds({ systemConfigPath })).toBe(300)
      expect(await seconds({ systemConfigPath: path.join(dir, 'none.json') })).toBe(3600)
      expect(await seconds({ systemConfigPath, keepAliveMinutes: 2 })).toBe(120)
      process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS = '7'
      expect(await seconds({ systemConfigPath })).toBe(7)
      expect(await seconds({ systemConfigPath, testConfig: { keepAliveSeconds: 1 } })).toBe(1)
      // This package's own option wins over all of it; -1 is never.
      expect(await seconds({ testConfig: { keepAliveSeconds: 1 }, keepAliveMs: -1 })).toBe(-1)
      expect(() => new NativeEmbeddingBackend({ keepAliveMinutes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
      expect(() => new NativeEmbeddingBackend({ testConfig: { keepAliveSeconds: '1' } })).toThrow(/testConfig.keepAliveSeconds/)
    } finally {
      if (saved === undefined) delete process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
      else process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS = saved
      fs.rmSync(dir, { recursive: true, force: true })
    }
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

  it("dtype 'int8' passes through to the model: within 1% of sentence-transformers, and the config says int8", async () => {
    const b = new PythonEmbeddingService({ modelName: minilmDir(), dtype: 'int8', threads: 2 })
    await b.initialize()
    const got = await b.generateEmbeddings(chunks(texts()))
    expect(minCosine(got.map((v) => v.vector), minilm.embeddings)).toBeGreaterThanOrEqual(0.99)
    expect(b.getModelConfig().dtype).toBe('int8')
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
    // The daemon's searches, as its code labels them, with no text type: queries.
    for (const chunk of [
      labelled(texts()[5], 'search-query'), // REST search_content
      labelled(texts()[5], 'document-discovery-query'), // REST find-documents
      labelled(texts()[5], 'query', 'query'), // its Python service's generateQueryEmbedding
    ]) {
      const [v] = await b.generateEmbeddings([chunk])
      expect(cosine(v.vector, e5.embeddings_by_prompt.query[5])).toBeGreaterThanOrEqual(0.99999)
    }
    // Its IEmbeddingModel's `immediate` flag, if a bridge passes it on.
    const [flagged] = await b.generateEmbeddings([labelled(texts()[5], 'direct')], true)
    expect(cosine(flagged.vector, e5.embeddings_by_prompt.query[5])).toBeGreaterThanOrEqual(0.99999)
    // Everything else is a passage: a file's chunks, key-phrase candidates, a mix, an explicit 'passage'.
    for (const [list, type] of [
      [[labelled(texts()[5], '/docs/notes.md', 'md')], undefined],
      [[labelled(texts()[5], 'ngram-extraction')], undefined],
      [[labelled(texts()[5], 'direct')], false],
      [[labelled(texts()[5], 'search-query'), labelled(texts()[6], '/docs/notes.md', 'md')], undefined],
      [[labelled(texts()[5], 'search-query')], 'passage'],
    ]) {
      const [v] = await b.generateEmbeddings(list, type)
      expect(cosine(v.vector, e5.embeddings_by_prompt.passage[5])).toBeGreaterThanOrEqual(0.99999)
    }
    await b.shutdown()

    const plain = new NativeEmbeddingBackend({ threads: 1 }, { requiresPrefix: false })
    await plain.initialize()
    await plain.loadModel(e5Dir)
    const raw = await plain.generateEmbeddings(chunks(texts()))
    expect(minCosine(raw.map((v) => v.vector), e5.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await plain.shutdown()
  })

  it('a curated E5 model loaded by its hub id alone (as the registry does) gets E5 prefixes; the next model not', async () => {
    // all-MiniLM-L6-v2's files under intfloat/multilingual-e5-large: a model folder that declares no prompts,
    // so only the daemon's registry entry (requiresPrefix) can ask for "query: ".
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'daemon-e5-standin-'))
    fs.cpSync(path.join(hubCacheDir(), 'models--sentence-transformers--all-MiniLM-L6-v2'), path.join(cacheDir, 'models--intfloat--multilingual-e5-large'), { recursive: true, dereference: true })
    const plain = new EmbeddingService({ model: minilmDir(), threads: 1 })
    const b = new NativeEmbeddingBackend({ threads: 1, cacheDir, offline: true })
    try {
      await b.initialize()
      await b.loadModel('intfloat/multilingual-e5-large')
      expect(b.getModelConfig().requiresPrefix).toBe(true)
      const [want] = await plain.embed(['query: ' + texts()[4]])
      const [search] = await b.generateEmbeddings([labelled(texts()[4], 'search-query')])
      expect(cosine(search.vector, want)).toBeGreaterThanOrEqual(0.99999)
      await b.loadModel(minilmDir())
      expect(b.getModelConfig().requiresPrefix).toBe(null)
      const [raw] = await b.generateEmbeddings([labelled(texts()[4], 'search-query')])
      expect(cosine(raw.vector, minilm.embeddings[4])).toBeGreaterThanOrEqual(0.99999)
    } finally {
      await b.shutdown()
      await plain.close()
      fs.rmSync(cacheDir, { recursive: true, force: true })
    }
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
