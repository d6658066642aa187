#!/usr/bin/env node
// Builds the throughput benchmark's corpus: 500 chunks of real documentation (the Markdown files of the
// packages in node_modules, in a fixed order), each about 1,100 characters (~230 tokens for MiniLM) with a 50% overlap as RAG chunkers use, written
// to target/bench-corpus.json for the Rust, Node and Python benchmarks to share. Deterministic for a given
// package-lock.json. `node bench/corpus.mjs 2000` writes 2,000 such chunks to target/bench-corpus-2000.json
// (the query-latency benchmark's index job).
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const COUNT = Number(process.argv[2] ?? 500)
const out = path.join(root, 'target', COUNT === 500 ? 'bench-corpus.json' : `bench-corpus-${COUNT}.json`)
const CHARS = 1100

function* readmes(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) yield* readmes(full)
    else if (/\.md$/i.test(entry.name)) yield full
  }
}

const chunks = []
// A second pass, shifted by a quarter chunk, when one pass over the docs gives too few (the 2,000-chunk corpus).
for (const shift of [0, CHARS / 4]) {
  for (const file of readmes(path.join(root, 'node_modules'))) {
    // Prose only: drop code fences, HTML and badge lines, collapse whitespace.
    const text = fs
      .readFileSync(file, 'utf8')
      .replace(/```[\s\S]*?```/g, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/^\s*\[!\[.*$/gm, ' ')
      .replace(/\s+/g, ' ')
      .trim()
    for (let i = shift; i + CHARS <= text.length && chunks.length < COUNT; i += CHARS / 2) chunks.push(text.slice(i, i + CHARS))
    if (chunks.length >= COUNT) break
  }
  if (chunks.length >= COUNT) break
}
if (chunks.length < COUNT) throw new Error(`only ${chunks.length} chunks of documentation found; run npm install first`)
fs.mkdirSync(path.dirname(out), { recursive: true })
fs.writeFileSync(out, JSON.stringify(chunks))
process.stderr.write(`[corpus] ${chunks.length} chunks -> ${path.relative(root, out)}\n`)
