//! Small helpers for assembling ONNX protobuf messages, so each model module reads like the graph it describes.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{EnumOrUnknown, MessageField};

/// IR version written into every example model.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset; 17 is the first with `LayerNormalization`.
pub const OPSET_VERSION: i64 = 17;
/// `producer_name` written into every example model.
pub const PRODUCER_NAME: &str = "lpuc-examples";

/// One dimension of a graph input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed extent.
    Fixed(i64),
    /// A symbolic extent (`dim_param`), bound at compile time.
    Named(&'static str),
    /// A dimension whose extent is unknown (neither value nor param), e.g. a data-dependent count.
    Unknown,
}

/// A typed tensor value description with a full shape.
pub fn tensor_value(name: &str, elem_type: DataType, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        match *d {
            Dim::Fixed(v) => dim.set_dim_value(v),
            Dim::Named(p) => dim.set_dim_param(p.to_string()),
            Dim::Unknown => {}
        }
        shape.dim.push(dim);
    }
    value_info(name, elem_type, MessageField::some(shape))
}

/// A typed tensor value description whose shape is left unknown.
pub fn tensor_value_unshaped(name: &str, elem_type: DataType) -> ValueInfoProto {
    value_info(name, elem_type, MessageField::none())
}

fn value_info(name: &str, elem_type: DataType, shape: MessageField<TensorShapeProto>) -> ValueInfoProto {
    let tensor = type_proto::Tensor {
        elem_type: elem_type as i32,
        shape,
        ..Default::default()
    };
    let ty = TypeProto {
        value: Some(type_proto::Value::TensorType(tensor)),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(ty),
        ..Default::default()
    }
}

/// splitmix64 step: tiny, well-mixed, and identical on every platform.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of the tensor name, so each tensor has its own stable stream.
fn seed_for(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// `count` deterministic values uniform in `[center - amplitude, center + amplitude)`.
pub fn pseudo_random(name: &str, count: usize, center: f32, amplitude: f32) -> Vec<f32> {
    let mut state = seed_for(name);
    (0..count)
        .map(|_| {
            // 24 random bits are exactly representable in an f32.
            let unit = (splitmix64(&mut state) >> 40) as f32 / (1u32 << 24) as f32;
            center + (unit * 2.0 - 1.0) * amplitude
        })
        .collect()
}

fn element_count(dims: &[i64]) -> usize {
    dims.iter().map(|&d| d as usize).product()
}

/// An f32 initializer with explicit values (row-major, little-endian raw data).
pub fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    debug_assert_eq!(element_count(dims), values.len(), "{name}");
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A rank-0 f32 initializer.
pub fn f32_scalar(name: &str, value: f32) -> TensorProto {
    f32_tensor(name, &[], &[value])
}

/// A weight or bias initializer: uniform in `[-1, 1) / sqrt(fan_in)`, seeded by `name`.
pub fn f32_weight(name: &str, dims: &[i64], fan_in: i64) -> TensorProto {
    let amplitude = 1.0 / (fan_in as f32).sqrt();
    let values = pseudo_random(name, element_count(dims), 0.0, amplitude);
    f32_tensor(name, dims, &values)
}

/// A normalisation scale: close to one (1 ± 0.05), seeded by `name`.
pub fn f32_norm_scale(name: &str, dims: &[i64]) -> TensorProto {
    let values = pseudo_random(name, element_count(dims), 1.0, 0.05);
    f32_tensor(name, dims, &values)
}

/// A normalisation shift: close to zero (± 0.05), seeded by `name`.
pub fn f32_norm_bias(name: &str, dims: &[i64]) -> TensorProto {
    let values = pseudo_random(name, element_count(dims), 0.0, 0.05);
    f32_tensor(name, dims, &values)
}

/// An int64 initializer (e.g. a Reshape target shape).
pub fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    debug_assert_eq!(element_count(dims), values.len(), "{name}");
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::INT64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A bool initializer (one byte per element).
pub fn bool_tensor(name: &str, dims: &[i64], values: &[bool]) -> TensorProto {
    debug_assert_eq!(element_count(dims), values.len(), "{name}");
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::BOOL as i32,
        raw_data: values.iter().map(|&v| u8::from(v)).collect(),
        ..Default::default()
    }
}

