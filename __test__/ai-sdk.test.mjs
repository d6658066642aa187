// embedding-service/ai-sdk against the AI SDK itself: `embed` and `embedMany` of the `ai` package run our model
// end to end, with sentence-transformers' vectors, token usage, `dimensions`, provider options and abort.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { embed, embedMany } from 'ai'
import { afterAll, describe, expect, it } from 'vitest'
import { embeddingModel, EmbeddingServiceEmbeddingModel } from '../ai-sdk.mjs'
import { EmbeddingService } from '../index.mjs'
import { minCosine, minilmDir, nextEvent, readJson, recorder, reference, root, texts } from './helpers.mjs'

const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const shapes = readJson(path.join(reference('output-shapes'), 'expected.json'))
const prompts = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const sum = (xs) => xs.reduce((a, b) => a + b, 0)

const service = new EmbeddingService({ model: minilmDir(), threads: 2 })
afterAll(() => service.close())

describe('embeddingModel', () => {
  it('declares the EmbeddingModelV4 specification', () => {
    const model = embeddingModel(service)
    expect(model).toBeInstanceOf(EmbeddingServiceEmbeddingModel)
    expect(model).toMatchObject({ specificationVersion: 'v4', provider: 'embedding-service', modelId: minilmDir(), supportsParallelCalls: true })
    expect(model.maxEmbeddingsPerCall).toBe(Infinity)
    expect(() => embeddingModel({})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
  })

  it('embedMany gives sentence-transformers vectors and the token usage', async () => {
    const all = texts()
    const { embeddings, usage } = await embedMany({ model: embeddingModel(service), values: all })
    expect(embeddings).toHaveLength(all.length)
    expect(minCosine(embeddings, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
    expect(usage).toEqual({ tokens: sum(minilm.token_counts) })
  })

  it("runs over an int8 service: within 1% of sentence-transformers", async () => {
    const int8 = new EmbeddingService({ model: minilmDir(), threads: 2, dtype: 'int8' })
    const { embeddings } = await embedMany({ model: embeddingModel(int8), values: texts() })
    expect(minCosine(embeddings, minilm.embeddings)).toBeGreaterThanOrEqual(0.99)
    expect(int8.status().dtype).toBe('int8')
    await int8.close()
  })

  it('embed gives one vector, its tokens, and honours dimensions', async () => {
    const value = texts()[3]
    const { embedding, usage } = await embed({ model: embeddingModel(service, { inputType: 'query' }), value })
    expect(minCosine([embedding], [minilm.embeddings[3]])).toBeGreaterThanOrEqual(0.99999)
    expect(usage.tokens).toBe(minilm.token_counts[3])
    const short = await embedMany({ model: embeddingModel(service), values: texts(), dimensions: 128 })
    expect(short.embeddings[0]).toHaveLength(128)
    expect(minCosine(short.embeddings, shapes.truncated_128)).toBeGreaterThanOrEqual(0.99999)
  })

  it("takes inputType from providerOptions: the model's query prompt", async () => {
    const e5 = new EmbeddingService({ model: path.join(reference('tiny-xlmr-mean-prompts'), 'model'), threads: 1 })
    const all = texts()
    const asQuery = await embedMany({
      model: embeddingModel(e5), values: all, providerOptions: { 'embedding-service': { inputType: 'query' } },
    })
    expect(minCosine(asQuery.embeddings, prompts.embeddings_by_prompt.query)).toBeGreaterThanOrEqual(0.99999)
    const asDocuments = await embedMany({ model: embeddingModel(e5), values: all })
    expect(minCosine(asDocuments.embeddings, prompts.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await e5.close()
  })

  it('aborts through abortSignal, already aborted or mid-request, and the service carries on', async () => {
    const before = new AbortController()
    before.abort()
    await expect(embed({ model: embeddingModel(service), value: 'x', abortSignal: before.signal })).rejects.toMatchObject({
      name: 'AbortError',
    })
    // A service of its own, whose events say when the request is running.
    const { events, onProgress } = recorder()
    const own = new EmbeddingService({ model: minilmDir(), threads: 2, onProgress })
    const during = new AbortController()
    const big = embedMany({ model: embeddingModel(own), values: Array(20_000).fill('a text to abort'), abortSignal: during.signal })
    await nextEvent(events, (e) => e.status === 'processing_batch')
    during.abort()
    await expect(big).rejects.toMatchObject({ name: 'AbortError', code: 'ERR_ABORTED' })
    expect(events.some((e) => e.status === 'completed')).toBe(false)
    expect((await embed({ model: embeddingModel(own), value: 'after the abort' })).embedding).toHaveLength(384)
    await own.close()
  })

  it("type-checks against the ai package's embed and embedMany (tsconfig.ai-sdk.json)", () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
    const run = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.ai-sdk.json')], { encoding: 'utf8' })
    expect(run.stdout + run.stderr).toBe('')
    expect(run.status).toBe(0)
  })
})
