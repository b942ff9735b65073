//! Equality saturation (egg) over layout ops and casts: transpose pairs cancel or compose,
//! reshape chains merge, and reshapes, transposes and casts that change nothing disappear.
//!
//! Exporters leave such chains behind (a `Reshape` to the shape a value already has, `Transpose`
//! followed by its inverse around an op that was folded away, `Cast` to the dtype a value is
//! already in), and every one of them is a copy through the SXM or VXM. Each maximal chain of
//! `Transpose`, `Reshape` and `Cast` ops becomes an expression whose leaves are the values the
//! chain starts from; the named rules rewrite the expressions in one e-graph, and extraction keeps,
//! for every value read outside a chain, the expression the target's cost model prices lowest
//! (the cycles of its ops on their units plus the bytes they write). The original is always in the
//! e-graph, so a value never costs more than before. The runner is bounded by iterations and
//! e-nodes, never by time, so the result does not depend on the machine's speed.

use egg::{
    define_language, rewrite, Applier, CostFunction, EGraph, Id, Language, Pattern, PatternAst, Rewrite,
    Runner, Subst, Symbol, Var,
};
use lpuc_ir::{DType, Graph, OpKind, Provenance, TensorType, ValueId, ValueKind};
use lpuc_target::{Target, Work};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Rules stop after this many iterations or e-nodes (whichever first).
const ITERATIONS: usize = 16;
const NODES: usize = 200_000;

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

/// A value the chains start from: an index into the pass's leaf table.
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
    /// Layout chains: `(transpose PERM x)`, `(reshape SHAPE x)`, `(cast DTYPE x)`.
    pub enum Layout {
        "transpose" = Transpose([Id; 2]),
        "reshape" = Reshape([Id; 2]),
        "cast" = Cast([Id; 2]),
        Leaf(Leaf),
        Dims(Dims),
        Elem(Elem),
    }
}

/// The tensor type of every e-class (attributes have none), from the leaf table.
#[derive(Default)]
pub struct Types {
    leaves: Vec<TensorType>,
}

/// An e-class's type, or the attribute it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Tensor(TensorType),
    Dims(Vec<u64>),
    Elem(DType),
}

fn type_of(node: &Layout, data: impl Fn(Id) -> Data, leaves: &[TensorType]) -> Data {
    let tensor = |id: Id| match data(id) {
        Data::Tensor(t) => Some(t),
        _ => None,
    };
    let dims = |id: Id| match data(id) {
        Data::Dims(d) => Some(d),
        _ => None,
    };
    match node {
        Layout::Leaf(l) => Data::Tensor(leaves[l.0 as usize].clone()),
        Layout::Dims(d) => Data::Dims(d.0.clone()),
        Layout::Elem(e) => Data::Elem(e.0),
        Layout::Transpose([p, x]) => {
            let (t, p) = (tensor(*x).expect("typed chain"), dims(*p).expect("a perm"));
            let d = t.shape.dims();
            Data::Tensor(TensorType::new(
                t.dtype,
                p.iter().map(|&a| d[a as usize]).collect(),
            ))
        }
        Layout::Reshape([s, x]) => {
            let t = tensor(*x).expect("typed chain");
            Data::Tensor(TensorType::new(t.dtype, dims(*s).expect("a shape")))
        }
        Layout::Cast([e, x]) => {
            let t = tensor(*x).expect("typed chain");
            let Data::Elem(to) = data(*e) else {
                unreachable!("a cast's first child is its dtype")
            };
            Data::Tensor(TensorType::new(to, t.shape.dims().to_vec()))
        }
    }
}

impl egg::Analysis<Layout> for Types {
    type Data = Data;

    fn make(egraph: &mut EGraph<Layout, Self>, enode: &Layout) -> Data {
        type_of(enode, |id| egraph[id].data.clone(), &egraph.analysis.leaves)
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> egg::DidMerge {
        // Equal by construction: every rule keeps the type.
        debug_assert_eq!(*a, b);
        egg::DidMerge(false, false)
    }
}

fn tensor(egraph: &EGraph<Layout, Types>, id: Id) -> Option<&TensorType> {
    match &egraph[id].data {
        Data::Tensor(t) => Some(t),
        _ => None,
    }
}

fn attr_dims(egraph: &EGraph<Layout, Types>, id: Id) -> Option<&Vec<u64>> {
    match &egraph[id].data {
        Data::Dims(d) => Some(d),
        _ => None,
    }
}

/// `(transpose ?p2 (transpose ?p1 ?x))` becomes one transpose by the composed permutation, or
/// `?x` itself when the two cancel.
struct ComposeTransposes {
    p1: Var,
    p2: Var,
    x: Var,
}

impl Applier<Layout, Types> for ComposeTransposes {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Layout, Types>,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Layout>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let (Some(p1), Some(p2)) = (
            attr_dims(egraph, subst[self.p1]),
            attr_dims(egraph, subst[self.p2]),
        ) else {
            return vec![];
        };
        // out[i] = mid[p2[i]] = x[p1[p2[i]]]
        let composed: Vec<u64> = p2.iter().map(|&i| p1[i as usize]).collect();
        let x = subst[self.x];
        let new = if composed.iter().enumerate().all(|(i, &a)| a == i as u64) {
            x
        } else {
            let perm = egraph.add(Layout::Dims(Dims(composed)));
            egraph.add(Layout::Transpose([perm, x]))
        };
        if egraph.union_trusted(eclass, new, rule_name) {
            vec![eclass]
        } else {
            vec![]
        }
    }
}

