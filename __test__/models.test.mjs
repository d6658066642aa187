// Model sources: the static isModelCached / downloadModel, and downloads during load, against a local server
// that answers like the Hugging Face hub (resolve URLs, x-repo-commit, etag, ranges), selected with
// HF_ENDPOINT, so no network is needed.
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hubCacheDir, minCosine, minilmDir, readJson, reference, root, texts } from './helpers.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)
const tinyDir = path.join(reference('tiny-bert-cls'), 'model')
const tinyExpected = readJson(path.join(reference('tiny-bert-cls'), 'expected.json'))
const commit = 'c0ffee0000000000000000000000000000000001'

// Serves tinyDir as `org/tiny` at any revision. `paused` holds the weights' body after its first chunk until
// `release()` is called, so a test can act while a download is provably mid-file.
function fakeHub() {
  let release = () => {}
  const hub = { paused: false, requests: [], release: () => release() }
  hub.server = http.createServer((req, res) => {
    hub.requests.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`)
    const m = /^\/org\/tiny\/resolve\/[^/]+\/(.+)$/.exec(req.url)
    const file = m && path.join(tinyDir, decodeURIComponent(m[1]))
    if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404)
      return res.end()
    }
    const data = fs.readFileSync(file)
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '')
    const start = range ? Number(range[1]) : 0
    const end = range && range[2] ? Number(range[2]) : data.length - 1
    res.writeHead(range ? 206 : 200, {
      'x-repo-commit': commit,
      etag: `"${createHash('sha256').update(data).digest('hex')}"`,
      'content-range': `bytes ${start}-${end}/${data.length}`,
      'content-length': end - start + 1,
    })
    const body = data.subarray(start, end + 1)
    if (hub.paused && req.method === 'GET' && file.endsWith('model.safetensors') && body.length > 1) {
      res.write(body.subarray(0, 1024))
      release = () => res.end(body.subarray(1024))
      req.on('close', () => res.destroy())
      return
    }
    res.end(body)
  })
  return hub
}

const freshCache = () => fs.mkdtempSync(path.join(os.tmpdir(), 'es-hub-'))

describe('isModelCached', () => {
  it('is true for a complete hub-cache snapshot and a model folder, false otherwise', () => {
    minilmDir()
    const model = 'sentence-transformers/all-MiniLM-L6-v2'
    expect(EmbeddingService.isModelCached(model, { cacheDir: hubCacheDir() })).toBe(true)
    expect(EmbeddingService.isModelCached(model, { cacheDir: hubCacheDir(), revision: 'no-such-branch' })).toBe(false)
    expect(EmbeddingService.isModelCached(model, { cacheDir: freshCache() })).toBe(false)
    expect(EmbeddingService.isModelCached(minilmDir())).toBe(true)
    expect(EmbeddingService.isModelCached('/no/such/folder')).toBe(false)
  })

  it('is false for a snapshot that lacks its weights (an interrupted download)', () => {
    const cache = freshCache()
    const snap = path.join(cache, 'models--org--partial', 'snapshots', commit)
    fs.mkdirSync(snap, { recursive: true })
    fs.mkdirSync(path.join(cache, 'models--org--partial', 'refs'))
    fs.writeFileSync(path.join(cache, 'models--org--partial', 'refs', 'main'), commit)
    for (const f of ['config.json', 'tokenizer.json']) fs.copyFileSync(path.join(tinyDir, f), path.join(snap, f))
    expect(EmbeddingService.isModelCached('org/partial', { cacheDir: cache })).toBe(false)
    fs.copyFileSync(path.join(tinyDir, 'model.safetensors'), path.join(snap, 'model.safetensors'))
    expect(EmbeddingService.isModelCached('org/partial', { cacheDir: cache })).toBe(true)
  })

  it('rejects a model that is not a string with ERR_INVALID_INPUT', () => {
    expect(() => EmbeddingService.isModelCached(42)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
    expect(() => EmbeddingService.isModelCached('x', 'nope')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_INPUT' }))
  })
})

describe('downloads from a hub endpoint', () => {
  const hub = fakeHub()
  beforeAll(async () => {
    await new Promise((resolve) => hub.server.listen(0, '127.0.0.1', resolve))
    process.env.HF_ENDPOINT = `http://127.0.0.1:${hub.server.address().port}`
  })
  afterAll(() => {
    delete process.env.HF_ENDPOINT
    hub.server.closeAllConnections()
    hub.server.close()
  })

  it('downloadModel fetches every file with progress, lays out the cache, and the model then loads offline', async () => {
    const cacheDir = freshCache()
    const events = []
    const dir = await EmbeddingService.downloadModel('org/tiny', { cacheDir, onProgress: (e) => events.push(e) })
    expect(dir).toBe(path.join(cacheDir, 'models--org--tiny', 'snapshots', commit))
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors', '1_Pooling/config.json']) {
      expect(fs.readFileSync(path.join(dir, f))).toEqual(fs.readFileSync(path.join(tinyDir, f)))
    }
    const weights = events.filter((e) => e.file === 'model.safetensors')
    const size = fs.statSync(path.join(tinyDir, 'model.safetensors')).size
    expect(weights.at(-1)).toMatchObject({ status: 'downloading_model', current: size, total: size })
    expect(weights.every((e, i) => i === 0 || e.current >= weights[i - 1].current)).toBe(true)
    expect(EmbeddingService.isModelCached('org/tiny', { cacheDir })).toBe(true)

    // Cached now: a second call does not touch the network.
    const before = hub.requests.length
    expect(await EmbeddingService.downloadModel('org/tiny', { cacheDir })).toBe(dir)
    expect(hub.requests.length).toBe(before)

    const svc = new EmbeddingService({ model: 'org/tiny', cacheDir, offline: true, threads: 1 })
    expect(minCosine(await svc.embed(texts()), tinyExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    await svc.close()
  })

  it('an abort mid-file rejects with ERR_ABORTED, leaves nothing that counts as cached, and the next try completes', async () => {
    const cacheDir = freshCache()
    const controller = new AbortController()
    hub.paused = true
    const aborted = EmbeddingService.downloadModel('org/tiny', {
      cacheDir,
      signal: controller.signal,
      onProgress: (e) => {
        // The first bytes of the weights have arrived and the rest is held back: abort now, then let the
        // server go on so the transfer sees the abort between chunks.
        if (e.file === 'model.safetensors' && e.current > 0 && !controller.signal.aborted) {
          controller.abort(new Error('user cancelled'))
          hub.release()
        }
      },
    })
    await expect(aborted).rejects.toMatchObject({ code: 'ERR_ABORTED', name: 'AbortError' })
    hub.paused = false
    expect(EmbeddingService.isModelCached('org/tiny', { cacheDir })).toBe(false)
    const dir = await EmbeddingService.downloadModel('org/tiny', { cacheDir })
    expect(fs.readFileSync(path.join(dir, 'model.safetensors'))).toEqual(fs.readFileSync(path.join(tinyDir, 'model.safetensors')))
  })

  it('a service whose model is not cached downloads it on load, reporting downloading_model events', async () => {
    const cacheDir = freshCache()
    const events = []
    const svc = new EmbeddingService({ model: 'org/tiny', cacheDir, threads: 1, onProgress: (e) => events.push(e) })
    const got = await svc.embed(texts())
    expect(minCosine(got, tinyExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    const downloads = events.filter((e) => e.status === 'downloading_model')
    expect(downloads.map((e) => e.details)).toContain('model.safetensors')
    expect(events.findIndex((e) => e.status === 'downloading_model')).toBeLessThan(events.findIndex((e) => e.status === 'processing_embeddings'))
    await svc.close()
  })

  it('a model the endpoint does not have is ERR_MODEL_NOT_FOUND naming the file', async () => {
    await expect(EmbeddingService.downloadModel('org/missing', { cacheDir: freshCache() })).rejects.toMatchObject({
      code: 'ERR_MODEL_NOT_FOUND',
      message: expect.stringContaining('config.json'),
    })
  })

  it('offline, an uncached model is ERR_MODEL_NOT_FOUND without a request', async () => {
    const before = hub.requests.length
    await expect(EmbeddingService.downloadModel('org/tiny', { cacheDir: freshCache(), offline: true })).rejects.toMatchObject({
      code: 'ERR_MODEL_NOT_FOUND',
    })
    expect(hub.requests.length).toBe(before)
  })
})
