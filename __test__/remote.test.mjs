// The remote backend (`endpoint`) against a real engine: infinity-emb from PyPI (scripts/remote-engine.mjs,
// installed by `npm test` into a cached venv) serving all-MiniLM-L6-v2 on loopback, under its hub id.
// Events and replies drive every test; nothing waits on a timer.
import { describe, expect, it, beforeAll, afterAll } from 'vitest'
import { EmbeddingService } from '../index.js'
import { PythonEmbeddingService } from '../daemon.js'
import { startEngine, freePort } from '../scripts/remote-engine.mjs'
import { cosine, minilmDir, readJson, reference, texts } from './helpers.mjs'

const MODEL = 'sentence-transformers/all-MiniLM-L6-v2'
const golden = readJson(`${reference('minilm')}/expected.json`).embeddings
const many = (n, tag = 'chunk') =>
  Array.from({ length: n }, (_, i) => `${tag} ${i}: ${'a sentence about embedding servers and scaling out '.repeat(1 + (i % 5))}`)

/** Resolves with the first event `pred` accepts. */
function nextEvent(events, pred) {
  return new Promise((resolve) => events.waiters.push({ pred, resolve }))
}
function recorder() {
  const events = { all: [], waiters: [] }
  events.onProgress = (e) => {
    events.all.push(e)
    events.waiters = events.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true))
  }
  return events
}

let engine
beforeAll(async () => {
  engine = await startEngine({ urlPrefix: '/v1' })
}, 300_000)
afterAll(async () => {
  await engine?.stop()
})

const endpoint = () => `${engine.url}/v1`

