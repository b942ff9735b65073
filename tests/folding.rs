//! Property: constant folding agrees with shape inference. For random small tensors and random
//! slices, gathers, transposes, concatenations, reductions and broadcasts, evaluating the op yields
//! exactly as many values as the inferred result type has elements, and slices pick the elements a
//! plain reference loop picks.

use lpuc::frontend::consts::Values;
use lpuc::frontend::fold::evaluate;
use lpuc_ir::infer::infer;
use lpuc_ir::{BinaryOp, DType, OpKind, ReduceOp, TensorType};
use proptest::prelude::*;

fn tensor(dims: &[u64]) -> (TensorType, Values) {
    let n: u64 = dims.iter().product();
    (
        TensorType::new(DType::I64, dims.to_vec()),
        Values::Int((0..n as i64).collect()),
    )
}

fn fold(kind: &OpKind, inputs: &[&(TensorType, Values)]) -> Option<(TensorType, Values)> {
    let types: Vec<&TensorType> = inputs.iter().map(|(t, _)| t).collect();
    let out = infer(kind, &types).ok()?.remove(0);
    let args: Vec<(&TensorType, &Values)> = inputs.iter().map(|(t, v)| (t, v)).collect();
    let v = evaluate(kind, &args, &out).expect("folding evaluates every op it is given here");
    Some((out, v))
}

fn dims() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(1u64..5, 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn slices_match_a_reference_loop(
        n in 1u64..12,
        start in -15i64..15,
        end in -15i64..15,
        step in prop_oneof![-4i64..0, 1i64..5],
    ) {
        let x = tensor(&[n]);
        let kind = OpKind::Slice { starts: vec![start], ends: vec![end], steps: vec![step] };
        let (_, got) = fold(&kind, &[&x]).unwrap();
        // Reference: ONNX's clamping (a negative step clamps the start into [0, d-1], unlike
        // numpy), then walk.
        let d = n as i64;
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (mut i, e) = if step > 0 {
            (norm(start).clamp(0, d), norm(end).clamp(0, d))
        } else {
            (norm(start).clamp(0, d - 1), norm(end).clamp(-1, d - 1))
        };
        let mut want = Vec::new();
        while (step > 0 && i < e) || (step < 0 && i > e) {
            want.push(i);
            i += step;
        }
        prop_assert_eq!(got, Values::Int(want));
    }

    #[test]
    fn every_folded_result_has_the_inferred_size(
        a in dims(),
        perm_seed in any::<u64>(),
        axis_seed in any::<usize>(),
        idx in proptest::collection::vec(-3i64..3, 1..4),
    ) {
        let x = tensor(&a);
        let rank = a.len();
        let axis = axis_seed % rank;
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.rotate_left((perm_seed as usize) % rank);
        let indices = (TensorType::new(DType::I64, vec![idx.len() as u64]), Values::Int(idx.clone()));
        let ops: Vec<(OpKind, Vec<&(TensorType, Values)>)> = vec![
            (OpKind::Transpose { perm }, vec![&x]),
            (OpKind::Concat { axis }, vec![&x, &x]),
            (OpKind::Gather { axis }, vec![&x, &indices]),
            (OpKind::Reduce { op: ReduceOp::Sum, axes: vec![axis], keep_dims: axis_seed % 2 == 0 }, vec![&x]),
            (OpKind::Binary(BinaryOp::Mul), vec![&x, &indices]),
            (OpKind::Expand { shape: std::iter::once(2).chain(a.iter().copied()).collect() }, vec![&x]),
            (OpKind::Tile { repeats: vec![2; rank] }, vec![&x]),
        ];
        for (kind, inputs) in ops {
            let gather_out_of_range =
                matches!(kind, OpKind::Gather { .. }) && idx.iter().any(|&i| i >= a[axis] as i64 || i < -(a[axis] as i64));
            let types: Vec<&TensorType> = inputs.iter().map(|(t, _)| t).collect();
            let Ok(mut out) = infer(&kind, &types) else { continue };
            let out = out.remove(0);
            let args: Vec<(&TensorType, &Values)> = inputs.iter().map(|(t, v)| (t, v)).collect();
            match evaluate(&kind, &args, &out) {
                Some(v) => prop_assert_eq!(v.len() as u64, out.shape.num_elements().unwrap(), "{}", kind),
                None => prop_assert!(gather_out_of_range, "{} did not fold", kind),
            }
        }
    }
}
