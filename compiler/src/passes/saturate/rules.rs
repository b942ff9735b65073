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

fn union(egraph: &mut EGraph<Expr, Types>, eclass: Id, new: Id, rule: Symbol) -> Vec<Id> {
    if egraph.union_trusted(eclass, new, rule) {
        vec![eclass]
    } else {
        vec![]
    }
}

/// `(transpose ?p2 (transpose ?p1 ?x))` becomes one transpose by the composed permutation, or
/// `?x` itself when the two cancel.
struct ComposeTransposes;

impl Applier<Expr, Types> for ComposeTransposes {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (Some(p1), Some(p2)) = (
            attr_dims(egraph, subst[var("?p1")]),
            attr_dims(egraph, subst[var("?p2")]),
        ) else {
            return vec![];
        };
        // out[i] = mid[p2[i]] = x[p1[p2[i]]]
        let composed: Vec<u64> = p2.iter().map(|&i| p1[i as usize]).collect();
        let x = subst[var("?x")];
        let new = if composed.iter().enumerate().all(|(i, &a)| a == i as u64) {
            x
        } else {
            let perm = egraph.add(Expr::Dims(Dims(composed)));
            egraph.add(Expr::Transpose([perm, x]))
        };
        union(egraph, eclass, new, rule)
    }
}

/// `?x` itself, when the matched op leaves its type unchanged (and, for a transpose, its
/// permutation is the identity).
struct Unchanged {
    transpose: bool,
}

impl Applier<Expr, Types> for Unchanged {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let x = subst[var("?x")];
        let same = tensor(egraph, eclass).is_some() && tensor(egraph, eclass) == tensor(egraph, x);
        let identity = !self.transpose
            || attr_dims(egraph, subst[var("?a")])
                .is_some_and(|p| p.iter().enumerate().all(|(i, &a)| a == i as u64));
        if same && identity {
            union(egraph, eclass, x, rule)
        } else {
            vec![]
        }
    }
}

fn near(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-6 * b.abs().max(1.0))
}

/// `scale * (x * recip(sqrt(mean(x^2) + eps)))` over the last axis, with `scale` a vector along
/// it: one RmsNorm.
struct FuseRmsNorm;

impl Applier<Expr, Types> for FuseRmsNorm {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (x, scale) = (subst[var("?x")], subst[var("?g")]);
        let (Some(xt), Some(st)) = (tensor(egraph, x).cloned(), tensor(egraph, scale).cloned()) else {
            return vec![];
        };
        let rank = xt.shape.rank();
        let last = xt.shape.dims().last().copied();
        let axes_ok = attr_dims(egraph, subst[var("?ax")]).is_some_and(|a| a[..] == [rank as u64 - 1]);
        let Some(eps) = value(egraph, subst[var("?eps")]) else {
            return vec![];
        };
        let ok = rank >= 1
            && axes_ok
            && near(value(egraph, subst[var("?two")]), 2.0)
            && eps > 0.0
            && xt.dtype.is_float()
            && st.dtype == xt.dtype
            && st.shape.dims() == [last.unwrap_or(0)]
            && tensor(egraph, eclass) == Some(&xt);
        if !ok {
            return vec![];
        }
        let a = egraph.add(Expr::Dims(Dims(vec![rank as u64 - 1])));
        let e = egraph.add(Expr::Num(Num(eps)));
        let new = egraph.add(Expr::RmsNorm([a, e, x, scale]));
        union(egraph, eclass, new, rule)
    }
}

/// `x * (erf(x / c) + one) * half` with `c` = sqrt 2, `one` = 1, `half` = 0.5: one Gelu.
struct FuseGelu;

impl Applier<Expr, Types> for FuseGelu {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let x = subst[var("?x")];
        let ok = near(value(egraph, subst[var("?c")]), std::f64::consts::SQRT_2)
            && near(value(egraph, subst[var("?one")]), 1.0)
            && near(value(egraph, subst[var("?half")]), 0.5)
            && tensor(egraph, x).is_some_and(|t| t.dtype.is_float())
            && tensor(egraph, eclass) == tensor(egraph, x);
        if !ok {
            return vec![];
        }
        let new = egraph.add(Expr::Gelu(x));
        union(egraph, eclass, new, rule)
    }
}

/// `(0.5 * x) * (1 + tanh(k * (x + c * x^3)))` with `k` = sqrt(2/pi), `c` = 0.044715: one
/// tanh-form Gelu.
struct FuseGeluTanh;

impl Applier<Expr, Types> for FuseGeluTanh {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let x = subst[var("?x")];
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let ok = near(value(egraph, subst[var("?half")]), 0.5)
            && near(value(egraph, subst[var("?one")]), 1.0)
            && near(value(egraph, subst[var("?k")]), k)
            && near(value(egraph, subst[var("?c")]), 0.044715)
            && near(value(egraph, subst[var("?three")]), 3.0)
            && tensor(egraph, x).is_some_and(|t| t.dtype.is_float())
            && tensor(egraph, eclass) == tensor(egraph, x);
        if !ok {
            return vec![];
        }
        let new = egraph.add(Expr::GeluTanh(x));
        union(egraph, eclass, new, rule)
    }
}

