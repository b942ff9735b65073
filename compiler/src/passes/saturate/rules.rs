//! The named rules. Each keeps the value it rewrites element for element (tested against the
//! reference interpreter in `tests.rs`):
//!
//! - `transpose-pair`: two transposes compose into one, or cancel;
//! - `transpose-identity`, `reshape-noop`, `cast-noop`: an op that leaves its operand's shape,
//!   order and dtype unchanged is its operand;
//! - `reshape-chain`: a reshape of a reshape is one reshape;
//! - `add-comm`, `mul-comm`: operand order, so the patterns below match either way round;
//! - `rmsnorm`: `scale * (x * 1/sqrt(mean(x^2, last axis) + eps))`, as Llama exports write it,
//!   is one `RmsNorm` (two passes over the data instead of five ops);
//! - `gelu-erf`: `x * (erf(x / sqrt 2) + 1) * 0.5`, as BERT exports write it, is one `Gelu`;
//! - `gelu-tanh`: `(0.5 * x) * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, as GPT-2 exports
//!   write it, is one tanh-form `Gelu`;
//! - `matmul-bias`: `MatMul(a, b) + bias`, the bias a vector along the result's last axis, is one
//!   `MatMulBias` (the bias added as the product streams out, not in a pass of its own);
//! - `matmul-bias-gelu`, `matmul-bias-gelu-tanh`, `matmul-bias-relu`: the activation of a
//!   `MatMulBias` is part of it (applied as the results stream out, as the bias is);
//! - `softmax-mask`: `Softmax(x + mask)`, the mask broadcasting to `x`, is one masked `Softmax`
//!   (the mask added in the softmax's first pass over the scores, not in a pass of its own);
//! - `layernorm`: `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta` over the last
//!   axis, as GPT-2 exports write it, is one `LayerNorm`.

use super::lang::{attr_dims, tensor, value, Dims, Expr, Num, Types};
use egg::{rewrite, Applier, EGraph, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

fn var(s: &str) -> Var {
    s.parse().expect("a pattern variable")
}

fn pat(s: &str) -> Pattern<Expr> {
    s.parse().expect("a pattern")
}

type Graph = EGraph<Expr, Types>;

/// A rule's right-hand side as a function: given the matched e-class and the substitution, the
/// e-class it equals when the rule's conditions hold (added to the e-graph as needed).
struct When(fn(&mut Graph, Id, &Subst) -> Option<Id>);

impl Applier<Expr, Types> for When {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        match (self.0)(egraph, eclass, subst) {
            Some(new) if egraph.union_trusted(eclass, new, rule) => vec![eclass],
            _ => vec![],
        }
    }
}

fn near(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-6 * b.abs().max(1.0))
}

fn identity(p: &[u64]) -> bool {
    p.iter().enumerate().all(|(i, &a)| a == i as u64)
}

/// `(transpose ?p2 (transpose ?p1 ?x))`: one transpose by the composed permutation, or `?x`
/// itself when the two cancel.
fn compose_transposes(egraph: &mut Graph, _eclass: Id, subst: &Subst) -> Option<Id> {
    let p1 = attr_dims(egraph, subst[var("?p1")])?;
    let p2 = attr_dims(egraph, subst[var("?p2")])?;
    // out[i] = mid[p2[i]] = x[p1[p2[i]]]
    let composed: Vec<u64> = p2.iter().map(|&i| p1[i as usize]).collect();
    let x = subst[var("?x")];
    if identity(&composed) {
        return Some(x);
    }
    let perm = egraph.add(Expr::Dims(Dims(composed)));
    Some(egraph.add(Expr::Transpose([perm, x])))
}

/// `?x` itself when the matched op leaves its type unchanged.
fn unchanged(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let x = subst[var("?x")];
    (tensor(egraph, eclass).is_some() && tensor(egraph, eclass) == tensor(egraph, x)).then_some(x)
}

/// `?x` itself when the matched transpose's permutation is the identity (its type unchanged).
fn unchanged_transpose(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    attr_dims(egraph, subst[var("?a")])
        .is_some_and(|p| identity(p))
        .then(|| unchanged(egraph, eclass, subst))
        .flatten()
}

