#!/usr/bin/env node
// A real OpenAI-compatible embedding server on loopback, for tests of the remote (HTTP) engine: infinity-emb from
// PyPI, serving a local sentence-transformers folder (by default the fixture all-MiniLM-L6-v2) with no model-hub
// access. The server is installed once, with pinned versions, into a virtual environment in the user cache
// (<cache>/venv-infinity, reused across clones; about 6 GB, as PyPI's torch for Linux brings the CUDA libraries).
//
//   node scripts/remote-engine.mjs install               create the environment (idempotent), print infinity_emb's path
//   node scripts/remote-engine.mjs serve [--port N]       start the server and keep it running until Ctrl-C
//                                       [--model DIR] [--name SERVED_MODEL_NAME]
//
// As a module:
//   import { ensureEngine, startEngine } from '../scripts/remote-engine.mjs'
//   const engine = await startEngine()  // { url, modelId, port, process, logFile, exited, stop(), kill(signal) }
//   await fetch(`${engine.url}/embeddings`, ...)  // OpenAI-style API without a /v1 prefix unless urlPrefix is given
//   await engine.stop()
//
// ensureEngine() is safe to call from parallel processes (a mkdir lock, waited on); once the environment is complete
// a marker file makes later calls instant. Prints to stderr only (except `install`, which prints the executable path).
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cacheRoot } from './python.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// The packages asked for. transformers 5 breaks infinity-emb 0.0.78 at start-up (`batch_encode_plus`), so it stays
// on 4.x; infinity-emb itself requires numpy<2 and sentence-transformers<4.
const REQUIREMENTS = [
  'infinity-emb[server,torch]==0.0.78',
  'transformers==4.57.6',
  'sentence-transformers==3.4.1',
  'torch==2.15.0',
  'numpy==1.26.4',
]
// Everything else pinned to the set that was installed and tested together (pip freeze, Linux x86_64, CPython 3.11),
// passed to pip as constraints: a package not needed on another platform is simply not installed.
const CONSTRAINTS = `
annotated-doc==0.0.7 annotated-types==0.8.0 anyio==4.16.0 backoff==2.2.1 certifi==2026.10.19.post1
charset-normalizer==3.5.3 click==8.1.8 cloudpickle==3.1.3 cuda-bindings==13.5.0 cuda-pathfinder==1.9.1
cuda-toolkit==13.2.2 distro==1.9.0 fastapi==0.165.0 filelock==4.3.1 fsspec==2026.9.0 h11==0.16.0 hf-xet==1.8.0
httptools==0.9.0 huggingface_hub==0.36.2 idna==3.20 infinity_emb==0.0.78 Jinja2==3.1.6 joblib==1.6.0
markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 mpmath==1.3.0 narwhals==2.29.0 networkx==3.6.1 numpy==1.26.4
nvidia-cublas==13.4.1.3 nvidia-cuda-cccl==13.3.5.0.6 nvidia-cuda-cupti==13.2.86 nvidia-cuda-nvrtc==13.2.86
nvidia-cuda-runtime==13.2.86 nvidia-cudnn-cu13==9.26.0.51 nvidia-cufft==12.2.0.57 nvidia-cufile==1.17.1.22
nvidia-cusolver==12.2.0.11 nvidia-cusparse==12.7.10.12 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7
nvidia-nvjitlink==13.5.37 nvidia-nvshmem-cu13==3.7.2 nvidia-nvtx==13.2.86 opentelemetry-api==1.45.2 orjson==3.13.0
packaging==26.4 pillow==13.0.0 posthog==7.91.1 prometheus-fastapi-instrumentator==8.1.0 prometheus_client==0.26.0
pydantic==2.14.4 pydantic_core==2.50.5 Pygments==2.21.0 python-dotenv==1.2.4 PyYAML==6.0.4 regex==2026.11.19
requests==2.34.2 rich==13.9.4 safetensors==0.8.0 scikit-learn==1.9.1 scipy==1.17.1 sentence-transformers==3.4.1
setuptools==84.2.1 shellingham==1.5.4 starlette==1.10.0 sympy==1.14.0 threadpoolctl==3.8.0 tokenizers==0.22.2
torch==2.15.0 tqdm==4.70.1 transformers==4.57.6 triton==3.9.0 typer==0.12.5 typing-inspection==0.4.5
typing_extensions==4.16.0 urllib3==2.8.0 uvicorn==0.32.1 uvloop==0.23.0 watchfiles==1.3.0 websockets==17.4
`.trim().split(/\s+/)

