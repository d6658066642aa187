// Resident memory before the first load, with the model loaded and after an embed, and after unload().
// Usage: node --expose-gc bench/memory.mjs
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { EmbeddingService } = createRequire(import.meta.url)(root)
const texts = JSON.parse(fs.readFileSync(path.join(root, 'fixtures/reference/minilm/texts.json'), 'utf8'))
const mb = () => {
  globalThis.gc?.()
  return +(process.memoryUsage().rss / 2 ** 20).toFixed(1)
}
const settle = () => new Promise((r) => setTimeout(r, 200)) // let the allocator return freed pages

const svc = new EmbeddingService({ model: path.join(root, 'fixtures/models/all-MiniLM-L6-v2'), keepAliveMs: -1 })
const before = mb()
await svc.load()
const loaded = mb()
for (let i = 0; i < 5; i++) await svc.embed(texts)
const afterEmbed = mb()
await svc.unload()
await settle()
const afterUnload = mb()
await svc.load()
await svc.embed(texts)
await svc.unload()
await settle()
const afterSecondCycle = mb()
console.log(JSON.stringify({ rssMB: { before, loaded, afterEmbed, afterUnload, afterSecondCycle }, deltaAfterUnloadMB: +(afterUnload - before).toFixed(1) }))
await svc.close()
