// The indexing daemon's embedding backend (folder-mcp's `PythonEmbeddingService`), in process, on top of
// EmbeddingService: the same constructor, methods, argument and return shapes and lifecycle, read from the
// daemon's own code (its registry, bridge, orchestrator, download manager and integration test). Import it from
// 'embedding-service/daemon'. Types and docs: daemon.d.ts.
'use strict'

const { EmbeddingService } = require('../index.js')
const { CURATED, resolveModel } = require('./curated.js')
const { coded, readGuarded } = require('./errors.js')
const { daemonKeepAliveMs } = require('./keep-alive.js')
const { textTypeOf } = require('./queries.js')
const { cosineSimilarity } = require('./similarity.js')

// The options of EmbeddingService that the daemon's config may carry through to it.
const SERVICE_OPTIONS = [
  'cacheDir', 'revision', 'offline', 'downloadTimeoutMs', 'device', 'dtype', 'threads', 'maxBatchSize', 'maxBatchTokens',
  'keepAliveMs', 'stallWarningMs', 'stallTimeoutMs', 'logger', 'testHooks', 'endpoint', 'apiKey', 'remoteConcurrency',
]

function toChunk(text) {
  return {
    content: text,
    chunkIndex: 0,
    startPosition: 0,
    endPosition: text.length,
    tokenCount: Math.ceil(text.length / 4),
    metadata: { sourceFile: 'single-text', sourceType: 'text', totalChunks: 1, hasOverlap: false },
  }
}

// The daemon's weighting of key phrases that match structured elements of the document (its semantic handler).
const STRUCTURAL_WEIGHTS = [['metadata', 1.0], ['headers', 0.9], ['entities', 0.8], ['emphasized', 0.7], ['captions', 0.6]]
const STRUCTURED_KINDS = STRUCTURAL_WEIGHTS.map(([key]) => key)

function structuralWeight(phrase, candidates) {
  const p = phrase.toLowerCase()
  for (const [key, weight] of STRUCTURAL_WEIGHTS) {
    for (const item of candidates[key] ?? []) {
      const s = String(item).toLowerCase()
      if (s.includes(p) || p.includes(s)) return weight
    }
  }
  return 0.4
}

class NativeEmbeddingBackend {
  /** The daemon's config object; it writes `config.modelName = ''` when it unloads through its registry. */
  config
  #serviceOptions
  #svc = null
  #svcModel = null
  #requiresPrefix = null // for the model in use: its registry entry's word, else the constructor's
  #prefixOverride = null
  #initialized = false
  #transition = null // 'loading' | 'unloading' while the adapter itself moves the model
  #loadError = null
  #placement = null // { device, dtype } of the selected model, kept while the keep-alive has it unloaded
  #loadQueue = Promise.resolve()
  #waiters = new Set()
  #lastHealth = null
  #downloadCallback = null
  #stats = { requests: 0, texts: 0, tokens: 0, errors: 0, busyMs: 0 }
  #startedAt = Date.now()

  /**
   * @param {object} [config] the daemon's config: `modelName` (default '': no model until `loadModel`),
   *   `timeout`, `maxRetries`, ... and any EmbeddingService option (`device`, `cacheDir`, `keepAliveMs`, ...).
   * @param {object} [modelConfig] the daemon's model capabilities (`requiresPrefix`).
   */
  constructor(config = {}, modelConfig = undefined) {
    const given = readGuarded('config', () =>
      Object.fromEntries(Object.entries(config ?? {}).filter(([, v]) => v !== undefined && v !== null)),
    )
    const requiresPrefix = readGuarded('modelConfig', () => modelConfig?.requiresPrefix)
    this.config = {
      modelName: given.modelName ?? given.model ?? '',
      timeout: 30000,
      maxRetries: 3,
      autoRestart: true,
      maxRestartAttempts: 5,
      restartDelay: 2000,
      ...given,
    }
    delete this.config.model
    this.#serviceOptions = {}
    for (const key of SERVICE_OPTIONS) if (given[key] !== undefined) this.#serviceOptions[key] = given[key]
    this.#serviceOptions.keepAliveMs = daemonKeepAliveMs(given)
    this.#userProgress = given.onProgress
    if (typeof requiresPrefix === 'boolean') this.#prefixOverride = requiresPrefix
  }

  #userProgress

  // ---- state -------------------------------------------------------------------------------------------

