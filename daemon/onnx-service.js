// The daemon's ONNX backend (folder-mcp's `ONNXEmbeddingService`, its `cpu:` models), in process on
// EmbeddingService in int8: the same constructor, methods and return shapes, read from the daemon's own code
// (onnx-embedding-service.ts, its singleton manager, orchestrator, bridge and REST server). No worker threads
// and no onnxruntime: the int8 weights are read from the ONNX file the daemon already downloaded. Types and
// docs: daemon.d.ts.
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { EmbeddingService } = require('../index.js')
const { cpuModelEntry } = require('./curated.js')
const { coded, readGuarded } = require('./errors.js')
const { daemonKeepAliveMs, installingPackageRoot } = require('./keep-alive.js')
const { textTypeOf } = require('./queries.js')
const { cosineSimilarity } = require('./similarity.js')

const TOKENIZER_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json']
const ONNX_FILE = path.join('onnx', 'model_quantized.onnx')

/** The daemon's default ONNX cache (its ONNXDownloader and singleton manager use it). */
function defaultOnnxCache() {
  return path.join(process.env.HOME || os.homedir(), '.cache', 'folder-mcp', 'onnx-models')
}

/**
 * transformers.js' own caches, where the daemon's ONNX worker pool left the export's config.json and
 * tokenizer.json when it last ran (its `pipeline()` downloads them beside the ONNX file there): the
 * @xenova/transformers package folders reachable from the daemon.
 */
function transformersJsCaches(given) {
  const roots = [installingPackageRoot(), process.cwd()].filter(Boolean)
  const caches = given ? [given] : []
  for (const root of roots) {
    for (const pkg of ['@xenova/transformers', '@huggingface/transformers']) {
      caches.push(path.join(root, 'node_modules', pkg, '.cache'))
    }
  }
  return [...new Set(caches)]
}

const hasFiles = (dir, files) => files.every((f) => fs.existsSync(path.join(dir, f)))

/**
 * Where the model's files are, in the order a user who already indexed with the ONNX backend has them:
 * 1. `<cache>/<huggingfaceId>/` with the ONNX file, config.json and tokenizer.json: loaded as it is;
 * 2. the ONNX file there (the daemon's ONNXDownloader fetches only it) and the tokenizer files in
 *    transformers.js' cache (its worker pool fetched them): those are copied beside the ONNX file, once;
 * 3. otherwise the safetensors model the export was made from (`baseModel`), through the hub cache, downloaded
 *    if missing. That is the larger download, and its vectors are the f32 model's, not the export's.
 */
function locateModel(entry, cacheDirectory, transformersCacheDirectory) {
  const folder = path.join(cacheDirectory, entry.huggingfaceId)
  if (hasFiles(folder, [ONNX_FILE, 'config.json', 'tokenizer.json'])) return { source: folder, kind: 'onnx' }
  if (fs.existsSync(path.join(folder, ONNX_FILE))) {
    for (const cache of transformersJsCaches(transformersCacheDirectory)) {
      const dir = path.join(cache, entry.huggingfaceId)
      if (!hasFiles(dir, ['config.json', 'tokenizer.json'])) continue
      try {
        for (const file of TOKENIZER_FILES) {
          const from = path.join(dir, file)
          if (fs.existsSync(from) && !fs.existsSync(path.join(folder, file))) fs.copyFileSync(from, path.join(folder, file))
        }
        return { source: folder, kind: 'onnx' }
      } catch {
        break // a cache it cannot write to: the base model, below
      }
    }
  }
  return { source: entry.baseModel, kind: 'base' }
}

// One EmbeddingService per model, shared by every instance the daemon creates for it (its singleton manager
// keeps one; its orchestrator makes its own for each indexing run): one copy of the weights, and one queue, so
// that a search from the REST server goes ahead of the orchestrator's indexing. Closed with the last dispose().
const shared = new Map()

function acquire(key, create) {
  let entry = shared.get(key)
  if (!entry) {
    entry = { svc: create(), users: 0 }
    shared.set(key, entry)
  }
  entry.users++
  return entry.svc
}

async function release(key) {
  const entry = shared.get(key)
  if (!entry || --entry.users > 0) return
  shared.delete(key)
  await entry.svc.close()
}

class ONNXEmbeddingService {
  #options
  #entry = null
  #key = null
  #svc = null
  #location = null
  #initializing = null