/// `?x` itself, when the matched op leaves its type (shape and dtype) unchanged and, for a
/// transpose, its permutation is the identity.
struct Unchanged {
    x: Var,
    attr: Var,
    transpose: bool,
}

impl Applier<Layout, Types> for Unchanged {
    fn apply_one(
        &self,
        egraph: &mut EGraph<Layout, Types>,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Layout>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let x = subst[self.x];
        let same = tensor(egraph, eclass).is_some() && tensor(egraph, eclass) == tensor(egraph, x);
        let identity = !self.transpose
            || attr_dims(egraph, subst[self.attr])
                .is_some_and(|p| p.iter().enumerate().all(|(i, &a)| a == i as u64));
        if same && identity && egraph.union_trusted(eclass, x, rule_name) {
            vec![eclass]
        } else {
            vec![]
        }
    }
}

/// The named rules.
pub fn rules() -> Vec<Rewrite<Layout, Types>> {
    let var = |s: &str| -> Var { s.parse().expect("a pattern variable") };
    let pat = |s: &str| -> Pattern<Layout> { s.parse().expect("a pattern") };
    vec![
        Rewrite::new(
            "transpose-pair",
            pat("(transpose ?p2 (transpose ?p1 ?x))"),
            ComposeTransposes {
                p1: var("?p1"),
                p2: var("?p2"),
                x: var("?x"),
            },
        )
        .expect("a valid rule"),
        Rewrite::new(
            "transpose-identity",
            pat("(transpose ?p ?x)"),
            Unchanged {
                x: var("?x"),
                attr: var("?p"),
                transpose: true,
            },
        )
        .expect("a valid rule"),
        rewrite!("reshape-chain"; "(reshape ?s2 (reshape ?s1 ?x))" => "(reshape ?s2 ?x)"),
        Rewrite::new(
            "reshape-noop",
            pat("(reshape ?s ?x)"),
            Unchanged {
                x: var("?x"),
                attr: var("?s"),
                transpose: false,
            },
        )
        .expect("a valid rule"),
        Rewrite::new(
            "cast-noop",
            pat("(cast ?t ?x)"),
            Unchanged {
                x: var("?x"),
                attr: var("?t"),
                transpose: false,
            },
        )
        .expect("a valid rule"),
    ]
}

/// Prices an expression by the target: each op's occupancy on its unit plus the bytes it writes.
struct TargetCost<'a> {
    target: &'a Target,
    egraph: &'a EGraph<Layout, Types>,
}

impl CostFunction<Layout> for TargetCost<'_> {
    type Cost = u64;

    fn cost<C>(&mut self, enode: &Layout, mut costs: C) -> u64
    where
        C: FnMut(Id) -> u64,
    {
        let own = match enode {
            Layout::Leaf(_) | Layout::Dims(_) | Layout::Elem(_) => 0,
            _ => {
                let out = type_of(
                    enode,
                    |id| self.egraph[id].data.clone(),
                    &self.egraph.analysis.leaves,
                );
                let Data::Tensor(t) = out else {
                    unreachable!("ops make tensors")
                };
                let bytes = t.size_bytes().unwrap_or(u64::MAX / 4);
                let work = match enode {
                    Layout::Cast(_) => Work::Vector {
                        elements: t.shape.num_elements().unwrap_or(u64::MAX / 4),
                        dtype: t.dtype,
                        op: "Cast".into(),
                    },
                    _ => Work::Stream { bytes },
                };
                let cycles = self.target.cost(&work).map_or(u64::MAX / 4, |c| c.occupancy);
                cycles.saturating_add(bytes)
            }
        };
        enode.fold(own, |sum, id| sum.saturating_add(costs(id)))
    }
}

/// How many times each rule fired, by name.
pub type Fired = BTreeMap<String, usize>;

fn is_layout(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::Transpose { .. } | OpKind::Reshape { .. } | OpKind::Cast { .. }
    )
}

