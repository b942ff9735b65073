//! Layer-wise (pipeline) placement of a chain of blocks by exact dynamic programming.
//!
//! Stages are contiguous runs of blocks; each stage gets the fewest chips whose SRAM holds its
//! weights, its largest activation working set and its incoming cut (more than one chip means the
//! stage's tensors are split evenly across a group, paying an all-reduce of each block's output).
//! A group of several blocks stays inside one node (its all-reduces use the node's local links);
//! only a single block too large for a node may take a larger group.
//! `best[j][c]` is the smallest bottleneck (the slowest stage's compute plus incoming transfer)
//! over partitions of the first `j` blocks onto exactly `c` chips. Chips are numbered in stage
//! order, so a stage continuing after `c` chips starts at chip `c`, and its incoming transfer pays
//! the extra hops of leaving a node or a rack exactly there; the answer is exact for this
//! cost model, in O(blocks^2 x chips) time, and deterministic (ties go to the earlier cut).

use super::blocks::{Block, Shared};
use super::Partition;
use lpuc_target::Target;

/// One stage of a solution: blocks `[start, end)` on `chips` chips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageCut {
    pub start: usize,
    pub end: usize,
    pub chips: u32,
    /// The stage's cycles: compute (split over the group), all-reduces, and the incoming transfer
    /// (in a partition, with the extra hops of leaving a node or rack where it starts).
    pub cycles: u64,
    /// SRAM bytes the stage needs over its group.
    pub bytes: u64,
}

/// The cost of every candidate stage, from the blocks and the target.
pub struct StageCosts<'a> {
    blocks: &'a [Block],
    shared: &'a [Shared],
    /// `relay[a][b]`: bytes of results made before block `a` and last read at or after block
    /// `b` (see [`Self::relayed`]).
    relay: Vec<Vec<u64>>,
    capacity: u64,
    link: f64,
    hop: u64,
    pub(crate) node_chips: u32,
    /// Chips a rack, and whether a stage's incoming transfer pays the extra hops of crossing a
    /// node or a rack (the chip numbering fixes where each stage starts).
    rack_chips: u32,
    distance_aware: bool,
    partition: Partition,
}

/// What the placer fills of a chip's SRAM: all but a tenth. ASSUMPTION: the tenth stays free for
/// what the estimate cannot see (results the schedule keeps alive longer than program order,
/// fragmentation).
pub fn usable_sram(target: &Target) -> u64 {
    target.sram.bytes - target.sram.bytes / 10
}

impl<'a> StageCosts<'a> {
    pub fn new(blocks: &'a [Block], target: &Target) -> Self {
        Self::with_shared(blocks, &[], target)
    }

    /// Costs of stages over `blocks`, where the `shared` weights cost each stage that reads them.
    pub fn with_shared(blocks: &'a [Block], shared: &'a [Shared], target: &Target) -> Self {
        StageCosts {
            blocks,
            shared,
            relay: relay_table(blocks),
            capacity: usable_sram(target),
            link: target.link_bytes_per_cycle(),
            hop: target.c2c.hop_latency_cycles,
            node_chips: target.topology.chips_per_node,
            rack_chips: target.chips_per_rack(),
            distance_aware: true,
            partition: Partition::Auto,
        }
    }

    /// The same costs with stages limited to what `partition` allows.
    pub fn with_partition(mut self, partition: Partition) -> Self {
        self.partition = partition;
        self
    }

    /// Whether `partition` allows blocks `[start, end)` on `chips` as one stage.
    fn partition_allows(&self, start: usize, end: usize, chips: u32) -> bool {
        match self.partition {
            Partition::Auto => true,
            Partition::Layer => chips == 1,
            Partition::Tensor => start == 0 && end == self.blocks.len(),
            Partition::Hybrid => chips >= 2,
        }
    }

    /// The same costs with every incoming transfer priced as one hop wherever the stage starts,
    /// the position-free model the ILP encodes.
    pub fn without_distance(mut self) -> Self {
        self.distance_aware = false;
        self
    }

