// ONNXEmbeddingService from 'embedding-service/daemon': folder-mcp's ONNX backend contract (its cpu: models),
// on the addon in int8, with the weights read from the ONNX file in the daemon's cache. The model is
// fixtures/reference/tiny-xlmr-onnx (an XLM-RoBERTa export quantized by ONNX Runtime's quantize_dynamic, made
// by scripts/fixtures/make_tiny_xlmr_onnx.py), laid out as the daemon lays out its ONNX cache.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { hubCacheDir, minCosine, readJson, recorder, nextEvent, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { ONNXEmbeddingService } = require(path.join(root, 'daemon.js'))
const esm = await import(path.join(root, 'daemon.mjs'))
const fixture = path.join(reference('tiny-xlmr-onnx'), 'model')
const expected = readJson(path.join(reference('tiny-xlmr-onnx'), 'expected.json'))
const MODEL_ID = 'cpu:xenova-multilingual-e5-small'
const ONNX_ID = 'Xenova/multilingual-e5-small'

const temps = []
function tempDir(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `es-onnx-${label}-`))
  temps.push(dir)
  return dir
}
afterAll(() => temps.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

/** The daemon's ONNX cache with `files` of the export under Xenova/multilingual-e5-small (the ONNX file always). */
function onnxCache(files = ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
  const cache = tempDir('cache')
  const dir = path.join(cache, ONNX_ID)
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true })
  fs.copyFileSync(path.join(fixture, 'onnx/model_quantized.onnx'), path.join(dir, 'onnx/model_quantized.onnx'))
  for (const f of files) fs.copyFileSync(path.join(fixture, f), path.join(dir, f))
  return cache
}

const service = (cacheDirectory, extra = {}) => new ONNXEmbeddingService({ modelId: MODEL_ID, cacheDirectory, threads: 2, ...extra })
const labelled = (content, sourceFile) => ({ content, chunkIndex: 0, metadata: { sourceFile, sourceType: 'text' } })

