//! Coarsening the IR into a chain of blocks for placement.
//!
//! Exporters name nodes by module path (`/model/layers.12/self_attn/...`, `h.3`, `encoder.layer.5`),
//! so consecutive ops of one transformer layer form one block; a graph without such names (a CNN)
//! falls back to one block per op. Each block carries what placement needs: its compute time on one
//! chip, the weight bytes it keeps resident, its activation working set, and the bytes that cross
//! the cut after it.

use super::sharding::{shard, BlockContext, Method};
use super::tiling::{tiled_working_set, Tiled};
use crate::scheduler::work::work_of;
use lpuc_ir::{DType, Graph, OpId, ValueId, ValueKind};
use lpuc_target::{Target, UnitKind};
use std::collections::BTreeMap;

/// A contiguous run of ops placed as a unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub ops: Vec<OpId>,
    /// Cycles the block keeps one chip busy: per unit kind the summed occupancy over the units of
    /// that kind, the largest kind.
    pub compute_cycles: u64,
    /// Bytes of the weights only this block reads (at the placement's weight dtype); weights read
    /// by several blocks are [`Shared`].
    pub weight_bytes: u64,
    /// Bytes of the graph inputs only this block reads (a decode step's KV cache): resident for
    /// the whole step, like weights.
    pub input_bytes: u64,
    /// Activation bytes the block needs at once: the larger of its largest op's working set
    /// (non-weight operands and results, after tiling in time) and the peak of its results live
    /// in program order (results read later, graph outputs such as a KV cache's new entries, stay
    /// to the block's end).
    pub activation_bytes: u64,
    /// Bytes of the graph outputs the block makes (a decode step's new KV entries): they stay
    /// until the end of the program, so a stage holds the sum over its blocks.
    pub output_bytes: u64,
    /// Ops of the block tiled in time to fit.
    pub tiled: Vec<Tiled>,
    /// Bytes of values produced at or before this block and read after it: what a cut after this
    /// block must send.
    pub cut_bytes: u64,
    /// The results of this block later blocks read: (the last block reading it, bytes). A stage
    /// that neither makes nor last reads such a value only relays it, holding one copy (see
    /// `pipeline::StageCosts::relayed`).
    pub sends: Vec<(usize, u64)>,
    /// The block's tensor-wise sharding per group size it can run on, ascending by `ways`; empty
    /// for a block built by hand (the placer then splits it evenly, see `pipeline`).
    pub groups: Vec<GroupCost>,
    /// Op counts of the blocks merged into this one (just `ops.len()` unless coarsened): the
    /// units the sharding was solved on, which the scheduler tiles alike.
    pub parts: Vec<usize>,
}

/// A block's cost on a group of chips, from its sharding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCost {
    pub ways: u32,
    /// Compute and collectives.
    pub cycles: u64,
    /// Its own weights and inputs a chip holds.
    pub bytes_per_chip: u64,
    /// Activations a chip holds at once under this sharding.
    pub activation_per_chip: u64,
    /// Graph outputs a chip keeps to the end of the program under this sharding.
    pub outputs_per_chip: u64,
    /// An estimate of the instructions and transfers the block makes (see
    /// `sharding::task_estimate`).
    pub tasks: u64,
    pub method: Method,
    /// What the heuristic alone found (for the report's ILP-vs-heuristic figures).
    pub heuristic_cycles: u64,
    /// A lower bound on any sharding's cycles (see `sharding::Sharding::lower_bound`).
    pub lower_bound: u64,
    /// The strategy index chosen for each of the block's ops (see `sharding::strategies`).
    pub choice: Vec<usize>,
}

impl Block {
    /// A block known only by its totals (the placer's tests build chains of them): `compute`
    /// cycles on one chip, `weights` bytes of its own, `cut` bytes crossing the cut after it, and
    /// no sharding, so a group splits it evenly.
    pub fn by_hand(name: &str, compute: u64, weights: u64, cut: u64) -> Block {
        Block {
            name: name.into(),
            ops: vec![],
            compute_cycles: compute,
            weight_bytes: weights,
            input_bytes: 0,
            activation_bytes: 0,
            output_bytes: 0,
            tiled: vec![],
            cut_bytes: cut,
            sends: vec![],
            groups: vec![],
            parts: vec![],
        }
    }
}

