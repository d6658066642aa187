// Hostile input: every case rejects with a stable code (or is embedded, where the input is valid text), the
// process survives, and the next valid call still gives correct vectors.
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { cosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)
const minilm = readJson(path.join(reference('minilm'), 'expected.json'))

describe('hostile texts and options', () => {
  const svc = new EmbeddingService({ model: minilmDir(), threads: 2 })
  afterAll(() => svc.close())
  const stillCorrect = async () => {
    const [v] = await svc.embed([texts()[2]])
    expect(cosine(v, minilm.embeddings[2])).toBeGreaterThanOrEqual(0.99999)
  }

  const sparse = ['a', , 'b'] // eslint-disable-line no-sparse-arrays
  const rejected = [
    ['undefined', undefined],
    ['null', null],
    ['a string object', new String('hello')],
    ['a number in the array', ['a', 1]],
    ['an object in the array', ['a', { text: 'b' }]],
    ['null in the array', ['a', null]],
    ['undefined in the array', ['a', undefined]],
    ['a sparse array', sparse],
    ['a typed array', new Uint8Array(3)],
  ]
  for (const [label, input] of rejected) {
    it(`rejects ${label} with ERR_INVALID_INPUT and keeps working`, async () => {
      await expect(svc.embed(input)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
      await stillCorrect()
    })
  }

  it('embeds awkward but valid text: lone surrogates, NUL and control characters, every plane, RTL, combining', async () => {
    const awkward = [
      '\uD800 lone high', 'lone low \uDC00', 'a\u0000b\u0001c\u001f\u007f', '\u0000',
      String.fromCodePoint(0x10ffff, 0xe000, 0xfffd, 0x1f600, 0x20000, 0xe0001),
      'مرحبا بالعالم שלום', 'e\u0301\u0302\u0303\u0304 Z\u0351\u0352\u0353', '\u202e reversed \u202c',
    ]
    const got = await svc.embed(awkward)
    expect(got).toHaveLength(awkward.length)
    for (const v of got) {
      expect(v.length).toBe(384)
      expect(v.every(Number.isFinite)).toBe(true)
    }
    await stillCorrect()
  })

  it('truncates a 10 MB string by tokens to the same vector as its first part', async () => {
    const sentence = 'The quick brown fox jumps over the lazy dog. '
    const huge = sentence.repeat(Math.ceil(10_000_000 / sentence.length))
    const { vectors, tokenCounts } = await svc.embedDetailed([huge, sentence.repeat(60)])
    expect(tokenCounts[0]).toBe(256)
    expect(cosine(vectors[0], vectors[1])).toBeGreaterThanOrEqual(0.99999)
  })

  it('ignores unknown option keys (documented) and rejects wrong types, unknown priority and prompt', async () => {
    expect((await svc.embed(['a'], { unknownKey: 1 })).length).toBe(1)
    for (const options of [{ priority: 'urgent' }, { priority: 3 }, { prompt: 'nope' }, { prompt: 5 }, { signal: {} }, { signal: { aborted: false } }, { onProgress: 'x' }]) {
      await expect(svc.embed(['a'], options)).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    }
    await stillCorrect()
  })

  it('rejects negative, NaN and infinite numbers in constructor options', () => {
    for (const options of [{ threads: -1 }, { threads: Number.NaN }, { maxBatchSize: 0 }, { maxBatchTokens: Infinity }, { stallTimeoutMs: Number.NaN }, { stallWarningMs: -5 }, { keepAliveMs: Number.NaN }]) {
      expect(() => new EmbeddingService({ model: minilmDir(), ...options }), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_INPUT' }),
      )
    }
  })

  it('survives callbacks that throw, and one that re-enters the service', async () => {
    const nested = []
    const got = await svc.embed(['outer'], {
      onProgress: (e) => {
        if (e.status === 'completed') nested.push(svc.embed(['inner'], { priority: 'query' }))
        throw new Error('listener bug')
      },
    })
    expect(got).toHaveLength(1)
    const [inner] = await Promise.all(nested)
    expect(inner[0].length).toBe(384)
    await stillCorrect()
  })
})
