//! Tiling in time: a run of ops whose results are too large for a chip's SRAM runs as tiles, one
//! slice of an axis after another, so each large result exists only a tile at a time.
//!
//! A *region* grows from an op whose result (on one chip of its group) exceeds the tile budget:
//! every op of the stage reading a large result of the region joins it, so the large values
//! never leave it (attention's scores, scaled, masked and normalised, end in the product with V;
//! an MLP's wide hidden activation ends in its down projection). The region needs one axis that
//! flows through all of it: the producer's result axis (the rows: a query block, a sequence
//! chunk) must map, through each member's split strategies, to an axis of the member's result.
//! Inputs from outside the region are read whole by every tile; results leaving the region are
//! assembled from their tiles. The tile count is the smallest divisor of the axis (on one chip)
//! that brings every large result's tile under the budget, so every tile does exactly the same
//! work: the member's work with the dim that axis feeds divided by the count.

use super::super::work::work_of;
use crate::placer::sharding::layout::Layout;
use crate::placer::sharding::strategies::{strategies, Strategy};
use lpuc_ir::{Graph, OpId, ValueId, ValueKind};
use lpuc_target::Work;
use std::collections::{BTreeMap, BTreeSet};

/// When a result is tiled, and how large a tile may be, for `target`: results above an eighth of
/// SRAM on a chip run in tiles of at most a thirty-second (ASSUMPTION: a region keeps a few
/// tiles' results live at once next to the weights). The placer sizes stages with the same rule.
pub fn thresholds(target: &lpuc_target::Target) -> (u64, u64) {
    (target.sram.bytes / 8, target.sram.bytes / 32)
}

/// A run of ops executed tile by tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Indices into the stage's op list, ascending.
    pub members: Vec<usize>,
    /// The result axis each member is tiled along.
    pub axis: Vec<usize>,
    pub tiles: u64,
    /// The stage op index where the region runs (its first or its last member).
    pub at: usize,
}

/// Bytes of `v` one chip holds when its producer runs `st` over `ways` chips.
fn per_chip_bytes(g: &Graph, v: ValueId, layout: Layout, ways: u64) -> u64 {
    let bytes = g.value(v).ty.size_bytes().unwrap_or(u64::MAX);
    match layout {
        Layout::Split(_) => bytes / ways.max(1),
        _ => bytes,
    }
}

/// Length along `axis` of the part of a value one chip holds.
fn chip_len(dims: &[u64], layout: Layout, axis: usize, ways: u64) -> u64 {
    match layout {
        Layout::Split(a) if a == axis => dims[axis] / ways.max(1),
        _ => dims[axis],
    }
}

/// The regions of a stage's ops (`ops[k]` runs `chosen[k]` over `ways` chips) whose results
/// larger than `large_above` bytes on a chip must be tiled to at most `budget` bytes a tile; ops
/// that cannot be tiled are left alone.
pub fn regions(
    g: &Graph,
    ops: &[OpId],
    chosen: &[Strategy],
    ways: u64,
    large_above: u64,
    budget: u64,
) -> Vec<Region> {
    let scope = Scope::new(g, ops, chosen, ways, large_above, budget);
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut out = Vec::new();
    for (start, &o) in ops.iter().enumerate() {
        if taken.contains(&start)
            || !(scope.large(start) || scope.large_operand(start) > 0)
            || g.op(o).outputs.len() != 1
        {
            continue;
        }
        if let Some(region) = grow(&scope, start) {
            if region.members.iter().all(|m| !taken.contains(m)) {
                taken.extend(region.members.iter().copied());
                out.push(region);
            }
        }
    }
    out
}

/// The ops regions are found among, with what growing a region asks of them.
struct Scope<'a> {
    g: &'a Graph,
    ops: &'a [OpId],
    index: BTreeMap<OpId, usize>,
    chosen: &'a [Strategy],
    ways: u64,
    large_above: u64,
    budget: u64,
    /// Results of these ops read by an op outside them, or graph outputs (found in one pass).
    read_after: BTreeSet<ValueId>,
}

impl<'a> Scope<'a> {
    fn new(
        g: &'a Graph,
        ops: &'a [OpId],
        chosen: &'a [Strategy],
        ways: u64,
        large_above: u64,
        budget: u64,
    ) -> Self {
        let index: BTreeMap<OpId, usize> = ops.iter().enumerate().map(|(k, &o)| (o, k)).collect();
        let mut read_after: BTreeSet<ValueId> = g.outputs().iter().copied().collect();
        for o in g.op_ids().filter(|o| !index.contains_key(o)) {
            read_after.extend(g.op(o).inputs.iter().copied());
        }
        Scope {
            g,
            ops,
            index,
            chosen,
            ways,
            large_above,
            budget,
            read_after,
        }
    }

