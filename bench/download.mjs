// Model downloads from a hub on loopback, builds side by side: throughput of `downloadModel` for
// all-MiniLM-L6-v2 (the weights through a CDN redirect, as huggingface.co serves them), rounds alternated ABBA,
// each into a fresh cache; then, per build, how long an abort takes to settle while the server has gone silent
// mid-file (a build that never settles shows as "> cap").
//
// Usage: node bench/download.mjs [a.node] [b.node] [rounds=4] [--abort-cap-ms=5000] [--rate=MB/s]
// With no binaries it measures this checkout's build alone. `--rate` paces the CDN at that many MB/s, as a
// real network would; unpaced, loopback on a small machine makes the client's CPU the limit.
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpu, quantile } from './common.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'))
const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const rate = Number(flags.find((f) => f.startsWith('--rate='))?.split('=')[1] ?? 0)
const abortCap = Number(flags.find((f) => f.startsWith('--abort-cap-ms='))?.split('=')[1] ?? 5000)
const binaries = args.filter((a) => a.endsWith('.node')).map((p) => path.resolve(p))
const rounds = Number(args.find((a) => !a.endsWith('.node')) ?? 4)
const { createEmbeddingService } = require(path.join(root, 'service.js'))
const builds = binaries.length
  ? Object.fromEntries(binaries.map((b, i) => [`${'AB'[i]} (${path.basename(b)})`, createEmbeddingService(require(b))]))
  : { [path.basename(root)]: require(root).EmbeddingService }

const modelDir = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')
if (!fs.existsSync(path.join(modelDir, 'model.safetensors'))) {
  console.error(`${modelDir} is missing: run \`npm run fixtures\` first`)
  process.exit(2)
}
const commit = 'be0c0ffee0000000000000000000000000000000'
const files = new Map()
for (const f of ['config.json', 'tokenizer.json', 'modules.json', 'sentence_bert_config.json', 'config_sentence_transformers.json',
  'tokenizer_config.json', 'special_tokens_map.json', '1_Pooling/config.json', 'model.safetensors']) {
  const p = path.join(modelDir, f)
  if (fs.existsSync(p)) files.set(f, fs.readFileSync(p))
}
const weights = files.get('model.safetensors')
const weightsSha = createHash('sha256').update(weights).digest('hex')
const gitSha = (d) => createHash('sha1').update(`blob ${d.length}\0`).update(d).digest('hex')
let silentMidFile = false
const held = []

function serveRange(req, res, data, extra = {}, canStall = false) {
  const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '')
  const start = range ? Number(range[1]) : 0
  const end = range && range[2] ? Number(range[2]) : data.length - 1
  res.writeHead(range ? 206 : 200, {
    ...extra,
    'content-length': end - start + 1,
    ...(range ? { 'content-range': `bytes ${start}-${end}/${data.length}` } : {}),
  })
  if (req.method === 'HEAD') return res.end()
  const body = data.subarray(start, end + 1)
  if (canStall && silentMidFile && body.length > 1) {
    res.write(body.subarray(0, body.length >> 1))
    held.push(res)
    return
  }
  if (canStall && rate > 0) return paced(res, body)
  res.end(body)
}

/** Sends `body` at `rate` MB/s, in 1 MB slices on a timer. */
function paced(res, body) {
  const slice = 1 << 20
  const t0 = performance.now()
  let sent = 0
  const next = () => {
    if (res.destroyed) return
    if (sent >= body.length) return res.end()
    res.write(body.subarray(sent, sent + slice))
    sent += slice
    const due = t0 + (sent / (rate * 1e6)) * 1000
    setTimeout(next, Math.max(0, due - performance.now()))
  }
  next()
}

const cdn = http.createServer((req, res) => serveRange(req, res, weights, {}, true))
const hub = http.createServer((req, res) => {
  const m = /^\/org\/minilm\/resolve\/[^/]+\/(.+)$/.exec(req.url)
  const name = m && decodeURIComponent(m[1])
  const data = name && files.get(name)
  if (!data) {
    res.writeHead(404)
    return res.end()
  }
  if (name === 'model.safetensors') {
    res.writeHead(302, {
      location: `http://127.0.0.1:${cdn.address().port}/blob/${weightsSha}`,
      'x-repo-commit': commit,
      'x-linked-etag': `"${weightsSha}"`,
      'x-linked-size': String(weights.length),
      'content-length': 0,
    })
    return res.end()
  }
  serveRange(req, res, data, { 'x-repo-commit': commit, etag: `"${gitSha(data)}"` })
})
await new Promise((r) => cdn.listen(0, '127.0.0.1', r))
await new Promise((r) => hub.listen(0, '127.0.0.1', r))
process.env.HF_ENDPOINT = `http://127.0.0.1:${hub.address().port}`

const freshCache = () => fs.mkdtempSync(path.join(os.tmpdir(), 'es-bench-download-'))
const mb = weights.length / 1e6
const times = Object.fromEntries(Object.keys(builds).map((k) => [k, []]))
const order = Object.keys(builds)
console.log(
  `CPU: ${cpu()}; all-MiniLM-L6-v2 (${mb.toFixed(1)} MB of weights) from a hub on loopback${rate ? ` paced at ${rate} MB/s` : ''}, ${rounds} rounds`,
)
for (let r = 0; r < rounds; r++) {
  const names = r % 2 === 0 ? order : [...order].reverse()
  for (const name of names) {
    const cacheDir = freshCache()
    const t0 = performance.now()
    await builds[name].downloadModel('org/minilm', { cacheDir })
    times[name].push(performance.now() - t0)
    fs.rmSync(cacheDir, { recursive: true, force: true })
  }
}
for (const name of order) {
  const ms = times[name]
  const rate = ms.map((t) => mb / (t / 1000))
  console.log(
    `${name}: median ${quantile(ms, 0.5).toFixed(0)} ms (${quantile(rate, 0.5).toFixed(0)} MB/s); rounds ${ms.map((t) => t.toFixed(0)).join(', ')} ms`,
  )
}

silentMidFile = true
for (const name of order) {
  const cacheDir = freshCache()
  const controller = new AbortController()
  let abortedAt = 0
  const settled = builds[name]
    .downloadModel('org/minilm', {
      cacheDir,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.file === 'model.safetensors' && p.current > 0 && !abortedAt) {
          // Abort once the server has sent its half and gone silent.
          setTimeout(() => {
            abortedAt = performance.now()
            controller.abort()
          }, 500)
        }
      },
    })
    .then(
      () => 'resolved',
      (e) => e.code,
    )
  const outcome = await Promise.race([settled, new Promise((r) => setTimeout(() => r(null), abortCap + 2000))])
  const after = abortedAt ? performance.now() - abortedAt : NaN
  console.log(`${name}: abort while the server is silent mid-file: ${outcome ? `${outcome} ${after.toFixed(0)} ms after the abort` : `not settled > ${abortCap} ms`}`)
  for (const res of held.splice(0)) res.destroy()
  fs.rmSync(cacheDir, { recursive: true, force: true })
}
for (const s of [hub, cdn]) {
  s.closeAllConnections()
  s.close()
}
// A build that never settles keeps a download thread; do not wait for it.
process.exit(0)
