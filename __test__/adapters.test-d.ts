// Type-level tests of the framework adapters against the frameworks' own types: the LangChain class is an
// `Embeddings` a MemoryVectorStore takes, and the AI SDK model is an `EmbeddingModelV4`. Checked by tsc
// through `vitest --typecheck`.
import type { EmbeddingModelV4 } from '@ai-sdk/provider'
import { Embeddings, type EmbeddingsInterface } from '@langchain/core/embeddings'
import { MemoryVectorStore } from '@langchain/classic/vectorstores/memory'
import { describe, expectTypeOf, it } from 'vitest'
import { EmbeddingServiceEmbeddingModel, embeddingModel } from '../ai-sdk.js'
import { EmbeddingService } from '../index.js'
import { EmbeddingServiceEmbeddings } from '../langchain.js'

describe('langchain.d.ts', () => {
  it('is an Embeddings that LangChain vector stores take', () => {
    const service = new EmbeddingService({ model: 'm' })
    const shared = new EmbeddingServiceEmbeddings({ service, dimensions: 128 })
    const own = new EmbeddingServiceEmbeddings({ model: 'm', threads: 2, maxConcurrency: 4 })
    expectTypeOf(shared).toMatchTypeOf<Embeddings>()
    expectTypeOf(own).toMatchTypeOf<EmbeddingsInterface>()
    expectTypeOf(shared.embedQuery('q')).toEqualTypeOf<Promise<number[]>>()
    expectTypeOf(shared.embedDocuments(['d'])).toEqualTypeOf<Promise<number[][]>>()
    expectTypeOf(shared.service).toEqualTypeOf<EmbeddingService>()
    new MemoryVectorStore(shared)
    // @ts-expect-error a service, or the options of a new one: not both
    new EmbeddingServiceEmbeddings({ service, model: 'm' })
  })
})

describe('ai-sdk.d.ts', () => {
  // embed / embedMany of the ai package: __test__/ai-sdk.types.ts (its types need the DOM lib).
  it('is an EmbeddingModelV4', () => {
    const service = new EmbeddingService({ model: 'm' })
    const model = embeddingModel(service, { inputType: 'query', dimensions: 256 })
    expectTypeOf(model).toEqualTypeOf<EmbeddingServiceEmbeddingModel>()
    expectTypeOf(model).toMatchTypeOf<EmbeddingModelV4>()
    // @ts-expect-error inputType is 'query' or 'document'
    embeddingModel(service, { inputType: 'search' })
  })
})
