// The smoke test of an installed package, run by release:local and the registry test from the folder the
// package was installed into (natively, under qemu-aarch64 or under wine): the three entry points load, three
// reference texts embed like sentence-transformers, and close() returns. Results go to a JSON file, not stdout
// (Node's stdout to a pipe fails under wine).
//   node smoke.cjs <result.json> <model folder> <reference folder: texts.json + expected.json>
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const [resultFile, modelDir, referenceDir] = process.argv.slice(2)
const result = { platform: `${process.platform}-${process.arch}`, node: process.version, steps: [] }
const step = (name, detail) => result.steps.push(detail === undefined ? name : `${name}: ${detail}`)

function cosine(a, b) {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i]
    na += a[i] * a[i]
    nb += b[i] * b[i]
  }
  return dot / Math.sqrt(na * nb)
}

async function main() {
  const required = require('embedding-service')
  step('require', typeof required.EmbeddingService)
  // Which binary the loader took: native modules stay in require's cache like any other.
  result.binary = Object.keys(require.cache).filter((k) => k.endsWith('.node')).map((k) => path.basename(path.dirname(k)) + '/' + path.basename(k))
  const imported = await import('embedding-service')
  step('import', typeof imported.EmbeddingService)
  if (imported.EmbeddingService !== required.EmbeddingService) throw new Error('import and require gave different classes')
  const daemon = require('embedding-service/daemon')
  step('require daemon', Object.keys(daemon).join(','))
  const daemonEsm = await import('embedding-service/daemon')
  step('import daemon', Object.keys(daemonEsm).join(','))

  const texts = JSON.parse(fs.readFileSync(path.join(referenceDir, 'texts.json'), 'utf8')).slice(0, 3)
  const expected = JSON.parse(fs.readFileSync(path.join(referenceDir, 'expected.json'), 'utf8')).embeddings.slice(0, 3)
  const svc = new required.EmbeddingService({ model: modelDir, threads: 2 })
  const got = await svc.embed(texts)
  result.cosines = got.map((v, i) => cosine(v, expected[i]))
  result.minCosine = Math.min(...result.cosines)
  const status = svc.status()
  result.device = status.device
  step('embed', `${got.length} x ${got[0].length}`)
  await svc.close()
  step('close')
  result.ok = result.minCosine >= 0.99999
}

main()
  .catch((err) => {
    result.ok = false
    result.error = `${err && err.code ? `${err.code}: ` : ''}${err && err.stack ? err.stack : err}`
  })
  .finally(() => {
    fs.writeFileSync(resultFile, JSON.stringify(result, null, 2))
    process.exitCode = result.ok ? 0 : 1
  })
