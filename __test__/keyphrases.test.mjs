// EmbeddingService.extractKeyphrases: KeyBERT's key phrases with the real all-MiniLM-L6-v2, against Python
// KeyBERT 0.9 (fixtures/keybert/reference.json); options, abort, progress and errors.
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { minilmDir, readJson, root } from './helpers.mjs'
import { EmbeddingService } from '../index.js'

const ref = readJson(path.join(root, 'fixtures', 'keybert', 'reference.json'))
const docs = ref.texts

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

  it('aborts through its signal with ERR_ABORTED and leaves the service working', async () => {
    const controller = new AbortController()
    const many = Array.from({ length: 40 }, (_, i) => `${docs[i % docs.length].text} ${i}`)
    const pending = svc.extractKeyphrases(many, { signal: controller.signal, onProgress: () => controller.abort() })
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED', name: 'AbortError' })
    const [again] = await svc.extractKeyphrases([docs[1].text])
    expect(again.map((p) => p.text)).toEqual(docs[1].mmr.map(([t]) => t))
  })

  it('rejects bad input and options with ERR_INVALID_INPUT', async () => {
    const bad = (texts, options) => expect(svc.extractKeyphrases(texts, options)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await bad('text')
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