export const DEFAULT_MODEL_DIR = path.join(root, 'fixtures', 'models', 'all-MiniLM-L6-v2')
export const DEFAULT_MODEL_NAME = 'sentence-transformers/all-MiniLM-L6-v2'

const log = (msg) => process.stderr.write(`[remote-engine] ${msg}\n`)

export { cacheRoot }

const venvDir = () => path.join(cacheRoot(), 'venv-infinity')
const lockDir = () => path.join(cacheRoot(), 'venv-infinity.lock')
const pinsHash = createHash('sha256').update(JSON.stringify([REQUIREMENTS, CONSTRAINTS])).digest('hex').slice(0, 12)
const markerPath = () => path.join(venvDir(), `.complete-${pinsHash}`)
const executablePath = () => path.join(venvDir(), 'bin', 'infinity_emb')

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

function python() {
  const probe = 'import sys, venv, ensurepip; assert (3, 9) <= sys.version_info[:2] < (3, 14), sys.version'
  for (const exe of [process.env.PYTHON, 'python3.11', 'python3', 'python'].filter(Boolean)) {
    try {
      execFileSync(exe, ['-c', probe], { stdio: 'ignore' })
      return exe
    } catch {}
  }
  throw new Error('Python 3.9-3.13 with the venv module is needed once to install infinity-emb (set PYTHON=...)')
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === 'EPERM'
  }
}

