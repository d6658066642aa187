#!/usr/bin/env node
// The daemon's cpu: models, its own ONNX worker pool against this package, inside the daemon's code (a
// folder-mcp checkout), on the stand-in `npm run test:daemon` uses (all-MiniLM-L6-v2 quantized by
// quantize_dynamic, laid out as its ONNX cache and as transformers.js' cache, so both read the same file).
//
// Run `npm run test:daemon -- <checkout>` once first: it installs the daemon's dependencies, this package into
// them and makes the stand-in. This script then builds the daemon (`npm run build`: its worker pool starts
// dist/.../onnx-worker.js), puts the stand-in into @xenova/transformers' cache in the checkout (removed after),
// and runs bench/daemon-cpu-inside.mjs there with Node. `sharp` (an image library @xenova/transformers imports,
// whose install downloads binaries) is resolved to a stub by a loader hook, in the worker threads too.
// Then the daemon's own process (dist/src/daemon/index.js, as `folder-mcp-daemon` runs), once with each backend
// (scripts/daemon/loader.mjs resolves its ONNXEmbeddingService to ours, or leaves its own), indexing a folder
// of `daemon-chunks` corpus chunks (its cpu: path embeds every chunk and, for key phrases, its n-grams) while
// a REST search_content request goes to it every 150 ms; then SIGTERM, and its exit status. Its
// PythonEmbeddingService resolves to ours in both runs, so that neither spawns Python.
// Prints and writes target/daemon-cpu.json.
//
// The daemon process also reports its event loop's delay over the job (perf_hooks' monitorEventLoopDelay, reset
// as the first batch comes back): a search waits for whatever holds the loop, whichever backend embeds.
//
// Usage: node bench/daemon-cpu.mjs <folder-mcp checkout> [chunks=2000] [rounds=2] [daemon-chunks=2000] [--daemon-only]
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { cpu, quantile } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const log = (msg) => process.stderr.write(`[bench:daemon-cpu] ${msg}\n`)
const daemonOnly = process.argv.includes('--daemon-only')
// --only=ours|pool: the daemon-process rounds for one backend (a diagnostic; no ratio).
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7)
const args = process.argv.slice(2).filter((a) => a !== '--daemon-only' && !a.startsWith('--only='))
const checkout = args[0] && path.resolve(args[0])
const [chunks, rounds, daemonChunks] = [2000, 2, 2000].map((d, i) => Number(args[1 + i] ?? d))
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
for (let r = 1; r <= rounds && status === 0 && !daemonOnly; r++) {
  for (const name of r % 2 ? ['pool', 'ours'] : ['ours', 'pool']) {
    const { status: code, signal } = inside('run', name, String(r))
    const wrote = fs.existsSync(path.join(home, `${name}-${r}.json`))
    if (code !== 0) exits.push(`${name} round ${r}: exit ${code ?? signal}${wrote ? ' after writing its results (on the way out)' : ''}`)
    if (!wrote) status = 1
  }
}
if (status === 0 && !daemonOnly) status = inside('summary').status ?? 1
if (daemonOnly) fs.writeFileSync(out, JSON.stringify({ cpu: cpu() }))
for (const e of exits) log(`abnormal exit: ${e}`)

