// The LangChain.js adapter, made from whichever build of @langchain/core the entry point loaded (the CommonJS
// one for require, the ESM one for import), so the class extends the very `Embeddings` its user's code sees.
'use strict'

// LangChain's AsyncCaller settings, handed to the base class; everything else configures the service.
const CALLER_KEYS = ['maxConcurrency', 'maxRetries', 'onFailedAttempt']

function createLangChainEmbeddings(Embeddings, EmbeddingService) {
  /**
   * LangChain `Embeddings` over an EmbeddingService: queries on the query lane with the model's query prompt,
   * documents on the index lane with its document prompt. LangChain wants `number[]`, so each Float32Array
   * is copied into one (exactly: every float32 is a double).
   */
  class EmbeddingServiceEmbeddings extends Embeddings {
    constructor(fields = {}) {
      const callerParams = {}
      const serviceOptions = {}
      for (const [key, value] of Object.entries(fields ?? {})) {
        if (CALLER_KEYS.includes(key)) callerParams[key] = value
        else if (key !== 'service' && key !== 'normalize' && key !== 'dimensions') serviceOptions[key] = value
      }
      if (fields?.service !== undefined && Object.keys(serviceOptions).length > 0) {
        const err = new Error(
          `EmbeddingServiceEmbeddings: give either \`service\` or the options of a new one, not both (got ${Object.keys(serviceOptions).join(', ')})`,
        )
        err.code = 'ERR_INVALID_INPUT'
        throw err
      }
      super(callerParams)
      /** The service the embeddings come from: the one given, or one made from the other fields. */
      this.service = fields?.service ?? new EmbeddingService(serviceOptions)
      this.embedOptions = {}
      if (fields?.normalize !== undefined) this.embedOptions.normalize = fields.normalize
      if (fields?.dimensions !== undefined) this.embedOptions.dimensions = fields.dimensions
    }

    async embedDocuments(documents) {
      const vectors = await this.service.embedDocuments(documents, this.embedOptions)
      return vectors.map((v) => Array.from(v))
    }

    async embedQuery(document) {
      return Array.from(await this.service.embedQuery(document, this.embedOptions))
    }
  }
  return EmbeddingServiceEmbeddings
}

module.exports = { createLangChainEmbeddings }
