//! In-process sentence embeddings for Node.js.
//!
//! The core (everything but `binding`) is plain Rust with no napi in it, tested with `cargo test`:
//! `service` is the public face, `worker` the thread that owns the model, `queue` the channel between them,
//! `batching` the batch planner, `model` the model folder, tokenizer, encoder and pooling.

pub mod batching;
pub mod device;
pub mod error;
pub mod model;
pub mod queue;
pub mod service;
pub mod worker;

mod binding;

pub use error::{Error, ErrorCode, Result};
pub use service::{EmbedOptions, Service, ServiceOptions};
pub use worker::{Embeddings, FaultInjection};
