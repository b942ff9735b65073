//! Equality saturation (egg) over the ops the rules know: layout chains, elementwise arithmetic,
//! mean reductions, and the fused ops they may become (see `rules.rs` for the named rules).
//!
//! Exporters write normalisations and activations as chains of small ops (RMSNorm as five, GELU
//! as five) and leave layout ops that change nothing; each is a pass of its data through a unit.
//! Every op the language models becomes an e-node whose leaves are the values it reads from
//! elsewhere; the rules add equivalent forms; extraction keeps, for each value read outside, the
//! form the target's cost model prices lowest (the cycles of each op on its unit plus the bytes
//! it writes). The original is always in the e-graph, so nothing costs more than before. The
//! runner is bounded by iterations and e-nodes, never by time, so the result does not depend on the
//! machine's speed; egg's `deterministic` feature fixes its hashing.

mod lang;
mod rules;

use egg::{CostFunction, EGraph, Extractor, Id, Language, Runner};
use lang::{data_of, expr_of, kind_of, Data, Expr, Leaf, Types};
use lpuc_ir::{Graph, OpKind, ShapeError, ValueId, ValueKind};
use lpuc_target::Target;
use std::collections::{BTreeMap, BTreeSet};

pub use rules::rules;

/// Rules stop after this many iterations or e-nodes (whichever first).
const ITERATIONS: usize = 12;
const NODES: usize = 400_000;

/// How many times each rule fired, by name.
pub type Fired = BTreeMap<String, usize>;

/// Prices an expression by the target: each op's occupancy on its unit plus the bytes it writes,
/// and one more for an op the model did not have, so a tie keeps the original.
struct TargetCost<'a> {
    target: &'a Target,
    egraph: &'a EGraph<Expr, Types>,
    /// The model's own op nodes, children canonical.
    originals: &'a BTreeSet<Expr>,
}

impl CostFunction<Expr> for TargetCost<'_> {
    type Cost = u64;

    fn cost<C>(&mut self, enode: &Expr, mut costs: C) -> u64
    where
        C: FnMut(Id) -> u64,
    {
        let data = |id: Id| self.egraph[id].data.clone();
        let own = match kind_of(enode, &data) {
            None => 0,
            Some((kind, children)) => {
                let Data::Tensor(out, _) = data_of(enode, data, &self.egraph.analysis.leaves) else {
                    unreachable!("ops make tensors")
                };
                let types: Vec<lpuc_ir::TensorType> = children
                    .iter()
                    .map(|&c| match data(c) {
                        Data::Tensor(t, _) => t,
                        _ => unreachable!("operands are tensors"),
                    })
                    .collect();
                let refs: Vec<&lpuc_ir::TensorType> = types.iter().collect();
                let work = crate::scheduler::work::work_for(&kind, &refs, &out);
                let cycles = self.target.cost(&work).map_or(u64::MAX / 4, |c| c.occupancy);
                let canonical = enode.clone().map_children(|c| self.egraph.find(c));
                let new = u64::from(!self.originals.contains(&canonical));
                cycles
                    .saturating_add(out.size_bytes().unwrap_or(u64::MAX / 4))
                    .saturating_add(new)
            }
        };
        // A matrix product's operands are priced where they are made, not again under it: the
        // residual stream feeds every layer's products, and pricing it under each (tree cost)
        // would grow exponentially with depth, saturate, and leave extraction to tie-breaks.
        let priced: &[Id] = match enode {
            Expr::MatMul(_) => &[],
            Expr::MatMulBias([_, _, bias])
            | Expr::MatMulBiasGelu([_, _, bias])
            | Expr::MatMulBiasGeluTanh([_, _, bias])
            | Expr::MatMulBiasRelu([_, _, bias]) => std::slice::from_ref(bias),
            _ => enode.children(),
        };
        priced.iter().fold(own, |sum, &id| sum.saturating_add(costs(id)))
    }
}

