//! A loaded sentence-embedding model: tokenizer, encoder, pooling and normalisation, read from a model folder
//! the way sentence-transformers reads it. This module knows nothing about threads, queues or JavaScript.

pub mod bert;
pub mod cpu_bert;
pub mod cpu_modernbert;
pub mod cpu_qwen3;
pub mod cpu_gemma3;
pub mod gemma3;
pub(crate) mod gqa;
pub mod known_prompts;
mod linear;
pub mod calibration;
pub mod modernbert;
mod onnx_weights;
pub mod pooling;
pub mod qwen3;
mod rotary;
pub mod source;
pub mod st_config;
pub mod weights_file;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde_json::Value;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};
use bert::{BertConfig, BertEncoder, PositionScheme};
use cpu_bert::CpuBert;
use cpu_modernbert::CpuModernBert;
use cpu_gemma3::CpuGemma3;
use cpu_qwen3::CpuQwen3;

/// Which forward-pass implementation runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// The hand-written CPU path (`cpu_bert.rs`): packed sequences, fused passes. The default on CPU.
    Fast,
    /// candle's generic operations (`bert.rs`): every device; the reference the fast path is tested against.
    Candle,
}

/// The number format of the encoder's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dtype {
    /// As stored by sentence-transformers: results match it to float precision. The default.
    #[default]
    F32,
    /// Weights rounded to bf16, sums kept in f32: faster, cosine >= 0.999 to f32. On CPU it runs at every SIMD
    /// level but scalar (`kernels::panel::bf16_supported()`), natively with AVX512_BF16, else widening the
    /// weights to f32 in registers; on GPUs candle computes in bf16.
    Bf16,
    /// Weights and compute in f16: the default on Metal (candle path only).
    F16,
    /// The linear layers' weights quantized to int8 at load (a scale per output channel), activations
    /// quantized per token as they enter each product, sums exact in i32 (`kernels::int8`). CPU only, the
    /// BERT-family fast path; embeddings, attention, layer norms and pooling stay f32.
    Int8,
}

impl Dtype {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" | "float32" => Ok(Dtype::F32),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            "f16" | "float16" => Ok(Dtype::F16),
            "int8" => Ok(Dtype::Int8),
            other => Err(Error::invalid_input(format!("dtype must be 'f32', 'bf16', 'f16' or 'int8', not {other:?}"))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
            Dtype::Int8 => "int8",
        }
    }

    /// What a device computes in unless told otherwise: f32 on CPU (exact parity), bf16 on CUDA (tensor
    /// cores, f32's range), f16 on Metal (its bf16 support varies by chip).
    pub fn default_for(device: &Device) -> Self {
        match device {
            Device::Cpu => Dtype::F32,
            Device::Cuda(_) => Dtype::Bf16,
            Device::Metal(_) => Dtype::F16,
        }
    }
}

enum Encoder {
    Candle(BertEncoder),
    // Boxed: its two sets of working buffers make it much larger than the other variants.
    Cpu(Box<CpuBert>),
    CpuModernBert(Box<CpuModernBert>),
    CpuQwen3(Box<CpuQwen3>),
    CpuGemma3(Box<CpuGemma3>),
    ModernBert(modernbert::ModernBertEncoder),
    Qwen3(qwen3::Qwen3Encoder),
    Gemma3(gemma3::Gemma3Encoder),
}
use st_config::{read_json_opt, SentenceConfig};

