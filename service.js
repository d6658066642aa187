// The JS half of the binding: the public EmbeddingService class over the native service. It only does what
// must happen on the JS side: wiring AbortSignals, calling the caller's callbacks (whose exceptions must never
// reach the worker or the process), and delivering a request's events before its promise settles. All logic
// (scheduling, lifecycle, watchdog, models) lives in Rust.
'use strict'

function invalid(message) {
  const err = new Error(message)
  err.code = 'ERR_INVALID_INPUT'
  return err
}

function abortError(signal) {
  const err = new Error('the request was aborted by its AbortSignal')
  err.name = 'AbortError'
  err.code = 'ERR_ABORTED'
  if (signal && signal.reason !== undefined) err.cause = signal.reason
  return err
}

function isAbortSignal(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.aborted === 'boolean' &&
    typeof value.addEventListener === 'function' &&
    typeof value.removeEventListener === 'function'
  )
}

function defaultLogger(level, message) {
  if (level === 'warn' || level === 'error') process.stderr.write(`[embedding-service] ${level}: ${message}\n`)
}

// Receives events from the native side. Holds no reference to the service, so a service that is no longer
// referenced can be garbage-collected (the native side keeps this hub alive through its callback).
class Hub {
  constructor(onProgress, logger) {
    this.onProgress = onProgress
    this.logger = logger
    this.listeners = new Map()
    this.dispatch = (items) => {
      for (const item of items) this.deliver(item)
    }
  }

  deliver(item) {
    if (item.kind === 'log') return this.log(item.level, item.message)
    const event = item.event
    if (event.requestId === undefined) delete event.requestId
    for (const key of ['etaMs', 'textsPerSecond']) if (event[key] === undefined) delete event[key]
    this.call(this.onProgress, event, 'onProgress')
    const listener = event.requestId !== undefined && this.listeners.get(event.requestId)
    if (listener) this.call(listener, event, 'the request\'s onProgress')
  }

  call(fn, event, what) {
    if (!fn) return
    try {
      fn(event)
    } catch (err) {
      this.log('error', `${what} threw: ${err && err.stack ? err.stack : err}`)
    }
  }

  log(level, message) {
    try {
      this.logger(level, message)
    } catch (err) {
      defaultLogger('error', `the logger threw (${err}) on: ${message}`)
    }
  }
}

function modelArgs(model, options, what) {
  if (typeof model !== 'string') throw invalid(`${what}: model must be a hub id or a folder path (a string), got ${model === null ? 'null' : typeof model}`)
  if (options !== undefined && options !== null && typeof options !== 'object') throw invalid(`${what}: options must be an object`)
  return options ?? undefined
}

