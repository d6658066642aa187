#!/usr/bin/env node
// `npm run test:daemon -- <path to a folder-mcp checkout>`: runs the daemon's own code against this addon.
//
// 1. Installs the checkout's npm dependencies if it has none (`npm ci --ignore-scripts`, then builds
//    better-sqlite3 and sqlite3, the native modules its indexing and REST search paths load; idempotent).
// 2. Installs this addon into it as node_modules/embedding-service (the files `npm pack` would ship plus the
//    binary built here by `npm install`/`npm run build`).
// 3. Runs the daemon's vitest on its own tests/integration/services/python-embeddings.test.ts and ours
//    (scripts/daemon/*.test.ts, copied in beside its tests), first on the daemon unchanged, with
//    `PythonEmbeddingService` resolved to NativeEmbeddingBackend by an import alias, then (4) with the README's
//    migration edits made to its source. Ours:
//    - index-and-search: the daemon's DI container and IndexingOrchestrator index a small folder with a `gpu:`
//      model through its registry, into its SQLite vec0 store, with KeyBERT key phrases; a search through the same
//      registry finds the right file;
//    - search-during-indexing: searches over HTTP through its RESTAPIServer's search_content route (its indexing
//      queue, model factory and bridge) while a 2,000-chunk job runs on the same backend, each answered before
//      the job ends, on an E5 stand-in whose "query: " prefix is checked against vec0's scores; latency printed;
//    - keep-alive: the idle unload (`testConfig.keepAliveSeconds: 1`, and its system-configuration.json through
//      the registry) returns memory while its health check, bridge load() and verifyLoaded() see a usable model.
// No network: models come from a hub cache laid out from this repo's fixtures (run `npm run fixtures` first).
// The only model available offline is all-MiniLM-L6-v2; it is served under the curated ids the tests use: they
// check the daemon's wiring, not those models' quality.
// 4. With the migration edits, the same tests, and `tsc --noEmit` on the daemon both unchanged and edited
//    (files restored afterwards). Exits non-zero if any of the four fails.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const log = (msg) => process.stderr.write(`[test:daemon] ${msg}\n`)

const checkout = process.argv[2] && path.resolve(process.argv[2])
if (!checkout) {
  log('usage: npm run test:daemon -- <path to a folder-mcp checkout>')
  process.exit(2)
}
const daemonService = path.join(checkout, 'src/infrastructure/embeddings/python-embedding-service.ts')
if (!fs.existsSync(path.join(checkout, 'package.json')) || !fs.existsSync(daemonService)) {
  log(`${checkout} is not a folder-mcp checkout (no ${path.relative(checkout, daemonService)})`)
  process.exit(2)
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts })

// 1. The daemon's dependencies.
if (!fs.existsSync(path.join(checkout, 'node_modules', 'vitest'))) {
  log('installing the daemon\'s dependencies (npm ci --ignore-scripts)')
  run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: checkout })
}
// The native modules the indexing and REST search paths load: better-sqlite3 (its vec0 store) and sqlite3 (its
// REST server's semantic metadata service). Their install scripts were skipped above; they build from source.
const nativeModules = [
  ['better-sqlite3', 'build/Release/better_sqlite3.node'],
  ['sqlite3', 'build/Release/node_sqlite3.node'],
]
for (const [name, binaryPath] of nativeModules) {
  if (fs.existsSync(path.join(checkout, 'node_modules', name, binaryPath))) continue
  log(`building ${name} from source against this Node's headers`)
  const env = { ...process.env }
  // Node's headers ship with the Debian/NodeSource package; node-gyp would otherwise download them.
  for (const dir of ['/usr', path.dirname(path.dirname(process.execPath))]) {
    if (fs.existsSync(path.join(dir, 'include/node/node.h'))) {
      env.npm_config_nodedir = dir
      break
    }
  }
  run('npm', ['rebuild', name], { cwd: checkout, env })
}

