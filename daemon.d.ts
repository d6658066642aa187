// The indexing daemon's embedding backends (folder-mcp's `PythonEmbeddingService` and `ONNXEmbeddingService`
// contracts), in process.
// import { NativeEmbeddingBackend, ONNXEmbeddingService } from 'embedding-service/daemon'
import type { EmbeddingServiceOptions, ProgressEvent, ServiceStatus } from './index.js'

/** The daemon's TextChunk: `content`, `chunkIndex` and `metadata`'s labels are read (its other fields are carried along). */
export interface TextChunk {
  content: string
  chunkIndex: number
  /** Read by `generateEmbeddings` to recognise the daemon's search queries. */
  metadata?: { sourceFile?: string; sourceType?: string; [key: string]: unknown }
}

export interface EmbeddingVector {
  vector: number[]
  dimensions: number
  /** The name the model was loaded by (`config.modelName`). */
  model: string
  /** ISO 8601 in UTC. */
  createdAt: string
  /** `chunk_<position in this call>_<chunkIndex>`. */
  chunkId: string
  metadata: {
    generatedAt: string
    modelVersion: string
    /** The text's real token count after truncation (special tokens and prefix included). */
    tokensUsed: number
    confidence: 1
  }
}

/** `processBatch`'s element, as the daemon's `EmbeddingResult`. */
export interface EmbeddingResult<C extends TextChunk = TextChunk> {
  /** The chunk as given. */
  chunk: C
  embedding: EmbeddingVector
  /** Milliseconds the call took. */
  processingTime: number
  success: true
}

/** `uninitialized` (before `initialize()` or after `shutdown()`), `idle` (no model selected), `loading`, `ready`
 * (a model is selected and usable: also while the keep-alive has returned its memory, since the next request
 * reloads it), `unloading`, `error` (the last load failed). */
export type BackendState = 'uninitialized' | 'idle' | 'loading' | 'ready' | 'unloading' | 'error'

/** The daemon's HealthCheckResponse, plus the Python service's extra fields. */
export interface HealthCheckResponse {
  /** 'healthy' when a model is selected and usable; 'idle', 'loading' or 'unloading' otherwise; 'unhealthy'
   * before `initialize()` or after a failed load. */
  status: 'healthy' | 'idle' | 'loading' | 'unloading' | 'unhealthy'
  state: BackendState | 'error'
  loading_progress?: number
  current_model?: string | null
  /**
   * Whether a model is selected and usable, as the daemon's bridge reads it. True also after the keep-alive has
   * returned the model's memory (the Python service's health check says the same): the next request reloads
   * it, so there is nothing for the daemon to wait for.
   */
  model_loaded: boolean
  /** Whether the model's weights are in memory right now (false after the keep-alive's idle unload). */
  model_resident?: boolean
  /** The idle keep-alive in force, in seconds; -1 for never. */
  keep_alive_seconds?: number
  /** True when the model runs on CUDA or Metal. */
  gpu_available: boolean
  /** This process's resident memory. */
  memory_usage_mb: number
  uptime_seconds: number
  /** Requests queued or running. */
  queue_size: number
  error?: string
}

export interface ServiceStats {
  initialized: boolean
  /** Always 0: the model runs in this process, there is nothing to restart. */
  restartAttempts: number
  lastRestartTime: number
  /** This process's pid. */
  processId: number
  lastHealthCheck: HealthCheckResponse | null
  requests: number
  texts: number
  tokens: number
  errors: number
  textsPerSecond: number | null
  loadCount: number
  unloadCount: number
}

export interface DownloadResult {
  success: boolean
  message?: string
  /** `Model X not in supported list`, or `CODE: message` of the failure. */
  error?: string
  /** 0 to 100. */
  progress: number
}

/** The daemon's SemanticExtractionOptions, as far as KeyBERT reads them (`contentZones` is ignored, as the
 * daemon's Python handler ignores it). */
export interface SemanticExtractionOptions {
  ngramRange?: [number, number] | undefined
  useMmr?: boolean | undefined
  /** Default 0.5 (0 also reads as 0.5, as in the daemon). */
  diversity?: number | undefined
  /** Default 10. */
  maxKeyPhrases?: number | undefined
  /** Phrases matching these are boosted (30% structure, 70% similarity), as the daemon's semantic handler does. */
  structuredCandidates?:
    | {
        metadata?: string[] | undefined
        headers?: string[] | undefined
        entities?: string[] | undefined
        emphasized?: string[] | undefined
        captions?: string[] | undefined
      }
    | undefined
  contentZones?: unknown
  calculateMetrics?: boolean | undefined
  fileType?: string | undefined
}

