// embedding-service/langchain (CommonJS): `EmbeddingServiceEmbeddings`, a LangChain.js `Embeddings`.
'use strict'

const { requirePeer } = require('./adapters/peer.js')
const { createLangChainEmbeddings } = require('./adapters/langchain.js')
const { EmbeddingService } = require('./index.js')

const { Embeddings } = requirePeer('langchain', '@langchain/core', '@langchain/core/embeddings')

exports.EmbeddingServiceEmbeddings = createLangChainEmbeddings(Embeddings, EmbeddingService)
