//! Every rule applied on a small graph, and the numbers compared before and after with the
//! reference interpreter.

use super::*;
use lpuc_ir::interp::{evaluate, Tensor};
use lpuc_ir::{BinaryOp, DType, Provenance, ReduceOp, TensorType, UnaryOp};

fn prov(node: &str) -> Provenance {
    Provenance {
        node: node.into(),
        op_type: node.into(),
    }
}

fn f32s(d: &[u64]) -> TensorType {
    TensorType::new(DType::F32, d.to_vec())
}

fn op(g: &mut Graph, kind: OpKind, inputs: Vec<ValueId>, name: &str) -> ValueId {
    g.add_op(kind, inputs, name, prov(name)).unwrap()
}

fn transpose(g: &mut Graph, x: ValueId, perm: &[usize], name: &str) -> ValueId {
    op(g, OpKind::Transpose { perm: perm.to_vec() }, vec![x], name)
}

fn relu(g: &mut Graph, x: ValueId, name: &str) -> ValueId {
    op(g, OpKind::Unary(UnaryOp::Relu), vec![x], name)
}

/// Pseudo-random inputs in [-1, 1) (the same for the same name); scalar weights their known
/// values.
fn run(g: &Graph) -> Vec<Tensor> {
    let mut feeds = BTreeMap::new();
    for v in g.value_ids() {
        let value = g.value(v);
        if matches!(value.kind, ValueKind::Computed { .. }) {
            continue;
        }
        if let Some(x) = g.scalar(v) {
            feeds.insert(v, Tensor::new(vec![], vec![x]).unwrap());
            continue;
        }
        let mut x = value.name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) | 1;
        let n: u64 = value.ty.shape.dims().iter().product();
        let data = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 52) as f64 * 2.0 - 1.0
            })
            .collect();
        let dims = value.ty.shape.dims().iter().map(|&d| d as usize).collect();
        feeds.insert(v, Tensor::new(dims, data).unwrap());
    }
    evaluate(g, &feeds).unwrap()
}

/// Rewrite `g`, check the result verifies and computes the same outputs (to rounding: a fused op
/// computes the same formula in another order), and return it with the rules that fired.
fn simplified(g: &Graph) -> (Graph, Fired) {
    let (out, fired) = saturate(g, &Target::lpu_v1());
    let out = crate::passes::eliminate_dead_ops::eliminate_dead_ops(&out);
    lpuc_ir::verify(&out).unwrap();
    let (before, after) = (run(g), run(&out));
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.dims, a.dims);
        let worst = b
            .data
            .iter()
            .zip(&a.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-12, "the rewrite changed the numbers by up to {worst}");
    }
    (out, fired)
}

fn scalar(g: &mut Graph, name: &str, x: f64) -> ValueId {
    let v = g.add_weight(name, f32s(&[]), name);
    g.set_scalar(v, x);
    v
}

fn bin(g: &mut Graph, op_: BinaryOp, a: ValueId, b: ValueId, name: &str) -> ValueId {
    op(g, OpKind::Binary(op_), vec![a, b], name)
}

fn un(g: &mut Graph, op_: UnaryOp, a: ValueId, name: &str) -> ValueId {
    op(g, OpKind::Unary(op_), vec![a], name)
}

/// RMSNorm as Llama exports write it: `gain * (x * 1/sqrt(mean(x^2) + eps))`, gain first when
/// `gain_first`.
fn rms(eps: f64, two: f64, gain_first: bool) -> Graph {
    let mut g = Graph::new("rms");
    let x = g.add_input("x", f32s(&[2, 3, 8]));
    let gain = g.add_input("gain", f32s(&[8]));
    let c2 = scalar(&mut g, "two", two);
    let ce = scalar(&mut g, "eps", eps);
    let p = bin(&mut g, BinaryOp::Pow, x, c2, "pow");
    let m = op(
        &mut g,
        OpKind::Reduce {
            op: ReduceOp::Mean,
            axes: vec![2],
            keep_dims: true,
        },
        vec![p],
        "mean",
    );
    let a = bin(&mut g, BinaryOp::Add, m, ce, "add");
    let s = un(&mut g, UnaryOp::Sqrt, a, "sqrt");
    let r = un(&mut g, UnaryOp::Reciprocal, s, "recip");
    let n = bin(&mut g, BinaryOp::Mul, x, r, "normed");
    let y = if gain_first {
        bin(&mut g, BinaryOp::Mul, gain, n, "y")
    } else {
        bin(&mut g, BinaryOp::Mul, n, gain, "y")
    };
    let z = un(&mut g, UnaryOp::Relu, y, "z");
    g.add_output(z);
    g
}

