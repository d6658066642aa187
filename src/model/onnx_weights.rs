//! The weights of an ONNX export of a BERT-family encoder, under the names its safetensors file would give
//! them: what transformers.js downloads (`onnx/model_quantized.onnx`, ONNX Runtime's `quantize_dynamic`), so a
//! daemon that already has that file needs no second download of the model.
//!
//! Only initializers are read; the graph is consulted to name them. An exporter names a linear layer's
//! transposed weight after nothing (`onnx::MatMul_740`), but the bias added to its product keeps its module
//! name (`encoder.layer.0.attention.self.query.bias`), so each `MatMul`/`MatMulInteger` is named by the bias
//! that its output reaches. Quantized tensors (`X_quantized`, `X_scale`, `X_zero_point`, per tensor or per
//! output column) are dequantized to f32 here; the encoder quantizes again to its own int8 format when asked.
//! Whatever cannot be named or read is a model error naming the tensor, never a silent skip.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};

// The parts of onnx.proto (onnx/onnx.proto, proto2) that hold weights and name them; every other field is
// skipped by the decoder.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, optional, tag = "3")]
    name: Option<String>,
    #[prost(string, optional, tag = "4")]
    op_type: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    data_type: Option<i32>,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    int32_data: Vec<i32>,
    #[prost(string, optional, tag = "8")]
    name: Option<String>,
    /// Slices of the file's buffer, not copies (decoded from `Bytes`).
    #[prost(bytes = "bytes", optional, tag = "9")]
    raw_data: Option<prost::bytes::Bytes>,
    #[prost(int32, optional, tag = "14")]
    data_location: Option<i32>,
}

// TensorProto.DataType
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// A weight read from the file, under its module name (as the safetensors file names it).
pub struct OnnxTensor {
    pub shape: Vec<usize>,
    pub values: OnnxValues,
}

pub enum OnnxValues {
    F32(Vec<f32>),
    /// Quantized per tensor (one scale and zero point), as embedding tables are: kept in its bytes, so a
    /// vocabulary of 250,000 rows costs a quarter of its f32 size; rows are dequantized as they are read.
    Quantized(QuantizedRows),
}

pub struct QuantizedRows {
    pub bytes: Vec<u8>,
    pub signed: bool,
    pub scale: f32,
    pub zero_point: i32,
}

impl QuantizedRows {
    pub fn value(&self, i: usize) -> f32 {
        let q = if self.signed { self.bytes[i] as i8 as i32 } else { self.bytes[i] as i32 };
        (q - self.zero_point) as f32 * self.scale
    }

    /// Row `row` of a table of `dst.len()`-wide rows, dequantized into `dst`.
    pub fn read_row(&self, row: usize, dst: &mut [f32]) {
        let start = row * dst.len();
        for (j, d) in dst.iter_mut().enumerate() {
            *d = self.value(start + j);
        }
    }
}