/// `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta` over the last axis, `gamma`
/// and `beta` vectors along it: one LayerNorm.
struct FuseLayerNorm;

impl Applier<Expr, Types> for FuseLayerNorm {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (x, gamma, beta) = (subst[var("?x")], subst[var("?gamma")], subst[var("?beta")]);
        let Some(xt) = tensor(egraph, x).cloned() else {
            return vec![];
        };
        let rank = xt.shape.rank();
        let last = xt.shape.dims().last().copied().unwrap_or(0);
        let last_axis = |v: &str| {
            attr_dims(egraph, subst[var(v)]).is_some_and(|a| rank >= 1 && a[..] == [rank as u64 - 1])
        };
        let vector =
            |id: Id| tensor(egraph, id).is_some_and(|t| t.dtype == xt.dtype && t.shape.dims() == [last]);
        let Some(eps) = value(egraph, subst[var("?eps")]) else {
            return vec![];
        };
        let ok = last_axis("?ax1")
            && last_axis("?ax2")
            && near(value(egraph, subst[var("?two")]), 2.0)
            && eps > 0.0
            && xt.dtype.is_float()
            && vector(gamma)
            && vector(beta)
            && tensor(egraph, eclass) == Some(&xt);
        if !ok {
            return vec![];
        }
        let a = egraph.add(Expr::Dims(Dims(vec![rank as u64 - 1])));
        let e = egraph.add(Expr::Num(Num(eps)));
        let new = egraph.add(Expr::LayerNorm([a, e, x, gamma, beta]));
        union(egraph, eclass, new, rule)
    }
}

/// `(matmul ?a ?b) + ?bias` with the bias a vector along the product's last axis (so the sum has
/// the product's type): one MatMulBias.
struct FuseMatMulBias;

impl Applier<Expr, Types> for FuseMatMulBias {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Expr, Types>,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Expr>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let (a, b, bias) = (subst[var("?a")], subst[var("?b")], subst[var("?bias")]);
        let product = egraph.add(Expr::MatMul([a, b]));
        let (Some(pt), Some(bt)) = (tensor(egraph, product).cloned(), tensor(egraph, bias).cloned()) else {
            return vec![];
        };
        let ok = pt.shape.rank() >= 1
            && bt.dtype == pt.dtype
            && bt.shape.dims() == [pt.shape.dims()[pt.shape.rank() - 1]]
            && tensor(egraph, eclass) == Some(&pt);
        if !ok {
            return vec![];
        }
        let new = egraph.add(Expr::MatMulBias([a, b, bias]));
        union(egraph, eclass, new, rule)
    }
}

/// Every rule, by name.
pub fn rules() -> Vec<Rewrite<Expr, Types>> {
    vec![
        Rewrite::new(
            "transpose-pair",
            pat("(transpose ?p2 (transpose ?p1 ?x))"),
            ComposeTransposes,
        )
        .expect("a valid rule"),
        Rewrite::new(
            "transpose-identity",
            pat("(transpose ?a ?x)"),
            Unchanged { transpose: true },
        )
        .expect("a valid rule"),
        rewrite!("reshape-chain"; "(reshape ?s2 (reshape ?s1 ?x))" => "(reshape ?s2 ?x)"),
        Rewrite::new(
            "reshape-noop",
            pat("(reshape ?a ?x)"),
            Unchanged { transpose: false },
        )
        .expect("a valid rule"),
        Rewrite::new("cast-noop", pat("(cast ?a ?x)"), Unchanged { transpose: false }).expect("a valid rule"),
        rewrite!("add-comm"; "(add ?a ?b)" => "(add ?b ?a)"),
        rewrite!("mul-comm"; "(mul ?a ?b)" => "(mul ?b ?a)"),
        Rewrite::new(
            "rmsnorm",
            pat("(mul ?g (mul ?x (recip (sqrt (add (mean ?ax (pow ?x ?two)) ?eps)))))"),
            FuseRmsNorm,
        )
        .expect("a valid rule"),
        Rewrite::new(
            "gelu-erf",
            pat("(mul (mul ?x (add (erf (div ?x ?c)) ?one)) ?half)"),
            FuseGelu,
        )
        .expect("a valid rule"),
        Rewrite::new(
            "gelu-tanh",
            pat("(mul (mul ?half ?x) (add ?one (tanh (mul ?k (add ?x (mul ?c (pow ?x ?three)))))))"),
            FuseGeluTanh,
        )
        .expect("a valid rule"),
        Rewrite::new("matmul-bias", pat("(add (matmul ?a ?b) ?bias)"), FuseMatMulBias).expect("a valid rule"),
        Rewrite::new(
            "layernorm",
            pat("(add (mul (div (sub ?x (mean ?ax1 ?x)) (sqrt (add (mean ?ax2 (pow (sub ?x (mean ?ax1 ?x)) ?two)) ?eps))) ?gamma) ?beta)"),
            FuseLayerNorm,
        )
        .expect("a valid rule"),
    ]
}
