// Coded errors, and reading the daemon's objects without letting their own exceptions through uncoded.
'use strict'

function coded(code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

/**
 * Runs `read`, which reads the caller's objects (config, options, chunks): a getter or Proxy trap that throws
 * becomes one ERR_INVALID_INPUT naming `what`, never the caller's own uncoded error.
 */
function readGuarded(what, read) {
  try {
    return read()
  } catch (err) {
    if (err && err.code === 'ERR_INVALID_INPUT') throw err
    let message
    try {
      message = err instanceof Error ? err.message : String(err)
    } catch {
      message = 'an unprintable value'
    }
    throw coded('ERR_INVALID_INPUT', `cannot read ${what}: ${message}`)
  }
}

module.exports = { coded, readGuarded }
