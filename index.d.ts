/**
 * In-process sentence embeddings for Node.js.
 *
 * Inference runs on one Rust worker thread owned by each service (never on the JS thread, libuv's pool or a
 * tokio worker). Results match sentence-transformers to float precision (cosine >= 0.99999 per text on the
 * reference fixtures).
 *
 * Every rejection and every error thrown by this API is an `Error` with a stable `code`; see {@link ErrorCode}.
 */

/** The stable `code` of every error this package throws or rejects with. */
export type ErrorCode =
  /**
   * Not a string or an array of strings, a non-string element, an unknown prompt, `dimensions` above the
   * model's, an option of the wrong type.
   */
  | 'ERR_INVALID_INPUT'
  /**
   * No such model folder; a hub id that is not in the cache while offline; a hub (or `HF_ENDPOINT`) that
   * cannot be reached or answers 404/401/403 for the repository or a required file (the message names it); a
   * remote server (`endpoint`) that does not serve `model` (the message lists what it serves); in the daemon
   * adapter, a `gpu:`/`cpu:` id that is not in its curated catalog.
   */
  | 'ERR_MODEL_NOT_FOUND'
  /** Unsupported architecture, missing or corrupt model files. The message names the file. */
  | 'ERR_MODEL_INVALID'
  /** The requested device is not compiled into this build, or not present. The message says which. */
  | 'ERR_DEVICE_UNAVAILABLE'
  /** The service was closed; create a new one. */
  | 'ERR_CLOSED'
  /** The request's AbortSignal fired (the error's `name` is 'AbortError'). */
  | 'ERR_ABORTED'
  /** The worker made no progress for `stallTimeoutMs`; the request failed and a fresh worker took over. */
  | 'ERR_STALLED'
  /**
   * The remote server (`endpoint`) failed the request: unreachable after retries (connection refused or
   * reset, 429 or 503 answers), or an error answer, quoted with its HTTP status and the server's message.
   */
  | 'ERR_REMOTE'
  /**
   * A model download could not be completed safely, and nothing unverified was kept: the hub or mirror
   * answered with a commit or ETag that is not a commit id or digest (the message names the header), bytes
   * whose digest is not their ETag, more bytes than announced, a redirect to something other than http(s)
   * (or from https down to http), an HTTP error; the transfer broke off, or nothing arrived for
   * `downloadTimeoutMs`; or the cache could not be written. The next download resumes or restarts it.
   */
  | 'ERR_DOWNLOAD'
  /** A bug inside the addon (for example a caught Rust panic); the service stays usable. */
  | 'ERR_INTERNAL'
  /**
   * Thrown by `require`/`import` of this package: no native binary for this platform is installed (the
   * message names the package to install, or how to build from source).
   */
  | 'ERR_NATIVE_BINARY_MISSING'
  /** Thrown by `require`/`import`: an installed platform or CUDA package is of another version than this one. */
  | 'ERR_NATIVE_BINARY_VERSION'
  /** Thrown by `require`/`import`: the installed platform package's binary does not load here (the cause is quoted). */
  | 'ERR_NATIVE_BINARY_LOAD'
  /**
   * Thrown by `require`/`import` of `embedding-service/langchain`: its optional peer dependency
   * (`@langchain/core`) is not installed; the message says what to install.
   */
  | 'ERR_PEER_DEPENDENCY_MISSING'
  /**
   * Daemon adapter (`embedding-service/daemon`) only: a method that needs a model was called before
   * `initialize()`, or after `shutdown()`.
   */
  | 'ERR_NOT_INITIALIZED'
  /** Daemon adapter only: embedding through `PythonEmbeddingService` before any model was loaded. */
  | 'ERR_NO_MODEL'
  /**
   * Daemon adapter only: `waitForState()` saw the service enter its `error` state (the message quotes the load
   * error), or a load failed with an error that carried no code of its own.
   */
  | 'ERR_MODEL_LOAD'
  /** Daemon adapter only: `waitForState()` did not see the state within its `timeoutMs`. */
  | 'ERR_TIMEOUT'

/** The shape of every error from this package. */
export interface EmbeddingError extends Error {
  code: ErrorCode
}