    /// Extra cycles of a stage's incoming transfer when it starts at `chip`: one more hop to leave
    /// a node, two to leave a rack (as the report prices it).
    pub fn extra_hops(&self, start_block: usize, chip: u32) -> u64 {
        if !self.distance_aware || start_block == 0 || chip == 0 {
            return 0;
        }
        let extra = if chip.is_multiple_of(self.rack_chips) {
            2
        } else if chip.is_multiple_of(self.node_chips) {
            1
        } else {
            0
        };
        self.hop.saturating_mul(extra)
    }

    /// SRAM bytes of one chip.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes sent into a stage starting at block `start`.
    pub fn cut_in(&self, start: usize) -> u64 {
        if start == 0 {
            0
        } else {
            self.blocks[start - 1].cut_bytes
        }
    }

    /// Bytes a stage of blocks `[start, end)` receives and hands on unchanged (an attention mask
    /// every layer reads): the next stage fetches them from the copy this one received, so they
    /// count once, not in both the incoming and the outgoing cut.
    pub fn relayed(&self, start: usize, end: usize) -> u64 {
        self.relay[start][end]
    }

    fn transfer(&self, bytes: u64) -> u64 {
        (bytes as f64 / self.link).ceil() as u64
    }

    /// Whether blocks `[start, end)` may form one stage. A hand-built (evenly split) group larger
    /// than a node holds one block; a sharded stage may take any of its group sizes, since its
    /// collectives are priced with the extra hop of leaving a node.
    pub fn allowed(&self, stage: &StageCut) -> bool {
        self.sharded(stage.start) || stage.chips <= self.node_chips || stage.end - stage.start == 1
    }

    /// Whether the blocks carry their sharding (built from a graph) rather than only totals
    /// (built by hand in tests, split evenly over a group).
    fn sharded(&self, start: usize) -> bool {
        !self.blocks[start].groups.is_empty()
    }

    /// SRAM bytes blocks `[start, end)` need as one stage, over all chips, split evenly.
    pub fn bytes(&self, start: usize, end: usize) -> u64 {
        let run = &self.blocks[start..end];
        let activation = run.iter().map(|b| b.activation_bytes).max().unwrap_or(0);
        let inputs = run.iter().fold(0u64, |a, b| {
            a.saturating_add(b.input_bytes).saturating_add(b.output_bytes)
        });
        self.weights(start, end)
            .saturating_add(inputs)
            .saturating_add(activation)
            .saturating_add(self.cut_in(start))
    }

    /// SRAM bytes one chip of a group of `chips` needs for blocks `[start, end)`, or `None` when
    /// a block has no sharding for that group size. Sharded: each block's own weights, inputs and
    /// activations as its sharding holds them (activations layout-aware, in program order, the
    /// largest block's); shared weights, the incoming values and the outgoing ones (cut for
    /// sending) split evenly (blocks hand each other values split along their first evenly
    /// dividing axis, see `sharding::problem::boundary_layout`).
    pub fn bytes_per_chip(&self, start: usize, end: usize, chips: u32) -> Option<u64> {
        if chips == 0 {
            return None;
        }
        if !self.sharded(start) {
            return Some(self.bytes(start, end).div_ceil(u64::from(chips)));
        }
        let run = &self.blocks[start..end];
        let mut own = 0u64;
        let mut activation = 0u64;
        for b in run {
            let cost = b.groups.iter().find(|c| c.ways == chips)?;
            own = own
                .saturating_add(cost.bytes_per_chip)
                .saturating_add(cost.outputs_per_chip);
            activation = activation.max(cost.activation_per_chip);
        }
        let shared = self
            .weights(start, end)
            .saturating_sub(run.iter().fold(0u64, |a, b| a.saturating_add(b.weight_bytes)));
        Some(
            own.saturating_add(shared.div_ceil(u64::from(chips)))
                .saturating_add(activation)
                .saturating_add(self.cut_in(start).div_ceil(u64::from(chips)))
                // The outgoing values, cut into pieces for the next stage while they are sent;
                // those relayed are already counted as they came in.
                .saturating_add(
                    self.blocks[end - 1]
                        .cut_bytes
                        .saturating_sub(self.relayed(start, end))
                        .div_ceil(u64::from(chips)),
                ),
        )
    }