describe('EmbeddingService over a remote server (infinity-emb)', () => {
  it('loads by asking the server, matches the in-process model and sentence-transformers', async () => {
    const svc = new EmbeddingService({ model: MODEL, endpoint: endpoint() })
    await svc.load()
    const status = svc.status()
    expect(status.device).toBe(`remote ${endpoint()}`)
    expect(status.dimensions).toBe(384)
    expect(status.dtype).toBeNull()
    const remote = await svc.embed(texts())
    const local = new EmbeddingService({ model: minilmDir() })
    const here = await local.embed(texts())
    for (let i = 0; i < remote.length; i++) {
      expect(cosine(remote[i], here[i])).toBeGreaterThanOrEqual(0.9999)
      expect(cosine(remote[i], golden[i])).toBeGreaterThanOrEqual(0.9999)
    }
    const detailed = await svc.embedDetailed(['hello world'])
    expect(detailed.vectors[0]).toHaveLength(384)
    expect(detailed.tokenCounts[0]).toBeGreaterThan(0)
    await Promise.all([svc.close(), local.close()])
  })

  it('embeds a 1,000-text job with progress up to completion', async () => {
    const events = recorder()
    const svc = new EmbeddingService({ model: MODEL, endpoint: endpoint(), onProgress: events.onProgress })
    const vectors = await svc.embed(many(1000))
    expect(vectors).toHaveLength(1000)
    expect(vectors.every((v) => v.length === 384)).toBe(true)
    const done = events.all.filter((e) => e.status === 'processing_embeddings').map((e) => e.current)
    expect(done.at(-1)).toBe(1000)
    expect(done.every((d, i) => i === 0 || d >= done[i - 1])).toBe(true)
    expect(done.filter((d) => d > 0 && d < 1000).length).toBeGreaterThan(5)
    expect(events.all.at(-1)).toMatchObject({ status: 'completed', current: 1000, total: 1000 })
    await svc.close()
  })

  it('sends a query ahead of an index job: it waits behind at most one batch per connection', async () => {
    const events = recorder()
    const svc = new EmbeddingService({ model: MODEL, endpoint: endpoint(), remoteConcurrency: 2, onProgress: events.onProgress })
    await svc.load()
    const job = svc.embedDetailed(many(600, 'index'))
    const firstBatch = await nextEvent(events, (e) => e.status === 'processing_batch')
    const indexId = firstBatch.requestId
    const stepsBefore = events.all.filter((e) => e.status === 'processing_batch' && e.requestId === indexId).length
    const [query] = await svc.embed(['where is the scaling section?'], { priority: 'query' })
    const stepsAfter = events.all.filter((e) => e.status === 'processing_batch' && e.requestId === indexId).length
    // One step is one batch per connection, sent together: the query ran after at most the step in flight.
    expect(stepsAfter - stepsBefore).toBeLessThanOrEqual(1)
    expect(events.all.some((e) => e.status === 'completed' && e.requestId === indexId)).toBe(false)
    expect(query).toHaveLength(384)
    const result = await job
    expect(result.vectors).toHaveLength(600)
    await svc.close()
  })

  it('aborts mid-job at once, and the next request works', async () => {
    const events = recorder()
    const svc = new EmbeddingService({ model: MODEL, endpoint: endpoint(), onProgress: events.onProgress })
    const controller = new AbortController()
    const job = svc.embed(many(2000), { signal: controller.signal })
    await nextEvent(events, (e) => e.status === 'processing_batch')
    controller.abort()
    const err = await job.catch((e) => e)
    expect(err.code).toBe('ERR_ABORTED')
    expect(events.all.some((e) => e.status === 'completed' && e.current === 2000)).toBe(false)
    expect(await svc.embed(['after the abort'])).toHaveLength(1)
    await svc.close()
  })

  it('a server that stops answering is a stall: reported, failed with ERR_STALLED, and the next request works', async () => {
    const events = recorder()
    const svc = new EmbeddingService({
      model: MODEL,
      endpoint: endpoint(),
      // A frozen server never answers, so any timeout shows the stall; this one leaves the thawed server,
      // which first works off the abandoned batches, time to answer the next request on a loaded machine.
      stallWarningMs: 1000,
      stallTimeoutMs: 8000,
      onProgress: events.onProgress,
    })
    await svc.load()
    const job = svc.embed(many(400))
    await nextEvent(events, (e) => e.status === 'processing_batch')
    engine.process.kill('SIGSTOP')
    let err
    try {
      err = await job.catch((e) => e)
    } finally {
      engine.process.kill('SIGCONT')
    }
    expect(err.code).toBe('ERR_STALLED')
    const statuses = events.all.map((e) => e.status)
    expect(statuses.indexOf('stall_warning')).toBeGreaterThan(-1)
    expect(statuses.indexOf('stall_warning')).toBeLessThan(statuses.indexOf('stalled'))
    expect(await svc.embed(['the server answers again'])).toHaveLength(1)
    await svc.close()
  })

  it('close() during a load from a frozen server ends the load at once with ERR_CLOSED', async () => {
    const events = recorder()
    const svc = new EmbeddingService({ model: MODEL, endpoint: endpoint(), onProgress: events.onProgress })
    engine.process.kill('SIGSTOP')
    try {
      const loading = svc.load().catch((e) => e)
      await nextEvent(events, (e) => e.status === 'loading_model')
      await svc.close()
      expect((await loading).code).toBe('ERR_CLOSED')
    } finally {
      engine.process.kill('SIGCONT')
    }
  })

  it('a wrong model is ERR_MODEL_NOT_FOUND naming what the server serves', async () => {
    const svc = new EmbeddingService({ model: 'intfloat/e5-nonexistent', endpoint: endpoint() })
    const err = await svc.load().catch((e) => e)
    expect(err.code).toBe('ERR_MODEL_NOT_FOUND')
    expect(err.message).toContain(MODEL)
    await svc.close()
  })

  it('a wrong endpoint is ERR_REMOTE after retries, a malformed one ERR_INVALID_INPUT at once', async () => {
    const port = await freePort()
    const svc = new EmbeddingService({ model: MODEL, endpoint: `http://127.0.0.1:${port}/v1` })
    const err = await svc.embed(['x']).catch((e) => e)
    expect(err.code).toBe('ERR_REMOTE')
    expect(err.message).toContain(`127.0.0.1:${port}`)
    await svc.close()
    const wrongPath = new EmbeddingService({ model: MODEL, endpoint: `${engine.url}/nope` })
    const notFound = await wrongPath.load().catch((e) => e)
    expect(notFound.code).toBe('ERR_REMOTE')
    expect(notFound.message).toMatch(/404/)
    await wrongPath.close()
    expect(() => new EmbeddingService({ model: MODEL, endpoint: 'gpu-box:7997' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_INPUT' }),
    )
    expect(() => new EmbeddingService({ model: MODEL, endpoint: endpoint(), dtype: 'bf16' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_INPUT' }),
    )
  })

  it('a server killed mid-job fails that job with ERR_REMOTE, nothing hangs, and after a restart the next call works', async () => {
    const own = await startEngine({ urlPrefix: '/v1', apiKey: 'secret' })
    const url = `${own.url}/v1`
    try {
      const unauthorised = new EmbeddingService({ model: MODEL, endpoint: url })
      const denied = await unauthorised.load().catch((e) => e)
      expect(denied.code).toBe('ERR_REMOTE')
      expect(denied.message).toMatch(/401|403/)
      await unauthorised.close()

      const events = recorder()
      const svc = new EmbeddingService({ model: MODEL, endpoint: url, apiKey: 'secret', onProgress: events.onProgress })
      const job = svc.embed(many(3000))
      await nextEvent(events, (e) => e.status === 'processing_batch')
      own.kill('SIGKILL')
      const err = await job.catch((e) => e)
      expect(err.code).toBe('ERR_REMOTE')
      const again = await startEngine({ urlPrefix: '/v1', apiKey: 'secret', port: own.port })
      try {
        const [v] = await svc.embed(['back again'])
        expect(v).toHaveLength(384)
      } finally {
        await svc.close()
        await again.stop()
      }
    } finally {
      await own.stop().catch(() => {})
    }
  })

  it("the daemon adapter selects it with one option, and says 'remote'", async () => {
    const backend = new PythonEmbeddingService({ modelName: MODEL, endpoint: endpoint() })
    await backend.initialize()
    expect(backend.getServiceType()).toBe('remote')
    const [embedding] = await backend.generateEmbeddings([{ content: 'a chunk of a document', chunkIndex: 0 }])
    expect(embedding.vector).toHaveLength(384)
    expect(embedding.model).toBe(MODEL)
    const phrases = await backend.extractKeyPhrasesKeyBERT('Embedding servers scale out the indexing of large document shares.')
    expect(phrases.length).toBeGreaterThan(0)
    expect(phrases[0].score).toBeGreaterThan(0)
    await backend.shutdown()
    expect(new PythonEmbeddingService({ modelName: MODEL }).getServiceType()).toBe('gpu')
  })
})