/// Reads `path` and returns its weights by module name. `Err` (ERR_MODEL_INVALID) names what could not be read.
pub fn read(path: &Path) -> Result<HashMap<String, OnnxTensor>> {
    let invalid = |why: String| Error::model_invalid(format!("{}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("cannot read the ONNX file: {e}")))?;
    let model = ModelProto::decode(prost::bytes::Bytes::from(bytes)).map_err(|e| invalid(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| invalid("the ONNX model has no graph".into()))?;
    name_weights(graph).map_err(invalid)
}

fn name_weights(graph: GraphProto) -> std::result::Result<HashMap<String, OnnxTensor>, String> {
    let mut inits: HashMap<String, TensorProto> =
        graph.initializer.into_iter().map(|t| (t.name.clone().unwrap_or_default(), t)).collect();
    // Exporters store equal constants once and give each of their names through an `Identity` node (two
    // zero biases, say): those names are the same tensor. (Its bytes are shared, not copied.)
    for node in graph.node.iter().filter(|n| n.op_type.as_deref() == Some("Identity")) {
        if let (Some(input), Some(output)) = (node.input.first(), node.output.first()) {
            if let Some(tensor) = inits.get(input).cloned() {
                inits.entry(output.clone()).or_insert(TensorProto { name: Some(output.clone()), ..tensor });
            }
        }
    }
    let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
    for node in &graph.node {
        for input in &node.input {
            consumers.entry(input.as_str()).or_default().push(node);
        }
    }
    let op = |n: &NodeProto| n.op_type.clone().unwrap_or_default();
    let mut out = HashMap::new();
    // Linear layers: a product with a constant right-hand side ([in, out]), named by the bias its output reaches.
    for node in &graph.node {
        let kind = op(node);
        if kind != "MatMul" && kind != "MatMulInteger" {
            continue;
        }
        let Some(weight_name) = node.input.get(1).filter(|n| inits.contains_key(n.as_str())) else {
            continue; // attention's own products: both sides computed
        };
        let weight = &inits[weight_name.as_str()];
        let [rows, cols] = dims2(weight).ok_or_else(|| format!("{weight_name}: a product's weight must be 2-D, found {:?}", weight.dims))?;
        let bias = bias_reached(node, cols, &consumers, &inits)
            .ok_or_else(|| format!("cannot name the weight {weight_name} of node {:?}: no bias of {cols} values is added to its product", node.name.clone().unwrap_or_default()))?;
        let module = bias.strip_suffix(".bias").unwrap_or(&bias).to_string();
        let values = if kind == "MatMul" {
            floats(weight).ok_or_else(|| format!("{weight_name}: expected f32 weights"))?
        } else {
            let base = weight_name.strip_suffix("_quantized").unwrap_or(weight_name);
            let scale = lookup(&inits, &format!("{base}_scale"))?;
            let zero = node.input.get(3).map(|z| lookup(&inits, z)).transpose()?;
            dequantize_columns(weight, scale, zero, rows, cols).map_err(|e| format!("{weight_name}: {e}"))?
        };
        // [in, out] to the [out, in] a linear layer's weight has in safetensors.
        let mut transposed = vec![0f32; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                transposed[c * rows + r] = values[r * cols + c];
            }
        }
        let name = format!("{module}.weight");
        if out.insert(name.clone(), OnnxTensor { shape: vec![cols, rows], values: OnnxValues::F32(transposed) }).is_some() {
            return Err(format!("two products are named {name}"));
        }
    }
    // The other weights keep their names: f32 as stored, `X_quantized` (with `X_scale` and `X_zero_point`) as X.
    let names: Vec<String> = inits.keys().cloned().collect();
    for name in names {
        if !looks_like_module(&name) || out.contains_key(&name) {
            continue;
        }
        let tensor = &inits[&name];
        if element_count(tensor) == usize::MAX {
            return Err(format!("{name}: impossible dims {:?}", tensor.dims));
        }
        let shape: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        if let Some(base) = name.strip_suffix("_quantized") {
            let (scale, zero) = (lookup(&inits, &format!("{base}_scale"))?, lookup(&inits, &format!("{base}_zero_point"))?);
            let values = dequantize_table(tensor, scale, zero).map_err(|e| format!("{name}: {e}"))?;
            out.insert(base.to_string(), OnnxTensor { shape, values });
        } else if name.ends_with("_scale") || name.ends_with("_zero_point") {
            continue;
        } else if tensor.data_type == Some(FLOAT) {
            let values = floats(tensor).ok_or_else(|| format!("{name}: unreadable f32 data"))?;
            out.insert(name.clone(), OnnxTensor { shape, values: OnnxValues::F32(values) });
        }
    }
    inits.clear();
    Ok(out)
}

/// Initializers that exporters name after the module they belong to (`encoder.layer.0.output.dense.bias`),
/// not the anonymous constants (`onnx::MatMul_740`, `/encoder/Constant_output_0`).
fn looks_like_module(name: &str) -> bool {
    !name.starts_with("onnx::") && !name.starts_with('/') && name.contains('.')
}

fn lookup<'a>(inits: &'a HashMap<String, TensorProto>, name: &str) -> std::result::Result<&'a TensorProto, String> {
    inits.get(name).ok_or_else(|| format!("the quantized weights have no {name}"))
}

fn dims2(t: &TensorProto) -> Option<[usize; 2]> {
    match t.dims[..] {
        [r, c] if r > 0 && c > 0 => Some([r as usize, c as usize]),
        _ => None,
    }
}

/// The number of values `t`'s dims say it holds; `usize::MAX` (which no data length matches) for dims that
/// are negative or whose product overflows: a hostile file's shape never wraps around to a plausible one.
fn element_count(t: &TensorProto) -> usize {
    t.dims
        .iter()
        .try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
        .unwrap_or(usize::MAX)
}

/// Follows the product's output forward (through the casts and scale multiplications that quantized graphs
/// put after it) to the first `Add` with a constant `*.bias` of `len` values, and returns that bias's name.
fn bias_reached(node: &NodeProto, len: usize, consumers: &HashMap<&str, Vec<&NodeProto>>, inits: &HashMap<String, TensorProto>) -> Option<String> {
    let mut queue: VecDeque<(&str, usize)> = node.output.iter().map(|o| (o.as_str(), 0)).collect();
    while let Some((tensor, depth)) = queue.pop_front() {
        for next in consumers.get(tensor).into_iter().flatten() {
            if next.op_type.as_deref() == Some("Add") {
                let bias = next.input.iter().find(|i| i.ends_with(".bias") && inits.get(i.as_str()).is_some_and(|b| element_count(b) == len));
                if let Some(bias) = bias {
                    return Some(bias.clone());
                }
            }
            if depth < 4 && matches!(next.op_type.as_deref(), Some("Cast" | "Mul")) {
                queue.extend(next.output.iter().map(|o| (o.as_str(), depth + 1)));
            }
        }
    }
    None
}

fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != Some(FLOAT) {
        return None;
    }
    let values: Vec<f32> = match &t.raw_data {
        Some(raw) => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        None => t.float_data.clone(),
    };
    (values.len() == element_count(t)).then_some(values)
}

/// The bytes of an int8 or uint8 tensor, and whether they are signed.
fn quantized_bytes(t: &TensorProto) -> std::result::Result<(Vec<u8>, bool), String> {
    if t.data_location == Some(1) {
        return Err("weights stored outside the ONNX file are not supported".into());
    }
    let signed = match t.data_type {
        Some(INT8) => true,
        Some(UINT8) => false,
        other => return Err(format!("expected int8 or uint8 values, found ONNX data type {other:?}")),
    };
    let bytes = match &t.raw_data {
        Some(raw) => raw.to_vec(),
        None => t.int32_data.iter().map(|&v| v as u8).collect(),
    };
    if bytes.len() != element_count(t) {
        return Err(format!("{} bytes for shape {:?}", bytes.len(), t.dims));
    }
    Ok((bytes, signed))
}

/// Zero points as integers, one or `len` of them.
fn zero_points(t: &TensorProto) -> std::result::Result<Vec<i32>, String> {
    let (bytes, signed) = quantized_bytes(t)?;
    Ok(bytes.iter().map(|&b| if signed { b as i8 as i32 } else { b as i32 }).collect())
}

/// A `[rows, cols]` weight quantized per tensor or per column (its output channel), as f32.
fn dequantize_columns(w: &TensorProto, scale: &TensorProto, zero: Option<&TensorProto>, rows: usize, cols: usize) -> std::result::Result<Vec<f32>, String> {
    let (bytes, signed) = quantized_bytes(w)?;
    let scales = floats(scale).ok_or("unreadable scale")?;
    let zeros = match zero {
        Some(z) => zero_points(z)?,
        None => vec![0],
    };
    let per = |v: usize| v == 1 || v == cols;
    if !per(scales.len()) || !per(zeros.len()) {
        return Err(format!("{} scales and {} zero points for {cols} columns", scales.len(), zeros.len()));
    }
    let pick = |v: &[f32], c: usize| if v.len() == 1 { v[0] } else { v[c] };
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let q = if signed { bytes[r * cols + c] as i8 as i32 } else { bytes[r * cols + c] as i32 };
            let z = if zeros.len() == 1 { zeros[0] } else { zeros[c] };
            out.push((q - z) as f32 * pick(&scales, c));
        }
    }
    Ok(out)
}

