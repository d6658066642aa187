//! `model.safetensors` mapped read-only, its tensors read in place as little-endian f32 bytes.
//!
//! The CPU encoder packs its layers straight from these bytes and gathers embedding rows from the mapping, so
//! loading writes each layer's weights once (into packed panels) instead of copying them through candle tensors
//! and vectors first, and never copies the word-embedding table at all: that table is half of a small model,
//! and only the rows of tokens actually seen are ever read (they stay in the page cache, not the heap).
//!
//! An ONNX export (`onnx_weights`) is the other source: its weights are read into memory under the same names,
//! its quantized embedding tables kept quantized (`WordRows::Quantized`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};

use super::onnx_weights::{self, OnnxTensor, OnnxValues, QuantizedRows};
use crate::error::{Error, Result};

/// The weights and the prefix they sit under ("", "bert.", "roberta." or "model.").
pub struct WeightsFile {
    file: Tensors,
    root: &'static str,
}

enum Tensors {
    Mapped(MmapedSafetensors),
    /// Read from an ONNX file; f32 tensors as little-endian bytes.
    Memory(HashMap<String, Stored>),
}

struct Stored {
    shape: Vec<usize>,
    bytes: Vec<u8>,
    quantized: Option<QuantizedRows>,
}

impl Tensors {
    fn has(&self, name: &str) -> bool {
        match self {
            Tensors::Mapped(file) => file.get(name).is_ok(),
            Tensors::Memory(map) => map.contains_key(name),
        }
    }
}

/// Rows of an embedding table, read as f32 whatever they are stored as.
pub enum WordRows<'a> {
    F32(&'a [u8]),
    Quantized(&'a QuantizedRows),
}

impl WordRows<'_> {
    pub fn read(&self, row: usize, dst: &mut [f32]) {
        match self {
            WordRows::F32(bytes) => read_row(bytes, row, dst),
            WordRows::Quantized(q) => q.read_row(row, dst),
        }
    }
}

/// The BERT roots `bert::weights_root` accepts, as name prefixes.
const ROOTS: [&str; 4] = ["", "bert.", "roberta.", "model."];

impl WeightsFile {
    /// Maps `path`, finding the root by where its word-embedding table `table` is.
    pub fn open(path: &Path, table: &str) -> Result<Self> {
        // SAFETY: the file is mapped read-only; a model file changed underneath a running service is outside
        // what any loader can defend against, and the same holds for every mmap-based loader.
        let file = unsafe { MmapedSafetensors::new(path) }
            .map_err(|e| Error::model_invalid(format!("{} is not a readable safetensors file: {e}", path.display())))?;
        Self::with_root(Tensors::Mapped(file), path, table)
    }

    /// Reads the ONNX export at `path` (see `onnx_weights`), finding the root as `open` does.
    pub fn open_onnx(path: &Path, table: &str) -> Result<Self> {
        let stored = onnx_weights::read(path)?
            .into_iter()
            .map(|(name, OnnxTensor { shape, values })| {
                let stored = match values {
                    OnnxValues::F32(v) => Stored { shape, bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(), quantized: None },
                    OnnxValues::Quantized(q) => Stored { shape, bytes: Vec::new(), quantized: Some(q) },
                };
                (name, stored)
            })
            .collect();
        Self::with_root(Tensors::Memory(stored), path, table)
    }

    fn with_root(file: Tensors, path: &Path, table: &str) -> Result<Self> {
        let root = ROOTS
            .into_iter()
            .find(|root| file.has(&format!("{root}{table}")))
            .ok_or_else(|| Error::model_invalid(format!("{} has no {table}: not the model config.json describes", path.display())))?;
        Ok(WeightsFile { file, root })
    }