export interface SemanticScore {
  text: string
  score: number
}

/**
 * The daemon's config (`modelName`, `timeout`, ...), plus any EmbeddingService option to pass through.
 *
 * Keep-alive: after this long with no work the model's memory is returned, invisibly to the daemon (see
 * `HealthCheckResponse.model_loaded`), and the next request reloads it. As the Python service reads it: 60
 * minutes; else `embeddings.python.processManagement.keepAliveMinutes` of the daemon's
 * `system-configuration.json` (the folder holding the `node_modules` this package is installed in, or
 * `systemConfigPath`); else `keepAliveMinutes`; then the environment's `FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS`;
 * then `testConfig.keepAliveSeconds`. An explicit `keepAliveMs` (-1: never) overrides all of them.
 */
export interface BackendConfig extends Partial<Omit<EmbeddingServiceOptions, 'model' | 'onProgress'>> {
  /** The model to load at `initialize()`; default '' (none until `loadModel`). */
  modelName?: string
  timeout?: number
  maxRetries?: number
  /** Extra model names `downloadModel` accepts besides the daemon's curated ones. */
  supportedModels?: string[]
  /** Idle minutes before the model's memory is returned (see above); at least 0. */
  keepAliveMinutes?: number
  /** The daemon's test knobs; `keepAliveSeconds` (at least 0) shortens the keep-alive. The others are accepted and unused. */
  testConfig?: { keepAliveSeconds?: number; crawlingPauseSeconds?: number; shutdownGracePeriodSeconds?: number }
  /** Where the daemon's system-configuration.json is, when it is not beside the `node_modules` holding this package. */
  systemConfigPath?: string
  onProgress?: (event: ProgressEvent) => void
  [key: string]: unknown
}

export interface CuratedModel {
  id: string
  hubId: string
  onnxId?: string
  dimensions: number
  requiresPrefix: boolean
}

/** The daemon's curated models and the safetensors model each loads. */
export declare const CURATED_MODELS: CuratedModel[]

/** The hub id (or folder) a daemon model name loads. Throws `ERR_MODEL_NOT_FOUND` for unknown `gpu:`/`cpu:` ids. */
export declare function resolveModel(name: string): { source: string; curated: CuratedModel | null }

export declare class NativeEmbeddingBackend {
  /** The daemon's config; its registry writes `config.modelName = ''` after unloading. */
  config: BackendConfig & { modelName: string; timeout: number; maxRetries: number }
  /** `modelConfig.requiresPrefix` overrides the registry's word on E5 prefixes. */
  constructor(config?: BackendConfig, modelConfig?: { requiresPrefix?: boolean })
  /** Loads `config.modelName` when set; otherwise only marks the backend ready for `loadModel`. */
  initialize(): Promise<void>
  isInitialized(): boolean
  /**
   * Loads a model: a hub id, a curated `gpu:`/`cpu:xenova-*` id (mapped to its safetensors model), or a bare
   * sentence-transformers name. `modelId` (a curated id) selects E5 prefixes from the daemon's registry.
   * Switching models waits for the current model's work, then frees it. Rejects with `ERR_NOT_INITIALIZED`
   * before `initialize()`, and with the service's codes (`ERR_MODEL_NOT_FOUND`, ...) when the load fails.
   */
  loadModel(modelName: string, modelId?: string): Promise<void>
  /** Frees the model once its queued and running work is done; the backend is then 'idle'. */
  unloadModel(): Promise<void>
  requestModelUnload(): Promise<void>
  waitForState(state: BackendState, timeoutMs?: number): Promise<void>
  getStatus(): Promise<{ state: BackendState; model?: string | null; progress?: number; error?: string }>
  shutdown(timeoutSeconds?: number): Promise<void>