/// `g` with its layout chains simplified, and how often each rule fired (empty when nothing
/// changed).
pub fn simplify_layout(g: &Graph, target: &Target) -> (Graph, Fired) {
    let producer = |v: ValueId| match g.value(v).kind {
        ValueKind::Computed { producer } => Some(producer),
        _ => None,
    };
    let in_chain =
        |v: ValueId| producer(v).is_some_and(|p| is_layout(&g.op(p).kind) && g.op(p).inputs.len() == 1);
    // Chain values read by anything but a chain op, or graph outputs: the roots to extract.
    let mut read_outside = vec![false; g.num_values()];
    for &v in g.outputs() {
        read_outside[v.index()] = true;
    }
    for o in g.op_ids() {
        let op = g.op(o);
        let chain_op = is_layout(&op.kind) && op.inputs.len() == 1;
        for &v in &op.inputs {
            if !chain_op {
                read_outside[v.index()] = true;
            }
        }
    }
    let mut egraph: EGraph<Layout, Types> = EGraph::new(Types::default());
    let mut class: BTreeMap<ValueId, Id> = BTreeMap::new();
    let mut leaves: Vec<ValueId> = Vec::new();
    let mut roots: Vec<ValueId> = Vec::new();
    for o in g.op_ids() {
        let op = g.op(o);
        if !(is_layout(&op.kind) && op.inputs.len() == 1) {
            continue;
        }
        let x = op.inputs[0];
        let child = match class.get(&x) {
            Some(&id) => id,
            None => {
                let leaf = Leaf(leaves.len() as u32);
                leaves.push(x);
                egraph.analysis.leaves.push(g.value(x).ty.clone());
                let id = egraph.add(Layout::Leaf(leaf));
                class.insert(x, id);
                id
            }
        };
        let node = match &op.kind {
            OpKind::Transpose { perm } => {
                let p = egraph.add(Layout::Dims(Dims(perm.iter().map(|&a| a as u64).collect())));
                Layout::Transpose([p, child])
            }
            OpKind::Reshape { shape } => {
                let s = egraph.add(Layout::Dims(Dims(shape.clone())));
                Layout::Reshape([s, child])
            }
            OpKind::Cast { to } => {
                let e = egraph.add(Layout::Elem(Elem(*to)));
                Layout::Cast([e, child])
            }
            _ => unreachable!("layout ops only"),
        };
        let id = egraph.add(node);
        class.insert(op.outputs[0], id);
        if read_outside[op.outputs[0].index()] {
            roots.push(op.outputs[0]);
        }
    }
    if roots.is_empty() {
        return (g.clone(), Fired::new());
    }
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_iter_limit(ITERATIONS)
        .with_node_limit(NODES)
        .with_time_limit(std::time::Duration::from_secs(u64::MAX / 4))
        .run(&rules());
    let mut fired = Fired::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            *fired.entry(name.to_string()).or_insert(0) += n;
        }
    }
    let egraph = &runner.egraph;
    let extractor = egg::Extractor::new(egraph, TargetCost { target, egraph });
    // Whether extraction changed anything: a root's best cost below its original chain's.
    let original_cost = |v: ValueId| -> u64 {
        let mut cost = TargetCost { target, egraph };
        let mut total = 0u64;
        let mut x = v;
        while in_chain(x) {
            let op = g.op(producer(x).expect("a chain value has a producer"));
            let id = egraph.find(class[&x]);
            let node = egraph[id]
                .nodes
                .iter()
                .find(|n| match (n, &op.kind) {
                    (Layout::Transpose(_), OpKind::Transpose { .. })
                    | (Layout::Reshape(_), OpKind::Reshape { .. })
                    | (Layout::Cast(_), OpKind::Cast { .. }) => {
                        egraph.find(n.children()[1]) == egraph.find(class[&op.inputs[0]])
                    }
                    _ => false,
                })
                .cloned();
            if let Some(node) = node {
                total = total.saturating_add(cost.cost(&node, |_| 0));
            }
            x = op.inputs[0];
        }
        total
    };
    let improved = roots
        .iter()
        .any(|&v| extractor.find_best_cost(class[&v]) < original_cost(v));
    if !improved {
        return (g.clone(), Fired::new());
    }
    (rebuild(g, egraph, &extractor, &class, &leaves, &roots), fired)
}