export interface EmbeddingServiceOptions {
  /**
   * A Hugging Face hub id ("org/name", e.g. "sentence-transformers/all-MiniLM-L6-v2") or a path to a local
   * sentence-transformers model folder. An existing folder wins over a hub id of the same spelling. A folder
   * with no `model.safetensors` may hold an ONNX export of a BERT-family encoder as transformers.js downloads
   * it (`onnx/model_quantized.onnx` or `onnx/model.onnx` beside config.json and tokenizer.json): its weights
   * are read from the ONNX file (dequantized, then quantized again for `dtype: 'int8'`), on the CPU only.
   */
  model: string
  /** Branch, tag or commit of a hub model. Default "main". */
  revision?: string
  /** Hub cache folder. Default: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir?: string
  /**
   * Never touch the network: a hub id must already be in the cache. Default: true when `HF_HUB_OFFLINE=1`,
   * else false (a hub model missing from the cache is then downloaded into it).
   */
  offline?: boolean
  /**
   * A model download (on the first load of a hub model not in the cache) that receives nothing for this long
   * fails the load with `ERR_DOWNLOAD`; a slow download that keeps receiving is never failed. Default:
   * `HF_HUB_DOWNLOAD_TIMEOUT` seconds when set, else 30000. `close()` and the watchdog (`stallTimeoutMs`) end a
   * download at once, whatever this is.
   */
  downloadTimeoutMs?: number
  /**
   * Where inference runs. 'auto' (default) picks the best compiled-in device that works: CUDA, then Metal,
   * then CPU. When it passes over a compiled-in GPU (a CUDA build on a machine without the NVIDIA driver,
   * cuBLAS or a GPU), `status().device` is 'cpu' and the `loading_model` event of stage 2 says why in its
   * `details` ("…; running on the CPU: no usable CUDA device: this machine lacks the NVIDIA driver
   * (libcuda.so.1)…"). Naming a device that is not compiled in throws `ERR_DEVICE_UNAVAILABLE` here; one
   * that is compiled in but absent rejects each `embed` (and `load`) with it, naming what is missing, and the
   * service stays usable for `close()`. A CUDA build opens the driver, cuBLAS and cuRAND at run time
   * (CUDA 13 libraries, driver R580 or newer), so it loads on any Linux x64 machine.
   */
  device?: 'auto' | 'cpu' | 'cuda' | 'metal'
  /**
   * The number format the model computes in. Default: per device, 'f32' on CPU (matches sentence-transformers
   * to float precision), 'bf16' on CUDA, 'f16' on Metal. On CPU, 'bf16' rounds the weights to bfloat16 (sums
   * stay f32; cosine >= 0.999 to f32), halving the weights' memory. With AVX512_BF16 (AMD Zen 4+, Intel
   * Sapphire Rapids+) the products run on bf16 instructions: 1.3 to 1.9x the f32 throughput and about half a
   * short query's latency. On other CPUs (AVX2, AVX-512 without BF16, ARM64) the weights are widened to f32 in
   * the kernel: on AVX2 (Zen 3) 0.96x the f32 throughput, a 13-token query 8% slower and a 3-token one 6%
   * faster at 1 thread; what it always gives is half the weights' memory. Only where no SIMD level
   * runs (`EMBEDDING_SERVICE_SIMD=scalar`, or an x86 CPU without AVX2+FMA) does the constructor of a CPU-only
   * build (or with device 'cpu') throw `ERR_DEVICE_UNAVAILABLE`. 'f16' is for GPUs (`ERR_INVALID_INPUT` on CPU, at load).
   *
   * 'int8' (CPU, every family): the linear layers' weights quantized to int8 at load (a scale per output
   * channel: a quarter of f32's memory), each token's activations quantized as they enter a product, sums
   * exact in i32 on the CPU's dot-product instructions (AVX-512 VNNI, AVX-VNNI, AVX2, NEON with or without the
   * dot-product extension, scalar; every one gives the same sums). The few input channels whose activations
   * run far larger than the rest are found at load by running ten built-in texts through the model, and
   * multiplied in f32. On all-MiniLM-L6-v2: minimum cosine 0.9973 and mean 0.9993 to sentence-transformers over
   * the reference texts; 1.9 to 2.3x the f32 throughput with AVX-512 VNNI (Zen 4), about 1.0x on AVX2 alone
   * (see the README). Embeddings, attention, layer norms and pooling stay f32. With a GPU `device` it throws
   * `ERR_INVALID_INPUT` (with 'auto' it runs on the CPU).
   *
   * `status().dtype` says what was used, and `status().simd` the CPU kernels.
   */
  dtype?: 'f32' | 'bf16' | 'f16' | 'int8'
  /** CPU threads for inference (a whole number >= 1). Default: the number of physical cores. */
  threads?: number
  /** Most texts in one forward pass. Default 32. */
  maxBatchSize?: number
  /**
   * Most padded tokens (texts x longest text) in one forward pass. Default 4096. A single text longer than
   * this still runs, alone. A query waits for at most one layer product of such a batch (CPU, every family).
   */
  maxBatchTokens?: number
  /**
   * Unload the model after this long with nothing queued or running. Default 300000 (5 minutes); 0 unloads
   * as soon as the service is idle; a negative value never unloads on its own. The model is never unloaded
   * while work is queued or running: the decision and the switch to 'unloading' happen under one lock, and a
   * request arriving during an unload waits for it and then reloads the model.
   */
  keepAliveMs?: number
  /** No progress this long while work is active: a 'stall_warning' event and a logger warning. Default 60000. */
  stallWarningMs?: number
  /**
   * No progress this long while work is active: every queued and running request rejects with `ERR_STALLED`,
   * a 'stalled' event is sent, the stuck worker is abandoned and a fresh one serves the next request
   * (reloading the model). Work that keeps reporting progress is never failed, however long it runs.
   * Default 300000.
   */
  stallTimeoutMs?: number
  /**
   * Embed through a remote OpenAI-compatible embedding server instead of loading the model here: the API's
   * base URL, e.g. 'http://gpu-box:7997/v1' (requests go to `${endpoint}/embeddings`, `{ model, input }` in,
   * `data[].embedding` out: text-embeddings-inference, infinity, vLLM, Ollama). `model` is then the name the
   * server serves. Everything else stays: `embed`, `embedDetailed`, `load`/`unload`/`close`/`status`, the
   * query lane first, progress events, AbortSignal, the stall watchdog, coded errors.
   * - `load()` (or the first request) asks the server for one embedding: it learns the dimensions, and a
   *   server that does not serve `model` rejects with `ERR_MODEL_NOT_FOUND`, an unreachable one with
   *   `ERR_REMOTE`. `status().device` is 'remote <endpoint>'; unloading closes the connections.
   * - Texts are batched by `maxBatchSize` and `maxBatchTokens`, with tokens estimated as characters / 4
   *   (the tokenizer is on the server); `embedDetailed`'s `tokenCounts` are those estimates.
   * - Up to `remoteConcurrency` index batches are in flight at once, one per connection. A query does not wait
   *   for them: it goes out at once on a connection of its own, and while queries arrive index batches shrink.
   * - Refused or reset connections and 429/503 answers are retried, each batch whole, up to 5 times within
   *   10 s (honouring `Retry-After`); no text is dropped or counted twice. Connect timeouts, TLS failures
   *   (never retried) and other failures reject with `ERR_REMOTE`; a 404 naming the model with
   *   `ERR_MODEL_NOT_FOUND`.
   * - The server is not trusted: a value that is not finite in f32 (1e39 is valid JSON) fails the request with
   *   `ERR_REMOTE` naming the text; redirects are not followed (`ERR_REMOTE`: vectors only ever come from the
   *   request that carried the texts); an answer larger than its texts' vectors can take is refused.
   * - Credentials in the URL (`user:password@`) are refused with `ERR_INVALID_INPUT`: use `apiKey`.
   * - Texts are sent whole: truncating long ones is the server's (infinity truncates; text-embeddings-inference
   *   needs `--auto-truncate`, and vLLM rejects them, failing the request with `ERR_REMOTE`).
   * - A request the server leaves unanswered is a stall: reported at `stallWarningMs`, failed with
   *   `ERR_STALLED` at `stallTimeoutMs`; the next request uses fresh connections.
   * - An aborted request stops waiting at once (within 20 ms); a batch already sent finishes on the server and
   *   its answer is discarded.
   * - Prompts (`prompt`) are prepended here, since the API has none: the built-in ones of known models (E5).
   * `device` is ignored and `dtype` refused with an endpoint.
   */
  endpoint?: string
  /**
   * Sent as `Authorization: Bearer <apiKey>` with an `endpoint`. Must be printable ASCII without spaces (a
   * valid header value), else the constructor throws `ERR_INVALID_INPUT` without quoting it. It never appears
   * in an error, event, log line or `status()`: a server message that quotes it has it replaced by
   * `[apiKey redacted]`.
   */
  apiKey?: string
  /** Requests in flight to the `endpoint` at once. Default 2. */
  remoteConcurrency?: number
  /** Receives every event of this service (loading, every request's progress, unloading, stalls). */
  onProgress?: (event: ProgressEvent) => void
  /**
   * Receives the service's log lines. Default: warnings and errors to stderr; the addon never writes to
   * stdout. An exception thrown by `onProgress` callbacks is reported here as an 'error'.
   */
  logger?: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void
}