#[test]
fn decomposed_rmsnorm_becomes_one_op_either_way_round() {
    for gain_first in [true, false] {
        let (out, fired) = simplified(&rms(1e-5, 2.0, gain_first));
        assert_eq!(count(&out, "RmsNorm"), 1, "{}", lpuc_ir::print::print(&out));
        assert_eq!(out.num_ops(), 2);
        assert_eq!(fired.get("rmsnorm"), Some(&1));
    }
}

#[test]
fn an_rmsnorm_lookalike_is_left_alone() {
    // A cube instead of a square is not RMSNorm.
    let (out, fired) = simplified(&rms(1e-5, 3.0, true));
    assert_eq!(count(&out, "RmsNorm"), 0);
    assert!(!fired.contains_key("rmsnorm"));
}

/// GELU as BERT exports write it: `x * (erf(x / sqrt 2) + 1) * 0.5`, with `root` for sqrt 2.
fn gelu(root: f64) -> Graph {
    let mut g = Graph::new("gelu");
    let x = g.add_input("x", f32s(&[4, 16]));
    let c = scalar(&mut g, "root2", root);
    let one = scalar(&mut g, "one", 1.0);
    let half = scalar(&mut g, "half", 0.5);
    let d = bin(&mut g, BinaryOp::Div, x, c, "div");
    let e = un(&mut g, UnaryOp::Erf, d, "erf");
    let a = bin(&mut g, BinaryOp::Add, e, one, "add");
    let m = bin(&mut g, BinaryOp::Mul, x, a, "mul");
    let y = bin(&mut g, BinaryOp::Mul, m, half, "y");
    g.add_output(y);
    g
}

#[test]
fn decomposed_gelu_becomes_one_op() {
    let (out, fired) = simplified(&gelu(std::f64::consts::SQRT_2));
    assert_eq!(count(&out, "Gelu"), 1);
    assert_eq!(out.num_ops(), 1);
    assert_eq!(fired.get("gelu-erf"), Some(&1));
    // Another constant is another function.
    let (out, _) = simplified(&gelu(1.5));
    assert_eq!(count(&out, "Gelu"), 0);
}

fn count(g: &Graph, name: &str) -> usize {
    g.op_ids().filter(|&o| g.op(o).kind.name() == name).count()
}

#[test]
fn a_transpose_and_its_inverse_cancel() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[2, 3, 4]));
    let a = transpose(&mut g, x, &[1, 2, 0], "a");
    let b = transpose(&mut g, a, &[2, 0, 1], "b");
    let y = relu(&mut g, b, "y");
    g.add_output(y);
    let (out, fired) = simplified(&g);
    assert_eq!(count(&out, "Transpose"), 0);
    assert!(fired["transpose-pair"] >= 1, "{fired:?}");
}

#[test]
fn two_transposes_compose_into_one() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[2, 3, 4]));
    // Different permutations, so composing them in the wrong order would give other numbers.
    let a = transpose(&mut g, x, &[1, 2, 0], "a");
    let b = transpose(&mut g, a, &[0, 2, 1], "b");
    let y = relu(&mut g, b, "y");
    g.add_output(y);
    let (out, _) = simplified(&g);
    assert_eq!(count(&out, "Transpose"), 1);
}

#[test]
fn reshape_chains_merge_and_reshapes_to_the_same_shape_vanish() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[2, 3, 4]));
    let a = op(&mut g, OpKind::Reshape { shape: vec![6, 4] }, vec![x], "a");
    let b = op(&mut g, OpKind::Reshape { shape: vec![3, 8] }, vec![a], "b");
    let c = op(&mut g, OpKind::Reshape { shape: vec![24] }, vec![b], "c");
    let y = relu(&mut g, c, "y");
    let d = op(&mut g, OpKind::Reshape { shape: vec![2, 3, 4] }, vec![x], "d");
    let z = op(&mut g, OpKind::Binary(BinaryOp::Add), vec![d, x], "z");
    g.add_output(y);
    g.add_output(z);
    let (out, fired) = simplified(&g);
    // One reshape for y's chain; none for d.
    assert_eq!(count(&out, "Reshape"), 1);
    assert!(
        fired.contains_key("reshape-chain") && fired.contains_key("reshape-noop"),
        "{fired:?}"
    );
}

