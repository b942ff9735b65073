//! Remove ops whose results no graph output needs, and weights nothing reads.
//!
//! Exporters leave dead branches behind (unused Dropout masks, debugging outputs); scheduling them
//! would waste cycles and SRAM. Graph inputs are kept even when unused: they are the interface.

use lpuc_ir::{Graph, ValueId, ValueKind};
use std::collections::BTreeMap;

/// A copy of `g` without dead ops and unread weights.
pub fn eliminate_dead_ops(g: &Graph) -> Graph {
    let mut live_value = vec![false; g.num_values()];
    let mut live_op = vec![false; g.num_ops()];
    for &v in g.outputs() {
        live_value[v.index()] = true;
    }
    for o in g.op_ids().collect::<Vec<_>>().into_iter().rev() {
        if g.op(o).outputs.iter().any(|v| live_value[v.index()]) {
            live_op[o.index()] = true;
            for &i in &g.op(o).inputs {
                live_value[i.index()] = true;
            }
        }
    }
    let mut out = Graph::new(g.name.clone());
    let mut map: BTreeMap<ValueId, ValueId> = BTreeMap::new();
    for &v in g.inputs() {
        let val = g.value(v);
        map.insert(v, out.add_input(val.name.clone(), val.ty.clone()));
    }
    for v in g.value_ids() {
        if matches!(g.value(v).kind, ValueKind::Weight { .. }) && live_value[v.index()] {
            map.insert(v, out.copy_weight(g, v));
        }
    }
    for o in g.op_ids().filter(|o| live_op[o.index()]) {
        let op = g.op(o);
        let inputs: Vec<ValueId> = op.inputs.iter().map(|v| map[v]).collect();
        let names: Vec<String> = op.outputs.iter().map(|&v| g.value(v).name.clone()).collect();
        let new = out
            .add_op_multi(op.kind.clone(), inputs, &names, g.provenance(o).clone())
            .expect("re-adding a verified op with the same operand types cannot fail");
        for (&old, new) in op.outputs.iter().zip(new) {
            map.insert(old, new);
        }
    }
    for v in g.outputs() {
        out.add_output(map[v]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::{BinaryOp, DType, OpId, OpKind, Provenance, TensorType, UnaryOp};

    #[test]
    fn dead_ops_and_their_weights_go() {
        let prov = || Provenance {
            node: "n".into(),
            op_type: "x".into(),
        };
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![4]));
        let w = g.add_weight("w", TensorType::new(DType::F32, vec![4]), "w");
        let dead = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![x, w], "dead", prov())
            .unwrap();
        let _dead2 = g
            .add_op(OpKind::Unary(UnaryOp::Relu), vec![dead], "dead2", prov())
            .unwrap();
        let live = g
            .add_op(OpKind::Unary(UnaryOp::Tanh), vec![x], "live", prov())
            .unwrap();
        g.add_output(live);
        let out = eliminate_dead_ops(&g);
        assert_eq!(out.num_ops(), 1);
        assert_eq!(out.weight_bytes(), 0);
        assert_eq!(out.op(OpId(0)).kind, OpKind::Unary(UnaryOp::Tanh));
        lpuc_ir::verify(&out).unwrap();
    }
}
