//! The dataflow of a schedule (see `lpuc_artifact::dataflow`): the graph's values and ops, the box
//! of a value each buffer holds, and what each instruction computes. Written beside the schedule
//! so the functional emulator can execute it; nothing here decides timing.

use lpuc_artifact::dataflow::{DataOp, DataValue, Holding, Role};
use lpuc_artifact::{Dataflow, Schedule, Step, WeightSource, DATAFLOW_FORMAT};
use lpuc_ir::{Graph, ValueKind};

/// The graph's values, ops, inputs and outputs, with no buffers or steps yet.
pub fn graph_tables(g: &Graph) -> Dataflow {
    let values = g
        .value_ids()
        .map(|v| {
            let value = g.value(v);
            DataValue {
                name: value.name.clone(),
                dtype: value.ty.dtype,
                shape: value.ty.shape.dims().to_vec(),
                role: match value.kind {
                    ValueKind::Input => Role::Input,
                    ValueKind::Weight { .. } => Role::Weight,
                    ValueKind::Computed { .. } => Role::Computed,
                },
                stored: None,
            }
        })
        .collect();
    let index = |v: &lpuc_ir::ValueId| v.index() as u32;
    let ops = g
        .op_ids()
        .map(|o| {
            let op = g.op(o);
            DataOp {
                kind: op.kind.clone(),
                inputs: op.inputs.iter().map(index).collect(),
                outputs: op.outputs.iter().map(index).collect(),
            }
        })
        .collect();
    let inputs = g.inputs().iter().map(index).collect();
    Dataflow {
        format: DATAFLOW_FORMAT,
        weights: WeightSource::NotEmbedded,
        values,
        ops,
        inputs,
        outputs: g.outputs().iter().map(index).collect(),
        buffers: Vec::new(),
        steps: Vec::new(),
    }
}

/// The dataflow of a single-chip schedule: buffer `b` holds all of value `b`, and each
/// instruction computes the op producing its first write.
pub fn single_chip(g: &Graph, schedule: &Schedule) -> Dataflow {
    let mut d = graph_tables(g);
    d.buffers = g
        .value_ids()
        .map(|v| Holding::whole(v.index() as u32, g.value(v).ty.shape.dims()))
        .collect();
    d.steps = schedule
        .instructions
        .iter()
        .map(|i| match g.value(lpuc_ir::ValueId(i.writes[0].0)).kind {
            ValueKind::Computed { producer } => Step::Op {
                op: producer.index() as u32,
            },
            _ => unreachable!("an instruction writes a computed value"),
        })
        .collect();
    d
}
