#!/usr/bin/env node
// `npm install` hook.
// - Installed from a registry (the package sits in a node_modules folder): the prebuilt package for this
//   platform carries the binary, so nothing runs; cargo is never invoked.
// - A source checkout, or EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1: builds from source in release mode (cargo is
//   incremental, so a checkout's binary never lags behind its sources).
// - Neither a prebuilt package nor cargo: one error that says what to install.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { execFileSync, spawnSync } from 'node:child_process'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(path.join(root, 'package.json'))
const { platformName, platformOfTarget, prebuiltPackages } = require('./platform.js')
const pkg = require('./package.json')

const hasSources = fs.existsSync(path.join(root, 'Cargo.toml')) && fs.existsSync(path.join(root, 'src'))
// The published tarball carries the sources too (for platforms without a prebuilt), so "has sources" alone
// cannot tell a checkout from an install; where npm put the package can.
const installed = root.split(path.sep).includes('node_modules')
const forced = process.env.EMBEDDING_SERVICE_BUILD_FROM_SOURCE === '1'

function say(line) {
  process.stderr.write(`[${pkg.name}] ${line}\n`)
}

/** The installed prebuilt package of this release for this platform, or why there is none. */
function prebuilt() {
  const stale = []
  for (const name of prebuiltPackages(pkg.name)) {
    let version
    try {
      version = require(`${name}/package.json`).version
    } catch {
      continue
    }
    if (version === pkg.version) return { name }
    stale.push(`${name} ${version}`)
  }
  return { stale }
}

if (installed && !forced) {
  const found = prebuilt()
  if (found.name) process.exit(0)
  const shipped = pkg.napi.targets.map(platformOfTarget)
  const ours = prebuiltPackages(pkg.name).filter((n) => !n.endsWith('-cuda'))
  const why = found.stale.length
    ? `the installed ${found.stale.join(', ')} is not version ${pkg.version}; install ${ours[0]}@${pkg.version}`
    : shipped.includes(platformName())
      ? `${ours[0]} (an optional dependency) was not installed: reinstall without --omit=optional / --no-optional`
      : `no prebuilt binary ships for ${platformName()} (prebuilt: ${shipped.join(', ')})`
  if (!cargoWorks()) {
    say(`cannot install: ${why}. To build from source instead, install a Rust toolchain (https://rustup.rs) and reinstall.`)
    process.exit(1)
  }
  say(`${why}; building from source with cargo`)
}

if (!hasSources) {
  say(`no prebuilt binary for ${platformName()} and no sources to build from`)
  process.exit(1)
}
if (!cargoWorks()) {
  say(`building from source needs a Rust toolchain (cargo) on PATH: install one from https://rustup.rs and reinstall`)
  process.exit(1)
}
execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { stdio: ['ignore', process.stderr, 'inherit'] })

function cargoWorks() {
  return spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0
}
