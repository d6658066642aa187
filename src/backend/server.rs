//! A remote embedding server as a `Backend` (the HTTP client itself is `crate::remote`).

use std::time::Duration;

use crate::backend::{Backend, BackendConfig, OpenHooks, Prepared};
use crate::error::{Error, Result};
use crate::model::cpu_bert;
use crate::remote::{RemoteEmbedder, RemoteOptions};

pub struct Server {
    remote: RemoteEmbedder,
    name: String,
}

/// The model lives on the server: opening is asking it for one embedding (its dimensions).
pub fn open(options: &RemoteOptions, config: &BackendConfig, hooks: OpenHooks) -> Result<Server> {
    (hooks.stage)(0, &format!("asking {} for {}", options.endpoint, config.source.model));
    // close() and the watchdog's replacement end the wait, as they end a step's.
    let remote = RemoteEmbedder::connect(options, &config.source.model, config.remote_timeout, |_| (hooks.still_wanted)())?;
    (hooks.stage)(3, "model loaded");
    Ok(Server { remote, name: format!("remote {}", options.endpoint.trim_end_matches('/')) })
}

/// The text a server batch is made of; tokens prepared for the local model here are a bug, reported as one.
fn text(p: &Prepared) -> Result<String> {
    match p {
        Prepared::Text { text, .. } => Ok(text.clone()),
        Prepared::Tokens(_) => Err(Error::internal("a server was given tokens prepared for the local model")),
    }
}

impl Backend for Server {
    fn dimensions(&self) -> usize {
        self.remote.dimensions()
    }

    fn prompt_names(&self) -> Vec<String> {
        self.remote.prompt_names()
    }

    /// A server's vectors are as it sends them; unit-length ones (measured on the probe) count as normalised.
    fn normalizes(&self) -> bool {
        self.remote.unit_length()
    }

    fn arrives_normalized(&self) -> bool {
        self.remote.unit_length()
    }

    fn device_name(&self) -> &str {
        &self.name
    }

    fn dtype(&self) -> Option<&'static str> {
        None
    }

    fn batches_per_step(&self) -> usize {
        self.remote.concurrency()
    }

    fn tokens_within(&self, time: Duration) -> Option<usize> {
        self.remote.tokens_per_second().map(|rate| (rate * time.as_secs_f64()) as usize)
    }

    fn prepare(&self, texts: &[String], prompt: Option<&str>) -> Result<Vec<Prepared>> {
        Ok(self
            .remote
            .prepare(texts, prompt)?
            .into_iter()
            .map(|(text, estimated_tokens)| Prepared::Text { text, estimated_tokens })
            .collect())
    }

    fn embed(
        &self,
        batches: &[Vec<&Prepared>],
        positions: &[Vec<usize>],
        _checkpoint: Option<cpu_bert::Checkpoint>,
        wait: &mut dyn FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let texts = batches.iter().map(|batch| batch.iter().map(|p| text(p)).collect::<Result<Vec<_>>>()).collect::<Result<Vec<_>>>()?;
        self.remote.embed_batches(texts, positions.to_vec(), wait)
    }
}
