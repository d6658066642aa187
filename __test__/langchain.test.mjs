// embedding-service/langchain against LangChain.js itself: the class is an `Embeddings` of the build its user
// loads (ESM and CommonJS), a real MemoryVectorStore ranks with it, and its vectors are sentence-transformers'.
import { createRequire } from 'node:module'
import path from 'node:path'
import { Embeddings } from '@langchain/core/embeddings'
import { Document } from '@langchain/core/documents'
import { MemoryVectorStore } from '@langchain/classic/vectorstores/memory'
import { afterAll, describe, expect, it } from 'vitest'
import { EmbeddingServiceEmbeddings } from '../langchain.mjs'
import { EmbeddingService } from '../index.mjs'
import { minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))
const prompts = readJson(path.join(reference('tiny-xlmr-mean-prompts'), 'expected.json'))
const services = []
afterAll(() => Promise.all(services.map((s) => s.close())))
const made = (e) => (services.push(e.service), e)

describe('EmbeddingServiceEmbeddings', () => {
  it('is an Embeddings of both builds of @langchain/core', () => {
    const esm = made(new EmbeddingServiceEmbeddings({ model: minilmDir(), threads: 1 }))
    expect(esm).toBeInstanceOf(Embeddings)
    const cjs = require(path.join(root, 'langchain.js'))
    const { Embeddings: CjsEmbeddings } = require('@langchain/core/embeddings')
    const shared = new cjs.EmbeddingServiceEmbeddings({ service: esm.service })
    expect(shared).toBeInstanceOf(CjsEmbeddings)
    expect(shared.service).toBe(esm.service)
  })

  it('matches sentence-transformers through embedQuery and embedDocuments', async () => {
    const lc = made(new EmbeddingServiceEmbeddings({ model: minilmDir(), threads: 2 }))
    const docs = await lc.embedDocuments(texts())
    expect(Array.isArray(docs[0])).toBe(true)
    expect(typeof docs[0][0]).toBe('number')
    expect(minCosine(docs, minilm.embeddings)).toBeGreaterThanOrEqual(0.99999)
    const query = await lc.embedQuery(texts()[0])
    expect(minCosine([query], [minilm.embeddings[0]])).toBeGreaterThanOrEqual(0.99999)
    const short = made(new EmbeddingServiceEmbeddings({ model: minilmDir(), threads: 1, dimensions: 64 }))
    expect(await short.embedQuery('x')).toHaveLength(64)
  })

  it("takes dtype 'int8' as a service option: within 1% of sentence-transformers", async () => {
    const lc = made(new EmbeddingServiceEmbeddings({ model: minilmDir(), threads: 2, dtype: 'int8' }))
    expect(minCosine(await lc.embedDocuments(texts()), minilm.embeddings)).toBeGreaterThanOrEqual(0.99)
    expect(lc.service.status().dtype).toBe('int8')
  })

  it("gives queries the model's query prompt and documents its document prompt", async () => {
    const lc = made(new EmbeddingServiceEmbeddings({ model: path.join(reference('tiny-xlmr-mean-prompts'), 'model'), threads: 1 }))
    const all = texts()
    const queries = await Promise.all(all.map((t) => lc.embedQuery(t)))
    expect(minCosine(queries, prompts.embeddings_by_prompt.query)).toBeGreaterThanOrEqual(0.99999)
    expect(minCosine(await lc.embedDocuments(all), prompts.embeddings)).toBeGreaterThanOrEqual(0.99999)
  })

  it('ranks the right document first in a MemoryVectorStore', async () => {
    const lc = made(new EmbeddingServiceEmbeddings({ model: minilmDir(), threads: 2 }))
    const store = new MemoryVectorStore(lc)
    await store.addDocuments([
      new Document({ pageContent: 'The cat sat on the warm windowsill all afternoon.', metadata: { id: 'cat' } }),
      new Document({ pageContent: 'Quarterly revenue grew by twelve percent year over year.', metadata: { id: 'finance' } }),
      new Document({ pageContent: 'To reset your password, open Settings and choose Security.', metadata: { id: 'password' } }),
      new Document({ pageContent: 'The recipe needs two cups of flour and a pinch of salt.', metadata: { id: 'recipe' } }),
    ])
    const cases = [
      ['how do I change my login password?', 'password'],
      ['where is the kitten sleeping?', 'cat'],
      ['how much did sales increase?', 'finance'],
      ['what ingredients do I need for baking?', 'recipe'],
    ]
    for (const [question, id] of cases) {
      const [[best, score]] = await store.similaritySearchWithScore(question, 1)
      expect(best.metadata.id, question).toBe(id)
      expect(score).toBeGreaterThan(0.3)
    }
  })

  it('refuses a service and the options of another at once', () => {
    const svc = new EmbeddingService({ model: minilmDir(), threads: 1 })
    services.push(svc)
    expect(() => new EmbeddingServiceEmbeddings({ service: svc, model: 'other' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_INPUT' }),
    )
    expect(() => new EmbeddingServiceEmbeddings({})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
  })

  it('names the package to install when the optional peer is missing', () => {
    const { requirePeer } = require(path.join(root, 'adapters/peer.js'))
    expect(() => requirePeer('langchain', '@no-such/peer', '@no-such/peer/embeddings')).toThrow(
      expect.objectContaining({ code: 'ERR_PEER_DEPENDENCY_MISSING', message: expect.stringContaining('npm install @no-such/peer') }),
    )
    // Any other failure of a present package is left as it is.
    expect(() => requirePeer('langchain', '@langchain/core', '@langchain/core/no-such-entry')).toThrow(
      expect.not.objectContaining({ code: 'ERR_PEER_DEPENDENCY_MISSING' }),
    )
  })
})
