// The install hook (scripts/install.mjs) and the loader (index.js) of an installed package, in a node_modules
// laid out by hand: which binary each takes, and the one clear error for each way an install can be wrong.
// Every case runs in a child process whose PATH has node and sh only, with stand-ins for cargo and the other
// compilers that record any call.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { root } from './helpers.mjs'

const { platformName, platformOfTarget } = createRequire(import.meta.url)('../platform.js')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const name = platformName()
const binary = path.join(root, `${pkg.napi.binaryName}.${name}.node`)

let dir
let marker
let bin
const installed = () => path.join(dir, 'node_modules', pkg.name)

/**
 * The main package as npm unpacks it: the files package.json ships, sources included, and the
 * optionalDependencies `napi pre-publish` writes (`published: false`: as from git, without them).
 */
function layMain({ published = true, targets = pkg.napi.targets } = {}) {
  const dest = installed()
  for (const file of ['index.js', 'index.mjs', 'platform.js', 'service.js', 'Cargo.toml', 'scripts/install.mjs', 'scripts/build.mjs', 'src/lib.rs']) {
    fs.mkdirSync(path.dirname(path.join(dest, file)), { recursive: true })
    fs.copyFileSync(path.join(root, file), path.join(dest, file))
  }
  const manifest = { ...pkg, napi: { ...pkg.napi, targets } }
  if (published) manifest.optionalDependencies = Object.fromEntries(targets.map((t) => [`${pkg.name}-${platformOfTarget(t)}`, pkg.version]))
  fs.writeFileSync(path.join(dest, 'package.json'), JSON.stringify(manifest))
}

function layPlatformPackage(suffix, version) {
  const dest = path.join(dir, 'node_modules', `${pkg.name}-${suffix}`)
  fs.mkdirSync(dest, { recursive: true })
  const main = `${pkg.napi.binaryName}.${suffix}.node`
  fs.writeFileSync(path.join(dest, 'package.json'), JSON.stringify({ name: `${pkg.name}-${suffix}`, version, main }))
  fs.copyFileSync(binary, path.join(dest, main))
}

function node(args, { cwd = dir, env = {} } = {}) {
  const r = spawnSync(process.execPath, args, { cwd, env: { PATH: bin, HOME: dir, ...env }, encoding: 'utf8' })
  const calls = fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim().split('\n') : []
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, calls }
}

const hook = (env) => node([path.join(installed(), 'scripts', 'install.mjs')], { cwd: installed(), env })
const load = () =>
  node(['-e', `try { const { EmbeddingService } = require('${pkg.name}'); console.log(typeof EmbeddingService) } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`])

beforeEach(() => {
  if (!fs.existsSync(binary)) throw new Error(`${binary} is missing: run \`npm install\` first`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'embedding-service-install-test-'))
  marker = path.join(dir, 'compiler-calls.log')
  bin = path.join(dir, 'bin')
  fs.mkdirSync(bin)
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'))
  for (const tool of ['cargo', 'rustc', 'python3', 'cc', 'gcc']) {
    fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> '${marker}'\nexit 127\n`, { mode: 0o755 })
  }
  layMain()
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('install hook of an installed package', () => {
  it('takes the prebuilt package and never calls cargo, although the package ships its sources', () => {
    layPlatformPackage(name, pkg.version)
    const r = hook()
    expect(r.status, r.stderr).toBe(0)
    expect(r.calls).toEqual([])
    expect(load().stdout.trim()).toBe('function')
  })

  it('without its platform package, fails at once with what to do, and never reaches for cargo', () => {
    const r = hook()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`${pkg.name}-${name} (an optional dependency) was not installed`)
    expect(r.stderr).toContain('--omit=optional')
    expect(r.stderr).toContain('EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.calls).toEqual([])
  })

  it('installed from git (no optionalDependencies), names the platform package to install beside it', () => {
    layMain({ published: false })
    const r = hook()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`names no prebuilt packages`)
    expect(r.stderr).toContain(`install ${pkg.name}-${name}@${pkg.version} beside it`)
    expect(r.calls).toEqual([])
  })

  it('on a platform no release ships and without cargo, says what to install', () => {
    layMain({ targets: pkg.napi.targets.filter((t) => platformOfTarget(t) !== name) })
    const r = hook()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`no prebuilt binary ships for ${name}`)
    expect(r.stderr).toContain('install one from https://rustup.rs')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    // Only asked whether cargo is there.
    expect(r.calls).toEqual(['cargo --version'])
  })

  it('names a platform package of another version instead of taking it', () => {
    layPlatformPackage(name, '0.0.1')
    const r = hook()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`the installed ${pkg.name}-${name} 0.0.1 is not version ${pkg.version}`)
    expect(r.calls).toEqual([])
  })

  it.runIf(name === 'linux-x64-gnu')('fails on a stale CUDA package beside a current one, as the loader would', () => {
    layPlatformPackage(name, pkg.version)
    layPlatformPackage(`${name}-cuda`, '0.0.1')
    const r = hook()
    expect(r.status).toBe(1)
    expect(r.stderr).toContain(`${pkg.name}-${name}-cuda 0.0.1 is not version ${pkg.version}`)
  })

  it('builds from source when asked to (EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1), even with a prebuilt installed', () => {
    layPlatformPackage(name, pkg.version)
    const r = hook({ EMBEDDING_SERVICE_BUILD_FROM_SOURCE: '1' })
    // cargo here is a stand-in that fails, so the build stops at the toolchain check with its own message.
    expect(r.status).toBe(1)
    expect(r.calls).toEqual(['cargo --version'])
    expect(r.stderr).toContain('building from source needs a Rust toolchain (cargo) on PATH')
  })
})

describe('loader of an installed package', () => {
  it('refuses a platform package of another version with ERR_NATIVE_BINARY_VERSION', () => {
    layPlatformPackage(name, '0.0.1')
    const err = JSON.parse(load().stdout)
    expect(err.code).toBe('ERR_NATIVE_BINARY_VERSION')
    expect(err.message).toContain(`found ${pkg.name}-${name} 0.0.1 installed`)
    expect(err.message).toContain(`npm install ${pkg.name}-${name}@${pkg.version}`)
  })

  it.runIf(name === 'linux-x64-gnu')('refuses a stale CUDA package rather than falling back to the CPU one in silence', () => {
    layPlatformPackage(name, pkg.version)
    layPlatformPackage(`${name}-cuda`, '0.0.1')
    const err = JSON.parse(load().stdout)
    expect(err.code).toBe('ERR_NATIVE_BINARY_VERSION')
    expect(err.message).toContain(`${pkg.name}-${name}-cuda 0.0.1`)
    expect(err.message).toContain(`npm uninstall ${pkg.name}-${name}-cuda`)
  })

  it('with no binary at all, names the package to install with ERR_NATIVE_BINARY_MISSING', () => {
    const err = JSON.parse(load().stdout)
    expect(err.code).toBe('ERR_NATIVE_BINARY_MISSING')
    expect(err.message).toContain(`${pkg.name}-${name} is not installed`)
    expect(err.message).toContain(`${pkg.name}-${name}@${pkg.version}`)
    expect(err.message).toContain('EMBEDDING_SERVICE_BUILD_FROM_SOURCE=1')
  })

  it('prefers a build from source in the package folder over the prebuilt package', () => {
    layPlatformPackage(name, '0.0.1')
    fs.copyFileSync(binary, path.join(installed(), `${pkg.napi.binaryName}.${name}.node`))
    expect(load().stdout.trim()).toBe('function')
  })
})
