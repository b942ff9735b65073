//! Tensor-wise placement: how each op of a block runs on a group of chips.
//!
//! Every op picks a strategy ([`strategies`]: replicated, split along a result axis, or split along
//! a matmul's contraction); values change layout between ops by collectives priced from the link
//! model ([`layout`]). The choice minimises the block's compute plus collectives with a chip's
//! share of the block's weights bounded ([`problem`]). Two solvers: an exact ILP ([`ilp`]) for blocks
//! small enough to prove, and a greedy heuristic ([`greedy`]) always; the cheaper valid answer wins
//! (the ILP's is never worse when it answers, since the heuristic's choice is feasible for it).
//!
//! Time is not all a chip pays: the fastest choice may keep a large result whole on every chip
//! (a 16-way attention that gathers its queries whole, 285 MB a chip on the 70B at 4096 tokens)
//! where a split costs about the same. So the block is solved a second time without the
//! strategies that leave a result above the tiling threshold whole where the op can split it
//! ([`Problem::without_large_copies`]), and that *lean* answer is kept when a chip holds less
//! under it (weights plus activation peak) and it costs at most a fiftieth more time.
//! On a transformer layer this rediscovers Megatron: projections split by columns, the next
//! matmul by rows, one reduction of partial sums per sub-block.

pub mod greedy;
pub mod ilp;
pub mod layout;
pub mod problem;
pub mod strategies;

use layout::{Collective, Layout};
use lpuc_ir::{Graph, OpId};
use lpuc_target::Target;
pub use problem::BlockContext;
use problem::Problem;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which solver decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Proven optimal by the ILP.
    Ilp,
    /// The ILP's best within its node limit, better than the heuristic but not proven optimal.
    IlpBounded,
    /// The heuristic (the block is too big for the ILP, or the solver failed).
    Heuristic,
    /// One chip: every op runs whole, nothing to choose.
    Single,
}

/// A block's sharding on a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sharding {
    pub ways: u64,
    /// The strategy name chosen per op, in block order.
    pub choice: Vec<String>,
    #[serde(skip)]
    pub choice_index: Vec<usize>,
    /// Compute plus collectives, in cycles.
    pub cycles: u64,
    /// The heuristic's cycles on the same block (equal to `cycles` when it decided).
    pub heuristic_cycles: u64,
    /// A lower bound on any choice's cycles: every op at its cheapest strategy, no collective
    /// (equal to `cycles` only when nothing needs moving).
    pub lower_bound: u64,
    /// Weight and input bytes a chip holds.
    pub bytes_per_chip: u64,
    /// Activation bytes a chip holds at once (see `Problem::activation_peak`).
    pub activation_per_chip: u64,
    /// Graph-output bytes a chip keeps to the end of the program, in the layout the block leaves
    /// them (partial sums reduced to the boundary layout, as the scheduler does).
    pub outputs_per_chip: u64,
    /// An estimate of the instructions and transfers the scheduler makes for the block (see
    /// [`task_estimate`]): what the program's size grows by.
    pub tasks: u64,
    pub method: Method,
    pub collectives: BTreeMap<Collective, u64>,
}

/// Shard `ops` (one block, program order) over `ways` chips, in `ctx`.
pub fn shard(g: &Graph, ops: &[OpId], ways: u64, target: &Target, ctx: &BlockContext) -> Sharding {
    let p = Problem::new(g, ops, ways, target, ctx);
    let (tile_above, _) = crate::scheduler::system::tiles::thresholds(target);
    let fast = measured(g, ops, &p, solve(&p), target);
    let Some(lean_problem) = p.without_large_copies(g, tile_above) else {
        return fast;
    };
    let lean = measured(g, ops, &p, solve(&lean_problem), target);
    let footprint = |s: &Sharding| s.bytes_per_chip.saturating_add(s.activation_per_chip);
    // The lean choice wins when it holds less and costs at most a fiftieth more time.
    let lean_wins =
        footprint(&lean) < footprint(&fast) && lean.cycles <= fast.cycles.saturating_add(fast.cycles / 50);
    if lean_wins {
        // Its solvers ran on the narrower problem; the bound on any choice is the full one's.
        Sharding {
            lower_bound: fast.lower_bound.min(lean.lower_bound),
            ..lean
        }
    } else {
        fast
    }
}