    /// Whether op `k`'s result is large on one chip.
    fn large(&self, k: usize) -> bool {
        let op = self.g.op(self.ops[k]);
        op.outputs.len() == 1
            && per_chip_bytes(self.g, op.outputs[0], self.chosen[k].output, self.ways) > self.large_above
    }

    /// The largest computed operand op `k` needs whole (or as partial sums) and large on each
    /// chip, or 0: such an op starts a region too, its tiles fetching that operand a slice at a
    /// time.
    fn large_operand(&self, k: usize) -> u64 {
        let g = self.g;
        let op = g.op(self.ops[k]);
        op.inputs
            .iter()
            .zip(&self.chosen[k].inputs)
            .filter(|(&v, _)| matches!(g.value(v).kind, ValueKind::Computed { .. }))
            .map(|(&v, &l)| per_chip_bytes(g, v, l, self.ways))
            .filter(|&b| b > self.large_above)
            .max()
            .unwrap_or(0)
    }
}

/// The strategy running op `o` split along its result axis `axis`, for any split count dividing
/// the axis (the mapping of inputs does not depend on the count).
pub fn split_along(g: &Graph, o: OpId, axis: usize) -> Option<Strategy> {
    let op = g.op(o);
    if op.outputs.len() != 1 {
        return None;
    }
    let probe = g
        .value(op.outputs[0])
        .ty
        .shape
        .dims()
        .get(axis)
        .copied()
        .filter(|&d| d > 1)?;
    strategies(g, o, probe)
        .into_iter()
        .find(|s| s.output == Layout::Split(axis))
}

/// The region started by op `start`, along the rows of its result (its second-to-last axis, or
/// its only axis), if one axis flows through every member: readers of a large result join it
/// (forward), and so do the producers of large operands a member reads (backward).
fn grow(scope: &Scope, start: usize) -> Option<Region> {
    let Scope {
        g,
        ops,
        ref index,
        chosen,
        ways,
        budget,
        ..
    } = *scope;
    let large = |k: usize| scope.large(k);
    let large_operand = |k: usize| scope.large_operand(k);
    let rank = g.value(g.op(ops[start]).outputs[0]).ty.shape.rank();
    if rank == 0 {
        return None;
    }
    let start_axis = rank.saturating_sub(2);
    let mut axis: BTreeMap<usize, usize> = BTreeMap::from([(start, start_axis)]);
    let mut frontier = vec![start];
    let join =
        |k: usize, a: usize, axis: &mut BTreeMap<usize, usize>, frontier: &mut Vec<usize>| -> Option<()> {
            match axis.get(&k) {
                Some(&have) if have != a => None,
                Some(_) => Some(()),
                None => {
                    axis.insert(k, a);
                    frontier.push(k);
                    Some(())
                }
            }
        };
    while let Some(k) = frontier.pop() {
        let o = ops[k];
        let split = split_along(g, o, axis[&k])?;
        // Backward: large operands made in this stage come in tiles along the axis read.
        for (i, &v) in g.op(o).inputs.iter().enumerate() {
            if let ValueKind::Computed { producer } = g.value(v).kind {
                if let Some(&p) = index.get(&producer) {
                    if large(p) {
                        match split.inputs[i] {
                            Layout::Split(x) => join(p, x, &mut axis, &mut frontier)?,
                            _ => return None,
                        }
                    }
                }
            }
        }
        // Forward: every reader in the stage of a large result joins, along the axis it maps
        // that input to. Partial sums and results read by later stages leave the region whole
        // (assembled from the tiles).
        if large(k) && chosen[k].output != Layout::Partial && !scope.read_after.contains(&g.op(o).outputs[0])
        {
            let v = g.op(o).outputs[0];
            let a = axis[&k];
            for (&c_op, &c) in index.range(o..) {
                if c_op == o {
                    continue;
                }
                let reads: Vec<usize> = g
                    .op(c_op)
                    .inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, &x)| x == v)
                    .map(|(i, _)| i)
                    .collect();
                if !reads.is_empty() {
                    let c_axis = member_axis(g, c_op, &reads, a)?;
                    join(c, c_axis, &mut axis, &mut frontier)?;
                }
            }
        }
    }
    // Every edge between members must follow the axes and need no collective (the producer's
    // layout over the group is the one the reader runs on).
    for (&k, &a) in &axis {
        let split = split_along(g, ops[k], a)?;
        for (i, &v) in g.op(ops[k]).inputs.iter().enumerate() {
            if let ValueKind::Computed { producer } = g.value(v).kind {
                if let Some(p) = index.get(&producer).filter(|p| axis.contains_key(p)) {
                    if split.inputs[i] != Layout::Split(axis[p]) || chosen[*p].output != chosen[k].inputs[i] {
                        return None;
                    }
                }
            }
        }
    }
    // Where the region runs: at its first member when everything its members read from outside
    // is made before it; else at its last member when nothing outside reads a member's result
    // before that.
    let first = *axis.keys().next()?;
    let last = *axis.keys().next_back()?;
    let inputs_ready = axis.keys().all(|&k| {
        g.op(ops[k]).inputs.iter().all(|&v| match g.value(v).kind {
            ValueKind::Computed { producer } => index
                .get(&producer)
                .is_none_or(|p| axis.contains_key(p) || *p < first),
            _ => true,
        })
    });
    let no_early_reader = axis.keys().all(|&k| {
        let v = g.op(ops[k]).outputs[0];
        (0..last).all(|r| axis.contains_key(&r) || !g.op(ops[r]).inputs.contains(&v))
    });
    let at = if inputs_ready {
        first
    } else if no_early_reader {
        last
    } else {
        return None;
    };
    // The tile count: the smallest divisor of every member's axis (on one chip) bringing every
    // large result's tile under the budget.
    let mut need = 1u64;
    let mut lens = Vec::new();
    for (&k, &a) in &axis {
        let op = g.op(ops[k]);
        let d = g.value(op.outputs[0]).ty.shape.dims().to_vec();
        lens.push(chip_len(&d, chosen[k].output, a, ways));
        if large(k) {
            let bytes = per_chip_bytes(g, op.outputs[0], chosen[k].output, ways);
            need = need.max(bytes.div_ceil(budget.max(1)));
        }
        need = need.max(large_operand(k).div_ceil(budget.max(1)));
    }
    let shortest = lens.iter().copied().min()?;
    let tiles = (need..=shortest).find(|t| lens.iter().all(|l| l % t == 0))?;
    if tiles <= 1 {
        return None;
    }
    // Every member's work must divide exactly along its axis.
    for (&k, &a) in &axis {
        tile_work(g, ops[k], &chosen[k].work, a, tiles)?;
    }
    Some(Region {
        members: axis.keys().copied().collect(),
        axis: axis.values().copied().collect(),
        tiles,
        at,
    })
}

