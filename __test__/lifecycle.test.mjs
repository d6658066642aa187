// Lifecycle, priority, progress events and the stall watchdog, from JS. Tests wait on events and promises,
// never on sleeps; the only timers are the gaps between requests that the race test is about.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { cosine, minilmDir, nextEvent, recorder, reference, root, texts } from './helpers.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)
const tiny = path.join(reference('tiny-bert-cls'), 'model')

const chunks = (n) => Array.from({ length: n }, (_, i) => `${texts()[i % 32]} (chunk ${i})`)

describe('progress events', () => {
  it('a 1000-text request reports its start, every batch and its completion, in order', async () => {
    const { events, onProgress } = recorder()
    const mine = []
    const svc = new EmbeddingService({ model: tiny, threads: 1, onProgress })
    const got = await svc.embed(chunks(1000), { onProgress: (e) => mine.push(e) })
    expect(got).toHaveLength(1000)
    expect(mine.length).toBeGreaterThan(3)
    expect(mine.every((e) => e.requestId === mine[0].requestId && e.type === 'progress')).toBe(true)
    expect(mine[0]).toMatchObject({ status: 'processing_embeddings', current: 0, total: 1000 })
    expect(mine.at(-1)).toMatchObject({ status: 'completed', current: 1000, total: 1000, message: 'completed: 1000/1000' })
    const batches = mine.filter((e) => e.status === 'processing_batch')
    expect(batches.length).toBeGreaterThanOrEqual(1000 / 32)
    batches.forEach((b, i) => expect(b.details).toBe(`Batch ${i + 1}/${batches.length}`))
    const done = mine.filter((e) => e.status === 'processing_embeddings').map((e) => e.current)
    expect(done).toEqual([...done].sort((a, b) => a - b))
    expect(new Set(done).size).toBe(done.length)
    const moving = mine.find((e) => e.status === 'processing_embeddings' && e.current > 0)
    expect(moving.textsPerSecond).toBeGreaterThan(0)
    expect(moving.etaMs).toBeGreaterThanOrEqual(0)
    const times = events.map((e) => e.timestamp)
    expect(times).toEqual([...times].sort((a, b) => a - b))
    expect(events.filter((e) => e.status === 'loading_model').length).toBeGreaterThanOrEqual(2)
    // The service-wide callback saw the request's events too.
    expect(events.filter((e) => e.requestId === mine[0].requestId)).toEqual(mine)
    await svc.close()
  })

  it('a callback that throws is reported through the logger and harms nothing', async () => {
    const logs = []
    const svc = new EmbeddingService({
      model: tiny,
      threads: 1,
      onProgress: () => {
        throw new Error('listener bug')
      },
      logger: (level, message) => logs.push([level, message]),
    })
    expect(await svc.embed(['a', 'b'])).toHaveLength(2)
    expect(logs.some(([level, m]) => level === 'error' && m.includes('listener bug'))).toBe(true)
    expect(await svc.embed(['c'])).toHaveLength(1)
    await svc.close()
  })
})

describe('priority', () => {
  it('queries during a 2000-text index job all finish before it, and the job is unchanged', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: minilmDir(), threads: 2, onProgress })
    const docs = chunks(2000)
    const finished = []
    const job = svc.embed(docs, { priority: 'index' }).then((v) => {
      finished.push('job')
      return v
    })
    await nextEvent(events, (e) => e.status === 'processing_batch')
    const queries = Array.from({ length: 10 }, (_, i) =>
      svc.embed([`how do I configure option ${i}?`], { priority: 'query' }).then((v) => {
        finished.push(`q${i}`)
        return v
      }),
    )
    const status = svc.status()
    expect(status.state).toBe('working')
    expect(status.queued.query + status.activeRequests).toBeGreaterThan(0)
    await Promise.all(queries)
    const jobVectors = await job
    expect(finished.at(-1)).toBe('job')
    expect(finished.filter((f) => f.startsWith('q'))).toHaveLength(10)
    // The job's results equal embedding a sample of the same texts alone.
    const sample = [0, 1, 999, 1999]
    const alone = await svc.embed(sample.map((i) => docs[i]))
    sample.forEach((i, k) => expect(cosine(jobVectors[i], alone[k])).toBeGreaterThanOrEqual(0.99999))
    await svc.close()
  })
})

