//! In-process sentence embeddings for Node.js.
//!
//! The core (everything but `binding`) is plain Rust with no napi in it, tested with `cargo test`. From the
//! top: `service` is the public face; `request` what one request asks for (prompt, vector shape); `watchdog` the progress-based stall detector; `worker` the thread that
//! owns the model, a loop over the duties `lifecycle` gives it; `lifecycle` the state machine under one lock,
//! every transition one of its methods; `backend` what the worker runs on (the model here, or a remote server
//! through `remote`); `keyphrases` KeyBERT's key-phrase extraction; `scheduler` the two priority lanes;
//! `batching` the batch planner; `model` the model folder, tokenizer, encoder and pooling; `hub` model downloads into the hub cache; `kernels` the CPU
//! math at each SIMD level; `progress` the events and their bounded mailbox; `results` the result blocks;
//! `memory` handing freed pages back to the OS. A module only uses modules below it.

pub mod backend;
pub mod batching;
pub mod device;
pub mod error;
pub mod hub;
pub mod keyphrases;
pub mod lifecycle;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod progress;
pub mod remote;
pub mod request;
pub mod results;
pub mod scheduler;
pub mod service;

pub mod watchdog;
pub mod worker;

#[cfg_attr(test, allow(dead_code))] // its functions are called from JS only
mod binding;

pub use device::DeviceChoice;
pub use error::{Error, ErrorCode, Result};
pub use keyphrases::{Keyphrase, KeyphraseOptions, Ranking, StopWords};
pub use model::Dtype;
pub use lifecycle::{Embeddings, ServiceStatus, State};
pub use scheduler::Priority;
pub use service::{EmbedOptions, InputType, Output, PromptChoice, Service, ServiceOptions};
pub use worker::FaultInjection;

/// Candle allocates a fresh buffer for every intermediate tensor. With the system allocator the large ones
/// are mmap'd and unmapped each time, so every forward pass pays page faults on tens of megabytes; mimalloc
/// keeps and reuses them. Rust allocations only: Node's own heap is untouched.
///
/// mimalloc v2 (the `v2` feature), with local-dynamic TLS because the addon is a dlopen'd library: v3 crashed
/// the process when the thread that first loaded the addon (a Node worker) had exited and another thread
/// loaded it (`__test__/threads.test.mjs`).
///
/// The `system-allocator` feature turns it off, for AddressSanitizer (`npm run sanitize`): ASan watches the
/// system allocator, and would not see inside mimalloc's pages.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

