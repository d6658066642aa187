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

/**
 * The one abort error: `err` (the native ERR_ABORTED) or a new one, named 'AbortError', with the signal's
 * reason as its `cause`.
 */
function abortError(signal, err = undefined) {
  const error = err ?? new Error('the request was aborted by its AbortSignal')
  error.name = 'AbortError'
  error.code = 'ERR_ABORTED'
  const reason = signal ? reasonOf(signal) : undefined
  if (reason !== undefined) error.cause = reason
  return error
}

// The options each method reads. Every one is read exactly once, here, inside a guard: a throwing getter, a
// Proxy trap or a revoked Proxy becomes one ERR_INVALID_INPUT rejection (or throw, for the constructor), and
// the native side only ever sees the plain snapshot.
const SERVICE_KEYS = [
  'model', 'revision', 'cacheDir', 'offline', 'downloadTimeoutMs', 'device', 'dtype', 'threads', 'maxBatchSize', 'maxBatchTokens',
  'keepAliveMs', 'stallWarningMs', 'stallTimeoutMs', 'endpoint', 'apiKey', 'remoteConcurrency', 'testHooks',
  'onProgress', 'logger',
]
const TEST_HOOK_KEYS = ['panicOnText', 'holdIndexBatchUntilQueries', 'stallMs']
const EMBED_KEYS = ['inputType', 'priority', 'prompt', 'normalize', 'dimensions', 'signal', 'onProgress']
// embedQuery / embedDocuments set the input type themselves.
const ROLE_KEYS = ['prompt', 'normalize', 'dimensions', 'signal', 'onProgress']
const BATCHES_KEYS = [...EMBED_KEYS, 'batchSize']
const KEYPHRASE_KEYS = ['ngramRange', 'stopWords', 'topN', 'useMmr', 'diversity', 'maxCandidates', 'priority', 'signal', 'onProgress']
const MODEL_KEYS = ['cacheDir', 'revision', 'offline', 'downloadTimeoutMs', 'onProgress', 'signal']
// Options whose value is a list: copied too, so that no exotic array reaches the native side.
const LIST_KEYS = new Set(['ngramRange', 'stopWords'])

const { isProxy } = require('node:util').types

/**
 * The texts as the native side reads them. A Proxy over an array (a reactive store's, say) is copied here,
 * inside a guard: the native side sees plain arrays only, and a trap that throws is one ERR_INVALID_INPUT.
 */
function textsOf(texts) {
  if (typeof texts === 'string') return [texts]
  if (!isProxy(texts)) return texts
  try {
    if (!Array.isArray(texts)) return texts
    return Array.from(texts)
  } catch (err) {
    throw invalid(`cannot read texts: ${describeThrown(err)}`)
  }
}

function describeThrown(err) {
  try {
    return err instanceof Error ? err.message : String(err)
  } catch {
    return 'an unprintable value'
  }
}

/** Reads `keys` of `options` once each into a plain object; throws ERR_INVALID_INPUT when any read throws. */
function readOptions(options, keys, what = 'options') {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object') throw invalid(`${what} must be an object, got ${typeof options}`)
  const out = {}
  for (const key of keys) {
    let value
    try {
      value = options[key]
      if (LIST_KEYS.has(key) && Array.isArray(value)) value = Array.from(value)
    } catch (err) {
      throw invalid(`cannot read ${what}.${key}: ${describeThrown(err)}`)
    }
    if (value !== undefined) out[key] = value
  }
  return out
}

// An AbortSignal's members, read once (a hostile "signal" can throw from any of them).
function signalOf(value) {
  if (value === undefined) return undefined
  try {
    if (value === null || typeof value !== 'object') throw new Error('not an object')
    const { aborted, addEventListener, removeEventListener } = value
    if (typeof aborted !== 'boolean' || typeof addEventListener !== 'function' || typeof removeEventListener !== 'function') {
      throw new Error('not an AbortSignal')
    }
    return { signal: value, aborted, add: addEventListener, remove: removeEventListener }
  } catch {
    throw invalid('options.signal must be an AbortSignal')
  }
}

/** Subscribes `onAbort` to a signal read by `signalOf`; returns the unsubscribe, which never throws. */
function subscribe(signal, onAbort) {
  if (!signal) return () => {}
  try {
    signal.add.call(signal.signal, 'abort', onAbort, { once: true })
  } catch (err) {
    throw invalid(`options.signal.addEventListener threw: ${describeThrown(err)}`)
  }
  return () => {
    try {
      signal.remove.call(signal.signal, 'abort', onAbort)
    } catch {
      // A signal that cannot unsubscribe is the caller's; the request has settled either way.
    }
  }
}

function reasonOf(signal) {
  try {
    return signal.reason
  } catch {
    return undefined
  }
}

function defaultLogger(level, message) {
  if (level === 'warn' || level === 'error') process.stderr.write(`[embedding-service] ${level}: ${message}\n`)
}

