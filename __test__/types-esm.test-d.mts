// Type-level tests of the ESM entries (index.d.mts, daemon.d.mts), checked by tsc through `vitest --typecheck`:
// what `import` gives matches what index.mjs and daemon.mjs export at run time.
import { describe, expectTypeOf, it } from 'vitest'
import binding, { EmbeddingService, type ServiceStatus } from '../index.mjs'
import adapter, { NativeEmbeddingBackend, ONNXEmbeddingService, PythonEmbeddingService, resolveModel } from '../daemon.mjs'

describe('index.d.mts', () => {
  it('names the same class as the default export, as index.mjs does', () => {
    expectTypeOf(binding.EmbeddingService).toEqualTypeOf<typeof EmbeddingService>()
    expectTypeOf(new EmbeddingService({ model: 'm' }).status()).toEqualTypeOf<ServiceStatus>()
  })
})

describe('daemon.d.mts', () => {
  it('names the same adapter as the default export, as daemon.mjs does', () => {
    expectTypeOf(adapter.NativeEmbeddingBackend).toEqualTypeOf<typeof NativeEmbeddingBackend>()
    expectTypeOf(adapter.PythonEmbeddingService).toEqualTypeOf<typeof PythonEmbeddingService>()
    expectTypeOf(adapter.resolveModel).toEqualTypeOf<typeof resolveModel>()
    expectTypeOf(adapter.ONNXEmbeddingService).toEqualTypeOf<typeof ONNXEmbeddingService>()
  })
})

describe('langchain.d.mts and ai-sdk.d.mts', () => {
  it('export the same adapters as their CommonJS twins', async () => {
    const { EmbeddingServiceEmbeddings } = await import('../langchain.mjs')
    const { embeddingModel } = await import('../ai-sdk.mjs')
    const { Embeddings } = await import('@langchain/core/embeddings')
    const service = new EmbeddingService({ model: 'm' })
    expectTypeOf(new EmbeddingServiceEmbeddings({ service })).toMatchTypeOf<InstanceType<typeof Embeddings>>()
    expectTypeOf(embeddingModel(service).specificationVersion).toEqualTypeOf<'v4'>()
  })
})
