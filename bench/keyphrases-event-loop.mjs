// How long the event loop is held while extractKeyphrases takes a very large document: a 1 ms interval timer
// runs throughout, and the longest gap between its ticks (less the 1 ms it asked for) is the longest block.
// The document is 5 MB of prose-like text; the call is aborted once its candidates are being embedded (the
// extraction is what could hold the caller's thread), and the same is measured for a quiet loop as a baseline.
//
// Usage: node bench/keyphrases-event-loop.mjs [rounds=3] [megabytes=5] [threads=2]
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const rounds = Number(process.argv[2] ?? 3)
const megabytes = Number(process.argv[3] ?? 5)
const threads = Number(process.argv[4] ?? 2)
const { EmbeddingService } = createRequire(import.meta.url)(root)
const model = path.join(root, 'fixtures/models/all-MiniLM-L6-v2')

// Words from a fixed vocabulary in a fixed pseudo-random order: prose-like, hundreds of thousands of candidates.
const vocabulary = 'river bank loans spring flood town money model vector index search query worker thread memory batch token daemon folder chunk phrase candidate embedding service latency throughput kernel cache model weights'.split(' ')
function document(bytes) {
  let seed = 42
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31)
  const parts = []
  let size = 0
  while (size < bytes) {
    const words = Array.from({ length: 12 }, () => `${vocabulary[next() % vocabulary.length]}${next() % 50}`)
    const sentence = `${words.join(' ')}. `
    parts.push(sentence)
    size += sentence.length
  }
  return parts.join('')
}

/** Runs `work` while a 1 ms interval ticks; returns the longest gap between ticks beyond 1 ms. */
async function longestBlock(work) {
  let last = performance.now()
  let worst = 0
  const timer = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last - 1)
    last = now
  }, 1)
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  return Math.max(0, worst)
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const text = document(megabytes * 1024 * 1024)
const svc = new EmbeddingService({ model, threads })
await svc.load()

const quiet = []
const busy = []
let extractionMs = 0
for (let r = 0; r < rounds; r++) {
  quiet.push(await longestBlock(() => new Promise((resolve) => setTimeout(resolve, 300))))
  busy.push(
    await longestBlock(async () => {
      const controller = new AbortController()
      const started = performance.now()
      try {
        await svc.extractKeyphrases([text], {
          maxCandidates: 1e9,
          signal: controller.signal,
          onProgress: (e) => {
            if (e.status === 'processing_embeddings') {
              extractionMs = performance.now() - started
              controller.abort()
            }
          },
        })
      } catch (err) {
        if (err.code !== 'ERR_ABORTED') throw err
      }
    }),
  )
}
await svc.close()
const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
console.log(`CPU: ${cpu}, ${os.cpus().length} logical cores; ${(text.length / 1048576).toFixed(1)} MB document, ${rounds} rounds`)
console.log(`longest event-loop block, quiet loop:          median ${median(quiet).toFixed(2)} ms (max ${Math.max(...quiet).toFixed(2)})`)
console.log(`longest event-loop block, extractKeyphrases:   median ${median(busy).toFixed(2)} ms (max ${Math.max(...busy).toFixed(2)})`)
console.log(`candidate extraction on the worker (last round): ${extractionMs.toFixed(0)} ms`)