  /**
   * 'uninitialized' | 'idle' | 'loading' | 'ready' | 'unloading' | 'error': the daemon's view. A selected model
   * is 'ready' even while the keep-alive has returned its memory: the next request reloads it, so the daemon's
   * bridge has nothing to wait for (the Python service's health check says the same after its idle unload).
   */
  #state() {
    if (!this.#initialized) return 'uninitialized'
    if (this.#transition) return this.#transition
    if (this.#loadError) return 'error'
    return this.#svc ? 'ready' : 'idle'
  }

  #notify() {
    const state = this.#state()
    for (const waiter of [...this.#waiters]) waiter(state)
  }

  #setTransition(t) {
    this.#transition = t
    this.#notify()
  }

  // ---- lifecycle ---------------------------------------------------------------------------------------

  async initialize() {
    if (this.#initialized) return
    this.#initialized = true
    this.#notify()
    if (this.config.modelName) {
      try {
        await this.#switchTo(this.config.modelName, null)
      } catch (err) {
        this.#initialized = false
        const wrapped = coded(err.code ?? 'ERR_INTERNAL', `Failed to initialize embedding service: ${err.message}`)
        wrapped.cause = err
        throw wrapped
      }
    }
  }

  isInitialized() {
    return this.#initialized
  }

  /**
   * Loads `modelName` (a hub id, a curated `gpu:` id, or a bare sentence-transformers name); `modelId` is the
   * daemon's curated id, whose registry entry decides E5 prefixes. Switching waits for the current model's work.
   */
  async loadModel(modelName, modelId = undefined) {
    if (!this.#initialized) throw coded('ERR_NOT_INITIALIZED', 'Embedding service not initialized: call initialize() first')
    if (typeof modelName !== 'string' || !modelName.trim()) {
      throw coded('ERR_INVALID_INPUT', `loadModel needs a model name, got ${JSON.stringify(modelName)}`)
    }
    await this.#switchTo(modelName, modelId)
  }

  // Loads and unloads are serialised, so callers asking at once are served one after the other.
  #serial(fn) {
    const run = this.#loadQueue.then(fn)
    this.#loadQueue = run.catch(() => {})
    return run
  }

  #switchTo(modelName, modelId) {
    return this.#serial(() => this.#doSwitch(modelName, modelId))
  }

  async #doSwitch(modelName, modelId) {
    const { source, curated } = resolveModel(modelName)
    // E5 prefixes for this model: the registry entry of `modelId`, else the constructor's modelConfig, else the
    // curated entry of the name (the registry loads by hub id alone), else what the model folder declares.
    const entry = (modelId && CURATED.find((m) => m.id === modelId)) || null
    this.#requiresPrefix = entry?.requiresPrefix ?? this.#prefixOverride ?? curated?.requiresPrefix ?? null
    if (this.#svc && this.#svcModel === modelName && !this.#loadError) {
      this.config.modelName = modelName
      if (!this.#svc.status().modelLoaded) await this.#load() // asked to load: bring it back now
      return
    }
    if (this.#svc) await this.#closeService()
    this.#loadError = null
    this.#svc = new EmbeddingService({
      ...this.#serviceOptions,
      model: source,
      onProgress: (event) => {
        this.#notify()
        if (this.#userProgress) this.#userProgress(event)
      },
    })
    this.#svcModel = modelName
    await this.#load()
    this.config.modelName = modelName
  }

  async #load() {
    this.#setTransition('loading')
    try {
      await this.#svc.load()
      const { device, dtype } = this.#svc.status()
      this.#placement = { device, dtype }
      this.#loadError = null
    } catch (err) {
      this.#loadError = err
      throw err
    } finally {
      this.#setTransition(null)
    }
  }

  async #closeService() {
    const svc = this.#svc
    this.#setTransition('unloading')
    try {
      await svc.unload()
      await svc.close()
    } finally {
      this.#svc = null
      this.#svcModel = null
      this.#placement = null
      this.#setTransition(null)
    }
  }

