#!/usr/bin/env node
// Builds the native addon from source with cargo (release mode unless --debug) and places it where index.js
// looks: ./embedding-service.<platform>.node. Extra arguments go to cargo (e.g. --features cuda).
// A CUDA build (--features cuda) runs through scripts/cuda-toolchain.mjs: its compiler, a patched candle-core,
// and target/cuda (so it does not evict the CPU build).
// Output goes to stderr: stdout stays clean for whatever runs this.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { platformName } = createRequire(import.meta.url)('../platform.js')
const args = process.argv.slice(2)
const debug = args.includes('--debug')
// --out=FILE puts the binary there instead (the CUDA fallback test builds one beside the CPU build).
const out = args.find((a) => a.startsWith('--out='))?.slice('--out='.length)
// --if-supported: a CUDA build where this script can fetch the compiler (Linux x64), else a note and nothing
// (npm test builds the CUDA variant for __test__/cuda-fallback.test.mjs, which runs on Linux x64 only).
const ifSupported = args.includes('--if-supported')
// --zig-target=TRIPLE[.GLIBC]: cross-link with cargo-zigbuild (zig on PATH), e.g. x86_64-unknown-linux-gnu.2.28
// for a binary that loads on glibc 2.28 and newer (the release's floor; a plain build here needs the build
// machine's glibc). `npm run release:local` builds the CUDA package this way.
const zigTarget = args.find((a) => a.startsWith('--zig-target='))?.slice('--zig-target='.length)
const passed = args.filter((a) => a !== '--debug' && a !== '--if-supported' && !a.startsWith('--out=') && !a.startsWith('--zig-target='))
const cargoArgs = [zigTarget ? 'zigbuild' : 'build', '--lib', ...(debug ? [] : ['--release']), ...(zigTarget ? ['--target', zigTarget] : []), ...passed]
const cuda = wantsFeature(passed, 'cuda')

if (cuda && ifSupported && !(process.platform === 'linux' && process.arch === 'x64')) {
  process.stderr.write(`[embedding-service] no CUDA build on ${process.platform}-${process.arch}: its compiler is fetched for Linux x64 only\n`)
  process.exit(0)
}

let targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
if (cuda) {
  const { runCudaCargo } = await import('./cuda-toolchain.mjs')
  targetDir = runCudaCargo(cargoArgs)
} else {
  process.stderr.write(`[embedding-service] cargo ${cargoArgs.join(' ')}\n`)
  execFileSync('cargo', cargoArgs, { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] })
}

const file = { win32: 'embedding_service.dll', darwin: 'libembedding_service.dylib' }[process.platform]
  ?? 'libembedding_service.so'
// cargo-zigbuild builds the triple without its glibc suffix, under target/<triple>/.
const built = path.join(targetDir, ...(zigTarget ? [zigTarget.split('.')[0]] : []), debug ? 'debug' : 'release', file)
const dest = out ? path.resolve(out) : path.join(root, `embedding-service.${platformName()}.node`)
// Copy then rename, so a process loading the addon never sees a half-written file.
fs.mkdirSync(path.dirname(dest), { recursive: true })
fs.copyFileSync(built, `${dest}.tmp`)
fs.renameSync(`${dest}.tmp`, dest)
process.stderr.write(`[embedding-service] built ${path.relative(root, dest)}\n`)

/** Whether cargo arguments (`--features a,b`, `--features=a`, `-F a`) turn on `feature`. */
function wantsFeature(cargoArgs, feature) {
  const lists = cargoArgs.flatMap((a, i) => {
    if (a === '--features' || a === '-F') return [cargoArgs[i + 1] ?? '']
    if (a.startsWith('--features=')) return [a.slice('--features='.length)]
    return []
  })
  return lists.some((list) => list.split(/[\s,]+/).includes(feature))
}