// 2. This addon, as an installed package.
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const binary = fs.readdirSync(root).find((f) => f.startsWith('embedding-service.') && f.endsWith('.node'))
if (!binary) {
  log('no built binary here: run `npm install` (or `npm run build`) in this repository first')
  process.exit(2)
}
const target = path.join(checkout, 'node_modules', 'embedding-service')
fs.rmSync(target, { recursive: true, force: true })
fs.mkdirSync(target, { recursive: true })
for (const file of [...pkg.files.filter((f) => /\.(m?js|d\.m?ts)$/.test(f) && !f.includes('/')), 'package.json', binary]) {
  fs.copyFileSync(path.join(root, file), path.join(target, file))
}
// The daemon adapter's modules, one file per daemon contract.
fs.cpSync(path.join(root, 'daemon'), path.join(target, 'daemon'), { recursive: true })
log(`installed embedding-service ${pkg.version} (${binary}) into ${path.relative(process.cwd(), target) || target}`)

// Models: a hub cache with all-MiniLM-L6-v2 under its own id and, as stand-ins, under two curated gpu ids: the
// multilingual MiniLM (same size) and multilingual-e5-large, whose registry entry asks for E5 prefixes (the
// stand-in's folder declares no prompts, so a "query: " on searches can only come from the adapter).
const fixtureHub = path.join(root, 'fixtures/models/hub/models--sentence-transformers--all-MiniLM-L6-v2')
if (!fs.existsSync(fixtureHub)) {
  log('the model fixtures are missing: run `npm run fixtures` first')
  process.exit(2)
}
const hub = fs.mkdtempSync(path.join(os.tmpdir(), 'native-backend-hub-'))
for (const id of ['sentence-transformers/all-MiniLM-L6-v2', 'sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2', 'intfloat/multilingual-e5-large']) {
  fs.cpSync(fixtureHub, path.join(hub, `models--${id.replace('/', '--')}`), { recursive: true, dereference: true })
}

// The daemon's cpu: model (cpu:xenova-multilingual-e5-small), by a stand-in: all-MiniLM-L6-v2 quantized by ONNX
// Runtime's quantize_dynamic (scripts/daemon/make_onnx_standin.py, made once into target/), laid out in the
// daemon's ONNX cache under a HOME of this run's, where its ONNX code looks (~/.cache/folder-mcp/onnx-models).
const standin = path.join(root, 'target', 'daemon-onnx-standin')
if (!fs.existsSync(path.join(standin, 'onnx', 'model_quantized.onnx'))) {
  const venv = path.join(root, '.venv-bench', 'bin', 'python')
  const python = process.env.PYTHON || (fs.existsSync(venv) ? venv : 'python3')
  log(`making the cpu: model stand-in with ${python} (needs torch, transformers, onnx, onnxruntime: the README's benchmark venv)`)
  run(python, [path.join(root, 'scripts/daemon/make_onnx_standin.py'), standin])
}
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'native-backend-home-'))
fs.cpSync(standin, path.join(home, '.cache', 'folder-mcp', 'onnx-models', 'Xenova', 'multilingual-e5-small'), { recursive: true })