/// `g` rewritten, and how often each rule fired (empty, and `g` unchanged, when extraction found
/// nothing cheaper).
pub fn saturate(g: &Graph, target: &Target) -> (Graph, Fired) {
    let mut egraph: EGraph<Expr, Types> = EGraph::new(Types::default());
    let mut class: BTreeMap<ValueId, Id> = BTreeMap::new();
    let mut leaves: Vec<ValueId> = Vec::new();
    // The op each modelled value came from, in op order.
    let mut modelled: Vec<ValueId> = Vec::new();
    let mut nodes: Vec<Expr> = Vec::new();
    for o in g.op_ids() {
        let op = g.op(o);
        if op.outputs.len() != 1 {
            continue;
        }
        let children: Vec<Id> = op
            .inputs
            .iter()
            .map(|&x| match class.get(&x) {
                Some(&id) => id,
                None => {
                    let leaf = Leaf(leaves.len() as u32);
                    leaves.push(x);
                    egraph.analysis.leaves.push((g.value(x).ty.clone(), g.scalar(x)));
                    let id = egraph.add(Expr::Leaf(leaf));
                    class.insert(x, id);
                    id
                }
            })
            .collect();
        if let Some(node) = expr_of(&mut egraph, &op.kind, &children) {
            nodes.push(node.clone());
            let id = egraph.add(node);
            class.insert(op.outputs[0], id);
            modelled.push(op.outputs[0]);
        }
    }
    let modelled_set: BTreeSet<ValueId> = modelled.iter().copied().collect();
    // Modelled values read by an op the language does not model, or graph outputs: the roots.
    let mut roots: BTreeSet<ValueId> = g
        .outputs()
        .iter()
        .copied()
        .filter(|v| modelled_set.contains(v))
        .collect();
    for o in g.op_ids() {
        let op = g.op(o);
        let inside = op.outputs.len() == 1 && modelled_set.contains(&op.outputs[0]);
        if !inside {
            roots.extend(op.inputs.iter().copied().filter(|v| modelled_set.contains(v)));
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
    let egraph = &runner.egraph;
    let originals: BTreeSet<Expr> = nodes
        .into_iter()
        .map(|n| n.map_children(|c| egraph.find(c)))
        .collect();
    let extractor = Extractor::new(
        egraph,
        TargetCost {
            target,
            egraph,
            originals: &originals,
        },
    );
    // The e-classes the extracted forms of the roots need.
    let mut needed: BTreeSet<Id> = BTreeSet::new();
    let mut stack: Vec<Id> = roots.iter().map(|v| egraph.find(class[v])).collect();
    while let Some(id) = stack.pop() {
        if needed.insert(id) {
            stack.extend(
                extractor
                    .find_best_node(id)
                    .children()
                    .iter()
                    .map(|&c| egraph.find(c)),
            );
        }
    }
    let mut fired = Fired::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            *fired.entry(name.to_string()).or_insert(0) += n;
        }
    }
    // Commutation alone changes nothing worth reporting; with no named rule fired, only
    // hash-consing merged equal ops, which is not a rewrite.
    fired.retain(|name, _| !name.ends_with("-comm"));
    if fired.is_empty() {
        return (g.clone(), Fired::new());
    }
    // A type the rules got wrong (our bug) keeps the graph as it was rather than failing the
    // compile.
    let Ok(rebuilt) = rebuild(g, egraph, &extractor, &class, &leaves, &modelled_set, &needed) else {
        return (g.clone(), Fired::new());
    };
    // Rules may fire and extraction still keep every original op (a tie, or nothing cheaper).
    if lpuc_ir::print::print(&rebuilt) == lpuc_ir::print::print(g) {
        return (g.clone(), Fired::new());
    }
    (rebuilt, fired)
}