    /// Group sizes a sharded stage starting at block `start` may run on, ascending.
    fn sizes(&self, start: usize) -> Vec<u32> {
        self.blocks[start].groups.iter().map(|c| c.ways).collect()
    }

    fn fits(&self, start: usize, end: usize, chips: u32) -> Option<u64> {
        self.bytes_per_chip(start, end, chips)
            .filter(|&b| b <= self.capacity)
    }

    /// Weight bytes a stage of blocks `[start, end)` holds: its blocks' own, and each shared
    /// weight one of them reads, once.
    pub fn weights(&self, start: usize, end: usize) -> u64 {
        let run = &self.blocks[start..end];
        let own = run.iter().fold(0u64, |a, b| a.saturating_add(b.weight_bytes));
        // A shared weight once, if any block of the stage reads it.
        let shared = self
            .shared
            .iter()
            .filter(|w| {
                let k = w.readers.partition_point(|&r| r < start);
                w.readers.get(k).is_some_and(|&r| r < end)
            })
            .fold(0u64, |a, w| a.saturating_add(w.bytes));
        own.saturating_add(shared)
    }

    /// The stage of blocks `[start, end)` on the fewest chips that hold it (`chips` is
    /// `u32::MAX` when no group size does).
    pub fn stage(&self, start: usize, end: usize) -> StageCut {
        if !self.sharded(start) {
            let bytes = self.bytes(start, end);
            let chips = u32::try_from(bytes.div_ceil(self.capacity).max(1)).unwrap_or(u32::MAX);
            return self.priced(start, end, chips, bytes.div_ceil(u64::from(chips)));
        }
        match self
            .sizes(start)
            .into_iter()
            .find_map(|g| Some((g, self.fits(start, end, g)?)))
        {
            Some((g, per_chip)) => self.priced(start, end, g, per_chip),
            None => StageCut {
                start,
                end,
                chips: u32::MAX,
                cycles: u64::MAX,
                bytes: u64::MAX,
            },
        }
    }

    /// Every allowed way to run blocks `[start, end)` as one stage: from the fewest chips that
    /// hold it up to a node's worth (more chips split the compute further and exchange more).
    pub fn options(&self, start: usize, end: usize, max_chips: u32) -> Vec<StageCut> {
        let fewest = self.stage(start, end);
        if fewest.chips == u32::MAX || !self.allowed(&fewest) {
            return vec![];
        }
        // Sharded stages may use any of their group sizes; hand-built ones up to a node.
        let most = if self.sharded(start) {
            max_chips
        } else {
            fewest.chips.max(self.node_chips.min(max_chips))
        };
        let mut out = vec![fewest.clone()];
        out.retain(|s| self.partition_allows(start, end, s.chips));
        let larger: Vec<u32> = if self.sharded(start) {
            self.sizes(start)
        } else {
            (fewest.chips + 1..=most).collect()
        };
        for g in larger {
            if g > fewest.chips && g <= most && self.partition_allows(start, end, g) {
                if let Some(per_chip) = self.fits(start, end, g) {
                    out.push(self.priced(start, end, g, per_chip));
                }
            }
        }
        out
    }

    /// The stage of blocks `[start, end)` on a group of `chips` (at least the fewest that hold it).
    pub fn stage_on(&self, start: usize, end: usize, chips: u32) -> StageCut {
        let per_chip = self.bytes_per_chip(start, end, chips).unwrap_or(u64::MAX);
        self.priced(start, end, chips, per_chip)
    }