// 3. The daemon's vitest with the alias, our end-to-end test copied in beside its tests.
const work = path.join(checkout, 'tests', 'native-backend')
fs.rmSync(work, { recursive: true, force: true })
fs.mkdirSync(work, { recursive: true })
// The daemon's test asks for its Python venv's path (getVenvPythonPath throws without one) and passes it as
// `pythonPath`, which the native backend ignores; without a venv, point that path at this machine's python3
// for the run and remove it afterwards.
const venvPython = path.join(checkout, 'src/infrastructure/embeddings/python/venv/bin/python3')
const madeVenv = !fs.existsSync(venvPython)
if (madeVenv) {
  fs.mkdirSync(path.dirname(venvPython), { recursive: true })
  fs.symlinkSync(execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim(), venvPython)
}
// sharp (an image library of @xenova/transformers, which the daemon's DI container imports for its ONNX path)
// cannot install here: its install script downloads libvips. Text indexing never calls it, so the run resolves
// it to a module that throws if anything does.
const sharpInstalled = fs.existsSync(path.join(checkout, 'node_modules/sharp/build/Release'))
fs.writeFileSync(
  path.join(work, 'sharp-unavailable.cjs'),
  "module.exports = () => { throw new Error('sharp is not installed in this test run') }\n",
)
const ourTests = fs.readdirSync(path.join(root, 'scripts/daemon')).filter((f) => f.endsWith('.test.ts'))
for (const test of ourTests) fs.copyFileSync(path.join(root, 'scripts/daemon', test), path.join(work, test))
// The module hooks with which cpu-models.test.ts runs the daemon's own process (its aliases, sharp).
fs.copyFileSync(path.join(root, 'scripts/daemon/loader.mjs'), path.join(work, 'loader.mjs'))
// The folder to index: the demo's sample documents and this repository's own long docs (many chunks).
fs.mkdirSync(path.join(work, 'docs'), { recursive: true })
for (const doc of fs.readdirSync(path.join(root, 'examples/sample-docs'))) {
  fs.copyFileSync(path.join(root, 'examples/sample-docs', doc), path.join(work, 'docs', doc))
}
for (const doc of ['README.md', 'BENCHMARKS.md']) fs.copyFileSync(path.join(root, doc), path.join(work, 'docs', doc))
fs.writeFileSync(
  path.join(work, 'python-embedding-service.mjs'),
  "export { NativeEmbeddingBackend as PythonEmbeddingService } from 'embedding-service/daemon'\n",
)
fs.writeFileSync(path.join(work, 'onnx-embedding-service.mjs'), "export { ONNXEmbeddingService } from 'embedding-service/daemon'\n")
// The daemon's vitest: with `alias`, PythonEmbeddingService resolves to the adapter without a line of the
// daemon changed; without it, the daemon's own file must re-export it (the migration's first edit).
const vitestConfig = (alias) => {
  const file = path.join(work, `vitest.${alias ? 'alias' : 'edited'}.config.mjs`)
  const aliases = [
    alias && `{ find: /^.*\\/python-embedding-service\\.js$/, replacement: ${JSON.stringify(path.join(work, 'python-embedding-service.mjs'))} }`,
    alias && `{ find: /^.*\\/onnx\\/onnx-embedding-service\\.js$/, replacement: ${JSON.stringify(path.join(work, 'onnx-embedding-service.mjs'))} }`,
    !sharpInstalled && `{ find: /^sharp$/, replacement: ${JSON.stringify(path.join(work, 'sharp-unavailable.cjs'))} }`,
  ].filter(Boolean)
  fs.writeFileSync(
    file,
    `import { defineConfig } from 'vitest/config'
export default defineConfig({
  resolve: { alias: [${aliases.join(', ')}] },
  test: {
    root: ${JSON.stringify(checkout)},
    environment: 'node',
    globals: true,
    include: ['tests/integration/services/python-embeddings.test.ts', ${ourTests.map((t) => JSON.stringify(`tests/native-backend/${t}`)).join(', ')}],
    setupFiles: ['tests/helpers/setup.ts'],
    testTimeout: 20000,
    hookTimeout: 300000,
    fileParallelism: false,
    retry: 0,
    // Bundled by vitest (not loaded by Node) so that the sharp alias reaches its import.
    server: { deps: { inline: ${sharpInstalled ? '[]' : '[/@xenova\\/transformers/]'} } },
  },
})
`,
  )
  return file
}
const runVitest = (alias) => {
  log(`running the daemon's tests ${alias ? 'unchanged, PythonEmbeddingService -> NativeEmbeddingBackend by an import alias' : 'with the migration edits'} (hub cache ${hub})`)
  return spawnSync(path.join(checkout, 'node_modules/.bin/vitest'), ['run', '--config', vitestConfig(alias), ...process.argv.slice(3)], {
    cwd: checkout,
    stdio: 'inherit',
    env: {
      ...process.env, HOME: home, HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1', NATIVE_BACKEND_DOCS: path.join(work, 'docs'),
      // For the daemon processes its tests start: the same aliases as the vitest config's (scripts/daemon/loader.mjs).
      NATIVE_BACKEND_ALIASES: alias ? 'python,onnx' : '',
    },
  }).status
}
const typeCheck = (label) => {
  log(`type-checking the daemon ${label} (tsc --noEmit)`)
  const status = spawnSync(path.join(checkout, 'node_modules/.bin/tsc'), ['--noEmit', '-p', '.'], { cwd: checkout, stdio: 'inherit' }).status ?? 1
  log(status === 0 ? `tsc ${label}: no errors` : `tsc ${label}: errors (above)`)
  return status
}
const results = []
results.push(['tests, daemon unchanged', runVitest(true)])
results.push(['tsc, daemon unchanged', typeCheck('unchanged')])

