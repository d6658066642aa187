// Which of the daemon's calls are searches (the query lane and the query prompt) and which are index work.
'use strict'

const { coded } = require('./errors.js')

// The chunk labels the daemon's search paths put on a query it sends through `generateEmbeddings(chunks)`
// without a text type (okets/folder-mcp d01bb52): its REST `search_content` (src/daemon/rest/server.ts:3083)
// and `find-documents` (:3397), and its Python service's own `generateQueryEmbedding` (sourceFile 'query',
// sourceType 'query': python-embedding-service.ts:1538). Every other label is index work: the files' paths,
// 'ngram-extraction' (key-phrase candidates of a document), 'direct' (its bridge's single text), 'single-text'.
const QUERY_SOURCE_FILES = new Set(['search-query', 'document-discovery-query', 'query'])

function isQueryChunk(chunk) {
  const meta = chunk?.metadata
  return meta != null && (meta.sourceType === 'query' || QUERY_SOURCE_FILES.has(meta.sourceFile))
}

/**
 * The text type of a `generateEmbeddings` call: the one given ('query' | 'passage'), the daemon's
 * `immediate` flag (true: a search, as its IEmbeddingModel documents it), else what the chunks are labelled.
 */
function textTypeOf(chunks, textType) {
  if (textType === 'query' || textType === 'passage') return textType
  if (textType === true) return 'query'
  if (textType === undefined || textType === null || textType === false) {
    return chunks.length > 0 && chunks.every(isQueryChunk) ? 'query' : 'passage'
  }
  throw coded('ERR_INVALID_INPUT', `textType must be 'query' or 'passage', got ${JSON.stringify(textType)}`)
}

module.exports = { QUERY_SOURCE_FILES, isQueryChunk, textTypeOf }