    /// A stage's cycles on `chips`, one chip's SRAM bytes already known.
    fn priced(&self, start: usize, end: usize, chips: u32, per_chip: u64) -> StageCut {
        let run = &self.blocks[start..end];
        let g = u64::from(chips);
        let work = if self.sharded(start) {
            // Compute and collectives of each block's sharding on this group.
            run.iter()
                .map(|b| {
                    b.groups
                        .iter()
                        .find(|c| c.ways == chips)
                        .map_or(u64::MAX, |c| c.cycles)
                })
                .fold(0u64, u64::saturating_add)
        } else {
            let compute = run
                .iter()
                .fold(0u64, |a, b| a.saturating_add(b.compute_cycles))
                .div_ceil(g);
            // A hand-built stage all-reduces each block's output over its group (ring).
            let all_reduce: u64 = if chips > 1 {
                run.iter()
                    .map(|b| {
                        self.transfer(b.cut_bytes.saturating_mul(2 * (g - 1)) / g)
                            .saturating_add(self.hop)
                    })
                    .fold(0u64, u64::saturating_add)
            } else {
                0
            };
            compute.saturating_add(all_reduce)
        };
        let incoming = if start > 0 {
            self.transfer(self.cut_in(start)).saturating_add(self.hop)
        } else {
            0
        };
        StageCut {
            start,
            end,
            chips,
            cycles: work.saturating_add(incoming),
            bytes: per_chip.saturating_mul(g),
        }
    }
}

/// What a partition optimizes first. Ties left after both go to the partition whose stages sum
/// to the fewest cycles (one prompt's latency through the pipeline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// The smallest bottleneck, then the fewest chips.
    Fastest,
    /// The fewest chips, then the smallest bottleneck.
    Fewest,
}

/// The best partition of all blocks onto at most `max_chips` chips for `goal`. `None` when no
/// partition fits. The bottleneck is exact (a dynamic program over the last stage); the latency
/// tie-break is greedy: each prefix keeps the smallest sum among its smallest bottlenecks, so a
/// prefix with a larger bottleneck but a smaller sum, which a later, slower stage would hide, is
/// not kept.
pub fn best_partition(costs: &StageCosts, max_chips: u32, goal: Goal) -> Option<Vec<StageCut>> {
    // best[j][c]: (bottleneck, sum of stage cycles) of blocks [0, j) on c chips.
    let table = Table::new(costs, max_chips, |prev, cycles, _| {
        Some((prev.0.max(cycles), prev.1.saturating_add(cycles)))
    });
    let feasible = (0..table.width()).filter_map(|c| table.done(c).map(|v| (c, v)));
    let (c, _) = match goal {
        Goal::Fastest => feasible.min_by_key(|&(c, (bottleneck, sum))| (bottleneck, c, sum))?,
        Goal::Fewest => feasible.min_by_key(|&(c, v)| (c, v))?,
    };
    Some(table.stages(costs, c))
}

/// Instructions and transfers the scheduler will make for blocks `[start, end)` on `chips` (the
/// sharded blocks' estimates; a hand-built stage's blocks carry none).
pub fn stage_tasks(costs: &StageCosts, start: usize, end: usize, chips: u32) -> u64 {
    costs.blocks[start..end]
        .iter()
        .filter_map(|b| b.groups.iter().find(|c| c.ways == chips).map(|c| c.tasks))
        .fold(0u64, u64::saturating_add)
}

/// The partition onto at most `max_chips` chips with the fewest instructions and transfers among
/// those whose every stage takes at most `bound` cycles (then the fewest chips, then the smallest
/// sum of stage cycles). With `bound` the bottleneck [`best_partition`] found, this keeps its
/// throughput and shrinks the program: every stage slower than the bottleneck is excluded, so
/// only stages that do not set it can change (a pipeline that spread every layer over groups as
/// wide as its slowest stage needs, where narrower groups keep up). Exact for this objective, by
/// the same dynamic program over (blocks, chips).
pub fn fewest_tasks(costs: &StageCosts, max_chips: u32, bound: u64) -> Option<Vec<StageCut>> {
    let table = tasks_table(costs, max_chips, bound);
    let c = (0..table.width())
        .filter(|&c| table.done(c).is_some())
        .min_by_key(|&c| (table.done(c), c))?;
    Some(table.stages(costs, c))
}

