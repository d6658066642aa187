// How long the daemon's model stays loaded with no work: the Python service's rule, shared by both backends.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { coded } = require('./errors.js')

// The Python service's keep-alive (its utils/supported_models.py, get_process_management_config): 60 minutes,
// unless the daemon's system-configuration.json says `embeddings.python.processManagement.keepAliveMinutes`,
// unless FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS is set (the daemon sets it from `testConfig.keepAliveSeconds`).
const DEFAULT_KEEP_ALIVE_SECONDS = 3600

/** The folder of the package that installed this one (where the daemon keeps system-configuration.json). */
function installingPackageRoot(dir = __dirname) {
  const parts = dir.split(/[\\/]/)
  const at = parts.lastIndexOf('node_modules')
  return at > 0 ? parts.slice(0, at).join(path.sep) : null
}

function keepAliveMinutesFromSystemConfig(file) {
  try {
    const json = JSON.parse(fs.readFileSync(file, 'utf8'))
    const minutes = json?.embeddings?.python?.processManagement?.keepAliveMinutes
    return typeof minutes === 'number' && Number.isFinite(minutes) && minutes >= 0 ? minutes : undefined
  } catch {
    return undefined // no file, or one the Python service would also fall back from
  }
}

function nonNegative(name, value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw coded('ERR_INVALID_INPUT', `${name} must be a number of at least 0, got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * Milliseconds of idle before the model's memory is returned, with the Python service's precedence; an explicit
 * `keepAliveMs` (this package's own option, -1 for never) wins over all of it.
 */
function daemonKeepAliveMs(given, env = process.env) {
  if (given.keepAliveMs !== undefined) return given.keepAliveMs
  let seconds = DEFAULT_KEEP_ALIVE_SECONDS
  const root = installingPackageRoot()
  const systemConfig = given.systemConfigPath ?? (root && path.join(root, 'system-configuration.json'))
  const fromFile = systemConfig ? keepAliveMinutesFromSystemConfig(systemConfig) : undefined
  if (fromFile !== undefined) seconds = fromFile * 60
  if (given.keepAliveMinutes !== undefined) seconds = nonNegative('keepAliveMinutes', given.keepAliveMinutes) * 60
  const fromEnv = env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
  if (fromEnv !== undefined && /^\s*\d+\s*$/.test(fromEnv)) seconds = Number(fromEnv)
  const test = given.testConfig?.keepAliveSeconds
  if (test !== undefined) seconds = nonNegative('testConfig.keepAliveSeconds', test)
  return Math.round(seconds * 1000)
}

module.exports = { daemonKeepAliveMs, installingPackageRoot }