/// `s` with what the scheduler will make of it measured: the graph outputs a chip keeps, the
/// instructions and transfers, and the activation peak.
fn measured(g: &Graph, ops: &[OpId], p: &Problem, mut s: Sharding, target: &Target) -> Sharding {
    let ways = p.ways;
    // Results the scheduler will run in tiles (the same regions it forms) count at their tiles'
    // size; every other result whole, in its layout.
    let (tile_above, tile_bytes) = crate::scheduler::system::tiles::thresholds(target);
    let chosen: Vec<strategies::Strategy> = s
        .choice_index
        .iter()
        .enumerate()
        .map(|(k, &c)| p.strategies[k][c].clone())
        .collect();
    // Only results that stay inside their region exist a tile at a time; one read outside it is
    // assembled whole.
    let regions = crate::scheduler::system::tiles::regions(g, ops, &chosen, ways, tile_above, tile_bytes);
    // Members whose results exist a tile at a time.
    let mut tiled = std::collections::BTreeSet::new();
    // Member -> its region's tile count, for every member.
    let in_region: BTreeMap<usize, u64> = regions
        .iter()
        .flat_map(|r| r.members.iter().map(|&k| (k, r.tiles)))
        .collect();
    for r in &regions {
        let members: std::collections::BTreeSet<usize> = r.members.iter().copied().collect();
        for &k in &r.members {
            let v = g.op(ops[k]).outputs[0];
            // A one-op block (a graph without layer names) is tiled by the scheduler together
            // with its neighbours in the stage, so its result stays in tiles past the block.
            let leaves_region = (p.leaves[k].is_some() && ops.len() > 1)
                || g.outputs().contains(&v)
                || p.edges
                    .iter()
                    .any(|e| e.producer == k && !members.contains(&e.consumer));
            if !leaves_region {
                tiled.insert(k);
            }
        }
    }
    s.outputs_per_chip = ops
        .iter()
        .zip(&chosen)
        .flat_map(|(&o, st)| g.op(o).outputs.iter().enumerate().map(move |(r, &v)| (v, r, st)))
        .filter(|(v, _, _)| g.outputs().contains(v))
        .map(|(v, r, st)| {
            let ty = &g.value(v).ty;
            let bytes = ty.size_bytes().unwrap_or(u64::MAX);
            let layout = match (r, st.output) {
                (0, Layout::Partial) => problem::boundary_layout(ty.shape.dims(), ways),
                (0, l) => l,
                _ => Layout::Replicated,
            };
            match layout {
                Layout::Split(_) => bytes.div_ceil(ways),
                _ => bytes,
            }
        })
        .fold(0u64, u64::saturating_add);
    // Operands a member reads along its tile axis: its tiles fetch them a slice at a time.
    // Operand -> the axis of it the member's tiles slice.
    let mut sliced = BTreeMap::new();
    for r in &regions {
        for (&k, &axis) in r.members.iter().zip(&r.axis) {
            if let Some(along) = crate::scheduler::system::tiles::split_along(g, ops[k], axis) {
                for (i, l) in along.inputs.iter().enumerate() {
                    if let Layout::Split(x) = *l {
                        sliced.insert((k, i), x);
                    }
                }
            }
        }
    }
    s.tasks = task_estimate(p, &s.choice_index, &regions, &sliced);
    let sliced: std::collections::BTreeSet<(usize, usize)> = sliced.into_keys().collect();
    s.activation_per_chip = p.activation_peak(g, &s.choice_index, &tiled, &in_region, &sliced);
    s
}