/** What the service is doing, as reported by progress events. */
export type ProgressStatus =
  | 'downloading_model'
  | 'loading_model'
  | 'extracting_candidates'
  | 'processing_embeddings'
  | 'processing_batch'
  | 'cleaning_memory'
  | 'completed'
  | 'unloading_model'
  | 'idle'
  | 'stall_warning'
  | 'stalled'

/**
 * A progress event. A request reports `processing_embeddings` 0/N, then per batch `processing_batch` b/B
 * (details "Batch b/B") and `processing_embeddings` done/N, then `completed` N/N. Loading reports
 * `loading_model` stages 0/3 to 3/3 (the last one's details name the dtype, and on the CPU the kernels: "model
 * loaded (int8, avx512-vnni kernels)"), with `downloading_model` events (bytes `current` of `total`, the file name
 * in `details`, at most every 100 ms per file) when a hub model is not cached yet; unloading reports `unloading_model` then `idle` ("model unloaded").
 * Events arrive in order, from a queue that never blocks the worker. If JS falls far behind, routine progress
 * (`processing_batch`, `processing_embeddings`, `extracting_candidates`, `downloading_model` per file) is
 * coalesced to each request's newest and capped with the log lines at 1,024; milestones (`loading_model`,
 * `completed`, `stall_warning`, `stalled`, `unloading_model`, `idle`) are never dropped. A request's events are
 * delivered before its promise settles.
 */