/// `scale * (x * recip(sqrt(mean(x^2) + eps)))` over the last axis, with `scale` a vector along
/// it: one RmsNorm.
fn fuse_rms_norm(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let (x, scale) = (subst[var("?x")], subst[var("?g")]);
    let xt = tensor(egraph, x)?.clone();
    let st = tensor(egraph, scale)?.clone();
    let rank = xt.shape.rank();
    let last = xt.shape.dims().last().copied()?;
    let eps = value(egraph, subst[var("?eps")])?;
    let ok = attr_dims(egraph, subst[var("?ax")]).is_some_and(|a| a[..] == [rank as u64 - 1])
        && near(value(egraph, subst[var("?two")]), 2.0)
        && eps > 0.0
        && xt.dtype.is_float()
        && st.dtype == xt.dtype
        && st.shape.dims() == [last]
        && tensor(egraph, eclass) == Some(&xt);
    if !ok {
        return None;
    }
    let a = egraph.add(Expr::Dims(Dims(vec![rank as u64 - 1])));
    let e = egraph.add(Expr::Num(Num(eps)));
    Some(egraph.add(Expr::RmsNorm([a, e, x, scale])))
}

/// `x * (erf(x / c) + one) * half` with `c` = sqrt 2, `one` = 1, `half` = 0.5: one Gelu.
fn fuse_gelu(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let x = subst[var("?x")];
    let ok = near(value(egraph, subst[var("?c")]), std::f64::consts::SQRT_2)
        && near(value(egraph, subst[var("?one")]), 1.0)
        && near(value(egraph, subst[var("?half")]), 0.5)
        && tensor(egraph, x).is_some_and(|t| t.dtype.is_float())
        && tensor(egraph, eclass) == tensor(egraph, x);
    ok.then(|| egraph.add(Expr::Gelu(x)))
}

/// `(0.5 * x) * (1 + tanh(k * (x + c * x^3)))` with `k` = sqrt(2/pi), `c` = 0.044715: one
/// tanh-form Gelu.
fn fuse_gelu_tanh(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let x = subst[var("?x")];
    let ok = near(value(egraph, subst[var("?half")]), 0.5)
        && near(value(egraph, subst[var("?one")]), 1.0)
        && near(
            value(egraph, subst[var("?k")]),
            (2.0 / std::f64::consts::PI).sqrt(),
        )
        && near(value(egraph, subst[var("?c")]), 0.044715)
        && near(value(egraph, subst[var("?three")]), 3.0)
        && tensor(egraph, x).is_some_and(|t| t.dtype.is_float())
        && tensor(egraph, eclass) == tensor(egraph, x);
    ok.then(|| egraph.add(Expr::GeluTanh(x)))
}

/// `(matmul ?a ?b) + ?bias` with the bias a vector along the product's last axis (so the sum has
/// the product's type): one MatMulBias.
fn fuse_matmul_bias(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let (a, b, bias) = (subst[var("?a")], subst[var("?b")], subst[var("?bias")]);
    let product = egraph.add(Expr::MatMul([a, b]));
    let pt = tensor(egraph, product)?.clone();
    let bt = tensor(egraph, bias)?.clone();
    let ok = pt.shape.rank() >= 1
        && bt.dtype == pt.dtype
        && bt.shape.dims() == [pt.shape.dims()[pt.shape.rank() - 1]]
        && tensor(egraph, eclass) == Some(&pt);
    ok.then(|| egraph.add(Expr::MatMulBias([a, b, bias])))
}

/// `softmax(x + mask)` with `x` the sum's shape and the mask broadcasting to it: one masked
/// Softmax.
fn fuse_masked_softmax(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let (a, x, m) = (subst[var("?ax")], subst[var("?x")], subst[var("?m")]);
    let xt = tensor(egraph, x)?.clone();
    let mt = tensor(egraph, m)?.clone();
    let fits = lpuc_ir::infer::broadcast(&xt.shape, &mt.shape).is_ok_and(|s| s == xt.shape);
    let ok = fits && mt.dtype == xt.dtype && xt.dtype.is_float() && tensor(egraph, eclass) == Some(&xt);
    ok.then(|| egraph.add(Expr::SoftmaxMasked([a, x, m])))
}

