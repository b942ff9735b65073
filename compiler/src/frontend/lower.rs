//! Lowering the frontend model to the static IR, once every dim is bound.
//!
//! Walks nodes in topological order with an environment from ONNX value names to IR values or
//! compile-time constants. Constants are folded where they are consumed as attributes (Reshape's
//! shape) and become weights only where an op reads them as data, so shape tensors never occupy
//! SRAM. A node whose inputs are unknown (because an earlier node was rejected) is skipped without a
//! second report; every problem the lowering itself finds is a violation against its node.

use super::bind::DimBinder;
use super::model::{ir_dtype, Attr, ConstTensor, Dim, Node, OnnxModel};
use crate::checker::{capability, Capability, Category, Violation};
use lpuc_ir::{BinaryOp, DType, Graph, OpKind, Provenance, Shape, TensorType, UnaryOp, ValueId};
use std::collections::BTreeMap;

/// What an ONNX value name stands for during lowering.
#[derive(Clone, Debug)]
enum Slot {
    Value(ValueId),
    Const(ConstTensor),
    /// Not computable (its producer was rejected); uses are skipped silently.
    Unknown,
}

/// The result of lowering.
#[derive(Debug)]
pub struct Lowered {
    /// The IR, when no violation was found.
    pub graph: Option<Graph>,
    pub violations: Vec<Violation>,
    /// Every symbolic dim met on a graph input, with its bound size.
    pub bound_dims: BTreeMap<String, u64>,
    /// Whether every graph output was computed. When not, and no violation explains why, the
    /// model itself is broken.
    pub complete: bool,
}

struct Lowering<'m> {
    model: &'m OnnxModel,
    graph: Graph,
    env: BTreeMap<String, Slot>,
    weights: BTreeMap<String, ValueId>,
    violations: Vec<Violation>,
}

/// Lower `model` with dims bound by `binder`.
pub fn lower(model: &OnnxModel, binder: &DimBinder) -> Lowered {
    let mut l = Lowering {
        model,
        graph: Graph::new(model.graph_name.clone()),
        env: BTreeMap::new(),
        weights: BTreeMap::new(),
        violations: Vec::new(),
    };
    let mut bound_dims = BTreeMap::new();
    for input in &model.inputs {
        let slot = match (ir_dtype(input.elem_type), &input.dims) {
            (Ok(dtype), Some(dims)) => {
                let mut static_dims = Vec::with_capacity(dims.len());
                for d in dims {
                    match d {
                        Dim::Known(v) if *v > 0 => static_dims.push(*v),
                        Dim::Named(name) => match binder.bind(name) {
                            Some((v, _)) => {
                                bound_dims.insert(name.clone(), v);
                                static_dims.push(v);
                            }
                            None => break,
                        },
                        _ => break,
                    }
                }
                let ty = TensorType::new(dtype, static_dims);
                if ty.shape.rank() != dims.len() {
                    Slot::Unknown
                } else if ty.size_bytes().is_none() {
                    l.violations.push(Violation::new(
                        Category::InvalidModel,
                        &input.name,
                        "graph-input",
                        format!("{ty} has more than 2^48 elements"),
                        "bind the dims to smaller sizes",
                    ));
                    Slot::Unknown
                } else {
                    Slot::Value(l.graph.add_input(input.name.clone(), ty))
                }
            }
            _ => Slot::Unknown,
        };
        l.env.insert(input.name.clone(), slot);
    }
    for (name, t) in &model.initializers {
        l.env.insert(name.clone(), Slot::Const(t.clone()));
    }
    for node in &model.nodes {
        l.node(node);
    }
    let mut complete = true;
    for out in &model.outputs {
        match l.env.get(&out.name).cloned() {
            Some(Slot::Value(v)) => l.graph.add_output(v),
            Some(Slot::Const(c)) => match l.weight(&c) {
                Some(v) => l.graph.add_output(v),
                None => complete = false,
            },
            _ => complete = false,
        }
    }
    let graph = (l.violations.is_empty() && complete).then_some(l.graph);
    Lowered {
        graph,
        violations: l.violations,
        bound_dims,
        complete,
    }
}