#[cfg(test)]
impl GroupCost {
    /// A sharding built by hand for the placer's tests: `cycles` (proven optimal, the heuristic
    /// alike), `bytes_per_chip` of its own a chip and nothing else held, `tasks` instructions and
    /// transfers.
    pub(crate) fn by_hand(ways: u32, cycles: u64, bytes_per_chip: u64, tasks: u64) -> GroupCost {
        GroupCost {
            ways,
            cycles,
            bytes_per_chip,
            activation_per_chip: 0,
            outputs_per_chip: 0,
            tasks,
            method: Method::Ilp,
            heuristic_cycles: cycles,
            lower_bound: cycles,
            choice: vec![],
        }
    }
}

/// Group sizes a stage may use: every size up to a node, then powers of two for single blocks
/// too large for a node.
pub fn group_sizes(node_chips: u32) -> Vec<u32> {
    let mut sizes: Vec<u32> = (1..=node_chips).collect();
    let mut g = node_chips.next_power_of_two();
    while g <= 64 {
        if g > node_chips {
            sizes.push(g);
        }
        g *= 2;
    }
    sizes
}

/// A block's structure without its names: ops, shapes, and where each operand comes from. Equal
/// signatures shard identically, so a model's 80 identical layers are solved once.
fn signature(
    g: &Graph,
    members: &[OpId],
    counted: &dyn Fn(ValueId) -> bool,
    read_outside: &dyn Fn(ValueId) -> bool,
) -> String {
    use std::fmt::Write;
    let local: BTreeMap<OpId, usize> = members.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    let mut sig = String::new();
    for &o in members {
        let op = g.op(o);
        let _ = write!(sig, "{:?}(", op.kind);
        for &v in &op.inputs {
            let value = g.value(v);
            let from = match value.kind {
                ValueKind::Computed { producer } => match local.get(&producer) {
                    Some(i) => format!("%{i}"),
                    None => "out".into(),
                },
                ValueKind::Weight { .. } => format!("w{}", u8::from(counted(v))),
                ValueKind::Input => format!("i{}", u8::from(counted(v))),
            };
            let _ = write!(sig, "{from}:{},", value.ty);
        }
        for &v in &op.outputs {
            let _ = write!(
                sig,
                "->{}{}",
                g.value(v).ty,
                if read_outside(v) { "!" } else { "" }
            );
        }
        sig.push(';');
    }
    sig
}

/// A weight or graph input several blocks read (a tied embedding, rotary tables, a shared mask):
/// every stage holding one of its readers needs a copy, and a stage holding several needs only one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared {
    pub bytes: u64,
    /// The blocks reading it, ascending.
    pub readers: Vec<usize>,
}

