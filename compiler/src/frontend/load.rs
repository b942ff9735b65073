//! Reading an ONNX file into the frontend model: parse, convert, order topologically.
//!
//! Everything here treats the file as hostile: sizes are checked before use, external-data paths
//! must stay inside the model's folder, cycles and dangling names are errors, never panics.

use super::model::{Attr, ConstTensor, Dim, ExternalData, Node, OnnxModel, ValueInfo};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, type_proto, AttributeProto, Message,
    ModelProto, TensorProto, ValueInfoProto,
};
use petgraph::graph::DiGraph;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::{Component, Path};
use thiserror::Error;

/// Tensors with at most this many elements keep their values (shape tensors, scalars).
const SMALL_TENSOR_ELEMENTS: u64 = 4096;

/// Protobuf messages cannot exceed 2 GiB; larger models must use external data.
const MAX_MODEL_FILE_BYTES: u64 = 2 << 30;

/// Why a model file could not be read. All of these are the input's fault (exit code 2).
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(
        "{path} is {bytes} bytes, above protobuf's 2 GiB limit; store the weights as ONNX external data"
    )]
    TooLarge { path: String, bytes: u64 },
    #[error("{path} is not a valid ONNX model (protobuf parse failed: {message}); the file may be truncated or not ONNX")]
    Parse { path: String, message: String },
    #[error("{path}: the model has no graph")]
    NoGraph { path: String },
    #[error("malformed model: {0}")]
    Malformed(String),
    #[error("the graph has a cycle through node '{0}'")]
    Cycle(String),
    #[error("initializer '{name}' has external data at '{location}', which leaves the model's folder; only relative paths inside it are allowed")]
    ExternalPathEscapes { name: String, location: String },
}

/// Read and convert the model at `path`.
pub fn load_model(path: &Path) -> Result<OnnxModel, LoadError> {
    load(path, false)
}

/// [`load_model`], reading every initializer's values too (inline and external), for a compile
/// that embeds the weights or an emulation that needs them.
pub fn load_model_with_values(path: &Path) -> Result<OnnxModel, LoadError> {
    load(path, true)
}

