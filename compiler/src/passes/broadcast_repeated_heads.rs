//! Grouped-query attention without copying keys and values once per query head.
//!
//! Exporters write GQA's `repeat_kv` as `Reshape` (unsqueeze) -> `Expand` -> `Reshape`: each of
//! the `G` key and value heads is copied `r` times so the attention matmuls see `G * r` heads.
//! Those copies are as large as the queries (8x the cache on a 70B model, where they were the
//! largest share of a decode step's critical path and of a prefill layer's SRAM). The pass runs the
//! attention between the two matmuls on five-dimensional values instead, `[b, G, r, m, n]`, and
//! lets the matmuls broadcast the unrepeated `[b, G, 1, s, d]` keys and values over `r`:
//!
//! ```text
//! Q [b, G*r, m, d] --Reshape--> [b, G, r, m, d]
//! S  = MatMul(Q5, Transpose(K [b, G, 1, s, d]))      [b, G, r, m, s]
//! ... the same scale, mask, softmax (its axis moved to the new last axis) ...
//! O5 = MatMul(P5, V [b, G, 1, s, d])                 [b, G, r, m, d]
//! O  = Reshape(O5) [b, G*r, m, d]
//! ```
//!
//! Element for element the same arithmetic: query head `g * r + j` meets key head `g` either way.
//! It applies only when every op between the two matmuls is elementwise or a softmax over the
//! last axis, reads the chain once, and any other operand broadcasts over heads and batch alike
//! (a mask `[1, 1, m, s]`, a scale); anything else is left as it is.

use lpuc_ir::{Graph, OpId, OpKind, ShapeError, ValueId, ValueKind};
use std::collections::BTreeMap;

/// A `[b, G*r, s, d]` value that repeats each head of `[b, G, s, d]` `r` times, and the
/// `[b, G, 1, s, d]` value it was expanded from.
#[derive(Clone, Copy, Debug)]
struct Repeat {
    unsqueezed: ValueId,
}

/// One attention to rewrite: `first` = MatMul(q, keys), then `chain` (single-reader ops), then
/// `last` = MatMul(chain's result, values).
#[derive(Debug)]
struct Site {
    q: ValueId,
    keys: Repeat,
    /// Whether `first` reads the keys transposed (`Transpose` perm `[0, 1, 3, 2]`).
    transposed: bool,
    first: OpId,
    chain: Vec<OpId>,
    values: Repeat,
    last: OpId,
    groups: u64,
    repeats: u64,
    /// How many groups each key and value head serves, so how many copies of it are made (1: one
    /// group of all `repeats`, no copy).
    copies: u64,
}

fn dims(g: &Graph, v: ValueId) -> &[u64] {
    g.value(v).ty.shape.dims()
}

fn producer(g: &Graph, v: ValueId) -> Option<OpId> {
    match g.value(v).kind {
        ValueKind::Computed { producer } => Some(producer),
        _ => None,
    }
}

/// `x` as a head repeat: Reshape([b, G*r, s, d]) of Expand([b, G, r, s, d]) of [b, G, 1, s, d].
fn repeat_of(g: &Graph, x: ValueId) -> Option<(Repeat, u64, u64)> {
    let reshape = producer(g, x)?;
    if !matches!(g.op(reshape).kind, OpKind::Reshape { .. }) {
        return None;
    }
    let expanded = g.op(reshape).inputs[0];
    let expand = producer(g, expanded)?;
    if !matches!(g.op(expand).kind, OpKind::Expand { .. }) {
        return None;
    }
    let unsqueezed = g.op(expand).inputs[0];
    let (u, e, out) = (dims(g, unsqueezed), dims(g, expanded), dims(g, x));
    let shaped = u.len() == 5
        && e.len() == 5
        && out.len() == 4
        && u[2] == 1
        && e[2] > 1
        && u[0] == e[0]
        && u[1] == e[1]
        && u[3..] == e[3..]
        && out[0] == e[0]
        && out[1] == e[1] * e[2]
        && out[2..] == e[3..];
    shaped.then_some((Repeat { unsqueezed }, e[1], e[2]))
}

/// Whether `side`, an operand beside the chain's `[b, H, m, n]` value, broadcasts over batch and
/// heads (so it broadcasts the same way against `[b, G, r, m, n]`).
fn broadcasts_over_heads(g: &Graph, side: ValueId) -> bool {
    let d = dims(g, side);
    d.len() <= 2 || d[..d.len() - 2].iter().all(|&x| x == 1)
}

