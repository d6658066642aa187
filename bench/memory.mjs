// Resident memory across load, a big job and unload(), as a daemon that runs for weeks sees it.
// Baseline: after a first load / embed 50 texts / unload cycle. Then `texts` short texts in `calls` calls, the
// vectors held (status().memory.resultBytes must count them), dropped, collected until the service reports no
// result memory, unload(): resident memory against the baseline. Prints one JSON line.
// Usage: node --expose-gc bench/memory.mjs [--texts 10000] [--calls 1] [--model DIR] [--dtype f32|bf16]
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : process.argv[i + 1]
}
const count = Number(arg('texts', 10_000))
const calls = Number(arg('calls', 1))
const model = arg('model', path.join(root, 'fixtures/models/all-MiniLM-L6-v2'))
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc')

const mb = (bytes) => +(bytes / 2 ** 20).toFixed(1)
// Collects until no vectors are alive: Node runs the finalisers of collected ArrayBuffers on later turns of
// the event loop, so each round collects and then lets a turn pass. The loop ends on the service's own count.
async function collect(svc) {
  for (let round = 0; round < 200; round++) {
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
    if (svc.status().memory.resultBytes === 0) return round
  }
  throw new Error(`result memory still held after 200 collections: ${svc.status().memory.resultBytes} bytes`)
}
const words = ['alpha', 'beta', 'gamma', 'delta', 'kernel', 'index', 'folder', 'search']
const texts = Array.from({ length: count }, (_, i) => `${words[i % 8]} ${i}`)

const svc = new EmbeddingService({ model, keepAliveMs: -1, dtype: arg('dtype', 'f32') })
await svc.embed(texts.slice(0, 50))
const loaded = svc.status().memory
await svc.unload()
await collect(svc)
const baseline = process.memoryUsage.rss()
const baselineHeap = process.memoryUsage().heapTotal

// In a function, so that nothing of the job outlives it but what it returns.
async function job() {
  const t0 = performance.now()
  const held = []
  for (let c = 0; c < calls; c++) {
    const part = await svc.embed(texts.slice(Math.floor((c * count) / calls), Math.floor(((c + 1) * count) / calls)))
    for (const v of part) held.push(v)
  }
  const seconds = (performance.now() - t0) / 1000
  return { seconds, whileHeld: svc.status().memory, peak: process.memoryUsage.rss(), dims: held[0].length }
}
const { seconds, whileHeld, peak, dims } = await job()
const collections = await collect(svc)
await svc.unload()
const afterUnload = process.memoryUsage.rss()
const afterUnloadHeap = process.memoryUsage().heapTotal
const afterStatus = svc.status().memory
await svc.close()
console.log(
  JSON.stringify({
    texts: count,
    calls,
    seconds: +seconds.toFixed(1),
    rssMb: { baseline: mb(baseline), withResults: mb(peak), afterUnload: mb(afterUnload) },
    growthMb: mb(afterUnload - baseline),
    // V8's own heap (the JavaScript objects: texts and Float32Array wrappers), part of the growth above.
    jsHeapGrowthMb: mb(afterUnloadHeap - baselineHeap),
    loaded: { weightsBytes: loaded.weightsBytes, mappedWeightsBytes: loaded.mappedWeightsBytes },
    resultBytesHeld: whileHeld.resultBytes,
    expectedResultBytes: count * dims * 4,
    collections,
    afterUnload: { weightsBytes: afterStatus.weightsBytes, mappedWeightsBytes: afterStatus.mappedWeightsBytes, resultBytes: afterStatus.resultBytes },
  }),
)
