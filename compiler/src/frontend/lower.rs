//! Lowering the frontend model to the static IR, once every dim is bound.
//!
//! Walks nodes in topological order with an environment from ONNX value names to IR values or
//! compile-time constants. Each node is translated to a plan; a step whose operands are all
//! constants is folded (evaluated when the values are known, else kept as a constant with its
//! recipe), so shape subgraphs vanish and weight preprocessing (dequantization, transposes) happens
//! at compile time. Constants become IR weights only where an op running on the chip reads them.
//! A node whose inputs are unknown (because an earlier node was rejected) is skipped without a
//! second report; every problem the lowering itself finds is a violation against its node.

use super::bind::DimBinder;
use super::consts::{self, Const, Values};
use super::fold;
use super::model::{ir_dtype, Node, OnnxModel};
use super::translate::{invalid, translate, Operand, Operands, Plan, Reject};
use crate::checker::{capability, Capability, Category, Violation};
use lpuc_ir::infer::infer;
use lpuc_ir::{Graph, OpKind, Provenance, TensorType, ValueId};
use std::collections::BTreeMap;
use std::rc::Rc;

/// What an ONNX value name stands for during lowering.
#[derive(Clone, Debug)]
enum Slot {
    Value(ValueId),
    Const(Rc<Const>),
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
    /// The values of graph outputs that folded to constants (by output position), so a test can
    /// compare them with a reference.
    pub folded_outputs: BTreeMap<usize, Values>,
    /// When the model was loaded with every value: each IR weight's values by its name, and the
    /// weights whose values are still unknown (derived beyond the folding limit), with their
    /// recipe.
    pub weight_values: BTreeMap<String, Values>,
    pub unknown_weights: Vec<(String, String)>,
}

struct Lowering<'m> {
    model: &'m OnnxModel,
    graph: Graph,
    env: BTreeMap<String, Slot>,
    /// IR weights already made for constants, by the constant's identity (aliases of one
    /// initializer share an `Rc`, so they share one weight). Only looked up, never iterated.
    weights: BTreeMap<usize, ValueId>,
    /// Every materialized constant, kept alive so no address is reused as a key.
    pinned: Vec<Rc<Const>>,
    weight_values: BTreeMap<String, Values>,
    unknown_weights: Vec<(String, String)>,
    violations: Vec<Violation>,
}

/// Lower `model` with dims bound by `binder`.
pub fn lower(model: &OnnxModel, binder: &DimBinder) -> Lowered {
    lower_with(model, binder, &BTreeMap::new())
}