/// An estimate of the instructions and transfers (tasks) the scheduler makes for `choice`.
///
/// Every op runs on every chip of the group, once per tile in a tiled region. Every change of
/// layout inside the block, at its edges and of partial sums leaving it is one exchange among the
/// group (`ways * (ways - 1)` transfers, each chip sending to each other directly, and an
/// assembly on each chip; an all-reduce two). A tiled region's member reads an operand from
/// outside the region whole, fetched once, unless it reads it along its tile axis (`sliced`,
/// with that axis): then each tile fetches its slice, from the one chip holding it when the value
/// is split along that axis (`ways` transfers a tile), by an exchange otherwise. Partial sums
/// leaving a region are reduced tile by tile. Edges between two members of one region need none (the region's axis flows through).
/// Moves between stages are not counted.
pub fn task_estimate(
    p: &Problem,
    choice: &[usize],
    regions: &[crate::scheduler::system::tiles::Region],
    sliced: &BTreeMap<(usize, usize), usize>,
) -> u64 {
    let per_exchange = p.ways.saturating_mul(p.ways.saturating_sub(1));
    let mut region_of: BTreeMap<usize, (usize, u64)> = BTreeMap::new();
    for (r, region) in regions.iter().enumerate() {
        for &m in &region.members {
            region_of.insert(m, (r, region.tiles));
        }
    }
    let times = |k: usize| region_of.get(&k).map_or(1, |&(_, t)| t);
    // Exchanges a change of layout takes: an all-reduce is a reduce-scatter and a gather.
    let moves = |from: Layout, to: Layout| match Collective::between(from, to) {
        layout::Change::By(Collective::AllReduce) => 2,
        layout::Change::By(_) => 1,
        _ => 0,
    };
    let mut exchanges = 0u64;
    // Transfers of one-source fetches (a slice from the chip that holds it), outside exchanges.
    let mut fetched = 0u64;
    let mut fetch = |from: Layout, k: usize, input: usize, exchanges: &mut u64| {
        let n = moves(from, p.strategies[k][choice[k]].inputs[input]);
        let along = sliced.get(&(k, input)).copied();
        if along.is_none() {
            // Read whole by every tile: fetched once.
            *exchanges = exchanges.saturating_add(n);
        } else if from == Layout::Split(along.unwrap_or(usize::MAX)) {
            fetched = fetched.saturating_add((n * times(k)).saturating_mul(p.ways));
        } else {
            *exchanges = exchanges.saturating_add(n * times(k));
        }
    };
    for e in &p.edges {
        let same_region = matches!(
            (region_of.get(&e.producer), region_of.get(&e.consumer)),
            (Some(a), Some(b)) if a.0 == b.0
        );
        let from = p.strategies[e.producer][choice[e.producer]].output;
        if same_region {
            continue;
        }
        if from == Layout::Partial && region_of.contains_key(&e.producer) {
            // Reduced tile by tile as the region makes them.
            let to = p.strategies[e.consumer][choice[e.consumer]].inputs[e.input];
            exchanges = exchanges.saturating_add(moves(from, to) * times(e.producer));
        } else {
            fetch(from, e.consumer, e.input, &mut exchanges);
        }
    }
    for a in &p.arrivals {
        fetch(a.layout, a.consumer, a.input, &mut exchanges);
    }
    for (k, leaves) in p.leaves.iter().enumerate() {
        if let Some(boundary) = *leaves {
            let out = p.strategies[k][choice[k]].output;
            let per_tile = if out == Layout::Partial { times(k) } else { 1 };
            exchanges = exchanges.saturating_add(moves(out, boundary) * per_tile);
        }
    }
    let instructions = (0..p.ops.len()).fold(0u64, |a, k| a.saturating_add(times(k)));
    exchanges
        .saturating_mul(per_exchange.saturating_add(p.ways))
        .saturating_add(fetched)
        .saturating_add(instructions.saturating_mul(p.ways))
}

