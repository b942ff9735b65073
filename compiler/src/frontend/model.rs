//! The frontend's own view of an ONNX model: nodes in topological order with typed attributes,
//! initializers without their bulk bytes, and dims that may still be symbolic.

use std::collections::BTreeMap;

/// One dimension as written in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Known(u64),
    /// A symbolic dim (`dim_param`), bound later by flags.
    Named(String),
    /// Neither a value nor a name (`?`).
    Unknown,
}

/// A graph input or output as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    /// ONNX `TensorProto.DataType` code; 0 when the model does not say.
    pub elem_type: i32,
    /// `None` when the model declares no shape; otherwise one entry per dim.
    pub dims: Option<Vec<Dim>>,
    /// False for non-tensor types (sequences, maps, optionals).
    pub is_tensor: bool,
}

/// A constant tensor: an initializer or the value of a Constant node.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<u64>,
    /// The values as little-endian bytes, kept only for small tensors (shapes, scalars) that a
    /// compile needs to read. Weights' bytes are never held here.
    pub small_data: Option<Vec<u8>>,
    /// Set when the bytes live in an external file (validated to stay inside the model's folder).
    /// They are read only if a compile needs the values, and only for small tensors.
    pub external: Option<ExternalData>,
}

/// Where an external tensor's bytes are: a file relative to the model's folder, and a byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalData {
    pub location: String,
    pub offset: u64,
    /// `None` when the model leaves the length to be implied by the type.
    pub length: Option<u64>,
}

impl ConstTensor {
    /// The values as i64, if the tensor is a small integer tensor.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        let data = self.small_data.as_ref()?;
        match self.elem_type {
            7 => Some(
                data.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                    .collect(),
            ),
            6 => Some(
                data.chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("chunk of 4"))))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A typed attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Tensor(ConstTensor),
    /// A subgraph (If/Loop/Scan bodies); its contents are not needed to reject it.
    Graph,
    Other,
}

/// One ONNX node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's name, or `<op_type>_<index>` when the model leaves it empty.
    pub name: String,
    pub op_type: String,
    /// Empty for the default ONNX domain.
    pub domain: String,
    /// Input value names; an empty string marks an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: BTreeMap<String, Attr>,
}

impl Node {
    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attrs.get(name) {
            Some(Attr::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attrs.get(name) {
            Some(Attr::Float(f)) => Some(*f),
            _ => None,
        }
    }

    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }

    pub fn attr_str(&self, name: &str) -> Option<&str> {
        match self.attrs.get(name) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The `i`th input name, if present and not omitted.
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }
}

/// A loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxModel {
    pub graph_name: String,
    /// Opset version per domain ("" is the default ONNX domain).
    pub opsets: BTreeMap<String, i64>,
    /// Graph inputs that are not initializers.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub initializers: BTreeMap<String, ConstTensor>,
    /// Nodes in a topological order (the model's own order where it already was one).
    pub nodes: Vec<Node>,
    /// The folder external-data locations are relative to (the model file's folder).
    pub base_dir: Option<std::path::PathBuf>,
    /// Whether every initializer's values are read (for `--embed-weights`); otherwise a large
    /// weight's bytes are never read.
    pub all_values: bool,
}

impl OnnxModel {
    /// The default-domain opset version.
    pub fn opset(&self) -> i64 {
        self.opsets
            .get("")
            .or_else(|| self.opsets.get("ai.onnx"))
            .copied()
            .unwrap_or(1)
    }
}

/// The IR dtype of an ONNX element type code, or the reason it has none.
pub fn ir_dtype(code: i32) -> Result<lpuc_ir::DType, &'static str> {
    use lpuc_ir::DType;
    match code {
        1 => Ok(DType::F32),
        2 => Ok(DType::U8),
        3 => Ok(DType::I8),
        6 => Ok(DType::I32),
        7 => Ok(DType::I64),
        9 => Ok(DType::Bool),
        10 => Ok(DType::F16),
        16 => Ok(DType::Bf16),
        8 => Err("string tensors have no fixed size and no arithmetic on the LPU"),
        14 | 15 => Err("complex numbers are not supported by the LPU's units"),
        11 => Err("float64 has no LPU datapath"),
        0 => Err("the model does not declare an element type"),
        4 | 5 | 12 | 13 => Err("16/32/64-bit unsigned and int16 tensors are not supported"),
        17..=20 | 24 => Err("float8 types are not supported by lpu-v1"),
        21..=23 => Err("4-bit types are not supported by lpu-v1"),
        25 | 26 => Err("2-bit types are not supported by lpu-v1"),
        _ => Err("unknown element type code"),
    }
}