export interface ProgressEvent {
  type: 'progress'
  status: ProgressStatus
  /** Texts done (requests), stage (loading), batch number (processing_batch); 0 where no count applies. */
  current: number
  total: number
  /** Milliseconds since the epoch, taken when the worker made the event; never goes backwards. */
  timestamp: number
  details: string
  /** E.g. "processing_embeddings: 200/1000". */
  message: string
  /** The request the event belongs to, where it belongs to one. */
  requestId?: number
  /** Estimated time left for the request (processing_embeddings after the first batch). */
  etaMs?: number
  textsPerSecond?: number
}

export type ServiceState = 'unloaded' | 'loading' | 'ready' | 'working' | 'unloading' | 'closed'

export interface ServiceStatus {
  state: ServiceState
  modelLoaded: boolean
  /**
   * "cpu", "cuda:0 (NVIDIA H200)" (the GPU's name from the driver), "metal:0", or "remote <endpoint>" while a
   * model is loaded; null before the first load and after an unload.
   */
  device: string | null
  /** The number format the loaded model computes in ('f32', 'bf16', 'f16', 'int8'); null when none is loaded or the model is remote. */
  dtype: 'f32' | 'bf16' | 'f16' | 'int8' | null
  /**
   * The CPU kernels a model on the CPU runs on: the SIMD level ('avx512', 'avx2', 'neon', 'scalar'), or
   * 'avx512-bf16' for bf16 on AVX512_BF16; for 'int8' the dot-product kernel ('avx512-vnni', 'avx-vnni',
   * 'avx2', 'neon-dotprod', 'neon', 'scalar'). Null when none is loaded, on a GPU or a remote server.
   */
  simd: string | null
  /**
   * The loaded model's architecture, as its config.json's `model_type` names it: 'bert', 'xlm-roberta',
   * 'roberta', 'camembert', 'modernbert', 'qwen3' or 'gemma3_text' (EmbeddingGemma). Null when none is loaded
   * or the model is remote.
   */
  family: string | null
  /** The prompt names the loaded model accepts (for `embed`'s `prompt`); empty until it has loaded. */
  prompts: string[]
  /** The embedding size, known from the first load on (kept after an unload, as `prompts` are); null before. */
  dimensions: number | null
  /** Requests waiting to start, per priority. */
  queued: { query: number; index: number }
  /** Requests started and not yet settled. */
  activeRequests: number
  /** When the worker last reported progress (ms since the epoch), or null before any. */
  lastProgressAt: number | null
  loadCount: number
  unloadCount: number
  /** Where memory is, so a long-running daemon can see it. */
  memory: ServiceMemory
}