// Routes events from the native side to the service's and each request's onProgress, and log lines to the
// logger. Holds no reference to the service, so a service that is no longer referenced can be
// garbage-collected (the native side keeps this router alive through its callback).
class EventRouter {
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

function describeType(value) {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
}

// `await using` calls this; Node releases without Symbol.asyncDispose (18.x before 18.18) use the registered
// symbol TypeScript's downlevel helper looks up.
const ASYNC_DISPOSE = Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')

const DEFAULT_STREAM_BATCH = 256

/**
 * `embedBatches`: the texts (an array, or any iterable or async iterable) in batches of `batchSize`, each one
 * request, yielded in order. One batch is computed ahead while the caller handles the last (back-pressure: no
 * more is read from `texts` or queued than that); breaking out of the loop, or the signal, aborts the one in
 * flight. Plain JavaScript over `embedDetailed`: nothing of it runs unless it is called.
 */
async function* streamBatches(service, texts, options) {
  const opts = readOptions(options, BATCHES_KEYS)
  const batchSize = opts?.batchSize ?? DEFAULT_STREAM_BATCH
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw invalid(`options.batchSize must be a whole number of at least 1, got ${String(batchSize)}`)
  }
  if (opts) delete opts.batchSize
  const outer = signalOf(opts?.signal)
  if (outer && outer.aborted) throw abortError(outer.signal)
  const source = chunkSource(texts)
  // Our own signal for the requests: the caller's signal fires it, and so does leaving the loop early.
  const stop = new AbortController()
  const unsubscribe = subscribe(outer, () => stop.abort(reasonOf(outer.signal)))
  const request = async (start) => {
    const chunk = await source.take(batchSize)
    if (chunk.length === 0) return null
    const r = await service.embedDetailed(chunk, { ...opts, signal: stop.signal })
    return { start, texts: chunk, vectors: r.vectors, tokenCounts: r.tokenCounts }
  }
  let pending = request(0)
  let finished = false
  try {
    for (;;) {
      let batch
      try {
        batch = await pending
      } catch (err) {
        throw err && err.code === 'ERR_ABORTED' ? abortError(outer?.signal, err) : err
      }
      if (batch === null) {
        finished = true
        return
      }
      pending = request(batch.start + batch.texts.length)
      // A rejection of the batch ahead is the next iteration's; until then it must not count as unhandled.
      pending.catch(() => {})
      yield batch
    }
  } finally {
    unsubscribe()
    if (!finished) {
      stop.abort()
      await pending.catch(() => {})
      try {
        await source.close()
      } catch {
        // The caller's iterator failing to close is theirs; the batches have stopped either way.
      }
    }
  }
}

/**
 * The texts of `embedBatches` as a source of chunks, `take(n)` at a time: a plain array is sliced, any other
 * iterable or async iterable is read lazily, and `close()` ends an iterator left early.
 */
function chunkSource(texts) {
  if (typeof texts === 'string') throw invalid('embedBatches: texts must be an array or an iterable of strings, not a string')
  if (Array.isArray(texts) && !isProxy(texts)) {
    let next = 0
    return {
      take: async (n) => texts.slice(next, (next += n)),
      close: async () => {},
    }
  }
  let it
  try {
    if (texts && typeof texts[Symbol.asyncIterator] === 'function') it = texts[Symbol.asyncIterator]()
    else if (texts && typeof texts[Symbol.iterator] === 'function') it = texts[Symbol.iterator]()
  } catch (err) {
    throw invalid(`cannot read texts: ${describeThrown(err)}`)
  }
  if (!it) throw invalid(`embedBatches: texts must be an array or an iterable of strings, got ${describeType(texts)}`)
  return {
    async take(n) {
      const chunk = []
      while (chunk.length < n) {
        const step = await it.next()
        if (step.done) break
        chunk.push(step.value)
      }
      return chunk
    },
    close: async () => it.return?.(),
  }
}

function modelArgs(model, options, what) {
  if (typeof model !== 'string') throw invalid(`${what}: model must be a hub id or a folder path (a string), got ${model === null ? 'null' : typeof model}`)
  if (options !== undefined && options !== null && typeof options !== 'object') throw invalid(`${what}: options must be an object`)
  return readOptions(options, MODEL_KEYS)
}

