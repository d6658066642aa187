#!/usr/bin/env node
// What a `--features cuda` build needs, on a machine with no GPU, no driver and no system CUDA toolkit:
//
// 1. nvcc and the CUDA headers, from NVIDIA's PyPI wheels (the cu12 wheels on PyPI ship no nvcc).
//    candle-kernels compiles its kernels to PTX with them. CUDA 13.0, the oldest 13.x: PTX runs on drivers of
//    its CUDA version or newer (R580 and up), and the driver JIT-compiles it for the GPU it finds. Linux x64 only: elsewhere, a CUDA toolkit's nvcc
//    on PATH (or CUDA_HOME) is used as is.
// 2. A directory holding only libcudart.a (the static CUDA runtime from the same wheels), put on the link path
//    by build.rs, so the addon does not need libcudart.so at load time.
// 3. A copy of candle-core whose cudarc dependency uses `dynamic-loading` instead of `dynamic-linking`:
//    the driver (libcuda), cuBLAS and cuRAND are then opened with dlopen when a CUDA device is first asked
//    for, not linked. Without this the addon links only where the driver is installed and fails to load
//    anywhere else (issue 5). cudarc refuses both features at once, so the dependency itself must change;
//    cargo's `[patch]` is the tool for that, applied by scripts/build.mjs for CUDA builds only.
//
// Everything lands in the user cache (EMBEDDING_SERVICE_CACHE, else ~/.cache/embedding-service), once;
// later runs only check markers. Prints to stderr.
//
//   node scripts/cuda-toolchain.mjs cargo build --release --features cuda --example gpu_check
// runs that cargo command with the CUDA environment, the patch and target/cuda (scripts/build.mjs uses the same).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheRoot as findCacheRoot, python as findPython } from './python.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const CUDA_VERSION = '13.0'
const WHEELS = [
  'nvidia-cuda-nvcc==13.0.88',
  'nvidia-nvvm==13.0.88',
  'nvidia-cuda-crt==13.0.88',
  'nvidia-cuda-runtime==13.0.88',
  'nvidia-cuda-cccl==13.0.85',
]
// PTX for compute capability 8.0 runs on every GPU from the A100 on (the driver JIT-compiles it for newer
// ones); candle-kernels would otherwise ask nvidia-smi, which a build machine without a GPU does not have.
const DEFAULT_COMPUTE_CAP = '80'
const CANDLE_CORE = 'candle-core'

const log = (msg) => process.stderr.write(`[cuda-toolchain] ${msg}\n`)
const cacheRoot = findCacheRoot()
const python = () => findPython('to fetch the CUDA compiler from PyPI')

/** nvcc, headers and the static runtime, unpacked from the PyPI wheels. Returns the toolkit's root. */
function toolkit() {
  const dir = path.join(cacheRoot, `cuda-${CUDA_VERSION}`)
  const marker = path.join(dir, '.complete')
  if (fs.existsSync(marker)) return dir
  const wheels = path.join(cacheRoot, 'wheels', `cuda-${CUDA_VERSION}`)
  fs.mkdirSync(wheels, { recursive: true })
  log(`downloading ${WHEELS.join(', ')} from PyPI into ${wheels} (about 130 MB, once)`)
  execFileSync(python(), [
    '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
    '--platform', 'manylinux_2_17_x86_64', '--platform', 'manylinux2014_x86_64',
    '--platform', 'manylinux_2_12_x86_64', '--platform', 'manylinux2010_x86_64',
    '-d', wheels, ...WHEELS,
  ], { stdio: ['ignore', process.stderr, 'inherit'] })
  // Each wheel holds nvidia/cu13/{bin,include,lib,nvvm}; together they are one toolkit tree. zipfile keeps
  // no permission bits, so the tools are made executable after unpacking.
  const script = `
import os, stat, sys, zipfile
wheels, dest = sys.argv[1:3]
prefix = 'nvidia/cu13/'
for w in sorted(os.listdir(wheels)):
    if not w.endswith('.whl'):
        continue
    with zipfile.ZipFile(os.path.join(wheels, w)) as z:
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.filename.endswith('/'):
                continue
            target = os.path.join(dest, info.filename[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, 'wb') as out:
                out.write(src.read())
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
for sub in ('bin', os.path.join('nvvm', 'bin')):
    d = os.path.join(dest, sub)
    for f in os.listdir(d):
        p = os.path.join(d, f)
        if os.path.isfile(p):
            os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
`
  fs.rmSync(dir, { recursive: true, force: true })
  execFileSync(python(), ['-c', script, wheels, dir], { stdio: ['ignore', process.stderr, 'inherit'] })
  // `-lcudart` must find the static runtime: a folder with nothing else in it, so no libcudart.so wins.
  const staticDir = path.join(dir, 'cudart-static')
  fs.mkdirSync(staticDir, { recursive: true })
  fs.copyFileSync(path.join(dir, 'lib', 'libcudart_static.a'), path.join(staticDir, 'libcudart.a'))
  const version = execFileSync(path.join(dir, 'bin', 'nvcc'), ['--version'], { encoding: 'utf8' })
  if (!version.includes(`release ${CUDA_VERSION}`)) throw new Error(`unexpected nvcc:\n${version}`)
  fs.writeFileSync(marker, version)
  log(`CUDA ${CUDA_VERSION} compiler ready in ${dir}`)
  return dir
}

