//! The graph: arenas of values and ops, the dataflow edges in petgraph, provenance on the side.
//!
//! Ops are appended in a topological order (an op can only read values that already exist), which
//! is the invariant the verifier checks and every later stage relies on. Passes build a new graph
//! rather than mutating one in place, so arenas stay dense and ids stay meaningful.

use crate::infer::{infer, ShapeError};
use crate::{Op, OpId, OpKind, TensorType, ValueId};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueKind {
    /// A graph input, supplied at run time.
    Input,
    /// A weight or constant, resident in SRAM for the whole program. `source` names the ONNX
    /// initializer or Constant node; its bytes are not held by the IR.
    Weight { source: String },
    /// Computed by an op.
    Computed { producer: OpId },
}

/// A tensor value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Value {
    pub name: String,
    pub ty: TensorType,
    pub kind: ValueKind,
}

/// The ONNX node an op was lowered from. Several IR ops may share one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub node: String,
    pub op_type: String,
}

/// A dataflow graph with static types.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    values: Vec<Value>,
    ops: Vec<Op>,
    provenance: Vec<Provenance>,
    inputs: Vec<ValueId>,
    outputs: Vec<ValueId>,
    /// One node per op (node index == op index); an edge per (producer, consumer, value).
    dataflow: DiGraph<OpId, ValueId>,
    /// The value of each single-element weight known at compile time (an epsilon, a scale, an
    /// exponent): what rewrites that must see a constant read.
    scalars: std::collections::BTreeMap<ValueId, f64>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Add a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let id = self.push_value(name.into(), ty, ValueKind::Input);
        self.inputs.push(id);
        id
    }

    /// Add a weight (initializer or constant).
    pub fn add_weight(
        &mut self,
        name: impl Into<String>,
        ty: TensorType,
        source: impl Into<String>,
    ) -> ValueId {
        self.push_value(
            name.into(),
            ty,
            ValueKind::Weight {
                source: source.into(),
            },
        )
    }

    fn push_value(&mut self, name: String, ty: TensorType, kind: ValueKind) -> ValueId {
        let id = ValueId::from_index(self.values.len());
        self.values.push(Value { name, ty, kind });
        id
    }

    /// Append an op with one result, inferring its type.
    pub fn add_op(
        &mut self,
        kind: OpKind,
        inputs: Vec<ValueId>,
        output_name: impl Into<String>,
        provenance: Provenance,
    ) -> Result<ValueId, ShapeError> {
        let name = output_name.into();
        let outs = self.add_op_multi(kind, inputs, &[name], provenance)?;
        match outs.as_slice() {
            [one] => Ok(*one),
            _ => Err(ShapeError::Invalid("the op has more than one result".into())),
        }
    }

    /// Append an op, inferring the types of its results; `output_names` names them all.
    pub fn add_op_multi(
        &mut self,
        kind: OpKind,
        inputs: Vec<ValueId>,
        output_names: &[String],
        provenance: Provenance,
    ) -> Result<Vec<ValueId>, ShapeError> {
        let types: Vec<&TensorType> = inputs.iter().map(|&v| &self.values[v.index()].ty).collect();
        let result_types = infer(&kind, &types)?;
        if result_types.len() != output_names.len() {
            return Err(ShapeError::Invalid(format!(
                "{} has {} results, {} names were given",
                kind.name(),
                result_types.len(),
                output_names.len()
            )));
        }
        let op_id = OpId::from_index(self.ops.len());
        let outs: Vec<ValueId> = result_types
            .into_iter()
            .zip(output_names)
            .map(|(ty, name)| self.push_value(name.clone(), ty, ValueKind::Computed { producer: op_id }))
            .collect();
        let node = self.dataflow.add_node(op_id);
        debug_assert_eq!(node.index(), op_id.index());
        for &v in &inputs {
            if let ValueKind::Computed { producer } = self.values[v.index()].kind {
                self.dataflow.add_edge(NodeIndex::new(producer.index()), node, v);
            }
        }
        self.ops.push(Op {
            kind,
            inputs,
            outputs: outs.clone(),
        });
        self.provenance.push(provenance);
        Ok(outs)
    }

    /// Give a value another name (a graph output named after the ONNX output it is).
    pub fn rename_value(&mut self, v: ValueId, name: impl Into<String>) {
        self.values[v.index()].name = name.into();
    }

    /// Mark a value as a graph output.
    pub fn add_output(&mut self, v: ValueId) {
        self.outputs.push(v);
    }

    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.index()]
    }

    pub fn op(&self, o: OpId) -> &Op {
        &self.ops[o.index()]
    }

    pub fn provenance(&self, o: OpId) -> &Provenance {
        &self.provenance[o.index()]
    }

    pub fn inputs(&self) -> &[ValueId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    pub fn num_ops(&self) -> usize {
        self.ops.len()
    }

    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// Op ids in their (topological) arena order.
    pub fn op_ids(&self) -> impl Iterator<Item = OpId> + '_ {
        (0..self.ops.len()).map(OpId::from_index)
    }

    /// Value ids in arena order.
    pub fn value_ids(&self) -> impl Iterator<Item = ValueId> + '_ {
        (0..self.values.len()).map(ValueId::from_index)
    }

    /// The producer of `v`, if an op computes it.
    pub fn producer(&self, v: ValueId) -> Option<OpId> {
        match self.values[v.index()].kind {
            ValueKind::Computed { producer } => Some(producer),
            _ => None,
        }
    }

    /// The dataflow graph between ops (node index == op index).
    pub fn dataflow(&self) -> &DiGraph<OpId, ValueId> {
        &self.dataflow
    }

    /// Record that weight `v` (a single element) holds `x`.
    pub fn set_scalar(&mut self, v: ValueId, x: f64) {
        if matches!(self.value(v).kind, ValueKind::Weight { .. })
            && self.value(v).ty.shape.num_elements() == Some(1)
        {
            self.scalars.insert(v, x);
        }
    }

    /// The value of weight `v`, when it is a single element known at compile time.
    pub fn scalar(&self, v: ValueId) -> Option<f64> {
        self.scalars.get(&v).copied()
    }

    /// Add a copy of `from`'s weight `v` (name, type, source, known value) to this graph.
    pub fn copy_weight(&mut self, from: &Graph, v: ValueId) -> ValueId {
        let val = from.value(v);
        let source = match &val.kind {
            ValueKind::Weight { source } => source.clone(),
            _ => val.name.clone(),
        };
        let new = self.add_weight(val.name.clone(), val.ty.clone(), source);
        if let Some(x) = from.scalar(v) {
            self.scalars.insert(new, x);
        }
        new
    }

    /// A new graph with `self`'s name, graph inputs and the weights `keep` selects (name, type,
    /// source, known value), and the map from their old ids to the new: what a pass that rebuilds
    /// a graph starts from.
    pub fn interface(
        &self,
        keep: impl Fn(ValueId) -> bool,
    ) -> (Graph, std::collections::BTreeMap<ValueId, ValueId>) {
        let mut out = Graph::new(self.name.clone());
        let mut map = std::collections::BTreeMap::new();
        for &v in self.inputs() {
            let val = self.value(v);
            map.insert(v, out.add_input(val.name.clone(), val.ty.clone()));
        }
        for v in self.value_ids() {
            if matches!(self.value(v).kind, ValueKind::Weight { .. }) && keep(v) {
                map.insert(v, out.copy_weight(self, v));
            }
        }
        (out, map)
    }

    /// Append a copy of `from`'s op `o` (same kind, names and provenance) reading its operands
    /// through `map`, and map its results.
    pub fn copy_op(
        &mut self,
        from: &Graph,
        o: OpId,
        map: &mut std::collections::BTreeMap<ValueId, ValueId>,
    ) -> Result<(), ShapeError> {
        let op = from.op(o);
        let inputs: Vec<ValueId> = op.inputs.iter().map(|v| map[v]).collect();
        let names: Vec<String> = op.outputs.iter().map(|&v| from.value(v).name.clone()).collect();
        let new = self.add_op_multi(op.kind.clone(), inputs, &names, from.provenance(o).clone())?;
        for (&old, new) in op.outputs.iter().zip(new) {
            map.insert(old, new);
        }
        Ok(())
    }

    /// Total bytes of all weights.
    pub fn weight_bytes(&self) -> u64 {
        self.values
            .iter()
            .filter(|v| matches!(v.kind, ValueKind::Weight { .. }))
            .filter_map(|v| v.ty.size_bytes())
            .sum()
    }

    /// Rebuild-only access for the verifier's tests.
    #[cfg(test)]
    pub(crate) fn ops_mut(&mut self) -> &mut Vec<Op> {
        &mut self.ops
    }
}