// 4. The migration as README describes it: its three required edits and the optional fourth made to the source,
// the same tests pass and the daemon type-checks against daemon.d.ts. The files are restored afterwards.
const replaceOnce = (file, from, to) => (text) => {
  const next = text.split(from).join(to)
  if (next === text) throw new Error(`${file}: ${JSON.stringify(from)} was not found`)
  return next
}
const edits = [
  {
    file: 'src/infrastructure/embeddings/python-embedding-service.ts',
    edit: () => "export { PythonEmbeddingService } from 'embedding-service/daemon';\n",
  },
  {
    // The ONNX backend: the same class from this package; the types its other modules import stay.
    file: 'src/infrastructure/embeddings/onnx/onnx-embedding-service.ts',
    edit: () =>
      [
        "export { ONNXEmbeddingService } from 'embedding-service/daemon';",
        "export type { ONNXEmbeddingOptions } from 'embedding-service/daemon';",
        'export interface EmbeddingResult { embeddings: number[][]; dimensions: number; modelUsed: string; processingTime: number; }',
        '',
      ].join('\n'),
  },
  {
    file: 'src/daemon/factories/model-factories.ts',
    edit: replaceOnce('model-factories.ts', 'const venvPythonPath = getVenvPythonPath();', 'const venvPythonPath = undefined;'),
  },
  {
    // The remote backend's label: the daemon only tests for 'onnx', so 'remote' takes the KeyBERT path.
    file: 'src/di/interfaces.ts',
    edit: replaceOnce('interfaces.ts', "getServiceType(): 'onnx' | 'gpu';", "getServiceType(): 'onnx' | 'gpu' | 'remote';"),
  },
  {
    // Optional: searches say they are queries (the adapter also knows them by their labels without this).
    file: 'src/daemon/rest/server.ts',
    edit: replaceOnce('server.ts', 'await modelService.generateEmbeddings(chunks);', 'await modelService.generateEmbeddings(chunks, true);'),
  },
  {
    file: 'src/infrastructure/embeddings/bridges/python-model-bridge.ts',
    edit: (text) =>
      replaceOnce('python-model-bridge.ts', 'this.pythonService.generateEmbeddings([chunk]);', "this.pythonService.generateEmbeddings([chunk], immediate ? 'query' : 'passage');")(
        replaceOnce('python-model-bridge.ts', 'this.pythonService.generateEmbeddings(chunks);', "this.pythonService.generateEmbeddings(chunks, immediate ? 'query' : 'passage');")(text),
      ),
  },
]
const originals = edits.map(({ file }) => fs.readFileSync(path.join(checkout, file), 'utf8'))
try {
  edits.forEach(({ file, edit }, i) => fs.writeFileSync(path.join(checkout, file), edit(originals[i])))
  results.push(['tests, with the migration edits', runVitest(false)])
  results.push(['tsc, with the migration edits', typeCheck('with the migration edits')])
} finally {
  edits.forEach(({ file }, i) => fs.writeFileSync(path.join(checkout, file), originals[i]))
}
fs.rmSync(hub, { recursive: true, force: true })
fs.rmSync(home, { recursive: true, force: true })
if (madeVenv) fs.rmSync(path.join(checkout, 'src/infrastructure/embeddings/python/venv'), { recursive: true, force: true })
if (!process.env.KEEP_NATIVE_BACKEND_TESTS) fs.rmSync(work, { recursive: true, force: true })
for (const [label, status] of results) log(`${status === 0 ? 'pass' : 'FAIL'}: ${label}`)
process.exit(results.every(([, status]) => status === 0) ? 0 : 1)
