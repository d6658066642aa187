// Gemma 3 (as EmbeddingGemma uses it: bidirectional attention with local and global layers, mean pooling, two
// Dense projections, task prompts for queries and documents, Matryoshka sizes) through the built addon and each
// adapter, on the tiny-gemma3-mean fixture: the query prompt where each adapter's query call asks for one, the
// document prompt for documents (as sentence-transformers' encode_document picks it), and status().family.
import path from 'node:path'
import { embed, embedMany } from 'ai'
import { afterAll, describe, expect, it } from 'vitest'
import { embeddingModel } from '../ai-sdk.mjs'
import { EmbeddingServiceEmbeddings } from '../langchain.mjs'
import { NativeEmbeddingBackend } from '../daemon.mjs'
import { EmbeddingService } from '../index.mjs'
import { minCosine, readJson, reference, texts } from './helpers.mjs'

const dir = path.join(reference('tiny-gemma3-mean'), 'model')
const expected = readJson(path.join(reference('tiny-gemma3-mean'), 'expected.json'))
const chunk = (content, sourceFile) => ({
  content, chunkIndex: 0, startPosition: 0, endPosition: content.length,
  metadata: { sourceFile, sourceType: 'md', totalChunks: 1, hasOverlap: false },
})

describe('an EmbeddingGemma-shaped model', () => {
  const svc = new EmbeddingService({ model: dir, threads: 2 })
  afterAll(() => svc.close())

  it('matches sentence-transformers without a prompt, with its task prompts, and at its Matryoshka sizes', async () => {
    const { vectors, tokenCounts } = await svc.embedDetailed(texts())
    expect(tokenCounts).toEqual(expected.token_counts)
    expect(minCosine(vectors, expected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    expect(svc.status()).toMatchObject({ family: 'gemma3_text', dimensions: 32 })
    expect(svc.status().prompts).toEqual(expect.arrayContaining(['query', 'document', 'STS', 'Classification']))
    const queries = await svc.embed(texts(), { inputType: 'query' })
    expect(minCosine(queries, expected.embeddings_by_prompt.query)).toBeGreaterThanOrEqual(0.99999)
    const documents = await svc.embed(texts(), { inputType: 'document' })
    expect(minCosine(documents, expected.embeddings_by_prompt.document)).toBeGreaterThanOrEqual(0.99999)
    for (const [size, want] of Object.entries(expected.embeddings_truncated)) {
      const got = await svc.embed(texts(), { dimensions: Number(size) })
      expect(got[0]).toHaveLength(Number(size))
      expect(minCosine(got, want)).toBeGreaterThanOrEqual(0.99999)
    }
  })

  it('LangChain: embedQuery with the query prompt, embedDocuments with the document prompt', async () => {
    const lc = new EmbeddingServiceEmbeddings({ model: dir, threads: 1 })
    const all = texts()
    expect(minCosine([await lc.embedQuery(all[3])], [expected.embeddings_by_prompt.query[3]])).toBeGreaterThanOrEqual(0.99999)
    expect(minCosine(await lc.embedDocuments(all), expected.embeddings_by_prompt.document)).toBeGreaterThanOrEqual(0.99999)
    await lc.service.close()
  })

  it('AI SDK: a query model with the query prompt, the default with the document prompt', async () => {
    const all = texts()
    const { embedding } = await embed({ model: embeddingModel(svc, { inputType: 'query' }), value: all[7] })
    expect(minCosine([embedding], [expected.embeddings_by_prompt.query[7]])).toBeGreaterThanOrEqual(0.99999)
    const { embeddings } = await embedMany({ model: embeddingModel(svc), values: all })
    expect(minCosine(embeddings, expected.embeddings_by_prompt.document)).toBeGreaterThanOrEqual(0.99999)
  })

  it('the daemon adapter: its searches get the query prompt, its chunks the document prompt', async () => {
    const backend = new NativeEmbeddingBackend({ modelName: dir, batchSize: 32, maxSequenceLength: 256, threads: 1 })
    await backend.initialize()
    const all = texts()
    const query = await backend.generateQueryEmbedding(all[10])
    expect(minCosine([query.vector ?? query], [expected.embeddings_by_prompt.query[10]])).toBeGreaterThanOrEqual(0.99999)
    const docs = await backend.generateEmbeddings(all.slice(0, 8).map((t, i) => chunk(t, `/docs/${i}.md`)))
    expect(minCosine(docs.map((d) => d.vector), expected.embeddings_by_prompt.document.slice(0, 8))).toBeGreaterThanOrEqual(0.99999)
    await backend.shutdown()
  })
})
