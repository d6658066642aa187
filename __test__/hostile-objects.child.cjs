// Run by __test__/hostile-objects.test.mjs in a plain `node` (no test runner, Node's default
// --unhandled-rejections=throw): every options object, texts array and signal a caller could build to break
// the reading of its values. Each call must answer with an ERR_INVALID_INPUT (a rejection for async methods, a
// throw for the constructor and isModelCached) and nothing else: no synchronous throw from an async method and
// no unhandled rejection, which in this mode ends the process with exit code 1 before the summary is printed.
'use strict'

const path = require('node:path')
const { EmbeddingService } = require(path.join(__dirname, '..', 'index.js'))
const { NativeEmbeddingBackend } = require(path.join(__dirname, '..', 'daemon.js'))

const model = process.argv[2]
const boom = () => {
  throw new Error('hostile getter')
}
const throwingGetter = (key) => Object.defineProperty({}, key, { get: boom, enumerable: true })
const throwingProxy = () => new Proxy({}, { get: boom, has: boom, ownKeys: boom, getOwnPropertyDescriptor: boom })
const revoked = () => {
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  return proxy
}
const throwingArray = () => new Proxy(['a', 'b'], { get: (t, k) => (k === 'length' ? 2 : boom()) })
const arrayWithGetter = () => Object.defineProperty(['a', 'b'], 1, { get: boom })
const revokedArray = () => {
  const { proxy, revoke } = Proxy.revocable(['a'], {})
  revoke()
  return proxy
}
const hostileSignals = () => [
  Object.defineProperty({ addEventListener() {}, removeEventListener() {} }, 'aborted', { get: boom }),
  { aborted: false, addEventListener: boom, removeEventListener() {} },
  new Proxy({}, { get: boom }),
  revoked(),
]

const hostileOptions = (keys) => [
  ...keys.map((k) => [`a throwing getter for ${k}`, throwingGetter(k)]),
  ['a Proxy whose traps throw', throwingProxy()],
  ['a revoked Proxy', revoked()],
  ...hostileSignals().map((signal, i) => [`hostile signal ${i + 1}`, { signal }]),
]

async function main() {
  const results = []
  const recordRejection = async (label, call) => {
    try {
      const value = call()
      try {
        await value
        results.push({ label, ok: false, got: 'resolved' })
      } catch (err) {
        results.push({ label, ok: err && err.code === 'ERR_INVALID_INPUT', got: `${err && err.code}: ${err && err.message}` })
      }
    } catch (err) {
      results.push({ label, ok: false, got: `threw synchronously: ${err && err.code} ${err && err.message}` })
    }
  }
  const recordThrow = (label, call) => {
    try {
      call()
      results.push({ label, ok: false, got: 'did not throw' })
    } catch (err) {
      results.push({ label, ok: err && err.code === 'ERR_INVALID_INPUT', got: `${err && err.code}: ${err && err.message}` })
    }
  }

  // The constructor: options, testHooks.
  const noSignal = (list) => list.filter(([label]) => !label.startsWith('hostile signal'))
  for (const [label, options] of [
    ...noSignal(hostileOptions(['model', 'threads', 'onProgress', 'logger', 'keepAliveMs'])),
    ['hostile testHooks', { model, testHooks: throwingProxy() }],
  ]) {
    recordThrow(`new EmbeddingService(${label})`, () => new EmbeddingService(options))
  }

  const svc = new EmbeddingService({ model, threads: 1 })
  for (const [label, options] of hostileOptions(['priority', 'prompt', 'signal', 'onProgress'])) {
    await recordRejection(`embed(texts, ${label})`, () => svc.embed(['a'], options))
    await recordRejection(`embedDetailed(texts, ${label})`, () => svc.embedDetailed(['a'], options))
  }
  for (const [label, options] of [
    ...hostileOptions(['ngramRange', 'stopWords', 'topN', 'useMmr', 'diversity', 'maxCandidates', 'priority', 'signal', 'onProgress']),
    ['ngramRange, an array whose elements throw', { ngramRange: throwingArray() }],
    ['stopWords, an array with a throwing element', { stopWords: arrayWithGetter() }],
    ['stopWords, a revoked array', { stopWords: revokedArray() }],
  ]) {
    await recordRejection(`extractKeyphrases(texts, ${label})`, () => svc.extractKeyphrases(['a text'], options))
  }
  for (const [label, texts] of [
    ['texts, an array whose elements throw', throwingArray()],
    ['texts, an array with a throwing element', arrayWithGetter()],
    ['texts, a revoked array', revokedArray()],
    ['texts, a Proxy whose traps throw', throwingProxy()],
  ]) {
    await recordRejection(`embed(${label})`, () => svc.embed(texts))
    await recordRejection(`extractKeyphrases(${label})`, () => svc.extractKeyphrases(texts))
  }
  for (const [label, options] of hostileOptions(['cacheDir', 'revision', 'offline', 'onProgress', 'signal'])) {
    await recordRejection(`EmbeddingService.downloadModel(${label})`, () => EmbeddingService.downloadModel('org/none', options))
  }
  for (const [label, options] of noSignal(hostileOptions(['cacheDir', 'revision', 'offline']))) {
    recordThrow(`EmbeddingService.isModelCached(${label})`, () => EmbeddingService.isModelCached('org/none', options))
  }

  // The daemon adapter: its config, modelConfig, chunks and key-phrase options.
  recordThrow('new NativeEmbeddingBackend(a revoked Proxy)', () => new NativeEmbeddingBackend(revoked()))
  recordThrow('new NativeEmbeddingBackend(config, a throwing modelConfig)', () => new NativeEmbeddingBackend({}, throwingGetter('requiresPrefix')))
  const backend = new NativeEmbeddingBackend({ threads: 1 })
  await backend.initialize()
  await backend.loadModel(model)
  await recordRejection('generateEmbeddings(a chunk whose content throws)', () => backend.generateEmbeddings([throwingGetter('content')]))
  await recordRejection('generateEmbeddings(a chunk whose metadata throws)', () => backend.generateEmbeddings([{ content: 'a', chunkIndex: 0, get metadata() { return boom() } }]))
  await recordRejection('processBatch(a revoked chunk)', () => backend.processBatch([revoked()]))
  for (const [label, options] of [
    ...hostileOptions(['maxKeyPhrases', 'ngramRange', 'structuredCandidates']).filter(([l]) => !l.startsWith('hostile signal')),
    ['structuredCandidates whose lists throw', { structuredCandidates: { headers: throwingArray() } }],
  ]) {
    await recordRejection(`extractKeyPhrasesKeyBERT(text, ${label})`, () => backend.extractKeyPhrasesKeyBERT('a text about rivers', options))
  }

  // A Proxy over an array of strings (a reactive store's) is an array like any other.
  const reactive = new Proxy(['a reactive array', 'of texts'], {})
  const [fromProxy] = await svc.embed(reactive)
  results.push({ label: 'embed(a plain Proxy over an array)', ok: fromProxy.length > 0, got: `${fromProxy.length} dimensions` })

  // The service still works after all of it.
  const [v] = await svc.embed(['still working'])
  const [phrases] = await svc.extractKeyphrases(['The river bank floods every spring.'])
  await svc.close()
  await backend.shutdown()
  process.stdout.write(`${JSON.stringify({ results, stillWorking: v.length > 0 && phrases.length > 0 })}\n`)
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ fatal: String(err && err.stack) })}\n`)
  process.exitCode = 2
})
