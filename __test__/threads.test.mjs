// Node worker_threads and garbage collection: the addon loads in workers (one, several at once, one after
// another), a worker that exits mid-request leaves no threads or files behind, and a service collected or
// closed with requests in flight settles every promise.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { afterAll, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const liveThreads = () => fs.readdirSync('/proc/self/task').length
const openFiles = () => fs.readdirSync('/proc/self/fd').length
const linux = process.platform === 'linux'

/** Polls a reading until it is at most `limit` (there is no event for "the OS has reaped a thread"). */
async function settlesTo(read, limit, ms = 20_000) {
  const deadline = Date.now() + ms
  while (read() > limit && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
  return read()
}

// Runs in the worker: embeds `workerData.texts`, posting each batch's progress and the result (or error code).
const workerCode = `
const { parentPort, workerData } = require('node:worker_threads')
const { EmbeddingService } = require(workerData.root)
const svc = new EmbeddingService({
  model: workerData.model, threads: 1, maxBatchSize: 8,
  onProgress(e) { if (e.status === 'processing_batch') parentPort.postMessage({ batch: e.current }) },
})
svc.embed(workerData.texts).then(
  async (vectors) => { await svc.close(); parentPort.postMessage({ vectors }) },
  (e) => parentPort.postMessage({ error: e.code }),
)`

function startWorker(texts) {
  const worker = new Worker(workerCode, { eval: true, workerData: { root, model: minilmDir(), texts } })
  const messages = []
  const waiters = []
  worker.on('message', (m) => {
    messages.push(m)
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise((resolve) => worker.on('exit', resolve))
  const errored = new Promise((_, reject) => worker.on('error', reject))
  /** The first message matching `pred`, or a rejection if the worker dies first. */
  const next = (pred) =>
    Promise.race([
      errored,
      exited.then((code) => Promise.reject(new Error(`worker exited (${code}) before the message`))),
      new Promise((resolve) => {
        const look = () => {
          const m = messages.find(pred)
          if (m) resolve(m)
          else waiters.push(look)
        }
        look()
      }),
    ])
  return { worker, next, exited }
}

describe('worker_threads', () => {
  const sample = texts().slice(0, 8)
  const want = minilm.embeddings.slice(0, 8)

  it('loads and embeds in a worker thread, with the same vectors as the main thread', async () => {
    const w = startWorker(sample)
    const { vectors } = await w.next((m) => m.vectors)
    expect(minCosine(vectors, want)).toBeGreaterThanOrEqual(0.99999)
    expect(await w.exited).toBe(0)
  })

  it('loads in several workers at once', async () => {
    const workers = Array.from({ length: 4 }, () => startWorker(sample))
    const results = await Promise.all(workers.map((w) => w.next((m) => m.vectors)))
    for (const { vectors } of results) expect(minCosine(vectors, want)).toBeGreaterThanOrEqual(0.99999)
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0, 0])
  })

  // The addon was loaded only by workers here (the test process never requires it), so each worker that exits
  // takes the last user of the library with it and the next one loads it again. With mimalloc v3 that crashed the
  // whole process in the allocator's thread setup; the test runs in a child so such a crash is a failure, not a
  // lost test file.
  it('loads in one worker after another, in a process whose main thread never loads it', () => {
    const script = `
      const { Worker } = require('node:worker_threads')
      const code = ${JSON.stringify(workerCode)}
      ;(async () => {
        for (let i = 0; i < 3; i++) {
          const w = new Worker(code, { eval: true, workerData: { root: ${JSON.stringify(root)}, model: ${JSON.stringify(minilmDir())}, texts: ['round ' + i] } })
          const exited = new Promise((r) => w.on('exit', r))
          const m = await new Promise((resolve, reject) => { w.on('message', (m) => m.vectors && resolve(m)); w.on('error', reject) })
          await exited
          process.stderr.write(m.vectors[0].length + ' ')
        }
      })()`
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
    expect({ status: child.status, signal: child.signal, stderr: child.stderr }).toEqual({
      status: 0,
      signal: null,
      stderr: '384 384 384 ',
    })
  })

  it.runIf(linux)('a worker terminated mid-request leaves no threads or open files behind', async () => {
    const long = Array.from({ length: 2000 }, (_, i) => `${texts()[i % 32]} (${i})`)
    // One full round first, so threads Node starts lazily for workers are in the baseline.
    const first = startWorker(sample)
    await first.next((m) => m.vectors)
    await first.exited
    const threads = await settlesTo(liveThreads, Infinity)
    const files = openFiles()
    for (let round = 0; round < 3; round++) {
      const w = startWorker(long)
      await w.next((m) => m.batch >= 2)
      // The inference thread and its pool are alive and busy when the worker goes away.
      expect(liveThreads()).toBeGreaterThan(threads)
      await w.worker.terminate()
      expect(await settlesTo(liveThreads, threads)).toBeLessThanOrEqual(threads)
      expect(openFiles()).toBeLessThanOrEqual(files)
    }
    // And the process still embeds correctly.
    const again = startWorker(sample)
    const { vectors } = await again.next((m) => m.vectors)
    expect(minCosine(vectors, want)).toBeGreaterThanOrEqual(0.99999)
  })
})

describe('a service dropped or closed with requests in flight', () => {
  const { EmbeddingService } = createRequire(import.meta.url)(root)
  const services = []
  afterAll(() => Promise.all(services.map((s) => s.close())))

  // The service object is unreachable while its requests run; collecting it must neither crash nor strand a
  // promise. Each promise either resolves (the request kept the service alive) or rejects with ERR_CLOSED.
  it.runIf(linux)('garbage collection settles every promise and stops the service threads', () => {
    const script = `
      const fs = require('node:fs')
      const { EmbeddingService } = require(${JSON.stringify(root)})
      const threads = () => fs.readdirSync('/proc/self/task').length
      const before = threads()
      const model = ${JSON.stringify(minilmDir())}
      const pending = []
      for (let s = 0; s < 4; s++) {
        let svc = new EmbeddingService({ model, threads: 1, maxBatchSize: 4 })
        for (let r = 0; r < 3; r++) pending.push(svc.embed(Array.from({ length: 64 }, (_, i) => 'text ' + s + ' ' + r + ' ' + i)))
        svc = null
      }
      ;(async () => {
        for (let i = 0; i < 20; i++) { global.gc(); await new Promise((r) => setImmediate(r)) }
        const settled = await Promise.allSettled(pending)
        const outcome = settled.map((s) => s.status === 'fulfilled' ? 'ok:' + s.value.length : 'err:' + s.reason.code)
        const deadline = Date.now() + 20000
        while (threads() > before && Date.now() < deadline) { global.gc(); await new Promise((r) => setTimeout(r, 25)) }
        process.stdout.write(JSON.stringify({ outcome, extraThreads: threads() - before }))
      })()`
    const child = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' })
    expect(child.signal).toBe(null)
    expect(child.status).toBe(0)
    const { outcome, extraThreads } = JSON.parse(child.stdout)
    expect(outcome).toHaveLength(12)
    for (const o of outcome) expect(['ok:64', 'err:ERR_CLOSED']).toContain(o)
    expect(extraThreads).toBeLessThanOrEqual(0)
  })

  it('close() with requests queued and running settles each one, and other services are untouched', async () => {
    const model = minilmDir()
    const bystander = new EmbeddingService({ model, threads: 1 })
    services.push(bystander)
    const victim = new EmbeddingService({ model, threads: 1, maxBatchSize: 4 })
    const started = new Promise((resolve) => {
      victim.embed(Array.from({ length: 400 }, (_, i) => `running ${i}`), {
        onProgress: (e) => e.status === 'processing_batch' && resolve(),
      }).catch(() => {})
    })
    const inFlight = [
      victim.embed(Array.from({ length: 400 }, (_, i) => `running ${i}`)),
      victim.embed(['queued query'], { priority: 'query' }),
      victim.embed(['queued index']),
    ]
    const outcomes = Promise.allSettled(inFlight)
    const bystanderWork = bystander.embed(texts().slice(0, 8))
    await started
    await victim.close()
    const settled = await outcomes
    for (const s of settled) {
      // A query may overtake and finish before close(); nothing is left pending and nothing else is possible.
      if (s.status === 'fulfilled') expect(s.value.length).toBeGreaterThan(0)
      else expect(s.reason.code).toBe('ERR_CLOSED')
    }
    expect(settled.filter((s) => s.status === 'rejected').length).toBeGreaterThanOrEqual(2)
    expect(minCosine(await bystanderWork, minilm.embeddings.slice(0, 8))).toBeGreaterThanOrEqual(0.99999)
  })
})

describe('several services and concurrent lifecycle calls', () => {
  const { EmbeddingService } = createRequire(import.meta.url)(root)

  it('load() twice at once loads the model once; unload() twice at once unloads it once', async () => {
    const svc = new EmbeddingService({ model: minilmDir(), threads: 1 })
    await Promise.all([svc.load(), svc.load(), svc.load()])
    expect(svc.status()).toMatchObject({ state: 'ready', loadCount: 1 })
    await Promise.all([svc.unload(), svc.unload()])
    expect(svc.status()).toMatchObject({ state: 'unloaded', unloadCount: 1 })
    await svc.close()
  })

  it('eight services on the same model at once give the same vectors, and closing one leaves the rest working', async () => {
    const sample = texts().slice(0, 8)
    const want = minilm.embeddings.slice(0, 8)
    const services = Array.from({ length: 8 }, () => new EmbeddingService({ model: minilmDir(), threads: 1 }))
    const first = await Promise.all(services.map((s) => s.embed(sample)))
    for (const vectors of first) expect(minCosine(vectors, want)).toBeGreaterThanOrEqual(0.99999)
    await services[0].close()
    const rest = await Promise.all(services.slice(1).map((s) => s.embed(sample.slice(0, 2))))
    for (const vectors of rest) expect(minCosine(vectors, want.slice(0, 2))).toBeGreaterThanOrEqual(0.99999)
    await Promise.all(services.slice(1).map((s) => s.close()))
  })
})