fn attribute(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: EnumOrUnknown::new(ty),
        ..Default::default()
    }
}

/// An `INT` attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: value,
        ..attribute(name, AttributeType::INT)
    }
}

/// An `INTS` attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: values.to_vec(),
        ..attribute(name, AttributeType::INTS)
    }
}

/// A `FLOAT` attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: value,
        ..attribute(name, AttributeType::FLOAT)
    }
}

/// A `TENSOR` attribute (e.g. the `value` of a Constant node).
pub fn attr_tensor(name: &str, value: TensorProto) -> AttributeProto {
    AttributeProto {
        t: MessageField::some(value),
        ..attribute(name, AttributeType::TENSOR)
    }
}

/// A `GRAPH` attribute (a control-flow body or branch).
pub fn attr_graph(name: &str, graph: GraphProto) -> AttributeProto {
    AttributeProto {
        g: MessageField::some(graph),
        ..attribute(name, AttributeType::GRAPH)
    }
}

/// A default-domain node.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// Accumulates nodes, initializers, inputs and outputs in insertion order.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: name.to_string(),
                ..Default::default()
            },
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, value: ValueInfoProto) {
        self.graph.input.push(value);
    }

    /// Declares a graph output.
    pub fn output(&mut self, value: ValueInfoProto) {
        self.graph.output.push(value);
    }

    /// Adds an initializer and returns its name, for use as a node input.
    pub fn init(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name.clone();
        self.graph.initializer.push(tensor);
        name
    }

    /// Adds a single-output node whose output is named `<name>_output_0`, and returns that name.
    pub fn op(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) -> String {
        let output = format!("{name}_output_0");
        self.op_to(op_type, name, inputs, &output, attributes);
        output
    }

    /// Adds a single-output node writing the value `output` (e.g. a graph output).
    pub fn op_to(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<AttributeProto>,
    ) {
        self.graph
            .node
            .push(node(op_type, name, inputs, &[output], attributes));
    }

    /// Adds a node as given (e.g. one with several outputs).
    pub fn push(&mut self, node: NodeProto) {
        self.graph.node.push(node);
    }

    /// The finished graph.
    pub fn finish(self) -> GraphProto {
        self.graph
    }
}

/// Wraps `graph` in a model with the fixed IR version, opset and producer.
pub fn model(graph: GraphProto) -> ModelProto {
    model_at(graph, OPSET_VERSION)
}

/// Like [`model`], importing default-domain opset `opset` instead, so a family can pin the operator
/// versions (attribute-or-input forms) it was written against.
pub fn model_at(graph: GraphProto, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
            ..Default::default()
        }],
        producer_name: PRODUCER_NAME.to_string(),
        graph: MessageField::some(graph),
        ..Default::default()
    }
}

/// Serialises a model.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    // proto3 messages are always initialised and these models are far below protobuf's 2 GiB limit,
    // so serialisation cannot fail.
    model
        .write_to_bytes()
        .expect("serialising an in-memory ONNX model")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_is_seeded_by_name_and_bounded() {
        let a = pseudo_random("w", 1000, 0.0, 0.05);
        assert_eq!(a, pseudo_random("w", 1000, 0.0, 0.05));
        assert_ne!(a, pseudo_random("v", 1000, 0.0, 0.05));
        assert!(a.iter().all(|v| (-0.05..0.05).contains(v)));
        assert!(a.iter().any(|&v| v > 0.04) && a.iter().any(|&v| v < -0.04));
    }

    #[test]
    fn weight_scale_follows_fan_in() {
        let t = f32_weight("w", &[4, 100], 100);
        assert_eq!(t.raw_data.len(), 400 * 4);
        let max = t
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).abs())
            .fold(0.0f32, f32::max);
        assert!(max <= 0.1 && max > 0.09, "{max}");
    }

    #[test]
    fn scalar_is_rank_zero() {
        let t = f32_scalar("c", 2.0);
        assert!(t.dims.is_empty());
        assert_eq!(t.raw_data, 2.0f32.to_le_bytes());
    }
}
