//! Hand-checked cases for the reference kernels, and a whole graph evaluated op by op.

use super::*;
use crate::{BinaryOp, DType, OpKind, Provenance, ReduceOp, TensorType, UnaryOp};

fn prov(n: &str) -> Provenance {
    Provenance {
        node: n.into(),
        op_type: n.into(),
    }
}

fn t(dims: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(dims.to_vec(), data.to_vec()).expect("element count matches")
}

/// Evaluate one op of `kind` on inputs of the given types and values.
fn one(kind: OpKind, inputs: &[(&[u64], Tensor)]) -> Result<Vec<Tensor>, EvalError> {
    let mut g = Graph::new("one");
    let mut feeds = BTreeMap::new();
    let ids: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(k, (dims, tensor))| {
            let v = g.add_input(format!("x{k}"), TensorType::new(DType::F32, dims.to_vec()));
            feeds.insert(v, tensor.clone());
            v
        })
        .collect();
    let y = g.add_op(kind, ids, "y", prov("op")).expect("the op type-checks");
    g.add_output(y);
    evaluate(&g, &feeds)
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

#[test]
fn elementwise_ops_broadcast() {
    let y = one(
        OpKind::Binary(BinaryOp::Sub),
        &[
            (&[2, 3], t(&[2, 3], &[1., 2., 3., 4., 5., 6.])),
            (&[3], t(&[3], &[1., 1., 2.])),
        ],
    )
    .unwrap();
    assert_eq!(y[0].dims, vec![2, 3]);
    assert!(close(&y[0].data, &[0., 1., 1., 3., 4., 4.]));
    let relu = one(OpKind::Unary(UnaryOp::Relu), &[(&[3], t(&[3], &[-1., 0., 2.]))]).unwrap();
    assert!(close(&relu[0].data, &[0., 0., 2.]));
    // ONNX Round takes halves to even.
    let round = one(
        OpKind::Unary(UnaryOp::Round),
        &[(&[4], t(&[4], &[0.5, 1.5, 2.5, -0.5]))],
    )
    .unwrap();
    assert!(close(&round[0].data, &[0., 2., 2., -0.]));
}

#[test]
fn erf_is_within_float32_precision() {
    // Reference values of erf.
    for (x, e) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (-2.0, -0.995_322_265_018_952_7),
    ] {
        assert!((kernels::erf(x) - e).abs() < 2e-7, "erf({x})");
    }
}

#[test]
fn matmul_contracts_and_broadcasts_batches() {
    // [2,2] x [2,3]
    let y = one(
        OpKind::MatMul,
        &[
            (&[2, 2], t(&[2, 2], &[1., 2., 3., 4.])),
            (&[2, 3], t(&[2, 3], &[1., 0., 1., 0., 1., 1.])),
        ],
    )
    .unwrap();
    assert_eq!(y[0].dims, vec![2, 3]);
    assert!(close(&y[0].data, &[1., 2., 3., 3., 4., 7.]));
    // A batch of two against one shared matrix.
    let y = one(
        OpKind::MatMul,
        &[
            (&[2, 1, 2], t(&[2, 1, 2], &[1., 1., 2., 0.])),
            (&[2, 1], t(&[2, 1], &[3., 5.])),
        ],
    )
    .unwrap();
    assert_eq!(y[0].dims, vec![2, 1, 1]);
    assert!(close(&y[0].data, &[8., 6.]));
}

