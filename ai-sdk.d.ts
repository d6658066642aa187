import type { EmbeddingModelV4, EmbeddingModelV4CallOptions, EmbeddingModelV4Result } from '@ai-sdk/provider'
import type { EmbeddingService } from './index.js'

/** Per-call options, under `providerOptions: { 'embedding-service': { ... } }` of `embed` / `embedMany`. */
export interface EmbeddingServiceProviderOptions {
  /** Overrides the model's `inputType` for this call. */
  inputType?: 'query' | 'document'
  normalize?: boolean
  /** Used when the call's own `dimensions` is not set. */
  dimensions?: number
}

export interface EmbeddingServiceModelSettings {
  /**
   * What the values are: 'document' (the default: the index lane, the model's document prompt) or 'query'
   * (the query lane, ahead of indexing, with the model's query prompt). The AI SDK does not say whether
   * `embed` is given a search query, so make a query model for searches:
   * `embeddingModel(service, { inputType: 'query' })`.
   */
  inputType?: 'query' | 'document'
  /** As `EmbedOptions.normalize`. */
  normalize?: boolean
  /** As `EmbedOptions.dimensions`; a call's `dimensions` wins. */
  dimensions?: number
  /** The `modelId` the SDK logs. Default: the service's `model`. */
  modelId?: string
}

/**
 * An AI SDK embedding model (`EmbeddingModelV4`, the specification `ai` 7 calls) over an `EmbeddingService`.
 * `embed` and `embedMany` run through it end to end: one call takes any number of values (the service
 * batches them itself), `abortSignal` aborts the request (`AbortError`, `code: 'ERR_ABORTED'`), `dimensions`
 * truncates (Matryoshka) and renormalises, and `usage.tokens` counts the values' tokens after truncation,
 * special tokens and prompt included.
 */
export declare class EmbeddingServiceEmbeddingModel implements EmbeddingModelV4 {
  constructor(service: EmbeddingService, settings?: EmbeddingServiceModelSettings)
  readonly specificationVersion: 'v4'
  readonly provider: 'embedding-service'
  readonly modelId: string
  readonly maxEmbeddingsPerCall: number
  readonly supportsParallelCalls: true
  readonly service: EmbeddingService
  doEmbed(options: EmbeddingModelV4CallOptions): Promise<EmbeddingModelV4Result>
}

/** `new EmbeddingServiceEmbeddingModel(service, settings)`. */
export declare function embeddingModel(
  service: EmbeddingService,
  settings?: EmbeddingServiceModelSettings,
): EmbeddingServiceEmbeddingModel
