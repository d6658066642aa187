// A drop-in backend for the indexing daemon: the contract its Python-child-process backend implemented,
// on top of EmbeddingService. Import it from 'embedding-service/daemon'. Types and docs: daemon.d.ts.
'use strict'

const { EmbeddingService } = require('./index.js')

const DEFAULT_MODEL = 'sentence-transformers/all-MiniLM-L6-v2'

function timeoutError(what, ms) {
  const err = new Error(`${what} did not happen within ${ms} ms`)
  err.code = 'ERR_TIMEOUT'
  return err
}

class NativeEmbeddingBackend {
  #options
  #model
  #svc = null
  #state = 'uninitialized'
  #waiters = new Set()
  #startedAt = Date.now()
  #lastHealth = null
  #downloadCallback = null
  #initializing = null
  #stallWarning = false
  #stats = { requests: 0, texts: 0, tokens: 0, errors: 0, busyMs: 0 }

  /** @param {object} [options] EmbeddingService options; `model` defaults to all-MiniLM-L6-v2. */
  constructor(options = {}) {
    this.#options = { ...options }
    this.#model = options.model ?? DEFAULT_MODEL
  }

  #setState(state) {
    if (this.#state === state) return
    this.#state = state
    for (const waiter of [...this.#waiters]) waiter(state)
  }

  // The adapter's state follows the service's own, read on every event it reports.
  #sync() {
    if (!this.#svc || this.#state === 'error') return
    const s = this.#svc.status().state
    const map = { unloaded: 'idle', loading: 'loading', ready: 'ready', working: 'ready', unloading: 'unloading' }
    if (map[s]) this.#setState(map[s])
  }

  #create(model) {
    const user = this.#options.onProgress
    this.#model = model
    this.#svc = new EmbeddingService({
      ...this.#options,
      model,
      onProgress: (event) => {
        if (event.status === 'stall_warning') this.#stallWarning = true
        if (event.status === 'completed' || event.status === 'stalled') this.#stallWarning = false
        this.#sync()
        if (user) user(event)
      },
    })
  }

  async initialize() {
    if (this.#svc && this.#state !== 'error') return this.#initializing ?? undefined
    this.#initializing ??= (async () => {
      try {
        if (!this.#svc) this.#create(this.#model)
        this.#setState('loading')
        await this.#svc.load()
        this.#setState('ready')
      } catch (err) {
        this.#setState('error')
        throw err
      } finally {
        this.#initializing = null
      }
    })()
    return this.#initializing
  }

  isInitialized() {
    return this.#svc !== null && this.#state !== 'error' && this.#state !== 'uninitialized'
  }

  /** 'gpu' when the model runs on CUDA or Metal, else 'onnx' (the daemon's name for its CPU backend). */
  getServiceType() {
    const device = this.#svc?.status().device
    return device && device !== 'cpu' ? 'gpu' : 'onnx'
  }

  getModelConfig() {
    const s = this.#svc?.status()
    return {
      name: this.#model,
      dimensions: this.#svc?.dimensions ?? null,
      device: s?.device ?? null,
      dtype: s?.dtype ?? null,
      prompts: s?.prompts ?? [],
    }
  }

  // Text types map to the model's own prompts: E5's "query: " / "passage: ", nothing for models without them.
  #prompt(textType) {
    if (textType !== 'query' && textType !== 'passage') {
      const err = new Error(`textType must be 'query' or 'passage', got ${JSON.stringify(textType)}`)
      err.code = 'ERR_INVALID_INPUT'
      throw err
    }
    const prompts = this.#svc.status().prompts
    if (prompts.includes(textType)) return textType
    if (textType === 'passage' && prompts.includes('document')) return 'document'
    return undefined
  }

  async #embed(texts, textType, priority) {
    await this.initialize()
    // The model's prompts are known once it has loaded (it may have been unloaded since).
    if (!this.#svc.status().modelLoaded) await this.#svc.load()
    const started = Date.now()
    this.#stats.requests++
    try {
      const result = await this.#svc.embedDetailed(texts, { prompt: this.#prompt(textType), priority })
      this.#stats.texts += texts.length
      this.#stats.tokens += result.tokenCounts.reduce((a, b) => a + b, 0)
      this.#stats.busyMs += Date.now() - started
      this.#sync()
      return result
    } catch (err) {
      this.#stats.errors++
      throw err
    }
  }

  #vectors(chunks, result) {
    const createdAt = new Date().toISOString()
    const dimensions = this.#svc.dimensions
    return chunks.map((chunk, i) => ({
      vector: Array.from(result.vectors[i]),
      dimensions,
      model: this.#model,
      createdAt,
      chunkId: `chunk_${i}_${chunk.chunkIndex}`,
      metadata: { generatedAt: createdAt, modelVersion: this.#model, tokensUsed: result.tokenCounts[i], confidence: 1 },
    }))
  }

  async generateEmbeddings(chunks, textType = 'passage') {
    const result = await this.#embed(chunks.map((c) => c.content), textType, textType === 'query' ? 'query' : 'index')
    return this.#vectors(chunks, result)
  }

  async generateSingleEmbedding(text, textType = 'query') {
    const result = await this.#embed([text], textType, textType === 'query' ? 'query' : 'index')
    return this.#vectors([{ content: text, chunkIndex: 0 }], result)[0]
  }

  generateQueryEmbedding(query) {
    return this.generateSingleEmbedding(query, 'query')
  }

  /** Index work: behind any query, in the order given; `batchSize` texts per call to the service. */
  async processBatch(chunks, batchSize = 32, textType = 'passage') {
    const out = []
    for (let i = 0; i < chunks.length; i += batchSize) {
      const part = chunks.slice(i, i + batchSize)
      const result = await this.#embed(part.map((c) => c.content), textType, 'index')
      const vectors = this.#vectors(part, result)
      vectors.forEach((v, j) => (v.chunkId = `chunk_${i + j}_${part[j].chunkIndex}`))
      out.push(...vectors)
    }
    return out
  }

  calculateSimilarity(a, b) {
    if (a.length !== b.length) throw new Error(`dimension mismatch: ${a.length} vs ${b.length}`)
    let dot = 0
    let na = 0
    let nb = 0
    for (let i = 0; i < a.length; i++) {
      dot += a[i] * b[i]
      na += a[i] * a[i]
      nb += b[i] * b[i]
    }
    return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
  }

  /** Seconds to embed `n` more chunks at the throughput measured so far; null before any has been measured. */
  estimateProcessingTime(n) {
    const { texts, busyMs } = this.#stats
    if (texts === 0 || busyMs === 0) return null
    return (n * busyMs) / texts / 1000
  }

  healthCheck() {
    let health
    try {
      const s = this.#svc?.status()
      const loaded = s?.modelLoaded ?? false
      let status
      if (!this.#svc || this.#state === 'error' || this.#state === 'uninitialized') status = 'unhealthy'
      else if (this.#stallWarning) status = 'degraded'
      else status = loaded ? 'healthy' : 'idle'
      health = {
        status,
        model_loaded: loaded,
        gpu_available: this.getServiceType() === 'gpu',
        memory_usage_mb: Math.round(process.memoryUsage().rss / 1048576),
        uptime_seconds: Math.round((Date.now() - this.#startedAt) / 1000),
        queue_size: s ? s.queued.query + s.queued.index + s.activeRequests : 0,
        state: this.#state,
        current_model: loaded ? this.#model : null,
      }
    } catch (err) {
      health = { status: 'unhealthy', model_loaded: false, gpu_available: false, memory_usage_mb: 0, uptime_seconds: 0, queue_size: 0, state: 'error', current_model: null, error: String(err) }
    }
    this.#lastHealth = health
    return health
  }

  getLastHealthCheck() {
    return this.#lastHealth
  }

  /** Switches to `name` (waiting for the current model's work to finish first), or loads the current one. */
  async loadModel(name = this.#model) {
    if (this.#svc && name !== this.#model) {
      const old = this.#svc
      this.#svc = null
      this.#setState('unloading')
      await old.unload()
      await old.close()
      this.#setState('uninitialized')
      this.#create(name)
    }
    if (this.#state === 'error') this.#state = 'uninitialized'
    await this.initialize()
    this.#setState('loading')
    await this.#svc.load()
    this.#setState('ready')
  }

  /** Unloads once nothing is queued or running; resolves when unloaded. */
  async unloadModel() {
    if (!this.#svc) return
    await this.#svc.unload()
    this.#sync()
  }

  /** Asks for an unload without waiting for it (it happens once the service is idle). */
  requestModelUnload() {
    if (!this.#svc) return false
    this.#svc.unload().then(() => this.#sync(), () => {})
    return true
  }

  getStatus() {
    return this.#state
  }

  /** Resolves when the adapter reaches `state` (at once if it is there); rejects with ERR_TIMEOUT. */
  waitForState(state, timeoutMs = 30000) {
    if (this.#state === state) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter = (s) => {
        if (s !== state) return
        this.#waiters.delete(waiter)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(timeoutError(`state '${state}'`, timeoutMs))
      }, timeoutMs)
      this.#waiters.add(waiter)
    })
  }

  isModelCached(name = this.#model) {
    return EmbeddingService.isModelCached(name, { cacheDir: this.#options.cacheDir, revision: this.#options.revision })
  }

  setDownloadProgressCallback(callback) {
    this.#downloadCallback = callback
  }

  async downloadModel(name = this.#model) {
    let progress = 0
    try {
      await EmbeddingService.downloadModel(name, {
        cacheDir: this.#options.cacheDir,
        revision: this.#options.revision,
        offline: this.#options.offline,
        onProgress: (p) => {
          progress = p.total ? Math.round((100 * p.current) / p.total) : 0
          if (this.#downloadCallback) this.#downloadCallback({ ...p, progress })
        },
      })
      return { success: true, message: `${name} is in the cache`, progress: 100 }
    } catch (err) {
      return { success: false, error: `${err.code ?? 'ERROR'}: ${err.message}`, progress }
    }
  }

  getServiceStats() {
    const s = this.#svc?.status()
    const { requests, texts, tokens, errors, busyMs } = this.#stats
    return {
      requests,
      texts,
      tokens,
      errors,
      textsPerSecond: busyMs ? (texts * 1000) / busyMs : null,
      tokensPerSecond: busyMs ? (tokens * 1000) / busyMs : null,
      loadCount: s?.loadCount ?? 0,
      unloadCount: s?.unloadCount ?? 0,
      uptime_seconds: Math.round((Date.now() - this.#startedAt) / 1000),
    }
  }

  /** Closes the service (queued work is rejected with ERR_CLOSED); resolves false if it took longer. */
  async shutdown(timeoutSeconds = 30) {
    const svc = this.#svc
    this.#svc = null
    if (!svc) return true
    let timer
    const closed = await Promise.race([
      svc.close().then(() => true),
      new Promise((resolve) => (timer = setTimeout(() => resolve(false), timeoutSeconds * 1000))),
    ])
    clearTimeout(timer)
    this.#setState('uninitialized')
    return closed
  }
}

module.exports = { NativeEmbeddingBackend, DEFAULT_MODEL }