/// The partition onto the fewest chips (at most `max_chips`) whose estimated instructions and
/// transfers stay within `budget`, with the fewest of them on that many chips: what "the fewest
/// chips that fit" means once the program size binds (the 70B prefill at 4096 tokens fits far
/// fewer chips with wide groups than a program budget lets every stage have).
pub fn fewest_chips_within(costs: &StageCosts, max_chips: u32, budget: u64) -> Option<Vec<StageCut>> {
    let table = tasks_table(costs, max_chips, u64::MAX);
    let c = (0..table.width()).find(|&c| table.done(c).is_some_and(|(tasks, _)| tasks <= budget))?;
    Some(table.stages(costs, c))
}

/// (tasks, sum of stage cycles) of every prefix on every chip count, stages over `bound` cycles
/// left out.
fn tasks_table(costs: &StageCosts, max_chips: u32, bound: u64) -> Table {
    Table::new(costs, max_chips, |prev, cycles, tasks| {
        (cycles <= bound).then(|| (prev.0.saturating_add(tasks), prev.1.saturating_add(cycles)))
    })
}

/// The dynamic program every partition goal runs: `best[j][c]` is the smallest value of blocks
/// `[0, j)` on exactly `c` chips, a stage extending a prefix's value by `extend(prev, cycles,
/// tasks)` (its cycles with the extra hops where it starts; `None`: the stage may not follow);
/// `from[j][c]` is the last stage's start and group size. Chips are numbered in stage order, so
/// a stage continuing after `c` chips starts at chip `c`.
struct Table {
    best: Vec<Vec<(u64, u64)>>,
    from: Vec<Vec<(usize, u32)>>,
}

impl Table {
    const NONE: (u64, u64) = (u64::MAX, u64::MAX);

    fn new(
        costs: &StageCosts,
        max_chips: u32,
        extend: impl Fn((u64, u64), u64, u64) -> Option<(u64, u64)>,
    ) -> Self {
        let n = costs.blocks.len();
        // More chips than every block on its own largest group can never be used.
        let useful: u64 = (0..n)
            .map(|b| {
                let s = costs.stage(b, b + 1);
                let largest = costs.blocks[b].groups.last().map_or(0, |c| c.ways);
                u64::from(s.chips.max(costs.node_chips).max(largest))
            })
            .sum();
        let cmax = u64::from(max_chips).min(useful) as usize;
        let max_chips = cmax as u32;
        let mut best = vec![vec![Self::NONE; cmax + 1]; n + 1];
        best[0][0] = (0, 0);
        let mut from = vec![vec![(0usize, 0u32); cmax + 1]; n + 1];
        for j in 1..=n {
            for i in 0..j {
                for stage in costs.options(i, j, max_chips) {
                    let g = stage.chips as usize;
                    if g > cmax {
                        continue;
                    }
                    let tasks = stage_tasks(costs, i, j, stage.chips);
                    for c in g..=cmax {
                        let prev = best[i][c - g];
                        if prev == Self::NONE {
                            continue;
                        }
                        let cycles = stage.cycles.saturating_add(costs.extra_hops(i, (c - g) as u32));
                        let Some(value) = extend(prev, cycles, tasks) else {
                            continue;
                        };
                        if value < best[j][c] {
                            best[j][c] = value;
                            from[j][c] = (i, stage.chips);
                        }
                    }
                }
            }
        }
        Table { best, from }
    }

    /// Chip counts `0..width()` the table covers.
    fn width(&self) -> usize {
        self.best[0].len()
    }

    /// Every block placed on exactly `c` chips: its value, if any partition does.
    fn done(&self, c: usize) -> Option<(u64, u64)> {
        let v = self.best.last()?[c];
        (v != Self::NONE).then_some(v)
    }

