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
  /** Not an array of strings, a non-string element, an unknown prompt, an option of the wrong type. */
  | 'ERR_INVALID_INPUT'
  /** No such model folder, or a hub id that is not in the cache while offline. */
  | 'ERR_MODEL_NOT_FOUND'
  /** Unsupported architecture, missing or corrupt model files. The message names the file. */
  | 'ERR_MODEL_INVALID'
  /** The requested device is not compiled into this build, or not present. The message says which. */
  | 'ERR_DEVICE_UNAVAILABLE'
  /** The service was closed; create a new one. */
  | 'ERR_CLOSED'
  /** A bug inside the addon (for example a caught Rust panic); the service stays usable. */
  | 'ERR_INTERNAL'

/** The shape of every error from this package. */
export interface EmbeddingError extends Error {
  code: ErrorCode
}

export interface EmbeddingServiceOptions {
  /**
   * A Hugging Face hub id ("org/name", e.g. "sentence-transformers/all-MiniLM-L6-v2") or a path to a local
   * sentence-transformers model folder. An existing folder wins over a hub id of the same spelling.
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
   * Where inference runs. 'auto' (default) picks the best compiled-in device that works: CUDA, then Metal,
   * then CPU. Naming a device that is not compiled in throws `ERR_DEVICE_UNAVAILABLE` here; one that is
   * compiled in but absent rejects the first `embed` with it.
   */
  device?: 'auto' | 'cpu' | 'cuda' | 'metal'
  /** CPU threads for inference (a whole number >= 1). Default: the number of physical cores. */
  threads?: number
  /** Most texts in one forward pass. Default 32. */
  maxBatchSize?: number
  /**
   * Most padded tokens (texts x longest text) in one forward pass. Default 16384. A single text longer than
   * this still runs, alone.
   */
  maxBatchTokens?: number
  /** For the addon's own tests only; never set in production. */
  testHooks?: {
    /** The worker panics while embedding any request that contains exactly this text. */
    panicOnText?: string
  }
}

export interface EmbedOptions {
  /**
   * The name of one of the model's prompts (from its `config_sentence_transformers.json`), prepended to every
   * text as sentence-transformers does. An unknown name rejects with `ERR_INVALID_INPUT`. Without it, the
   * model's `default_prompt_name` applies, if it has one.
   */
  prompt?: string
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
   * (normalised when the model ends with a Normalize module). The vector of a text does not depend on which
   * other texts share the call. Texts longer than the model's `max_seq_length` are truncated by tokens.
   * An empty array resolves to an empty array; an empty string still gets a vector.
   *
   * Never blocks the event loop: texts are queued to the worker thread and the promise settles from there.
   * Rejects with `ERR_INVALID_INPUT` (not an array of strings, unknown prompt), `ERR_MODEL_NOT_FOUND`,
   * `ERR_MODEL_INVALID`, `ERR_DEVICE_UNAVAILABLE` (while loading), `ERR_CLOSED` or `ERR_INTERNAL`. A rejected
   * call leaves the service usable for the next one.
   */
  embed(texts: string[], options?: EmbedOptions): Promise<Float32Array[]>

  /** The embedding size once the model has loaded, else `null`. */
  readonly dimensions: number | null

  /**
   * Rejects queued requests with `ERR_CLOSED` (a running one stops at its next batch with the same code),
   * frees the model, ends the worker thread, then resolves. Later calls reject with `ERR_CLOSED`. Calling it
   * again is harmless. A service that is garbage-collected without `close()` is closed the same way.
   */
  close(): Promise<void>
}

declare const binding: { EmbeddingService: typeof EmbeddingService }
export default binding
