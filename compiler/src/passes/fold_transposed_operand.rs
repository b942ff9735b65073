//! `transpose-into-matmul`: a matrix product whose right operand is a transpose swapping its last
//! two axes (attention's keys, `Q @ K^T`) reads the untransposed value instead, as a `MatMulT`:
//! the matrix unit takes `K`'s rows as its columns, and the SXM pass that would write `K^T` is gone.
//!
//! Only where the transpose has no other reader (else it is computed anyway) and is not a graph
//! output. The pass runs on every rewritten form after saturation and grouped attention, which
//! match `MatMul(q, Transpose(k))` themselves.

use super::eliminate_dead_ops::eliminate_dead_ops;
use lpuc_ir::{Graph, OpKind, ValueId, ValueKind};

/// Whether `perm` swaps the last two axes and keeps the others.
fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2
        && perm[..r - 2].iter().enumerate().all(|(i, &a)| i == a)
}

/// `g` with each such product folded, and how many were.
pub fn fold_transposed_operand(g: &Graph) -> (Graph, usize) {
    let mut readers = vec![0usize; g.num_values()];
    for o in g.op_ids() {
        for &v in &g.op(o).inputs {
            readers[v.index()] += 1;
        }
    }
    let outputs: std::collections::BTreeSet<ValueId> = g.outputs().iter().copied().collect();
    // The untransposed value for each foldable transpose result.
    let source = |v: ValueId| -> Option<ValueId> {
        let ValueKind::Computed { producer } = g.value(v).kind else {
            return None;
        };
        let op = g.op(producer);
        match &op.kind {
            OpKind::Transpose { perm }
                if swaps_last_two(perm) && readers[v.index()] == 1 && !outputs.contains(&v) =>
            {
                Some(op.inputs[0])
            }
            _ => None,
        }
    };
    let (mut out, mut map) = g.interface(|_| true);
    let mut count = 0;
    for o in g.op_ids() {
        let op = g.op(o);
        let folded = match (&op.kind, op.inputs.as_slice()) {
            (OpKind::MatMul, [a, b]) => source(*b).map(|k| (*a, k)),
            _ => None,
        };
        match folded {
            Some((a, k)) => {
                let name = g.value(op.outputs[0]).name.clone();
                let v = out
                    .add_op(
                        OpKind::MatMulT,
                        vec![map[&a], map[&k]],
                        name,
                        g.provenance(o).clone(),
                    )
                    .expect("a product of the untransposed operand has the same type");
                map.insert(op.outputs[0], v);
                count += 1;
            }
            None => out
                .copy_op(g, o, &mut map)
                .expect("re-adding a verified op with the same operand types cannot fail"),
        }
    }
    for v in g.outputs() {
        out.add_output(map[v]);
    }
    // The transposes now read by nothing go.
    (eliminate_dead_ops(&out), count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::interp::{evaluate, Tensor};
    use lpuc_ir::{DType, Provenance, TensorType};
    use std::collections::BTreeMap;

    fn prov(n: &str) -> Provenance {
        Provenance {
            node: n.into(),
            op_type: n.into(),
        }
    }

    /// `q @ transpose(k, perm)`, with the transpose also read by `extra` when asked.
    fn scores(perm: &[usize], extra: bool) -> Graph {
        let mut g = Graph::new("scores");
        let q = g.add_input("q", TensorType::new(DType::F32, vec![2, 3, 4]));
        let k = g.add_input("k", TensorType::new(DType::F32, vec![2, 5, 4]));
        let kt = g
            .add_op(
                OpKind::Transpose { perm: perm.to_vec() },
                vec![k],
                "kt",
                prov("t"),
            )
            .unwrap();
        let s = g.add_op(OpKind::MatMul, vec![q, kt], "s", prov("m")).unwrap();
        g.add_output(s);
        if extra {
            g.add_output(kt);
        }
        g
    }

    fn run(g: &Graph) -> Vec<Tensor> {
        let mut feeds = BTreeMap::new();
        for (k, &v) in g.inputs().iter().enumerate() {
            let dims: Vec<usize> = g.value(v).ty.shape.dims().iter().map(|&d| d as usize).collect();
            let n: usize = dims.iter().product();
            let data = (0..n).map(|i| ((i * 7 + k * 3) % 11) as f64 - 5.0).collect();
            feeds.insert(v, Tensor::new(dims, data).unwrap());
        }
        evaluate(g, &feeds).unwrap()
    }

    #[test]
    fn a_product_with_a_transposed_operand_reads_it_untransposed() {
        let g = scores(&[0, 2, 1], false);
        let (out, count) = fold_transposed_operand(&g);
        lpuc_ir::verify(&out).unwrap();
        assert_eq!(count, 1);
        assert_eq!(out.num_ops(), 1);
        assert_eq!(out.op(out.op_ids().next().unwrap()).kind, OpKind::MatMulT);
        assert_eq!(run(&g), run(&out));
        // Only a swap of the last two axes folds, and not a transpose someone else reads.
        assert!(swaps_last_two(&[0, 1, 3, 2]));
        assert!(!swaps_last_two(&[1, 0, 2]) && !swaps_last_two(&[2, 1, 0]) && !swaps_last_two(&[0]));
        let (_, count) = fold_transposed_operand(&scores(&[0, 2, 1], true));
        assert_eq!(count, 0);
    }
}