export interface ServiceMemory {
  /** This process's resident memory now (`process.memoryUsage.rss()`), everything included. */
  residentBytes: number
  /**
   * The loaded model's weights in the process's own memory (on a GPU: the device's); 0 when unloaded. On CPU
   * (every family) these are the packed layers; the candle paths hold every tensor at the compute dtype.
   */
  weightsBytes: number
  /**
   * Weights read in place from the memory-mapped `model.safetensors` (on CPU, the word-embedding table): file
   * pages, resident only as far as they are read (the rows of tokens seen) and the kernel's to drop; 0 when
   * unloaded.
   */
  mappedWeightsBytes: number
  /**
   * Result vectors of this service still alive: each request's vectors share one block of memory, returned to
   * the OS when the last of its `Float32Array`s is garbage-collected (keep a copy, e.g. `vector.slice()`, of a
   * vector you hold long, or the whole request's block stays). Includes requests still running.
   */
  resultBytes: number
}

export interface EmbedOptions {
  /**
   * What the texts are, as retrieval frameworks name them: 'query' (search queries) runs on the query lane
   * with the model's query prompt, 'document' (what is indexed) on the index lane with its document prompt;
   * the prompts are those `embedQuery` and `embedDocuments` use. An explicit `priority` or `prompt` wins.
   * Default: neither (the index lane, the model's default prompt).
   */
  inputType?: 'query' | 'document'
  /**
   * 'query' requests go ahead of 'index' requests: waiting queries run first, and a running index request
   * yields to them inside its batch. On CPU, every family (BERT, MiniLM, XLM-R, E5, bge, ModernBERT, Qwen3, Gemma 3) pauses the
   * batch between the products of each layer (five per layer), run the waiting queries on their own buffers, and
   * resume it where it stopped, with the same bits as if it had never paused: a query waits for at most one
   * product of one layer of the batch in flight (or one 64-text slice of an index job's tokenisation). GPU devices yield at batch boundaries, and run index batches a quarter of their size while queries keep arriving (one in the last 2 s). At most 8 query
   * batches run at one pause, and after 8 in a row between batches index work runs, so queries cannot starve
   * indexing. Default 'index'.
   */
  priority?: 'query' | 'index'
  /**
   * Aborting rejects this request with `name: 'AbortError'`, `code: 'ERR_ABORTED'`: at once if it is still
   * queued, else before its next batch. An already-aborted signal rejects at once. Other requests are
   * unaffected.
   */
  signal?: AbortSignal
  /** Receives this request's events only. */
  onProgress?: (event: ProgressEvent) => void
  /**
   * The name of one of the model's prompts (from its `config_sentence_transformers.json`), prepended to every
   * text as sentence-transformers does. An unknown name rejects with `ERR_INVALID_INPUT`. Without it, the
   * model's `default_prompt_name` applies, if it has one.
   */
  prompt?: string
  /**
   * L2-normalise each vector (unit length, so a dot product is the cosine). Default: what the model's
   * sentence-transformers pipeline does (true when it ends with a `Normalize` module, as all-MiniLM-L6-v2,
   * E5 and bge do). `false` gives the pooled vectors before that module. With an `endpoint`, the server's
   * vectors are taken as they come: `true` normalises them here, `false` cannot undo a server's normalisation.
   */
  normalize?: boolean
  /**
   * Keep only the first `dimensions` values of each vector (Matryoshka truncation, as OpenAI's `dimensions`
   * and sentence-transformers' `truncate_dim`), then renormalise unless `normalize` is false. A whole number
   * from 1 to the model's size; more rejects with `ERR_INVALID_INPUT` (known once the model has loaded).
   * Only models trained for it (nomic-embed, mxbai-embed, OpenAI's text-embedding-3) keep their quality when
   * cut short.
   */
  dimensions?: number
}

