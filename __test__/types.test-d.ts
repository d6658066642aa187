// Type-level tests of index.d.ts, checked by tsc through `vitest --typecheck`.
import { describe, expectTypeOf, it } from 'vitest'
import embeddingService, {
  EmbeddingService,
  type EmbeddingBatch,
  type EmbeddingError,
  type ErrorCode,
  type Keyphrase,
  type ProgressStatus,
  type ProgressEvent,
  type ServiceMemory,
  type ServiceStatus,
} from '../index.js'
import {
  NativeEmbeddingBackend,
  ONNXEmbeddingService,
  type OnnxEmbeddingVector,
  PythonEmbeddingService,
  type EmbeddingResult,
  type EmbeddingVector,
  type HealthCheckResponse,
  type SemanticScore,
} from '../daemon.js'

describe('index.d.ts', () => {
  it('takes a string or any readonly array, and resolves a string to one vector', () => {
    const svc = new EmbeddingService({ model: 'm' })
    expectTypeOf(svc.embed('one')).toEqualTypeOf<Promise<Float32Array>>()
    const frozen: readonly string[] = Object.freeze(['a', 'b'])
    expectTypeOf(svc.embed(frozen)).toEqualTypeOf<Promise<Float32Array[]>>()
    expectTypeOf(svc.embed(['a'] as const, { normalize: false, dimensions: 128, inputType: 'query' })).toEqualTypeOf<Promise<Float32Array[]>>()
    expectTypeOf(svc.embedDetailed('one')).toEqualTypeOf<Promise<{ vectors: Float32Array[]; tokenCounts: number[] }>>()
    // @ts-expect-error a number is not a text
    svc.embed(42)
    // @ts-expect-error inputType is 'query' or 'document'
    svc.embed(['a'], { inputType: 'search' })
    expectTypeOf(svc.model).toEqualTypeOf<string>()
  })

  it('describes embedQuery, embedDocuments and embedBatches', async () => {
    const svc = new EmbeddingService({ model: 'm' })
    expectTypeOf(svc.embedQuery('q', { dimensions: 64 })).toEqualTypeOf<Promise<Float32Array>>()
    expectTypeOf(svc.embedDocuments(['d'] as readonly string[])).toEqualTypeOf<Promise<Float32Array[]>>()
    // @ts-expect-error the lane is embedQuery's own
    svc.embedQuery('q', { priority: 'index' })
    // @ts-expect-error one query, not an array
    svc.embedQuery(['q'])
    async function* source() {
      yield 'a'
    }
    for await (const batch of svc.embedBatches(source(), { batchSize: 100, signal: new AbortController().signal })) {
      expectTypeOf(batch).toEqualTypeOf<EmbeddingBatch>()
      expectTypeOf(batch.vectors).toEqualTypeOf<Float32Array[]>()
      expectTypeOf(batch.start).toEqualTypeOf<number>()
    }
    expectTypeOf(svc.embedBatches(new Set(['a']))).toEqualTypeOf<AsyncGenerator<EmbeddingBatch, void, undefined>>()
  })

  it('is async-disposable, and keeps test hooks off the public type', async () => {
    {
      await using svc = new EmbeddingService({ model: 'm' })
      expectTypeOf(svc[Symbol.asyncDispose]()).toEqualTypeOf<Promise<void>>()
    }
    // @ts-expect-error testHooks are the addon's own tests' business
    new EmbeddingService({ model: 'm', testHooks: { stallMs: 1 } })
  })

  it('has a default export that is the module', () => {
    expectTypeOf(embeddingService.EmbeddingService).toEqualTypeOf<typeof EmbeddingService>()
  })

  it('describes the constructor, embed, dimensions and close', () => {
    const svc = new EmbeddingService({ model: 'sentence-transformers/all-MiniLM-L6-v2', device: 'cpu', threads: 2 })
    expectTypeOf(svc.embed(['a'], { prompt: 'query' })).toEqualTypeOf<Promise<Float32Array[]>>()
    expectTypeOf(svc.dimensions).toEqualTypeOf<number | null>()
    expectTypeOf(svc.close()).toEqualTypeOf<Promise<void>>()
  })

  it('describes the static model functions', () => {
    expectTypeOf(EmbeddingService.isModelCached('org/m', { cacheDir: '/c', revision: 'main' })).toEqualTypeOf<boolean>()
    expectTypeOf(
      EmbeddingService.downloadModel('org/m', {
        signal: new AbortController().signal,
        downloadTimeoutMs: 10_000,
        onProgress: (p) => expectTypeOf(p.current).toEqualTypeOf<number>(),
      }),
    ).toEqualTypeOf<Promise<string>>()
    // @ts-expect-error model must be a string
    EmbeddingService.isModelCached(3)
  })

  it('describes the daemon adapter', () => {
    const backend = new NativeEmbeddingBackend({ modelName: '', threads: 2 })
    expectTypeOf(PythonEmbeddingService).toEqualTypeOf<typeof NativeEmbeddingBackend>()
    expectTypeOf(backend.config.modelName).toEqualTypeOf<string>()
    expectTypeOf(backend.loadModel('BAAI/bge-m3', 'gpu:bge-m3')).toEqualTypeOf<Promise<void>>()
    expectTypeOf(backend.generateEmbeddings([{ content: 'a', chunkIndex: 0 }])).toEqualTypeOf<Promise<EmbeddingVector[]>>()
    // The results carry the chunks as given: their own type, not the narrower TextChunk.
    expectTypeOf(backend.processBatch([{ content: 'a', chunkIndex: 0 }], 8)).toEqualTypeOf<Promise<EmbeddingResult<{ content: string; chunkIndex: number }>[]>>()
    expectTypeOf(backend.processBatch([{ content: 'a', chunkIndex: 0, metadata: { sourceFile: 'f.md' } }])).resolves.toMatchTypeOf<EmbeddingResult[]>()
    expectTypeOf(backend.healthCheck()).toEqualTypeOf<Promise<HealthCheckResponse>>()
    expectTypeOf(backend.getServiceType()).toEqualTypeOf<'gpu' | 'remote'>()
    expectTypeOf(backend.estimateProcessingTime(3)).toEqualTypeOf<number>()
    expectTypeOf(backend.extractKeyPhrasesKeyBERTBatch(['a'], { maxKeyPhrases: 5 })).toEqualTypeOf<Promise<SemanticScore[][]>>()
    backend.setDownloadProgressCallback((p) => expectTypeOf(p).toEqualTypeOf<number>())
    // @ts-expect-error text types are 'passage' or 'query' (or the daemon's boolean `immediate` flag)
    void backend.generateEmbeddings([], 'document')
    expectTypeOf(backend.generateEmbeddings([{ content: 'q', chunkIndex: 0, metadata: { sourceFile: 'search-query', sourceType: 'text', totalChunks: 1 } }], true)).toEqualTypeOf<Promise<EmbeddingVector[]>>()
    void new NativeEmbeddingBackend({ modelName: '', keepAliveMinutes: 5, testConfig: { keepAliveSeconds: 1 }, systemConfigPath: '/x/system-configuration.json' })
    expectTypeOf<HealthCheckResponse['model_resident']>().toEqualTypeOf<boolean | undefined>()
    // @ts-expect-error chunks need chunkIndex
    void backend.generateEmbeddings([{ content: 'a' }])
  })

  it('describes the daemon\'s ONNX backend', () => {
    const onnx = new ONNXEmbeddingService({ modelId: 'cpu:xenova-multilingual-e5-small', cacheDirectory: '/c', workerPoolSize: 2, numThreads: 2, batchSize: 1 })
    expectTypeOf(onnx.generateEmbeddingsFromStrings(['a'], 'passage')).resolves.toEqualTypeOf<{
      embeddings: number[][]
      dimensions: number
      modelUsed: string
      processingTime: number
    }>()
    expectTypeOf(onnx.generateEmbeddings([{ content: 'a', chunkIndex: 0 }, 'b'])).resolves.toEqualTypeOf<OnnxEmbeddingVector[]>()
    expectTypeOf(onnx.getServiceType()).toEqualTypeOf<'onnx'>()
    expectTypeOf(onnx.getModelSource()).toEqualTypeOf<{ source: string; kind: 'onnx' | 'base' } | null>()
    // @ts-expect-error the daemon's text types are 'query' and 'passage'
    void onnx.generateEmbeddingsFromStrings(['a'], 'document')
    // @ts-expect-error a model id is required
    void new ONNXEmbeddingService({ cacheDirectory: '/c' })
  })

  it('describes extractKeyphrases', () => {
    const svc = new EmbeddingService({ model: 'm' })
    expectTypeOf(svc.extractKeyphrases(['a'], { maxCandidates: 500 })).toEqualTypeOf<Promise<Keyphrase[][]>>()
    expectTypeOf(svc.extractKeyphrases('one document')).toEqualTypeOf<Promise<Keyphrase[]>>()
    expectTypeOf<'extracting_candidates'>().toMatchTypeOf<ProgressStatus>()
    expectTypeOf(svc.extractKeyphrases(['a'], { ngramRange: [1, 2], topN: 5, stopWords: null })).toEqualTypeOf<
      Promise<{ text: string; score: number }[][]>
    >()
    // @ts-expect-error stop words are 'english', null or a list
    void svc.extractKeyphrases(['a'], { stopWords: 'french' })
  })

  it('describes the remote backend options and its error code', () => {
    new EmbeddingService({ model: 'm', endpoint: 'http://gpu-box:7997/v1', apiKey: 'k', remoteConcurrency: 4 })
    // @ts-expect-error the endpoint is a URL string
    new EmbeddingService({ model: 'm', endpoint: 7997 })
    expectTypeOf<'ERR_REMOTE'>().toMatchTypeOf<ErrorCode>()
    expectTypeOf<'ERR_DOWNLOAD'>().toMatchTypeOf<ErrorCode>()
    new EmbeddingService({ model: 'org/m', downloadTimeoutMs: 60_000 })
    const backend = new PythonEmbeddingService({ modelName: 'm', endpoint: 'http://gpu-box:7997/v1' })
    expectTypeOf(backend.getServiceType()).toEqualTypeOf<'gpu' | 'remote'>()
  })

  it('rejects what the API rejects', () => {
    // @ts-expect-error model is required
    new EmbeddingService({})
    // @ts-expect-error unknown device
    new EmbeddingService({ model: 'm', device: 'tpu' })
    new EmbeddingService({ model: 'm', dtype: 'bf16' })
    // @ts-expect-error unknown dtype
    new EmbeddingService({ model: 'm', dtype: 'fp8' })
    const svc = new EmbeddingService({ model: 'm' })
    // @ts-expect-error texts must be strings
    void svc.embed([1])
    // @ts-expect-error dimensions is read-only
    svc.dimensions = 3
  })

  it('describes the lifecycle API and events', () => {
    const svc = new EmbeddingService({
      model: 'm',
      keepAliveMs: -1,
      stallWarningMs: 1000,
      stallTimeoutMs: 5000,
      onProgress: (e) => expectTypeOf(e).toEqualTypeOf<ProgressEvent>(),
      logger: (level, message) => {
        expectTypeOf(level).toEqualTypeOf<'debug' | 'info' | 'warn' | 'error'>()
        expectTypeOf(message).toEqualTypeOf<string>()
      },
    })
    expectTypeOf(svc.load()).toEqualTypeOf<Promise<void>>()
    expectTypeOf(svc.unload()).toEqualTypeOf<Promise<void>>()
    expectTypeOf(svc.status()).toEqualTypeOf<ServiceStatus>()
    expectTypeOf(svc.status().queued).toEqualTypeOf<{ query: number; index: number }>()
    expectTypeOf(svc.status().memory).toEqualTypeOf<ServiceMemory>()
    expectTypeOf(svc.status().memory.resultBytes).toEqualTypeOf<number>()
    void svc.embed(['a'], { priority: 'query', signal: new AbortController().signal, onProgress: () => {} })
    // @ts-expect-error unknown priority
    void svc.embed(['a'], { priority: 'urgent' })
    expectTypeOf<ProgressEvent['status']>().toMatchTypeOf<string>()
  })

  it('exposes error codes', () => {
    expectTypeOf<EmbeddingError['code']>().toEqualTypeOf<ErrorCode>()
    expectTypeOf<'ERR_CLOSED'>().toMatchTypeOf<ErrorCode>()
    expectTypeOf<'ERR_NATIVE_BINARY_VERSION'>().toMatchTypeOf<ErrorCode>()
  })
})
