import { Embeddings, type EmbeddingsParams } from '@langchain/core/embeddings'
import type { EmbeddingService, EmbeddingServiceOptions } from './index.js'

/** The vector options applied to every query and document. */
export interface EmbeddingServiceEmbeddingsVectorOptions {
  /** As `EmbedOptions.normalize`: default the model's own (unit length for all-MiniLM-L6-v2, E5, bge). */
  normalize?: boolean
  /** As `EmbedOptions.dimensions`: keep the first `dimensions` values (Matryoshka), renormalised. */
  dimensions?: number
}

/**
 * What `EmbeddingServiceEmbeddings` is made from: a service to share (`service`, e.g. the one an indexing
 * daemon already runs), or the options of a new one; plus the vector options and LangChain's own
 * `maxConcurrency` / `maxRetries` / `onFailedAttempt`, kept for its base class (the service queues calls
 * itself, and this class does not retry them: its errors are not transient).
 */
export type EmbeddingServiceEmbeddingsParams = EmbeddingsParams &
  EmbeddingServiceEmbeddingsVectorOptions &
  ({ service: EmbeddingService } | (EmbeddingServiceOptions & { service?: undefined }))

/**
 * A LangChain.js `Embeddings` over an `EmbeddingService`: `embedQuery` on the query lane with the model's
 * query prompt (answered ahead of any indexing job), `embedDocuments` on the index lane with its document
 * prompt. Vectors are `number[]`, as LangChain wants them. Rejections are the service's coded errors.
 * A `new EmbeddingServiceEmbeddings({ service, model })` (both) throws `ERR_INVALID_INPUT`.
 */
export declare class EmbeddingServiceEmbeddings extends Embeddings {
  constructor(fields: EmbeddingServiceEmbeddingsParams)
  /** The service the vectors come from. */
  readonly service: EmbeddingService
  embedDocuments(documents: string[]): Promise<number[][]>
  embedQuery(document: string): Promise<number[]>
}