  /**
   * Embeds chunks in order. 'query' runs ahead of index work, with E5's query prefix where it applies;
   * 'passage' is index work. `true`/`false` is the daemon's IEmbeddingModel `immediate` flag (true: a query).
   * Without a text type, the chunks' labels decide: every chunk with `metadata.sourceFile` 'search-query' (the
   * daemon's REST search_content), 'document-discovery-query' (its find-documents) or 'query', or with
   * `metadata.sourceType` 'query', makes a query; anything else is a passage. Another value rejects with
   * `ERR_INVALID_INPUT`.
   */
  generateEmbeddings(chunks: TextChunk[], textType?: 'query' | 'passage' | boolean): Promise<EmbeddingVector[]>
  /** Default textType 'query'. */
  generateSingleEmbedding(text: string, textType?: 'query' | 'passage'): Promise<EmbeddingVector>
  generateQueryEmbedding(query: string): Promise<EmbeddingVector>
  /** All chunks as one index request; `batchSize` is checked, the service batches by its token budget. */
  processBatch<C extends TextChunk>(chunks: C[], batchSize?: number, textType?: 'query' | 'passage'): Promise<EmbeddingResult<C>[]>
  /** Cosine similarity of two EmbeddingVectors (anything with a `vector`) or plain arrays; 0 for a zero vector. */
  calculateSimilarity(a: { vector: ArrayLike<number> } | ArrayLike<number>, b: { vector: ArrayLike<number> } | ArrayLike<number>): number
  /** Milliseconds for `chunkCount` chunks at the throughput measured so far (50 ms per chunk before any). */
  estimateProcessingTime(chunkCount: number): number

  /** True while a model is selected. */
  isKeyBERTAvailable(): Promise<boolean>
  /** KeyBERT key phrases of one text with the model (see `EmbeddingService.extractKeyphrases`). */
  extractKeyPhrasesKeyBERT(text: string, options?: SemanticExtractionOptions): Promise<SemanticScore[]>
  extractKeyPhrasesKeyBERTBatch(texts: string[], options?: SemanticExtractionOptions): Promise<SemanticScore[][]>

  /**
   * 'gpu': the daemon's label for the backend that does KeyBERT (its 'onnx' path has none); 'remote' when the
   * config's `endpoint` sends the work to an embedding server (KeyBERT runs through it too).
   */
  getServiceType(): 'gpu' | 'remote'
  getModelConfig(): {
    model: string
    timeout: number
    maxRetries: number
    /** The hub id or folder actually loaded. */
    source: string | null
    device: string | null
    dtype: 'f32' | 'bf16' | 'f16' | 'int8' | null
    dimensions: number | null
    prompts: string[]
    requiresPrefix: boolean | null
  }
  getModelDimensions(): number | null
  /** Never rejects. */
  healthCheck(): Promise<HealthCheckResponse>
  getLastHealthCheck(): HealthCheckResponse | null
  getServiceStats(): ServiceStats
  isModelCached(modelName?: string): Promise<boolean>
  setDownloadProgressCallback(callback: ((progress: number) => void) | null): void
  /** Never rejects; see DownloadResult. */
  downloadModel(modelName: string): Promise<DownloadResult>
}

/** The name the daemon imports: the same class. */
export { NativeEmbeddingBackend as PythonEmbeddingService }

/**
 * The options folder-mcp passes to its `ONNXEmbeddingService` (its `ONNXEmbeddingOptions`), and the
 * EmbeddingService options it may add. Instances for the same model share one service (one copy of the
 * weights, one queue); the first instance's options make it.
 */
export interface ONNXEmbeddingOptions {
  /** A curated `cpu:` id: 'cpu:xenova-multilingual-e5-small' or 'cpu:xenova-multilingual-e5-large'. */
  modelId: string
  /** The daemon's ONNX cache (default ~/.cache/folder-mcp/onnx-models): `<huggingfaceId>/onnx/model_quantized.onnx`. */
  cacheDirectory?: string
  /** Accepted for the daemon's signature; truncation is the model's (`model_max_length`, 512 for E5). */
  maxSequenceLength?: number
  /** Accepted for the daemon's signature: batches are formed by tokens, for every caller at once. */
  batchSize?: number
  /** Accepted and unused: no worker threads are started; one Rust worker thread serves every caller. */
  useWorkerThreads?: boolean
  /** Accepted and unused (see `useWorkerThreads`); `threads` sets the compute threads. */
  workerPoolSize?: number
  /** Accepted and unused (see `useWorkerThreads`); `threads` sets the compute threads. */
  numThreads?: number
  /** Where transformers.js keeps its cache, when not under the daemon's node_modules (its tokenizer files are read there). */
  transformersCacheDirectory?: string
  /** Default 'int8'. */
  dtype?: EmbeddingServiceOptions['dtype']
  threads?: number
  /**
   * Idle milliseconds before the model's memory is returned (-1: never). Default: the keep-alive of the daemon's
   * Python backend (`BackendConfig`: 60 minutes, its system-configuration.json, `keepAliveMinutes`,
   * `FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS`, `testConfig.keepAliveSeconds`), which this backend never had.
   */
  keepAliveMs?: number
  keepAliveMinutes?: number
  testConfig?: { keepAliveSeconds?: number }
  systemConfigPath?: string
  stallWarningMs?: number
  stallTimeoutMs?: number
  logger?: EmbeddingServiceOptions['logger']
  onProgress?: (event: ProgressEvent) => void
  /** The hub cache and offline mode, for the base model when the export is not in the ONNX cache. */
  cacheDir?: string
  offline?: boolean
}