/// Lower `model`, treating the graph inputs in `known_inputs` as compile-time constants (how a
/// conformance test feeds a node test's shape inputs).
pub fn lower_with(model: &OnnxModel, binder: &DimBinder, known_inputs: &BTreeMap<String, Const>) -> Lowered {
    let mut l = Lowering {
        model,
        graph: Graph::new(model.graph_name.clone()),
        env: BTreeMap::new(),
        weights: BTreeMap::new(),
        pinned: Vec::new(),
        violations: Vec::new(),
        weight_values: BTreeMap::new(),
        unknown_weights: Vec::new(),
    };
    let mut bound_dims = BTreeMap::new();
    for input in &model.inputs {
        if let Some(c) = known_inputs.get(&input.name) {
            l.env.insert(input.name.clone(), Slot::Const(Rc::new(c.clone())));
            continue;
        }
        let slot = match (
            ir_dtype(input.elem_type),
            binder.input_dims(input, &mut bound_dims),
        ) {
            (Ok(dtype), Some(dims)) => {
                let ty = TensorType::new(dtype, dims);
                if ty.size_bytes().is_none() {
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
        let read = consts::from_tensor_reading(t, model.base_dir.as_deref(), model.all_values);
        // Reading every value (for embedded weights), external bytes are read now.
        let read = match read {
            Ok(Some(c)) if model.all_values => c.resolved().map(Some),
            other => other,
        };
        match read {
            Ok(Some(c)) => {
                l.env.insert(name.clone(), Slot::Const(Rc::new(c)));
            }
            Ok(None) => {
                // The checker reports an unsupported dtype; a supported one means the size is absurd.
                if consts::const_dtype(t.elem_type).is_some() {
                    l.violations.push(Violation::new(
                        Category::InvalidModel,
                        name,
                        "initializer",
                        format!("dims {:?} hold more than 2^48 elements", t.dims),
                        "check the export",
                    ));
                }
                l.env.insert(name.clone(), Slot::Unknown);
            }
            Err(e) => {
                l.violations.push(Violation::new(
                    Category::InvalidModel,
                    name,
                    "initializer",
                    e,
                    "check the external data file next to the model",
                ));
                l.env.insert(name.clone(), Slot::Unknown);
            }
        }
    }
    for node in &model.nodes {
        l.node(node);
    }
    let mut complete = true;
    let mut folded_outputs = BTreeMap::new();
    for (i, out) in model.outputs.iter().enumerate() {
        let v = match l.env.get(&out.name).cloned() {
            Some(Slot::Value(v)) => Some(v),
            Some(Slot::Const(c)) => {
                if let Some(values) = &c.values {
                    folded_outputs.insert(i, values.clone());
                }
                l.materialize(&out.name, &c)
            }
            _ => None,
        };
        match v {
            Some(v) => l.output(v, &out.name),
            None => complete = false,
        }
    }
    let graph = (l.violations.is_empty() && complete).then_some(l.graph);
    Lowered {
        graph,
        violations: l.violations,
        bound_dims,
        complete,
        folded_outputs,
        weight_values: l.weight_values,
        unknown_weights: l.unknown_weights,
    }
}

impl Lowering<'_> {
    /// Make `v` the graph output `name`. Every output is its own computed value named as in the
    /// model: an alias (Identity of another value) takes the output's name, and a graph input, a
    /// weight or a value already output under another name is copied.
    fn output(&mut self, v: ValueId, name: &str) {
        let value = self.graph.value(v);
        let computed = matches!(value.kind, lpuc_ir::ValueKind::Computed { .. });
        let taken = self.graph.outputs().contains(&v);
        if computed && !taken {
            if value.name != name {
                self.graph.rename_value(v, name);
            }
            self.graph.add_output(v);
            return;
        }
        let shape = value.ty.shape.dims().to_vec();
        let prov = Provenance {
            node: name.to_string(),
            op_type: "graph-output".into(),
        };
        match self.graph.add_op(OpKind::Reshape { shape }, vec![v], name, prov) {
            Ok(copy) => self.graph.add_output(copy),
            Err(e) => self.violations.push(Violation::new(
                Category::InvalidModel,
                name,
                "graph-output",
                e.to_string(),
                "check the export",
            )),
        }
    }

    fn set_outputs_unknown(&mut self, node: &Node) {
        for o in node.outputs.iter().filter(|o| !o.is_empty()) {
            self.env.insert(o.clone(), Slot::Unknown);
        }
    }

    /// A constant as an IR weight, created once per constant and named by its first use.
    fn materialize(&mut self, name: &str, c: &Rc<Const>) -> Option<ValueId> {
        let key = Rc::as_ptr(c) as usize;
        if let Some(&v) = self.weights.get(&key) {
            return Some(v);
        }
        c.ty.size_bytes()?;
        let v = self
            .graph
            .add_weight(name.to_string(), c.ty.clone(), c.source.clone());
        // A single known value (an epsilon, an exponent) stays visible to the rewrites.
        let one = match &c.values {
            Some(crate::frontend::consts::Values::Float(x)) if x.len() == 1 => Some(x[0]),
            Some(crate::frontend::consts::Values::Int(x)) if x.len() == 1 => Some(x[0] as f64),
            _ => None,
        };
        if let Some(x) = one {
            self.graph.set_scalar(v, x);
        }
        if self.model.all_values {
            match &c.values {
                Some(values) => {
                    self.weight_values.insert(name.to_string(), values.clone());
                }
                None => self.unknown_weights.push((name.to_string(), c.source.clone())),
            }
        }
        self.weights.insert(key, v);
        self.pinned.push(Rc::clone(c));
        Some(v)
    }

    fn node(&mut self, node: &Node) {
        if matches!(
            capability(&node.domain, &node.op_type),
            Capability::Rejected { .. }
        ) {
            self.set_outputs_unknown(node);
            return;
        }
        let mut types = Vec::with_capacity(node.inputs.len());
        let mut consts = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            if name.is_empty() {
                types.push(None);
                consts.push(None);
                continue;
            }
            match self.env.get(name) {
                Some(Slot::Value(v)) => {
                    types.push(Some(self.graph.value(*v).ty.clone()));
                    consts.push(None);
                }
                Some(Slot::Const(c)) => {
                    types.push(Some(c.ty.clone()));
                    consts.push(Some((**c).clone()));
                }
                _ => {
                    self.set_outputs_unknown(node);
                    return;
                }
            }
        }
        let operands = Operands { types, consts };
        let result = translate(node, self.model.opset(), &operands).and_then(|plan| self.run(node, plan));
        if let Err((category, detail, hint)) = result {
            self.violations
                .push(Violation::new(category, &node.name, &node.op_type, detail, hint));
            self.set_outputs_unknown(node);
        }
    }

    /// Carry out a plan: constants and aliases bind names; steps fold or become IR ops.
    fn run(&mut self, node: &Node, plan: Plan) -> Result<(), Reject> {
        let out_name = |i: usize| node.outputs.get(i).filter(|o| !o.is_empty()).cloned();
        match plan {
            Plan::Consts(cs) => {
                for (i, c) in cs.into_iter().enumerate() {
                    if let Some(name) = out_name(i) {
                        self.env.insert(name, Slot::Const(Rc::new(c)));
                    }
                }
            }
            Plan::Alias(i, rest) => {
                let src = node
                    .inputs
                    .get(i)
                    .and_then(|name| self.env.get(name))
                    .cloned()
                    .unwrap_or(Slot::Unknown);
                if let Some(name) = out_name(0) {
                    self.env.insert(name, src);
                }
                for (k, c) in rest.into_iter().enumerate() {
                    if let Some(name) = out_name(k + 1) {
                        self.env.insert(name, Slot::Const(Rc::new(c)));
                    }
                }
            }
            Plan::Steps(steps) => {
                let mut results: Vec<(String, Slot)> = Vec::new();
                for (j, step) in steps.into_iter().enumerate() {
                    let operands: Vec<(String, Slot)> = step
                        .inputs
                        .iter()
                        .enumerate()
                        .map(|(k, o)| match o {
                            Operand::Input(i) => {
                                let name = node.inputs.get(*i).cloned().unwrap_or_default();
                                let slot = self.env.get(&name).cloned().unwrap_or(Slot::Unknown);
                                (name, slot)
                            }
                            Operand::Step(s) => results[*s].clone(),
                            Operand::Const(c) => (
                                format!("{}/{j}.c{k}", node.name),
                                Slot::Const(Rc::new((**c).clone())),
                            ),
                        })
                        .collect();
                    let names: Vec<String> = (0..step.outputs.len().max(1))
                        .map(|r| match step.outputs.get(r).and_then(|&o| out_name(o)) {
                            Some(n) => n,
                            None => format!("{}/{j}.{r}", node.name),
                        })
                        .collect();
                    let slots = self.step(node, step.kind, operands, &names)?;
                    for (r, slot) in slots.into_iter().enumerate() {
                        if let Some(name) = step.outputs.get(r).and_then(|&o| out_name(o)) {
                            self.env.insert(name, slot.clone());
                        }
                        if r == 0 {
                            results.push((names[0].clone(), slot));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One IR op: folded when every operand is a constant, else appended to the graph.
    fn step(
        &mut self,
        node: &Node,
        kind: OpKind,
        operands: Vec<(String, Slot)>,
        names: &[String],
    ) -> Result<Vec<Slot>, Reject> {
        let mut types = Vec::with_capacity(operands.len());
        for (name, slot) in &operands {
            types.push(match slot {
                Slot::Value(v) => self.graph.value(*v).ty.clone(),
                Slot::Const(c) => c.ty.clone(),
                Slot::Unknown => return Err(invalid(format!("input '{name}' is missing"))),
            });
        }
        let type_refs: Vec<&TensorType> = types.iter().collect();
        let out_types = infer(&kind, &type_refs).map_err(|e| invalid(e.to_string()))?;
        let all_const: Option<Vec<&Const>> = operands
            .iter()
            .map(|(_, s)| match s {
                Slot::Const(c) => Some(&**c),
                _ => None,
            })
            .collect();
        if let Some(cs) = all_const {
            // Compile-time data: evaluate when the values are known, else keep the recipe.
            let cs: Vec<Const> = cs
                .into_iter()
                .map(Const::resolved)
                .collect::<Result<_, _>>()
                .map_err(invalid)?;
            let values: Option<Vec<(&TensorType, &Values)>> =
                cs.iter().map(|c| c.values.as_ref().map(|v| (&c.ty, v))).collect();
            // The recipe names the operands, not their own recipes: nested recipes would grow
            // without bound on long constant chains.
            let source = format!(
                "{}({}) at node {}",
                kind.name(),
                operands
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                node.name
            );
            // Folding evaluates single-result ops; the others stay recipes. Reading every
            // value (for embedded weights), what folding leaves is computed by the reference
            // kernels, so every weight derived from the model's has values.
            let single = out_types.len() == 1;
            let mut folded: Vec<Option<Values>> = out_types
                .iter()
                .map(|ty| match (&values, single) {
                    (Some(vals), true) => fold::evaluate(&kind, vals, ty),
                    _ => None,
                })
                .collect();
            if let (Some(vals), true) = (&values, self.model.all_values) {
                if folded.iter().any(Option::is_none) {
                    if let Some(outs) = reference_fold(&kind, vals, &out_types) {
                        for (slot, v) in folded.iter_mut().zip(outs) {
                            slot.get_or_insert(v);
                        }
                    }
                }
            }
            return Ok(out_types
                .into_iter()
                .zip(folded)
                .map(|(ty, v)| {
                    Slot::Const(Rc::new(Const {
                        values: v,
                        ..Const::opaque(ty, source.clone())
                    }))
                })
                .collect());
        }
        let mut inputs = Vec::with_capacity(operands.len());
        for (name, slot) in &operands {
            inputs.push(match slot {
                Slot::Value(v) => *v,
                Slot::Const(c) => self
                    .materialize(name, c)
                    .ok_or_else(|| invalid(format!("constant '{name}' is too large")))?,
                Slot::Unknown => unreachable!("checked above"),
            });
        }
        let prov = Provenance {
            node: node.name.clone(),
            op_type: node.op_type.clone(),
        };
        let outs = self
            .graph
            .add_op_multi(kind, inputs, names, prov)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(outs.into_iter().map(Slot::Value).collect())
    }
}

/// `kind` evaluated on constant operands by the IR's reference kernels, each result cast to its
/// type; `None` when there is no kernel for it.
fn reference_fold(
    kind: &OpKind,
    operands: &[(&TensorType, &Values)],
    out_types: &[TensorType],
) -> Option<Vec<Values>> {
    use lpuc_ir::interp::{evaluate_op, Tensor};
    let dims = |t: &TensorType| -> Vec<usize> { t.shape.dims().iter().map(|&d| d as usize).collect() };
    let tensors: Vec<Tensor> = operands
        .iter()
        .map(|(t, v)| Tensor::new(dims(t), v.to_floats()))
        .collect::<Option<_>>()?;
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let outs: Vec<(Vec<usize>, lpuc_ir::DType)> = out_types.iter().map(|t| (dims(t), t.dtype)).collect();
    let results = evaluate_op(kind, &refs, &outs).ok()?;
    Some(
        results
            .into_iter()
            .zip(out_types)
            .map(|(t, ty)| Values::Float(t.data).cast(ty.dtype))
            .collect(),
    )
}