/** Options of `embedQuery` and `embedDocuments`: as `embed`'s, less the lane and input type each one sets. */
export type EmbedRoleOptions = Omit<EmbedOptions, 'priority' | 'inputType'>

/** Options of `embedBatches`: as `embed`'s, with the batch size. */
export interface EmbedBatchesOptions extends EmbedOptions {
  /** Texts per yielded batch (each is one request). Default 256. */
  batchSize?: number
}

/** One batch of `embedBatches`: consecutive texts of the input, with their vectors. */
export interface EmbeddingBatch {
  /** The position of `texts[0]` in the whole input. */
  start: number
  texts: string[]
  /** One vector per text of `texts`, in order. */
  vectors: Float32Array[]
  /** Each text's tokens after truncation, as `embedDetailed` counts them. */
  tokenCounts: number[]
}

/** One key phrase: a candidate n-gram and its cosine similarity to the document, rounded to 4 decimals. */
export interface Keyphrase {
  text: string
  score: number
}

/** KeyBERT's `extract_keywords` arguments; the defaults are the indexing daemon's. */
export interface KeyphraseOptions {
  /** Candidate n-gram lengths, inclusive, `1 <= min <= max <= 8`. Default `[1, 3]`. */
  ngramRange?: [number, number]
  /**
   * Words never in a candidate, dropped before n-grams are formed (as scikit-learn's CountVectorizer does, so
   * an n-gram can join words a stop word separated): 'english' (scikit-learn's list, the default), `null` for
   * none, or your own list (compared lowercased).
   */
  stopWords?: 'english' | null | string[]
  /** Phrases per document, at most. Default 10. */
  topN?: number
  /** Maximal Marginal Relevance (default true); false ranks by similarity to the document alone. */
  useMmr?: boolean
  /** MMR's trade-off in [0, 1]: 0 ranks by similarity alone, higher prefers phrases unlike those chosen. Default 0.5. */
  diversity?: number
  /**
   * Distinct candidates kept per document, a whole number of at least 1. Default 10,000: KeyBERT's own MMR
   * compares every candidate with every other (a float32 matrix of candidates squared, 0.4 GB at 10,000; it runs
   * out of memory on the 260,000 of a 5 MB document), while a 2,000-character chunk has a few hundred, so
   * results are KeyBERT's on such text. A document with more keeps the first ones met in reading order (by the
   * word each ends on), its phrases are ranked among those, and the service logs a warning naming it.
   */
  maxCandidates?: number
  /** As in `embed`; default 'index', so key phrases for indexing wait behind queries. */
  priority?: 'query' | 'index'
  signal?: AbortSignal
  /**
   * This request's events: `extracting_candidates` (bytes of text read, of all), then the embedding's, whose
   * `total` counts the documents with candidates plus their distinct candidates.
   */
  onProgress?: (event: ProgressEvent) => void
}

export declare class EmbeddingService {
  /**
   * Creates a service and its worker thread. Nothing is loaded yet: the model loads on the first `embed`.
   * Throws `ERR_INVALID_INPUT` for malformed options and `ERR_DEVICE_UNAVAILABLE` for a device that is not
   * compiled in. Model problems surface as rejections of `embed`, so a bad model never throws here.
   */
  constructor(options: EmbeddingServiceOptions)