describe('the daemon\'s ONNX backend, on the addon', () => {
  it('is exported from both entry points', () => {
    expect(esm.ONNXEmbeddingService).toBe(ONNXEmbeddingService)
  })

  it('reads the int8 export from the daemon\'s cache: ONNX Runtime\'s vectors, the texts it sends, its shapes', async () => {
    const cache = onnxCache()
    const svc = service(cache)
    expect(svc.isInitialized()).toBe(false)
    await expect(svc.generateEmbeddingsFromStrings(['x'])).rejects.toMatchObject({ code: 'ERR_NOT_INITIALIZED' })
    await svc.initialize()
    expect(svc.isInitialized()).toBe(true)
    expect(svc.getServiceType()).toBe('onnx')
    expect(svc.getModelSource()).toEqual({ source: path.join(cache, ONNX_ID), kind: 'onnx' })
    expect(svc.status()).toMatchObject({ dtype: 'int8', device: 'cpu', dimensions: 32 })
    // The daemon's catalog has no prefixes for its cpu: models, so its pipeline sends the texts as they are.
    const result = await svc.generateEmbeddingsFromStrings(texts(), 'passage')
    expect(result).toMatchObject({ dimensions: 32, modelUsed: 'E5-Small ONNX (Most Popular)' })
    expect(result.processingTime).toBeGreaterThanOrEqual(0)
    expect(minCosine(result.embeddings, expected.onnxruntime_by_prefix[''])).toBeGreaterThanOrEqual(0.9999)
    expect(minCosine(result.embeddings, expected.f32_by_prefix[''])).toBeGreaterThanOrEqual(0.999)
    const query = await svc.generateEmbeddingsFromStrings(texts(), 'query')
    expect(query.embeddings).toEqual(result.embeddings)
    // Chunks in, { vector, dimensions, metadata } out, as its IEmbeddingService.
    const chunks = texts().slice(0, 3).map((content, i) => ({ content, chunkIndex: i, metadata: { sourceFile: 'a.md' } }))
    const vectors = await svc.generateEmbeddings(chunks)
    expect(vectors.map((v) => v.metadata)).toEqual(chunks.map((c) => c.metadata))
    expect(vectors.map((v) => v.vector)).toEqual(result.embeddings.slice(0, 3))
    expect(vectors[0].dimensions).toBe(32)
    expect(vectors[0]).toMatchObject({ model: MODEL_ID, createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/) })
    const single = await svc.generateQueryEmbedding(texts()[4])
    expect(single).toEqual({ vector: result.embeddings[4], dimensions: 32, model: MODEL_ID, createdAt: expect.any(String) })
    expect((await svc.generateSingleEmbedding(texts()[4])).vector).toEqual(result.embeddings[4])
    expect(svc.calculateSimilarity(single, { vector: result.embeddings[4] })).toBeCloseTo(1, 6)
    expect(await svc.getModelInfo()).toMatchObject({ modelId: MODEL_ID, dimensions: 384, quantization: 'int8' })
    expect(svc.getModelConfig()).toMatchObject({ id: MODEL_ID, huggingfaceId: ONNX_ID, baseModel: 'intfloat/multilingual-e5-small' })
    await svc.dispose()
    expect(svc.isInitialized()).toBe(false)
  })

  it('finds the tokenizer where transformers.js left it when the daemon\'s downloader fetched only the ONNX file', async () => {
    const cache = onnxCache([])
    const transformersCache = tempDir('transformers')
    fs.mkdirSync(path.join(transformersCache, ONNX_ID), { recursive: true })
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      fs.copyFileSync(path.join(fixture, f), path.join(transformersCache, ONNX_ID, f))
    }
    const svc = service(cache, { transformersCacheDirectory: transformersCache })
    await svc.initialize()
    expect(svc.getModelSource()).toEqual({ source: path.join(cache, ONNX_ID), kind: 'onnx' })
    expect(fs.existsSync(path.join(cache, ONNX_ID, 'tokenizer.json'))).toBe(true)
    const { embeddings } = await svc.generateEmbeddingsFromStrings(texts().slice(0, 4), 'passage')
    expect(minCosine(embeddings, expected.onnxruntime_by_prefix[''].slice(0, 4))).toBeGreaterThanOrEqual(0.9999)
    await svc.dispose()
  })

  it('without the export, loads the base model through the hub cache (offline here: a stand-in laid out there)', async () => {
    const hub = tempDir('hub')
    const from = path.join(hubCacheDir(), 'models--sentence-transformers--all-MiniLM-L6-v2')
    fs.cpSync(from, path.join(hub, 'models--intfloat--multilingual-e5-small'), { recursive: true, dereference: true })
    const svc = service(tempDir('empty'), { cacheDir: hub, offline: true })
    await svc.initialize()
    expect(svc.getModelSource()).toEqual({ source: 'intfloat/multilingual-e5-small', kind: 'base' })
    expect(svc.status()).toMatchObject({ dtype: 'int8', dimensions: 384 })
    await svc.dispose()
    const missing = service(tempDir('empty'), { cacheDir: tempDir('nohub'), offline: true })
    await expect(missing.initialize()).rejects.toMatchObject({
      code: 'ERR_MODEL_NOT_FOUND',
      message: expect.stringMatching(/^Failed to initialize ONNX model cpu:xenova-multilingual-e5-small: .*intfloat\/multilingual-e5-small/),
    })
    expect(missing.isInitialized()).toBe(false)
  })

  it('refuses what the daemon\'s service refuses, with codes', async () => {
    expect(() => new ONNXEmbeddingService({})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
    await expect(new ONNXEmbeddingService({ modelId: 'cpu:nope', cacheDirectory: tempDir('x') }).initialize()).rejects.toMatchObject({
      code: 'ERR_MODEL_NOT_FOUND',
      message: 'Model cpu:nope not found in curated catalog',
    })
    const svc = service(onnxCache())
    await svc.initialize()
    await expect(svc.generateEmbeddingsFromStrings(['x'], 'document')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.generateEmbeddingsFromStrings(['x'], 'query', 'now')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.generateEmbeddings('x')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.generateEmbeddingsFromStrings('x')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.generateEmbeddingsFromStrings([1])).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(() => svc.calculateSimilarity([1, 2], [1])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
    expect(await svc.testEmbedding()).toBe(false) // the catalog says 384 dimensions; the stand-in has 32
    await svc.dispose()
  })
})

