//! In-process sentence embeddings for Node.js.
//!
//! The core (everything but `binding`) is plain Rust with no napi in it, tested with `cargo test`:
//! `service` is the public face; `lifecycle` the state machine under one lock; `scheduler` the two priority
//! lanes; `worker` the thread that owns the model; `watchdog` the progress-based stall detector; `progress` the
//! events and their bounded mailbox; `batching` the batch planner; `model` the model folder, tokenizer, encoder
//! and pooling; `kernels` the CPU math at each SIMD level; `keyphrases` KeyBERT's key-phrase extraction on top of `service`.

pub mod backend;
pub mod batching;
pub mod device;
pub mod error;
pub mod keyphrases;
pub mod lifecycle;
pub mod kernels;
pub mod model;
pub mod progress;
pub mod remote;
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
pub use service::{EmbedOptions, Service, ServiceOptions};
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

/// Hands the calling thread's free allocator pages back to the OS (the system allocator does its own).
pub(crate) fn release_free_memory() {
    // SAFETY: mi_collect only walks the calling thread's heap and the process's abandoned pages.
    #[cfg(not(feature = "system-allocator"))]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