  /**
   * Embeds texts; resolves to one `Float32Array` per text, in input order, each of length `dimensions`
   * (normalised when the model ends with a Normalize module; see `normalize` and `dimensions` in the
   * options). A single string resolves to its one vector. The vector of a text does not depend on which
   * other texts share the call. Texts longer than the model's `max_seq_length` are truncated by tokens.
   * An empty array resolves to an empty array; an empty string still gets a vector. There is no limit on
   * the number of texts (100,000 in one call are tested); memory is the texts plus the results.
   *
   * The call's vectors are views of one buffer, mapped for the call and returned to the OS when the last of
   * them is garbage-collected (so memory comes back after big jobs, see `status().memory`); `slice()` a
   * vector you keep for long, or it keeps the whole call's buffer. For one vector's own bytes (to store it,
   * say), take its view: `Buffer.from(v.buffer, v.byteOffset, v.byteLength)`; `Buffer.from(v.buffer)` would
   * be the whole call's.
   *
   * Never blocks the event loop: texts are queued to the worker thread and the promise settles from there.
   * Loads the model first if it is not loaded. Rejects with `ERR_INVALID_INPUT` (not an array of strings,
   * unknown prompt or priority, a `signal` that is not an AbortSignal), `ERR_MODEL_NOT_FOUND`,
   * `ERR_MODEL_INVALID`, `ERR_DEVICE_UNAVAILABLE` (while loading), `ERR_ABORTED`, `ERR_STALLED`, `ERR_CLOSED`
   * or `ERR_INTERNAL`. A rejected call leaves the service usable for the next one.
   */
  embed(text: string, options?: EmbedOptions): Promise<Float32Array>
  embed(texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>

  /**
   * `embed`, also giving each text's token count after truncation (special tokens and any prompt included),
   * the number sentence-transformers' tokenizer gives. A single string counts as an array of one.
   */
  embedDetailed(
    texts: string | readonly string[],
    options?: EmbedOptions,
  ): Promise<{ vectors: Float32Array[]; tokenCounts: number[] }>

  /**
   * Embeds a search query: on the query lane (ahead of indexing, as `priority: 'query'`), with the model's
   * query prompt as sentence-transformers' `encode_query` picks it ("query" where the model has that prompt,
   * such as E5's "query: "; else its default prompt). An explicit `prompt` wins.
   */
  embedQuery(text: string, options?: EmbedRoleOptions): Promise<Float32Array>

  /**
   * Embeds documents for an index: on the index lane, with the model's document prompt as
   * `encode_document` picks it (the first of "document", "passage", "corpus" the model has, such as E5's
   * "passage: "; else its default prompt). An explicit `prompt` wins.
   */
  embedDocuments(texts: readonly string[], options?: EmbedRoleOptions): Promise<Float32Array[]>

  /**
   * A large job as it goes: the texts (an array, or any iterable or async iterable of strings, read as
   * needed) in batches of `batchSize`, each embedded as one request and yielded in input order. One batch is
   * computed ahead while the loop body handles the last; no more than that is read from `texts` or queued
   * (back-pressure). `signal` aborts the batch in flight and the loop throws the `AbortError`; leaving the
   * loop early (`break`, `return`, an exception) aborts it too, and closes `texts`' iterator. A failed batch
   * (a non-string text, say) throws from the loop; the batches before it were yielded. Each batch is its own
   * request, with its own events (`onProgress` receives all of them).
   */
  embedBatches(
    texts: Iterable<string> | AsyncIterable<string>,
    options?: EmbedBatchesOptions,
  ): AsyncGenerator<EmbeddingBatch, void, undefined>

  /**
   * Key phrases of each document, as KeyBERT's `extract_keywords` computes them with this model: candidates
   * are the document's distinct word n-grams, made as scikit-learn's CountVectorizer makes them (Python's
   * `str.lower()`, then runs of 2+ characters of Python's `\w`: letters and numbers of any script and `_`, not
   * combining marks; stop words removed before n-grams are formed); the document and every distinct candidate
   * of the call are embedded in one request (no prompt, at `priority`), and each document's candidates are
   * ranked against it by cosine similarity, with MMR unless `useMmr` is false. Resolves to one list per
   * document, highest score first; a document with no candidate (empty, or only stop words) gets `[]`. A
   * single string resolves to its one list, as KeyBERT's `extract_keywords` does for one document.
   *
   * The candidates are extracted on the worker thread, 64 KB of text per step, with `extracting_candidates`
   * progress (bytes read of all), abort and the watchdog as for embedding; the calling thread only hands the
   * texts over, so even a 5 MB document does not hold the event loop. Cost grows with the candidates (about 3
   * per word for `[1, 3]`); `maxCandidates` bounds it per document. Rejects as `embed` does; bad options
   * reject with `ERR_INVALID_INPUT`.
   */
  extractKeyphrases(text: string, options?: KeyphraseOptions): Promise<Keyphrase[]>
  extractKeyphrases(texts: readonly string[], options?: KeyphraseOptions): Promise<Keyphrase[][]>

  /** The `model` option the service was made with (a hub id or folder path), as given. */
  readonly model: string

  /** The model's embedding size once it has loaded, else `null` (a call's `dimensions` may ask for fewer). */
  readonly dimensions: number | null

  /** Loads the model now (reporting `loading_model` events); resolves when it is ready. */
  load(): Promise<void>

  /**
   * Unloads the model once nothing is queued or running (it waits for running and queued work; it never
   * frees a model in use), then resolves. The next `embed` reloads it.
   */
  unload(): Promise<void>

  /** A snapshot of the service's state. */
  status(): ServiceStatus

  /**
   * Rejects queued and running requests with `ERR_CLOSED` at once, frees the model and ends the worker thread
   * (after the batch in progress, if any), then resolves. The keep-alive timer and the watchdog never keep
   * Node alive. Later calls reject with `ERR_CLOSED`. Calling it
   * again is harmless. A service that is garbage-collected without `close()` is closed the same way.
   */
  close(): Promise<void>

  /** `close()`, for `await using service = new EmbeddingService(...)`. */
  [Symbol.asyncDispose](): Promise<void>

  /**
   * Whether `model` loads without the network: a folder with a `config.json`, or a hub id whose snapshot in
   * the hub cache (`cacheDir`, else `HF_HUB_CACHE` / `HF_HOME/hub` / `~/.cache/huggingface/hub`) has
   * `config.json`, `tokenizer.json` and `model.safetensors` for `revision` (default 'main'). A snapshot that
   * an interrupted download left without its weights is not cached. Reads the disk only; loads nothing.
   * Throws `ERR_INVALID_INPUT` when `model` is not a string.
   */
  static isModelCached(model: string, options?: ModelLocation): boolean

  /**
   * Downloads a hub model into the hub cache (from `HF_ENDPOINT` when set, else huggingface.co), resolving to
   * its snapshot folder; resolves at once, without a request, when it is already cached. The layout is
   * `huggingface_hub`'s (blobs named by digest, snapshot links, refs), shared with the Python tools. All files
   * come from one commit. Whatever answers is checked before it is used: the commit and each file's ETag must
   * be a commit id and a SHA-256 or git SHA-1 digest before they name anything on disk; each file's bytes are
   * hashed as they arrive and must match that digest before the file is moved into place; redirects are
   * followed to http(s) only, and `HF_TOKEN` (or the token file) goes to the endpoint's own origin only.
   * Each file is written to a partial file under an OS lock, the weights last, so an interrupted download
   * never leaves a model that counts as cached and the next call resumes it (or restarts a partial file whose
   * bytes turn out not to be the file's). Rejects with `ERR_MODEL_NOT_FOUND` when the hub lacks a required
   * file (named) or cannot be reached, or when `offline` and not cached; with `ERR_DOWNLOAD` when an answer
   * cannot be trusted or used or nothing arrives for `downloadTimeoutMs`; with `ERR_ABORTED` (name
   * 'AbortError') when `signal` fires, which ends the transfer at once, mid-file or waiting on a silent server.
   */
  static downloadModel(model: string, options?: DownloadOptions): Promise<string>
}

/** Where to look for a hub model. */
export interface ModelLocation {
  /** Hub cache folder. Default: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir?: string
  /** Branch, tag or commit id. Default 'main'. */
  revision?: string
  /** Never use the network. Default: true when `HF_HUB_OFFLINE` is 1/true/yes/on. */
  offline?: boolean
}

/** One file's download progress, at most every 100 ms per file, plus its first and last bytes. */
export interface DownloadProgress {
  status: 'downloading_model'
  /** The file's path in the repository, such as 'model.safetensors' or '1_Pooling/config.json'. */
  file: string
  /** Bytes of this file received so far. */
  current: number
  /** This file's size in bytes. */
  total: number
}

export interface DownloadOptions extends ModelLocation {
  /**
   * Receiving nothing for this long fails the download with `ERR_DOWNLOAD`. Default: `HF_HUB_DOWNLOAD_TIMEOUT`
   * seconds when set, else 30000.
   */
  downloadTimeoutMs?: number
  /** Called on the JS thread; an exception it throws is logged and ignored. */
  onProgress?: (progress: DownloadProgress) => void
  signal?: AbortSignal
}

/**
 * The module itself, also as its `default` export (`require('embedding-service').default` is the same object),
 * so default imports work under every module setting.
 */
declare const embeddingService: { EmbeddingService: typeof EmbeddingService }
export default embeddingService
