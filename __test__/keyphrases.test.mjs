// EmbeddingService.extractKeyphrases: KeyBERT's key phrases with the real all-MiniLM-L6-v2, against Python
// KeyBERT 0.9 (fixtures/keybert/reference.json); options, abort, progress and errors.
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { minilmDir, readJson, root } from './helpers.mjs'
import { EmbeddingService } from '../index.js'

const ref = readJson(path.join(root, 'fixtures', 'keybert', 'reference.json'))
const docs = ref.texts
// 18 texts in 20 scripts (Latin with diacritics, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Bengali, Thai,
// Chinese, Japanese, Korean, Georgian, Armenian, Tamil), mixed scripts, emoji and combining sequences.
const scripts = readJson(path.join(root, 'fixtures', 'keybert', 'scripts', 'reference.json')).texts

describe('extractKeyphrases', () => {
  const events = []
  const svc = new EmbeddingService({ model: minilmDir(), threads: 2, onProgress: (e) => events.push(e) })
  afterAll(() => svc.close())

  it('gives what Python KeyBERT gives with the daemon\'s arguments, for every reference document', async () => {
    const got = await svc.extractKeyphrases(docs.map((d) => d.text))
    expect(got).toHaveLength(docs.length)
    let shared = 0
    let total = 0
    got.forEach((phrases, i) => {
      const want = docs[i].mmr
      expect(phrases.map((p) => p.text)).toEqual(want.map(([t]) => t))
      phrases.forEach((p, j) => expect(p.score).toBeCloseTo(want[j][1], 4))
      const w5 = want.slice(0, 5).map(([t]) => t)
      shared += phrases.slice(0, 5).filter((p) => w5.includes(p.text)).length
      total += w5.length
    })
    expect(shared).toBe(total)
  })

  it('gives what Python KeyBERT gives in every script, mixed scripts, emoji and combining marks', async () => {
    const got = await svc.extractKeyphrases(scripts.map((d) => d.text))
    got.forEach((phrases, i) => {
      const want = scripts[i].mmr
      expect(phrases.map((p) => p.text), scripts[i].id).toEqual(want.map(([t]) => t))
      // Rounded to 4 decimals as KeyBERT rounds; a similarity on a rounding boundary may round the other way.
      phrases.forEach((p, j) => expect(Math.abs(p.score - scripts[i].mmr_unrounded[j])).toBeLessThan(0.5e-4 + 1e-6))
    })
    // Ranked by similarity alone, KeyBERT orders exactly equal similarities (candidates the model cannot tell
    // apart: the same token ids, as in Thai where its tokenizer drops the vowel marks) as numpy's unstable
    // argsort leaves them; ours keeps candidate order. Within such a tie the order is not compared.
    const plain = await svc.extractKeyphrases(scripts.map((d) => d.text), { useMmr: false })
    let ties = 0
    plain.forEach((phrases, i) => {
      const { cosine: want, cosine_unrounded: sims } = scripts[i]
      const canonical = (list) => {
        const out = [...list]
        for (let a = 0; a < out.length; ) {
          let b = a + 1
          while (b < out.length && sims[b] === sims[a]) b++
          if (b - a > 1) ties++
          // A tie the top-N cut goes through: which of its members make the cut is the sort's choice too.
          const members = b === out.length && b - a > 1 ? out.slice(a, b).map(() => `(tied at ${sims[a]})`) : out.slice(a, b).sort()
          out.splice(a, b - a, ...members)
          a = b
        }
        return out
      }
      expect(canonical(phrases.map((p) => p.text)), scripts[i].id).toEqual(canonical(want.map(([t]) => t)))
      phrases.forEach((p, j) => expect(Math.abs(p.score - sims[j])).toBeLessThan(0.5e-4 + 1e-6))
    })
    expect(ties).toBe(4) // both groups in Thai, counted for ours and KeyBERT's
  })

  it('ranks by similarity alone when useMmr is false', async () => {
    const sample = docs.slice(0, 8)
    const got = await svc.extractKeyphrases(sample.map((d) => d.text), { useMmr: false })
    got.forEach((phrases, i) => expect(phrases.map((p) => p.text)).toEqual(sample[i].cosine.map(([t]) => t)))
  })

  it('takes n-gram ranges, topN, diversity, custom or no stop words', async () => {
    const text = 'The bank of the river floods every spring, and the bank of the town lends money.'
    const [uni] = await svc.extractKeyphrases([text], { ngramRange: [1, 1], topN: 3 })
    expect(uni).toHaveLength(3)
    expect(uni.every((p) => !p.text.includes(' '))).toBe(true)
    const [bi] = await svc.extractKeyphrases([text], { ngramRange: [2, 2], topN: 50, stopWords: null })
    expect(bi.map((p) => p.text)).toContain('of the')
    const [custom] = await svc.extractKeyphrases([text], { ngramRange: [1, 1], topN: 50, stopWords: ['BANK', 'river'] })
    expect(custom.map((p) => p.text)).not.toContain('bank')
    expect(custom.map((p) => p.text)).toContain('the')
    const [d0] = await svc.extractKeyphrases([text], { diversity: 0, topN: 5 })
    const [plain] = await svc.extractKeyphrases([text], { useMmr: false, topN: 5 })
    expect(d0.map((p) => p.text)).toEqual(plain.map((p) => p.text))
    expect(await svc.extractKeyphrases([])).toEqual([])
    expect(await svc.extractKeyphrases(['', 'a of'])).toEqual([[], []])
  })

  it('reports progress on the request, counting documents and distinct candidates', async () => {
    const mine = []
    const text = docs[0].text
    await svc.extractKeyphrases([text], { onProgress: (e) => mine.push(e) })
    const done = mine.filter((e) => e.status === 'completed')
    expect(done).toHaveLength(1)
    expect(done[0].total).toBe(1 + docs[0].candidates.length)
  })

  it('extracts a large document\'s candidates on the worker, slice by slice, with progress and abort', async () => {
    // 5 MB of text from a small vocabulary (a few thousand distinct candidates, under the cap): about 80
    // extraction steps of 64 KB, which the first progress event aborts.
    const sentence = (i) => `Sentence about river ${10 + (i % 89)} and bank ${10 + (i % 83)} loans. `
    const big = Array.from({ length: 90_000 }, (_, i) => sentence(i)).join('')
    const mine = []
    const controller = new AbortController()
    const pending = svc.extractKeyphrases([big], {
      signal: controller.signal,
      onProgress: (e) => {
        mine.push(e)
        if (e.status === 'extracting_candidates') controller.abort()
      },
    })
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    const extracting = mine.filter((e) => e.status === 'extracting_candidates')
    expect(extracting.length).toBeGreaterThanOrEqual(1)
    expect(extracting[0].total).toBe(Buffer.byteLength(big))
    expect(extracting[0].current).toBeLessThanOrEqual(64 * 1024 + 100)
    expect(extracting.every((e, i) => i === 0 || e.current > extracting[i - 1].current)).toBe(true)
    expect(extracting.at(-1).current).toBeLessThan(extracting.at(-1).total)
    // Aborted during extraction: nothing was embedded.
    expect(mine.some((e) => e.status === 'processing_batch')).toBe(false)
    const [again] = await svc.extractKeyphrases([docs[2].text])
    expect(again.map((p) => p.text)).toEqual(docs[2].mmr.map(([t]) => t))
  })

  it('a long extraction keeps reporting progress: the watchdog never calls it stalled', async () => {
    const events = []
    const watched = new EmbeddingService({ model: minilmDir(), threads: 2, stallWarningMs: 150, stallTimeoutMs: 400, onProgress: (e) => events.push(e) })
    try {
      await watched.load()
      const big = Array.from({ length: 90_000 }, (_, i) => `Sentence about river ${10 + (i % 89)} and bank ${10 + (i % 83)} loans. `).join('')
      const [phrases] = await watched.extractKeyphrases([big])
      expect(phrases).toHaveLength(10)
      expect(events.filter((e) => e.status === 'extracting_candidates').length).toBeGreaterThan(50)
      expect(events.filter((e) => e.status === 'stall_warning' || e.status === 'stalled')).toEqual([])
    } finally {
      await watched.close()
    }
  })

  it('caps a document\'s candidates at maxCandidates, first in reading order, with a warning', async () => {
    const warnings = []
    const capped = new EmbeddingService({ model: minilmDir(), threads: 2, logger: (level, message) => level === 'warn' && warnings.push(message) })
    try {
      const text = docs[0].text
      const events = []
      const [phrases] = await capped.extractKeyphrases([text, docs[1].text], { maxCandidates: 20, onProgress: (e) => events.push(e) })
      // 2 documents and at most 20 candidates each were embedded.
      const done = events.find((e) => e.status === 'completed')
      expect(done.total).toBeLessThanOrEqual(2 + 40)
      expect(phrases).toHaveLength(10)
      expect(warnings.filter((w) => /document 0 has more distinct candidates than maxCandidates \(20\)/.test(w))).toHaveLength(1)
      expect(warnings.some((w) => /document 1 /.test(w))).toBe(true)
      // Below the cap nothing changes: KeyBERT's phrases, no warning.
      warnings.length = 0
      const [full] = await capped.extractKeyphrases([text], { maxCandidates: docs[0].candidates.length })
      expect(full.map((p) => p.text)).toEqual(docs[0].mmr.map(([t]) => t))
      expect(warnings).toEqual([])
      await expect(capped.extractKeyphrases([text], { maxCandidates: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    } finally {
      await capped.close()
    }
  })

  it('aborts through its signal with ERR_ABORTED and leaves the service working', async () => {
    const controller = new AbortController()
    const many = Array.from({ length: 40 }, (_, i) => `${docs[i % docs.length].text} ${i}`)
    const pending = svc.extractKeyphrases(many, { signal: controller.signal, onProgress: () => controller.abort() })
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED', name: 'AbortError' })
    const [again] = await svc.extractKeyphrases([docs[1].text])
    expect(again.map((p) => p.text)).toEqual(docs[1].mmr.map(([t]) => t))
  })

  it('takes a single document as KeyBERT does, resolving to its one list', async () => {
    const doc = 'Rust compiles the addon; the worker thread embeds the key phrases of this document.'
    const [want] = await svc.extractKeyphrases([doc])
    const got = await svc.extractKeyphrases(doc)
    expect(got.length).toBeGreaterThan(0)
    expect(got).toEqual(want)
  })

  it('rejects bad input and options with ERR_INVALID_INPUT', async () => {
    const bad = (texts, options) => expect(svc.extractKeyphrases(texts, options)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await bad(42)
    await bad([1])
    await bad(['a'], { ngramRange: [0, 2] })
    await bad(['a'], { ngramRange: [3, 2] })
    await bad(['a'], { ngramRange: [1, 9] })
    await bad(['a'], { ngramRange: [1] })
    await bad(['a'], { ngramRange: '1,3' })
    await bad(['a'], { topN: 0 })
    await bad(['a'], { diversity: 2 })
    await bad(['a'], { diversity: Number.NaN })
    await bad(['a'], { stopWords: 'french' })
    await bad(['a'], { stopWords: [1] })
    await bad(['a'], { priority: 'urgent' })
    await bad(['a'], 'options')
  })
})