/** candle-core as locked in Cargo.lock, with cudarc switched to dynamic loading. Returns its folder. */
function patchedCandleCore() {
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--locked'], {
    cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'inherit'],
  }))
  const pkg = meta.packages.find((p) => p.name === CANDLE_CORE && p.source?.startsWith('registry+'))
  if (!pkg) throw new Error(`${CANDLE_CORE} from crates.io is not in the dependency graph`)
  const dest = path.join(cacheRoot, `${CANDLE_CORE}-${pkg.version}-cudarc-dynamic-loading`)
  const marker = path.join(dest, '.patched')
  if (fs.existsSync(marker)) return dest
  fs.rmSync(dest, { recursive: true, force: true })
  fs.cpSync(path.dirname(pkg.manifest_path), dest, { recursive: true })
  const manifest = path.join(dest, 'Cargo.toml')
  const text = fs.readFileSync(manifest, 'utf8')
  // The one line that changes: the linking mode in `[dependencies.cudarc] features = [...]`.
  const section = text.indexOf('[dependencies.cudarc]')
  const next = text.indexOf('\n[', section + 1)
  const body = text.slice(section, next === -1 ? undefined : next)
  if (section === -1 || body.split('"dynamic-linking"').length !== 2) {
    throw new Error(`${manifest}: expected exactly one "dynamic-linking" in [dependencies.cudarc]; candle changed, revisit this patch`)
  }
  fs.writeFileSync(manifest, text.replace(body, body.replace('"dynamic-linking"', '"dynamic-loading"')))
  fs.writeFileSync(marker, `${pkg.id}\n`)
  log(`patched ${CANDLE_CORE} ${pkg.version} (cudarc: dynamic-loading) in ${dest}`)
  return dest
}

/** A folder holding only the system toolkit's libcudart_static.a as libcudart.a (for `-lcudart`), or null. */
function systemStaticCudart() {
  const roots = [process.env.CUDA_HOME, process.env.CUDA_PATH]
  try {
    const nvcc = execFileSync(process.platform === 'win32' ? 'where' : 'which', ['nvcc'], { encoding: 'utf8' }).split('\n')[0].trim()
    if (nvcc) roots.push(path.dirname(path.dirname(fs.realpathSync(nvcc))))
  } catch {}
  for (const root of roots.filter(Boolean)) {
    for (const lib of ['lib64', 'lib', path.join('targets', 'x86_64-linux', 'lib')]) {
      const file = path.join(root, lib, 'libcudart_static.a')
      if (!fs.existsSync(file)) continue
      const dir = path.join(cacheRoot, 'cudart-static-system')
      fs.mkdirSync(dir, { recursive: true })
      fs.copyFileSync(file, path.join(dir, 'libcudart.a'))
      return dir
    }
  }
  return null
}