describe('a query inside an index batch', () => {
  it('finishes before the batch it overtook, and both give the vectors they give alone, bit for bit', async () => {
    const docs = chunks(64)
    const question = ['where is the config?', 'how do I unload the model?']
    // One batch of 64 texts that waits inside its forward pass until a query is queued (a test hook: nothing
    // here is timed).
    const all = recorder()
    const svc = new EmbeddingService({
      model: minilmDir(), threads: 2, maxBatchSize: 64, maxBatchTokens: 1 << 20, testHooks: { holdIndexBatchUntilQueries: 1 },
      onProgress: all.onProgress,
    })
    await svc.load()
    const { events, onProgress } = recorder()
    const order = []
    const job = svc.embed(docs, { onProgress }).then((v) => (order.push('job'), v))
    await nextEvent(events, (e) => e.status === 'processing_embeddings')
    const query = svc.embed(question, { priority: 'query' }).then((v) => (order.push('query'), v))
    const [jobVectors, queryVectors] = await Promise.all([job, query])
    expect(order).toEqual(['query', 'job'])
    // In the service's event stream (emission order), the query completed before the job's first batch did.
    const jobId = events[0].requestId
    const queryDone = all.events.findIndex((e) => e.status === 'completed' && e.requestId !== jobId)
    const firstJobBatch = all.events.findIndex((e) => e.status === 'processing_batch' && e.requestId === jobId)
    expect(queryDone).toBeGreaterThanOrEqual(0)
    expect(queryDone).toBeLessThan(firstJobBatch)
    await svc.close()

    const plain = new EmbeddingService({ model: minilmDir(), threads: 2, maxBatchSize: 64, maxBatchTokens: 1 << 20 })
    const [aloneJob, aloneQuery] = [await plain.embed(docs), await plain.embed(question, { priority: 'query' })]
    jobVectors.forEach((v, i) => expect(v).toEqual(aloneJob[i]))
    queryVectors.forEach((v, i) => expect(v).toEqual(aloneQuery[i]))
    await plain.close()
  })
})

describe('idle unload', () => {
  it('unloads after keepAliveMs with no work and reloads for the next request', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: tiny, threads: 1, keepAliveMs: 200, onProgress })
    await svc.embed(['a'])
    const idle = await nextEvent(events, (e) => e.status === 'idle')
    expect(idle.details).toBe('model unloaded')
    const statuses = events.map((e) => e.status)
    expect(statuses.indexOf('unloading_model')).toBeLessThan(statuses.indexOf('idle'))
    expect(svc.status()).toMatchObject({ state: 'unloaded', modelLoaded: false, unloadCount: 1, loadCount: 1 })
    expect(await svc.embed(['b'])).toHaveLength(1)
    expect(svc.status()).toMatchObject({ modelLoaded: true, loadCount: 2 })
    await svc.close()
  })

  it('never unloads with work queued or running, under a 1 ms keep-alive and bursty callers', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: tiny, threads: 1, keepAliveMs: 1, onProgress })
    const want = await svc.embed(['fixed text'])
    let seed = 12345
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    const caller = async () => {
      for (let i = 0; i < 60; i++) {
        // The gaps are the point of this test: some shorter than the keep-alive, some longer.
        await new Promise((r) => setTimeout(r, Math.floor(random() * 4)))
        const [v] = await svc.embed(['fixed text'], { priority: random() < 0.5 ? 'query' : 'index' })
        expect(cosine(v, want[0])).toBeGreaterThanOrEqual(0.99999)
        const s = svc.status()
        if (s.state === 'unloading' || s.state === 'unloaded') expect(s.activeRequests).toBe(0)
      }
    }
    await Promise.all([caller(), caller(), caller(), caller()])
    const running = new Set()
    for (const e of events) {
      if (e.status === 'processing_embeddings' && e.current === 0) running.add(e.requestId)
      if (e.status === 'completed') running.delete(e.requestId)
      if (e.status === 'unloading_model') expect([...running]).toEqual([])
    }
    expect(svc.status().unloadCount).toBeGreaterThan(0)
    await svc.close()
  })
})