  /** Frees the model once its queued and running work is done; the adapter is then idle (no model). */
  requestModelUnload() {
    return this.#serial(async () => {
      if (!this.#svc) return
      await this.#closeService()
      this.#loadError = null
      this.#notify()
    })
  }

  async unloadModel() {
    await this.requestModelUnload()
    this.config.modelName = ''
  }

  /** Resolves when the state is `targetState`; rejects when it becomes 'error' or after `timeoutMs`. */
  waitForState(targetState, timeoutMs = 30000) {
    return new Promise((resolve, reject) => {
      const check = (state) => {
        if (state === targetState) finish(resolve)
        else if (state === 'error') {
          finish(() => reject(coded('ERR_MODEL_LOAD', `Embedding service entered error state: ${this.#loadError?.message ?? 'unknown'}`)))
        }
      }
      const finish = (fn) => {
        this.#waiters.delete(check)
        clearTimeout(timer)
        fn()
      }
      const timer = setTimeout(() => finish(() => reject(coded('ERR_TIMEOUT', `Timeout waiting for state ${targetState}`))), timeoutMs)
      this.#waiters.add(check)
      check(this.#state())
    })
  }

  async getStatus() {
    const state = this.#state()
    if (state === 'uninitialized') return { state, error: 'Embedding service not initialized' }
    return {
      state,
      model: this.#svc ? this.config.modelName || null : null,
      progress: state === 'ready' ? 100 : 0,
      ...(state === 'error' ? { error: this.#loadError?.message } : {}),
    }
  }

  /** Closes the service; queued work rejects with ERR_CLOSED. */
  async shutdown(timeoutSeconds = 30) {
    const svc = this.#svc
    this.#svc = null
    this.#svcModel = null
    this.#placement = null
    this.#loadError = null
    this.#initialized = false
    this.#notify()
    if (!svc) return
    let timer
    await Promise.race([
      svc.close(),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutSeconds * 1000))),
    ])
    clearTimeout(timer)
  }

  // ---- embeddings --------------------------------------------------------------------------------------

  #service() {
    if (!this.#svc) {
      throw coded('ERR_NO_MODEL', 'No model loaded: call loadModel(name) first (the daemon loads one per folder)')
    }
    return this.#svc
  }

  // E5 prefixes as the daemon's registry says: 'query: ' for queries, 'passage: ' for the rest.
  #prompt(textType) {
    if (textType !== 'query' && textType !== 'passage') {
      throw coded('ERR_INVALID_INPUT', `textType must be 'query' or 'passage', got ${JSON.stringify(textType)}`)
    }
    const prompts = this.#svc.status().prompts
    const wanted = this.#requiresPrefix ?? prompts.length > 0
    if (!wanted) return { prompt: undefined, prefix: '' }
    if (prompts.includes(textType)) return { prompt: textType, prefix: '' }
    if (textType === 'passage' && prompts.includes('document')) return { prompt: 'document', prefix: '' }
    // The registry asks for a prefix the model folder does not declare: add E5's literally.
    return { prompt: undefined, prefix: this.#requiresPrefix ? `${textType}: ` : '' }
  }

  async #embed(texts, textType, priority) {
    if (!this.#initialized) await this.initialize()
    await this.#loadQueue
    const svc = this.#service()
    const { prompt, prefix } = this.#prompt(textType)
    const started = Date.now()
    this.#stats.requests++
    try {
      const input = prefix ? texts.map((t) => prefix + t) : texts
      const result = await svc.embedDetailed(input, { prompt, priority })
      this.#stats.texts += texts.length
      this.#stats.tokens += result.tokenCounts.reduce((a, b) => a + b, 0)
      this.#stats.busyMs += Date.now() - started
      return result
    } catch (err) {
      this.#stats.errors++
      throw err
    }
  }

  #vector(result, i, chunkId) {
    const createdAt = new Date().toISOString()
    const model = this.config.modelName
    return {
      vector: Array.from(result.vectors[i]),
      dimensions: result.vectors[i].length,
      model,
      createdAt,
      chunkId,
      metadata: { generatedAt: createdAt, modelVersion: model, tokensUsed: result.tokenCounts[i], confidence: 1 },
    }
  }

  /**
   * 'query' runs ahead of index work with the query prompt; 'passage' is index work. Without a text type, the
   * chunks' labels decide: the daemon's search paths mark their query chunks (QUERY_SOURCE_FILES), so its
   * searches are queries with no change to its code; `true`, its IEmbeddingModel's `immediate` flag, is a query.
   */
  async generateEmbeddings(chunks, textType = undefined) {
    if (!Array.isArray(chunks)) throw coded('ERR_INVALID_INPUT', 'generateEmbeddings needs an array of chunks')
    const { type, contents } = readGuarded('chunks', () => ({ type: textTypeOf(chunks, textType), contents: chunks.map((c) => c.content) }))
    const result = await this.#embed(contents, type, type === 'query' ? 'query' : 'index')
    return chunks.map((c, i) => this.#vector(result, i, `chunk_${i}_${c.chunkIndex}`))
  }

  async generateSingleEmbedding(text, textType = 'query') {
    const [vector] = await this.generateEmbeddings([toChunk(text)], textType)
    return vector
  }

  generateQueryEmbedding(query) {
    return this.generateSingleEmbedding(query, 'query')
  }

  /**
   * Index work: one request for all chunks (the service batches by its token budget and reports progress);
   * `batchSize` is accepted for the daemon's signature and checked, not needed.
   */
  async processBatch(chunks, batchSize = 32, textType = 'passage') {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw coded('ERR_INVALID_INPUT', `batchSize must be a whole number of at least 1, got ${batchSize}`)
    }
    const started = Date.now()
    const contents = readGuarded('chunks', () => chunks.map((c) => c.content))
    const result = await this.#embed(contents, textType, 'index')
    const processingTime = Date.now() - started
    return chunks.map((chunk, i) => ({
      chunk,
      embedding: this.#vector(result, i, `chunk_${i}_${chunk.chunkIndex}`),
      processingTime,
      success: true,
    }))
  }

  /** Cosine similarity of two EmbeddingVectors (or plain arrays); 0 when either is all zeros. */
  calculateSimilarity(a, b) {
    return cosineSimilarity(a, b)
  }

  /** Milliseconds for `chunkCount` chunks: measured in this process, else the daemon's 50 ms per chunk. */
  estimateProcessingTime(chunkCount) {
    const { texts, busyMs } = this.#stats
    const perChunk = texts > 0 && busyMs > 0 ? busyMs / texts : 50
    return chunkCount * perChunk
  }

  // ---- key phrases (KeyBERT) ---------------------------------------------------------------------------

  /** True while a model is selected: key phrases are computed with it. */
  async isKeyBERTAvailable() {
    return this.#initialized && this.#svc !== null && !this.#loadError
  }

  async extractKeyPhrasesKeyBERT(text, options = {}) {
    const [phrases] = await this.extractKeyPhrasesKeyBERTBatch([text], options)
    return phrases
  }

  /** KeyBERT with the daemon's arguments, batched in one index-priority request. */
  async extractKeyPhrasesKeyBERTBatch(texts, options = {}) {
    if (!this.#initialized) throw coded('ERR_NOT_INITIALIZED', 'Embedding service not initialized: call initialize() first')
    if (!Array.isArray(texts)) throw coded('ERR_INVALID_INPUT', 'texts must be an array of strings')
    if (texts.length === 0) return []
    // Every option read once, here (the daemon's SemanticExtractionOptions).
    const o = readGuarded('options', () => {
      const given = options ?? {}
      const structuredCandidates = given.structuredCandidates
      return {
        maxKeyPhrases: given.maxKeyPhrases,
        ngramRange: given.ngramRange,
        useMmr: given.useMmr,
        diversity: given.diversity,
        structured: structuredCandidates
          ? Object.fromEntries(STRUCTURED_KINDS.map((k) => [k, Array.from(structuredCandidates[k] ?? [], (x) => String(x))]))
          : undefined,
      }
    })
    await this.#loadQueue
    const svc = this.#service()
    const topN = o.maxKeyPhrases || 10
    const structured = o.structured
    const result = await svc.extractKeyphrases(texts, {
      ngramRange: o.ngramRange || [1, 3],
      useMmr: o.useMmr !== false,
      diversity: o.diversity || 0.5,
      topN: structured ? Math.min(topN * 2, 50) : topN,
      stopWords: 'english',
      priority: 'index',
    })
    return result.map((phrases) => {
      if (!structured) return phrases
      const weighted = phrases.map(({ text, score }) => {
        const w = structuralWeight(text, structured)
        return { text, score: w > 0.4 ? w * 0.3 + score * 0.7 : score }
      })
      return weighted.sort((x, y) => y.score - x.score).slice(0, topN)
    })
  }

  // ---- health and information --------------------------------------------------------------------------

  /**
   * 'onnx' routes the daemon to its n-gram path without KeyBERT; this backend does KeyBERT, so 'gpu', or
   * 'remote' when an `endpoint` sends the work to an embedding server (KeyBERT then runs through it too).
   */
  getServiceType() {
    return this.#serviceOptions.endpoint ? 'remote' : 'gpu'
  }

  getModelConfig() {
    const s = this.#svc?.status()
    return {
      model: this.config.modelName,
      timeout: this.config.timeout,
      maxRetries: this.config.maxRetries,
      source: this.#svc ? resolveModel(this.#svcModel).source : null,
      device: s?.device ?? this.#placement?.device ?? null,
      dtype: s?.dtype ?? this.#placement?.dtype ?? null,
      dimensions: s?.dimensions ?? null,
      prompts: s?.prompts ?? [],
      requiresPrefix: this.#requiresPrefix,
    }
  }

  /** The model's embedding size (null before a model has loaded). */
  getModelDimensions() {
    return this.#svc?.dimensions ?? null
  }

  /**
   * Never throws; `status` is 'healthy' and `model_loaded` true while a model is selected and usable, even when
   * the keep-alive has returned its memory (`model_resident` false): the next request reloads it.
   */
  async healthCheck() {
    let health
    try {
      const state = this.#state()
      const s = this.#svc?.status()
      const device = s?.device ?? this.#placement?.device ?? null
      health = {
        status: state === 'ready' ? 'healthy' : state === 'uninitialized' || state === 'error' ? 'unhealthy' : state,
        state,
        loading_progress: state === 'ready' ? 100 : 0,
        current_model: this.#svc ? this.config.modelName || null : null,
        model_loaded: state === 'ready',
        model_resident: s?.modelLoaded ?? false,
        keep_alive_seconds: this.#keepAliveSeconds(),
        gpu_available: device !== null && device !== 'cpu',
        memory_usage_mb: process.memoryUsage().rss / 1048576,
        uptime_seconds: (Date.now() - this.#startedAt) / 1000,
        queue_size: s ? s.queued.query + s.queued.index + s.activeRequests : 0,
      }
    } catch (err) {
      health = {
        status: 'unhealthy', state: 'error', model_loaded: false, gpu_available: false, memory_usage_mb: 0,
        uptime_seconds: 0, queue_size: 0, error: String(err),
      }
    }
    this.#lastHealth = health
    return health
  }

  // -1 when the model is never unloaded for idleness.
  #keepAliveSeconds() {
    const ms = this.#serviceOptions.keepAliveMs
    return ms < 0 ? -1 : ms / 1000
  }

  getLastHealthCheck() {
    return this.#lastHealth
  }

  /** `processId` is this process: the model runs in it, so it never restarts. */
  getServiceStats() {
    const s = this.#svc?.status()
    const { requests, texts, tokens, errors, busyMs } = this.#stats
    return {
      initialized: this.#initialized,
      restartAttempts: 0,
      lastRestartTime: 0,
      processId: process.pid,
      lastHealthCheck: this.#lastHealth,
      requests,
      texts,
      tokens,
      errors,
      textsPerSecond: busyMs ? (texts * 1000) / busyMs : null,
      loadCount: s?.loadCount ?? 0,
      unloadCount: s?.unloadCount ?? 0,
    }
  }

  // ---- model files -------------------------------------------------------------------------------------

  #location() {
    return { cacheDir: this.#serviceOptions.cacheDir, revision: this.#serviceOptions.revision }
  }

  /** Whether the model's files are in the hub cache (or the folder exists); false for names it cannot map. */
  async isModelCached(modelName = this.config.modelName) {
    try {
      return EmbeddingService.isModelCached(resolveModel(modelName).source, this.#location())
    } catch {
      return false
    }
  }

  /** `callback(percent)`: 0 to 100, from the bytes of the model's weights (the files before them count 5%). */
  setDownloadProgressCallback(callback) {
    this.#downloadCallback = typeof callback === 'function' ? callback : null
  }

  /**
   * Downloads one of the daemon's curated models (or one in `config.supportedModels`); never rejects: the
   * result says `success` and, on failure, `error` (`Model X not in supported list` for others).
   */
  async downloadModel(modelName) {
    let resolved
    try {
      resolved = resolveModel(modelName)
    } catch (err) {
      return { success: false, error: err.message, progress: 0 }
    }
    const extra = this.config.supportedModels ?? []
    if (!resolved.curated && !extra.includes(modelName) && !extra.includes(resolved.source)) {
      return { success: false, error: `Model ${modelName} not in supported list`, progress: 0 }
    }
    let progress = 0
    const report = (p) => {
      if (p <= progress) return
      progress = p
      try {
        this.#downloadCallback?.(p)
      } catch {}
    }
    try {
      await EmbeddingService.downloadModel(resolved.source, {
        ...this.#location(),
        offline: this.#serviceOptions.offline,
        onProgress: (p) => {
          const weights = /\.safetensors$/.test(p.file)
          if (weights && p.total) report(Math.min(99, 5 + Math.floor((95 * p.current) / p.total)))
          else if (!weights && p.total && p.current === p.total) report(Math.max(progress, 1))
        },
      })
      report(100)
      return { success: true, message: `${modelName} is in the cache`, progress: 100 }
    } catch (err) {
      return { success: false, error: `${err.code ?? 'ERROR'}: ${err.message}`, progress }
    }
  }
}

module.exports = { NativeEmbeddingBackend, SERVICE_OPTIONS }