/// Every attention of `g` this pass can rewrite.
fn sites(g: &Graph) -> Vec<Site> {
    let mut readers: Vec<Vec<OpId>> = vec![Vec::new(); g.num_values()];
    for o in g.op_ids() {
        for &v in &g.op(o).inputs {
            if readers[v.index()].last() != Some(&o) {
                readers[v.index()].push(o);
            }
        }
    }
    let outputs: std::collections::BTreeSet<ValueId> = g.outputs().iter().copied().collect();
    let single_reader = |v: ValueId| readers[v.index()].len() == 1 && !outputs.contains(&v);
    let mut found = Vec::new();
    for last in g.op_ids() {
        let op = g.op(last);
        if op.kind != OpKind::MatMul || op.inputs.len() != 2 {
            continue;
        }
        let Some((values, groups, repeats)) = repeat_of(g, op.inputs[1]) else {
            continue;
        };
        // Back from the probabilities through single-reader elementwise ops and a last-axis
        // softmax to the scores' matmul.
        let mut chain = Vec::new();
        let mut v = op.inputs[0];
        let first = loop {
            if !single_reader(v) || dims(g, v).len() != 4 {
                break None;
            }
            let Some(p) = producer(g, v) else { break None };
            let pop = g.op(p);
            match &pop.kind {
                OpKind::MatMul => break Some(p),
                OpKind::Softmax { axis: 3, .. } | OpKind::Unary(_) | OpKind::Cast { .. } => {}
                OpKind::Binary(_) if pop.inputs.len() == 2 => {}
                _ => break None,
            }
            // The operand on the chain is the one of the value's full shape; the others must
            // broadcast over heads.
            let main: Vec<usize> = (0..pop.inputs.len())
                .filter(|&i| dims(g, pop.inputs[i]) == dims(g, v))
                .collect();
            let [main] = main[..] else { break None };
            if pop.outputs.len() != 1
                || (0..pop.inputs.len()).any(|i| i != main && !broadcasts_over_heads(g, pop.inputs[i]))
            {
                break None;
            }
            chain.push(p);
            v = pop.inputs[main];
        };
        let Some(first) = first else { continue };
        chain.reverse();
        let (q, k) = (g.op(first).inputs[0], g.op(first).inputs[1]);
        // The keys, repeated, read directly or transposed.
        let (keys, transposed) = match repeat_of(g, k) {
            Some((r, gk, rk)) if (gk, rk) == (groups, repeats) => (r, false),
            _ => {
                let Some(t) = producer(g, k) else { continue };
                match &g.op(t).kind {
                    OpKind::Transpose { perm } if perm[..] == [0, 1, 3, 2] => {
                        match repeat_of(g, g.op(t).inputs[0]) {
                            Some((r, gk, rk)) if (gk, rk) == (groups, repeats) => (r, true),
                            _ => continue,
                        }
                    }
                    _ => continue,
                }
            }
        };
        let qd = dims(g, q);
        if qd.len() != 4 || qd[1] != groups * repeats {
            continue;
        }
        found.push(Site {
            q,
            keys,
            transposed,
            first,
            chain,
            values,
            last,
            groups,
            repeats,
            copies: 1,
        });
    }
    found
}

/// `g` with every grouped attention it can rewrite broadcasting its keys and values; the head
/// repeats it no longer reads are left for dead-op elimination. Returns the graph and the number
/// of attentions rewritten.
pub fn broadcast_repeated_heads(g: &Graph) -> (Graph, usize) {
    rewritten(g, &sites(g))
}

/// The same rewrite with the groups axis `groups` long: each key and value head serves
/// `p = groups / G` groups of `r / p` query heads, and keys and values are copied `p` times (not
/// `r`). Where a group of chips is larger than `G` (16 chips, 8 key/value heads), attention can
/// then split by group and each chip holds one key and one value head instead of all of them (a
/// 70B prefill at 4096 tokens: 2 MiB a chip, not 32). Only attentions where `groups` is a larger
/// multiple of `G` and `p` divides `r` are rewritten.
pub fn broadcast_repeated_heads_in_groups(g: &Graph, groups: u64) -> (Graph, usize) {
    let found: Vec<Site> = sites(g)
        .into_iter()
        .filter(|s| groups > s.groups && groups.is_multiple_of(s.groups))
        .filter(|s| s.repeats.is_multiple_of(groups / s.groups))
        .map(|s| Site {
            copies: groups / s.groups,
            ..s
        })
        .collect();
    rewritten(g, &found)
}

