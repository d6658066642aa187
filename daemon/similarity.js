// Cosine similarity as both of the daemon's backends compute it for `calculateSimilarity`.
'use strict'

const { coded } = require('./errors.js')

/**
 * The cosine of two EmbeddingVectors (or plain arrays), 0 when either is all zeros; ERR_INVALID_INPUT for a
 * missing vector or two of different sizes.
 */
function cosineSimilarity(a, b) {
  const va = Array.isArray(a) || ArrayBuffer.isView(a) ? a : a?.vector
  const vb = Array.isArray(b) || ArrayBuffer.isView(b) ? b : b?.vector
  if (!va || !vb) throw coded('ERR_INVALID_INPUT', 'calculateSimilarity needs two EmbeddingVectors')
  if (va.length !== vb.length) {
    throw coded('ERR_INVALID_INPUT', 'Vectors must have the same dimensions for similarity calculation')
  }
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < va.length; i++) {
    dot += va[i] * vb[i]
    na += va[i] * va[i]
    nb += vb[i] * vb[i]
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}

module.exports = { cosineSimilarity }
