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

// A scripted OpenAI-compatible server in this process (the worker thread calls it; the event loop stays free):
// `answer(input, req)` returns [status, body, headers] or a promise of them.
async function scriptedServer(answer) {
  const http = await import('node:http')
  const seen = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', async () => {
      const input = req.method === 'POST' ? JSON.parse(body || '{}').input ?? [] : []
      seen.push({ method: req.method, url: req.url, input, authorization: req.headers.authorization })
      const [status, payload, headers = {}] = req.url.endsWith('/models') ? [404, '{"detail":"no list"}'] : await answer(input, req)
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(typeof payload === 'string' ? payload : JSON.stringify(payload))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}/v1`, seen, close: () => new Promise((r) => server.close(r)) }
}
const vectors = (input, value = () => 0.5) => ({ data: input.map((_, i) => ({ index: i, embedding: [value(i), 0.1, 0.2, 0.3] })) })

describe('EmbeddingService against a hostile or slow scripted server', () => {
  it('a query does not wait for the index batches in flight: it goes out at once on its own connection', async () => {
    let released
    const release = new Promise((r) => (released = r))
    let heldCount = 0
    let indexHeld
    const indexInFlight = new Promise((r) => (indexHeld = r))
    // Index batches are answered only once the query has been answered (or after 10 s, so a build whose query
    // waits for them fails on the order of answers below instead of hanging).
    const safety = setTimeout(released, 10_000)
    const answered = []
    const server = await scriptedServer(async (input) => {
      if (input.length === 1 && input[0].startsWith('QUERY')) {
        answered.push('query')
        setImmediate(released)
        return [200, vectors(input)]
      }
      if (input.length > 1) {
        if (++heldCount === 2) indexHeld()
        await release
        answered.push('index batch')
      }
      return [200, vectors(input)]
    })
    const svc = new EmbeddingService({ model: 'm', endpoint: server.url, remoteConcurrency: 2, maxBatchSize: 10 })
    try {
      await svc.load()
      const order = []
      const job = svc.embed(Array.from({ length: 40 }, (_, i) => `index text ${i}`)).then(() => order.push('index'))
      await indexInFlight
      const query = svc.embed(['QUERY where is it?'], { priority: 'query' }).then(() => order.push('query'))
      await Promise.all([job, query])
      expect(order).toEqual(['query', 'index'])
      // The server answered the query while both index batches were still held by it.
      expect(answered.slice(0, 3)).toEqual(['query', 'index batch', 'index batch'])
    } finally {
      clearTimeout(safety)
      await svc.close()
      await server.close()
    }
  })

  it('never lets the API key out: not in errors, events, log lines or status', async () => {
    const key = 'sk-live-SECRET-0123456789'
    // A server that quotes the Authorization header it got in its 401.
    const server = await scriptedServer((input, req) => [401, { error: { message: `rejected header Authorization: ${req.headers.authorization}` } }])
    const outputs = []
    const svc = new EmbeddingService({
      model: 'm', endpoint: server.url, apiKey: key,
      onProgress: (e) => outputs.push(JSON.stringify(e)),
      logger: (level, message) => outputs.push(message),
    })
    try {
      const err = await svc.embed(['a']).catch((e) => e)
      expect(err.code).toBe('ERR_REMOTE')
      expect(err.message).toContain('[apiKey redacted]')
      outputs.push(err.message, String(err.stack), JSON.stringify(svc.status()))
      expect(server.seen[0].authorization).toBe(`Bearer ${key}`)
      expect(outputs.filter((o) => o.includes(key))).toEqual([])
      expect(outputs.filter((o) => o.includes('SECRET'))).toEqual([])
    } finally {
      await svc.close()
      await server.close()
    }
    // Keys that cannot be a header value, and credentials in the URL, are refused without being quoted.
    for (const [options, secret] of [
      [{ apiKey: `${key}\n` }, key],
      [{ apiKey: `${key}é` }, key],
      [{ endpoint: 'http://alice:hunter2@127.0.0.1:9/v1' }, 'hunter2'],
    ]) {
      let thrown
      try {
        new EmbeddingService({ model: 'm', endpoint: 'http://127.0.0.1:9/v1', ...options })
      } catch (err) {
        thrown = err
      }
      expect(thrown?.code).toBe('ERR_INVALID_INPUT')
      expect(thrown.message).not.toContain(secret)
    }
  })

  it("normalize and dimensions apply to a server's vectors: unit-length ones renormalised once truncated", async () => {
    const raw = await scriptedServer((input) => [200, { data: input.map((_, i) => ({ index: i, embedding: [3, 4, 0, 12] })) }])
    const unit = await scriptedServer((input) => [200, { data: input.map((_, i) => ({ index: i, embedding: [0.6, 0, 0.8, 0] })) }])
    const rawSvc = new EmbeddingService({ model: 'm', endpoint: raw.url })
    const unitSvc = new EmbeddingService({ model: 'm', endpoint: unit.url })
    try {
      // A server that does not normalise: its vectors as sent, unless normalisation is asked for.
      expect(Array.from(await rawSvc.embed('a'))).toEqual([3, 4, 0, 12])
      expect(Array.from(await rawSvc.embed('a', { normalize: true }))).toEqual([3 / 13, 4 / 13, 0, 12 / 13].map(Math.fround))
      expect(Array.from(await rawSvc.embed('a', { dimensions: 2 }))).toEqual([3, 4])
      expect(Array.from(await rawSvc.embed('a', { dimensions: 2, normalize: true }))).toEqual([0.6, 0.8].map(Math.fround))
      // A server that normalises: whole vectors untouched, truncated ones renormalised.
      expect(Array.from(await unitSvc.embedQuery('q'))).toEqual([0.6, 0, 0.8, 0].map(Math.fround))
      expect(Array.from(await unitSvc.embed('a', { dimensions: 2 }))).toEqual([1, 0])
      expect(Array.from(await unitSvc.embed('a', { dimensions: 2, normalize: false }))).toEqual([Math.fround(0.6), 0])
      await expect(unitSvc.embed('a', { dimensions: 5 })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    } finally {
      await Promise.all([rawSvc.close(), unitSvc.close()])
      await Promise.all([raw.close(), unit.close()])
    }
  })

  it('a value beyond f32 fails the call with ERR_REMOTE naming the text, never a wrong vector', async () => {
    const server = await scriptedServer((input) => [200, input[0] === 'dimension probe' ? vectors(input) : JSON.stringify(vectors(input)).replace('"embedding":[0.5', '"embedding":[1e39')])
    const svc = new EmbeddingService({ model: 'm', endpoint: server.url })
    try {
      const err = await svc.embed(['first', 'second']).catch((e) => e)
      expect(err.code).toBe('ERR_REMOTE')
      expect(err.message).toMatch(/text \d+ has a value that is not a finite f32/)
      expect(await svc.embed(['dimension probe'])).toHaveLength(1)
    } finally {
      await svc.close()
      await server.close()
    }
  })

  it('a redirect is not followed: no vectors from a request that did not carry the texts', async () => {
    const elsewhere = await scriptedServer((input) => [200, vectors(input)])
    const server = await scriptedServer((input) =>
      input[0] === 'dimension probe' ? [200, vectors(input)] : [307, '', { location: `${elsewhere.url}/embeddings` }],
    )
    const svc = new EmbeddingService({ model: 'm', endpoint: server.url })
    try {
      const err = await svc.embed(['a text']).catch((e) => e)
      expect(err.code).toBe('ERR_REMOTE')
      expect(err.message).toMatch(/307 .*redirect/)
      expect(elsewhere.seen.filter((r) => r.method === 'POST')).toEqual([])
    } finally {
      await svc.close()
      await server.close()
      await elsewhere.close()
    }
  })
})