/// A quantized table (an embedding's `Gather`): kept quantized when one scale covers it, else as f32.
fn dequantize_table(t: &TensorProto, scale: &TensorProto, zero: &TensorProto) -> std::result::Result<OnnxValues, String> {
    let (bytes, signed) = quantized_bytes(t)?;
    let scales = floats(scale).ok_or("unreadable scale")?;
    let zeros = zero_points(zero)?;
    if scales.len() == 1 && zeros.len() == 1 {
        return Ok(OnnxValues::Quantized(QuantizedRows { bytes, signed, scale: scales[0], zero_point: zeros[0] }));
    }
    // Per axis: the table's last axis (columns) is the only layout exporters produce for a Gather's weight.
    let [rows, cols] = dims2(t).ok_or_else(|| format!("per-axis quantization of a {:?} table", t.dims))?;
    let mut columns = t.clone();
    columns.raw_data = Some(bytes.into());
    columns.int32_data.clear();
    dequantize_columns(&columns, scale, Some(zero), rows, cols).map(OnnxValues::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64], data_type: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto { dims: dims.to_vec(), data_type: Some(data_type), name: Some(name.into()), raw_data: Some(raw.into()), ..Default::default() }
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: Some(format!("/{op}")),
            op_type: Some(op.into()),
        }
    }

    /// A quantized linear layer as `quantize_dynamic` writes it (per column, int8), a plain f32 one, and a
    /// per-tensor uint8 embedding table, through an encode/decode round trip of the protobuf.
    #[test]
    fn names_and_dequantizes_linear_layers_and_tables() {
        let graph = GraphProto {
            node: vec![
                node("MatMulInteger", &["xq", "onnx::MatMul_1_quantized", "xz", "onnx::MatMul_1_zero_point"], &["p"]),
                node("Cast", &["p"], &["pc"]),
                node("Mul", &["pc", "scales"], &["pm"]),
                node("Add", &["enc.q.bias", "pm"], &["y"]),
                node("MatMul", &["y", "onnx::MatMul_2"], &["m"]),
                node("Add", &["m", "enc.o.bias"], &["z"]),
                node("MatMul", &["z", "z2"], &["attention"]),
            ],
            initializer: vec![
                // [in 2, out 3]: column scales 1, 2, 0.5; zero points 0, 1, -1.
                tensor("onnx::MatMul_1_quantized", &[2, 3], INT8, [1i8, 2, 3, -4, 5, -6].iter().map(|&v| v as u8).collect()),
                tensor("onnx::MatMul_1_scale", &[3], FLOAT, f32s(&[1.0, 2.0, 0.5])),
                tensor("onnx::MatMul_1_zero_point", &[3], INT8, [0i8, 1, -1].iter().map(|&v| v as u8).collect()),
                tensor("enc.q.bias", &[3], FLOAT, f32s(&[0.0; 3])),
                tensor("onnx::MatMul_2", &[3, 2], FLOAT, f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
                tensor("enc.o.bias", &[2], FLOAT, f32s(&[0.5, -0.5])),
                tensor("emb.word.weight_quantized", &[2, 2], UINT8, vec![128, 130, 0, 255]),
                TensorProto { dims: vec![], data_type: Some(FLOAT), name: Some("emb.word.weight_scale".into()), float_data: vec![0.25], ..Default::default() },
                TensorProto { dims: vec![], data_type: Some(UINT8), name: Some("emb.word.weight_zero_point".into()), int32_data: vec![128], ..Default::default() },
            ],
        };
        let bytes = ModelProto { graph: Some(graph) }.encode_to_vec();
        let weights = name_weights(ModelProto::decode(prost::bytes::Bytes::from(bytes)).unwrap().graph.unwrap()).unwrap();
        let f = |name: &str| match &weights[name].values {
            OnnxValues::F32(v) => (weights[name].shape.clone(), v.clone()),
            OnnxValues::Quantized(_) => panic!("{name} is quantized"),
        };
        // q[r][c] - zp[c], times scale[c], transposed to [out, in].
        assert_eq!(f("enc.q.weight"), (vec![3, 2], vec![1.0, -4.0, 2.0, 8.0, 2.0, -2.5]));
        assert_eq!(f("enc.o.weight"), (vec![2, 3], vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]));
        assert_eq!(f("enc.o.bias"), (vec![2], vec![0.5, -0.5]));
        let OnnxValues::Quantized(table) = &weights["emb.word.weight"].values else { panic!("the table was expanded") };
        let mut row = [0f32; 2];
        table.read_row(1, &mut row);
        assert_eq!(row, [-32.0, 31.75]);
        assert!(!weights.keys().any(|k| k.starts_with("onnx::") || k.ends_with("_scale")), "{:?}", weights.keys().collect::<Vec<_>>());
    }

    #[test]
    fn a_product_no_bias_names_is_an_error_naming_it() {
        let graph = GraphProto {
            node: vec![node("MatMul", &["x", "onnx::MatMul_9"], &["y"])],
            initializer: vec![tensor("onnx::MatMul_9", &[1, 1], FLOAT, f32s(&[1.0]))],
        };
        let err = name_weights(graph).err().unwrap();
        assert!(err.contains("onnx::MatMul_9") && err.contains("no bias"), "{err}");
    }

    #[test]
    fn dims_that_overflow_or_are_negative_are_refused_not_wrapped() {
        for dims in [vec![1i64 << 40, 1 << 40], vec![-1, 4]] {
            let graph = GraphProto { node: vec![], initializer: vec![tensor("enc.x.bias", &dims, FLOAT, f32s(&[1.0; 4]))] };
            let err = name_weights(graph).err().unwrap();
            assert!(err.contains("enc.x.bias") && err.contains("impossible dims"), "{err}");
        }
    }

    #[test]
    fn a_file_that_is_not_onnx_is_a_model_error() {
        let path = std::env::temp_dir().join(format!("es-not-onnx-{}.onnx", std::process::id()));
        std::fs::write(&path, b"\xff\xff\xff not protobuf").unwrap();
        let err = read(&path).err().unwrap();
        assert_eq!(err.code, crate::ErrorCode::ModelInvalid);
        assert!(err.message.contains("not an ONNX model"), "{}", err.message);
        std::fs::remove_file(path).ok();
    }
}
