// The API's contract from JS: module formats, errors with stable codes, the event loop, process exit.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { EmbeddingService } = require(root)
const tiny = path.join(reference('tiny-bert-cls'), 'model')

describe('module formats', () => {
  it('require() and import of the package root give the same class', async () => {
    const esm = await import(path.join(root, 'index.mjs'))
    expect(esm.EmbeddingService).toBe(EmbeddingService)
    expect(esm.default.EmbeddingService).toBe(EmbeddingService)
    expect(typeof EmbeddingService).toBe('function')
  })
})

describe('errors carry stable codes and never break the service', () => {
  const svc = new EmbeddingService({ model: tiny, threads: 1 })
  afterAll(() => svc.close())

  const invalid = [
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a boolean', true],
    ['an object', { 0: 'a', length: 1 }],
    ['an array with a number', ['a', 1]],
    ['an array with null', [null]],
    ['an array with undefined', ['a', undefined]],
    ['an array with an object', [{}]],
    ['a sparse array', [, 'b']], // eslint-disable-line no-sparse-arrays
  ]
  for (const [label, value] of invalid) {
    it(`rejects ${label} with ERR_INVALID_INPUT, then embeds normally`, async () => {
      const err = await svc.embed(value).then(
        () => null,
        (e) => e,
      )
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe('ERR_INVALID_INPUT')
      expect(err.message).toMatch(/texts/)
      const [v] = await svc.embed(['still works'])
      expect(v).toHaveLength(32)
    })
  }

  it('rejects an unknown prompt, naming the prompts the model has', async () => {
    await expect(svc.embed(['a'], { prompt: 'nope' })).rejects.toMatchObject({
      code: 'ERR_INVALID_INPUT',
      message: expect.stringContaining('"query"'),
    })
  })

  it('rejects options of the wrong type', async () => {
    await expect(svc.embed(['a'], 'query')).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
    await expect(svc.embed(['a'], { prompt: 3 })).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT' })
  })

  it('resolves an empty array to an empty array', async () => {
    expect(await svc.embed([])).toEqual([])
  })

  it('gives empty and blank strings a vector', async () => {
    const got = await svc.embed(['', '   ', '\u0000'])
    expect(got).toHaveLength(3)
    for (const v of got) expect(v.every(Number.isFinite)).toBe(true)
  })
})

describe('constructor validation', () => {
  const cases = [
    [{}, 'ERR_INVALID_INPUT', /model/],
    [undefined, 'ERR_INVALID_INPUT', /model/],
    [{ model: 5 }, 'ERR_INVALID_INPUT', /model/],
    [{ model: tiny, threads: 0 }, 'ERR_INVALID_INPUT', /threads/],
    [{ model: tiny, threads: 1.5 }, 'ERR_INVALID_INPUT', /threads/],
    [{ model: tiny, threads: Number.NaN }, 'ERR_INVALID_INPUT', /threads/],
    [{ model: tiny, offline: 'yes' }, 'ERR_INVALID_INPUT', /offline/],
    [{ model: tiny, device: 'tpu' }, 'ERR_INVALID_INPUT', /tpu/],
    [{ model: tiny, device: 'cuda' }, 'ERR_DEVICE_UNAVAILABLE', /cuda/],
    [{ model: tiny, device: 'metal' }, 'ERR_DEVICE_UNAVAILABLE', /metal/],
    [{ model: tiny, dtype: 'fp8' }, 'ERR_INVALID_INPUT', /dtype/],
    [{ model: tiny, dtype: 'f16', device: 'cuda' }, 'ERR_DEVICE_UNAVAILABLE', /cuda/],
    [{ model: tiny, dtype: 16 }, 'ERR_INVALID_INPUT', /dtype/],
    [{ model: tiny, dtype: 'int8', device: 'cuda' }, 'ERR_INVALID_INPUT', /runs on the CPU/],
    [{ model: tiny, dtype: 'int8', endpoint: 'http://127.0.0.1:1/v1' }, 'ERR_INVALID_INPUT', /dtype/],
  ]
  for (const [options, code, message] of cases) {
    it(`${JSON.stringify(options)} throws ${code}`, () => {
      let thrown
      try {
        new EmbeddingService(options)
      } catch (e) {
        thrown = e
      }
      expect(thrown).toBeInstanceOf(Error)
      expect(thrown.code).toBe(code)
      expect(thrown.message).toMatch(message)
    })
  }
})

