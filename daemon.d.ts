// The daemon adapter: the embedding-backend contract of the indexing daemon, on top of EmbeddingService.
// import { NativeEmbeddingBackend } from 'embedding-service/daemon'
import type { DownloadProgress, EmbeddingServiceOptions } from './index.js'

/** all-MiniLM-L6-v2, used when no `model` is given. */
export declare const DEFAULT_MODEL: 'sentence-transformers/all-MiniLM-L6-v2'

export interface TextChunk {
  content: string
  chunkIndex: number
  [key: string]: unknown
}

export interface EmbeddingVector {
  vector: number[]
  dimensions: number
  model: string
  /** ISO 8601 in UTC (ends with Z). */
  createdAt: string
  /** `chunk_<position in this call>_<chunkIndex>`. */
  chunkId: string
  metadata: {
    generatedAt: string
    modelVersion: string
    /** The text's real token count after truncation (special tokens and prompt included). */
    tokensUsed: number
    confidence: 1
  }
}

/** `uninitialized` (before `initialize()` or after `shutdown()`), `idle` (model unloaded), `loading`,
 * `ready` (loaded, working or not), `unloading`, `error` (the last load failed). */
export type BackendState = 'uninitialized' | 'idle' | 'loading' | 'ready' | 'unloading' | 'error'

export interface HealthCheck {
  /** `healthy`: model loaded; `idle`: initialized, model unloaded (it reloads on demand); `degraded`: a job
   * has reported no progress for `stallWarningMs`; `unhealthy`: not initialized, shut down, or failed to load. */
  status: 'healthy' | 'degraded' | 'unhealthy' | 'idle'
  /** Whether the model is in memory now (read from the service, never assumed). */
  model_loaded: boolean
  gpu_available: boolean
  memory_usage_mb: number
  uptime_seconds: number
  /** Requests queued or running. */
  queue_size: number
  state: BackendState
  /** The loaded model's name, null when none is loaded. */
  current_model: string | null
}

export interface ModelConfig {
  name: string
  dimensions: number | null
  device: string | null
  dtype: 'f32' | 'bf16' | 'f16' | null
  /** The model's prompt names; text types map onto `query` and `passage` (or `document`) when present. */
  prompts: string[]
}

export interface DownloadResult {
  success: boolean
  message?: string
  /** `CODE: message` of the failure. */
  error?: string
  /** Percent of the last file reported (100 on success). */
  progress: number
}

export interface ServiceStats {
  requests: number
  texts: number
  tokens: number
  errors: number
  /** Measured over the time spent in requests; null before the first. */
  textsPerSecond: number | null
  tokensPerSecond: number | null
  loadCount: number
  unloadCount: number
  uptime_seconds: number
}

export type BackendOptions = Partial<EmbeddingServiceOptions>

export declare class NativeEmbeddingBackend {
  constructor(options?: BackendOptions)
  /** Creates the service and loads the model; idempotent (concurrent calls share one load). */
  initialize(): Promise<void>
  isInitialized(): boolean
  /** 'gpu' on CUDA or Metal, else 'onnx' (the daemon's label for its CPU backend). */
  getServiceType(): 'gpu' | 'onnx'
  getModelConfig(): ModelConfig
  /** Embeds chunks in order. `passage` runs as index work, `query` ahead of it; each text type uses the
   * model's prompt of that name (E5: "query: " / "passage: "), none for models without prompts. */
  generateEmbeddings(chunks: TextChunk[], textType?: 'passage' | 'query'): Promise<EmbeddingVector[]>
  generateSingleEmbedding(text: string, textType?: 'passage' | 'query'): Promise<EmbeddingVector>
  /** A query: the model's query prompt, query priority. */
  generateQueryEmbedding(query: string): Promise<EmbeddingVector>
  /** Index work in calls of `batchSize` chunks (default 32), behind any query. */
  processBatch(chunks: TextChunk[], batchSize?: number, textType?: 'passage' | 'query'): Promise<EmbeddingVector[]>
  /** Cosine similarity; 0 when either vector is all zeros; throws on a dimension mismatch. */
  calculateSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number
  /** Seconds for `n` chunks at the throughput measured so far in this process; null before any request. */
  estimateProcessingTime(n: number): number | null
  /** Never throws. */
  healthCheck(): HealthCheck
  getLastHealthCheck(): HealthCheck | null
  /** Loads `name` (default: the current model). A different name waits for the current model's work, closes
   * it and loads the new one. */
  loadModel(name?: string): Promise<void>
  /** Resolves once unloaded; waits for queued and running work (never frees a model in use). */
  unloadModel(): Promise<void>
  /** Requests an unload without waiting; false when there is no service. */
  requestModelUnload(): boolean
  getStatus(): BackendState
  /** Resolves when the state is reached, driven by the service's events; rejects with code ERR_TIMEOUT. */
  waitForState(state: BackendState, timeoutMs?: number): Promise<void>
  isModelCached(name?: string): boolean
  downloadModel(name?: string): Promise<DownloadResult>
  setDownloadProgressCallback(callback: ((progress: DownloadProgress & { progress: number }) => void) | null): void
  getServiceStats(): ServiceStats
  /** Closes the service; resolves true when closed within `timeoutSeconds` (default 30), else false. */
  shutdown(timeoutSeconds?: number): Promise<boolean>
}