/// The graph rebuilt in the original op order: each needed e-class is emitted where its original
/// op stood (named and placed as it was), classes without one just before their first reader.
fn rebuild<CF: CostFunction<Expr>>(
    g: &Graph,
    egraph: &EGraph<Expr, Types>,
    extractor: &Extractor<CF, Expr, Types>,
    class: &BTreeMap<ValueId, Id>,
    leaves: &[ValueId],
    modelled: &BTreeSet<ValueId>,
    needed: &BTreeSet<Id>,
) -> Result<Graph, ShapeError> {
    let (mut out, mut map) = g.interface(|_| true);
    let mut emitted: BTreeMap<Id, ValueId> = BTreeMap::new();
    for o in g.op_ids() {
        let op = g.op(o);
        let v = op.outputs[0];
        if !(op.outputs.len() == 1 && modelled.contains(&v)) {
            // Every modelled operand is a root, emitted where its op stood.
            out.copy_op(g, o, &mut map)?;
            continue;
        }
        let id = egraph.find(class[&v]);
        if needed.contains(&id) {
            let name = g.value(v).name.clone();
            let new = emit(
                &mut out,
                egraph,
                extractor,
                id,
                &map,
                leaves,
                g,
                o,
                Some(name),
                &mut emitted,
            )?;
            map.insert(v, new);
        }
    }
    // A graph output stays a computed value of its own: one that became a graph input, a
    // weight or another output's value gets a copy (an identity reshape).
    let mut taken = BTreeSet::new();
    for &v in g.outputs() {
        // A modelled output is a root: emitted where its op stood.
        let mut new = map[&v];
        if !matches!(out.value(new).kind, ValueKind::Computed { .. }) || !taken.insert(new) {
            let prov = g.producer(v).map_or_else(
                || lpuc_ir::Provenance {
                    node: "output".into(),
                    op_type: "Identity".into(),
                },
                |p| g.provenance(p).clone(),
            );
            new = out.add_op(
                OpKind::Reshape {
                    shape: g.value(v).ty.shape.dims().to_vec(),
                },
                vec![new],
                format!("{}_output", g.value(v).name),
                prov,
            )?;
            taken.insert(new);
        }
        out.add_output(new);
    }
    Ok(out)
}

/// Emit the best form of e-class `id` (memoised), its operands first, with op `at`'s provenance
/// (the original op it stands for, or the reader it is emitted for) and `name` (else one derived
/// from `at`'s result).
#[allow(clippy::too_many_arguments)]
fn emit<CF: CostFunction<Expr>>(
    out: &mut Graph,
    egraph: &EGraph<Expr, Types>,
    extractor: &Extractor<CF, Expr, Types>,
    id: Id,
    map: &BTreeMap<ValueId, ValueId>,
    leaves: &[ValueId],
    g: &Graph,
    at: lpuc_ir::OpId,
    name: Option<String>,
    emitted: &mut BTreeMap<Id, ValueId>,
) -> Result<ValueId, ShapeError> {
    let id = egraph.find(id);
    if let Some(&v) = emitted.get(&id) {
        return Ok(v);
    }
    let node = extractor.find_best_node(id).clone();
    let v = match &node {
        Expr::Leaf(l) => map[&leaves[l.0 as usize]],
        Expr::Dims(_) | Expr::Elem(_) | Expr::Num(_) => unreachable!("attributes are never values"),
        _ => {
            let data = |c: Id| egraph[c].data.clone();
            let (kind, children) = kind_of(&node, &data).expect("an op");
            let inputs: Vec<ValueId> = children
                .iter()
                .map(|&c| emit(out, egraph, extractor, c, map, leaves, g, at, None, emitted))
                .collect::<Result<_, _>>()?;
            let name =
                name.unwrap_or_else(|| format!("{}_{}", g.value(g.op(at).outputs[0]).name, emitted.len()));
            out.add_op(kind, inputs, name, g.provenance(at).clone())?
        }
    };
    emitted.insert(id, v);
    Ok(v)
}

#[cfg(test)]
mod tests;