/// `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta` over the last axis, `gamma`
/// and `beta` vectors along it: one LayerNorm.
fn fuse_layer_norm(egraph: &mut Graph, eclass: Id, subst: &Subst) -> Option<Id> {
    let (x, gamma, beta) = (subst[var("?x")], subst[var("?gamma")], subst[var("?beta")]);
    let xt = tensor(egraph, x)?.clone();
    let rank = xt.shape.rank();
    let last = xt.shape.dims().last().copied()?;
    let last_axis = |v: &str| attr_dims(egraph, subst[var(v)]).is_some_and(|a| a[..] == [rank as u64 - 1]);
    let vector = |id: Id| tensor(egraph, id).is_some_and(|t| t.dtype == xt.dtype && t.shape.dims() == [last]);
    let eps = value(egraph, subst[var("?eps")])?;
    let ok = last_axis("?ax1")
        && last_axis("?ax2")
        && near(value(egraph, subst[var("?two")]), 2.0)
        && eps > 0.0
        && xt.dtype.is_float()
        && vector(gamma)
        && vector(beta)
        && tensor(egraph, eclass) == Some(&xt);
    if !ok {
        return None;
    }
    let a = egraph.add(Expr::Dims(Dims(vec![rank as u64 - 1])));
    let e = egraph.add(Expr::Num(Num(eps)));
    Some(egraph.add(Expr::LayerNorm([a, e, x, gamma, beta])))
}

/// Every rule, by name.
pub fn rules() -> Vec<Rewrite<Expr, Types>> {
    let rule = |name: &str, searcher: &str, f: fn(&mut Graph, Id, &Subst) -> Option<Id>| {
        Rewrite::new(name, pat(searcher), When(f)).expect("a valid rule")
    };
    vec![
        rule("transpose-pair", "(transpose ?p2 (transpose ?p1 ?x))", compose_transposes),
        rule("transpose-identity", "(transpose ?a ?x)", unchanged_transpose),
        rewrite!("reshape-chain"; "(reshape ?s2 (reshape ?s1 ?x))" => "(reshape ?s2 ?x)"),
        rule("reshape-noop", "(reshape ?a ?x)", unchanged),
        rule("cast-noop", "(cast ?a ?x)", unchanged),
        rewrite!("add-comm"; "(add ?a ?b)" => "(add ?b ?a)"),
        rewrite!("mul-comm"; "(mul ?a ?b)" => "(mul ?b ?a)"),
        rule(
            "rmsnorm",
            "(mul ?g (mul ?x (recip (sqrt (add (mean ?ax (pow ?x ?two)) ?eps)))))",
            fuse_rms_norm,
        ),
        rule("gelu-erf", "(mul (mul ?x (add (erf (div ?x ?c)) ?one)) ?half)", fuse_gelu),
        rule("softmax-mask", "(softmax ?ax (add ?x ?m))", fuse_masked_softmax),
        rewrite!("matmul-bias-gelu"; "(gelu (matmul-bias ?a ?b ?c))" => "(matmul-bias-gelu ?a ?b ?c)"),
        rewrite!("matmul-bias-gelu-tanh"; "(gelu-tanh (matmul-bias ?a ?b ?c))" => "(matmul-bias-gelu-tanh ?a ?b ?c)"),
        rewrite!("matmul-bias-relu"; "(relu (matmul-bias ?a ?b ?c))" => "(matmul-bias-relu ?a ?b ?c)"),
        rule(
            "gelu-tanh",
            "(mul (mul ?half ?x) (add ?one (tanh (mul ?k (add ?x (mul ?c (pow ?x ?three)))))))",
            fuse_gelu_tanh,
        ),
        rule("matmul-bias", "(add (matmul ?a ?b) ?bias)", fuse_matmul_bias),
        rule(
            "layernorm",
            "(add (mul (div (sub ?x (mean ?ax1 ?x)) (sqrt (add (mean ?ax2 (pow (sub ?x (mean ?ax1 ?x)) ?two)) ?eps))) ?gamma) ?beta)",
            fuse_layer_norm,
        ),
    ]
}