    /// The partition onto exactly `c` chips, each stage priced where it starts.
    fn stages(&self, costs: &StageCosts, mut c: usize) -> Vec<StageCut> {
        let mut stages = Vec::new();
        let mut j = self.best.len() - 1;
        while j > 0 {
            let (i, g) = self.from[j][c];
            let mut stage = costs.stage_on(i, j, g);
            c -= g as usize;
            // Its incoming transfer's real distance, now that its first chip is known.
            stage.cycles = stage.cycles.saturating_add(costs.extra_hops(i, c as u32));
            stages.push(stage);
            j = i;
        }
        stages.reverse();
        stages
    }
}

/// `table[a][b]`: bytes of the results blocks before `a` send to a last reader at or after `b`.
fn relay_table(blocks: &[Block]) -> Vec<Vec<u64>> {
    let n = blocks.len();
    let mut table = vec![vec![0u64; n + 1]; n + 1];
    for a in 1..=n {
        // What block a - 1 sends, by its last reader, summed from the back.
        let mut by_reader = vec![0u64; n + 1];
        for &(c, bytes) in &blocks[a - 1].sends {
            by_reader[c.min(n)] = by_reader[c.min(n)].saturating_add(bytes);
        }
        let mut at_or_after = 0u64;
        for b in (0..=n).rev() {
            at_or_after = at_or_after.saturating_add(by_reader[b]);
            table[a][b] = table[a - 1][b].saturating_add(at_or_after);
        }
    }
    table
}

/// The best (bottleneck, chips, sum of stage cycles), in that order, over every contiguous
/// partition and every group size of every stage, by exhaustive search: exponential, a reference
/// for tests of the dynamic program and the ILP on short chains.
pub fn brute_force(costs: &StageCosts, n: usize, max_chips: u32) -> Option<(u64, u32, u64)> {
    /// Blocks `[0, at)` placed on `chips` chips with bottleneck `neck` and stage cycles `sum`.
    struct Prefix {
        at: usize,
        chips: u32,
        neck: u64,
        sum: u64,
    }
    fn walk(costs: &StageCosts, n: usize, p: Prefix, max: u32, best: &mut Option<(u64, u32, u64)>) {
        if p.at == n {
            if best.is_none_or(|b| (p.neck, p.chips, p.sum) < b) {
                *best = Some((p.neck, p.chips, p.sum));
            }
            return;
        }
        for end in p.at + 1..=n {
            for stage in costs.options(p.at, end, max) {
                let chips = p.chips + stage.chips;
                if chips <= max {
                    let cycles = stage.cycles.saturating_add(costs.extra_hops(p.at, p.chips));
                    let next = Prefix {
                        at: end,
                        chips,
                        neck: p.neck.max(cycles),
                        sum: p.sum.saturating_add(cycles),
                    };
                    walk(costs, n, next, max, best);
                }
            }
        }
    }
    let mut best = None;
    let start = Prefix {
        at: 0,
        chips: 0,
        neck: 0,
        sum: 0,
    };
    walk(costs, n, start, max_chips, &mut best);
    best
}

#[cfg(test)]
mod tests {
    use super::super::blocks::GroupCost;
    use super::*;

    #[test]
    fn the_dynamic_program_is_exact_on_small_chains() {
        let t = Target::lpu_v1();
        let cap = t.sram.bytes;
        let cases: Vec<Vec<Block>> = vec![
            vec![
                Block::by_hand("a", 100, cap / 2, 1000),
                Block::by_hand("b", 300, cap / 3, 1000),
                Block::by_hand("c", 200, cap / 2, 0),
            ],
            (0..6)
                .map(|i| Block::by_hand("l", 1000 + 37 * i, cap / 3 + i * 1000, 50_000))
                .collect(),
            vec![
                Block::by_hand("big", 10_000, 3 * cap, 10),
                Block::by_hand("small", 10, 1, 0),
            ],
        ];
        for blocks in cases {
            let costs = StageCosts::new(&blocks, &t);
            for max_chips in [1, 2, 3, 5, 8] {
                let dp = best_partition(&costs, max_chips, Goal::Fastest).map(|s| {
                    (
                        s.iter().map(|x| x.cycles).max().unwrap_or(0),
                        s.iter().map(|x| x.chips).sum(),
                    )
                });
                assert_eq!(
                    dp,
                    brute_force(&costs, blocks.len(), max_chips).map(|(neck, chips, _)| (neck, chips)),
                    "max_chips {max_chips}"
                );
            }
        }
    }

