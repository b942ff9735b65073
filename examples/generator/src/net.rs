//! A model under construction for the model families: graph, exporter-style names, constants, weights.
//!
//! Node names follow the TorchScript exporter (`/h.0/attn/MatMul`, then `/h.0/attn/MatMul_1`), so
//! diagnostics on these models read like diagnostics on real exports. Parameters go through one door,
//! [`Net::param`], which stores them in the configured dtype, inline or as external data, and returns
//! the name of an f32 value the graph can use (adding the widening Cast or DequantizeLinear).

use crate::builder::{
    attr_int, attr_tensor, bool_tensor, f32_scalar, f32_tensor, i64_tensor, model_at, node, tensor_value,
    Dim, GraphBuilder,
};
use crate::external::{DataFile, ExternalData};
use crate::weights::{int8_scale, stored_bytes, Values, WeightDtype};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, ModelProto, TensorProto};
use std::collections::BTreeMap;

/// Tensors with more elements than this are moved to external data when that is enabled
/// (the ONNX tools use a similar threshold; shape constants and scalars always stay inline).
pub const EXTERNAL_MIN_ELEMENTS: u64 = 1024;

/// Inline weights beyond this many bytes would push the protobuf towards its 2 GiB limit.
const INLINE_LIMIT_BYTES: u64 = 1 << 30;

/// How small constants (shapes, axes, scalars) are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstStyle {
    /// `Constant` nodes, as the TorchScript exporter leaves them.
    Node,
    /// Initializers, as constant folding (or an optimiser) leaves them.
    Initializer,
}

/// Where weight bytes go.
#[derive(Debug)]
pub enum Layout {
    /// In each initializer's `raw_data`.
    Inline,
    /// Tensors above [`EXTERNAL_MIN_ELEMENTS`] elements in one external file.
    External(ExternalData),
}

/// What a stored float tensor is, for parameter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A trained parameter (counted in the model's parameter count).
    Parameter,
    /// A derived table (rotary cos/sin, a mask), stored like a weight but not trained.
    Buffer,
}

/// One float tensor stored through [`Net::param`] or [`Net::buffer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub elements: u64,
    pub dtype: WeightDtype,
    pub role: Role,
    pub external: bool,
}

/// A finished model with its external data file, if any.
#[derive(Debug)]
pub struct Built {
    pub model: ModelProto,
    pub data: Option<DataFile>,
    pub stored: Vec<Stored>,
}

impl Built {
    /// Number of trained parameters.
    pub fn parameter_count(&self) -> u64 {
        self.stored
            .iter()
            .filter(|s| s.role == Role::Parameter)
            .map(|s| s.elements)
            .sum()
    }
}

/// The graph being built plus everything needed to store its weights.
#[derive(Debug)]
pub struct Net {
    graph: GraphBuilder,
    opset: i64,
    dtype: WeightDtype,
    consts: ConstStyle,
    layout: Layout,
    names: BTreeMap<String, u32>,
    inline_bytes: u64,
    stored: Vec<Stored>,
}

impl Net {
    /// An empty graph called `name` for default-domain `opset`, storing parameters as `dtype`.
    pub fn new(name: &str, opset: i64, dtype: WeightDtype, consts: ConstStyle, layout: Layout) -> Self {
        Net {
            graph: GraphBuilder::new(name),
            opset,
            dtype,
            consts,
            layout,
            names: BTreeMap::new(),
            inline_bytes: 0,
            stored: Vec::new(),
        }
    }