/// Solve an already built problem with both solvers and keep the better answer.
pub fn solve(p: &Problem) -> Sharding {
    let heuristic = greedy::solve(p);
    let h = p.evaluate(&heuristic);
    // A chip's share: an even split of the counted residents, with 5% and 1 MiB of slack, and
    // never less than what the heuristic found (so the ILP can always match it).
    let counted: u64 = p
        .residents
        .iter()
        .filter(|r| r.counted)
        .fold(0u64, |a, r| a.saturating_add(r.bytes));
    let even = counted.div_ceil(p.ways);
    let budget = even
        .saturating_add(even / 20)
        .saturating_add(1 << 20)
        .max(h.bytes_per_chip);
    let exact = (p.ways > 1).then(|| ilp::solve(p, budget)).flatten();
    let (choice, method, eval) = match exact {
        Some(answer) => {
            let e = p.evaluate(&answer.choice);
            let method = if answer.optimal {
                Method::Ilp
            } else {
                Method::IlpBounded
            };
            if e.cycles <= h.cycles {
                (answer.choice, method, e)
            } else {
                (heuristic, Method::Heuristic, h)
            }
        }
        None => (heuristic, Method::Heuristic, h),
    };
    Sharding {
        ways: p.ways,
        choice: choice
            .iter()
            .enumerate()
            .map(|(k, &s)| p.strategies[k][s].name.clone())
            .collect(),
        collectives: p.collectives(&choice),
        choice_index: choice,
        cycles: eval.cycles,
        heuristic_cycles: h.cycles,
        lower_bound: p.lower_bound(),
        bytes_per_chip: eval.bytes_per_chip,
        activation_per_chip: 0,
        outputs_per_chip: 0,
        tasks: 0,
        method: if p.ways == 1 { Method::Single } else { method },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::{BinaryOp, DType, OpKind, Provenance, TensorType, UnaryOp, ValueId};

    fn prov(n: &str) -> Provenance {
        Provenance {
            node: n.into(),
            op_type: n.into(),
        }
    }

    /// x -> MatMul(W1) -> Relu -> MatMul(W2) -> Add(x): a transformer MLP with its residual.
    fn mlp() -> Graph {
        let mut g = Graph::new("mlp");
        let x = g.add_input("x", TensorType::new(DType::F16, vec![1, 128, 1024]));
        let w1 = g.add_weight("w1", TensorType::new(DType::F16, vec![1024, 4096]), "w1");
        let w2 = g.add_weight("w2", TensorType::new(DType::F16, vec![4096, 1024]), "w2");
        let h = g.add_op(OpKind::MatMul, vec![x, w1], "h", prov("up")).unwrap();
        let a = g
            .add_op(OpKind::Unary(UnaryOp::Relu), vec![h], "a", prov("act"))
            .unwrap();
        let d = g.add_op(OpKind::MatMul, vec![a, w2], "d", prov("down")).unwrap();
        let y = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![d, x], "y", prov("residual"))
            .unwrap();
        g.add_output(y);
        g
    }

    /// `f` on `g`'s ops as one block in the usual context: its weights its own, its graph
    /// outputs read outside, every value at its own size, weights in their own dtype.
    fn in_context<R>(g: &Graph, f: impl FnOnce(&[OpId], &BlockContext) -> R) -> R {
        let ops: Vec<OpId> = g.op_ids().collect();
        let outputs = g.outputs().to_vec();
        let bytes = |v: ValueId| g.value(v).ty.size_bytes().unwrap();
        let weights = |v: ValueId| matches!(g.value(v).kind, lpuc_ir::ValueKind::Weight { .. });
        let out = |v: ValueId| outputs.contains(&v);
        let ctx = BlockContext {
            counted: &weights,
            read_outside: &out,
            stored_bytes: &bytes,
            weight_dtype: None,
        };
        f(&ops, &ctx)
    }

    #[test]
    fn the_mlp_shards_as_megatron_does() {
        let g = mlp();
        let t = Target::lpu_v1();
        let (s, one) = in_context(&g, |ops, ctx| {
            (shard(&g, ops, 8, &t, ctx), shard(&g, ops, 1, &t, ctx))
        });
        assert_eq!(s.method, Method::Ilp);
        // Columns, elementwise on the split, rows (partial sums), then one reduction.
        assert_eq!(s.choice[0], "S2");
        assert_eq!(s.choice[1], "S2");
        assert_eq!(s.choice[2], "K");
        let reductions: u64 = s
            .collectives
            .iter()
            .filter(|(c, _)| matches!(c, Collective::AllReduce | Collective::ReduceScatter))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(reductions, 1, "{:?}", s.collectives);
        // Both weights split eightfold.
        assert_eq!(s.bytes_per_chip, 2 * 1024 * 4096 * 2 / 8);
        assert!(s.cycles <= s.heuristic_cycles);
        // On one chip nothing is split and nothing is sent.
        assert!(one.collectives.is_empty());
        assert!(one.cycles > s.cycles, "eight chips are faster than one");
    }

    /// `mlp` at `tokens` tokens, width `d` and hidden width `4 * d`, in f32.
    fn wide_mlp(tokens: u64, d: u64) -> Graph {
        let mut g = Graph::new("wide");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![1, tokens, d]));
        let w1 = g.add_weight("w1", TensorType::new(DType::F32, vec![d, 4 * d]), "w1");
        let w2 = g.add_weight("w2", TensorType::new(DType::F32, vec![4 * d, d]), "w2");
        let h = g.add_op(OpKind::MatMul, vec![x, w1], "h", prov("up")).unwrap();
        let a = g
            .add_op(OpKind::Unary(UnaryOp::Relu), vec![h], "a", prov("act"))
            .unwrap();
        let y = g.add_op(OpKind::MatMul, vec![a, w2], "y", prov("down")).unwrap();
        g.add_output(y);
        g
    }

    #[test]
    fn tiled_results_count_at_their_regions_tiles() {
        // On one chip the hidden activation [4096, 4096] f32 (64 MiB) is above an eighth of
        // SRAM, so up, act and down run as one region in tiles of rows: the smallest power of
        // two bringing 64 MiB under a thirty-second of SRAM (6.9 MiB) is 16 tiles of 4 MiB.
        let g = wide_mlp(4096, 1024);
        let t = Target::lpu_v1();
        let s = in_context(&g, |ops, ctx| shard(&g, ops, 1, &t, ctx));
        let mib = 1u64 << 20;
        // The peak is at the down projection: two tiles of the activation's result (the one
        // being read and the next, 8 MiB) and the output [4096, 1024] whole (16 MiB: it leaves
        // the region for the caller); the hidden result's tiles are freed once the activation
        // read them. Counted at a tile of the budget (6.9 MiB) instead of the region's 4 MiB,
        // the pair would be 13.75 MiB.
        assert_eq!(s.activation_per_chip, 8 * mib + 16 * mib);
    }

    #[test]
    fn the_lean_problem_drops_only_large_whole_results_that_can_split() {
        let g = wide_mlp(4096, 1024);
        let t = Target::lpu_v1();
        let ops: Vec<OpId> = g.op_ids().collect();
        let p = in_context(&g, |ops, ctx| Problem::new(&g, ops, 8, &t, ctx));
        // Above 32 MiB only the hidden [4096, 4096] f32 results (64 MiB) count as large.
        let lean = p
            .without_large_copies(&g, 32 << 20)
            .expect("something is left out");
        for (k, &o) in ops.iter().enumerate() {
            let large = g.value(g.op(o).outputs[0]).ty.size_bytes().unwrap() > 32 << 20;
            for (s, st) in p.strategies[k].iter().enumerate() {
                let whole = !matches!(st.output, Layout::Split(_));
                let dropped = lean.compute[k][s] == u64::MAX && p.compute[k][s] != u64::MAX;
                assert_eq!(dropped, large && whole, "op {k} strategy {}", st.name);
            }
        }
        // The lean problem still has an answer, and a chip holds no more under it.
        let peak = |choice: &[usize]| {
            p.activation_peak(
                &g,
                choice,
                &Default::default(),
                &BTreeMap::new(),
                &Default::default(),
            )
        };
        let (fast, leaner) = (peak(&greedy::solve(&p)), peak(&greedy::solve(&lean)));
        assert!(leaner <= fast, "{leaner} > {fast}");
        // Nothing is large on one token.
        let small = wide_mlp(1, 1024);
        let p = in_context(&small, |ops, ctx| Problem::new(&small, ops, 8, &t, ctx));
        assert!(p.without_large_copies(&small, 32 << 20).is_none());
    }

    #[test]
    fn an_arriving_value_read_whole_is_held_from_its_first_reader_to_its_last() {
        // `x` is made before the block and arrives split by rows; the block's two column-split
        // matmuls read it whole, so each chip gathers all of it once and keeps it until the
        // second has run.
        let (tokens, d) = (64u64, 32u64);
        let mut g = Graph::new("gathered");
        let inp = g.add_input("inp", TensorType::new(DType::F32, vec![1, tokens, d]));
        let x = g
            .add_op(OpKind::Unary(UnaryOp::Relu), vec![inp], "x", prov("norm"))
            .unwrap();
        let w1 = g.add_weight("w1", TensorType::new(DType::F32, vec![d, 4 * d]), "w1");
        let w2 = g.add_weight("w2", TensorType::new(DType::F32, vec![d, 4 * d]), "w2");
        let h1 = g.add_op(OpKind::MatMul, vec![x, w1], "h1", prov("gate")).unwrap();
        let h2 = g.add_op(OpKind::MatMul, vec![x, w2], "h2", prov("up")).unwrap();
        let y = g
            .add_op(OpKind::Binary(BinaryOp::Mul), vec![h1, h2], "y", prov("mul"))
            .unwrap();
        g.add_output(y);
        let block: Vec<OpId> = g.op_ids().skip(1).collect();
        let t = Target::lpu_v1();
        let bytes = |v: ValueId| g.value(v).ty.size_bytes().unwrap();
        let weights = |v: ValueId| matches!(g.value(v).kind, lpuc_ir::ValueKind::Weight { .. });
        let out = |v: ValueId| v == y;
        let ctx = BlockContext {
            counted: &weights,
            read_outside: &out,
            stored_bytes: &bytes,
            weight_dtype: None,
        };
        let p = Problem::new(&g, &block, 8, &t, &ctx);
        assert_eq!(p.arrivals.len(), 2, "both matmuls read x from before the block");
        let columns = |k: usize| {
            p.strategies[k]
                .iter()
                .position(|st| st.output == Layout::Split(2) && st.inputs[0] == Layout::Replicated)
                .expect("a column split")
        };
        let on_columns = p.strategies[2]
            .iter()
            .position(|st| st.output == Layout::Split(2) && st.inputs == [Layout::Split(2); 2])
            .expect("elementwise on the columns");
        let choice = [columns(0), columns(1), on_columns];
        let peak = p.activation_peak(
            &g,
            &choice,
            &Default::default(),
            &BTreeMap::new(),
            &Default::default(),
        );
        // At the second matmul: x whole, and both results at an eighth each.
        let x_bytes = tokens * d * 4;
        let hidden_share = tokens * 4 * d * 4 / 8;
        assert_eq!(peak, x_bytes + 2 * hidden_share);
    }
}
