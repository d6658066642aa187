// Type check of embedding-service/ai-sdk against the `ai` package's own `embed` and `embedMany` signatures.
// The `ai` types need the DOM lib (fetch's HeadersInit, FileList), so this file has its own tsconfig
// (tsconfig.ai-sdk.json), run by __test__/ai-sdk.test.mjs; the rest of the types are checked without it.
import { embed, embedMany } from 'ai'
import { embeddingModel } from '../ai-sdk.js'
import { EmbeddingService } from '../index.js'

export async function check(): Promise<void> {
  const service = new EmbeddingService({ model: 'm' })
  const model = embeddingModel(service, { inputType: 'query', dimensions: 256 })
  const one = await embed({ model, value: 'q', abortSignal: new AbortController().signal })
  const vector: number[] = one.embedding
  const many = await embedMany({
    model,
    values: ['a', 'b'],
    dimensions: 64,
    providerOptions: { 'embedding-service': { inputType: 'document' } },
  })
  const tokens: number = many.usage.tokens
  void vector
  void tokens
}