    /// The opset the graph is written for.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem_type: DataType, dims: &[Dim]) {
        self.graph.input(tensor_value(name, elem_type, dims));
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem_type: DataType, dims: &[Dim]) {
        self.graph.output(tensor_value(name, elem_type, dims));
    }

    /// `{scope}/{op_type}`, suffixed `_1`, `_2`, ... when already taken, as the exporter does.
    fn unique(&mut self, scope: &str, op_type: &str) -> String {
        let base = format!("{scope}/{op_type}");
        let n = self.names.entry(base.clone()).or_insert(0);
        let name = if *n == 0 { base } else { format!("{base}_{n}") };
        *n += 1;
        name
    }

    /// Adds a node with one output named `<node name>_output_0` and returns that name.
    pub fn op(&mut self, scope: &str, op_type: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let name = self.unique(scope, op_type);
        self.graph.op(op_type, &name, inputs, attrs)
    }

    /// Adds a node with `outputs` outputs named `<node name>_output_<i>`.
    pub fn op_multi(
        &mut self,
        scope: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.unique(scope, op_type);
        let outs: Vec<String> = (0..outputs).map(|i| format!("{name}_output_{i}")).collect();
        let out_refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.graph.push(node(op_type, &name, inputs, &out_refs, attrs));
        outs
    }

    /// Adds a node writing the value `output` (a graph output).
    pub fn op_to(
        &mut self,
        scope: &str,
        op_type: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<AttributeProto>,
    ) {
        let name = self.unique(scope, op_type);
        self.graph.op_to(op_type, &name, inputs, output, attrs);
    }

    /// A small unnamed constant, as a Constant node or an initializer depending on the style.
    fn constant(&mut self, scope: &str, tensor: TensorProto) -> String {
        match self.consts {
            ConstStyle::Node => self.op(scope, "Constant", &[], vec![attr_tensor("value", tensor)]),
            ConstStyle::Initializer => {
                let name = format!("{}_output_0", self.unique(scope, "Constant"));
                self.graph.init(TensorProto { name, ..tensor })
            }
        }
    }

    /// A 1-D int64 constant (axes, shapes, slice bounds).
    pub fn ints(&mut self, scope: &str, values: &[i64]) -> String {
        self.constant(scope, i64_tensor("", &[values.len() as i64], values))
    }

    /// A rank-0 int64 constant (a Gather index, a Range bound).
    pub fn int(&mut self, scope: &str, value: i64) -> String {
        self.constant(scope, i64_tensor("", &[], &[value]))
    }

    /// A rank-0 f32 constant.
    pub fn float(&mut self, scope: &str, value: f32) -> String {
        self.constant(scope, f32_tensor("", &[], &[value]))
    }

    /// An always-inline int64 initializer called `name` (an index buffer such as BERT's position ids).
    pub fn int_buffer(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        self.graph.init(i64_tensor(name, dims, values))
    }

    /// An always-inline bool initializer called `name` (a causal-mask buffer).
    pub fn bool_buffer(&mut self, name: &str, dims: &[i64], values: &[bool]) -> String {
        self.graph.init(bool_tensor(name, dims, values))
    }

    /// A trained parameter stored in the model's weight dtype; returns an f32 value name.
    pub fn param(&mut self, name: &str, dims: &[i64], values: Values) -> String {
        self.store(name, dims, values, self.dtype, Role::Parameter)
    }

    /// A float buffer (rotary tables): stored as f16 when weights are f16, else f32 (int8 tables
    /// would be too coarse to be realistic); returns an f32 value name.
    pub fn buffer(&mut self, name: &str, dims: &[i64], values: Values) -> String {
        let dtype = match self.dtype {
            WeightDtype::F16 => WeightDtype::F16,
            WeightDtype::F32 | WeightDtype::I8 => WeightDtype::F32,
        };
        self.store(name, dims, values, dtype, Role::Buffer)
    }

    fn store(&mut self, name: &str, dims: &[i64], values: Values, dtype: WeightDtype, role: Role) -> String {
        let elements: u64 = dims.iter().map(|&d| d as u64).product();
        let length = elements * dtype.bytes();
        let mut tensor = TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: dtype.data_type() as i32,
            ..Default::default()
        };
        let external = match &mut self.layout {
            Layout::External(ext) if elements > EXTERNAL_MIN_ELEMENTS => {
                let bytes = ext
                    .wants_bytes()
                    .then(|| stored_bytes(name, elements as usize, &values, dtype));
                ext.place(&mut tensor, length, bytes.as_deref());
                true
            }
            _ => {
                self.inline_bytes += length;
                // Past the limit the bytes are not computed; `finish` reports the problem instead.
                if self.inline_bytes <= INLINE_LIMIT_BYTES {
                    tensor.raw_data = stored_bytes(name, elements as usize, &values, dtype);
                }
                false
            }
        };
        self.graph.init(tensor);
        self.stored.push(Stored {
            name: name.to_string(),
            elements,
            dtype,
            role,
            external,
        });
        match dtype {
            WeightDtype::F32 => name.to_string(),
            WeightDtype::F16 => {
                let cast = format!("{name}/Cast");
                self.graph.op(
                    "Cast",
                    &cast,
                    &[name],
                    vec![attr_int("to", DataType::FLOAT as i64)],
                )
            }
            WeightDtype::I8 => {
                let scale = self
                    .graph
                    .init(f32_scalar(&format!("{name}_scale"), int8_scale(&values)));
                let zero = self.graph.init(TensorProto {
                    name: format!("{name}_zero_point"),
                    data_type: DataType::INT8 as i32,
                    raw_data: vec![0],
                    ..Default::default()
                });
                let dq = format!("{name}/DequantizeLinear");
                self.graph
                    .op("DequantizeLinear", &dq, &[name, &scale, &zero], vec![])
            }
        }
    }

    /// The finished model, or why it cannot be written.
    pub fn finish(self) -> Result<Built, String> {
        if self.inline_bytes > INLINE_LIMIT_BYTES {
            return Err(format!(
                "{} bytes of inline weights would not fit a protobuf (2 GiB limit); use external weights",
                self.inline_bytes
            ));
        }
        let data = match self.layout {
            Layout::Inline => None,
            Layout::External(ext) => Some(ext.finish().map_err(|e| format!("writing external data: {e}"))?),
        };
        Ok(Built {
            model: model_at(self.graph.finish(), self.opset),
            data,
            stored: self.stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::external::Sink;

    fn net(dtype: WeightDtype, consts: ConstStyle, layout: Layout) -> Net {
        Net::new("t", 18, dtype, consts, layout)
    }

    #[test]
    fn names_are_suffixed_like_the_exporter() {
        let mut n = net(WeightDtype::F32, ConstStyle::Node, Layout::Inline);
        assert_eq!(n.op("/a", "Relu", &["x"], vec![]), "/a/Relu_output_0");
        assert_eq!(n.op("/a", "Relu", &["x"], vec![]), "/a/Relu_1_output_0");
        assert_eq!(n.op("/b", "Relu", &["x"], vec![]), "/b/Relu_output_0");
        assert_eq!(n.ints("/a", &[1]), "/a/Constant_output_0");
    }

    #[test]
    fn constant_styles() {
        let mut n = net(WeightDtype::F32, ConstStyle::Initializer, Layout::Inline);
        let c = n.ints("/s", &[0, 1]);
        let built = n.finish().expect("small");
        let g = &built.model.graph;
        assert!(g.node.is_empty());
        assert_eq!(g.initializer[0].name, c);
        assert_eq!(g.initializer[0].dims, [2]);
    }

    #[test]
    fn dtypes_add_their_widening_node() {
        for (dtype, op) in [
            (WeightDtype::F32, None),
            (WeightDtype::F16, Some("Cast")),
            (WeightDtype::I8, Some("DequantizeLinear")),
        ] {
            let mut n = net(dtype, ConstStyle::Node, Layout::Inline);
            let v = n.param("w", &[4, 4], Values::fan_in(4));
            let built = n.finish().expect("small");
            let g = &built.model.graph;
            assert_eq!(g.node.first().map(|x| x.op_type.as_str()), op);
            assert_eq!(g.initializer[0].data_type, dtype.data_type() as i32);
            assert_eq!(g.initializer[0].raw_data.len() as u64, 16 * dtype.bytes());
            if op.is_some() {
                assert_eq!(g.node[0].output[0], v);
            } else {
                assert_eq!(v, "w");
            }
            assert_eq!(built.parameter_count(), 16);
        }
    }

    #[test]
    fn only_large_tensors_go_external() {
        let ext = ExternalData::new("m.data", Sink::Memory(Vec::new()));
        let mut n = net(WeightDtype::F32, ConstStyle::Node, Layout::External(ext));
        n.param("big", &[1025], Values::norm_bias());
        n.param("small", &[1024], Values::norm_bias());
        let built = n.finish().expect("ok");
        let g = &built.model.graph;
        assert!(!g.initializer[0].external_data.is_empty() && g.initializer[0].raw_data.is_empty());
        assert!(g.initializer[1].external_data.is_empty() && g.initializer[1].raw_data.len() == 4096);
        let data = built.data.expect("data file");
        assert_eq!(data.len, 1025 * 4);
        assert_eq!(built.stored.iter().filter(|s| s.external).count(), 1);
    }

    #[test]
    fn oversized_inline_weights_are_refused_without_computing_them() {
        let mut n = net(WeightDtype::F32, ConstStyle::Node, Layout::Inline);
        n.param("huge", &[1 << 20, 1 << 10], Values::norm_bias());
        assert!(n.finish().is_err());
    }
}
