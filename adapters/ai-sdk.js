// The Vercel AI SDK adapter: an embedding model of the `EmbeddingModelV4` specification (@ai-sdk/provider 4,
// which `ai` 7 calls). A plain object protocol, so nothing of the SDK is loaded here.
'use strict'

const PROVIDER = 'embedding-service'

class EmbeddingServiceEmbeddingModel {
  constructor(service, settings = {}) {
    if (!service || typeof service.embedDetailed !== 'function') {
      const err = new Error('embeddingModel: the first argument must be an EmbeddingService')
      err.code = 'ERR_INVALID_INPUT'
      throw err
    }
    this.specificationVersion = 'v4'
    this.provider = PROVIDER
    this.modelId = settings.modelId ?? service.model
    // The service batches by itself (maxBatchSize, maxBatchTokens) and queues calls: one call can take any
    // number of values, and calls can run side by side.
    this.maxEmbeddingsPerCall = Infinity
    this.supportsParallelCalls = true
    this.service = service
    this.settings = { inputType: settings.inputType ?? 'document', normalize: settings.normalize, dimensions: settings.dimensions }
  }

  async doEmbed({ values, abortSignal, dimensions, providerOptions }) {
    const own = providerOptions?.[PROVIDER] ?? {}
    const options = { inputType: own.inputType ?? this.settings.inputType }
    const normalize = own.normalize ?? this.settings.normalize
    const size = dimensions ?? own.dimensions ?? this.settings.dimensions
    if (normalize !== undefined) options.normalize = normalize
    if (size !== undefined) options.dimensions = size
    if (abortSignal) options.signal = abortSignal
    const { vectors, tokenCounts } = await this.service.embedDetailed(values, options)
    return {
      embeddings: vectors.map((v) => Array.from(v)),
      usage: { tokens: tokenCounts.reduce((a, b) => a + b, 0) },
      warnings: [],
    }
  }
}

/** An AI SDK embedding model over `service`. */
function embeddingModel(service, settings) {
  return new EmbeddingServiceEmbeddingModel(service, settings)
}

module.exports = { EmbeddingServiceEmbeddingModel, embeddingModel }