/// The result axis of op `o` that its inputs `reads` (all the same value) follow when that
/// value is split along `a`: a split strategy of `o` mapping each of those inputs to `a`.
fn member_axis(g: &Graph, o: OpId, reads: &[usize], a: usize) -> Option<usize> {
    if g.op(o).outputs.len() != 1 || !matches!(g.value(g.op(o).outputs[0]).kind, ValueKind::Computed { .. }) {
        return None;
    }
    let dims = g.value(g.op(o).inputs[reads[0]]).ty.shape.dims().to_vec();
    // Any split count dividing the axis finds the same mapping; use the axis length itself.
    let probe = dims.get(a).copied().filter(|&d| d > 1)?;
    strategies(g, o, probe)
        .into_iter()
        .filter(|s| s.output != Layout::Partial)
        .find(|s| reads.iter().all(|&i| s.inputs[i] == Layout::Split(a)))
        .and_then(|s| match s.output {
            Layout::Split(x) => Some(x),
            _ => None,
        })
}

/// One tile's work: `shard` (the op's work on one chip) with the dim that result axis `axis`
/// feeds divided by `tiles`; `None` when it does not divide exactly.
pub fn tile_work(g: &Graph, o: OpId, shard: &Work, axis: usize, tiles: u64) -> Option<Work> {
    let full = work_of(g, o);
    let dims = g.value(g.op(o).outputs[0]).ty.shape.dims().to_vec();
    let probe = dims.get(axis).copied()?;
    let along = strategies(g, o, probe)
        .into_iter()
        .find(|s| s.output == Layout::Split(axis))?
        .work;
    let exact = |x: u64| x.is_multiple_of(tiles).then_some(x / tiles);
    match (shard.clone(), full, along) {
        (
            Work::Matmul {
                batch,
                m,
                k,
                n,
                dtype,
            },
            Work::Matmul { batch: fb, m: fm, .. },
            Work::Matmul { batch: ab, m: am, .. },
        ) => {
            let (batch, m, n) = if ab < fb {
                (exact(batch)?, m, n)
            } else if am < fm {
                (batch, exact(m)?, n)
            } else {
                (batch, m, exact(n)?)
            };
            Some(Work::Matmul {
                batch,
                m,
                k,
                n,
                dtype,
            })
        }
        (Work::Vector { op, elements, dtype }, _, _) => Some(Work::Vector {
            op,
            elements: exact(elements)?,
            dtype,
        }),
        (Work::Stream { bytes }, _, _) => Some(Work::Stream { bytes: exact(bytes)? }),
        _ => None,
    }
}
