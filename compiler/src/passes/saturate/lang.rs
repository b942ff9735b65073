//! The e-graph's language: the IR ops the rules rewrite, attribute leaves (dims, dtypes,
//! numbers), and leaves for every other value; and the analysis giving each e-class its type
//! (by the IR's own shape inference) and, for constants, its known value.

use egg::{define_language, EGraph, Id};
use lpuc_ir::{BinaryOp, DType, OpKind, ReduceOp, TensorType, UnaryOp};
use std::fmt;
use std::str::FromStr;

/// A list of dims or axes, as an attribute leaf (`[1,0,2]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dims(pub Vec<u64>);

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        write!(f, "[{}]", parts.join(","))
    }
}

impl FromStr for Dims {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| format!("not a dim list: {s}"))?;
        if inner.is_empty() {
            return Ok(Dims(vec![]));
        }
        inner
            .split(',')
            .map(|p| p.parse::<u64>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map(Dims)
    }
}

/// A dtype as an attribute leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Elem(pub DType);

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl FromStr for Elem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            DType::F32,
            DType::F16,
            DType::Bf16,
            DType::I8,
            DType::U8,
            DType::I32,
            DType::I64,
            DType::Bool,
        ]
        .into_iter()
        .find(|d| d.name() == s)
        .map(Elem)
        .ok_or_else(|| format!("not a dtype: {s}"))
    }
}

/// A number as an attribute leaf (an epsilon), compared, ordered and hashed by its bits.
#[derive(Clone, Copy, Debug)]
pub struct Num(pub f64);

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Num {}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.to_bits().cmp(&other.0.to_bits())
    }
}

impl std::hash::Hash for Num {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:?}", self.0)
    }
}

impl FromStr for Num {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('#')
            .and_then(|n| n.parse().ok())
            .map(Num)
            .ok_or_else(|| format!("not a number: {s}"))
    }
}

/// A value the rewritten ops read but the e-graph does not model: an index into the leaf table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Leaf(pub u32);

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl FromStr for Leaf {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('v')
            .and_then(|n| n.parse().ok())
            .map(Leaf)
            .ok_or_else(|| format!("not a leaf: {s}"))
    }
}

define_language! {
    /// Ops and their attribute children first: `(transpose PERM x)`, `(reshape SHAPE x)`,
    /// `(cast DTYPE x)`, `(mean AXES x)` (dims kept), `(rmsnorm AXIS EPS x scale)`,
    /// `(layernorm AXIS EPS x scale bias)`.
    pub enum Expr {
        "transpose" = Transpose([Id; 2]),
        "reshape" = Reshape([Id; 2]),
        "cast" = Cast([Id; 2]),
        "add" = Add([Id; 2]),
        "sub" = Sub([Id; 2]),
        "mul" = Mul([Id; 2]),
        "div" = Div([Id; 2]),
        "pow" = Pow([Id; 2]),
        "sqrt" = Sqrt(Id),
        "recip" = Recip(Id),
        "erf" = Erf(Id),
        "tanh" = Tanh(Id),
        "gelu" = Gelu(Id),
        "gelu-tanh" = GeluTanh(Id),
        "relu" = Relu(Id),
        "softmax" = Softmax([Id; 2]),
        "softmax-masked" = SoftmaxMasked([Id; 3]),
        "mean" = Mean([Id; 2]),
        "matmul" = MatMul([Id; 2]),
        "matmul-bias" = MatMulBias([Id; 3]),
        "matmul-bias-gelu" = MatMulBiasGelu([Id; 3]),
        "matmul-bias-gelu-tanh" = MatMulBiasGeluTanh([Id; 3]),
        "matmul-bias-relu" = MatMulBiasRelu([Id; 3]),
        "rmsnorm" = RmsNorm([Id; 4]),
        "layernorm" = LayerNorm([Id; 5]),
        Leaf(Leaf),
        Dims(Dims),
        Elem(Elem),
        Num(Num),
    }
}