/// Loads tokenizer.json, refusing a broken one with ERR_MODEL_INVALID. tokenizers 0.23 panics (an `unwrap`
/// in its decoder deserializer) on some truncated files instead of returning an error (found by
/// tests/fuzz.rs), so the JSON is checked first, and a panic that still escapes is turned into the same error.
fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let invalid = |why: String| Error::model_invalid(format!("{} does not load: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_reader::<_, serde::de::IgnoredAny>(std::io::BufReader::new(file))
        .map_err(|e| invalid(format!("not JSON: {e}")))?;
    match std::panic::catch_unwind(|| Tokenizer::from_file(path)) {
        Ok(loaded) => loaded.map_err(|e| invalid(e.to_string())),
        Err(panic) => Err(invalid(crate::error::panic_message(panic.as_ref()))),
    }
}

/// One text after tokenisation, ready for a forward pass.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Leading tokens excluded from pooling (a prompt, when the model's pooling excludes prompts).
    pub skip: usize,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The architectures this addon runs, by `model_type` in `config.json`.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["bert", "xlm-roberta", "roberta", "camembert", "modernbert", "qwen3", "gemma3_text"];

/// Where a loaded model's weights live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightMemory {
    /// Bytes in the process's own memory (or the GPU's, on a GPU device).
    pub owned: usize,
    /// Bytes read in place from the mapped weights file: resident only as far as they are read, and the
    /// kernel's to drop (file pages, not the heap).
    pub mapped: usize,
}

pub struct Embedder {
    tokenizer: Tokenizer,
    encoder: Encoder,
    weights: WeightMemory,
    threads: usize,
    config: SentenceConfig,
    dimensions: usize,
    /// `model_type` from config.json ("bert", "qwen3", ...).
    family: String,
    /// The sentence-transformers `Dense` modules after pooling, loaded.
    dense: Vec<DenseLayer>,
}

/// A `Dense` module's weights, applied to pooled vectors: `activation(W·x + b)`.
struct DenseLayer {
    /// `[out × in]`, as `linear.weight` stores it.
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    inp: usize,
    out: usize,
    activation: st_config::DenseActivation,
}

