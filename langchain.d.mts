// The types of the ESM entry (langchain.mjs). The class is declared again, not re-exported: it extends the ESM
// build's `Embeddings` (the one `import` sees), which TypeScript holds distinct from the CommonJS build's.
import { Embeddings } from '@langchain/core/embeddings'
import type { EmbeddingService } from './index.mjs'
import type { EmbeddingServiceEmbeddingsParams } from './langchain.js'

export type { EmbeddingServiceEmbeddingsParams, EmbeddingServiceEmbeddingsVectorOptions } from './langchain.js'

/** See langchain.d.ts. */
export declare class EmbeddingServiceEmbeddings extends Embeddings {
  constructor(fields: EmbeddingServiceEmbeddingsParams)
  readonly service: EmbeddingService
  embedDocuments(documents: string[]): Promise<number[][]>
  embedQuery(document: string): Promise<number[]>
}