/** The daemon's EmbeddingVector as its ONNX backend returns it: `model` is the curated id; `metadata` the chunk's own. */
export interface OnnxEmbeddingVector {
  vector: number[]
  dimensions: number
  model: string
  /** ISO 8601 in UTC. */
  createdAt: string
  metadata: Record<string, unknown>
}

/** The daemon's catalog entry of a `cpu:` model (its curated-models.json when found, else a copy of d01bb52's). */
export interface CpuModelEntry {
  id: string
  displayName: string
  huggingfaceId: string
  baseModel: string
  dimensions: number
  modelSizeMB: number
  quantization?: string
  contextWindow?: number
  languageCount: number
  requirements?: { prefixes?: { query?: string; passage?: string } }
  [key: string]: unknown
}

/**
 * folder-mcp's `ONNXEmbeddingService` (its `cpu:` models) on this package, in int8, with no onnxruntime and no
 * worker threads. The weights are read from the ONNX export the daemon downloaded
 * (`<cacheDirectory>/<huggingfaceId>/onnx/model_quantized.onnx`, with config.json and tokenizer.json beside it
 * or in transformers.js' cache); without the export, from the safetensors model it was made from, through the
 * hub cache. Texts are sent as the daemon's pipeline sends them: with its catalog's `requirements.prefixes`,
 * which its cpu: models do not have.
 */
export declare class ONNXEmbeddingService {
  constructor(options: ONNXEmbeddingOptions)
  /** Finds the files and loads the model; rejects `Failed to initialize ONNX model <id>: ...` with the cause's code. */
  initialize(): Promise<void>
  isInitialized(): boolean
  /**
   * Chunks (or strings) in, one `{ vector, dimensions, metadata }` each out. Chunks the daemon labels as searches
   * (`search-query`, `document-discovery-query`, `query`) are queries: the query lane, ahead of index work.
   */
  generateEmbeddings(chunks: Array<TextChunk | string>): Promise<OnnxEmbeddingVector[]>
  /**
   * `textType` ('query' by default) picks the prefix only; `priority` ('query' unless told) the lane. In the
   * daemon this is its ONNXModelBridge's entry, which it uses for searches (REST `search_content` and
   * `find-documents`, with textType 'passage'); its indexing goes through `generateEmbeddings(chunks)`. Bulk
   * work through here should pass 'index'.
   */
  generateEmbeddingsFromStrings(
    texts: string[],
    textType?: 'query' | 'passage',
    priority?: 'query' | 'index',
  ): Promise<{ embeddings: number[][]; dimensions: number; modelUsed: string; processingTime: number }>
  generateQueryEmbedding(query: string): Promise<Omit<OnnxEmbeddingVector, 'metadata'>>
  /** A query, as the daemon's. */
  generateSingleEmbedding(text: string): Promise<Omit<OnnxEmbeddingVector, 'metadata'>>
  /** Cosine similarity, clamped to [-1, 1]; `ERR_INVALID_INPUT` for vectors of different sizes. */
  calculateSimilarity(a: { vector: ArrayLike<number> } | ArrayLike<number>, b: { vector: ArrayLike<number> } | ArrayLike<number>): number
  getModelInfo(): Promise<{ modelId: string; displayName: string; dimensions: number; quantization: string; languageCount: number; modelSize: number }>
  getModelConfig(): CpuModelEntry | null
  /** 'onnx': the daemon takes its cpu: paths (n-gram key phrases scored with these embeddings). */
  getServiceType(): 'onnx'
  testEmbedding(): Promise<boolean>
  /** Where the weights came from (not in the daemon's contract); null before initialize. */
  getModelSource(): { source: string; kind: 'onnx' | 'base' } | null
  /** The shared service's status (not in the daemon's contract); null before initialize. */
  status(): ServiceStatus | null
  /** Lets go of the model; the last instance for it closes the service. */
  dispose(): Promise<void>
}