#[test]
fn a_cast_to_the_dtype_a_value_has_vanishes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[4, 4]));
    let a = op(&mut g, OpKind::Cast { to: DType::F32 }, vec![x], "a");
    let y = relu(&mut g, a, "y");
    g.add_output(y);
    let (out, fired) = simplified(&g);
    assert_eq!(count(&out, "Cast"), 0);
    assert_eq!(fired.get("cast-noop"), Some(&1));
}

#[test]
fn a_chain_read_twice_and_an_output_that_would_alias_an_input_stay_sound() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[2, 3]));
    let a = transpose(&mut g, x, &[1, 0], "a");
    let b = transpose(&mut g, a, &[1, 0], "b");
    // a is read by an op and b is both read and a graph output.
    let y = relu(&mut g, a, "y");
    let z = relu(&mut g, b, "z");
    g.add_output(y);
    g.add_output(z);
    g.add_output(b);
    let (out, _) = simplified(&g);
    // b's value is x again: the output gets its own copy, never the input itself.
    for &o in out.outputs() {
        assert!(matches!(out.value(o).kind, ValueKind::Computed { .. }));
    }
    assert_eq!(count(&out, "Transpose"), 1);
}

#[test]
fn nothing_to_simplify_returns_the_graph_unchanged_and_the_result_is_deterministic() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32s(&[2, 3, 4]));
    let a = transpose(&mut g, x, &[1, 2, 0], "a");
    let y = relu(&mut g, a, "y");
    g.add_output(y);
    let (out, fired) = simplified(&g);
    assert!(fired.is_empty());
    assert_eq!(lpuc_ir::print::print(&out), lpuc_ir::print::print(&g));
    let mut h = Graph::new("t");
    let x = h.add_input("x", f32s(&[2, 3, 4]));
    let a = transpose(&mut h, x, &[1, 2, 0], "a");
    let b = transpose(&mut h, a, &[2, 0, 1], "b");
    let c = op(&mut h, OpKind::Reshape { shape: vec![24] }, vec![b], "c");
    let y = relu(&mut h, c, "y");
    h.add_output(y);
    let first = lpuc_ir::print::print(&simplified(&h).0);
    let second = lpuc_ir::print::print(&simplified(&h).0);
    assert_eq!(first, second);
}

/// GELU in the tanh form, as GPT-2 exports write it.
fn gelu_tanh(c: f64) -> Graph {
    let mut g = Graph::new("gelu_tanh");
    let x = g.add_input("x", f32s(&[4, 16]));
    let half = scalar(&mut g, "half", 0.5);
    let three = scalar(&mut g, "three", 3.0);
    let cc = scalar(&mut g, "c", c);
    let k = scalar(&mut g, "k", (2.0 / std::f64::consts::PI).sqrt());
    let one = scalar(&mut g, "one", 1.0);
    let h = bin(&mut g, BinaryOp::Mul, half, x, "h");
    let p = bin(&mut g, BinaryOp::Pow, x, three, "p");
    let m = bin(&mut g, BinaryOp::Mul, cc, p, "m");
    let a = bin(&mut g, BinaryOp::Add, x, m, "a");
    let s = bin(&mut g, BinaryOp::Mul, k, a, "s");
    let t = un(&mut g, UnaryOp::Tanh, s, "t");
    let u = bin(&mut g, BinaryOp::Add, one, t, "u");
    let y = bin(&mut g, BinaryOp::Mul, h, u, "y");
    g.add_output(y);
    g
}

#[test]
fn decomposed_tanh_gelu_becomes_one_op() {
    let (out, fired) = simplified(&gelu_tanh(0.044715));
    assert_eq!(count(&out, "Gelu"), 1);
    assert_eq!(out.num_ops(), 1);
    assert_eq!(fired.get("gelu-tanh"), Some(&1));
    let (out, _) = simplified(&gelu_tanh(0.05));
    assert_eq!(count(&out, "Gelu"), 0);
}