impl DenseLayer {
    fn load(module: &st_config::DenseModule) -> Result<Self> {
        let path = module.dir.join("model.safetensors");
        if !path.is_file() {
            let hint = if module.dir.join("pytorch_model.bin").is_file() { " (it has pytorch_model.bin; convert it to safetensors)" } else { "" };
            return Err(Error::model_invalid(format!("the Dense module's weights {} are missing{hint}", path.display())));
        }
        let invalid = |what: String| Error::model_invalid(format!("{}: {what}", path.display()));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| invalid(format!("not a readable safetensors file: {e}")))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = tensors.get(name).ok_or_else(|| invalid(format!("{name} is missing")))?;
            if t.dims() != shape {
                return Err(invalid(format!("{name} has shape {:?}, the module's config says {shape:?}", t.dims())));
            }
            t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).map_err(|e| invalid(e.to_string()))
        };
        let (inp, out) = (module.in_features, module.out_features);
        Ok(DenseLayer {
            weight: read("linear.weight", &[out, inp])?,
            bias: if module.bias { Some(read("linear.bias", &[out])?) } else { None },
            inp,
            out,
            activation: module.activation,
        })
    }

    /// The module on a batch of vectors, as one product.
    fn apply(&self, vectors: Vec<Vec<f32>>, threads: usize) -> Vec<Vec<f32>> {
        let m = vectors.len();
        if m == 0 {
            return vectors;
        }
        let a: Vec<f32> = vectors.into_iter().flatten().collect();
        let mut y = vec![0f32; m * self.out];
        crate::kernels::matmul::matmul_bt(&mut y, self.out, &a, self.inp, &self.weight, self.inp, m, self.out, self.inp, false, threads);
        y.chunks_exact(self.out)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        let v = v + self.bias.as_ref().map_or(0.0, |b| b[j]);
                        match self.activation {
                            st_config::DenseActivation::Identity => v,
                            st_config::DenseActivation::Tanh => v.tanh(),
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// What sentence-transformers does to every text before tokenising: strip surrounding whitespace (Python's
/// definition, which also counts the ASCII separators 0x1C..0x1F) and lower-case when the model asks.
fn prepare_text(text: &str, lower: bool) -> String {
    let t = text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
    if lower {
        t.to_lowercase()
    } else {
        t.to_string()
    }
}

impl Embedder {
    /// Loads a model folder onto `device`, with the fast CPU kernels on CPU.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, Kernels::Fast, Dtype::F32, crate::device::default_threads())
    }

    /// Loads a model folder with the given kernels (`Fast` applies on CPU only), weight format and compute
    /// threads. bf16 at the scalar SIMD level is refused with `ERR_DEVICE_UNAVAILABLE`.
    pub fn load_with(dir: &Path, device: &Device, kernels: Kernels, dtype: Dtype, threads: usize) -> Result<Self> {
        let arch = Architecture::read(dir)?;
        // The hand-written CPU path covers every family; candle runs them on GPUs (and on CPU when asked).
        let fast = device.is_cpu() && kernels == Kernels::Fast;
        check_dtype(dtype, device, fast, &arch.model_type)?;
        let config = SentenceConfig::read(dir, arch.positions.usable_positions(arch.bert.max_position_embeddings))?;
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(Error::model_invalid(format!(
                "{} is missing; only fast tokenizers (tokenizer.json) are supported",
                tokenizer_path.display()
            )));
        }
        let (weights, onnx) = weights_path(dir, dtype)?;
        if onnx && !fast {
            return Err(Error::invalid_input(format!(
                "{} holds ONNX weights, which run on the CPU kernels only; for a GPU, use the model's safetensors",
                dir.display()
            )));
        }
        // The fast CPU path reads f32 and packs bf16 itself; candle converts to its compute type on load.
        let load_dtype = match dtype {
            Dtype::Bf16 if !fast => DType::BF16,
            Dtype::F16 => DType::F16,
            _ => DType::F32,
        };
        // The tokenizer (parsing tokenizer.json: tens of milliseconds) loads beside the weights. A panic in
        // either is caught inside (load_tokenizer) or by the worker's guard; join only re-raises it here.
        let (tokenizer, encoder) = std::thread::scope(|scope| {
            let tokenizer = std::thread::Builder::new()
                .name("embedding-tokenizer-load".into())
                .spawn_scoped(scope, || truncating_tokenizer(&tokenizer_path, config.max_seq_length))
                .map_err(|e| Error::internal(format!("cannot start a thread to load the tokenizer: {e}")))?;
            let encoder = load_encoder(&arch, &weights, onnx, fast, dtype, load_dtype, device, config.max_seq_length);
            let tokenizer = tokenizer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, Error>((tokenizer?, encoder?))
        })?;
        let pooled = arch.bert.hidden_size * config.pooling.len();
        let dense = config.dense.iter().map(DenseLayer::load).collect::<Result<Vec<_>>>()?;
        if let Some(first) = dense.first().filter(|d| d.inp != pooled) {
            return Err(Error::model_invalid(format!(
                "{}: the first Dense module takes {} values, but pooling gives {pooled}",
                dir.display(),
                first.inp
            )));
        }
        let dimensions = dense.last().map_or(pooled, |d| d.out);
        let weights = match &encoder {
            Encoder::Cpu(cpu) => cpu.weight_bytes(),
            Encoder::CpuModernBert(cpu) => cpu.weight_bytes(),
            Encoder::CpuQwen3(cpu) => cpu.weight_bytes(),
            Encoder::CpuGemma3(cpu) => cpu.weight_bytes(),
            // candle holds a copy of every tensor it loaded, at its compute type.
            _ => WeightMemory { owned: tensor_elements(&weights)? * load_dtype.size_in_bytes(), mapped: 0 },
        };
        let family = arch.model_type.clone();
        let mut embedder = Embedder { tokenizer, encoder, weights, threads: threads.max(1), config, dimensions, family, dense };
        if dtype == Dtype::Int8 {
            embedder.calibrate_int8()?;
        }
        match &mut embedder.encoder {
            Encoder::Cpu(cpu) => cpu.release_file_pages(),
            Encoder::CpuModernBert(cpu) => cpu.release_file_pages(),
            Encoder::CpuQwen3(cpu) => cpu.release_file_pages(),
            Encoder::CpuGemma3(cpu) => cpu.release_file_pages(),
            _ => {}
        }
        Ok(embedder)
    }

    /// Runs `calibration::TEXTS` through the int8 model, to find the inputs it keeps in f32
    /// (`CpuBert::calibrate`), and counts what they hold.
    fn calibrate_int8(&mut self) -> Result<()> {
        let texts: Vec<String> = calibration::TEXTS.iter().map(|t| t.to_string()).collect();
        let tokens = self.tokenize(&texts, None)?;
        let ids: Vec<&[u32]> = tokens.iter().map(|t| t.ids.as_slice()).collect();
        let type_ids: Vec<&[u32]> = tokens.iter().map(|t| t.type_ids.as_slice()).collect();
        match &mut self.encoder {
            Encoder::Cpu(cpu) => {
                cpu.calibrate(&ids, &type_ids, self.threads)?;
                self.weights = cpu.weight_bytes();
            }
            Encoder::CpuModernBert(cpu) => {
                cpu.calibrate(&ids, self.threads)?;
                self.weights = cpu.weight_bytes();
            }
            Encoder::CpuQwen3(cpu) => {
                cpu.calibrate(&ids, self.threads)?;
                self.weights = cpu.weight_bytes();
            }
            Encoder::CpuGemma3(cpu) => {
                cpu.calibrate(&ids, self.threads)?;
                self.weights = cpu.weight_bytes();
            }
            _ => {}
        }
        Ok(())
    }

    /// Adopts the built-in prompts for `model_id` (see `known_prompts`) under each name the folder leaves
    /// undeclared or empty (sentence-transformers 6 saves empty `query` and `document` prompts by default).
    pub fn adopt_known_prompts(&mut self, model_id: &str) {
        for (name, text) in known_prompts::for_model(model_id).unwrap_or_default() {
            let declared = self.config.prompts.entry(name).or_default();
            if declared.is_empty() {
                *declared = text;
            }
        }
    }

    /// The names of the prompts this model accepts, sorted.
    pub fn prompt_names(&self) -> Vec<String> {
        self.config.prompts.keys().cloned().collect()
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The architecture, as `model_type` in config.json names it ("bert", "xlm-roberta", "modernbert", "qwen3",
    /// "gemma3_text").
    pub fn family(&self) -> &str {
        &self.family
    }

    pub fn weight_memory(&self) -> WeightMemory {
        self.weights
    }

    pub fn max_seq_length(&self) -> usize {
        self.config.max_seq_length
    }

    pub fn sentence_config(&self) -> &SentenceConfig {
        &self.config
    }

    /// Tokenises texts as sentence-transformers would, with the named prompt (or the model's default) prepended.
    pub fn tokenize(&self, texts: &[String], prompt_name: Option<&str>) -> Result<Vec<Tokens>> {
        let prompt = self.config.prompt_text(prompt_name)?;
        let lower = self.config.do_lower_case;
        let skip = match prompt {
            Some(p) if !self.config.pooling_include_prompt => {
                // sentence-transformers masks the prompt's tokens (with the leading special token, without the
                // trailing one) out of pooling.
                self.encode_one(&prepare_text(p, lower))?.ids.len().saturating_sub(1)
            }
            _ => 0,
        };
        // In parallel (in the service's compute pool when called from the worker): tokenising a large request
        // is a noticeable part of its time.
        texts
            .par_iter()
            .map(|t| {
                let full = match prompt {
                    Some(p) => format!("{p}{t}"),
                    None => t.clone(),
                };
                let mut tokens = self.encode_one(&prepare_text(&full, lower))?;
                tokens.skip = skip;
                Ok(tokens)
            })
            .collect()
    }

    /// Tokenises one text, truncated to `max_seq_length`. A text far longer than that is tokenised from a prefix
    /// (`truncation_prefix`): a 10 MB text took seconds whole.
    fn encode_one(&self, text: &str) -> Result<Tokens> {
        let enc = self.encode(self.truncation_prefix(text)?)?;
        Ok(Tokens { ids: enc.get_ids().to_vec(), type_ids: enc.get_type_ids().to_vec(), skip: 0 })
    }

    fn encode(&self, text: &str) -> Result<tokenizers::Encoding> {
        self.tokenizer
            .encode_fast(text, true)
            .map_err(|e| Error::invalid_input(format!("the tokenizer rejected a text: {e}")))
    }

    /// The shortest prefix of `text` (growing fourfold from a few kilobytes) whose truncated tokens are the
    /// whole text's: one whose kept tokens fill `max_seq_length` and end before a whitespace that is still
    /// inside the prefix. Tokenisers split text into words at whitespace before anything else, so the words
    /// before that whitespace tokenise the same whatever follows. Text without such a break (a long run of CJK
    /// for a SentencePiece model, one giant word) is tokenised whole.
    pub fn truncation_prefix<'t>(&self, text: &'t str) -> Result<&'t str> {
        let mut limit = self.config.max_seq_length * 16;
        while limit < text.len() {
            let mut cut = limit;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let enc = self.encode(&text[..cut])?;
            if enc.len() >= self.config.max_seq_length {
                let kept_end = enc
                    .get_offsets()
                    .iter()
                    .zip(enc.get_special_tokens_mask())
                    .filter(|(_, &special)| special == 0)
                    .map(|(o, _)| o.1)
                    .max()
                    .unwrap_or(0);
                if kept_end < cut && text.is_char_boundary(kept_end) && text[kept_end..cut].contains(char::is_whitespace) {
                    return Ok(&text[..cut]);
                }
            }
            limit *= 4;
        }
        Ok(text)
    }

    /// Tokenises without the long-text shortcut (for tests that check the shortcut changes nothing).
    pub fn encode_whole(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|e| Error::invalid_input(format!("the tokenizer rejected a text: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds one batch of tokenised texts; returns one vector per input, in input order.
    pub fn embed_tokens(&self, batch: &[&Tokens]) -> Result<Vec<Vec<f32>>> {
        self.embed_tokens_with(batch, None)
    }

    /// Whether the encoder calls a checkpoint inside a batch (the fast CPU encoders do; candle's run a batch
    /// whole).
    pub fn has_checkpoints(&self) -> bool {
        matches!(self.encoder, Encoder::Cpu(_) | Encoder::CpuModernBert(_) | Encoder::CpuQwen3(_) | Encoder::CpuGemma3(_))
    }

    /// `embed_tokens`, calling `checkpoint` between the steps of the forward pass where the encoder has them
    /// (`cpu_bert::Checkpoint`).
    pub fn embed_tokens_with(&self, batch: &[&Tokens], checkpoint: Option<cpu_bert::Checkpoint>) -> Result<Vec<Vec<f32>>> {
        let mut vectors = self.embed_tokens_pooled(batch, checkpoint)?;
        if self.config.normalize {
            vectors.iter_mut().for_each(|v| pooling::normalize(v));
        }
        Ok(vectors)
    }

    /// Whether the model's sentence-transformers pipeline ends with a `Normalize` module.
    pub fn normalizes(&self) -> bool {
        self.config.normalize
    }

    /// The vectors before the model's `Normalize` module (pooled, then through its `Dense` modules): the
    /// service normalises, or not, per request.
    pub fn embed_tokens_pooled(&self, batch: &[&Tokens], checkpoint: Option<cpu_bert::Checkpoint>) -> Result<Vec<Vec<f32>>> {
        let pooled = self.pool_tokens(batch, checkpoint)?;
        Ok(self.dense.iter().fold(pooled, |vectors, layer| layer.apply(vectors, self.threads)))
    }

    fn pool_tokens(&self, batch: &[&Tokens], checkpoint: Option<cpu_bert::Checkpoint>) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<&[u32]> = batch.iter().map(|t| t.ids.as_slice()).collect();
        let types: Vec<&[u32]> = batch.iter().map(|t| t.type_ids.as_slice()).collect();
        let pool = |state: &[f32], hidden: usize, t: &Tokens| pooling::pool(&self.config.pooling, state, hidden, t.skip);
        match &self.encoder {
            // Pooled straight from the encoder's buffer: no per-text copy of the token states.
            Encoder::Cpu(enc) => {
                let mut out = Vec::with_capacity(batch.len());
                enc.forward(&ids, &types, self.threads, |i, state| out.push(pool(state, enc.hidden_size(), batch[i])), checkpoint)?;
                Ok(out)
            }
            Encoder::CpuModernBert(enc) => {
                let mut out = Vec::with_capacity(batch.len());
                enc.forward(&ids, self.threads, |i, state| out.push(pool(state, enc.hidden_size(), batch[i])), checkpoint)?;
                Ok(out)
            }
            Encoder::CpuQwen3(enc) => {
                let mut out = Vec::with_capacity(batch.len());
                enc.forward(&ids, self.threads, |i, state| out.push(pool(state, enc.hidden_size(), batch[i])), checkpoint)?;
                Ok(out)
            }
            Encoder::CpuGemma3(enc) => {
                let mut out = Vec::with_capacity(batch.len());
                enc.forward(&ids, self.threads, |i, state| out.push(pool(state, enc.hidden_size(), batch[i])), checkpoint)?;
                Ok(out)
            }
            Encoder::Gemma3(enc) => {
                let states =
                    enc.forward(&ids).map_err(|e| Error::internal(format!("the forward pass failed: {e}")))?;
                Ok(states.iter().zip(batch).map(|(s, t)| pool(s, enc.hidden_size(), t)).collect())
            }
            Encoder::Qwen3(enc) => {
                let states =
                    enc.forward(&ids).map_err(|e| Error::internal(format!("the forward pass failed: {e}")))?;
                Ok(states.iter().zip(batch).map(|(s, t)| pool(s, enc.hidden_size(), t)).collect())
            }
            Encoder::ModernBert(enc) => {
                let states =
                    enc.forward(&ids).map_err(|e| Error::internal(format!("the forward pass failed: {e}")))?;
                Ok(states.iter().zip(batch).map(|(s, t)| pool(s, enc.hidden_size(), t)).collect())
            }
            Encoder::Candle(enc) => {
                let states =
                    enc.forward(&ids, &types).map_err(|e| Error::internal(format!("the forward pass failed: {e}")))?;
                Ok(states.iter().zip(batch).map(|(s, t)| pool(s, enc.hidden_size(), t)).collect())
            }
        }
    }
}

/// The number of values in a safetensors file's tensors (its header only).
fn tensor_elements(path: &Path) -> Result<usize> {
    // SAFETY: as for the loaders: mapped read-only, and only the already-validated header is read.
    let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map_err(|e| Error::model_invalid(format!("{} is not a readable safetensors file: {e}", path.display())))?;
    Ok(file.tensors().iter().map(|(_, view)| view.shape().iter().product::<usize>()).sum())
}


/// What `config.json` says the model is.
struct Architecture {
    raw: Value,
    model_type: String,
    bert: BertConfig,
    positions: PositionScheme,
    /// The decoder-style families' own configs, parsed (and checked) once.
    decoder: Option<Decoder>,
}

enum Decoder {
    Qwen3(qwen3::Config),
    Gemma3(gemma3::Config),
}

impl Architecture {
    fn read(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let raw = read_json_opt(&config_path)?.ok_or_else(|| {
            Error::model_invalid(format!("{} is missing: not a transformer model folder", config_path.display()))
        })?;
        let model_type = raw.get("model_type").and_then(Value::as_str).unwrap_or("").to_string();
        let architectures = raw
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let bert: BertConfig = serde_json::from_value(raw.clone()).map_err(|e| {
            Error::model_invalid(format!("{}: not a usable {model_type} config: {e}", config_path.display()))
        })?;
        let positions = match model_type.as_str() {
            // ModernBERT's positions are rotary: the table size bounds max_seq_length the same way.
            "bert" | "modernbert" | "qwen3" | "gemma3_text" => PositionScheme::Absolute,
            "xlm-roberta" | "roberta" | "camembert" => PositionScheme::AfterPadding(bert.pad_token_id.unwrap_or(1)),
            other => {
                return Err(Error::model_invalid(format!(
                    "unsupported architecture: model_type {other:?} (architectures: [{architectures}]) in {}; \
                     supported model types: {}",
                    config_path.display(),
                    SUPPORTED_MODEL_TYPES.join(", ")
                )))
            }
        };
        // The decoder-style families' checks are their own (their heads need not divide hidden_size; their
        // activations are not BERT's).
        let decoder = match model_type.as_str() {
            "qwen3" => Some(Decoder::Qwen3(qwen3::config(&raw)?)),
            "gemma3_text" => Some(Decoder::Gemma3(gemma3::config(&raw)?)),
            _ => {
                bert.validate()?;
                None
            }
        };
        Ok(Architecture { raw, model_type, bert, positions, decoder })
    }
}

/// Whether bf16 can run on this CPU: the SIMD kernels pack it (AVX2+FMA, AVX-512, NEON); the scalar level
/// cannot. The one place this is decided (the service checks it at construction, the loader at load).
pub fn check_cpu_bf16() -> Result<()> {
    if crate::kernels::panel::bf16_supported() {
        return Ok(());
    }
    Err(Error::device_unavailable(
        "dtype 'bf16' needs the SIMD kernels (AVX2+FMA, AVX-512 or NEON), which this CPU lacks or \
         EMBEDDING_SERVICE_SIMD=scalar caps off; use the default 'f32'",
    ))
}

/// The CPU kernels a model of `dtype` runs on in this process: the int8 dot-product kernel for int8, else
/// the SIMD level of the f32 and bf16 kernels (bf16 on AVX512_BF16 says so).
pub fn cpu_kernels(dtype: Dtype) -> &'static str {
    use crate::kernels::{level, panel};
    match dtype {
        Dtype::Int8 => level::int8_kernel().as_str(),
        Dtype::Bf16 if panel::bf16_native() => "avx512-bf16",
        _ if !panel::supported() => "scalar",
        _ => level::level().as_str(),
    }
}

fn check_dtype(dtype: Dtype, device: &Device, fast: bool, model_type: &str) -> Result<()> {
    if dtype == Dtype::Int8 && !device.is_cpu() {
        return Err(Error::invalid_input("dtype 'int8' runs on the CPU only; on a GPU use 'bf16' or 'f16'"));
    }
    if dtype == Dtype::Int8 && !fast {
        return Err(Error::invalid_input(format!(
            "dtype 'int8' runs on the fast CPU kernels only, not on candle's (model_type {model_type:?}); use 'f32'"
        )));
    }
    if dtype == Dtype::F16 && device.is_cpu() {
        return Err(Error::invalid_input("dtype 'f16' is for GPUs; on CPU use 'f32' or 'bf16'"));
    }
    if dtype == Dtype::Bf16 && device.is_cpu() {
        check_cpu_bf16()?;
        if !fast {
            return Err(Error::invalid_input(format!(
                "dtype 'bf16' on CPU runs only on the fast BERT-family kernels, not for model_type {model_type:?}"
            )));
        }
    }
    Ok(())
}

/// The weights file, and whether it is an ONNX export (transformers.js' layout, `onnx/model_quantized.onnx`
/// beside config.json and tokenizer.json): read when the folder has no `model.safetensors`, the quantized
/// export first for int8, the f32 one first otherwise.
fn weights_path(dir: &Path, dtype: Dtype) -> Result<(std::path::PathBuf, bool)> {
    let weights = dir.join("model.safetensors");
    if weights.is_file() {
        return Ok((weights, false));
    }
    let mut onnx = ["onnx/model.onnx", "model.onnx", "onnx/model_quantized.onnx", "model_quantized.onnx"];
    if dtype == Dtype::Int8 {
        onnx.rotate_left(2);
    }
    if let Some(found) = onnx.iter().map(|name| dir.join(name)).find(|path| path.is_file()) {
        return Ok((found, true));
    }
    let hint = if dir.join("pytorch_model.bin").is_file() {
        " (the folder has pytorch_model.bin; convert it to safetensors)"
    } else {
        ""
    };
    Err(Error::model_invalid(format!("{} is missing{hint}", weights.display())))
}

/// The tokenizer, truncating at `max_seq_length`: the result is defined by it, whatever padding or truncation
/// tokenizer.json carries.
fn truncating_tokenizer(path: &Path, max_seq_length: usize) -> Result<Tokenizer> {
    let mut tokenizer = load_tokenizer(path)?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_seq_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| Error::model_invalid(format!("cannot set truncation on {}: {e}", path.display())))?;
    Ok(tokenizer)
}