    /// The tensor `name` (under the root) as little-endian f32 bytes, checked against `shape`: borrowed from
    /// the mapping when the file stores f32, converted once otherwise (f16, bf16).
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Floats<'_>> {
        let full = self.full_name(name);
        let unfit = |why: String| Error::model_invalid(format!("the weights do not fit the config: {full}: {why}"));
        let file = match &self.file {
            Tensors::Mapped(file) => file,
            Tensors::Memory(map) => {
                let stored = map.get(&full).ok_or_else(|| unfit("not in the file".into()))?;
                if stored.shape != shape {
                    return Err(unfit(format!("shape {:?}, expected {shape:?}", stored.shape)));
                }
                return Ok(match &stored.quantized {
                    None => Floats(Cow::Borrowed(&stored.bytes)),
                    Some(q) => Floats(Cow::Owned((0..q.bytes.len()).flat_map(|i| q.value(i).to_le_bytes()).collect())),
                });
            }
        };
        let view = file.get(&full).map_err(|e| unfit(e.to_string()))?;
        if view.shape() != shape {
            return Err(unfit(format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        let dtype = DType::try_from(view.dtype()).map_err(|e| unfit(e.to_string()))?;
        if dtype == DType::F32 {
            return Ok(Floats(Cow::Borrowed(view.data())));
        }
        let converted = candle_core::Tensor::from_raw_buffer(view.data(), dtype, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| unfit(format!("cannot convert {dtype:?} to f32: {e}")))?;
        Ok(Floats(Cow::Owned(converted.iter().flat_map(|x| x.to_le_bytes()).collect())))
    }

    /// Checks tensor `name` (under the root) is there with `shape`, reading none of its values.
    pub fn check_shape(&self, name: &str, shape: &[usize]) -> Result<()> {
        let full = self.full_name(name);
        let found = match &self.file {
            Tensors::Mapped(file) => file.get(&full).ok().map(|view| view.shape().to_vec()),
            Tensors::Memory(map) => map.get(&full).map(|s| s.shape.clone()),
        };
        match found {
            Some(found) if found == shape => Ok(()),
            Some(found) => Err(Error::model_invalid(format!("the weights do not fit the config: {full}: shape {found:?}, expected {shape:?}"))),
            None => Err(Error::model_invalid(format!("the weights do not fit the config: {full}: not in the file"))),
        }
    }

    /// Whether the file has tensor `name` (under the root).
    pub fn contains(&self, name: &str) -> bool {
        self.file.has(&self.full_name(name))
    }

    /// `name` under the root, as the file names it (for `borrowed`).
    pub fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.root)
    }

    /// Drops from this process's resident memory the pages of tensor `name` (under the root) that reading it
    /// brought in. The file stays mapped and its pages stay in the OS's page cache: a later read brings them
    /// back, the same bytes. For tensors that were packed into the model's own memory, so that loading does
    /// not leave a second, unused copy resident.
    ///
    /// Weights read into memory (from an ONNX file) are freed instead: they were copied where they are used.
    pub fn release(&mut self, name: &str) {
        if let Tensors::Memory(map) = &mut self.file {
            map.remove(&format!("{}{name}", self.root));
            return;
        }
        #[cfg(unix)]
        if let Some(view) = match &self.file {
            Tensors::Mapped(file) => file.get(&self.full_name(name)).ok(),
            Tensors::Memory(_) => None,
        } {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
            let (start, len) = (view.data().as_ptr() as usize, view.data().len());
            let (first, last) = (start.div_ceil(page) * page, (start + len) / page * page);
            if last > first {
                // SAFETY: the range lies inside the read-only file mapping (whole pages of this tensor's bytes).
                // MADV_DONTNEED on a private file mapping that was never written drops only the page table
                // entries: reads that follow see the file's bytes again, so every borrow of them stays valid.
                unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_DONTNEED) };
            }
        }
        #[cfg(not(unix))]
        let _ = name;
    }

    /// The bytes of a tensor, by its `full_name`, that `floats` accepted before and kept borrowed
    /// (`Floats::is_borrowed`): a lookup, no allocation, for use on every forward pass.
    pub fn borrowed(&self, full_name: &str) -> Option<&[u8]> {
        match &self.file {
            Tensors::Mapped(file) => file.get(full_name).ok().map(|view| view.data()),
            Tensors::Memory(map) => map.get(full_name).filter(|s| s.quantized.is_none()).map(|s| s.bytes.as_slice()),
        }
    }

    /// An embedding table by its `full_name`, as rows: quantized tables from an ONNX file stay quantized.
    pub fn rows(&self, full_name: &str) -> Option<WordRows<'_>> {
        if let Tensors::Memory(map) = &self.file {
            if let Some(q) = map.get(full_name).and_then(|s| s.quantized.as_ref()) {
                return Some(WordRows::Quantized(q));
            }
        }
        self.borrowed(full_name).map(WordRows::F32)
    }

    /// Whether the weights are mapped from a file (pages that `release` can hand back) rather than held.
    pub fn is_mapped(&self) -> bool {
        matches!(self.file, Tensors::Mapped(_))
    }
}