fn load(path: &Path, all_values: bool) -> Result<OnnxModel, LoadError> {
    let shown = path.display().to_string();
    let io = |source| LoadError::Io {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: shown,
            bytes: meta.len(),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let proto = ModelProto::parse_from_bytes(&bytes).map_err(|e| LoadError::Parse {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    drop(bytes);
    let mut model = convert_keeping(&proto, &shown, all_values)?;
    model.base_dir = Some(
        path.parent()
            .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf),
    );
    Ok(model)
}

/// Convert a parsed model.
/// `path` is only used in messages.
pub fn convert(proto: &ModelProto, path: &str) -> Result<OnnxModel, LoadError> {
    convert_keeping(proto, path, false)
}

/// [`convert`], keeping every initializer's inline values when `all_values`.
fn convert_keeping(proto: &ModelProto, path: &str, all_values: bool) -> Result<OnnxModel, LoadError> {
    let graph = proto.graph.as_ref().ok_or_else(|| LoadError::NoGraph {
        path: path.to_string(),
    })?;
    let mut opsets = BTreeMap::new();
    for o in &proto.opset_import {
        let domain = if o.domain == "ai.onnx" {
            String::new()
        } else {
            o.domain.clone()
        };
        opsets.insert(domain, o.version);
    }
    let mut initializers = BTreeMap::new();
    for t in &graph.initializer {
        if t.name.is_empty() {
            return Err(LoadError::Malformed("an initializer has no name".into()));
        }
        let c = const_tensor_keeping(t, &t.name, all_values)?;
        if initializers.insert(t.name.clone(), c).is_some() {
            return Err(LoadError::Malformed(format!(
                "initializer '{}' is defined more than once",
                t.name
            )));
        }
    }
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains_key(&v.name))
        .map(value_info)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(value_info)
        .collect::<Result<Vec<_>, _>>()?;
    let mut input_names = BTreeSet::new();
    for v in &inputs {
        if v.name.is_empty() || !input_names.insert(v.name.as_str()) {
            return Err(LoadError::Malformed(format!(
                "graph input '{}' is empty or declared more than once",
                v.name
            )));
        }
    }
    if outputs.is_empty() {
        return Err(LoadError::Malformed("the graph declares no outputs".into()));
    }
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut seen_names = BTreeSet::new();
    for (i, n) in graph.node.iter().enumerate() {
        let mut name = if n.name.is_empty() {
            format!("{}_{i}", n.op_type)
        } else {
            n.name.clone()
        };
        // A repeated (or empty) name gets a suffix that is itself unused.
        let base = name.clone();
        let mut k = i;
        while !seen_names.insert(name.clone()) {
            name = format!("{base}#{k}");
            k += 1;
        }
        let mut attrs = BTreeMap::new();
        for a in &n.attribute {
            attrs.insert(a.name.clone(), attr(a, &name)?);
        }
        nodes.push(Node {
            name,
            op_type: n.op_type.clone(),
            domain: if n.domain == "ai.onnx" {
                String::new()
            } else {
                n.domain.clone()
            },
            inputs: n.input.clone(),
            outputs: n.output.clone(),
            attrs,
        });
    }
    let defined: BTreeSet<&str> = inputs
        .iter()
        .map(|v| v.name.as_str())
        .chain(initializers.keys().map(String::as_str))
        .collect();
    let nodes = topological_order(nodes, &defined)?;
    Ok(OnnxModel {
        graph_name: if graph.name.is_empty() {
            "main".into()
        } else {
            graph.name.clone()
        },
        opsets,
        inputs,
        outputs,
        initializers,
        nodes,
        base_dir: None,
        all_values,
    })
}

fn value_info(v: &ValueInfoProto) -> Result<ValueInfo, LoadError> {
    if let Some(type_proto::Value::TensorType(t)) = v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        if let Some(s) = t.shape.as_ref() {
            for (axis, d) in s.dim.iter().enumerate() {
                if let Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(x)) = &d.value {
                    if *x < 0 {
                        return Err(LoadError::Malformed(format!(
                            "'{}' declares dim {axis} as {x}; dims must be non-negative",
                            v.name
                        )));
                    }
                }
            }
        }
    }
    let Some(ty) = v.type_.as_ref() else {
        return Ok(ValueInfo {
            name: v.name.clone(),
            elem_type: 0,
            dims: None,
            is_tensor: true,
        });
    };
    match &ty.value {
        Some(type_proto::Value::TensorType(t)) => {
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                            Dim::Known(*v as u64)
                        }
                        Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimParam(p))
                            if !p.is_empty() =>
                        {
                            Dim::Named(p.clone())
                        }
                        _ => Dim::Unknown,
                    })
                    .collect()
            });
            Ok(ValueInfo {
                name: v.name.clone(),
                elem_type: t.elem_type,
                dims,
                is_tensor: true,
            })
        }
        None => Ok(ValueInfo {
            name: v.name.clone(),
            elem_type: 0,
            dims: None,
            is_tensor: true,
        }),
        Some(_) => Ok(ValueInfo {
            name: v.name.clone(),
            elem_type: 0,
            dims: None,
            is_tensor: false,
        }),
    }
}

fn attr(a: &AttributeProto, node: &str) -> Result<Attr, LoadError> {
    Ok(match a.type_.enum_value() {
        Ok(AttributeType::INT) => Attr::Int(a.i),
        Ok(AttributeType::FLOAT) => Attr::Float(a.f),
        Ok(AttributeType::INTS) => Attr::Ints(a.ints.clone()),
        Ok(AttributeType::FLOATS) => Attr::Floats(a.floats.clone()),
        Ok(AttributeType::STRING) => Attr::Str(String::from_utf8_lossy(&a.s).into_owned()),
        Ok(AttributeType::TENSOR) => match a.t.as_ref() {
            Some(t) => Attr::Tensor(const_tensor(t, &format!("{node}.{}", a.name))?),
            None => {
                return Err(LoadError::Malformed(format!(
                    "node '{node}': tensor attribute '{}' is empty",
                    a.name
                )))
            }
        },
        Ok(AttributeType::GRAPH) | Ok(AttributeType::GRAPHS) => Attr::Graph,
        _ => Attr::Other,
    })
}

/// Convert an initializer or tensor attribute, keeping values only for small tensors.
pub fn const_tensor(t: &TensorProto, name: &str) -> Result<ConstTensor, LoadError> {
    const_tensor_keeping(t, name, false)
}