/// LayerNorm as GPT-2 exports write it, over the last axis (or `axis`).
fn layer_norm(axis: usize) -> Graph {
    let mut g = Graph::new("ln");
    let x = g.add_input("x", f32s(&[2, 6, 8]));
    let dim = [2, 6, 8][axis];
    let gamma = g.add_input("gamma", f32s(&[dim]));
    let beta = g.add_input("beta", f32s(&[dim]));
    let two = scalar(&mut g, "two", 2.0);
    // 2^-17: exactly an f32, so the fused op's epsilon is the same number.
    let eps = scalar(&mut g, "eps", 1.0 / 131_072.0);
    let mean = |g: &mut Graph, v: ValueId, name: &str| {
        op(
            g,
            OpKind::Reduce {
                op: ReduceOp::Mean,
                axes: vec![axis],
                keep_dims: true,
            },
            vec![v],
            name,
        )
    };
    let m = mean(&mut g, x, "m");
    let d = bin(&mut g, BinaryOp::Sub, x, m, "d");
    let p = bin(&mut g, BinaryOp::Pow, d, two, "p");
    let v = mean(&mut g, p, "v");
    let a = bin(&mut g, BinaryOp::Add, v, eps, "a");
    let s = un(&mut g, UnaryOp::Sqrt, a, "s");
    let n = bin(&mut g, BinaryOp::Div, d, s, "n");
    if axis != 2 {
        g.add_output(n);
        return g;
    }
    let sc = bin(&mut g, BinaryOp::Mul, n, gamma, "sc");
    let y = bin(&mut g, BinaryOp::Add, sc, beta, "y");
    g.add_output(y);
    g
}

#[test]
fn decomposed_layernorm_becomes_one_op() {
    let (out, fired) = simplified(&layer_norm(2));
    assert_eq!(count(&out, "LayerNorm"), 1, "{}", lpuc_ir::print::print(&out));
    assert_eq!(out.num_ops(), 1);
    assert_eq!(fired.get("layernorm"), Some(&1));
    // Over another axis, without the affine part: not the pattern.
    let (out, fired) = simplified(&layer_norm(1));
    assert_eq!(count(&out, "LayerNorm"), 0);
    assert!(!fired.contains_key("layernorm"));
}

/// `MatMul(x, w) + b`, the addend `b` of shape `addend`.
fn biased(addend: &[u64], bias_first: bool) -> Graph {
    let mut g = Graph::new("biased");
    let x = g.add_input("x", f32s(&[2, 3, 8]));
    let w = g.add_input("w", f32s(&[8, 5]));
    let b = g.add_input("b", f32s(addend));
    let p = op(&mut g, OpKind::MatMul, vec![x, w], "p");
    let y = if bias_first {
        bin(&mut g, BinaryOp::Add, b, p, "y")
    } else {
        bin(&mut g, BinaryOp::Add, p, b, "y")
    };
    g.add_output(y);
    g
}

#[test]
fn a_matmul_and_its_bias_become_one_op_either_way_round() {
    for bias_first in [false, true] {
        let (out, fired) = simplified(&biased(&[5], bias_first));
        assert_eq!(count(&out, "MatMulBias"), 1);
        assert_eq!(out.num_ops(), 1);
        assert_eq!(fired.get("matmul-bias"), Some(&1));
    }
    // A full-size addend is a residual, not a bias.
    let (out, _) = simplified(&biased(&[2, 3, 5], false));
    assert_eq!(count(&out, "MatMulBias"), 0);
}

/// `act(MatMul(x, w) + b)`, `b` a bias vector.
fn activated(act: UnaryOp) -> Graph {
    let mut g = Graph::new("activated");
    let x = g.add_input("x", f32s(&[2, 3, 8]));
    let w = g.add_input("w", f32s(&[8, 5]));
    let b = g.add_input("b", f32s(&[5]));
    let p = op(&mut g, OpKind::MatMul, vec![x, w], "p");
    let y = bin(&mut g, BinaryOp::Add, p, b, "y");
    let z = op(&mut g, OpKind::Unary(act), vec![y], "z");
    g.add_output(z);
    g
}