    #[test]
    fn ties_in_the_bottleneck_go_to_the_shorter_pipeline() {
        // One block dominates every partition's bottleneck, alone on one chip (its results are
        // too large to all-reduce over a group in time). The three after it fit two chips either
        // together (all-reducing `a`'s large results over the pair: slower) or as `a b` then `c`
        // (a cut after `b`, whose results are small): the same bottleneck and chips, but one
        // prompt takes longer through the first.
        let t = Target::lpu_v1();
        let cap = t.sram.bytes;
        let bytes_taking = |cycles: f64| (cycles * t.link_bytes_per_cycle()) as u64;
        let blocks = vec![
            Block::by_hand("big", 1_000_000, cap / 2, bytes_taking(600_000.0)),
            Block::by_hand("a", 3_000, cap * 4 / 10, bytes_taking(50_000.0)),
            Block::by_hand("b", 3_000, cap * 4 / 10, 0),
            Block::by_hand("c", 3_000, cap * 4 / 10, 0),
        ];
        let costs = StageCosts::new(&blocks, &t);
        let dp = best_partition(&costs, 3, Goal::Fastest).expect("fits");
        let triple = (
            dp.iter().map(|x| x.cycles).max().unwrap_or(0),
            dp.iter().map(|x| x.chips).sum::<u32>(),
            dp.iter().map(|x| x.cycles).sum::<u64>(),
        );
        assert_eq!(Some(triple), brute_force(&costs, blocks.len(), 3));
        let spans: Vec<(usize, usize, u32)> = dp.iter().map(|s| (s.start, s.end, s.chips)).collect();
        assert_eq!(spans, vec![(0, 1, 1), (1, 3, 1), (3, 4, 1)]);
    }

    /// A sharded block: per group size, (ways, cycles, estimated tasks), holding 1 MB a chip.
    fn sharded(name: &str, groups: &[(u32, u64, u64)]) -> Block {
        let mut b = Block::by_hand(name, 0, 0, 0);
        b.groups = groups
            .iter()
            .map(|&(ways, cycles, tasks)| GroupCost::by_hand(ways, cycles, 1 << 20, tasks))
            .collect();
        b
    }

    #[test]
    fn the_fewest_tasks_at_the_bottleneck_move_stages_that_do_not_set_it() {
        // `neck` sets the bottleneck on one chip. `x` and `y` fit together on a pair (faster,
        // but each makes 900 instructions and transfers there) or one chip each (slower, 100
        // each): the same bottleneck and chips, so the fastest partition takes the pair for its
        // shorter latency, and the fewest tasks under the same bottleneck take one chip each.
        let t = Target::lpu_v1();
        let blocks = vec![
            sharded("neck", &[(1, 100_000, 10)]),
            sharded("x", &[(1, 50_000, 100), (2, 10_000, 900)]),
            sharded("y", &[(1, 50_000, 100), (2, 10_000, 900)]),
        ];
        let costs = StageCosts::new(&blocks, &t);
        let spans = |cuts: &[StageCut]| cuts.iter().map(|s| (s.start, s.end, s.chips)).collect::<Vec<_>>();
        let tasks = |cuts: &[StageCut]| {
            cuts.iter()
                .map(|s| stage_tasks(&costs, s.start, s.end, s.chips))
                .sum::<u64>()
        };
        let fastest = best_partition(&costs, 3, Goal::Fastest).unwrap();
        assert_eq!(spans(&fastest), vec![(0, 1, 1), (1, 3, 2)]);
        assert_eq!(tasks(&fastest), 1810);
        let neck = fastest.iter().map(|s| s.cycles).max().unwrap();
        let lean = fewest_tasks(&costs, 3, neck).unwrap();
        assert_eq!(spans(&lean), vec![(0, 1, 1), (1, 2, 1), (2, 3, 1)]);
        assert_eq!(tasks(&lean), 210);
        assert_eq!(lean.iter().map(|s| s.cycles).max().unwrap(), neck);
        // A bound below the bottleneck has no partition.
        assert!(fewest_tasks(&costs, 3, neck - 1).is_none());
    }