/// [`const_tensor`], keeping the values of any size when `all_values`.
pub fn const_tensor_keeping(t: &TensorProto, name: &str, all_values: bool) -> Result<ConstTensor, LoadError> {
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(LoadError::Malformed(format!(
                "tensor '{name}' has negative dim {d}"
            )));
        }
        dims.push(d as u64);
    }
    let elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
    let mut external_ref = None;
    if external {
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.clone())
        };
        let location = entry("location").ok_or_else(|| {
            LoadError::Malformed(format!("tensor '{name}' is external but has no location"))
        })?;
        if !location_stays_inside(&location) {
            return Err(LoadError::ExternalPathEscapes {
                name: name.to_string(),
                location,
            });
        }
        let number = |key: &str| -> Result<Option<u64>, LoadError> {
            entry(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        LoadError::Malformed(format!(
                            "tensor '{name}': external-data {key} '{v}' is not a number"
                        ))
                    })
                })
                .transpose()
        };
        external_ref = Some(ExternalData {
            location,
            offset: number("offset")?.unwrap_or(0),
            length: number("length")?,
        });
    }
    let small_data = match elements {
        Some(n) if (n <= SMALL_TENSOR_ELEMENTS || all_values) && !external => small_values(t, n),
        _ => None,
    };
    Ok(ConstTensor {
        name: name.to_string(),
        elem_type: t.data_type,
        dims,
        small_data,
        external: external_ref,
    })
}

/// Whether an external-data location is a relative path that cannot leave the model's folder.
fn location_stays_inside(location: &str) -> bool {
    let p = Path::new(location);
    if location.is_empty() || p.is_absolute() || location.contains('\\') {
        return false;
    }
    let mut depth = 0i32;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    depth > 0
}

/// Little-endian bytes of a small tensor's values, from raw_data or the typed fields.
fn small_values(t: &TensorProto, n: u64) -> Option<Vec<u8>> {
    let width: u64 = match t.data_type {
        1 | 6 | 12 => 4,
        7 | 11 | 13 => 8,
        2 | 3 | 9 => 1,
        4 | 5 | 10 | 16 => 2,
        _ => return None,
    };
    if !t.raw_data.is_empty() {
        return (t.raw_data.len() as u64 == n * width).then(|| t.raw_data.clone());
    }
    // Typed fields: narrow integer, bool and 16-bit float types are carried in int32_data.
    let bytes: Vec<u8> = match t.data_type {
        1 => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        7 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        6 => t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        11 => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        13 => t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        2 | 3 | 9 => t.int32_data.iter().map(|&v| v as u8).collect(),
        4 | 5 | 10 | 16 => t
            .int32_data
            .iter()
            .flat_map(|&v| (v as u16).to_le_bytes())
            .collect(),
        _ => return None,
    };
    (bytes.len() as u64 == n * width).then_some(bytes)
}

/// Order nodes so every node comes after the producers of its inputs, keeping the model's order
/// where it allows (Kahn's algorithm, lowest original index first).
fn topological_order(nodes: Vec<Node>, defined: &BTreeSet<&str>) -> Result<Vec<Node>, LoadError> {
    let mut producer: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.outputs.iter().filter(|o| !o.is_empty()) {
            if defined.contains(o.as_str()) || producer.insert(o.as_str(), i).is_some() {
                return Err(LoadError::Malformed(format!(
                    "value '{o}' is defined more than once (node '{}')",
                    n.name
                )));
            }
        }
    }
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(nodes.len(), 0);
    let idx: Vec<_> = (0..nodes.len()).map(|i| g.add_node(i)).collect();
    for (i, n) in nodes.iter().enumerate() {
        for input in n.inputs.iter().filter(|s| !s.is_empty()) {
            match producer.get(input.as_str()) {
                Some(&p) => {
                    g.add_edge(idx[p], idx[i], ());
                }
                None if defined.contains(input.as_str()) => {}
                None => {
                    return Err(LoadError::Malformed(format!(
                        "node '{}' reads '{input}', which no node, input or initializer defines",
                        n.name
                    )))
                }
            }
        }
    }
    if let Err(cycle) = petgraph::algo::toposort(&g, None) {
        return Err(LoadError::Cycle(nodes[g[cycle.node_id()]].name.clone()));
    }
    let mut indegree: Vec<usize> = idx
        .iter()
        .map(|&n| g.neighbors_directed(n, petgraph::Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<std::cmp::Reverse<usize>> = (0..nodes.len())
        .filter(|&i| indegree[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(std::cmp::Reverse(i)) = ready.pop() {
        order.push(i);
        for succ in g.neighbors_directed(idx[i], petgraph::Direction::Outgoing) {
            let s = g[succ];
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.push(std::cmp::Reverse(s));
            }
        }
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_locations_must_stay_inside() {
        assert!(location_stays_inside("weights.bin"));
        assert!(location_stays_inside("data/./w.bin"));
        assert!(location_stays_inside("data/../w.bin"));
        assert!(!location_stays_inside("../w.bin"));
        assert!(!location_stays_inside("data/../../w.bin"));
        assert!(!location_stays_inside("/etc/passwd"));
        assert!(!location_stays_inside("..\\w.bin"));
        assert!(!location_stays_inside(""));
        assert!(!location_stays_inside("."));
    }
}
