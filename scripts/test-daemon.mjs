#!/usr/bin/env node
// `npm run test:daemon -- <path to a folder-mcp checkout>`: runs the daemon's own code against this addon.
//
// 1. Installs the checkout's npm dependencies if it has none (`npm ci --ignore-scripts`, then builds
//    better-sqlite3, the one native module the indexing path needs; idempotent).
// 2. Installs this addon into it as node_modules/embedding-service (the files `npm pack` would ship plus the
//    binary built here by `npm install`/`npm run build`).
// 3. Runs, with the daemon's vitest and `PythonEmbeddingService` resolved to NativeEmbeddingBackend (an import
//    alias; not one line of the daemon changed):
//    - the daemon's own tests/integration/services/python-embeddings.test.ts;
//    - an end-to-end test of ours (scripts/daemon/index-and-search.test.ts): the daemon's DI container and
//      IndexingOrchestrator index a small folder with a `gpu:` model through its registry, into its SQLite vec0
//      store, with KeyBERT key phrases; then a search through the same registry finds the right file.
// No network: models come from a hub cache laid out from this repo's fixtures (run `npm run fixtures` first).
// The only model available offline is all-MiniLM-L6-v2; the curated `gpu:paraphrase-multilingual-minilm` is a
// different model of the same size (384), so the end-to-end test serves all-MiniLM-L6-v2's files under that id:
// it checks the daemon's wiring, not that model's quality.
// 4. Type-checks the daemon with the README's migration edits applied (then restores its files).
// Exits non-zero if either the tests or the type check fail.
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
const sqliteBinary = path.join(checkout, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')
if (!fs.existsSync(sqliteBinary)) {
  log('building better-sqlite3 from source against this Node\'s headers')
  const env = { ...process.env }
  // Node's headers ship with the Debian/NodeSource package; node-gyp would otherwise download them.
  for (const dir of ['/usr', path.dirname(path.dirname(process.execPath))]) {
    if (fs.existsSync(path.join(dir, 'include/node/node.h'))) {
      env.npm_config_nodedir = dir
      break
    }
  }
  run('npm', ['rebuild', 'better-sqlite3'], { cwd: checkout, env })
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
for (const file of [...pkg.files.filter((f) => /\.(m?js|d\.ts)$/.test(f) && !f.includes('/')), 'package.json', binary]) {
  fs.copyFileSync(path.join(root, file), path.join(target, file))
}
log(`installed embedding-service ${pkg.version} (${binary}) into ${path.relative(process.cwd(), target) || target}`)

// Models: a hub cache with all-MiniLM-L6-v2 under its own id and, as a stand-in, under the curated gpu id.
const fixtureHub = path.join(root, 'fixtures/models/hub/models--sentence-transformers--all-MiniLM-L6-v2')
if (!fs.existsSync(fixtureHub)) {
  log('the model fixtures are missing: run `npm run fixtures` first')
  process.exit(2)
}
const hub = fs.mkdtempSync(path.join(os.tmpdir(), 'native-backend-hub-'))
for (const id of ['sentence-transformers/all-MiniLM-L6-v2', 'sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2']) {
  fs.cpSync(fixtureHub, path.join(hub, `models--${id.replace('/', '--')}`), { recursive: true, dereference: true })
}

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
fs.copyFileSync(path.join(root, 'scripts/daemon/index-and-search.test.ts'), path.join(work, 'index-and-search.test.ts'))
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
fs.writeFileSync(
  path.join(work, 'vitest.config.mjs'),
  `import { defineConfig } from 'vitest/config'
export default defineConfig({
  resolve: {
    alias: [
      { find: /^.*\\/python-embedding-service\\.js$/, replacement: ${JSON.stringify(path.join(work, 'python-embedding-service.mjs'))} },
      ${sharpInstalled ? '' : `{ find: /^sharp$/, replacement: ${JSON.stringify(path.join(work, 'sharp-unavailable.cjs'))} },`}
    ],
  },
  test: {
    root: ${JSON.stringify(checkout)},
    environment: 'node',
    globals: true,
    include: ['tests/integration/services/python-embeddings.test.ts', 'tests/native-backend/index-and-search.test.ts'],
    setupFiles: ['tests/helpers/setup.ts'],
    testTimeout: 20000,
    hookTimeout: 60000,
    fileParallelism: false,
    retry: 0,
    // Bundled by vitest (not loaded by Node) so that the sharp alias reaches its import.
    server: { deps: { inline: ${sharpInstalled ? '[]' : '[/@xenova\\/transformers/]'} } },
  },
})
`,
)
log(`running the daemon's tests with PythonEmbeddingService -> NativeEmbeddingBackend (hub cache ${hub})`)
const result = spawnSync(
  path.join(checkout, 'node_modules/.bin/vitest'),
  ['run', '--config', path.join(work, 'vitest.config.mjs'), ...process.argv.slice(3)],
  {
    cwd: checkout,
    stdio: 'inherit',
    env: { ...process.env, HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1', NATIVE_BACKEND_DOCS: path.join(work, 'docs') },
  },
)
fs.rmSync(hub, { recursive: true, force: true })

// 4. The migration as README describes it: with its required edits made to the source, the daemon type-checks
// against daemon.d.ts. The files are restored afterwards.
const edits = [
  {
    file: 'src/infrastructure/embeddings/python-embedding-service.ts',
    edit: () => "export { PythonEmbeddingService } from 'embedding-service/daemon';\n",
  },
  {
    // The remote backend's label: the daemon only tests for 'onnx', so 'remote' takes the KeyBERT path.
    file: 'src/di/interfaces.ts',
    edit: (text) => {
      const next = text.replace("getServiceType(): 'onnx' | 'gpu';", "getServiceType(): 'onnx' | 'gpu' | 'remote';")
      if (next === text) throw new Error("interfaces.ts: getServiceType(): 'onnx' | 'gpu' was not found")
      return next
    },
  },
  {
    file: 'src/daemon/factories/model-factories.ts',
    edit: (text) => {
      const next = text.replace('const venvPythonPath = getVenvPythonPath();', 'const venvPythonPath = undefined;')
      if (next === text) throw new Error('model-factories.ts: the getVenvPythonPath() call to remove was not found')
      return next
    },
  },
]
const originals = edits.map(({ file }) => fs.readFileSync(path.join(checkout, file), 'utf8'))
let tscStatus = 1
try {
  edits.forEach(({ file, edit }, i) => fs.writeFileSync(path.join(checkout, file), edit(originals[i])))
  log('type-checking the daemon with the migration edits (tsc --noEmit)')
  tscStatus = spawnSync(path.join(checkout, 'node_modules/.bin/tsc'), ['--noEmit', '-p', '.'], { cwd: checkout, stdio: 'inherit' }).status ?? 1
  log(tscStatus === 0 ? 'tsc: no errors' : 'tsc: errors (above)')
} finally {
  edits.forEach(({ file }, i) => fs.writeFileSync(path.join(checkout, file), originals[i]))
}
if (madeVenv) fs.rmSync(path.join(checkout, 'src/infrastructure/embeddings/python/venv'), { recursive: true, force: true })
if (!process.env.KEEP_NATIVE_BACKEND_TESTS) fs.rmSync(work, { recursive: true, force: true })
process.exit(result.status === 0 && tscStatus === 0 ? 0 : 1)