function createEmbeddingService(binding) {
  const { NativeEmbeddingService, NativeCancel } = binding

  class EmbeddingService {
    #native
    #router
    #model

    constructor(options) {
      const opts = readOptions(options, SERVICE_KEYS)
      if (opts && opts.testHooks !== undefined && opts.testHooks !== null && typeof opts.testHooks === 'object') {
        opts.testHooks = readOptions(opts.testHooks, TEST_HOOK_KEYS, 'options.testHooks')
      }
      const onProgress = opts ? opts.onProgress : undefined
      const logger = opts ? opts.logger : undefined
      if (onProgress !== undefined && typeof onProgress !== 'function') {
        throw invalid('options.onProgress must be a function')
      }
      if (logger !== undefined && typeof logger !== 'function') throw invalid('options.logger must be a function')
      this.#router = new EventRouter(onProgress, logger ?? defaultLogger)
      this.#native = new NativeEmbeddingService(opts, this.#router.dispatch)
      this.#model = opts.model
    }

    get model() {
      return this.#model
    }

    embed(texts, options) {
      const one = typeof texts === 'string'
      return this.embedDetailed(texts, options).then((r) => (one ? r.vectors[0] : r.vectors))
    }

    embedDetailed(texts, options) {
      return this.#track((opts) => this.#native.embed(textsOf(texts), opts), options, EMBED_KEYS)
    }

    embedQuery(text, options) {
      if (typeof text !== 'string') return Promise.reject(invalid(`embedQuery: text must be a string, got ${describeType(text)}`))
      return this.#embedAs('query', [text], options).then((r) => r.vectors[0])
    }

    embedDocuments(texts, options) {
      if (typeof texts === 'string') return Promise.reject(invalid('embedDocuments: texts must be an array of strings, not a string'))
      return this.#embedAs('document', texts, options).then((r) => r.vectors)
    }

    #embedAs(inputType, texts, options) {
      const start = (opts) => this.#native.embed(textsOf(texts), { ...opts, inputType })
      return this.#track(start, options, ROLE_KEYS)
    }

    embedBatches(texts, options) {
      return streamBatches(this, texts, options)
    }

    [ASYNC_DISPOSE]() {
      return this.close()
    }

    extractKeyphrases(texts, options) {
      const one = typeof texts === 'string'
      return this.#track((opts) => this.#native.extractKeyphrases(textsOf(texts), opts), options, KEYPHRASE_KEYS)
        .then((lists) => (one ? lists[0] : lists))
    }

    // Starts a native request with a snapshot of `options`, wiring its AbortSignal and per-request onProgress.
    // Never throws: every failure, the caller's hostile objects included, is the returned promise's rejection.
    #track(start, options, keys) {
      let opts
      let signal
      try {
        opts = readOptions(options, keys)
        signal = signalOf(opts?.signal)
        if (opts?.onProgress !== undefined && typeof opts.onProgress !== 'function') {
          throw invalid('options.onProgress must be a function')
        }
      } catch (err) {
        return Promise.reject(err)
      }
      if (signal && signal.aborted) return Promise.reject(abortError(signal.signal))
      const onProgress = opts?.onProgress
      if (opts) {
        delete opts.signal
        delete opts.onProgress
      }
      const router = this.#router
      const native = this.#native
      let id = 0
      let abortedBeforeStart = false
      const onAbort = () => {
        if (id) native.abort(id)
        else abortedBeforeStart = true
      }
      let unsubscribe
      try {
        unsubscribe = subscribe(signal, onAbort)
      } catch (err) {
        return Promise.reject(err)
      }
      let ticket
      try {
        ticket = start(opts)
      } catch (err) {
        unsubscribe()
        return Promise.reject(err)
      }
      id = ticket.id
      const promise = ticket.promise
      if (!id) {
        unsubscribe()
        return promise
      }
      if (abortedBeforeStart) native.abort(id)
      if (onProgress) router.listeners.set(id, onProgress)
      const finish = () => {
        // Events the worker sent before settling this request reach their listeners before the caller resumes.
        router.dispatch(native.flush())
        router.listeners.delete(id)
        unsubscribe()
      }
      return promise.then(
        (result) => {
          finish()
          return result
        },
        (err) => {
          finish()
          throw err && err.code === 'ERR_ABORTED' ? abortError(signal?.signal, err) : err
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
      return this.#native.close().then(() => this.#router.dispatch(this.#native.flush()))
    }

    status() {
      const s = this.#native.status()
      return {
        state: s.state,
        modelLoaded: s.modelLoaded,
        device: s.device ?? null,
        dtype: s.dtype ?? null,
        simd: s.simd ?? null,
        family: s.family ?? null,
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
      let signal
      try {
        opts = modelArgs(model, options, 'downloadModel')
        signal = signalOf(opts?.signal)
        if (opts?.onProgress !== undefined && typeof opts.onProgress !== 'function') {
          throw invalid('options.onProgress must be a function')
        }
      } catch (err) {
        return Promise.reject(err)
      }
      const onProgress = opts?.onProgress
      if (signal && signal.aborted) return Promise.reject(abortError(signal.signal))
      if (opts) {
        delete opts.signal
        delete opts.onProgress
      }
      const cancel = new NativeCancel()
      let unsubscribe
      try {
        unsubscribe = subscribe(signal, () => cancel.cancel())
      } catch (err) {
        return Promise.reject(err)
      }
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
          unsubscribe()
          if (e.errorCode === undefined || e.errorCode === null) return resolve(e.dir)
          const err = new Error(e.errorMessage)
          err.code = e.errorCode
          reject(err.code === 'ERR_ABORTED' ? abortError(signal?.signal, err) : err)
        }
        try {
          binding.downloadModel(model, opts, onEvent, cancel)
        } catch (err) {
          unsubscribe()
          reject(err)
        }
      })
    }
  }

  return EmbeddingService
}

module.exports = { createEmbeddingService }
