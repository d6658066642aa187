//! What the worker runs a request's batches on: the model in this process, or a remote embedding server.
//! Everything above it (lanes, lifecycle, watchdog, progress) is the same for both.

use crate::error::Result;
use crate::model::{cpu_bert, Embedder, Tokens, WeightMemory};
use crate::remote::RemoteEmbedder;

pub enum Backend {
    Local(Embedder),
    Remote(RemoteEmbedder),
}

/// One text made ready for its backend: token ids for the local model; for a server, the text to send (prompt
/// prepended) with its estimated tokens.
#[derive(Debug, Clone)]
pub enum Prepared {
    Tokens(Tokens),
    Text { text: String, estimated_tokens: usize },
}

impl Prepared {
    /// Tokens, special tokens included: counted for the local model, estimated for a server.
    pub fn len(&self) -> usize {
        match self {
            Prepared::Tokens(t) => t.len(),
            Prepared::Text { estimated_tokens, .. } => *estimated_tokens,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Backend {
    pub fn dimensions(&self) -> usize {
        match self {
            Backend::Local(e) => e.dimensions(),
            Backend::Remote(r) => r.dimensions(),
        }
    }

    pub fn weight_memory(&self) -> WeightMemory {
        match self {
            Backend::Local(e) => e.weight_memory(),
            Backend::Remote(_) => WeightMemory::default(),
        }
    }

    pub fn prompt_names(&self) -> Vec<String> {
        match self {
            Backend::Local(e) => e.prompt_names(),
            Backend::Remote(r) => r.prompt_names(),
        }
    }

    /// Whether index work can pause inside a batch for a waiting query (the fast CPU encoder's checkpoints).
    pub fn has_checkpoints(&self) -> bool {
        matches!(self, Backend::Local(e) if e.has_checkpoints())
    }

    /// Tokens the backend works through in `time`, where that decides how long a query waits behind a batch
    /// in flight (a server, measured from its answers); `None` locally, where a batch pauses for queries.
    pub fn tokens_within(&self, time: std::time::Duration) -> Option<usize> {
        match self {
            Backend::Local(_) => None,
            Backend::Remote(r) => r.tokens_per_second().map(|rate| (rate * time.as_secs_f64()) as usize),
        }
    }

    /// Batches one step runs: one locally; one per connection for a server, sent at once.
    pub fn batches_per_step(&self) -> usize {
        match self {
            Backend::Local(_) => 1,
            Backend::Remote(r) => r.concurrency(),
        }
    }

    pub fn prepare(&self, texts: &[String], prompt: Option<&str>) -> Result<Vec<Prepared>> {
        match self {
            Backend::Local(e) => Ok(e.tokenize(texts, prompt)?.into_iter().map(Prepared::Tokens).collect()),
            Backend::Remote(r) => Ok(r
                .prepare(texts, prompt)?
                .into_iter()
                .map(|(text, estimated_tokens)| Prepared::Text { text, estimated_tokens })
                .collect()),
        }
    }

    /// Embeds one step's batches, returning their vectors batch by batch. Locally `checkpoint` may run inside
    /// the forward pass; for a server, `wait` runs after each answer (`true`) and while waiting (`false`).
    /// `positions` are each batch's texts' places in the request, for messages about a text.
    pub fn embed(
        &self,
        batches: &[Vec<&Prepared>],
        positions: &[Vec<usize>],
        checkpoint: Option<cpu_bert::Checkpoint>,
        wait: impl FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        match self {
            Backend::Local(e) => {
                let mut checkpoint = checkpoint;
                batches
                    .iter()
                    .map(|batch| {
                        let tokens: Vec<&Tokens> = batch.iter().map(|p| local_tokens(p)).collect();
                        match checkpoint.take() {
                            Some(c) => e.embed_tokens_with(&tokens, Some(c)),
                            None => e.embed_tokens(&tokens),
                        }
                    })
                    .collect()
            }
            Backend::Remote(r) => {
                let texts = batches
                    .iter()
                    .map(|batch| batch.iter().map(|p| remote_text(p).to_string()).collect())
                    .collect();
                r.embed_batches(texts, positions.to_vec(), wait)
            }
        }
    }
}

fn local_tokens(p: &Prepared) -> &Tokens {
    match p {
        Prepared::Tokens(t) => t,
        Prepared::Text { .. } => unreachable!("the local model prepares tokens"),
    }
}

fn remote_text(p: &Prepared) -> &str {
    match p {
        Prepared::Text { text, .. } => text,
        Prepared::Tokens(_) => unreachable!("a server is sent texts"),
    }
}
