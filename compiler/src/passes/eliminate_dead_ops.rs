//! Remove ops whose results no graph output needs, and weights nothing reads.
//!
//! Exporters leave dead branches behind (unused Dropout masks, debugging outputs); scheduling them
//! would waste cycles and SRAM. Graph inputs are kept even when unused: they are the interface.

use lpuc_ir::Graph;

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
    let (mut out, mut map) = g.interface(|v| live_value[v.index()]);
    for o in g.op_ids().filter(|o| live_op[o.index()]) {
        out.copy_op(g, o, &mut map)
            .expect("re-adding a verified op with the same operand types cannot fail");
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
