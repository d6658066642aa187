// Parity with sentence-transformers through the built addon, loaded from the package root.
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it, afterAll } from 'vitest'
import { hubCacheDir, minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))

describe('all-MiniLM-L6-v2 from a local folder', () => {
  const svc = new EmbeddingService({ model: minilmDir(), threads: 2 })
  afterAll(() => svc.close())

  it('matches sentence-transformers with all 32 texts in one call', async () => {
    expect(svc.dimensions).toBeNull()
    const got = await svc.embed(texts())
    expect(got).toHaveLength(32)
    for (const v of got) {
      expect(v).toBeInstanceOf(Float32Array)
      expect(v.length).toBe(384)
    }
    expect(svc.dimensions).toBe(384)
    expect(svc.status()).toMatchObject({ device: 'cpu', dtype: 'f32' })
    expect(minCosine(got, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('matches one text per call, with all the calls in flight at once', async () => {
    const got = await Promise.all(texts().map((t) => svc.embed([t]).then((v) => v[0])))
    expect(minCosine(got, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('matches with the texts shuffled', async () => {
    const order = texts().map((_, i) => (i * 13 + 5) % 32)
    const got = await svc.embed(order.map((i) => texts()[i]))
    expect(minCosine(got, order.map((i) => minilm.embeddings[i]))).toBeGreaterThanOrEqual(0.99999)
  })
})

describe('all-MiniLM-L6-v2 by hub id from the hub cache, offline', () => {
  it('matches sentence-transformers', async () => {
    const svc = new EmbeddingService({
      model: 'sentence-transformers/all-MiniLM-L6-v2',
      cacheDir: hubCacheDir(),
      offline: true,
      threads: 2,
    })
    const got = await svc.embed(texts())
    expect(minCosine(got, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await svc.close()
  })

  it('finds the cache through HF_HUB_CACHE and HF_HUB_OFFLINE in a fresh process', async () => {
    const { spawnSync } = await import('node:child_process')
    const script = `
      const { EmbeddingService } = require(${JSON.stringify(root)})
      const svc = new EmbeddingService({ model: 'sentence-transformers/all-MiniLM-L6-v2' })
      svc.embed(['hello world']).then((v) => process.stderr.write(JSON.stringify(Array.from(v[0]))))`
    const env = { ...process.env, HF_HUB_CACHE: hubCacheDir(), HF_HUB_OFFLINE: '1', HF_HOME: '/nonexistent' }
    const child = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' })
    expect(child.status).toBe(0)
    expect(child.stdout).toBe('')
    expect(texts()[0]).toBe('hello world')
    expect(minCosine([JSON.parse(child.stderr)], [minilm.embeddings[0]])).toBeGreaterThanOrEqual(0.99999)
  })

  it('rejects an uncached hub id offline with ERR_MODEL_NOT_FOUND', async () => {
    const svc = new EmbeddingService({ model: 'org/not-in-cache', cacheDir: hubCacheDir(), offline: true })
    await expect(svc.embed(['x'])).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    await svc.close()
  })
})

describe('tiny fixtures', () => {
  for (const name of ['tiny-bert-cls', 'tiny-xlmr-cls']) {
    it(`${name} matches sentence-transformers`, async () => {
      const expected = readJson(path.join(reference(name), 'expected.json'))
      const svc = new EmbeddingService({ model: path.join(reference(name), 'model'), threads: 1 })
      const got = await svc.embed(texts())
      expect(svc.dimensions).toBe(expected.dimensions)
      expect(minCosine(got, expected.embeddings)).toBeGreaterThanOrEqual(0.99999)
      await svc.close()
    })
  }

  it('tiny-xlmr-mean-prompts matches with and without each prompt', async () => {
    const dir = reference('tiny-xlmr-mean-prompts')
    const expected = readJson(path.join(dir, 'expected.json'))
    const svc = new EmbeddingService({ model: path.join(dir, 'model'), threads: 1 })
    expect(minCosine(await svc.embed(texts()), expected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    for (const prompt of ['query', 'passage']) {
      const got = await svc.embed(texts(), { prompt })
      expect(minCosine(got, expected.embeddings_by_prompt[prompt])).toBeGreaterThanOrEqual(0.99999)
    }
    await svc.close()
  })
})

describe("dtype: 'bf16'", () => {
  // Whether this CPU can run it decides which behaviour is asserted; both are real checks.
  let svc
  let refusal
  try {
    svc = new EmbeddingService({ model: minilmDir(), threads: 2, device: 'cpu', dtype: 'bf16' })
  } catch (e) {
    refusal = e
  }
  afterAll(() => svc?.close())

  it('stays within cosine 0.999 of sentence-transformers, or is refused up front where the SIMD level is capped to scalar', async () => {
    if (refusal) {
      expect(refusal.code).toBe('ERR_DEVICE_UNAVAILABLE')
      expect(refusal.message).toMatch(/EMBEDDING_SERVICE_SIMD=scalar/)
      return
    }
    const got = await svc.embed(texts())
    expect(svc.status()).toMatchObject({ device: 'cpu', dtype: 'bf16' })
    const worst = minCosine(got, minilm.embeddings)
    expect(worst).toBeGreaterThanOrEqual(0.999)
    expect(worst).toBeLessThan(0.9999999) // rounding the weights moves MiniLM's vectors measurably
  })
})