function createEmbeddingService(binding) {
  const { NativeEmbeddingService, NativeCancel } = binding

  class EmbeddingService {
    #native
    #hub

    constructor(options) {
      const opts = options ?? undefined
      const onProgress = opts && typeof opts === 'object' ? opts.onProgress : undefined
      const logger = opts && typeof opts === 'object' ? opts.logger : undefined
      if (onProgress !== undefined && typeof onProgress !== 'function') {
        throw invalid('options.onProgress must be a function')
      }
      if (logger !== undefined && typeof logger !== 'function') throw invalid('options.logger must be a function')
      this.#hub = new Hub(onProgress, logger ?? defaultLogger)
      this.#native = new NativeEmbeddingService(opts, this.#hub.dispatch)
    }

    embed(texts, options) {
      return this.embedDetailed(texts, options).then((r) => r.vectors)
    }

    embedDetailed(texts, options) {
      return this.#track((opts) => this.#native.embed(texts, opts), options)
    }

    extractKeyphrases(texts, options) {
      return this.#track((opts) => this.#native.extractKeyphrases(texts, opts), options)
    }

    // Starts a native request with `options`, wiring its AbortSignal and per-request onProgress.
    #track(start, options) {
      let signal
      let onProgress
      if (options !== undefined && options !== null) {
        if (typeof options !== 'object') return Promise.reject(invalid(`options must be an object, got ${typeof options}`))
        signal = options.signal
        onProgress = options.onProgress
        if (signal !== undefined && !isAbortSignal(signal)) {
          return Promise.reject(invalid('options.signal must be an AbortSignal'))
        }
        if (onProgress !== undefined && typeof onProgress !== 'function') {
          return Promise.reject(invalid('options.onProgress must be a function'))
        }
        if (signal && signal.aborted) return Promise.reject(abortError(signal))
      }
      const { id, promise } = start(options)
      if (!id) return promise
      const hub = this.#hub
      const native = this.#native
      if (onProgress) hub.listeners.set(id, onProgress)
      const onAbort = () => native.abort(id)
      if (signal) signal.addEventListener('abort', onAbort, { once: true })
      const finish = () => {
        // Events the worker sent before settling this request reach their listeners before the caller resumes.
        hub.dispatch(native.flush())
        hub.listeners.delete(id)
        if (signal) signal.removeEventListener('abort', onAbort)
      }
      return promise.then(
        (result) => {
          finish()
          return result
        },
        (err) => {
          finish()
          if (err && err.code === 'ERR_ABORTED') {
            err.name = 'AbortError'
            if (signal && signal.reason !== undefined) err.cause = signal.reason
          }
          throw err
        },
      )
    }

    load() {
      return this.#native.load()
    }

    unload() {
      return this.#native.unload()
    }

    close() {
      return this.#native.close().then(() => this.#hub.dispatch(this.#native.flush()))
    }

    status() {
      const s = this.#native.status()
      return {
        state: s.state,
        modelLoaded: s.modelLoaded,
        device: s.device ?? null,
        dtype: s.dtype ?? null,
        prompts: s.prompts,
        dimensions: s.dimensions ?? null,
        queued: { query: s.queued.query, index: s.queued.index },
        activeRequests: s.activeRequests,
        lastProgressAt: s.lastProgressAt ?? null,
        loadCount: s.loadCount,
        unloadCount: s.unloadCount,
        memory: {
          residentBytes: process.memoryUsage.rss(),
          weightsBytes: s.weightsBytes,
          mappedWeightsBytes: s.mappedWeightsBytes,
          resultBytes: s.resultBytes,
        },
      }
    }

    get dimensions() {
      return this.#native.dimensions ?? null
    }

    static isModelCached(model, options) {
      return binding.isModelCached(model, modelArgs(model, options, 'isModelCached'))
    }

    static downloadModel(model, options) {
      let opts
      try {
        opts = modelArgs(model, options, 'downloadModel')
      } catch (err) {
        return Promise.reject(err)
      }
      const { onProgress, signal } = opts ?? {}
      if (onProgress !== undefined && typeof onProgress !== 'function') {
        return Promise.reject(invalid('options.onProgress must be a function'))
      }
      if (signal !== undefined && !isAbortSignal(signal)) return Promise.reject(invalid('options.signal must be an AbortSignal'))
      if (signal && signal.aborted) return Promise.reject(abortError(signal))
      const cancel = new NativeCancel()
      const onAbort = () => cancel.cancel()
      if (signal) signal.addEventListener('abort', onAbort, { once: true })
      return new Promise((resolve, reject) => {
        const onEvent = (e) => {
          if (!e.done) {
            if (!onProgress) return
            try {
              onProgress({ status: 'downloading_model', file: e.file, current: e.current, total: e.total })
            } catch (err) {
              defaultLogger('error', `downloadModel's onProgress threw: ${err && err.stack ? err.stack : err}`)
            }
            return
          }
          if (signal) signal.removeEventListener('abort', onAbort)
          if (e.errorCode === undefined || e.errorCode === null) return resolve(e.dir)
          const err = new Error(e.errorMessage)
          err.code = e.errorCode
          if (err.code === 'ERR_ABORTED') {
            err.name = 'AbortError'
            if (signal && signal.reason !== undefined) err.cause = signal.reason
          }
          reject(err)
        }
        binding.downloadModel(model, opts, onEvent, cancel)
      })
    }
  }

  return EmbeddingService
}

module.exports = { createEmbeddingService }