describe('model problems reject embed with a code, and the next call can still succeed', () => {
  it('a missing folder is ERR_MODEL_NOT_FOUND', async () => {
    const svc = new EmbeddingService({ model: path.join(root, 'no', 'such', 'model') })
    await expect(svc.embed(['a'])).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    await expect(svc.embed(['a'])).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    await svc.close()
  })

  it("dtype 'f16' on CPU rejects at load with ERR_INVALID_INPUT saying it is for GPUs", async () => {
    const svc = new EmbeddingService({ model: tiny, device: 'cpu', dtype: 'f16' })
    await expect(svc.embed(['a'])).rejects.toMatchObject({ code: 'ERR_INVALID_INPUT', message: expect.stringMatching(/GPU/) })
    await svc.close()
  })

  it("dtype 'int8' embeds on the CPU, and status() and the load event name the kernels", async () => {
    const events = []
    const svc = new EmbeddingService({ model: minilmDir(), dtype: 'int8', threads: 2, onProgress: (e) => events.push(e) })
    const got = await svc.embed(texts())
    const expected = readJson(path.join(reference('minilm'), 'expected.json'))
    expect(minCosine(got, expected.embeddings)).toBeGreaterThanOrEqual(0.99)
    const s = svc.status()
    expect(s.dtype).toBe('int8')
    expect(s.simd).toMatch(/^(avx512-vnni|avx-vnni|avx512-vnni \(256-bit\)|avx2|neon-dotprod|neon|scalar)$/)
    const loaded = events.find((e) => e.status === 'loading_model' && e.current === 3)
    expect(loaded.details).toBe(`model loaded (int8, ${s.simd} kernels)`)
    await svc.close()
  })

  it("dtype 'int8' runs ModernBERT too, within 1% of sentence-transformers", async () => {
    const svc = new EmbeddingService({ model: path.join(reference('tiny-modernbert-mean'), 'model'), dtype: 'int8' })
    const got = await svc.embed(texts())
    const expected = readJson(path.join(reference('tiny-modernbert-mean'), 'expected.json'))
    expect(minCosine(got, expected.embeddings)).toBeGreaterThanOrEqual(0.99)
    expect(svc.status().dtype).toBe('int8')
    await svc.close()
  })

  it('a folder that is not a model is ERR_MODEL_INVALID naming the file', async () => {
    const svc = new EmbeddingService({ model: path.join(root, '__test__') })
    await expect(svc.embed(['a'])).rejects.toMatchObject({
      code: 'ERR_MODEL_INVALID',
      message: expect.stringContaining('config.json'),
    })
    await svc.close()
  })
})

describe('a panic inside the worker', () => {
  it('rejects only that request with ERR_INTERNAL; the service serves the next one', async () => {
    const svc = new EmbeddingService({ model: tiny, threads: 1, testHooks: { panicOnText: 'boom' } })
    const [bad, good] = await Promise.allSettled([svc.embed(['a', 'boom']), svc.embed(['fine'])])
    expect(bad.status).toBe('rejected')
    expect(bad.reason.code).toBe('ERR_INTERNAL')
    expect(bad.reason.message).toMatch(/panic/)
    expect(good.status).toBe('fulfilled')
    expect(await svc.embed(['after'])).toHaveLength(1)
    await svc.close()
  })
})

describe('close', () => {
  it('rejects later calls with ERR_CLOSED and is idempotent', async () => {
    const svc = new EmbeddingService({ model: tiny, threads: 1 })
    await svc.embed(['warm'])
    await svc.close()
    await svc.close()
    await expect(svc.embed(['a'])).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })

  it('rejects requests still queued with ERR_CLOSED and settles every promise', async () => {
    const svc = new EmbeddingService({ model: tiny, threads: 1 })
    const pending = Array.from({ length: 20 }, (_, i) => svc.embed([`text ${i}`]).then(() => 'ok', (e) => e.code))
    await svc.close()
    const outcomes = await Promise.all(pending)
    expect(outcomes.every((o) => o === 'ok' || o === 'ERR_CLOSED')).toBe(true)
    expect(outcomes).toContain('ERR_CLOSED')
  })
})

describe('the event loop', () => {
  it('keeps turning while a large request runs on the worker', async () => {
    const svc = new EmbeddingService({ model: minilmDir(), threads: 2 })
    const many = Array.from({ length: 256 }, (_, i) => texts()[i % 32])
    let turns = 0
    let done = false
    const spin = () => {
      if (done) return
      turns++
      setImmediate(spin)
    }
    setImmediate(spin)
    const got = await svc.embed(many)
    done = true
    expect(got).toHaveLength(256)
    // A blocked loop would not have turned at all between the call and its resolution.
    expect(turns).toBeGreaterThan(10)
    await svc.close()
  })
})

describe('a process that uses the addon', () => {
  it('exits by itself after embedding, without close(), and writes nothing to stdout', () => {
    const script = `
      const { EmbeddingService } = require(${JSON.stringify(root)})
      const svc = new EmbeddingService({ model: ${JSON.stringify(minilmDir())} })
      svc.embed(['a text']).then((v) => process.stderr.write('dims ' + v[0].length))`
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
    expect(child.status).toBe(0)
    expect(child.stdout).toBe('')
    expect(child.stderr).toBe('dims 384')
  })
})
