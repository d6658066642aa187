#!/usr/bin/env node
// The daemon's cpu: models, its own ONNX worker pool against this package, inside the daemon's code (a
// folder-mcp checkout), on the stand-in `npm run test:daemon` uses (all-MiniLM-L6-v2 quantized by
// quantize_dynamic, laid out as its ONNX cache and as transformers.js' cache, so both read the same file).
//
// Usage: node bench/daemon-cpu.mjs <folder-mcp checkout> [chunks=2000] [rounds=2]
// Run `npm run test:daemon -- <checkout>` once first: it installs the daemon's dependencies, this package into
// them and makes the stand-in. This script then builds the daemon (`npm run build`: its worker pool starts
// dist/.../onnx-worker.js), puts the stand-in into @xenova/transformers' cache in the checkout (removed after),
// and runs bench/daemon-cpu-inside.mjs there with Node. `sharp` (an image library @xenova/transformers imports,
// whose install downloads binaries) is resolved to a stub by a loader hook, in the worker threads too.
// Prints and writes target/daemon-cpu.json.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cpu } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const log = (msg) => process.stderr.write(`[bench:daemon-cpu] ${msg}\n`)
const checkout = process.argv[2] && path.resolve(process.argv[2])
const [chunks, rounds] = [2000, 2].map((d, i) => Number(process.argv[3 + i] ?? d))
if (!checkout || !fs.existsSync(path.join(checkout, 'src/infrastructure/embeddings/onnx/onnx-embedding-service.ts'))) {
  log('usage: node bench/daemon-cpu.mjs <folder-mcp checkout> [chunks] [rounds]')
  process.exit(2)
}
const standin = path.join(root, 'target/daemon-onnx-standin')
if (!fs.existsSync(path.join(checkout, 'node_modules/embedding-service/daemon')) || !fs.existsSync(path.join(standin, 'onnx/model_quantized.onnx'))) {
  log('run `npm run test:daemon -- <checkout>` first (dependencies, this package, the stand-in)')
  process.exit(2)
}
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts })

if (!fs.existsSync(path.join(checkout, 'dist/src/infrastructure/embeddings/onnx/onnx-worker.js'))) {
  log('building the daemon (npm run build), for its worker threads')
  run('npm', ['run', 'build'], { cwd: checkout })
}
const corpus = path.join(root, `target/bench-corpus-${chunks}.json`)
if (!fs.existsSync(corpus)) run(process.execPath, [path.join(root, 'bench/corpus.mjs'), String(chunks)])

// The stand-in where each backend looks: the daemon's ONNX cache (under this run's HOME) and transformers.js'.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'daemon-cpu-home-'))
const onnxId = 'Xenova/multilingual-e5-small'
fs.cpSync(standin, path.join(home, '.cache/folder-mcp/onnx-models', onnxId), { recursive: true })
const transformersCache = path.join(checkout, 'node_modules/@xenova/transformers/.cache', onnxId)
const hadCache = fs.existsSync(transformersCache)
if (!hadCache) fs.cpSync(standin, transformersCache, { recursive: true })
// The f32 model the stand-in was made from, truncating at 512 tokens as the export does (no
// sentence_bert_config.json, so the tokenizer's model_max_length applies).
const f32 = path.join(home, 'minilm-f32')
fs.cpSync(path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), f32, { recursive: true, dereference: true })
fs.rmSync(path.join(f32, 'sentence_bert_config.json'), { force: true })

// sharp, stubbed (worker threads inherit the hook).
const stub = path.join(home, 'sharp-stub.mjs')
fs.writeFileSync(stub, "export default function sharp() { throw new Error('sharp is not installed in this benchmark') }\n")
const hook = path.join(home, 'sharp-hook.mjs')
fs.writeFileSync(
  hook,
  `export async function resolve(specifier, context, next) {
  return specifier === 'sharp' ? { url: ${JSON.stringify(pathToFileURL(stub).href)}, shortCircuit: true } : next(specifier, context)
}\n`,
)
const register = path.join(home, 'register.mjs')
fs.writeFileSync(register, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hook).href)})\n`)

// Beside the daemon's dist/, so that its relative imports resolve; removed after.
const script = path.join(checkout, 'native-backend-bench.mjs')
fs.copyFileSync(path.join(root, 'bench/daemon-cpu-inside.mjs'), script)
const out = path.join(root, 'target/daemon-cpu.json')
log(`${cpu()}; ${chunks} chunks, ${rounds} rounds`)
const env = { ...process.env, HOME: home, HF_HUB_OFFLINE: '1', BENCH_CORPUS: corpus, BENCH_ROUNDS: String(rounds), BENCH_OUT: out, BENCH_F32_MODEL: f32, BENCH_DIR: home }
const inside = (...args) => spawnSync(process.execPath, [`--import=${pathToFileURL(register).href}`, script, ...args], { cwd: checkout, stdio: 'inherit', env })
// Each engine in a process of its own, one round at a time, the order alternating.
const exits = []
let status = 0
for (let r = 1; r <= rounds && status === 0; r++) {
  for (const name of r % 2 ? ['pool', 'ours'] : ['ours', 'pool']) {
    const { status: code, signal } = inside('run', name, String(r))
    const wrote = fs.existsSync(path.join(home, `${name}-${r}.json`))
    if (code !== 0) exits.push(`${name} round ${r}: exit ${code ?? signal}${wrote ? ' after writing its results (on the way out)' : ''}`)
    if (!wrote) status = 1
  }
}
if (status === 0) status = inside('summary').status ?? 1
for (const e of exits) log(`abnormal exit: ${e}`)
fs.rmSync(script, { force: true })
if (!hadCache) fs.rmSync(transformersCache, { recursive: true, force: true })
fs.rmSync(home, { recursive: true, force: true })
if (status === 0) log(`wrote ${path.relative(process.cwd(), out)}`)
process.exit(status ?? 1)