    #[test]
    fn the_fewest_chips_within_a_budget_take_more_chips_only_when_the_program_needs_them() {
        // One chip makes 1,000 instructions and transfers, a pair 10 each.
        let t = Target::lpu_v1();
        let blocks = vec![sharded("z", &[(1, 100, 1000), (2, 100, 10)])];
        let costs = StageCosts::new(&blocks, &t);
        let chips =
            |budget| fewest_chips_within(&costs, 4, budget).map(|s| s.iter().map(|x| x.chips).sum::<u32>());
        assert_eq!(chips(2000), Some(1));
        assert_eq!(chips(500), Some(2));
        assert_eq!(chips(5), None);
    }

    #[test]
    fn stages_are_contiguous_and_cover_every_block() {
        let t = Target::lpu_v1();
        let blocks: Vec<Block> = (0..10)
            .map(|_| Block::by_hand("l", 500, t.sram.bytes / 4, 4096))
            .collect();
        let stages = best_partition(&StageCosts::new(&blocks, &t), 16, Goal::Fastest).unwrap();
        assert_eq!(stages.first().unwrap().start, 0);
        assert_eq!(stages.last().unwrap().end, 10);
        assert!(stages.windows(2).all(|w| w[0].end == w[1].start));
        assert!(stages
            .iter()
            .all(|s| s.bytes <= u64::from(s.chips) * t.sram.bytes));
    }

    #[test]
    fn graph_outputs_stay_so_a_stage_holds_every_blocks() {
        // A decode step's new KV entries are graph outputs kept to the end: a stage holds the sum
        // over its blocks, where activations only need the largest block's.
        let t = Target::lpu_v1();
        let mut blocks: Vec<Block> = (0..4).map(|_| Block::by_hand("l", 500, 1 << 20, 4096)).collect();
        for b in &mut blocks {
            b.activation_bytes = 8 << 20;
            b.output_bytes = 2 << 20;
        }
        let costs = StageCosts::new(&blocks, &t);
        let weights = costs.weights(0, 4);
        assert_eq!(
            costs.bytes(0, 4),
            weights + (8 << 20) + 4 * (2 << 20) + costs.cut_in(0)
        );
    }

    #[test]
    fn a_value_handed_through_a_stage_counts_once() {
        // Block 0 makes a mask every later block reads and a stream only block 1 reads.
        let t = Target::lpu_v1();
        let mut blocks: Vec<Block> = (0..4).map(|_| Block::by_hand("l", 500, 1 << 20, 4096)).collect();
        blocks[0].sends = vec![(3, 64), (1, 8)];
        blocks[1].sends = vec![(2, 4)];
        let costs = StageCosts::new(&blocks, &t);
        // A stage of block 1 or 2 receives the mask and hands it on.
        assert_eq!(costs.relayed(1, 2), 64);
        assert_eq!(costs.relayed(2, 3), 64);
        assert_eq!(costs.relayed(1, 3), 64);
        // Its last reader keeps it; its maker sends it; the stream ends in block 1.
        assert_eq!(costs.relayed(1, 4), 0);
        assert_eq!(costs.relayed(3, 4), 0);
        assert_eq!(costs.relayed(0, 1), 0);
        // Block 1's result is last read by block 2: the stage [2, 3) keeps it, relaying only
        // the mask; a stage [1, 2) makes it.
        assert_eq!(costs.relayed(2, 3) + costs.relayed(1, 2), 128);
    }
}