/// An e-class's type (and, for a constant, its value), or the attribute it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Tensor(TensorType, Option<f64>),
    Dims(Vec<u64>),
    Elem(DType),
    Num(f64),
}

/// The analysis: the types (and known values) of the leaves, by leaf index.
#[derive(Default)]
pub struct Types {
    pub leaves: Vec<(TensorType, Option<f64>)>,
}

/// The IR op an e-node stands for and its tensor children, given each child's data; `None` for
/// attributes and leaves.
pub fn kind_of(node: &Expr, data: &impl Fn(Id) -> Data) -> Option<(OpKind, Vec<Id>)> {
    let dims = |id: Id| match data(id) {
        Data::Dims(d) => d,
        _ => unreachable!("an attribute child is dims"),
    };
    let binary = |op, [a, b]: [Id; 2]| Some((OpKind::Binary(op), vec![a, b]));
    let unary = |op, x: Id| Some((OpKind::Unary(op), vec![x]));
    let fused = |act, c: &[Id; 3]| Some((OpKind::MatMulBias { act }, c.to_vec()));
    let softmax = |axis: u64| OpKind::Softmax {
        axis: axis as usize,
        log: false,
    };
    match node {
        Expr::Transpose([p, x]) => Some((
            OpKind::Transpose {
                perm: dims(*p).iter().map(|&a| a as usize).collect(),
            },
            vec![*x],
        )),
        Expr::Reshape([s, x]) => Some((OpKind::Reshape { shape: dims(*s) }, vec![*x])),
        Expr::Cast([e, x]) => match data(*e) {
            Data::Elem(to) => Some((OpKind::Cast { to }, vec![*x])),
            _ => unreachable!("a cast's attribute is a dtype"),
        },
        Expr::Add(c) => binary(BinaryOp::Add, *c),
        Expr::Sub(c) => binary(BinaryOp::Sub, *c),
        Expr::Mul(c) => binary(BinaryOp::Mul, *c),
        Expr::Div(c) => binary(BinaryOp::Div, *c),
        Expr::Pow(c) => binary(BinaryOp::Pow, *c),
        Expr::Sqrt(x) => unary(UnaryOp::Sqrt, *x),
        Expr::Recip(x) => unary(UnaryOp::Reciprocal, *x),
        Expr::Erf(x) => unary(UnaryOp::Erf, *x),
        Expr::Tanh(x) => unary(UnaryOp::Tanh, *x),
        Expr::Gelu(x) => unary(UnaryOp::Gelu { tanh: false }, *x),
        Expr::GeluTanh(x) => unary(UnaryOp::Gelu { tanh: true }, *x),
        Expr::Relu(x) => unary(UnaryOp::Relu, *x),
        Expr::Softmax([a, x]) => Some((softmax(dims(*a)[0]), vec![*x])),
        Expr::SoftmaxMasked([a, x, m]) => Some((softmax(dims(*a)[0]), vec![*x, *m])),
        Expr::MatMul([a, b]) => Some((OpKind::MatMul, vec![*a, *b])),
        Expr::MatMulBias(c) => fused(None, c),
        Expr::MatMulBiasGelu(c) => fused(Some(UnaryOp::Gelu { tanh: false }), c),
        Expr::MatMulBiasGeluTanh(c) => fused(Some(UnaryOp::Gelu { tanh: true }), c),
        Expr::MatMulBiasRelu(c) => fused(Some(UnaryOp::Relu), c),
        Expr::Mean([a, x]) => Some((
            OpKind::Reduce {
                op: ReduceOp::Mean,
                axes: dims(*a).iter().map(|&a| a as usize).collect(),
                keep_dims: true,
            },
            vec![*x],
        )),
        Expr::RmsNorm([a, e, x, scale]) => {
            let axis = dims(*a)[0] as usize;
            let Data::Num(eps) = data(*e) else {
                unreachable!("an rmsnorm's epsilon is a number")
            };
            Some((
                OpKind::RmsNorm {
                    axis,
                    epsilon: eps as f32,
                },
                vec![*x, *scale],
            ))
        }
        Expr::LayerNorm([a, e, x, scale, bias]) => {
            let axis = dims(*a)[0] as usize;
            let Data::Num(eps) = data(*e) else {
                unreachable!("a layernorm's epsilon is a number")
            };
            Some((
                OpKind::LayerNorm {
                    axis,
                    epsilon: eps as f32,
                    stats: false,
                },
                vec![*x, *scale, *bias],
            ))
        }
        Expr::Leaf(_) | Expr::Dims(_) | Expr::Elem(_) | Expr::Num(_) => None,
    }
}

