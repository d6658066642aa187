#!/usr/bin/env node
// `npm install` hook.
// - Installed from a registry (the package sits in a node_modules folder) on a platform a release ships: the
//   platform package carries the binary, so nothing runs and cargo is never invoked. When that package is
//   missing or of another version, the install fails with what to do; it does not fall back to a long build.
// - Installed on a platform no release ships: builds from the sources the package carries, when cargo is there.
// - A source checkout, or EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1: builds from source in release mode (cargo is
//   incremental, so a checkout's binary never lags behind its sources).
// - No prebuilt and no cargo: one error that says what to install.
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { execFileSync, spawnSync } from 'node:child_process'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(path.join(root, 'package.json'))
const { platformName, platformOfTarget, prebuiltPackages, shippedPlatform } = require('./platform.js')
const pkg = require('./package.json')

const hasSources = fs.existsSync(path.join(root, 'Cargo.toml')) && fs.existsSync(path.join(root, 'src'))
// The published tarball carries the sources too (for platforms without a prebuilt), so "has sources" alone
// cannot tell a checkout from an install; where npm put the package can.
const installed = root.split(path.sep).includes('node_modules')
const forced = process.env.EMBEDDING_SERVICE_BUILD_FROM_SOURCE === '1'
const fromSource = 'set EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1 to build from source instead (needs Rust: https://rustup.rs)'

function say(line) {
  process.stderr.write(`[${pkg.name}] ${line}\n`)
}

/** The installed prebuilt packages of this platform, each with its version. */
function installedPrebuilts() {
  return prebuiltPackages(pkg.name).flatMap((name) => {
    try {
      return [{ name, version: require(`${name}/package.json`).version }]
    } catch {
      return []
    }
  })
}

if (installed && !forced) {
  const found = installedPrebuilts()
  // The loader refuses every one of these (ERR_NATIVE_BINARY_VERSION), the CUDA package included, so the
  // install says so now rather than at the first require().
  const stale = found.filter((p) => p.version !== pkg.version)
  if (stale.length) {
    say(`the installed ${stale.map((p) => `${p.name} ${p.version}`).join(', ')} is not version ${pkg.version}: install ${stale.map((p) => `${p.name}@${pkg.version}`).join(' ')}`)
    process.exit(1)
  }
  if (found.length) process.exit(0)
  const shipped = shippedPlatform(pkg.napi.targets)
  if (shipped) {
    const name = `${pkg.name}-${shipped}`
    say(
      pkg.optionalDependencies?.[name]
        ? `${name} (an optional dependency) was not installed: reinstall without --omit=optional / --no-optional, or ${fromSource}`
        : `this copy of ${pkg.name} names no prebuilt packages (installed from git or a folder?): install ${name}@${pkg.version} beside it, or ${fromSource}`,
    )
    process.exit(1)
  }
  if (!cargoWorks()) {
    say(`cannot install: no prebuilt binary ships for ${platformName()} (prebuilt: ${pkg.napi.targets.map(platformOfTarget).join(', ')}), and building from source needs a Rust toolchain: install one from https://rustup.rs and reinstall`)
    process.exit(1)
  }
  say(`no prebuilt binary ships for ${platformName()}: building from source with cargo`)
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
