// Loads the native addon: a binary built in this folder from source (a clone, or an install with
// EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1), else the prebuilt package for this platform. The addon's API is
// documented in index.d.ts.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { platformName, platformNames, prebuiltPackages, shippedPlatform } = require('./platform.js')
const { name: packageName, version, napi } = require('./package.json')

function fail(code, message) {
  const err = new Error(message)
  err.code = code
  return err
}

function loadBinding() {
  const name = platformName()
  // Built from these very sources, so no version to compare.
  const local = path.join(__dirname, `${packageName}.${name}.node`)
  for (const file of platformNames().map((n) => path.join(__dirname, `${packageName}.${n}.node`))) {
    if (fs.existsSync(file)) return require(file)
  }

  for (const pkg of prebuiltPackages(packageName)) {
    let manifest
    try {
      manifest = require.resolve(`${pkg}/package.json`)
    } catch {
      continue
    }
    // An installed package must be this release's own: a binary from another version may not match this
    // loader's JS half, and a stale CUDA package must never quietly stand in for the current CPU one.
    const found = require(manifest).version
    if (found !== version) {
      throw fail(
        'ERR_NATIVE_BINARY_VERSION',
        `${packageName} ${version} found ${pkg} ${found} installed; the two must be the same version. ` +
          `Install the matching one: npm install ${pkg}@${version}` +
          (pkg.endsWith('-cuda') ? ` (or remove it: npm uninstall ${pkg})` : ''),
      )
    }
    try {
      return require(pkg)
    } catch (err) {
      throw fail('ERR_NATIVE_BINARY_LOAD', `${pkg} ${found} is installed but its binary does not load here: ${err && err.message}`)
    }
  }
  const shipped = shippedPlatform(napi.targets)
  throw fail(
    'ERR_NATIVE_BINARY_MISSING',
    `${packageName} has no native binary for ${name}: ` +
      (shipped
        ? `${packageName}-${shipped} is not installed; reinstall without --omit=optional / --no-optional, or install ` +
          `${packageName}-${shipped}@${version}. `
        : `no prebuilt package ships for ${name} and there is no local build (${path.basename(local)}). `) +
      `To build from source, install a Rust toolchain (https://rustup.rs) and run \`npm rebuild ${packageName}\` ` +
      `with EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1.`,
  )
}

const { createEmbeddingService } = require('./service.js')

module.exports.EmbeddingService = createEmbeddingService(loadBinding())
// The module as its own default export: `import svc from` (any interop) and `require().default` agree.
module.exports.default = module.exports
