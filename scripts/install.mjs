#!/usr/bin/env node
// `npm install` hook. Uses the prebuilt binary for this platform when one is installed; otherwise builds from
// source in release mode (a clone, or a platform without a prebuilt package). In a source checkout it always
// runs cargo, which is incremental, so the binary never lags behind the source.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const { platformName } = require('../platform.js')

const isCheckout = fs.existsSync(path.join(root, 'Cargo.toml')) && fs.existsSync(path.join(root, 'src'))
const forced = process.env.EMBEDDING_SERVICE_BUILD_FROM_SOURCE === '1'
let prebuilt = false
if (!forced && !isCheckout) {
  try {
    require.resolve(`embedding-service-${platformName()}`)
    prebuilt = true
  } catch {}
}
if (prebuilt) {
  process.exit(0)
}
if (!fs.existsSync(path.join(root, 'Cargo.toml'))) {
  process.stderr.write(`[embedding-service] no prebuilt binary for ${platformName()} and no sources to build\n`)
  process.exit(1)
}
execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { stdio: ['ignore', process.stderr, 'inherit'] })
