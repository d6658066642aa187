//! The model in this process as a `Backend`: resolved (hub cache or download), opened on its device, loaded.

use crate::backend::{Backend, BackendConfig, OpenHooks, Prepared};
use crate::device;
use crate::error::{Error, Result};
use crate::model::{cpu_bert, source, Dtype, Embedder, Tokens, WeightMemory};

pub struct LocalModel {
    embedder: Embedder,
    device: candle_core::Device,
    name: String,
    dtype: Dtype,
}

pub fn open(config: &BackendConfig, hooks: OpenHooks) -> Result<LocalModel> {
    (hooks.stage)(0, "resolving model");
    let mut download = source::throttled(|p| (hooks.download)(p));
    // A download ends as soon as the service closes or the watchdog gives up on this worker.
    let dir = source::resolve_with(&config.source, &mut download, hooks.still_wanted)?;
    (hooks.stage)(1, "opening device");
    // int8 runs on the CPU only: 'auto' means the CPU for it (a GPU device is refused when the service is made).
    let choice = if config.dtype == Some(Dtype::Int8) { device::DeviceChoice::Cpu } else { config.device };
    let device::Opened { device, name, fallback } = device::open(choice)?;
    match fallback {
        Some(why) => (hooks.stage)(2, &format!("loading tokenizer and weights; {why}")),
        None => (hooks.stage)(2, "loading tokenizer and weights"),
    }
    let dtype = config.dtype.unwrap_or_else(|| Dtype::default_for(&device));
    let mut embedder = Embedder::load_with(&dir, &device, config.kernels, dtype, config.threads)?;
    embedder.adopt_known_prompts(&config.source.model);
    // Loading converts the weights through temporary copies; hand those pages back rather than keep them.
    crate::memory::release_free_memory();
    match device.is_cpu() {
        true => (hooks.stage)(3, &format!("model loaded ({}, {} kernels)", dtype.as_str(), crate::model::cpu_kernels(dtype))),
        false => (hooks.stage)(3, &format!("model loaded ({})", dtype.as_str())),
    }
    Ok(LocalModel { embedder, device, name, dtype })
}

/// The tokens a local batch is made of; a server's prepared text here is a bug, reported as one.
fn tokens(p: &Prepared) -> Result<&Tokens> {
    match p {
        Prepared::Tokens(t) => Ok(t),
        Prepared::Text { .. } => Err(Error::internal("the local model was given text prepared for a server")),
    }
}

impl Backend for LocalModel {
    fn dimensions(&self) -> usize {
        self.embedder.dimensions()
    }

    fn weight_memory(&self) -> WeightMemory {
        self.embedder.weight_memory()
    }

    fn prompt_names(&self) -> Vec<String> {
        self.embedder.prompt_names()
    }

    fn normalizes(&self) -> bool {
        self.embedder.normalizes()
    }

    fn device_name(&self) -> &str {
        &self.name
    }

    fn dtype(&self) -> Option<&'static str> {
        Some(self.dtype.as_str())
    }

    fn simd(&self) -> Option<&'static str> {
        self.device.is_cpu().then(|| crate::model::cpu_kernels(self.dtype))
    }

    fn family(&self) -> Option<String> {
        Some(self.embedder.family().to_string())
    }

    fn has_checkpoints(&self) -> bool {
        self.embedder.has_checkpoints()
    }

    fn prepare(&self, texts: &[String], prompt: Option<&str>) -> Result<Vec<Prepared>> {
        Ok(self.embedder.tokenize(texts, prompt)?.into_iter().map(Prepared::Tokens).collect())
    }

    fn embed(
        &self,
        batches: &[Vec<&Prepared>],
        _positions: &[Vec<usize>],
        checkpoint: Option<cpu_bert::Checkpoint>,
        _wait: &mut dyn FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut checkpoint = checkpoint;
        batches
            .iter()
            .map(|batch| {
                let tokens = batch.iter().map(|p| tokens(p)).collect::<Result<Vec<&Tokens>>>()?;
                self.embedder.embed_tokens_pooled(&tokens, checkpoint.take())
            })
            .collect()
    }

    fn device_to_synchronize(&self) -> Option<candle_core::Device> {
        (!self.device.is_cpu()).then(|| self.device.clone())
    }
}
