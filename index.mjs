// ESM entry: the same native binding as the CommonJS entry, so `import` and `require()` share one instance.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const binding = require('./index.js')

export const EmbeddingService = binding.EmbeddingService
export default binding
