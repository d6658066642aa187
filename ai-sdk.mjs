// embedding-service/ai-sdk (ESM): the same model class as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const adapter = require('./adapters/ai-sdk.js')

export const { EmbeddingServiceEmbeddingModel, embeddingModel } = adapter