/**
 * For a build linked by zig (cargo-zigbuild, the release's glibc 2.28 build): GNU ld takes `-lcudart` and
 * candle-kernels' `-lmoe` from static archives when no shared library is found, zig's linker does not
 * ("unable to find dynamic system library"). A folder beside the static runtime holds two linker scripts,
 * libcudart.so and libmoe.so, that send each name to its archive (found on the usual search path), so the
 * runtime is still linked in statically. Returns that folder.
 */
function zigStaticLinks(cudartDir) {
  const dir = `${cudartDir}-zig`
  fs.mkdirSync(dir, { recursive: true })
  fs.copyFileSync(path.join(cudartDir, 'libcudart.a'), path.join(dir, 'libcudart.a'))
  fs.writeFileSync(path.join(dir, 'libcudart.so'), 'INPUT(-l:libcudart.a)\n')
  fs.writeFileSync(path.join(dir, 'libmoe.so'), 'INPUT(-l:libmoe.a)\n')
  return dir
}

/** The environment and cargo arguments for a CUDA build. */
export function cudaBuild() {
  const env = {}
  const cargoArgs = ['--config', `patch.crates-io.${CANDLE_CORE}.path=${JSON.stringify(patchedCandleCore())}`]
  const systemNvcc = (() => {
    try {
      execFileSync('nvcc', ['--version'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })()
  if (process.platform === 'linux' && process.arch === 'x64' && !process.env.CUDA_HOME && !systemNvcc) {
    const dir = toolkit()
    env.CUDA_HOME = dir
    env.PATH = `${path.join(dir, 'bin')}${path.delimiter}${process.env.PATH}`
    env.EMBEDDING_SERVICE_CUDART_DIR = path.join(dir, 'cudart-static')
  } else if (!process.env.CUDA_HOME && !systemNvcc) {
    throw new Error('a CUDA build needs nvcc: on Linux x64 this script fetches it from PyPI; elsewhere install the CUDA toolkit (CUDA_HOME or nvcc on PATH)')
  } else {
    // A system toolkit: its static runtime too, so the addon still loads where libcudart.so is absent.
    const staticDir = systemStaticCudart()
    if (staticDir) env.EMBEDDING_SERVICE_CUDART_DIR = staticDir
    else log('no libcudart_static.a in the system CUDA toolkit: the addon will need libcudart.so at run time')
  }
  env.CUDA_COMPUTE_CAP = process.env.CUDA_COMPUTE_CAP || DEFAULT_COMPUTE_CAP
  return { env, cargoArgs }
}

/**
 * Runs `cargo <args>` as a CUDA build: the toolchain's environment, the candle-core patch, and target/cuda
 * (unless CARGO_TARGET_DIR is set) so it does not evict the CPU build. Returns the target directory. The patch
 * rewrites candle-core's entry in Cargo.lock; the file is put back afterwards.
 */
export function runCudaCargo(args) {
  const build = cudaBuild()
  if (args[0] === 'zigbuild' && build.env.EMBEDDING_SERVICE_CUDART_DIR) {
    build.env.EMBEDDING_SERVICE_CUDART_DIR = zigStaticLinks(build.env.EMBEDDING_SERVICE_CUDART_DIR)
  }
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target', 'cuda')
  const cargoArgs = [...args, ...build.cargoArgs, '--target-dir', targetDir]
  log(`cargo ${cargoArgs.join(' ')}`)
  const lockFile = path.join(root, 'Cargo.lock')
  const lock = fs.readFileSync(lockFile)
  // Ctrl-C reaches cargo too; with a listener, Node outlives it long enough to put the lock file back.
  let interrupted = null
  const onSignal = (signal) => (interrupted = signal)
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal)
  try {
    execFileSync('cargo', cargoArgs, { cwd: root, env: { ...process.env, ...build.env }, stdio: ['ignore', process.stderr, 'inherit'] })
  } finally {
    fs.writeFileSync(lockFile, lock)
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    if (interrupted) process.kill(process.pid, interrupted)
  }
  return targetDir
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  if (args[0] !== 'cargo') {
    log('usage: node scripts/cuda-toolchain.mjs cargo <cargo arguments>')
    process.exit(2)
  }
  try {
    runCudaCargo(args.slice(1))
  } catch (err) {
    log(err.message)
    process.exit(1)
  }
}