/// The e-node back from an IR op reading `children` (e-classes), attributes added to `egraph`;
/// `None` for an op the language does not model.
pub fn expr_of(egraph: &mut EGraph<Expr, Types>, kind: &OpKind, children: &[Id]) -> Option<Expr> {
    let pair = |c: &[Id]| [c[0], c[1]];
    Some(match (kind, children) {
        (OpKind::Transpose { perm }, [x]) => {
            let p = egraph.add(Expr::Dims(Dims(perm.iter().map(|&a| a as u64).collect())));
            Expr::Transpose([p, *x])
        }
        (OpKind::Reshape { shape }, [x]) => {
            let s = egraph.add(Expr::Dims(Dims(shape.clone())));
            Expr::Reshape([s, *x])
        }
        (OpKind::Cast { to }, [x]) => {
            let e = egraph.add(Expr::Elem(Elem(*to)));
            Expr::Cast([e, *x])
        }
        (OpKind::Binary(BinaryOp::Add), [_, _]) => Expr::Add(pair(children)),
        (OpKind::Binary(BinaryOp::Sub), [_, _]) => Expr::Sub(pair(children)),
        (OpKind::Binary(BinaryOp::Mul), [_, _]) => Expr::Mul(pair(children)),
        (OpKind::Binary(BinaryOp::Div), [_, _]) => Expr::Div(pair(children)),
        (OpKind::Binary(BinaryOp::Pow), [_, _]) => Expr::Pow(pair(children)),
        (OpKind::MatMul, [_, _]) => Expr::MatMul(pair(children)),
        (OpKind::MatMulBias { act }, [a, b, bias]) => {
            let c = [*a, *b, *bias];
            match act {
                None => Expr::MatMulBias(c),
                Some(UnaryOp::Gelu { tanh: false }) => Expr::MatMulBiasGelu(c),
                Some(UnaryOp::Gelu { tanh: true }) => Expr::MatMulBiasGeluTanh(c),
                Some(UnaryOp::Relu) => Expr::MatMulBiasRelu(c),
                Some(_) => return None,
            }
        }
        (OpKind::Unary(UnaryOp::Sqrt), [x]) => Expr::Sqrt(*x),
        (OpKind::Unary(UnaryOp::Reciprocal), [x]) => Expr::Recip(*x),
        (OpKind::Unary(UnaryOp::Erf), [x]) => Expr::Erf(*x),
        (OpKind::Unary(UnaryOp::Tanh), [x]) => Expr::Tanh(*x),
        (OpKind::Unary(UnaryOp::Gelu { tanh: false }), [x]) => Expr::Gelu(*x),
        (OpKind::Unary(UnaryOp::Gelu { tanh: true }), [x]) => Expr::GeluTanh(*x),
        (OpKind::Unary(UnaryOp::Relu), [x]) => Expr::Relu(*x),
        (OpKind::Softmax { axis, log: false }, [x]) => {
            let a = egraph.add(Expr::Dims(Dims(vec![*axis as u64])));
            Expr::Softmax([a, *x])
        }
        (OpKind::Softmax { axis, log: false }, [x, m]) => {
            let a = egraph.add(Expr::Dims(Dims(vec![*axis as u64])));
            Expr::SoftmaxMasked([a, *x, *m])
        }
        (
            OpKind::Reduce {
                op: ReduceOp::Mean,
                axes,
                keep_dims: true,
            },
            [x],
        ) => {
            let a = egraph.add(Expr::Dims(Dims(axes.iter().map(|&a| a as u64).collect())));
            Expr::Mean([a, *x])
        }
        (OpKind::RmsNorm { axis, epsilon }, [x, scale]) => {
            let a = egraph.add(Expr::Dims(Dims(vec![*axis as u64])));
            let e = egraph.add(Expr::Num(Num(f64::from(*epsilon))));
            Expr::RmsNorm([a, e, *x, *scale])
        }
        (
            OpKind::LayerNorm {
                axis,
                epsilon,
                stats: false,
            },
            [x, scale, bias],
        ) => {
            let a = egraph.add(Expr::Dims(Dims(vec![*axis as u64])));
            let e = egraph.add(Expr::Num(Num(f64::from(*epsilon))));
            Expr::LayerNorm([a, e, *x, *scale, *bias])
        }
        _ => return None,
    })
}