describe('one model, one queue: what the worker pool did not give', () => {
  it('instances for the same model share one service (one load), closed by the last dispose', async () => {
    const cache = onnxCache()
    const { events, onProgress } = recorder()
    const a = service(cache, { onProgress }) // the first instance's options make the shared service
    const b = service(cache)
    // Two callers of one instance's initialize() take the model once for it.
    await Promise.all([a.initialize(), a.initialize(), b.initialize()])
    expect(a.status().loadCount).toBe(1)
    expect(b.status().loadCount).toBe(1)
    await a.dispose()
    expect((await b.generateQueryEmbedding('still here')).dimensions).toBe(32)
    expect(events.map((e) => e.status)).not.toContain('unloading_model')
    await b.dispose()
    // The last dispose closed it (closing unloads the model).
    expect(events.map((e) => e.status)).toContain('unloading_model')
    const c = service(cache)
    await c.initialize()
    expect(c.status().loadCount).toBe(1) // a fresh service: the last one was closed
    await c.dispose()
  })

  it('a search the daemon labels, or a query, comes back before a running index job on another instance', async () => {
    const cache = onnxCache()
    const indexer = service(cache) // the orchestrator's own instance
    const searcher = service(cache) // the registry's singleton, which the REST server uses
    await Promise.all([indexer.initialize(), searcher.initialize()])
    // The orchestrator's indexing: a file's chunks, labelled with its path.
    const many = Array.from({ length: 3000 }, (_, i) => labelled(`${texts()[i % 32]} ${i} ${'more text '.repeat(10)}`, '/docs/a.md'))
    const order = []
    const indexing = indexer.generateEmbeddings(many).then(() => order.push('index'))
    // Its REST search through the ONNXModelBridge: one text, 'passage'; and labelled chunks; and a query.
    const bridge = searcher.generateEmbeddingsFromStrings(['where is the config?'], 'passage').then(() => order.push('bridge'))
    const search = searcher.generateEmbeddings([labelled('where is the config?', 'search-query')]).then(() => order.push('search'))
    const query = searcher.generateQueryEmbedding('how do I install it?').then(() => order.push('query'))
    await Promise.all([indexing, bridge, search, query])
    expect(order.indexOf('index')).toBe(3)
    // Bulk work through the bridge's entry can say so.
    const bulk = searcher.generateEmbeddingsFromStrings(many.map((c) => c.content), 'passage', 'index').then(() => order.push('bulk'))
    const late = searcher.generateEmbeddingsFromStrings(['where is the config?'], 'passage').then(() => order.push('late'))
    await Promise.all([bulk, late])
    expect(order.slice(4)).toEqual(['late', 'bulk'])
    await Promise.all([indexer.dispose(), searcher.dispose()])
  })

  it('the keep-alive gives the model\'s memory back after idle, and the next call brings it back unchanged', async () => {
    const { events, onProgress } = recorder()
    const svc = service(onnxCache(), { keepAliveMs: 0, onProgress })
    await svc.initialize()
    const before = await svc.generateQueryEmbedding(texts()[3])
    // Each event re-checks: the keep-alive's unload is over when the model is out of memory.
    await nextEvent(events, () => svc.status().modelLoaded === false)
    expect(events.map((e) => e.status)).toContain('unloading_model')
    expect(svc.isInitialized()).toBe(true)
    const { loadCount, unloadCount } = svc.status()
    expect(unloadCount).toBe(loadCount)
    const after = await svc.generateQueryEmbedding(texts()[3])
    expect(after.vector).toEqual(before.vector)
    expect(svc.status().loadCount).toBe(loadCount + 1)
    await svc.dispose()
  })
})
