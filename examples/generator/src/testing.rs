//! Test helpers for inspecting generated models: op counts, value definitions, lookups by name.

use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::{type_proto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use std::collections::BTreeSet;

/// Serialises and parses back, as a reader of the file would see it.
pub fn round_trip(model: &ModelProto) -> ModelProto {
    ModelProto::parse_from_bytes(&crate::builder::encode(model)).expect("generated model parses")
}

/// Op types in node order.
pub fn op_types(model: &ModelProto) -> Vec<&str> {
    model.graph.node.iter().map(|n| n.op_type.as_str()).collect()
}

/// How often `op` occurs.
pub fn count(ops: &[&str], op: &str) -> usize {
    ops.iter().filter(|&&o| o == op).count()
}

/// The set of op types.
pub fn op_set(model: &ModelProto) -> BTreeSet<&str> {
    op_types(model).into_iter().collect()
}

/// Every node input is a graph input, an initializer or an earlier node's output, every value is
/// defined once, and every graph output is defined.
pub fn assert_defined_before_use(path: &str, m: &ModelProto) {
    let g = &m.graph;
    let mut defined: BTreeSet<&str> = BTreeSet::new();
    let sources = g
        .input
        .iter()
        .map(|v| v.name.as_str())
        .chain(g.initializer.iter().map(|t| t.name.as_str()));
    for name in sources {
        assert!(defined.insert(name), "{path}: {name} defined twice");
    }
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            assert!(
                defined.contains(i.as_str()),
                "{path}: {} uses undefined {i}",
                n.name
            );
        }
        for o in &n.output {
            assert!(defined.insert(o.as_str()), "{path}: {o} defined twice");
        }
    }
    for o in &g.output {
        assert!(
            defined.contains(o.name.as_str()),
            "{path}: output {} undefined",
            o.name
        );
    }
}

/// `(elem_type, dims)` of a value, dims as `"N"`, the dim_param, or `"?"`.
pub fn signature(v: &ValueInfoProto) -> (i32, Vec<String>) {
    let Some(type_proto::Value::TensorType(t)) = &v.type_.value else {
        panic!("{} is not a tensor", v.name);
    };
    let dims = t
        .shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::DimValue(n)) => n.to_string(),
            Some(DimValue::DimParam(p)) => p.clone(),
            _ => "?".to_string(),
        })
        .collect();
    (t.elem_type, dims)
}

/// Graph input names.
pub fn input_names(m: &ModelProto) -> Vec<&str> {
    m.graph.input.iter().map(|v| v.name.as_str()).collect()
}

/// Graph output names.
pub fn output_names(m: &ModelProto) -> Vec<&str> {
    m.graph.output.iter().map(|v| v.name.as_str()).collect()
}

/// Each layer adds the same number of nodes: a model of 1, 2 and 3 layers from `built` grows by a
/// constant step (`what` names the case in the failure message).
pub fn assert_nodes_per_layer_constant(what: &str, built: impl Fn(usize) -> ModelProto) {
    let n: Vec<usize> = (1..=3).map(|layers| built(layers).graph.node.len()).collect();
    assert_eq!(n[2] - n[1], n[1] - n[0], "{what}");
}

/// A graph item with a name: a node, an initializer, an input or an output.
pub trait Named {
    fn name(&self) -> &str;
}

impl Named for NodeProto {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for TensorProto {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for ValueInfoProto {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The item of `items` (`m.graph.node`, `.initializer`, `.input` or `.output`) called `name`.
pub fn named<'m, T: Named>(items: &'m [T], name: &str) -> &'m T {
    let found = items.iter().find(|item| item.name() == name);
    found.unwrap_or_else(|| panic!("nothing called {name}"))
}