// mkdir is atomic: whoever creates the folder holds the lock; the others wait. A lock left by a dead process
// (its pid file names a process that is gone, or it has no pid file after a minute) is broken.
function withLock(fn, { timeoutMs = 45 * 60_000 } = {}) {
  const dir = lockDir()
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  const deadline = Date.now() + timeoutMs
  let announced = false
  for (;;) {
    try {
      fs.mkdirSync(dir)
      break
    } catch (e) {
      if (e.code !== 'EEXIST') throw e
    }
    let stale = false
    try {
      const pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8'))
      stale = pid > 0 && !pidAlive(pid)
    } catch {
      try {
        stale = Date.now() - fs.statSync(dir).mtimeMs > 60_000
      } catch {} // the holder released it just now
    }
    if (stale) {
      log(`breaking a stale lock ${dir}`)
      fs.rmSync(dir, { recursive: true, force: true })
      continue
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the lock ${dir}`)
    if (!announced) {
      log(`waiting for another process installing infinity-emb (lock ${dir})`)
      announced = true
    }
    sleepSync(500)
  }
  try {
    fs.writeFileSync(path.join(dir, 'pid'), String(process.pid))
    return fn()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Creates the pinned infinity-emb environment once; returns the path of its `infinity_emb` executable. */
export function ensureEngine() {
  if (fs.existsSync(markerPath())) return executablePath()
  return withLock(() => {
    if (fs.existsSync(markerPath())) return executablePath() // another process finished it while we waited
    const venv = venvDir()
    const started = Date.now()
    log(`installing infinity-emb into ${venv} (about 6 GB, a few minutes; once per cache)`)
    fs.rmSync(venv, { recursive: true, force: true })
    try {
      execFileSync(python(), ['-m', 'venv', venv], { stdio: ['ignore', 'inherit', 'inherit'] })
      const constraints = path.join(venv, 'constraints.txt')
      fs.writeFileSync(constraints, CONSTRAINTS.join('\n') + '\n')
      execFileSync(
        path.join(venv, 'bin', 'python'),
        ['-m', 'pip', 'install', '--no-input', '--progress-bar', 'off', '-c', constraints, ...REQUIREMENTS],
        { stdio: ['ignore', 2, 2], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } },
      )
      // A smoke test: the server's modules import (this loads torch and transformers).
      execFileSync(path.join(venv, 'bin', 'python'), ['-c', 'import infinity_emb.infinity_server, sentence_transformers'], {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, ...serverEnv() },
      })
    } catch (e) {
      fs.rmSync(venv, { recursive: true, force: true })
      throw new Error(`installing infinity-emb failed: ${e.message}`)
    }
    fs.writeFileSync(markerPath(), REQUIREMENTS.join('\n') + '\n')
    log(`installed infinity-emb in ${((Date.now() - started) / 1000).toFixed(0)} s`)
    return executablePath()
  })
}

// No model hub, no telemetry, nothing written into the caller's working directory.
function serverEnv() {
  return {
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    HF_HUB_DISABLE_TELEMETRY: '1',
    DO_NOT_TRACK: '1',
    INFINITY_ANONYMOUS_USAGE_STATS: '0',
    INFINITY_HOME: path.join(cacheRoot(), 'infinity-home'),
    TOKENIZERS_PARALLELISM: 'false',
    // One torch thread: on a small shared machine (2 cores, a build or other tests beside) OpenMP's spinning threads
    // made large requests 3-8x slower and latencies erratic; single-threaded, latency is steady and start-up needs
    // no warm-up. Pass env: { OMP_NUM_THREADS: '2' } to startEngine to change it.
    OMP_NUM_THREADS: '1',
    MKL_NUM_THREADS: '1',
    PYTHONUNBUFFERED: '1',
    COLUMNS: '200', // rich's log lines, unwrapped
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

const running = new Set()
let exitHookInstalled = false
function killAllOnExit() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // A test runner that exits without stopping a server must not leave it behind.
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL')
  })
}

// Runs infinity_emb with PR_SET_PDEATHSIG: the kernel kills the server when the thread that spawned it goes away, so
// a test runner that is killed outright (SIGKILL, a crash) leaves no server behind. The exec keeps the pid.
const LAUNCHER = `
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("the parent process is gone")
os.execv(sys.argv[2], sys.argv[2:])
`

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

const PORT_TAKEN = /address already in use|Errno 98/i

/**
 * Starts infinity on 127.0.0.1 and resolves once it answers GET /models.
 * Options: modelDir (default the fixture all-MiniLM-L6-v2), port (0/undefined: a free one), modelName (served
 * model id, default sentence-transformers/all-MiniLM-L6-v2), apiKey (then every route but /health needs
 * `Authorization: Bearer <apiKey>`), urlPrefix (e.g. '/v1'; then the routes are /v1/models, /v1/embeddings),
 * batchSize (server-side batch, default 32), extraArgs, env, timeoutMs (start-up, default 300 s).
 * The child process is unref'd: it does not keep Node alive, and it is killed when this process exits.
 */
export async function startEngine(options = {}) {
  if (options.port) {
    if (!(await portIsFree(options.port))) throw new Error(`port ${options.port} on 127.0.0.1 is already in use`)
    return startOnce(options, options.port)
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, await freePort())
    } catch (e) {
      // Another process took the free port between our probe and the server's bind: try another one.
      if (!(e.portTaken && attempt < 3)) throw e
      log('the chosen port was taken meanwhile; retrying with another one')
    }
  }
}

async function startOnce(
  {
    modelDir = DEFAULT_MODEL_DIR,
    modelName = DEFAULT_MODEL_NAME,
    apiKey,
    urlPrefix = '',
    batchSize,
    extraArgs = [],
    env = {},
    timeoutMs = 300_000,
  },
  port,
) {
  const exe = ensureEngine()
  if (!fs.existsSync(path.join(modelDir, 'config.json'))) {
    throw new Error(`${modelDir} is not a model folder (no config.json); run node scripts/fetch-test-model.mjs`)
  }
  const logsDir = path.join(cacheRoot(), 'infinity-logs')
  fs.mkdirSync(logsDir, { recursive: true })
  pruneLogs(logsDir)
  const home = serverEnv().INFINITY_HOME
  fs.mkdirSync(home, { recursive: true })
  const logFile = path.join(logsDir, `infinity-${port}-${process.pid}-${Date.now()}.log`)
  const args = [
    'v2',
    '--model-id', path.resolve(modelDir),
    '--served-model-name', modelName,
    '--host', '127.0.0.1',
    '--port', String(port),
    '--engine', 'torch',
    '--device', 'cpu',
    '--no-model-warmup', // warm-up costs ~10 s of start-up; with one thread (below) it makes no difference
    '--no-vector-disk-cache',
    ...(batchSize ? ['--batch-size', String(batchSize)] : []),
    ...(urlPrefix ? ['--url-prefix', urlPrefix] : []),
    ...(apiKey ? ['--api-key', apiKey] : []),
    ...extraArgs,
  ]
  const fd = fs.openSync(logFile, 'a')
  fs.writeSync(fd, `$ ${exe} ${args.join(' ')}\n`)
  const python = path.join(path.dirname(exe), 'python')
  const child = spawn(python, ['-c', LAUNCHER, String(process.pid), exe, ...args], {
    cwd: home,
    env: { ...process.env, ...serverEnv(), ...env },
    stdio: ['ignore', fd, fd],
  })
  fs.closeSync(fd)
  child.unref()
  running.add(child)
  killAllOnExit()
  let exited = null
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal }
      running.delete(child)
      resolve(exited)
    })
    child.once('error', (err) => {
      exited = { error: err }
      running.delete(child)
      resolve(exited)
    })
  })

  const url = `http://127.0.0.1:${port}`
  const headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {}
  const started = Date.now()
  const fail = async (why) => {
    if (!exited) {
      child.kill('SIGKILL')
      await exitPromise
    }
    const text = tail(logFile)
    const err = new Error(`infinity_emb ${why}; log ${logFile}:\n${text}`)
    err.portTaken = PORT_TAKEN.test(text)
    throw err
  }
  let modelId
  for (;;) {
    await new Promise((r) => setTimeout(r, 250))
    if (exited) {
      await fail(`exited during start-up (${exited.error ? exited.error.message : `exit code ${exited.code}, signal ${exited.signal}`})`)
    }
    if (Date.now() - started > timeoutMs) await fail(`did not answer within ${timeoutMs / 1000} s`)
    // Only our own server's log proves that it, and not some other process, listens on the port.
    let logText = ''
    try {
      logText = fs.readFileSync(logFile, 'utf8')
    } catch {}
    if (PORT_TAKEN.test(logText)) await fail(`could not bind 127.0.0.1:${port}`)
    if (!logText.includes('Uvicorn running on')) continue
    try {
      const res = await fetch(`${url}${urlPrefix}/models`, { headers, signal: AbortSignal.timeout(5000) })
      if (!res.ok) await fail(`answered GET ${urlPrefix}/models with HTTP ${res.status}`)
      modelId = (await res.json()).data?.[0]?.id
      break
    } catch (e) {
      if (e.message.startsWith('infinity_emb ')) throw e
    }
  }
  log(`infinity_emb pid ${child.pid} serves ${modelId} at ${url}${urlPrefix} (ready in ${((Date.now() - started) / 1000).toFixed(1)} s, log ${logFile})`)

  return {
    url,
    port,
    modelId,
    process: child,
    logFile,
    exited: exitPromise,
    // Both ref the child again, so that Node stays up until its exit is seen (`await engine.exited`).
    kill(signal = 'SIGKILL') {
      if (!exited) child.ref()
      return child.kill(signal)
    },
    async stop({ graceMs = 10_000 } = {}) {
      if (exited) return
      child.ref()
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exitPromise
      clearTimeout(timer)
    },
  }
}

// Server logs older than a day are removed when a new server starts.
function pruneLogs(dir) {
  const cutoff = Date.now() - 24 * 3600_000
  for (const name of fs.readdirSync(dir)) {
    try {
      const file = path.join(dir, name)
      if (fs.statSync(file).mtimeMs < cutoff) fs.rmSync(file, { force: true })
    } catch {}
  }
}

async function main(argv) {
  const [cmd, ...rest] = argv
  const opt = (name) => {
    const i = rest.indexOf(name)
    return i >= 0 ? rest[i + 1] : undefined
  }
  if (cmd === 'install') {
    process.stdout.write(ensureEngine() + '\n')
    return
  }
  if (cmd === 'serve') {
    const engine = await startEngine({
      port: opt('--port') ? Number(opt('--port')) : undefined,
      modelDir: opt('--model') || DEFAULT_MODEL_DIR,
      modelName: opt('--name') || DEFAULT_MODEL_NAME,
    })
    engine.process.ref() // keep this command alive while the server runs
    log(`serving; try: curl -s ${engine.url}/embeddings -H 'content-type: application/json' -d '{"model":"${engine.modelId}","input":["hello"]}'`)
    log('Ctrl-C stops it')
    let stopping = false
    const shutdown = async () => {
      if (stopping) return
      stopping = true
      log('stopping')
      await engine.stop()
      process.exit(0)
    }
    process.on('SIGINT', shutdown)
    process.on('SIGTERM', shutdown)
    const { code, signal } = await engine.exited
    if (!stopping) {
      log(`infinity_emb exited by itself (code ${code}, signal ${signal}); log ${engine.logFile}:\n${tail(engine.logFile)}`)
      process.exit(1)
    }
    return
  }
  process.stderr.write('usage: node scripts/remote-engine.mjs install | serve [--port N] [--model DIR] [--name SERVED_MODEL_NAME]\n')
  process.exit(2)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    log(e.stack || e.message)
    process.exit(1)
  })
}
