// Loads an optional peer dependency of an adapter entry point, or throws a coded error naming what to install.
'use strict'

function peerMissing(entry, peer, err) {
  const error = new Error(
    `embedding-service/${entry} needs ${peer}, an optional peer dependency that is not installed: npm install ${peer}`,
  )
  error.code = 'ERR_PEER_DEPENDENCY_MISSING'
  error.cause = err
  return error
}

/** `require(specifier)` for CommonJS entries; a missing package becomes ERR_PEER_DEPENDENCY_MISSING. */
function requirePeer(entry, peer, specifier) {
  try {
    return require(specifier)
  } catch (err) {
    if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(peer)) throw peerMissing(entry, peer, err)
    throw err
  }
}

module.exports = { peerMissing, requirePeer }
