// Model downloads under a hostile or broken hub (HF_ENDPOINT pointed at a scripted server on 127.0.0.1): nothing
// is written outside the cache, every byte is checked against its ETag, every stall ends, and each time a good
// server afterwards completes the download into the same cache and the model embeds correctly.
//
// The scripted hub answers as huggingface.co does: small files from git (200, ETag = git's blob SHA-1), the
// weights from LFS (302 to a CDN on another port, X-Linked-Etag = SHA-256, X-Linked-Size), X-Repo-Commit on
// every answer. `hub.mode` turns one thing hostile at a time.
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { minCosine, readJson, recorder, nextEvent, reference, root, texts } from './helpers.mjs'

const { EmbeddingService } = createRequire(import.meta.url)(root)
const tinyDir = path.join(reference('tiny-bert-cls'), 'model')
const tinyExpected = readJson(path.join(reference('tiny-bert-cls'), 'expected.json'))
const denseDir = path.join(reference('tiny-bert-dense'), 'model')
const denseExpected = readJson(path.join(reference('tiny-bert-dense'), 'expected.json'))
const commit = 'c0ffee0000000000000000000000000000000002'
const weights = fs.readFileSync(path.join(tinyDir, 'model.safetensors'))
const weightsSha = createHash('sha256').update(weights).digest('hex')
const gitSha = (data) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
// An absolute place outside every test cache that the ETag of the report aimed at.
const escapeName = `es-hub-escape-${process.pid}-model.safetensors`
const escapeTarget = path.join('/tmp', escapeName)

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

function scriptedHub() {
  const hub = { mode: 'good', hubRequests: [], cdnRequests: [], held: [] }
  hub.cdn = http.createServer((req, res) => {
    hub.cdnRequests.push({ method: req.method, url: req.url, range: req.headers.range, auth: req.headers.authorization })
    if (req.url !== `/blob/${weightsSha}?sig=abc`) {
      res.writeHead(404)
      return res.end()
    }
    let data = weights
    if (hub.mode === 'wrongBytes' || hub.mode === 'cutShortWrong') {
      data = Buffer.from(weights)
      for (let i = 0; i < data.length; i += 997) data[i] ^= 0x5a
    }
    const range = /bytes=(\d+)-/.exec(req.headers.range ?? '')
    const start = range ? Number(range[1]) : 0
    const body = data.subarray(start)
    res.writeHead(range ? 206 : 200, {
      'content-length': body.length,
      ...(range ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    })
    if (hub.mode === 'stallMidBody') {
      // Half the file, then silence with the connection held open.
      res.write(body.subarray(0, body.length >> 1))
      hub.held.push(res)
      return
    }
    if (hub.mode === 'cutShort' || hub.mode === 'cutShortWrong') {
      // 16 KB of what was asked for, then the connection drops, short of Content-Length.
      res.write(body.subarray(0, 16384), () => res.destroy())
      return
    }
    res.end(body)
  })
  hub.server = http.createServer((req, res) => {
    hub.hubRequests.push({ method: req.method, url: req.url, auth: req.headers.authorization })
    // org/tiny is tiny-bert-cls; org/dense is tiny-bert-dense (the same transformer weights, then two Dense
    // modules whose weights sit in their own folders, served from git as the hub serves small files).
    const m = /^\/org\/(tiny|dense)\/resolve\/([^/]+)\/(.+)$/.exec(req.url)
    const file = m && path.join(m[1] === 'dense' ? denseDir : tinyDir, decodeURIComponent(m[3]))
    if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' })
      return res.end()
    }
    const data = fs.readFileSync(file)
    const repoCommit = hub.mode === 'commitTraversal' ? '../../../../tmp/x' : commit
    const traversal = `"../../../../../../../../../../tmp/${escapeName}"`
    if (m[3] === 'model.safetensors') {
      const location =
        hub.mode === 'redirectFile' ? 'file:///etc/passwd'
        : hub.mode === 'redirectFtp' ? `ftp://127.0.0.1:${hub.cdnPort}/blob/${weightsSha}`
        : `http://127.0.0.1:${hub.cdnPort}/blob/${weightsSha}?sig=abc`
      res.writeHead(302, {
        location,
        'x-repo-commit': repoCommit,
        'x-linked-etag': hub.mode === 'etagTraversal' ? traversal : `"${weightsSha}"`,
        'x-linked-size': String(weights.length),
        etag: '"not-the-file"',
        'content-length': 0,
      })
      return res.end()
    }
    res.writeHead(200, {
      'x-repo-commit': repoCommit,
      etag: hub.mode === 'etagTraversal' ? traversal : `"${gitSha(data)}"`,
      'content-length': data.length,
    })
    res.end(req.method === 'HEAD' ? undefined : data)
  })
  hub.release = () => {
    for (const res of hub.held.splice(0)) res.destroy()
  }
  return hub
}