  /**
   * @param {object} options the daemon's ONNXEmbeddingOptions: `modelId` (a curated `cpu:` id), `cacheDirectory`
   *   (default ~/.cache/folder-mcp/onnx-models), and `maxSequenceLength`, `batchSize`, `useWorkerThreads`,
   *   `workerPoolSize`, `numThreads`, which are accepted for its signature: one worker thread in Rust serves
   *   every caller, batched by tokens. Also `transformersCacheDirectory` (where transformers.js keeps its cache,
   *   if not under the daemon's node_modules) and the EmbeddingService options `threads`, `dtype` (default
   *   'int8'), `keepAliveMs`, `stallWarningMs`, `stallTimeoutMs`, `logger`, `onProgress`, and `cacheDir` and
   *   `offline` for the hub. Instances for the same model share one service: the first one's options make it.
   */
  constructor(options = {}) {
    this.#options = readGuarded('options', () => ({ ...(options ?? {}) }))
    if (typeof this.#options.modelId !== 'string' || !this.#options.modelId) {
      throw coded('ERR_INVALID_INPUT', `ONNXEmbeddingService needs a modelId, got ${JSON.stringify(this.#options.modelId)}`)
    }
  }

  /** Finds the model's files and loads it; rejects as the daemon's does, `Failed to initialize ONNX model ...`. */
  async initialize() {
    if (this.#svc) return
    // One acquisition per instance, however many callers wait on it.
    this.#initializing ??= this.#initialize().finally(() => (this.#initializing = null))
    return this.#initializing
  }

  async #initialize() {
    const { modelId } = this.#options
    const entry = cpuModelEntry(modelId)
    if (!entry) throw coded('ERR_MODEL_NOT_FOUND', `Model ${modelId} not found in curated catalog`)
    const cacheDirectory = this.#options.cacheDirectory || defaultOnnxCache()
    const location = locateModel(entry, cacheDirectory, this.#options.transformersCacheDirectory)
    const options = {
      threads: this.#options.threads,
      dtype: this.#options.dtype ?? 'int8',
      keepAliveMs: daemonKeepAliveMs(this.#options),
      ...(location.kind === 'base' ? { cacheDir: this.#options.cacheDir, offline: this.#options.offline } : {}),
      stallWarningMs: this.#options.stallWarningMs,
      stallTimeoutMs: this.#options.stallTimeoutMs,
      logger: this.#options.logger,
      onProgress: this.#options.onProgress,
    }
    for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k]
    const key = JSON.stringify([location.source, options.dtype])
    const svc = acquire(key, () => new EmbeddingService({ ...options, model: location.source }))
    try {
      await svc.load()
    } catch (err) {
      await release(key)
      const wrapped = coded(err.code ?? 'ERR_MODEL_LOAD', `Failed to initialize ONNX model ${modelId}: ${err.message}`)
      wrapped.cause = err
      throw wrapped
    }
    this.#entry = entry
    this.#key = key
    this.#svc = svc
    this.#location = location
  }

  #service() {
    if (!this.#svc) throw coded('ERR_NOT_INITIALIZED', 'Model not initialized. Call initialize() first.')
    return this.#svc
  }

  // The daemon's prefixes: its catalog entry's `requirements.prefixes` (none for its cpu: models at d01bb52).
  #prefix(textType) {
    return this.#entry.requirements?.prefixes?.[textType] || ''
  }

  async #embed(texts, textType, priority) {
    const svc = this.#service()
    const prefix = this.#prefix(textType)
    const input = prefix ? texts.map((t) => prefix + t) : texts
    // Normalised, as its pipeline asks (`normalize: true`), whatever the folder's pooling config says.
    return svc.embed(input, { priority, normalize: true })
  }

  /**
   * Chunks in, `{ vector, dimensions, model, createdAt, metadata }` out (the daemon's EmbeddingVector, with the
   * chunk's metadata as its ONNX service returns it). Searches are queries (the query lane, ahead of indexing):
   * the daemon labels them (`search-query`, `document-discovery-query`), as for its Python backend.
   */
  async generateEmbeddings(chunks) {
    if (!Array.isArray(chunks)) throw coded('ERR_INVALID_INPUT', 'generateEmbeddings needs an array of chunks')
    const { type, texts } = readGuarded('chunks', () => ({
      type: textTypeOf(chunks, undefined),
      texts: chunks.map((c) => (typeof c === 'string' ? c : c.content)),
    }))
    const vectors = await this.#embed(texts, type, type === 'query' ? 'query' : 'index')
    const createdAt = new Date().toISOString()
    return vectors.map((v, i) => ({
      vector: Array.from(v),
      dimensions: v.length,
      model: this.#entry.id,
      createdAt,
      metadata: chunks[i]?.metadata || {},
    }))
  }

  /**
   * Texts in, `{ embeddings, dimensions, modelUsed, processingTime }` out. `textType` ('query' by default, as
   * the daemon's) picks the prefix only. The lane is `priority`, 'query' unless told: in the daemon this is
   * the entry of its ONNXModelBridge, which it uses for searches (REST `search_content` and `find-documents`
   * through its indexing queue's processSemanticSearch, with textType 'passage'), while its indexing calls
   * `generateEmbeddings(chunks)` on the orchestrator's own instance. Bulk work through here: pass 'index'.
   */
  async generateEmbeddingsFromStrings(texts, textType = 'query', priority = 'query') {
    if (!Array.isArray(texts)) throw coded('ERR_INVALID_INPUT', 'generateEmbeddingsFromStrings needs an array of strings')
    if (textType !== 'query' && textType !== 'passage') {
      throw coded('ERR_INVALID_INPUT', `textType must be 'query' or 'passage', got ${JSON.stringify(textType)}`)
    }
    if (priority !== 'query' && priority !== 'index') {
      throw coded('ERR_INVALID_INPUT', `priority must be 'query' or 'index', got ${JSON.stringify(priority)}`)
    }
    const started = Date.now()
    const vectors = await this.#embed(texts, textType, priority)
    return {
      embeddings: vectors.map((v) => Array.from(v)),
      dimensions: this.#svc.dimensions,
      modelUsed: this.#entry.displayName,
      processingTime: Date.now() - started,
    }
  }

  async generateQueryEmbedding(query) {
    const result = await this.generateEmbeddingsFromStrings([query], 'query', 'query')
    return { vector: result.embeddings[0], dimensions: result.dimensions, model: this.#entry.id, createdAt: new Date().toISOString() }
  }

  async generateSingleEmbedding(text) {
    return this.generateQueryEmbedding(text)
  }

  /** Cosine similarity of two vectors (or `{ vector }`s), clamped to [-1, 1]; 0 when either is all zeros. */
  calculateSimilarity(vector1, vector2) {
    return Math.max(-1, Math.min(1, cosineSimilarity(vector1, vector2)))
  }

  async getModelInfo() {
    const entry = this.#entry
    if (!entry) throw coded('ERR_NOT_INITIALIZED', 'Model not initialized')
    return {
      modelId: entry.id,
      displayName: entry.displayName,
      dimensions: entry.dimensions,
      quantization: entry.quantization || 'int8',
      languageCount: entry.languageCount,
      modelSize: entry.modelSizeMB,
    }
  }

  /** The daemon's catalog entry for the model (null before initialize), as its own service returns. */
  getModelConfig() {
    return this.#entry
  }

  isInitialized() {
    return this.#svc !== null
  }

  /** 'onnx': the daemon then takes its cpu: paths (n-gram key phrases, scored with these embeddings). */
  getServiceType() {
    return 'onnx'
  }

  /** Embeds one text and checks its size; false on any failure, as the daemon's. */
  async testEmbedding() {
    try {
      const result = await this.generateEmbeddingsFromStrings(['Hello world'])
      return result.embeddings.length === 1 && result.embeddings[0].length === this.#entry.dimensions && result.dimensions === this.#entry.dimensions
    } catch {
      return false
    }
  }

  /** Where the weights came from: `{ source, kind: 'onnx' | 'base' }` (not in the daemon's contract). */
  getModelSource() {
    return this.#location
  }

  /** The shared service's status (not in the daemon's contract): lanes, residency, progress. */
  status() {
    return this.#svc?.status() ?? null
  }

  /** Lets go of the model; the last instance for it closes the service (its queued work rejects ERR_CLOSED). */
  async dispose() {
    const key = this.#key
    this.#svc = null
    this.#key = null
    this.#entry = null
    if (key) await release(key)
  }
}

module.exports = { ONNXEmbeddingService, locateModel }