impl Lowering<'_> {
    fn reject(&mut self, node: &Node, category: Category, detail: impl std::fmt::Display, hint: &str) {
        self.violations
            .push(Violation::new(category, &node.name, &node.op_type, detail, hint));
    }

    fn set_outputs_unknown(&mut self, node: &Node) {
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            self.env.insert(o.clone(), Slot::Unknown);
        }
    }

    /// A constant as an IR weight (created once per name).
    fn weight(&mut self, c: &ConstTensor) -> Option<ValueId> {
        if let Some(&v) = self.weights.get(&c.name) {
            return Some(v);
        }
        // float64 constants are cast to float32 when their values are read (they are castable).
        let dtype = if c.elem_type == 11 {
            DType::F32
        } else {
            ir_dtype(c.elem_type).ok()?
        };
        let ty = TensorType::new(dtype, c.dims.clone());
        ty.size_bytes()?;
        let v = self.graph.add_weight(c.name.clone(), ty, c.name.clone());
        self.weights.insert(c.name.clone(), v);
        Some(v)
    }

    /// The IR value for input `i` of `node`, or `None` if it is unknown or missing.
    fn value(&mut self, node: &Node, i: usize) -> Option<ValueId> {
        let name = node.input(i)?;
        match self.env.get(name).cloned() {
            Some(Slot::Value(v)) => Some(v),
            Some(Slot::Const(c)) => self.weight(&c),
            _ => None,
        }
    }

    fn node(&mut self, node: &Node) {
        let cap = capability(&node.domain, &node.op_type);
        if !matches!(cap, Capability::Supported | Capability::Folded) {
            self.set_outputs_unknown(node);
            return;
        }
        let known = node
            .inputs
            .iter()
            .filter(|i| !i.is_empty())
            .all(|i| !matches!(self.env.get(i), Some(Slot::Unknown) | None));
        if !known {
            self.set_outputs_unknown(node);
            return;
        }
        let result = match node.op_type.as_str() {
            "Constant" => self.constant(node),
            "Identity" | "Dropout" => self.alias(node),
            _ => self.compute(node),
        };
        if let Err((category, detail, hint)) = result {
            self.reject(node, category, detail, hint);
            self.set_outputs_unknown(node);
        }
    }

    fn constant(&mut self, node: &Node) -> Result<(), (Category, String, &'static str)> {
        let out = node.outputs.first().cloned().unwrap_or_default();
        let tensor = match (
            node.attrs.get("value"),
            node.attrs.get("value_float"),
            node.attrs.get("value_int"),
        ) {
            (Some(Attr::Tensor(t)), _, _) => t.clone(),
            (_, Some(Attr::Float(f)), _) => ConstTensor {
                name: node.name.clone(),
                elem_type: 1,
                dims: vec![],
                small_data: Some(f.to_le_bytes().to_vec()),
                external_location: None,
            },
            (_, _, Some(Attr::Int(i))) => ConstTensor {
                name: node.name.clone(),
                elem_type: 7,
                dims: vec![],
                small_data: Some(i.to_le_bytes().to_vec()),
                external_location: None,
            },
            _ => {
                return Err((
                    Category::NotYetSupported,
                    "only Constant with 'value', 'value_float' or 'value_int' is lowered".into(),
                    "export the constant as an initializer",
                ))
            }
        };
        self.env.insert(
            out,
            Slot::Const(ConstTensor {
                name: node.name.clone(),
                ..tensor
            }),
        );
        Ok(())
    }

    fn alias(&mut self, node: &Node) -> Result<(), (Category, String, &'static str)> {
        if node.op_type == "Dropout" && node.outputs.get(1).is_some_and(|m| !m.is_empty()) {
            self.env.insert(node.outputs[1].clone(), Slot::Unknown);
        }
        let src = node.input(0).and_then(|i| self.env.get(i).cloned()).ok_or((
            Category::InvalidModel,
            "has no input".to_string(),
            "check the export",
        ))?;
        if let Some(out) = node.outputs.first() {
            self.env.insert(out.clone(), src);
        }
        Ok(())
    }

    fn compute(&mut self, node: &Node) -> Result<(), (Category, String, &'static str)> {
        let opset = self.model.opset();
        let invalid = |detail: String| (Category::InvalidModel, detail, "check the exported model");
        let mut reshape_to: Option<Shape> = None;
        let (kind, data_inputs): (OpKind, Vec<usize>) = match node.op_type.as_str() {
            "MatMul" => (OpKind::MatMul, vec![0, 1]),
            "Gemm" => (
                OpKind::Gemm {
                    trans_a: node.attr_int("transA").unwrap_or(0) != 0,
                    trans_b: node.attr_int("transB").unwrap_or(0) != 0,
                    alpha: node.attr_float("alpha").unwrap_or(1.0),
                    beta: node.attr_float("beta").unwrap_or(1.0),
                },
                if node.input(2).is_some() {
                    vec![0, 1, 2]
                } else {
                    vec![0, 1]
                },
            ),
            "Add" => (OpKind::Binary(BinaryOp::Add), vec![0, 1]),
            "Sub" => (OpKind::Binary(BinaryOp::Sub), vec![0, 1]),
            "Mul" => (OpKind::Binary(BinaryOp::Mul), vec![0, 1]),
            "Div" => (OpKind::Binary(BinaryOp::Div), vec![0, 1]),
            "Relu" => (OpKind::Unary(UnaryOp::Relu), vec![0]),
            "Erf" => (OpKind::Unary(UnaryOp::Erf), vec![0]),
            "Tanh" => (OpKind::Unary(UnaryOp::Tanh), vec![0]),
            "Sigmoid" => (OpKind::Unary(UnaryOp::Sigmoid), vec![0]),
            "Gelu" => {
                let tanh = match node.attr_str("approximate").unwrap_or("none") {
                    "none" => false,
                    "tanh" => true,
                    other => return Err(invalid(format!("unknown approximate='{other}'"))),
                };
                (OpKind::Unary(UnaryOp::Gelu { tanh }), vec![0])
            }
            "Softmax" => {
                let rank = self.rank_of(node, 0)?;
                let default = if opset >= 13 { -1 } else { 1 };
                let axis = normalize_axis(node.attr_int("axis").unwrap_or(default), rank).map_err(invalid)?;
                if opset < 13 && axis + 1 != rank {
                    return Err((
                        Category::NotYetSupported,
                        format!("Softmax before opset 13 flattens from axis {axis}; only the last axis is lowered"),
                        "export with opset 13 or later",
                    ));
                }
                (OpKind::Softmax { axis }, vec![0])
            }
            "LayerNormalization" => {
                if node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err((
                        Category::NotYetSupported,
                        "the Mean and InvStdDev outputs (training only) are not lowered".into(),
                        "export in inference mode",
                    ));
                }
                let rank = self.rank_of(node, 0)?;
                let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), rank).map_err(invalid)?;
                let epsilon = node.attr_float("epsilon").unwrap_or(1e-5);
                let inputs = if node.input(2).is_some() {
                    vec![0, 1, 2]
                } else {
                    vec![0, 1]
                };
                (OpKind::LayerNorm { axis, epsilon }, inputs)
            }
            "Transpose" => {
                let rank = self.rank_of(node, 0)?;
                let perm = match node.attr_ints("perm") {
                    Some(p) => p
                        .iter()
                        .map(|&a| usize::try_from(a).map_err(|_| invalid(format!("negative perm entry {a}"))))
                        .collect::<Result<Vec<_>, _>>()?,
                    None => (0..rank).rev().collect(),
                };
                (OpKind::Transpose { perm }, vec![0])
            }
            "Reshape" => {
                reshape_to = Some(self.reshape_target(node)?);
                (OpKind::Reshape, vec![0])
            }
            other => {
                return Err((
                    Category::NotYetSupported,
                    format!("{other} is in the capability table but has no lowering"),
                    "report this as an lpuc bug",
                ))
            }
        };
        let mut inputs = Vec::with_capacity(data_inputs.len());
        for i in data_inputs {
            match self.value(node, i) {
                Some(v) => inputs.push(v),
                None => {
                    return Err(invalid(format!(
                        "input {i} is missing or has an unsupported type"
                    )))
                }
            }
        }
        let out_name = node.outputs.first().cloned().unwrap_or_else(|| node.name.clone());
        let prov = Provenance {
            node: node.name.clone(),
            op_type: node.op_type.clone(),
        };
        let v = self
            .graph
            .add_op(kind, inputs, out_name.clone(), reshape_to.as_ref(), prov)
            .map_err(|e| invalid(e.to_string()))?;
        self.env.insert(out_name, Slot::Value(v));
        Ok(())
    }

    /// The dims of input `i` of `node`, whether it is a computed value or a constant.
    fn input_dims(&self, node: &Node, i: usize) -> Result<Vec<u64>, (Category, String, &'static str)> {
        match node.input(i).and_then(|n| self.env.get(n)) {
            Some(Slot::Value(v)) => Ok(self.graph.value(*v).ty.shape.dims().to_vec()),
            Some(Slot::Const(c)) => Ok(c.dims.clone()),
            _ => Err((
                Category::InvalidModel,
                format!("input {i} is missing"),
                "check the export",
            )),
        }
    }

    fn rank_of(&self, node: &Node, i: usize) -> Result<usize, (Category, String, &'static str)> {
        Ok(self.input_dims(node, i)?.len())
    }

    /// The static target shape of a Reshape: its shape input must be a constant.
    fn reshape_target(&mut self, node: &Node) -> Result<Shape, (Category, String, &'static str)> {
        let input = self.input_dims(node, 0)?;
        let shape_name = node.input(1).unwrap_or_default().to_string();
        let Some(Slot::Const(c)) = self.env.get(&shape_name).cloned() else {
            return Err((
                Category::NotYetSupported,
                format!("the target shape '{shape_name}' is computed by the graph, not a constant"),
                "export with a constant shape (e.g. [0, 0, heads, head_dim]); folding shape subgraphs comes with the full frontend",
            ));
        };
        let spec = c.as_i64s().ok_or((
            Category::InvalidModel,
            format!("shape tensor '{shape_name}' is not a small int64/int32 tensor"),
            "check the export",
        ))?;
        let allow_zero = node.attr_int("allowzero").unwrap_or(0) != 0;
        reshape_dims(&input, &spec, allow_zero)
            .map(Shape)
            .map_err(|e| (Category::InvalidModel, e, "check the export"))
    }
}

/// Resolve an ONNX axis (possibly negative) against `rank`.
fn normalize_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// ONNX Reshape semantics: 0 copies the input dim (unless `allow_zero`), -1 is inferred.
pub fn reshape_dims(input: &[u64], spec: &[i64], allow_zero: bool) -> Result<Vec<u64>, String> {
    let total = input
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("the input's element count overflows")?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *input
                    .get(i)
                    .ok_or_else(|| format!("shape entry {i} is 0 but the input has rank {}", input.len()))?,
            ),
            s if s >= 0 => out.push(s as u64),
            _ => return Err(format!("invalid reshape spec {spec:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("reshape overflows")?;
    if let Some(i) = infer_at {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {input:?} ({total} elements) to {spec:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_semantics() {
        assert_eq!(
            reshape_dims(&[1, 2048, 128], &[0, 0, 4, 32], false).unwrap(),
            vec![1, 2048, 4, 32]
        );
        assert_eq!(reshape_dims(&[2, 3, 4], &[-1, 4], false).unwrap(), vec![6, 4]);
        assert!(reshape_dims(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[7], false).is_err());
    }

    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 3), Ok(2));
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(-4, 3).is_err());
    }
}
