// ESM entry of the daemon adapter: the same class as require('embedding-service/daemon').
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const adapter = require('./daemon.js')

export const { NativeEmbeddingBackend, PythonEmbeddingService, ONNXEmbeddingService, CURATED_MODELS, resolveModel } = adapter
export default adapter
