// Load: many concurrent callers mixing queries, index jobs, aborts and unloads. Every promise settles, nothing
// deadlocks, and every vector equals the one a serial run gives for the same text.
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { minilmDir, root, texts, fixtures } from './helpers.mjs'
import { prng } from '../bench/random.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)


const maxAbsDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)

// The pool every request draws from: the reference texts plus longer variants, so batches mix lengths.
const pool = texts().flatMap((t, i) => [t, `${t} ${'and some more words to make it longer '.repeat(1 + (i % 9))}`])

async function storm({ model, seed, callers, opsPerCaller, tolerance }) {
  const serialService = new EmbeddingService({ model, threads: 2 })
  const serial = new Map()
  for (const t of pool) serial.set(t, (await serialService.embed([t]))[0])
  await serialService.close()

  const random = prng(seed)
  const svc = new EmbeddingService({ model, threads: 2, maxBatchSize: 8, keepAliveMs: 5 })
  const tally = { query: 0, index: 0, aborted: 0, abortedTooLate: 0, unloads: 0, texts: 0 }
  let worst = 0

  async function caller() {
    for (let op = 0; op < opsPerCaller; op++) {
      const roll = random()
      if (roll < 0.08) {
        await svc.unload()
        tally.unloads++
        continue
      }
      const query = roll < 0.5
      const n = query ? 1 + Math.floor(random() * 3) : 4 + Math.floor(random() * 40)
      const batch = Array.from({ length: n }, () => pool[Math.floor(random() * pool.length)])
      const abort = random() < 0.15 ? new AbortController() : null
      const request = svc.embed(batch, { priority: query ? 'query' : 'index', signal: abort?.signal })
      if (abort) setTimeout(() => abort.abort(), Math.floor(random() * 15))
      try {
        const vectors = await request
        expect(vectors).toHaveLength(n)
        vectors.forEach((v, i) => (worst = Math.max(worst, maxAbsDiff(v, serial.get(batch[i])))))
        tally[query ? 'query' : 'index']++
        tally.texts += n
        if (abort) tally.abortedTooLate++
      } catch (e) {
        // The only failure allowed is the abort this caller asked for.
        expect(abort, `unexpected ${e.code}: ${e.message}`).not.toBe(null)
        expect(e).toMatchObject({ name: 'AbortError', code: 'ERR_ABORTED' })
        tally.aborted++
      }
    }
  }

  const outcomes = await Promise.allSettled(Array.from({ length: callers }, caller))
  const failures = outcomes.filter((o) => o.status === 'rejected').map((o) => o.reason)
  expect(failures).toEqual([])
  expect(worst).toBeLessThanOrEqual(tolerance)
  expect(svc.status()).toMatchObject({ activeRequests: 0, queued: { query: 0, index: 0 } })
  await svc.close()
  return { ...tally, worst }
}

describe('64 concurrent callers', () => {
  it('mixing queries, index jobs, aborts and unloads: all settle, and the vectors equal a serial run', async () => {
    const got = await storm({ model: minilmDir(), seed: 7, callers: 64, opsPerCaller: 6, tolerance: 1e-6 })
    // The mix really happened: each kind of operation occurred.
    expect(got.query).toBeGreaterThan(0)
    expect(got.index).toBeGreaterThan(0)
    expect(got.aborted).toBeGreaterThan(0)
    expect(got.unloads).toBeGreaterThan(0)
    process.stderr.write(`[load] ${JSON.stringify(got)}\n`)
  })

  it('the same on a second model family (XLM-R, SentencePiece) with another seed', async () => {
    const model = path.join(fixtures, 'reference', 'tiny-xlmr-cls', 'model')
    const got = await storm({ model, seed: 11, callers: 64, opsPerCaller: 6, tolerance: 1e-6 })
    expect(got.query + got.index).toBeGreaterThan(0)
    process.stderr.write(`[load] ${JSON.stringify(got)}\n`)
  })
})

describe('a huge request', () => {
  // No limit on the number of texts: 100,000 are accepted, batched, reported and returned in order. (The tiny
  // XLM-R model keeps this inside CI time; `npm run soak` runs 100,000 texts on all-MiniLM-L6-v2.)
  it('embeds a 100,000-text array in order, with progress, the same as one text at a time', async () => {
    const model = path.join(fixtures, 'reference', 'tiny-xlmr-cls', 'model')
    const svc = new EmbeddingService({ model, threads: 2 })
    const many = Array.from({ length: 100_000 }, (_, i) => `document chunk number ${i} about topic ${i % 97}`)
    let last = null
    const vectors = await svc.embed(many, {
      onProgress: (e) => e.status === 'processing_embeddings' && (last = e),
    })
    expect(vectors).toHaveLength(100_000)
    expect(last).toMatchObject({ current: 100_000, total: 100_000 })
    const random = prng(3)
    for (let k = 0; k < 40; k++) {
      const i = Math.floor(random() * many.length)
      const [alone] = await svc.embed([many[i]])
      expect(maxAbsDiff(vectors[i], alone)).toBeLessThanOrEqual(1e-6)
    }
    await svc.close()
  })
})

describe('a slow progress callback', () => {
  // The worker never waits for JS: events queue in a bounded mailbox (a full one coalesces routine progress),
  // and a callback that takes 10 ms per event only delays its own deliveries.
  it('blocks only itself: the job finishes correctly, progress stays ordered and ends at the total', async () => {
    const model = path.join(fixtures, 'reference', 'tiny-xlmr-cls', 'model')
    const svc = new EmbeddingService({ model, threads: 1, maxBatchSize: 2 })
    const many = Array.from({ length: 600 }, (_, i) => `chunk ${i} ${'word '.repeat(i % 13)}`)
    const seen = []
    const busy = (ms) => {
      const end = performance.now() + ms
      while (performance.now() < end);
    }
    const vectors = await svc.embed(many, {
      onProgress: (e) => {
        seen.push(e)
        busy(10)
      },
    })
    const progress = seen.filter((e) => e.status === 'processing_embeddings').map((e) => e.current)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(progress.at(-1)).toBe(600)
    expect(seen.at(-1).status).toBe('completed')
    for (const i of [0, 299, 599]) expect(maxAbsDiff(vectors[i], (await svc.embed([many[i]]))[0])).toBeLessThanOrEqual(1e-6)
    await svc.close()
  })
})