describe('the stall watchdog', () => {
  it('warns, fails the stuck request with ERR_STALLED, and a fresh worker serves the next one', async () => {
    const { events, onProgress } = recorder()
    const logs = []
    const svc = new EmbeddingService({
      model: tiny,
      threads: 1,
      stallWarningMs: 100,
      stallTimeoutMs: 250,
      testHooks: { stallMs: 800 },
      onProgress,
      logger: (level, message) => logs.push(level),
    })
    await expect(svc.embed(['stuck'])).rejects.toMatchObject({ code: 'ERR_STALLED' })
    await nextEvent(events, (e) => e.status === 'stalled')
    const statuses = events.map((e) => e.status)
    expect(statuses.indexOf('stall_warning')).toBeGreaterThanOrEqual(0)
    expect(statuses.indexOf('stall_warning')).toBeLessThan(statuses.indexOf('stalled'))
    expect(logs).toContain('warn')
    // testHooks.stallMs stalls the first worker only: its replacement reloads the model and succeeds.
    expect(await svc.embed(['next'])).toHaveLength(1)
    expect(svc.status().loadCount).toBe(2)
    await svc.close()
  })

  it('never fails a long request whose batches are slow but keep reporting progress', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({
      model: tiny,
      threads: 1,
      maxBatchSize: 2,
      stallWarningMs: 100,
      stallTimeoutMs: 200,
      testHooks: { stallMs: 60 },
      onProgress,
    })
    expect(await svc.embed(chunks(20))).toHaveLength(20)
    expect(events.filter((e) => e.status === 'stall_warning' || e.status === 'stalled')).toEqual([])
    await svc.close()
  })
})

describe('abort, close and exit', () => {
  it('an AbortSignal rejects mid-job with AbortError, promptly, without disturbing other requests', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: tiny, threads: 1, maxBatchSize: 2, onProgress })
    const controller = new AbortController()
    const job = svc.embed(chunks(2000), { signal: controller.signal })
    const other = svc.embed(['unaffected'])
    await nextEvent(events, (e) => e.status === 'processing_batch')
    controller.abort()
    const err = await job.then(() => null, (e) => e)
    expect(err).toMatchObject({ name: 'AbortError', code: 'ERR_ABORTED' })
    const jobId = events.find((e) => e.total === 2000).requestId
    expect(events.some((e) => e.requestId === jobId && e.status === 'completed')).toBe(false)
    expect(await other).toHaveLength(1)
    await svc.close()
  })

  it('an already-aborted signal rejects at once; a non-signal is ERR_INVALID_INPUT', async () => {
    const svc = new EmbeddingService({ model: tiny, threads: 1 })
    await expect(svc.embed(['a'], { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
      code: 'ERR_ABORTED',
    })
    await expect(svc.embed(['a'], { signal: { aborted: false } })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embed(['a'], { priority: 'urgent' })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(svc.status().loadCount).toBe(0)
    await svc.close()
  })

  it('close() mid-job rejects running and queued requests with ERR_CLOSED and frees the model', async () => {
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: tiny, threads: 1, maxBatchSize: 2, onProgress })
    // Outcomes are captured now: both settle while close() is awaited.
    const running = svc.embed(chunks(2000)).then(() => 'resolved', (e) => e.code)
    const queued = svc.embed(['queued']).then(() => 'resolved', (e) => e.code)
    await nextEvent(events, (e) => e.status === 'processing_batch')
    await svc.close()
    expect(await running).toBe('ERR_CLOSED')
    expect(await queued).toBe('ERR_CLOSED')
    expect(svc.status()).toMatchObject({ state: 'closed', modelLoaded: false })
    await expect(svc.load()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('load() and unload() on demand; status() tells the truth', async () => {
    const svc = new EmbeddingService({ model: tiny, threads: 1, keepAliveMs: -1 })
    expect(svc.status()).toMatchObject({ state: 'unloaded', modelLoaded: false, device: null, dtype: null, dimensions: null })
    await svc.load()
    expect(svc.status()).toMatchObject({ state: 'ready', modelLoaded: true, device: 'cpu', dimensions: 32, loadCount: 1 })
    expect(svc.status()).toMatchObject({ dtype: 'f32', family: 'bert', simd: expect.any(String) })
    await svc.unload()
    // What describes the loaded model goes with it; the dimensions stay known.
    expect(svc.status()).toMatchObject({
      state: 'unloaded',
      modelLoaded: false,
      unloadCount: 1,
      device: null,
      dtype: null,
      simd: null,
      family: null,
      dimensions: 32,
    })
    await svc.close()
  })

  it('a process that embeds with a keep-alive and never calls close() exits by itself', () => {
    const script = `
      const { EmbeddingService } = require(${JSON.stringify(root)})
      const svc = new EmbeddingService({ model: ${JSON.stringify(tiny)}, keepAliveMs: 600000, onProgress() {} })
      svc.embed(['a text']).then((v) => process.stderr.write('dims ' + v[0].length))`
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
    expect(child.status).toBe(0)
    expect(child.stdout).toBe('')
    expect(child.stderr).toBe('dims 32')
  })
})
