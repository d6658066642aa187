// Loads the native addon: a binary built in this folder (`npm install` from a clone, or a source build),
// else the prebuilt package for this platform. The addon's API is documented in index.d.ts.
'use strict'

const path = require('node:path')
const { platformName } = require('./platform.js')

const name = platformName()
// A local build first; then the CUDA variant of the prebuilt package, which exists for linux-x64-gnu only and
// is never installed unless asked for (`npm install embedding-service-linux-x64-gnu-cuda`); then the default.
const candidates = [
  path.join(__dirname, `embedding-service.${name}.node`),
  `embedding-service-${name}-cuda`,
  `embedding-service-${name}`,
]
const failures = []
let binding = null
for (const candidate of candidates) {
  try {
    binding = require(candidate)
    break
  } catch (err) {
    failures.push(`${candidate}: ${err && err.message}`)
  }
}
if (!binding) {
  const err = new Error(
    `embedding-service has no native binary for ${name}. Run \`npm install\` in the package folder to build ` +
      `it from source (needs a Rust toolchain), or install the prebuilt package embedding-service-${name}.\n` +
      failures.join('\n'),
  )
  err.code = 'ERR_NATIVE_BINARY_MISSING'
  throw err
}

const { createEmbeddingService } = require('./service.js')

module.exports.EmbeddingService = createEmbeddingService(binding)