#[test]
fn softmax_and_norms() {
    let y = one(
        OpKind::Softmax { axis: 1, log: false },
        &[(&[1, 2], t(&[1, 2], &[0., 2f64.ln()]))],
    )
    .unwrap();
    assert!(close(&y[0].data, &[1. / 3., 2. / 3.]));
    let x = t(&[1, 4], &[1., 2., 3., 4.]);
    let ones = t(&[4], &[1., 1., 1., 1.]);
    let rms = one(
        OpKind::RmsNorm {
            axis: 1,
            epsilon: 0.0,
        },
        &[(&[1, 4], x.clone()), (&[4], ones.clone())],
    )
    .unwrap();
    let r = (30.0f64 / 4.0).sqrt();
    assert!(close(&rms[0].data, &[1. / r, 2. / r, 3. / r, 4. / r]));
    let ln = one(
        OpKind::LayerNorm {
            axis: 1,
            epsilon: 0.0,
            stats: false,
        },
        &[(&[1, 4], x), (&[4], ones)],
    )
    .unwrap();
    let s = 1.25f64.sqrt();
    assert!(close(&ln[0].data, &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s]));
}

#[test]
fn movement_ops_follow_onnx() {
    let x = t(&[2, 3], &[0., 1., 2., 3., 4., 5.]);
    let tr = one(OpKind::Transpose { perm: vec![1, 0] }, &[(&[2, 3], x.clone())]).unwrap();
    assert_eq!(tr[0].dims, vec![3, 2]);
    assert!(close(&tr[0].data, &[0., 3., 1., 4., 2., 5.]));
    let sl = one(
        OpKind::Slice {
            starts: vec![0, -1],
            ends: vec![2, -10],
            steps: vec![1, -2],
        },
        &[(&[2, 3], x.clone())],
    )
    .unwrap();
    assert_eq!(sl[0].dims, vec![2, 2]);
    assert!(close(&sl[0].data, &[2., 0., 5., 3.]));
    let red = one(
        OpKind::Reduce {
            op: ReduceOp::Sum,
            axes: vec![1],
            keep_dims: false,
        },
        &[(&[2, 3], x.clone())],
    )
    .unwrap();
    assert!(close(&red[0].data, &[3., 12.]));
    let lower = one(OpKind::Trilu { upper: false, k: 0 }, &[(&[2, 3], x)]).unwrap();
    assert!(close(&lower[0].data, &[0., 0., 0., 3., 4., 0.]));
}

#[test]
fn a_graph_runs_op_by_op_from_its_feeds() {
    // y = relu(x @ w) + x @ w
    let mut g = Graph::new("g");
    let x = g.add_input("x", TensorType::new(DType::F32, vec![1, 2]));
    let w = g.add_weight("w", TensorType::new(DType::F32, vec![2, 2]), "w");
    let h = g.add_op(OpKind::MatMul, vec![x, w], "h", prov("mm")).unwrap();
    let r = g
        .add_op(OpKind::Unary(UnaryOp::Relu), vec![h], "r", prov("relu"))
        .unwrap();
    let y = g
        .add_op(OpKind::Binary(BinaryOp::Add), vec![r, h], "y", prov("add"))
        .unwrap();
    g.add_output(y);
    let mut feeds = BTreeMap::new();
    feeds.insert(x, t(&[1, 2], &[1., -2.]));
    let missing = evaluate(&g, &feeds).unwrap_err();
    assert!(
        matches!(missing, EvalError::Missing { kind: "weight", .. }),
        "{missing:?}"
    );
    feeds.insert(w, t(&[2, 2], &[1., 0., 1., 1.]));
    let out = evaluate(&g, &feeds).unwrap();
    // x @ w = [-1, -2]; relu = [0, 0]; sum = [-1, -2]
    assert!(close(&out[0].data, &[-1., -2.]));
    feeds.insert(x, t(&[2, 1], &[1., -2.]));
    assert!(matches!(evaluate(&g, &feeds), Err(EvalError::WrongShape { .. })));
}

#[test]
fn an_op_without_a_kernel_is_an_error_not_a_guess() {
    let einsum = OpKind::Einsum {
        equation: "ij->ji".into(),
    };
    let e = one(einsum, &[(&[2, 2], t(&[2, 2], &[1., 2., 3., 4.]))]).unwrap_err();
    assert!(matches!(e, EvalError::Unsupported { .. }), "{e:?}");
}