/// The data of an e-node, from its children's.
pub fn data_of(node: &Expr, data: impl Fn(Id) -> Data, leaves: &[(TensorType, Option<f64>)]) -> Data {
    match node {
        Expr::Leaf(l) => {
            let (t, v) = &leaves[l.0 as usize];
            Data::Tensor(t.clone(), *v)
        }
        Expr::Dims(d) => Data::Dims(d.0.clone()),
        Expr::Elem(e) => Data::Elem(e.0),
        Expr::Num(n) => Data::Num(n.0),
        _ => {
            let (kind, children) = kind_of(node, &data).expect("an op");
            let types: Vec<TensorType> = children
                .iter()
                .map(|&c| match data(c) {
                    Data::Tensor(t, _) => t,
                    _ => unreachable!("an op's operands are tensors"),
                })
                .collect();
            let refs: Vec<&TensorType> = types.iter().collect();
            let out = lpuc_ir::infer::infer(&kind, &refs)
                .expect("every rewrite keeps the operands' types valid")
                .remove(0);
            Data::Tensor(out, None)
        }
    }
}

impl egg::Analysis<Expr> for Types {
    type Data = Data;

    fn make(egraph: &mut EGraph<Expr, Self>, enode: &Expr) -> Data {
        data_of(enode, |id| egraph[id].data.clone(), &egraph.analysis.leaves)
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> egg::DidMerge {
        // Equal types by construction: every rule keeps the type. A known value survives.
        match (a, b) {
            (Data::Tensor(ta, va), Data::Tensor(tb, vb)) => {
                debug_assert_eq!(*ta, tb);
                if va.is_none() && vb.is_some() {
                    *va = vb;
                    return egg::DidMerge(true, false);
                }
                egg::DidMerge(false, va.is_some() && vb.is_none())
            }
            (a, b) => {
                debug_assert_eq!(*a, b);
                egg::DidMerge(false, false)
            }
        }
    }
}

/// The tensor type of e-class `id`, if it is a tensor.
pub fn tensor(egraph: &EGraph<Expr, Types>, id: Id) -> Option<&TensorType> {
    match &egraph[id].data {
        Data::Tensor(t, _) => Some(t),
        _ => None,
    }
}

/// The known value of e-class `id`, if it is a constant.
pub fn value(egraph: &EGraph<Expr, Types>, id: Id) -> Option<f64> {
    match &egraph[id].data {
        Data::Tensor(_, v) => *v,
        _ => None,
    }
}

/// The dims attribute of e-class `id`.
pub fn attr_dims(egraph: &EGraph<Expr, Types>, id: Id) -> Option<&Vec<u64>> {
    match &egraph[id].data {
        Data::Dims(d) => Some(d),
        _ => None,
    }
}
