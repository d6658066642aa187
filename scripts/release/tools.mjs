// The release rehearsal's toolchains, installed once and idempotently from the package registries:
// zig (PyPI `ziglang`) with cargo-zigbuild (PyPI) in a cached venv; rustup's rust-std per target; Debian's
// MinGW-w64 (Windows), qemu-user with the arm64 C libraries, and wine64.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheRoot, python } from '../python.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/** A dev dependency's command (package.json `bin`), to run with this Node; some packages do not export their package.json. */
export function devBin(name, bin) {
  const dir = path.join(root, 'node_modules', name)
  return path.join(dir, JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).bin[bin])
}

const ZIG = 'ziglang==0.13.0'
const ZIGBUILD = 'cargo-zigbuild==0.24.1'

/** A folder holding `zig` and `cargo-zigbuild`, to put first on PATH. */
export function zigBin(log) {
  const venv = path.join(cacheRoot(), `zig-venv-${ZIG.split('==')[1]}`)
  const bin = path.join(venv, 'bin')
  const marker = path.join(venv, '.complete')
  if (!fs.existsSync(marker)) {
    log(`installing ${ZIG} and ${ZIGBUILD} from PyPI into ${venv}`)
    execFileSync(python('to install zig from PyPI'), ['-m', 'venv', venv], { stdio: 'inherit' })
    execFileSync(path.join(bin, 'python'), ['-m', 'pip', 'install', '-q', ZIG, ZIGBUILD], { stdio: 'inherit' })
    const site = execFileSync(path.join(bin, 'python'), ['-c', 'import ziglang, os; print(os.path.dirname(ziglang.__file__))'], { encoding: 'utf8' }).trim()
    fs.rmSync(path.join(bin, 'zig'), { force: true })
    fs.symlinkSync(path.join(site, 'zig'), path.join(bin, 'zig'))
    fs.writeFileSync(marker, '')
  }
  return bin
}

export function rustTargets(targets, log) {
  const installed = execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' }).split('\n')
  const missing = targets.filter((t) => !installed.includes(t))
  if (missing.length) {
    log(`rustup target add ${missing.join(' ')}`)
    execFileSync('rustup', ['target', 'add', ...missing], { stdio: 'inherit' })
  }
}

/** Debian packages, installed with apt-get where a command they provide is missing. */
export function debianTools(log) {
  const wanted = [
    ['x86_64-w64-mingw32-gcc', 'gcc-mingw-w64-x86-64'],
    ['qemu-aarch64', 'qemu-user'],
    ['/usr/aarch64-linux-gnu/lib/libc.so.6', 'libc6-arm64-cross'],
    ['/usr/aarch64-linux-gnu/lib/libstdc++.so.6', 'libstdc++6-arm64-cross'],
    ['/usr/lib/wine/wine64', 'wine64'],
    ['objdump', 'binutils'],
  ]
  const has = (what) => (what.startsWith('/') ? fs.existsSync(what) : spawnSync('sh', ['-c', `command -v ${what}`]).status === 0)
  const need = wanted.filter(([what]) => !has(what)).map(([, pkg]) => pkg)
  if (!need.length) return
  const sudo = process.getuid?.() === 0 ? [] : ['sudo']
  log(`apt-get install ${need.join(' ')}`)
  const run = (args) => execFileSync(sudo[0] ?? args[0], sudo.length ? args : args.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', ...need])
}