/// The layer an op belongs to, from its ONNX node name: `layers.12`, `h.3`, `layer.5`, `blocks.0`.
pub fn layer_key(node: &str) -> Option<String> {
    let parts: Vec<&str> = node
        .split(['/', '.', '_', ':'])
        .filter(|p| !p.is_empty())
        .collect();
    parts.windows(2).find_map(|w| {
        let named = matches!(w[0], "layers" | "layer" | "h" | "blocks" | "block");
        (named && !w[1].is_empty() && w[1].chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{}.{}", w[0], w[1]))
    })
}

/// The sub-module of a layer an op belongs to: `layers.12/self_attn`, `h.3/mlp`; just the layer
/// for ops directly under it (a residual `Add`).
pub fn sub_block_key(node: &str) -> Option<String> {
    let layer = layer_key(node)?;
    let comps: Vec<&str> = node.split('/').collect();
    // The path component naming the layer, and the one after it unless that is the op's own name.
    let sub = comps
        .iter()
        .position(|c| layer_key(c).as_deref() == Some(layer.as_str()))
        .filter(|&i| i + 2 < comps.len())
        .map(|i| comps[i + 1]);
    Some(match sub {
        Some(sub) => format!("{layer}/{sub}"),
        None => layer,
    })
}

/// Bytes of a weight stored at `dtype` (when given, for float weights).
fn weight_bytes(g: &Graph, v: lpuc_ir::ValueId, dtype: Option<DType>) -> u64 {
    let ty = &g.value(v).ty;
    match dtype {
        Some(d) if ty.dtype.is_float() => ty
            .shape
            .num_elements()
            .unwrap_or(u64::MAX)
            .saturating_mul(d.size_bytes()),
        _ => ty.size_bytes().unwrap_or(u64::MAX),
    }
}

/// Merge each run without a weight matrix (a norm, a residual add: their weights are vectors)
/// into its neighbours, so blocks are the sub-modules that carry matrices. A light run between
/// two heavy ones is cut where the fewest bytes cross (see [`cut_bytes_at`]): its head (the
/// residual add closing the sub-module before) joins the run before, its tail (the norm opening
/// the next) the run after, so a cut carries the residual stream once rather than both of the
/// add's operands. A light run before any heavy one joins the next, one after all joins the last.
fn merge_light_runs(g: &Graph, runs: Vec<(String, Vec<OpId>)>) -> Vec<(String, Vec<OpId>)> {
    let heavy = |members: &[OpId]| {
        members.iter().any(|&o| {
            g.op(o).inputs.iter().any(|&v| {
                matches!(g.value(v).kind, ValueKind::Weight { .. }) && g.value(v).ty.shape.rank() >= 2
            })
        })
    };
    let order: Vec<OpId> = runs.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    let crossing = cut_bytes_at(g, &order);
    let mut out: Vec<(String, Vec<OpId>)> = Vec::new();
    let mut pending: Vec<OpId> = Vec::new();
    let mut at = 0usize;
    for (name, members) in runs {
        let len = members.len();
        if heavy(&members) {
            let mut all = std::mem::take(&mut pending);
            if let Some((_, before)) = out.last_mut() {
                // The cheapest cut among the light ops: the first position of least bytes.
                let start = at - all.len();
                let best = (start..=at).min_by_key(|&p| (crossing[p], p)).unwrap_or(start);
                before.extend(all.drain(..best - start));
            }
            all.extend(members);
            out.push((name, all));
        } else {
            pending.extend(members);
        }
        at += len;
    }
    if !pending.is_empty() {
        match out.last_mut() {
            Some((_, members)) => members.extend(pending),
            None => out.push(("(all)".into(), pending)),
        }
    }
    out
}

/// Bytes that cross a cut before each position of `order` (ops in program order; index
/// `order.len()` is the end): results made before the position and read at or after it.
fn cut_bytes_at(g: &Graph, order: &[OpId]) -> Vec<u64> {
    let mut position = vec![usize::MAX; g.num_ops()];
    for (i, &o) in order.iter().enumerate() {
        position[o.index()] = i;
    }
    let mut last_read = vec![None::<usize>; g.num_values()];
    for (i, &o) in order.iter().enumerate() {
        for &v in &g.op(o).inputs {
            last_read[v.index()] = Some(i);
        }
    }
    // +bytes just after the producer, -bytes just after the last reader.
    let mut delta = vec![0i128; order.len() + 2];
    for v in g.value_ids() {
        let ValueKind::Computed { producer } = g.value(v).kind else {
            continue;
        };
        let made = position[producer.index()];
        match last_read[v.index()] {
            Some(last) if made != usize::MAX && last > made => {
                let bytes = i128::from(g.value(v).ty.size_bytes().unwrap_or(u64::MAX));
                delta[made + 1] += bytes;
                delta[last + 1] -= bytes;
            }
            _ => {}
        }
    }
    let mut running = 0i128;
    (0..=order.len())
        .map(|p| {
            running += delta[p];
            u64::try_from(running.max(0)).unwrap_or(u64::MAX)
        })
        .collect()
}

/// The chain of blocks of `g`, in op order, and the weights several blocks share.
pub fn blocks(g: &Graph, target: &Target, weight_dtype: Option<DType>) -> (Vec<Block>, Vec<Shared>) {
    let ops: Vec<OpId> = g.op_ids().collect();
    // A model with layer names (one layer is enough) is placed by its sub-modules; the
    // scheduler tiles each block's ops on their own, as the placer sized them.
    let layered = ops.iter().any(|&o| layer_key(&g.provenance(o).node).is_some());
    // Blocks follow a layer's sub-modules (attention, MLP), so a stage may end inside a layer.
    let keys: Vec<Option<String>> = ops
        .iter()
        .map(|&o| sub_block_key(&g.provenance(o).node))
        .collect();
    // Runs of equal keys; without layer names every op is its own block.
    let mut runs: Vec<(String, Vec<OpId>)> = Vec::new();
    let mut seen_layer = false;
    for (i, &o) in ops.iter().enumerate() {
        seen_layer |= keys[i].is_some();
        let key = if layered {
            match &keys[i] {
                Some(k) => k.clone(),
                None if seen_layer => "(after layers)".into(),
                None => "(before layers)".into(),
            }
        } else {
            g.provenance(o).node.clone()
        };
        match runs.last_mut() {
            Some((k, members)) if layered && *k == key => members.push(o),
            _ => runs.push((key, vec![o])),
        }
    }
    if layered {
        runs = merge_light_runs(g, runs);
    }
    let mut block_of = vec![0usize; g.num_ops()];
    for (b, (_, members)) in runs.iter().enumerate() {
        for &o in members {
            block_of[o.index()] = b;
        }
    }
    // Each value: the last block reading it, and every block reading it (ops are in order, so a
    // reader list is sorted; a block appears once).
    let n = runs.len();
    let mut last_reader = vec![None::<usize>; g.num_values()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); g.num_values()];
    for &o in &ops {
        for &v in &g.op(o).inputs {
            let b = block_of[o.index()];
            let l = &mut last_reader[v.index()];
            *l = Some(l.map_or(b, |x: usize| x.max(b)));
            if readers[v.index()].last() != Some(&b) {
                readers[v.index()].push(b);
            }
        }
    }
    let mut sends: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    let mut weights = vec![0u64; n];
    let mut inputs = vec![0u64; n];
    let mut shared = Vec::new();
    for v in g.value_ids() {
        let value = g.value(v);
        match value.kind {
            ValueKind::Computed { producer } => {
                let p = block_of[producer.index()];
                if let Some(c) = last_reader[v.index()].filter(|&c| c > p) {
                    sends[p].push((c, value.ty.size_bytes().unwrap_or(u64::MAX)));
                }
            }
            ValueKind::Weight { .. } => {
                let bytes = weight_bytes(g, v, weight_dtype);
                match readers[v.index()].as_slice() {
                    [] => {}
                    [b] => weights[*b] = weights[*b].saturating_add(bytes),
                    many => shared.push(Shared {
                        bytes,
                        readers: many.to_vec(),
                    }),
                }
            }
            ValueKind::Input => {
                let bytes = value.ty.size_bytes().unwrap_or(u64::MAX);
                match readers[v.index()].as_slice() {
                    [] => {}
                    [b] => inputs[*b] = inputs[*b].saturating_add(bytes),
                    many => shared.push(Shared {
                        bytes,
                        readers: many.to_vec(),
                    }),
                }
            }
        }
    }
    // The bytes crossing the cut after each block: the op-level cut at the block's end.
    let cut_bytes: Vec<u64> = {
        let order: Vec<OpId> = runs.iter().flat_map(|(_, m)| m.iter().copied()).collect();
        let at = cut_bytes_at(g, &order);
        let mut end = 0usize;
        runs.iter()
            .map(|(_, m)| {
                end += m.len();
                at[end]
            })
            .collect()
    };
    let is_output: Vec<bool> = {
        let mut o = vec![false; g.num_values()];
        for &v in g.outputs() {
            o[v.index()] = true;
        }
        o
    };
    let sizes = group_sizes(target.topology.chips_per_node);
    // The last op reading each value.
    let mut last_op: Vec<Option<OpId>> = vec![None; g.num_values()];
    for &o in &ops {
        for &v in &g.op(o).inputs {
            last_op[v.index()] = Some(o);
        }
    }
    let mut solved: BTreeMap<(String, u32), GroupCost> = BTreeMap::new();
    let chain = runs
        .into_iter()
        .enumerate()
        .map(|(b, (name, members))| {
            // A weight or input is this block's own when no other block reads it; a result
            // leaves the block when a later block (or the caller) reads it.
            let counted = |v: ValueId| readers[v.index()].len() <= 1;
            let read_outside =
                |v: ValueId| is_output[v.index()] || last_reader[v.index()].is_some_and(|r| r > b);
            let stored = |v: ValueId| match g.value(v).kind {
                ValueKind::Weight { .. } => weight_bytes(g, v, weight_dtype),
                _ => g.value(v).ty.size_bytes().unwrap_or(u64::MAX),
            };
            let sig = signature(g, &members, &counted, &read_outside);
            let groups: Vec<GroupCost> = sizes
                .iter()
                .map(|&ways| {
                    solved
                        .entry((sig.clone(), ways))
                        .or_insert_with(|| {
                            let ctx = BlockContext {
                                counted: &counted,
                                read_outside: &read_outside,
                                stored_bytes: &stored,
                                weight_dtype,
                            };
                            let s = shard(g, &members, u64::from(ways), target, &ctx);
                            GroupCost {
                                ways,
                                cycles: s.cycles,
                                bytes_per_chip: s.bytes_per_chip,
                                activation_per_chip: s.activation_per_chip,
                                outputs_per_chip: s.outputs_per_chip,
                                tasks: s.tasks,
                                method: s.method,
                                heuristic_cycles: s.heuristic_cycles,
                                lower_bound: s.lower_bound,
                                choice: s.choice_index,
                            }
                        })
                        .clone()
                })
                .collect();
            let mut busy = [0u64; 3];
            let mut activation = 0u64;
            let mut tiled = Vec::new();
            // ASSUMPTION: a tile may take a quarter of SRAM, leaving the rest for weights, the
            // next tile's operands (double buffering) and transfers.
            let budget = target.sram.bytes / 4;
            // Live bytes in program order: each result from its op until its last reader in
            // the block (kept to the end when a later block or the caller reads it); a tiled op's
            // result counts at its tile's share.
            let mut live = 0u64;
            let mut size_of: BTreeMap<ValueId, u64> = BTreeMap::new();
            for &o in &members {
                let work = work_of(g, o);
                let occupancy = target.cost(&work).map_or(u64::MAX, |c| c.occupancy);
                let k = match work.unit_kind() {
                    UnitKind::Mxm => 0,
                    UnitKind::Vxm => 1,
                    UnitKind::Sxm => 2,
                };
                busy[k] = busy[k].saturating_add(occupancy);
                let (working, tiling) = tiled_working_set(g, o, budget);
                let tiled_op = tiling.is_some();
                tiled.extend(tiling);
                activation = activation.max(working);
                for &v in &g.op(o).outputs {
                    let full = g.value(v).ty.size_bytes().unwrap_or(u64::MAX);
                    let bytes = if tiled_op { full.min(working) } else { full };
                    size_of.insert(v, bytes);
                    live = live.saturating_add(bytes);
                }
                activation = activation.max(live);
                for &v in &g.op(o).inputs {
                    let done_here = last_op[v.index()] == Some(o)
                        && !is_output[v.index()]
                        && last_reader[v.index()].is_none_or(|r| r <= b);
                    if done_here {
                        if let Some(bytes) = size_of.remove(&v) {
                            live = live.saturating_sub(bytes);
                        }
                    }
                }
            }
            let counts = [target.mxm.count, target.vxm.count, target.sxm.count];
            let compute_cycles = busy
                .iter()
                .zip(counts)
                .map(|(&b, c)| b.div_ceil(u64::from(c).max(1)))
                .max()
                .unwrap_or(0);
            let count = members.len();
            let output_bytes = members
                .iter()
                .flat_map(|&o| g.op(o).outputs.iter())
                .filter(|v| is_output[v.index()])
                .fold(0u64, |a, &v| {
                    a.saturating_add(g.value(v).ty.size_bytes().unwrap_or(u64::MAX))
                });
            Block {
                name,
                ops: members,
                compute_cycles,
                weight_bytes: weights[b],
                input_bytes: inputs[b],
                activation_bytes: activation,
                output_bytes,
                tiled,
                cut_bytes: cut_bytes[b],
                sends: std::mem::take(&mut sends[b]),
                parts: vec![count],
                groups,
            }
        })
        .collect();
    (chain, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_keys_follow_exporter_names() {
        assert_eq!(
            layer_key("/model/layers.12/self_attn/MatMul").as_deref(),
            Some("layers.12")
        );
        assert_eq!(layer_key("/transformer/h.3/attn/Split").as_deref(), Some("h.3"));
        assert_eq!(
            layer_key("/encoder/layer.5/output/Add").as_deref(),
            Some("layer.5")
        );
        assert_eq!(layer_key("node_layers_7_mlp").as_deref(), Some("layers.7"));
        assert_eq!(layer_key("/model/embed_tokens/Gather"), None);
        assert_eq!(layer_key("/h/Add"), None);
    }

    #[test]
    fn sub_blocks_follow_the_module_under_the_layer() {
        assert_eq!(
            sub_block_key("/model/layers.12/self_attn/q_proj/MatMul").as_deref(),
            Some("layers.12/self_attn")
        );
        assert_eq!(
            sub_block_key("/model/layers.12/Add_1").as_deref(),
            Some("layers.12")
        );
        assert_eq!(
            sub_block_key("/transformer/h.3/mlp/c_fc/MatMul").as_deref(),
            Some("h.3/mlp")
        );
        assert_eq!(sub_block_key("node_layers_7_mlp").as_deref(), Some("layers.7"));
        assert_eq!(sub_block_key("/model/embed_tokens/Gather"), None);
    }
}

#[cfg(test)]
mod cut_tests {
    use super::*;
    use lpuc_ir::{BinaryOp, OpKind, Provenance, TensorType};

    fn prov(node: &str) -> Provenance {
        Provenance {
            node: node.into(),
            op_type: "op".into(),
        }
    }

    /// Two pre-norm layers (see [`layers`]).
    fn two_layers() -> Graph {
        layers(2)
    }

    /// `n` pre-norm layers: `x + attn(norm(x))`, then `h + mlp(norm(h))`, with the residual adds
    /// and norms named directly under the layer, as exporters name them.
    fn layers(n: usize) -> Graph {
        let mut g = Graph::new("t");
        let ty = || TensorType::new(DType::F32, vec![1, 64, 256]);
        let tokens = g.add_input("tokens", ty());
        let embed = g.add_weight("embed", TensorType::new(DType::F32, vec![256, 256]), "embed");
        let mut x = g
            .add_op(OpKind::MatMul, vec![tokens, embed], "x", prov("/embed/MatMul"))
            .unwrap();
        for l in 0..n {
            let wa = g.add_weight(
                format!("wa{l}"),
                TensorType::new(DType::F32, vec![256, 256]),
                "wa",
            );
            let wm = g.add_weight(
                format!("wm{l}"),
                TensorType::new(DType::F32, vec![256, 256]),
                "wm",
            );
            let gain = g.add_weight(format!("g{l}"), TensorType::new(DType::F32, vec![256]), "g");
            let mul = OpKind::Binary(BinaryOp::Mul);
            let add = OpKind::Binary(BinaryOp::Add);
            let n1 = g
                .add_op(
                    mul.clone(),
                    vec![x, gain],
                    "n1",
                    prov(&format!("/layers.{l}/input_layernorm/Mul")),
                )
                .unwrap();
            let a = g
                .add_op(
                    OpKind::MatMul,
                    vec![n1, wa],
                    "a",
                    prov(&format!("/layers.{l}/self_attn/MatMul")),
                )
                .unwrap();
            let h = g
                .add_op(add.clone(), vec![x, a], "h", prov(&format!("/layers.{l}/Add")))
                .unwrap();
            let n2 = g
                .add_op(
                    mul,
                    vec![h, gain],
                    "n2",
                    prov(&format!("/layers.{l}/post_attention_layernorm/Mul")),
                )
                .unwrap();
            let m = g
                .add_op(
                    OpKind::MatMul,
                    vec![n2, wm],
                    "m",
                    prov(&format!("/layers.{l}/mlp/MatMul")),
                )
                .unwrap();
            x = g
                .add_op(add, vec![h, m], "y", prov(&format!("/layers.{l}/Add_1")))
                .unwrap();
        }
        g.add_output(x);
        g
    }

    #[test]
    fn a_residual_add_closes_the_block_before_it_so_a_cut_carries_the_stream_once() {
        let g = two_layers();
        let (chain, _) = blocks(&g, &Target::lpu_v1(), None);
        let names: Vec<&str> = chain.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "(before layers)",
                "layers.0/self_attn",
                "layers.0/mlp",
                "layers.1/self_attn",
                "layers.1/mlp"
            ]
        );
        let stream = 64 * 256 * 4;
        // The attention block ends with its residual add; the norm after it opens the MLP.
        let kinds =
            |b: &Block| -> Vec<String> { b.ops.iter().map(|&o| g.op(o).kind.name().to_string()).collect() };
        assert_eq!(kinds(&chain[1]), ["Mul", "MatMul", "Add"]);
        assert_eq!(kinds(&chain[2]), ["Mul", "MatMul", "Add"]);
        // Only the residual stream crosses each cut (before: the stream and the add's other
        // operand, twice the bytes).
        for b in &chain[..4] {
            assert_eq!(b.cut_bytes, stream, "{}", b.name);
            assert_eq!(b.sends.len(), 1, "{}", b.name);
        }
        assert_eq!(chain[1].sends, [(2, stream)]);
    }

    #[test]
    fn one_named_layer_is_enough_to_place_by_sub_modules() {
        // Not one block per op: the scheduler tiles a block's ops as the placer sized them, and
        // one-op blocks hand every value over in the boundary layout, so its tiled regions could
        // not be the ones the placer assumed (a one-layer 70B at 4096 tokens on 16 chips needed
        // 352 MiB where the placer put 207).
        let g = layers(1);
        let (chain, _) = blocks(&g, &Target::lpu_v1(), None);
        let names: Vec<&str> = chain.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["(before layers)", "layers.0/self_attn", "layers.0/mlp"]);
    }

    #[test]
    fn cut_bytes_count_results_between_producer_and_last_reader() {
        let g = two_layers();
        let order: Vec<OpId> = g.op_ids().collect();
        let cuts = cut_bytes_at(&g, &order);
        let stream = 64 * 256 * 4;
        // Nothing before the first op or after the last (a graph output is not read again).
        assert_eq!(cuts[0], 0);
        assert_eq!(cuts[order.len()], 0);
        // Before layer 0's first add (op 3): x and the attention's result; after it, h alone.
        assert_eq!(cuts[3], 2 * stream);
        assert_eq!(cuts[4], stream);
        // Between the norm and the MLP matmul: h and the normed value.
        assert_eq!(cuts[5], 2 * stream);
    }
}