fn rewritten(g: &Graph, found: &[Site]) -> (Graph, usize) {
    if found.is_empty() {
        return (g.clone(), 0);
    }
    // The matching checked every shape, so the types agree; should one not, the graph stays as
    // it was rather than the compile failing.
    match rewrite(g, found) {
        Ok(out) => (out, found.len()),
        Err(_) => (g.clone(), 0),
    }
}

/// `x` (`[b, G, 1, s, d]`, `x_new` in `out`) as `[b, G * copies, 1, s, d]`, each head `copies`
/// times in a row; `x_new` itself when `copies` is 1.
fn copied(
    g: &Graph,
    out: &mut Graph,
    x: ValueId,
    x_new: ValueId,
    copies: u64,
    o: OpId,
) -> Result<ValueId, ShapeError> {
    if copies == 1 {
        return Ok(x_new);
    }
    let d = dims(g, x);
    let expanded = out.add_op(
        OpKind::Expand {
            shape: vec![d[0], d[1], copies, d[3], d[4]],
        },
        vec![x_new],
        format!("{}_copies", g.value(x).name),
        g.provenance(o).clone(),
    )?;
    out.add_op(
        OpKind::Reshape {
            shape: vec![d[0], d[1] * copies, 1, d[3], d[4]],
        },
        vec![expanded],
        format!("{}_copied", g.value(x).name),
        g.provenance(o).clone(),
    )
}