/// The graph with every root chain replaced by its extracted expression (shared sub-expressions
/// emitted once), in the original op order.
fn rebuild<CF: CostFunction<Layout>>(
    g: &Graph,
    egraph: &EGraph<Layout, Types>,
    extractor: &egg::Extractor<CF, Layout, Types>,
    class: &BTreeMap<ValueId, Id>,
    leaves: &[ValueId],
    roots: &[ValueId],
) -> Graph {
    let mut out = Graph::new(g.name.clone());
    let mut map: BTreeMap<ValueId, ValueId> = BTreeMap::new();
    for &v in g.inputs() {
        let val = g.value(v);
        map.insert(v, out.add_input(val.name.clone(), val.ty.clone()));
    }
    for v in g.value_ids() {
        if let ValueKind::Weight { source } = &g.value(v).kind {
            let val = g.value(v);
            map.insert(
                v,
                out.add_weight(val.name.clone(), val.ty.clone(), source.clone()),
            );
        }
    }
    let is_root: std::collections::BTreeSet<ValueId> = roots.iter().copied().collect();
    let mut emitted: BTreeMap<Id, ValueId> = BTreeMap::new();
    for o in g.op_ids() {
        let op = g.op(o);
        let chain_op = is_layout(&op.kind) && op.inputs.len() == 1;
        if !chain_op {
            let inputs: Vec<ValueId> = op.inputs.iter().map(|v| map[v]).collect();
            let names: Vec<String> = op.outputs.iter().map(|&v| g.value(v).name.clone()).collect();
            let new = out
                .add_op_multi(op.kind.clone(), inputs, &names, g.provenance(o).clone())
                .expect("re-adding a verified op with the same operand types cannot fail");
            for (&old, new) in op.outputs.iter().zip(new) {
                map.insert(old, new);
            }
            continue;
        }
        let v = op.outputs[0];
        if !is_root.contains(&v) {
            continue;
        }
        let root = egraph.find(class[&v]);
        let new = emit(
            &mut out,
            egraph,
            extractor,
            root,
            &map,
            leaves,
            g.provenance(o),
            &g.value(v).name,
            &mut emitted,
        );
        map.insert(v, new);
    }
    // A graph output stays a computed value of its own: one that became a graph input, a
    // weight or another output's value gets a copy (an identity reshape).
    let mut taken = std::collections::BTreeSet::new();
    for &v in g.outputs() {
        let mut new = map[&v];
        if !matches!(out.value(new).kind, ValueKind::Computed { .. }) || !taken.insert(new) {
            let prov = g.producer(v).map_or_else(
                || Provenance {
                    node: "output".into(),
                    op_type: "Identity".into(),
                },
                |p| g.provenance(p).clone(),
            );
            new = out
                .add_op(
                    OpKind::Reshape {
                        shape: g.value(v).ty.shape.dims().to_vec(),
                    },
                    vec![new],
                    format!("{}_output", g.value(v).name),
                    prov,
                )
                .expect("a reshape to its own shape");
            taken.insert(new);
        }
        out.add_output(new);
    }
    out
}

/// Emit the best expression of e-class `id` (memoised in `emitted`), named after the value it
/// replaces when it is the root.
#[allow(clippy::too_many_arguments)]
fn emit<CF: CostFunction<Layout>>(
    out: &mut Graph,
    egraph: &EGraph<Layout, Types>,
    extractor: &egg::Extractor<CF, Layout, Types>,
    id: Id,
    map: &BTreeMap<ValueId, ValueId>,
    leaves: &[ValueId],
    prov: &Provenance,
    name: &str,
    emitted: &mut BTreeMap<Id, ValueId>,
) -> ValueId {
    let id = egraph.find(id);
    if let Some(&v) = emitted.get(&id) {
        return v;
    }
    let node = extractor.find_best_node(id).clone();
    let attr = |c: Id| extractor.find_best_node(egraph.find(c)).clone();
    let v = match node {
        Layout::Leaf(l) => map[&leaves[l.0 as usize]],
        Layout::Dims(_) | Layout::Elem(_) => unreachable!("attributes are never values"),
        Layout::Transpose([p, x]) | Layout::Reshape([p, x]) | Layout::Cast([p, x]) => {
            let input = emit(
                out,
                egraph,
                extractor,
                x,
                map,
                leaves,
                prov,
                &format!("{name}_in"),
                emitted,
            );
            let kind = match (&node, attr(p)) {
                (Layout::Transpose(_), Layout::Dims(d)) => OpKind::Transpose {
                    perm: d.0.iter().map(|&a| a as usize).collect(),
                },
                (Layout::Reshape(_), Layout::Dims(d)) => OpKind::Reshape { shape: d.0 },
                (Layout::Cast(_), Layout::Elem(e)) => OpKind::Cast { to: e.0 },
                _ => unreachable!("an op's first child is its attribute"),
            };
            out.add_op(kind, vec![input], name.to_string(), prov.clone())
                .expect("every extracted op keeps the types its e-class has")
        }
    };
    emitted.insert(id, v);
    v
}

#[cfg(test)]
mod tests;