/// A tensor's values as little-endian f32 bytes, in the file's (row-major) order.
pub struct Floats<'a>(Cow<'a, [u8]>);

impl Floats<'_> {
    pub fn at(&self, i: usize) -> f32 {
        f32_at(&self.0, i)
    }

    pub fn to_vec(&self) -> Vec<f32> {
        self.0.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_owned()
    }
}

/// Value `i` of little-endian f32 bytes (the mapping need not be 4-byte aligned, so no cast to `&[f32]`).
pub fn f32_at(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Row `row` of a row-major table of `dst.len()`-wide f32 rows, in little-endian bytes, into `dst`.
pub fn read_row(bytes: &[u8], row: usize, dst: &mut [f32]) {
    let width = dst.len();
    for (d, b) in dst.iter_mut().zip(bytes[4 * row * width..4 * (row + 1) * width].chunks_exact(4)) {
        *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use std::collections::HashMap;

    /// A safetensors file holding `values` under the "bert." root in each of f32, f16 and bf16.
    fn file_with(values: &[f32], dir: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("es-weights-file-{}-{dir}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tensor::from_slice(values, (2, values.len() / 2), &Device::Cpu).unwrap();
        let mut tensors = HashMap::new();
        tensors.insert("bert.embeddings.word_embeddings.weight".to_string(), t.clone());
        tensors.insert("bert.half".to_string(), t.to_dtype(DType::F16).unwrap());
        tensors.insert("bert.brain".to_string(), t.to_dtype(DType::BF16).unwrap());
        let path = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &path).unwrap();
        path
    }

    #[test]
    fn reads_f32_in_place_and_converts_half_formats_once() {
        // Exact in f16 and bf16, so every format must give the same numbers back.
        let values = [0.5f32, -1.25, 3.0, 0.0, 96.0, -0.0078125];
        let path = file_with(&values, "formats");
        let file = WeightsFile::open(&path, "embeddings.word_embeddings.weight").unwrap();
        let f32s = file.floats("embeddings.word_embeddings.weight", &[2, 3]).unwrap();
        assert!(f32s.is_borrowed(), "f32 is read in place");
        assert_eq!(f32s.to_vec(), values);
        let mut row = [0f32; 3];
        read_row(file.borrowed(&file.full_name("embeddings.word_embeddings.weight")).unwrap(), 1, &mut row);
        assert_eq!(row, values[3..]);
        for name in ["half", "brain"] {
            let converted = file.floats(name, &[2, 3]).unwrap();
            assert!(!converted.is_borrowed());
            assert_eq!((0..values.len()).map(|i| converted.at(i)).collect::<Vec<_>>(), values, "{name}");
            assert_eq!(converted.to_vec(), values, "{name}");
        }
    }

    #[test]
    fn wrong_shapes_and_names_are_model_errors_naming_the_tensor() {
        let path = file_with(&[1.0; 6], "errors");
        let file = WeightsFile::open(&path, "embeddings.word_embeddings.weight").unwrap();
        let err = file.floats("embeddings.word_embeddings.weight", &[3, 2]).err().unwrap();
        assert_eq!(err.code, crate::ErrorCode::ModelInvalid);
        assert!(err.message.contains("bert.embeddings.word_embeddings.weight") && err.message.contains("[2, 3]"), "{}", err.message);
        let err = file.floats("encoder.layer.0.output.dense.weight", &[2, 3]).err().unwrap();
        assert!(err.message.contains("encoder.layer.0.output.dense.weight"), "{}", err.message);
    }
}
