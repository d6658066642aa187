import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const fixtures = path.join(root, 'fixtures')
export const reference = (name) => path.join(fixtures, 'reference', name)
export const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'))

/** The real all-MiniLM-L6-v2 folder; a missing fixture fails loudly (run `npm run fixtures`), never skips. */
export function minilmDir() {
  const dir = path.join(fixtures, 'models', 'all-MiniLM-L6-v2')
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) {
    throw new Error(`${dir} is missing: run \`npm run fixtures\` first`)
  }
  return dir
}

export const hubCacheDir = () => (minilmDir(), path.join(fixtures, 'models', 'hub'))
export const texts = () => readJson(path.join(reference('minilm'), 'texts.json'))

export function cosine(a, b) {
  if (a.length !== b.length) throw new Error(`dimension mismatch ${a.length} vs ${b.length}`)
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

/** The lowest cosine between matching vectors. */
export function minCosine(got, want) {
  if (got.length !== want.length) throw new Error(`count mismatch ${got.length} vs ${want.length}`)
  return Math.min(...got.map((g, i) => cosine(g, want[i])))
}

/** Resolves with the first event that matches. */
export function nextEvent(events, pred) {
  return new Promise((resolve) => {
    const check = () => {
      const found = events.find(pred)
      if (found) return resolve(found)
      events.waiters.push(check)
    }
    check()
  })
}

export function recorder() {
  const events = []
  events.waiters = []
  const onProgress = (e) => {
    events.push(e)
    const waiters = events.waiters.splice(0)
    for (const w of waiters) w()
  }
  return { events, onProgress }
}
