//! A generator of random valid graphs from the supported ops, shared by the property tests
//! (included with `#[path]` by each test that uses it).

use lpuc_ir::{BinaryOp, DType, Graph, OpKind, Provenance, TensorType, UnaryOp, ValueId};
use proptest::prelude::*;

/// One step of a random graph: which op, and which earlier values (by index modulo) it reads.
#[derive(Clone, Debug)]
pub enum Step {
    Unary(u8, usize),
    Binary(u8, usize, usize),
    MatMulWeight(usize, u64),
    Softmax(usize),
    /// LayerNorm over the last axis; with `true` also its mean and inverse standard deviation
    /// (a multi-result op).
    LayerNorm(usize, bool),
    Transpose(usize),
    Reshape(usize),
    /// Mean over the last axis, kept as size 1.
    Reduce(usize),
    /// The value concatenated with another along the first axis.
    Concat(usize, usize),
    /// Every other row.
    Slice(usize),
    /// `a < b ? a : b` (a comparison and a select).
    Select(usize, usize),
    /// Rows picked by run-time int64 indices (an embedding lookup).
    Gather(usize, u64),
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..5, any::<usize>()).prop_map(|(k, a)| Step::Unary(k, a)),
        (0u8..4, any::<usize>(), any::<usize>()).prop_map(|(k, a, b)| Step::Binary(k, a, b)),
        (
            any::<usize>(),
            prop_oneof![Just(64u64), Just(128), Just(320), Just(700)]
        )
            .prop_map(|(a, n)| Step::MatMulWeight(a, n)),
        any::<usize>().prop_map(Step::Softmax),
        (any::<usize>(), any::<bool>()).prop_map(|(a, s)| Step::LayerNorm(a, s)),
        any::<usize>().prop_map(Step::Transpose),
        any::<usize>().prop_map(Step::Reshape),
        any::<usize>().prop_map(Step::Reduce),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Concat(a, b)),
        any::<usize>().prop_map(Step::Slice),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Select(a, b)),
        (any::<usize>(), 1u64..300).prop_map(|(a, n)| Step::Gather(a, n)),
    ]
}

pub fn build(rows: u64, cols: u64, steps: &[Step]) -> Graph {
    let mut g = Graph::new("random");
    let x = g.add_input("x", TensorType::new(DType::F16, vec![rows, cols]));
    let mut values: Vec<ValueId> = vec![x];
    let prov = |i: usize| Provenance {
        node: format!("n{i}"),
        op_type: "Random".into(),
    };
    for (i, s) in steps.iter().enumerate() {
        let pick = |k: usize| values[k % values.len()];
        let dims = |v: ValueId, g: &Graph| g.value(v).ty.shape.dims().to_vec();
        let result = match *s {
            Step::Unary(k, a) => {
                let op = [
                    UnaryOp::Relu,
                    UnaryOp::Erf,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::Gelu { tanh: false },
                ][k as usize];
                g.add_op(OpKind::Unary(op), vec![pick(a)], format!("v{i}"), prov(i))
            }
            Step::Binary(k, a, b) => {
                let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div][k as usize];
                g.add_op(
                    OpKind::Binary(op),
                    vec![pick(a), pick(b)],
                    format!("v{i}"),
                    prov(i),
                )
            }
            Step::MatMulWeight(a, n) => {
                let v = pick(a);
                let k = *dims(v, &g).last().unwrap();
                let w = g.add_weight(
                    format!("w{i}"),
                    TensorType::new(DType::F16, vec![k, n]),
                    format!("w{i}"),
                );
                g.add_op(OpKind::MatMul, vec![v, w], format!("v{i}"), prov(i))
            }
            Step::Softmax(a) => {
                let v = pick(a);
                let axis = dims(v, &g).len() - 1;
                g.add_op(
                    OpKind::Softmax { axis, log: false },
                    vec![v],
                    format!("v{i}"),
                    prov(i),
                )
            }
            Step::LayerNorm(a, stats) => {
                let v = pick(a);
                let d = dims(v, &g);
                let scale = g.add_weight(
                    format!("s{i}"),
                    TensorType::new(DType::F16, vec![*d.last().unwrap()]),
                    "s",
                );
                let op = OpKind::LayerNorm {
                    axis: d.len() - 1,
                    epsilon: 1e-5,
                    stats,
                };
                // With stats it has three results; the mean joins the pool of values too.
                let names = [format!("v{i}"), format!("m{i}"), format!("r{i}")];
                let n = if stats { 3 } else { 1 };
                g.add_op_multi(op, vec![v, scale], &names[..n], prov(i))
                    .map(|outs| {
                        if stats {
                            values.push(outs[1]);
                        }
                        outs[0]
                    })
            }
            Step::Transpose(a) => {
                let v = pick(a);
                g.add_op(
                    OpKind::Transpose { perm: vec![1, 0] },
                    vec![v],
                    format!("v{i}"),
                    prov(i),
                )
            }
            Step::Reshape(a) => {
                let v = pick(a);
                let d = dims(v, &g);
                let shape = vec![d[1], d[0]];
                g.add_op(OpKind::Reshape { shape }, vec![v], format!("v{i}"), prov(i))
            }
            Step::Reduce(a) => {
                let v = pick(a);
                let axes = vec![dims(v, &g).len() - 1];
                let op = OpKind::Reduce {
                    op: lpuc_ir::ReduceOp::Mean,
                    axes,
                    keep_dims: true,
                };
                g.add_op(op, vec![v], format!("v{i}"), prov(i))
            }
            Step::Concat(a, b) => g.add_op(
                OpKind::Concat { axis: 0 },
                vec![pick(a), pick(b)],
                format!("v{i}"),
                prov(i),
            ),
            Step::Slice(a) => {
                let v = pick(a);
                let d = dims(v, &g);
                let op = OpKind::Slice {
                    starts: vec![0; d.len()],
                    ends: d.iter().map(|&x| x as i64).collect(),
                    steps: std::iter::once(2)
                        .chain(std::iter::repeat(1))
                        .take(d.len())
                        .collect(),
                };
                g.add_op(op, vec![v], format!("v{i}"), prov(i))
            }
            Step::Select(a, b) => g
                .add_op(
                    OpKind::Binary(BinaryOp::Less),
                    vec![pick(a), pick(b)],
                    format!("c{i}"),
                    prov(i),
                )
                .and_then(|c| g.add_op(OpKind::Where, vec![c, pick(a), pick(b)], format!("v{i}"), prov(i))),
            Step::Gather(a, n) => {
                let v = pick(a);
                let idx = g.add_input(format!("idx{i}"), TensorType::new(DType::I64, vec![n]));
                g.add_op(OpKind::Gather { axis: 0 }, vec![v, idx], format!("v{i}"), prov(i))
            }
        };
        // Steps whose operands do not fit (e.g. broadcasting mismatched shapes) are skipped:
        // the property is about valid graphs.
        if let Ok(v) = result {
            values.push(v);
        }
    }
    let last = *values.last().unwrap();
    g.add_output(last);
    if values.len() > 2 {
        g.add_output(values[values.len() / 2]);
    }
    g
}