/** A cache inside a sandbox folder of its own, so that anything written beside the cache shows. */
function sandbox() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'es-hub-sandbox-'))
  const cacheDir = path.join(dir, 'cache')
  fs.mkdirSync(cacheDir)
  return { dir, cacheDir }
}

/** Every path under `dir`, relative, symlinks not followed. */
function walk(dir, prefix = '') {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(prefix, e.name)
    return e.isDirectory() ? [rel, ...walk(path.join(dir, e.name), rel)] : [rel]
  })
}

/** Nothing outside the cache: the sandbox holds only it, nothing at the absolute target, every link in the cache points inside it. */
function expectNothingOutside({ dir, cacheDir }) {
  expect(fs.readdirSync(dir)).toEqual(['cache'])
  expect(fs.existsSync(escapeTarget)).toBe(false)
  expect(fs.existsSync('/tmp/x')).toBe(false)
  for (const rel of walk(cacheDir)) {
    const full = path.join(cacheDir, rel)
    if (fs.lstatSync(full).isSymbolicLink()) {
      const target = path.resolve(path.dirname(full), fs.readlinkSync(full))
      expect(target.startsWith(cacheDir + path.sep), `${rel} -> ${target}`).toBe(true)
    }
  }
}

/** After a hostile answer: a good server completes into the same cache and the model embeds correctly. */
async function goodServerCompletes(hub, { cacheDir }) {
  hub.mode = 'good'
  const dir = await EmbeddingService.downloadModel('org/tiny', { cacheDir })
  expect(dir).toBe(path.join(cacheDir, 'models--org--tiny', 'snapshots', commit))
  expect(fs.readFileSync(path.join(dir, 'model.safetensors'))).toEqual(weights)
  const svc = new EmbeddingService({ model: 'org/tiny', cacheDir, offline: true, threads: 1 })
  try {
    expect(minCosine(await svc.embed(texts()), tinyExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
  } finally {
    await svc.close()
  }
}

describe('downloads from a hostile or broken hub', () => {
  const hub = scriptedHub()
  beforeAll(async () => {
    hub.cdnPort = await listen(hub.cdn)
    const port = await listen(hub.server)
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`
    process.env.HF_TOKEN = 'hf_test_token'
  })
  afterEach(() => {
    hub.release()
    hub.mode = 'good'
  })
  afterAll(() => {
    delete process.env.HF_ENDPOINT
    delete process.env.HF_TOKEN
    for (const s of [hub.server, hub.cdn]) {
      s.closeAllConnections()
      s.close()
    }
    fs.rmSync(escapeTarget, { force: true })
  })

  it('a good hub: small files by git SHA-1, the weights through the CDN redirect, the token to the hub only', async () => {
    const box = sandbox()
    const cdnBefore = hub.cdnRequests.length
    const hubBefore = hub.hubRequests.length
    await goodServerCompletes(hub, box)
    const cdn = hub.cdnRequests.slice(cdnBefore)
    expect(cdn.map((r) => r.method)).toEqual(['GET'])
    expect(cdn.every((r) => r.auth === undefined)).toBe(true)
    expect(hub.hubRequests.slice(hubBefore).every((r) => r.auth === 'Bearer hf_test_token')).toBe(true)
    // The layout huggingface_hub writes: blobs named by digest, relative links, refs/main.
    const repo = path.join(box.cacheDir, 'models--org--tiny')
    expect(fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8')).toBe(commit)
    expect(fs.readlinkSync(path.join(repo, 'snapshots', commit, 'model.safetensors'))).toBe(path.join('..', '..', 'blobs', weightsSha))
    const config = fs.readFileSync(path.join(tinyDir, 'config.json'))
    expect(fs.readlinkSync(path.join(repo, 'snapshots', commit, 'config.json'))).toBe(path.join('..', '..', 'blobs', gitSha(config)))
    expectNothingOutside(box)
  })

  it("the files modules.json lists (two Dense modules' configs and weights) come too, before the weights, and the model embeds", async () => {
    const box = sandbox()
    const before = hub.hubRequests.length
    const dir = await EmbeddingService.downloadModel('org/dense', { cacheDir: box.cacheDir })
    for (const f of ['2_Dense/config.json', '2_Dense/model.safetensors', '3_Dense/config.json', '3_Dense/model.safetensors']) {
      expect(fs.readFileSync(path.join(dir, f)), f).toEqual(fs.readFileSync(path.join(denseDir, f)))
    }
    // Weights last: until they are in place the snapshot does not count as cached.
    const asked = hub.hubRequests.slice(before).map((r) => r.url.split('/resolve/')[1].split('/').slice(1).join('/'))
    expect(asked.indexOf('3_Dense/model.safetensors')).toBeLessThan(asked.lastIndexOf('model.safetensors'))
    // A snapshot without a module's weights is not cached: offline it is ERR_MODEL_NOT_FOUND, not a broken
    // model, and the next download completes it.
    fs.rmSync(path.join(dir, '3_Dense/model.safetensors'))
    const offline = new EmbeddingService({ model: 'org/dense', cacheDir: box.cacheDir, offline: true, threads: 1 })
    await expect(offline.embed(['a'])).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' })
    await offline.close()
    expect(await EmbeddingService.downloadModel('org/dense', { cacheDir: box.cacheDir })).toBe(dir)
    const svc = new EmbeddingService({ model: 'org/dense', cacheDir: box.cacheDir, offline: true, threads: 1 })
    try {
      expect(minCosine(await svc.embed(texts()), denseExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
      expect(svc.status().dimensions).toBe(16)
    } finally {
      await svc.close()
    }
    expectNothingOutside(box)
  })

  it('an ETag that climbs out of the cache is refused before anything is written', async () => {
    const box = sandbox()
    hub.mode = 'etagTraversal'
    const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining('ETag header is not a SHA-256') })
    expect(err.message).toContain(escapeName)
    expectNothingOutside(box)
    expect(EmbeddingService.isModelCached('org/tiny', { cacheDir: box.cacheDir })).toBe(false)
    await goodServerCompletes(hub, box)
    expectNothingOutside(box)
  })

  it('an X-Repo-Commit that is not a commit id is refused, with no panic and no folder outside', async () => {
    const box = sandbox()
    hub.mode = 'commitTraversal'
    const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining('X-Repo-Commit header is not a commit id') })
    expectNothingOutside(box)
    await goodServerCompletes(hub, box)
  })

  it('weights whose SHA-256 is not their ETag are refused and not kept', async () => {
    const box = sandbox()
    hub.mode = 'wrongBytes'
    const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining(`not to the digest its ETag promised (${weightsSha})`) })
    const blobs = path.join(box.cacheDir, 'models--org--tiny', 'blobs')
    expect(fs.readdirSync(blobs).filter((f) => f.startsWith(weightsSha))).toEqual([])
    expect(EmbeddingService.isModelCached('org/tiny', { cacheDir: box.cacheDir })).toBe(false)
    expectNothingOutside(box)
    await goodServerCompletes(hub, box)
  })

  it('a server that goes silent mid-file fails after downloadTimeoutMs, and the next download resumes the partial file', async () => {
    const box = sandbox()
    hub.mode = 'stallMidBody'
    const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir, downloadTimeoutMs: 1000 }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining('nothing arrived for 1 s') })
    hub.release()
    const cdnBefore = hub.cdnRequests.length
    await goodServerCompletes(hub, box)
    // Resumed from where the stalled transfer stopped (half the file), not from the start.
    expect(hub.cdnRequests.slice(cdnBefore).map((r) => r.range)).toEqual([`bytes=${weights.length >> 1}-`])
    expectNothingOutside(box)
  })

  it('an abort while the server is silent mid-file settles with ERR_ABORTED and leaves nothing locked', async () => {
    const box = sandbox()
    hub.mode = 'stallMidBody'
    const controller = new AbortController()
    const download = EmbeddingService.downloadModel('org/tiny', {
      cacheDir: box.cacheDir,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.file === 'model.safetensors' && p.current > 0) controller.abort()
      },
    })
    await expect(download).rejects.toMatchObject({ code: 'ERR_ABORTED', name: 'AbortError' })
    // The server still holds its half of the connection; the lock and partial file are free all the same.
    await goodServerCompletes(hub, box)
    hub.release()
  })

  it('a body cut short is resumed while it makes progress, then fails; a good server completes it', async () => {
    const box = sandbox()
    hub.mode = 'cutShort'
    const cdnBefore = hub.cdnRequests.length
    const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining('broke off at byte 98304') })
    // One transfer and five resumes, each from the byte the last one reached.
    expect(hub.cdnRequests.slice(cdnBefore).map((r) => r.range)).toEqual([undefined, ...[1, 2, 3, 4, 5].map((i) => `bytes=${16384 * i}-`)])
    await goodServerCompletes(hub, box)
  })

  it('a partial file of wrong bytes left by a broken server is restarted from nothing, not trusted', async () => {
    const box = sandbox()
    hub.mode = 'cutShortWrong'
    await expect(EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir })).rejects.toMatchObject({ code: 'ERR_DOWNLOAD' })
    const cdnBefore = hub.cdnRequests.length
    await goodServerCompletes(hub, box)
    // Resumed, found not to be the file, restarted whole.
    expect(hub.cdnRequests.slice(cdnBefore).map((r) => r.range)).toEqual([`bytes=${16384 * 6}-`, undefined])
  })

  it('a redirect to file: or ftp: is not followed', async () => {
    for (const mode of ['redirectFile', 'redirectFtp']) {
      const box = sandbox()
      hub.mode = mode
      const cdnBefore = hub.cdnRequests.length
      const err = await EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }).catch((e) => e)
      expect(err).toMatchObject({ code: 'ERR_DOWNLOAD', message: expect.stringContaining('only http:// and https:// are followed') })
      expect(hub.cdnRequests.length).toBe(cdnBefore)
      expectNothingOutside(box)
      await goodServerCompletes(hub, box)
    }
  })

  it('two downloads of one model at once share the work through the lock and both complete', async () => {
    const box = sandbox()
    const [a, b] = await Promise.all([
      EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }),
      EmbeddingService.downloadModel('org/tiny', { cacheDir: box.cacheDir }),
    ])
    expect(a).toBe(b)
    expect(fs.readFileSync(path.join(a, 'model.safetensors'))).toEqual(weights)
    expectNothingOutside(box)
  })

  it('downloadTimeoutMs must be a positive number', async () => {
    for (const bad of [0, -1, Number.NaN, '5', 1e300]) {
      await expect(EmbeddingService.downloadModel('org/tiny', { cacheDir: sandbox().cacheDir, downloadTimeoutMs: bad })).rejects.toMatchObject({
        code: 'ERR_INVALID_INPUT',
      })
    }
  })
})

describe('downloads during load, under a hostile or broken hub', () => {
  const hub = scriptedHub()
  beforeAll(async () => {
    hub.cdnPort = await listen(hub.cdn)
    const port = await listen(hub.server)
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`
  })
  afterEach(() => {
    hub.release()
    hub.mode = 'good'
  })
  afterAll(() => {
    delete process.env.HF_ENDPOINT
    for (const s of [hub.server, hub.cdn]) {
      s.closeAllConnections()
      s.close()
    }
  })

  it('a stalled download fails the load with ERR_DOWNLOAD after downloadTimeoutMs; the same service then loads from a good server', async () => {
    const box = sandbox()
    hub.mode = 'stallMidBody'
    const svc = new EmbeddingService({ model: 'org/tiny', cacheDir: box.cacheDir, threads: 1, downloadTimeoutMs: 1000 })
    try {
      await expect(svc.embed(texts())).rejects.toMatchObject({ code: 'ERR_DOWNLOAD' })
      hub.release()
      hub.mode = 'good'
      expect(minCosine(await svc.embed(texts()), tinyExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    } finally {
      await svc.close()
    }
    expectNothingOutside(box)
  })

  it('the watchdog ends a stuck download (ERR_STALLED), and the fresh worker completes it into the same cache', async () => {
    const box = sandbox()
    hub.mode = 'stallMidBody'
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({
      model: 'org/tiny',
      cacheDir: box.cacheDir,
      threads: 1,
      stallWarningMs: 300,
      stallTimeoutMs: 1500,
      onProgress,
    })
    try {
      await expect(svc.embed(texts())).rejects.toMatchObject({ code: 'ERR_STALLED' })
      await nextEvent(events, (e) => e.status === 'stalled')
      hub.release()
      hub.mode = 'good'
      expect(minCosine(await svc.embed(texts()), tinyExpected.embeddings)).toBeGreaterThanOrEqual(0.99999)
    } finally {
      await svc.close()
    }
  })

  it('close() ends a stuck download: the load rejects with ERR_CLOSED, nothing is left locked', async () => {
    const box = sandbox()
    hub.mode = 'stallMidBody'
    const { events, onProgress } = recorder()
    const svc = new EmbeddingService({ model: 'org/tiny', cacheDir: box.cacheDir, threads: 1, onProgress })
    const pending = svc.embed(texts())
    await nextEvent(events, (e) => e.status === 'downloading_model' && e.details === 'model.safetensors' && e.current > 0)
    const rejected = expect(pending).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await svc.close()
    await rejected
    await goodServerCompletes(hub, box)
  })
})