// The daemon's own process. Its folder: the corpus chunks as Markdown files of 50 paragraphs (the daemon
// chunks them its own way, the same for both backends).
const daemonCorpus = path.join(root, `target/bench-corpus-${daemonChunks}.json`)
if (!fs.existsSync(daemonCorpus)) run(process.execPath, [path.join(root, 'bench/corpus.mjs'), String(daemonChunks)])
const daemonDocs = JSON.parse(fs.readFileSync(daemonCorpus, 'utf8'))
const folder = path.join(home, 'folder')
const configDir = path.join(home, 'config')
fs.mkdirSync(configDir, { recursive: true })
fs.writeFileSync(path.join(configDir, 'config.yaml'), `folders:\n  list:\n    - path: ${JSON.stringify(folder)}\n      model: ${'cpu:xenova-multilingual-e5-small'}\n`)
const loader = pathToFileURL(path.join(root, 'scripts/daemon/loader.mjs')).href
const registerLoader = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(loader)})`
// In the daemon process: its event loop's delay, reset on SIGUSR2 (the job's start), printed on SIGTERM.
const loopMonitor = `data:text/javascript,${encodeURIComponent(`import { monitorEventLoopDelay } from 'node:perf_hooks'
const h = monitorEventLoopDelay({ resolution: 10 })
h.enable()
process.on('SIGUSR2', () => h.reset())
process.on('SIGTERM', () => process.stderr.write('[event-loop] ' + JSON.stringify({ p50_ms: h.percentile(50) / 1e6, p99_ms: h.percentile(99) / 1e6, max_ms: h.max / 1e6 }) + '\\n'))`)}`
const searches = ['how do I configure the cache', 'what does the error message mean', 'install on windows', 'how to run the tests', 'streaming a large file']
const settle = (promise, ms) => Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve('timeout'), ms))])

async function daemonRound(name) {
  fs.rmSync(folder, { recursive: true, force: true })
  fs.mkdirSync(folder)
  for (let f = 0; f * 50 < daemonDocs.length; f++) {
    fs.writeFileSync(path.join(folder, `doc-${String(f).padStart(3, '0')}.md`), daemonDocs.slice(f * 50, (f + 1) * 50).join('\n\n') + '\n')
  }
  fs.rmSync(path.join(home, '.folder-mcp'), { recursive: true, force: true })
  const started = performance.now()
  // A diagnostic: e.g. BENCH_DAEMON_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the daemon.
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const child = spawn(process.execPath, [...nodeArgs, '--import', registerLoader, '--import', loopMonitor, 'dist/src/daemon/index.js', '--port', '39849'], {
    cwd: checkout,
    env: {
      ...env, FOLDER_MCP_USER_CONFIG_DIR: configDir, NATIVE_BACKEND_ALIASES: name === 'ours' ? 'python,onnx' : 'python',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)))
  let text = ''
  const waiters = []
  const seen = (pattern) => new Promise((resolve) => waiters.push({ pattern, resolve }))
  const read = (data) => {
    text += data
    for (const w of waiters.filter((w) => w.pattern.test(text))) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(performance.now())
    }
  }
  child.stdout.on('data', read)
  child.stderr.on('data', read)
  const gone = exited.then(() => 'exited')
  const firstBatch = await Promise.race([seen(/\[OPTIMIZED-ONNX\] Generated embeddings for chunks/), gone])
  if (firstBatch === 'exited') throw new Error(`${name}: the daemon exited before indexing:\n${text.slice(-3000)}`)
  child.kill('SIGUSR2')
  let doneAt = 0
  const done = Promise.race([seen(new RegExp(`Indexing complete for ${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)), gone]).then((t) => (doneAt = t))
  const searchMs = []
  let afterJob = 0
  let failed = 0
  for (let q = 0; !doneAt; q++) {
    await settle(done, 150) // a person typing, or the job's end
    if (doneAt) break
    const s = performance.now()
    const res = await fetch(`http://127.0.0.1:3002/api/v1/folders/${encodeURIComponent(folder)}/search_content`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ semantic_concepts: [searches[q % searches.length]], limit: 5 }),
    })
    await res.json()
    searchMs.push(performance.now() - s)
    if (res.status !== 200) failed++
    if (doneAt) afterJob++
  }
  if (doneAt === 'exited') throw new Error(`${name}: the daemon exited during indexing:\n${text.slice(-3000)}`)
  const rssMb = Math.round(Number(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024)
  child.kill('SIGTERM')
  const exit = await settle(exited, 60000)
  if (exit === 'timeout') child.kill('SIGKILL')
  const loop = JSON.parse(text.match(/\[event-loop\] (.*)/)?.[1] ?? 'null')
  const documents = fs.readdirSync(folder).filter((f) => f.endsWith('.md')).length
  return {
    index_s: +((doneAt - firstBatch) / 1000).toFixed(2),
    start_to_indexed_s: +((doneAt - started) / 1000).toFixed(2),
    files: documents,
    rest_search_ms: {
      count: searchMs.length, p50: +quantile(searchMs, 0.5).toFixed(1), p90: +quantile(searchMs, 0.9).toFixed(1),
      p99: +quantile(searchMs, 0.99).toFixed(1), max: +Math.max(...searchMs).toFixed(1), first: +searchMs[0]?.toFixed(1),
      over_150: searchMs.filter((ms) => ms > 150).length, not_200: failed, answered_after_the_job: afterJob,
    },
    daemon_event_loop_delay_ms: loop && Object.fromEntries(Object.entries(loop).map(([k, v]) => [k, +v.toFixed(1)])),
    rss_mb_indexed: rssMb,
    sigterm_exit: exit,
  }
}

if (status === 0) {
  log(`the daemon's own process (dist/src/daemon/index.js), ${daemonChunks} corpus chunks in ${Math.ceil(daemonChunks / 50)} files, ${rounds} rounds`)
  const daemonRuns = { pool: [], ours: [] }
  for (let r = 1; r <= rounds; r++) {
    for (const name of (r % 2 ? ['pool', 'ours'] : ['ours', 'pool']).filter((n) => !only || n === only)) {
      const got = await daemonRound(name)
      log(`daemon round ${r} ${name}: ${JSON.stringify(got)}`)
      daemonRuns[name].push(got)
    }
  }
  const median = (xs) => quantile(xs, 0.5)
  const summary = JSON.parse(fs.readFileSync(out, 'utf8'))
  summary.daemon_process = {
    chunks: daemonChunks,
    runs: daemonRuns,
    index_speedup_median: only ? null : +(median(daemonRuns.pool.map((r) => r.index_s)) / median(daemonRuns.ours.map((r) => r.index_s))).toFixed(2),
  }
  fs.writeFileSync(out, JSON.stringify(summary, null, 2))
  console.log(`[bench] daemon process: ${JSON.stringify(summary.daemon_process)}`)
}
fs.rmSync(script, { force: true })
if (!hadCache) fs.rmSync(transformersCache, { recursive: true, force: true })
fs.rmSync(home, { recursive: true, force: true })
if (status === 0) log(`wrote ${path.relative(process.cwd(), out)}`)
process.exit(status ?? 1)