fn rewrite(g: &Graph, found: &[Site]) -> Result<Graph, ShapeError> {
    // Each site's ops are rewritten where they stand (their operands are made before them):
    // `five` holds the 5-d counterpart of the scores and of every chain value.
    let mut site_of: BTreeMap<OpId, usize> = BTreeMap::new();
    for (i, s) in found.iter().enumerate() {
        for &o in [&s.first].into_iter().chain(&s.chain).chain([&s.last]) {
            site_of.insert(o, i);
        }
    }
    let (mut out, mut map) = g.interface(|_| true);
    let mut five: BTreeMap<ValueId, ValueId> = BTreeMap::new();
    let add = |out: &mut Graph, kind: OpKind, inputs: Vec<ValueId>, name: String, o: OpId| {
        out.add_op(kind, inputs, name, g.provenance(o).clone())
    };
    for o in g.op_ids() {
        let op = g.op(o);
        let name = |v: ValueId| g.value(v).name.clone();
        let Some(site) = site_of.get(&o).map(|&i| &found[i]) else {
            out.copy_op(g, o, &mut map)?;
            continue;
        };
        let result = op.outputs[0];
        if o == site.first {
            let qd = dims(g, site.q);
            let shape = vec![
                qd[0],
                site.groups * site.copies,
                site.repeats / site.copies,
                qd[2],
                qd[3],
            ];
            let q5 = add(
                &mut out,
                OpKind::Reshape { shape },
                vec![map[&site.q]],
                format!("{}_grouped", name(site.q)),
                o,
            )?;
            let mut keys = copied(
                g,
                &mut out,
                site.keys.unsqueezed,
                map[&site.keys.unsqueezed],
                site.copies,
                o,
            )?;
            if site.transposed {
                let perm = vec![0, 1, 2, 4, 3];
                keys = add(
                    &mut out,
                    OpKind::Transpose { perm },
                    vec![keys],
                    format!("{}_transposed", name(site.keys.unsqueezed)),
                    o,
                )?;
            }
            let s5 = add(&mut out, OpKind::MatMul, vec![q5, keys], name(result), o)?;
            five.insert(result, s5);
        } else if o == site.last {
            let p5 = five[&op.inputs[0]];
            let values = copied(
                g,
                &mut out,
                site.values.unsqueezed,
                map[&site.values.unsqueezed],
                site.copies,
                o,
            )?;
            let o5 = add(
                &mut out,
                OpKind::MatMul,
                vec![p5, values],
                format!("{}_grouped", name(result)),
                o,
            )?;
            let shape = dims(g, result).to_vec();
            let back = add(&mut out, OpKind::Reshape { shape }, vec![o5], name(result), o)?;
            map.insert(result, back);
        } else {
            let inputs: Vec<ValueId> = op
                .inputs
                .iter()
                .map(|x| five.get(x).copied().unwrap_or_else(|| map[x]))
                .collect();
            let kind = match &op.kind {
                OpKind::Softmax { log, .. } => OpKind::Softmax { axis: 4, log: *log },
                k => k.clone(),
            };
            let v5 = add(&mut out, kind, inputs, name(result), o)?;
            five.insert(result, v5);
        }
    }
    for v in g.outputs() {
        out.add_output(map[v]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::interp::{evaluate, Tensor};
    use lpuc_ir::{BinaryOp, DType, Provenance, TensorType};

    fn prov(node: &str) -> Provenance {
        Provenance {
            node: node.into(),
            op_type: node.into(),
        }
    }

    fn ty(d: &[u64]) -> TensorType {
        TensorType::new(DType::F32, d.to_vec())
    }

    const HEADS: u64 = 2;
    const REPEATS: u64 = 3;
    const ROWS: u64 = 4;
    const KEYS: u64 = 5;
    const DEPTH: u64 = 8;

    /// `x` [1, 2, 5, 8] repeated per head to [1, 6, 5, 8] as exporters write `repeat_kv`.
    fn repeat(g: &mut Graph, x: ValueId, n: &str) -> ValueId {
        let u = g
            .add_op(
                OpKind::Reshape {
                    shape: vec![1, HEADS, 1, KEYS, DEPTH],
                },
                vec![x],
                format!("{n}_u"),
                prov("attn/Unsqueeze"),
            )
            .unwrap();
        let e = g
            .add_op(
                OpKind::Expand {
                    shape: vec![1, HEADS, REPEATS, KEYS, DEPTH],
                },
                vec![u],
                format!("{n}_e"),
                prov("attn/Expand"),
            )
            .unwrap();
        g.add_op(
            OpKind::Reshape {
                shape: vec![1, HEADS * REPEATS, KEYS, DEPTH],
            },
            vec![e],
            format!("{n}_r"),
            prov("attn/Reshape"),
        )
        .unwrap()
    }

    /// GQA: 2 key/value heads, each repeated 3 times for 6 query heads; scores scaled, `bias`
    /// added (a mask [1, 1, m, s] unless given), softmax, then the values.
    fn gqa(bias_dims: &[u64]) -> Graph {
        let mut g = Graph::new("gqa");
        let q = g.add_input("q", ty(&[1, HEADS * REPEATS, ROWS, DEPTH]));
        let k = g.add_input("k", ty(&[1, HEADS, KEYS, DEPTH]));
        let v = g.add_input("v", ty(&[1, HEADS, KEYS, DEPTH]));
        let bias = g.add_input("bias", ty(bias_dims));
        let scale = g.add_weight("scale", ty(&[]), "scale");
        let kr = repeat(&mut g, k, "k");
        let vr = repeat(&mut g, v, "v");
        let kt = g
            .add_op(
                OpKind::Transpose {
                    perm: vec![0, 1, 3, 2],
                },
                vec![kr],
                "kt",
                prov("attn/Transpose"),
            )
            .unwrap();
        let scores = g
            .add_op(OpKind::MatMul, vec![q, kt], "s", prov("attn/MatMul"))
            .unwrap();
        let scaled = g
            .add_op(
                OpKind::Binary(BinaryOp::Div),
                vec![scores, scale],
                "scaled",
                prov("attn/Div"),
            )
            .unwrap();
        let masked = g
            .add_op(
                OpKind::Binary(BinaryOp::Add),
                vec![scaled, bias],
                "masked",
                prov("attn/Add"),
            )
            .unwrap();
        let p = g
            .add_op(
                OpKind::Softmax { axis: 3, log: false },
                vec![masked],
                "p",
                prov("attn/Softmax"),
            )
            .unwrap();
        let o = g
            .add_op(OpKind::MatMul, vec![p, vr], "o", prov("attn/MatMul_1"))
            .unwrap();
        g.add_output(o);
        g
    }

    const MASK: [u64; 4] = [1, 1, ROWS, KEYS];

    /// Deterministic pseudo-random values in [-1, 1).
    fn filled(dims: &[u64], seed: u64) -> Tensor {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let n: u64 = dims.iter().product();
        let data = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 52) as f64 * 2.0 - 1.0
            })
            .collect();
        Tensor::new(dims.iter().map(|&d| d as usize).collect(), data).unwrap()
    }

    /// The outputs of `g` on fixed random inputs (the same for the same names).
    fn run(g: &Graph) -> Vec<Tensor> {
        let mut feeds = BTreeMap::new();
        for v in g.value_ids() {
            let value = g.value(v);
            if !matches!(value.kind, ValueKind::Computed { .. }) {
                let seed = value.name.bytes().fold(7u64, |a, b| a * 31 + u64::from(b));
                let t = match value.kind {
                    ValueKind::Weight { .. } => Tensor::scalar((DEPTH as f64).sqrt()),
                    _ => filled(value.ty.shape.dims(), seed),
                };
                feeds.insert(v, t);
            }
        }
        evaluate(g, &feeds).unwrap()
    }

    #[test]
    fn grouped_attention_broadcasts_its_keys_and_values_and_computes_the_same() {
        let g = gqa(&MASK);
        let (rewritten, count) = broadcast_repeated_heads(&g);
        assert_eq!(count, 1);
        let rewritten = crate::passes::eliminate_dead_ops::eliminate_dead_ops(&rewritten);
        lpuc_ir::verify(&rewritten).unwrap();
        // No head is copied any more.
        assert!(rewritten
            .op_ids()
            .all(|o| !matches!(rewritten.op(o).kind, OpKind::Expand { .. })));
        assert_computes_the_same(&g, &rewritten);
        // Nothing is left to rewrite.
        assert_eq!(broadcast_repeated_heads(&rewritten).1, 0);
    }

    /// `g` and `rewritten` give the same outputs on the same inputs.
    fn assert_computes_the_same(g: &Graph, rewritten: &Graph) {
        let (before, after) = (run(g), run(rewritten));
        assert_eq!(before[0].dims, after[0].dims);
        let worst = before[0]
            .data
            .iter()
            .zip(&after[0].data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-12, "max abs difference {worst}");
    }

    #[test]
    fn more_groups_copy_each_key_and_value_head_per_group_and_compute_the_same() {
        let g = gqa(&MASK);
        // 2 key/value heads of 3 query heads each, as 6 groups of one query head.
        let groups = HEADS * REPEATS;
        let (rewritten, count) = broadcast_repeated_heads_in_groups(&g, groups);
        assert_eq!(count, 1);
        let rewritten = crate::passes::eliminate_dead_ops::eliminate_dead_ops(&rewritten);
        lpuc_ir::verify(&rewritten).unwrap();
        let shapes: Vec<Vec<u64>> = rewritten
            .value_ids()
            .map(|v| rewritten.value(v).ty.shape.dims().to_vec())
            .collect();
        // The scores in 6 groups of one head; each key head copied 3 times, not per query head.
        assert!(shapes.contains(&vec![1, groups, 1, ROWS, KEYS]));
        assert!(shapes.contains(&vec![1, groups, 1, KEYS, DEPTH]));
        assert!(!shapes.contains(&vec![1, HEADS * REPEATS, KEYS, DEPTH]));
        assert_computes_the_same(&g, &rewritten);
        // Group counts that are not a larger multiple of the key heads dividing into the repeats
        // are left alone.
        assert_eq!(broadcast_repeated_heads_in_groups(&g, 4).1, 0);
        assert_eq!(broadcast_repeated_heads_in_groups(&g, HEADS).1, 0);
    }

    #[test]
    fn a_chain_value_read_twice_is_left_alone() {
        let mut g = gqa(&MASK);
        // The probabilities are also a graph output: the 4-d value must stay.
        let p = g.value_ids().find(|&v| g.value(v).name == "p").unwrap();
        g.add_output(p);
        assert_eq!(broadcast_repeated_heads(&g).1, 0);
    }

    #[test]
    fn an_operand_that_differs_per_head_is_left_alone() {
        // A bias per head (ALiBi-like) does not broadcast over the repeats.
        let g = gqa(&[1, HEADS * REPEATS, 1, KEYS]);
        assert_eq!(broadcast_repeated_heads(&g).1, 0);
    }
}
