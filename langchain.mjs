// embedding-service/langchain (ESM): the class extends the ESM build's `Embeddings`, the one `import` sees.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { peerMissing } = require('./adapters/peer.js')
const { createLangChainEmbeddings } = require('./adapters/langchain.js')
const { EmbeddingService } = require('./index.js')

let core
try {
  core = await import('@langchain/core/embeddings')
} catch (err) {
  throw err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('@langchain/core')
    ? peerMissing('langchain', '@langchain/core', err)
    : err
}

export const EmbeddingServiceEmbeddings = createLangChainEmbeddings(core.Embeddings, EmbeddingService)
