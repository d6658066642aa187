// The API conventions a Node developer expects (issue 28): a string or any readonly array, `normalize` and
// `dimensions` (checked against sentence-transformers), embedQuery / embedDocuments with the model's prompts
// and lanes, embedBatches as an async iterator, Symbol.asyncDispose, the default export, one vector's bytes.
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { minCosine, minilmDir, nextEvent, readJson, recorder, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { EmbeddingService } = require(root)
const shapes = readJson(path.join(reference('output-shapes'), 'expected.json'))
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const prompts = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0))

let svc
beforeAll(() => {
  svc = new EmbeddingService({ model: minilmDir(), threads: 2 })
})
afterAll(() => svc.close())

describe('inputs', () => {
  it('takes a single string and resolves to its one vector', async () => {
    const [want] = await svc.embed(['a single string'])
    const one = await svc.embed('a single string')
    expect(one).toBeInstanceOf(Float32Array)
    expect(one).toEqual(want)
    const detailed = await svc.embedDetailed('a single string')
    expect(detailed.vectors).toHaveLength(1)
    expect(detailed.tokenCounts).toEqual([5])
  })

  it('takes frozen and other readonly arrays', async () => {
    const all = texts()
    const got = await svc.embed(Object.freeze([...all]))
    expect(minCosine(got, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('refuses what is not a string or an array of strings, and stays usable', async () => {
    await expect(svc.embed(42)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embedQuery(['not', 'one'])).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embedDocuments('one string')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embed(['x'], { inputType: 'search' })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(await svc.embed('still works')).toHaveLength(384)
  })
})

describe('normalize and dimensions', () => {
  const cases = [
    ['dimensions 128', { dimensions: 128 }, 'truncated_128'],
    ['normalize false', { normalize: false }, 'unnormalized'],
    ['normalize false, dimensions 64', { normalize: false, dimensions: 64 }, 'unnormalized_truncated_64'],
  ]
  for (const [label, options, key] of cases) {
    it(`${label} matches sentence-transformers in direction and length`, async () => {
      const got = await svc.embed(texts(), options)
      const want = shapes[key]
      expect(got[0]).toHaveLength(want[0].length)
      expect(minCosine(got, want)).toBeGreaterThanOrEqual(0.99999)
      got.forEach((v, i) => expect(Math.abs(norm(v) - norm(want[i]))).toBeLessThanOrEqual(1e-5 * norm(want[i])))
    })
  }

  it('keeps vectors of one call contiguous at the asked size', async () => {
    const got = await svc.embed(['a', 'b', 'c'], { dimensions: 32 })
    expect(got.map((v) => v.byteOffset)).toEqual([0, 128, 256])
    expect(got[0].buffer.byteLength).toBeGreaterThanOrEqual(3 * 32 * 4)
  })

  it('refuses more dimensions than the model has, and bad values, with ERR_INVALID_INPUT', async () => {
    await expect(svc.embed(['x'], { dimensions: 385 })).rejects.toMatchObject({
      code: 'ERR_INVALID_INPUT',
      message: expect.stringMatching(/385.*384/),
    })
    for (const dimensions of [0, 1.5, -3, '64']) {
      await expect(svc.embed(['x'], { dimensions })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    }
    await expect(svc.embed(['x'], { normalize: 'yes' })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(await svc.embed(['x'], { dimensions: 384 })).toEqual(await svc.embed(['x']))
  })
})

describe('embedQuery and embedDocuments', () => {
  it('use the prompts sentence-transformers encode_query / encode_document pick', async () => {
    const e5 = new EmbeddingService({ model: path.join(reference('tiny-xlmr-mean-prompts'), 'model'), threads: 1 })
    const all = texts()
    const queries = await Promise.all(all.map((t) => e5.embedQuery(t)))
    expect(minCosine(queries, prompts.embeddings_by_prompt.query)).toBeGreaterThanOrEqual(0.99999)
    // This model's "document" prompt is empty: documents are embedded as they are.
    expect(minCosine(await e5.embedDocuments(all), prompts.embeddings)).toBeGreaterThanOrEqual(0.99999)
    expect(minCosine(await e5.embed(all, { inputType: 'query' }), prompts.embeddings_by_prompt.query)).toBeGreaterThanOrEqual(0.99999)
    // An explicit prompt wins over the role.
    const passage = await e5.embedDocuments(all, { prompt: 'passage' })
    expect(minCosine(passage, prompts.embeddings_by_prompt.passage)).toBeGreaterThanOrEqual(0.99999)
    await e5.close()
  })

  it('embedQuery runs on the query lane: it overtakes an index batch in flight', async () => {
    const held = new EmbeddingService({
      model: minilmDir(), threads: 2, maxBatchSize: 64, maxBatchTokens: 1 << 20, testHooks: { holdIndexBatchUntilQueries: 1 },
    })
    await held.load()
    const { events, onProgress } = recorder()
    const order = []
    const job = held.embedDocuments(Array.from({ length: 64 }, (_, i) => `chunk ${i} of a document`), { onProgress })
      .then(() => order.push('documents'))
    await nextEvent(events, (e) => e.status === 'processing_embeddings')
    const query = held.embedQuery('where is the config?').then((v) => (order.push('query'), v))
    const [, vector] = await Promise.all([job, query])
    expect(order).toEqual(['query', 'documents'])
    expect(vector).toEqual(await svc.embed('where is the config?'))
    await held.close()
  })
})

describe('embedBatches', () => {
  it('yields the whole input in order, each batch as embed gives it', async () => {
    const all = texts()
    const seen = []
    for await (const batch of svc.embedBatches(all, { batchSize: 10 })) {
      expect(batch.start).toBe(seen.length)
      expect(batch.texts).toEqual(all.slice(batch.start, batch.start + batch.texts.length))
      expect(batch.vectors).toHaveLength(batch.texts.length)
      expect(batch.tokenCounts).toEqual(minilm.token_counts.slice(batch.start, batch.start + batch.texts.length))
      seen.push(...batch.vectors)
    }
    expect(seen).toHaveLength(all.length)
    expect(minCosine(seen, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('reads an async source no further than one batch ahead of the loop', async () => {
    let pulled = 0
    async function* source() {
      for (let i = 0; i < 100; i++) {
        pulled++
        yield `text ${i}`
      }
    }
    const pulledAtYield = []
    let count = 0
    for await (const batch of svc.embedBatches(source(), { batchSize: 10, dimensions: 8 })) {
      // Let the batch ahead be read and embedded as far as it can go, then look.
      await svc.embed('a barrier behind the batch ahead')
      pulledAtYield.push(pulled)
      count += batch.vectors.length
      expect(batch.vectors[0]).toHaveLength(8)
    }
    expect(count).toBe(100)
    pulledAtYield.forEach((p, i) => expect(p).toBeLessThanOrEqual(Math.min(100, (i + 2) * 10)))
  })

  it('breaking out aborts the batch in flight and closes the source', async () => {
    let closed = false
    function* source() {
      try {
        for (let i = 0; i < 10_000; i++) yield `text ${i}`
      } finally {
        closed = true
      }
    }
    for await (const batch of svc.embedBatches(source(), { batchSize: 50 })) {
      expect(batch.start).toBe(0)
      break
    }
    expect(closed).toBe(true)
    expect(svc.status()).toMatchObject({ activeRequests: 0, queued: { query: 0, index: 0 } })
  })

  it('its signal aborts the loop with an AbortError, and a bad text fails its batch', async () => {
    const controller = new AbortController()
    const got = []
    const loop = (async () => {
      for await (const batch of svc.embedBatches(Array(2000).fill('some text'), { batchSize: 100, signal: controller.signal })) {
        got.push(batch.start)
        if (got.length === 1) controller.abort(new Error('user gave up'))
      }
    })()
    await expect(loop).rejects.toMatchObject({ name: 'AbortError', code: 'ERR_ABORTED', cause: { message: 'user gave up' } })
    expect(got).toEqual([0])

    const bad = []
    const failing = (async () => {
      for await (const batch of svc.embedBatches(['a', 'b', 'c', 4, 'e'], { batchSize: 2 })) bad.push(batch.start)
    })()
    await expect(failing).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(bad).toEqual([0])
    await expect(svc.embedBatches('a string').next()).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embedBatches(['a'], { batchSize: 0 }).next()).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    expect(svc.status()).toMatchObject({ activeRequests: 0, queued: { query: 0, index: 0 } })
  })
})

describe('module conventions', () => {
  it('closes through Symbol.asyncDispose', async () => {
    const own = new EmbeddingService({ model: minilmDir(), threads: 1 })
    expect(typeof Symbol.asyncDispose).toBe('symbol')
    await own[Symbol.asyncDispose]()
    expect(own.status().state).toBe('closed')
    await expect(own.embed('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('has a real default export, from require and from import', async () => {
    const cjs = require(root)
    expect(cjs.default).toBe(cjs)
    expect(cjs.default.EmbeddingService).toBe(EmbeddingService)
    const esm = await import(path.join(root, 'index.mjs'))
    expect(esm.default.EmbeddingService).toBe(EmbeddingService)
    expect(esm.EmbeddingService).toBe(EmbeddingService)
  })

  it("gives one vector's own bytes through its view", async () => {
    const vectors = await svc.embed(['first', 'second', 'third'])
    const bytes = Buffer.from(vectors[1].buffer, vectors[1].byteOffset, vectors[1].byteLength)
    expect(bytes).toHaveLength(384 * 4)
    expect(bytes.equals(Buffer.from(vectors[1].slice().buffer))).toBe(true)
    expect(new Float32Array(bytes.buffer, bytes.byteOffset, 384)).toEqual(vectors[1])
    expect(svc.model).toBe(minilmDir())
  })
})