#[test]
fn an_activation_after_a_biased_matmul_joins_it() {
    for (act, rule) in [
        (UnaryOp::Relu, "matmul-bias-relu"),
        (UnaryOp::Gelu { tanh: false }, "matmul-bias-gelu"),
        (UnaryOp::Gelu { tanh: true }, "matmul-bias-gelu-tanh"),
    ] {
        let (out, fired) = simplified(&activated(act));
        assert_eq!(out.num_ops(), 1, "{rule}");
        assert_eq!(fired.get(rule), Some(&1), "{rule}");
        let o = out.op_ids().next().unwrap();
        assert_eq!(out.op(o).kind, OpKind::MatMulBias { act: Some(act) });
    }
    // An activation the fused op does not offer stays apart.
    let (out, _) = simplified(&activated(UnaryOp::Tanh));
    assert_eq!(out.num_ops(), 2);
}

/// `Softmax(a + b)` over the last axis of `a`'s and `b`'s broadcast.
fn masked(a: &[u64], b: &[u64]) -> Graph {
    let mut g = Graph::new("masked");
    let x = g.add_input("scores", f32s(a));
    let m = g.add_input("mask", f32s(b));
    let s = bin(&mut g, BinaryOp::Add, x, m, "s");
    let rank = g.value(s).ty.shape.rank();
    let p = op(
        &mut g,
        OpKind::Softmax {
            axis: rank - 1,
            log: false,
        },
        vec![s],
        "p",
    );
    g.add_output(p);
    g
}

#[test]
fn a_softmax_takes_its_additive_mask_either_way_round() {
    for (a, b) in [
        (&[1u64, 2, 4, 4][..], &[1u64, 1, 4, 4][..]),
        (&[1, 1, 4, 4], &[1, 2, 4, 4]),
    ] {
        let (out, fired) = simplified(&masked(a, b));
        assert_eq!(out.num_ops(), 1);
        assert_eq!(fired.get("softmax-mask"), Some(&1));
        let o = out.op_ids().next().unwrap();
        assert_eq!(out.op(o).inputs.len(), 2);
    }
    // Neither operand has the sum's shape: there is no scores tensor to mask.
    let (out, fired) = simplified(&masked(&[2, 1], &[1, 4]));
    assert_eq!(out.num_ops(), 2);
    assert!(!fired.contains_key("softmax-mask"));
}

#[test]
fn a_deep_residual_stream_fuses_every_layer() {
    // 80 layers of x = x + MatMul(rmsnorm(x), w): the stream feeds each layer twice, so a cost
    // that priced it again under every product would double a layer and saturate; every norm
    // must still fuse.
    let mut g = Graph::new("deep");
    let mut x = g.add_input("x", f32s(&[1, 4, 8]));
    let two = scalar(&mut g, "two", 2.0);
    let eps = scalar(&mut g, "eps", 1.0 / 131_072.0);
    for l in 0..80 {
        let gain = g.add_input(format!("g{l}"), f32s(&[8]));
        let w = g.add_input(format!("w{l}"), f32s(&[8, 8]));
        let p = bin(&mut g, BinaryOp::Pow, x, two, &format!("p{l}"));
        let m = op(
            &mut g,
            OpKind::Reduce {
                op: ReduceOp::Mean,
                axes: vec![2],
                keep_dims: true,
            },
            vec![p],
            &format!("m{l}"),
        );
        let a = bin(&mut g, BinaryOp::Add, m, eps, &format!("a{l}"));
        let s = un(&mut g, UnaryOp::Sqrt, a, &format!("s{l}"));
        let r = un(&mut g, UnaryOp::Reciprocal, s, &format!("r{l}"));
        let n = bin(&mut g, BinaryOp::Mul, x, r, &format!("n{l}"));
        let y = bin(&mut g, BinaryOp::Mul, gain, n, &format!("y{l}"));
        let h = op(&mut g, OpKind::MatMul, vec![y, w], &format!("h{l}"));
        x = bin(&mut g, BinaryOp::Add, x, h, &format!("x{l}"));
    }
    g.add_output(x);
    let (out, fired) = saturate(&g, &Target::lpu_v1());
    assert_eq!(fired.get("rmsnorm"), Some(&80));
    assert_eq!(count(&out, "RmsNorm"), 80);
}