#[allow(clippy::too_many_arguments)]
fn load_encoder(
    arch: &Architecture,
    weights: &Path,
    onnx: bool,
    fast: bool,
    dtype: Dtype,
    load_dtype: DType,
    device: &Device,
    max_seq_length: usize,
) -> Result<Encoder> {
    let in_file = |e: Error| Error::model_invalid(format!("{}: {}", weights.display(), e.message));
    if fast && arch.model_type == "modernbert" {
        let config = modernbert::config(&arch.raw)?;
        let file = open_weights(weights, onnx, "embeddings.tok_embeddings.weight")?;
        return Ok(Encoder::CpuModernBert(Box::new(CpuModernBert::load(file, &config, dtype).map_err(in_file)?)));
    }
    match (&arch.decoder, fast) {
        (Some(Decoder::Qwen3(config)), true) => {
            let file = open_weights(weights, onnx, "embed_tokens.weight")?;
            return Ok(Encoder::CpuQwen3(Box::new(CpuQwen3::load(file, config, dtype, max_seq_length).map_err(in_file)?)));
        }
        (Some(Decoder::Gemma3(config)), true) => {
            let file = open_weights(weights, onnx, "embed_tokens.weight")?;
            return Ok(Encoder::CpuGemma3(Box::new(CpuGemma3::load(file, config, dtype, max_seq_length).map_err(in_file)?)));
        }
        _ => {}
    }
    if fast {
        let file = open_weights(weights, onnx, "embeddings.word_embeddings.weight")?;
        return Ok(Encoder::Cpu(Box::new(CpuBert::load(file, &arch.bert, arch.positions, dtype).map_err(in_file)?)));
    }
    // SAFETY: the file is mapped read-only; a model file changed underneath a running service is outside
    // what any loader can defend against, and the same holds for every mmap-based loader.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], load_dtype, device) }
        .map_err(|e| Error::model_invalid(format!("{} is not a readable safetensors file: {e}", weights.display())))?;
    Ok(match &arch.decoder {
        Some(Decoder::Qwen3(config)) => Encoder::Qwen3(qwen3::Qwen3Encoder::load(vb, config, max_seq_length).map_err(in_file)?),
        Some(Decoder::Gemma3(config)) => Encoder::Gemma3(gemma3::Gemma3Encoder::load(vb, config, max_seq_length).map_err(in_file)?),
        None if arch.model_type == "modernbert" => Encoder::ModernBert(modernbert::ModernBertEncoder::load(vb, &arch.raw).map_err(in_file)?),
        None => Encoder::Candle(BertEncoder::load(vb, &arch.bert, arch.positions).map_err(in_file)?),
    })
}

fn open_weights(path: &Path, onnx: bool, table: &str) -> Result<weights_file::WeightsFile> {
    if onnx {
        weights_file::WeightsFile::open_onnx(path, table)
    } else {
        weights_file::WeightsFile::open(path, table)
    }
}

#[cfg(test)]
mod tests {
    use super::prepare_text;

    #[test]
    fn texts_are_stripped_like_python_and_lowered_on_request() {
        assert_eq!(prepare_text("  Hi \n", false), "Hi");
        assert_eq!(prepare_text("\u{1f}x\u{1c}", false), "x");
        assert_eq!(prepare_text("\u{0}x", false), "\u{0}x");
        assert_eq!(prepare_text(" ÀB ", true), "àb");
    }
}
