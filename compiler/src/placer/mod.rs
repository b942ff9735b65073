//! Placement: which chips hold which part of the model.
//!
//! This first placer is layer-wise: the graph is coarsened into a chain of blocks (transformer
//! layers where the exporter named them), and an exact dynamic program cuts the chain into pipeline
//! stages, each on the fewest chips whose SRAM holds it, minimizing the slowest stage. Chips are
//! numbered in stage order, so consecutive stages sit in one node or rack where they can; a
//! placement that spans racks needs `--allow-cross-rack`. Tensor-wise splitting by ILP, tiling in
//! time and the fabric schedule of the transfers are still to come (issues 4 and 5).

pub mod blocks;
pub mod ilp;
pub mod pipeline;
pub mod sharding;
pub mod tiling;

use crate::scheduler::system::lower::MAX_TASKS;
use blocks::{Block, Shared};
pub use lpuc_artifact::placement::{FailureDomains, Placement, Stage};
use lpuc_ir::{DType, Graph};
use lpuc_target::Target;
use pipeline::{best_partition, Goal, StageCosts, StageCut};
use serde::Serialize;
use thiserror::Error;

/// Most blocks the dynamic program works on; longer chains are merged evenly first.
const MAX_BLOCKS: usize = 256;

/// Most chips a placement may use.
pub const MAX_CHIPS: u32 = 1 << 16;

/// How the model may be partitioned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// Whatever is fastest: pipeline stages, each on one chip or a tensor-split group.
    #[default]
    Auto,
    /// Layer-wise only: pipeline stages of one chip each.
    Layer,
    /// Tensor-wise only: one stage, every op split over one group.
    Tensor,
    /// Both: pipeline stages, each on a tensor-split group of two or more chips.
    Hybrid,
}

/// What the user asked of the placement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceOptions {
    pub partition: Partition,
    /// Chips available; `None` places onto the fewest that fit.
    pub chips: Option<u32>,
    /// Storage dtype of float weights (`None`: the model's own).
    pub weight_dtype: Option<DType>,
    pub allow_cross_rack: bool,
}

impl PlaceOptions {
    /// The same options with no chip budget and racks allowed: to find the fewest chips a
    /// placement needs at all.
    fn unlimited(&self) -> PlaceOptions {
        PlaceOptions {
            chips: None,
            allow_cross_rack: true,
            ..self.clone()
        }
    }
}

/// Why no placement exists.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlaceError {
    #[error("the model needs at least {min_chips} chips ({needed_bytes} bytes of weights, activations and transfers; {chip_bytes} bytes of SRAM a chip), but {chips} were given")]
    TooFewChips {
        needed_bytes: u64,
        chip_bytes: u64,
        min_chips: u32,
        chips: u32,
    },
    #[error("the model needs at least {chips} chips, which span {racks} racks of {per_rack}; pass --allow-cross-rack to let the critical path cross racks")]
    CrossRack { chips: u32, racks: u32, per_rack: u32 },
    #[error("block '{block}' does not fit any group of chips: split over {largest} chips it still needs {bytes_per_chip} bytes a chip, and a chip has {chip_bytes} bytes of SRAM, {usable_bytes} of them to place into (a tenth stays free){larger}; use a smaller --bucket")]
    BlockTooLarge {
        block: String,
        largest: u32,
        bytes_per_chip: u64,
        chip_bytes: u64,
        /// What the placer fills of a chip's SRAM (a tenth stays free).
        usable_bytes: u64,
        /// Why no larger group was tried, when one exists.
        larger: String,
    },
    #[error("the model has no ops to place")]
    Empty,
}

/// A HiGHS model for `problem` (the `highs` cargo feature), set up to give the same answer on any
/// machine: one thread, no parallel search, a fixed random seed, no time limit, and at most
/// `node_limit` branch-and-bound nodes.
#[cfg(feature = "highs")]
pub(crate) fn highs_model(
    problem: good_lp::variable::UnsolvedProblem,
    node_limit: usize,
) -> good_lp::solvers::highs::HighsProblem {
    use good_lp::solvers::highs::HighsParallelType;
    good_lp::solvers::highs::highs(problem)
        .set_threads(1)
        .set_parallel(HighsParallelType::Off)
        .set_option("random_seed", 0)
        .set_option("mip_max_nodes", i32::try_from(node_limit).unwrap_or(i32::MAX))
}

/// Merge adjacent blocks until there are at most `max` (evenly, keeping names of the first and
/// last member); shared weights' readers are renumbered, and a weight all of whose readers merge
/// into one block becomes that block's own.
fn coarsen(blocks: Vec<Block>, shared: Vec<Shared>, max: usize) -> (Vec<Block>, Vec<Shared>) {
    if blocks.len() <= max {
        return (blocks, shared);
    }
    let per = blocks.len().div_ceil(max);
    let mut merged: Vec<Block> = blocks
        .chunks(per)
        .enumerate()
        .map(|(m, chunk)| {
            let last = chunk.last().expect("chunks are non-empty");
            Block {
                name: if chunk.len() == 1 {
                    last.name.clone()
                } else {
                    format!("{}..{}", chunk[0].name, last.name)
                },
                ops: chunk.iter().flat_map(|b| b.ops.iter().copied()).collect(),
                compute_cycles: chunk.iter().fold(0u64, |a, b| a.saturating_add(b.compute_cycles)),
                weight_bytes: chunk.iter().fold(0u64, |a, b| a.saturating_add(b.weight_bytes)),
                input_bytes: chunk.iter().fold(0u64, |a, b| a.saturating_add(b.input_bytes)),
                activation_bytes: chunk.iter().map(|b| b.activation_bytes).max().unwrap_or(0),
                output_bytes: chunk.iter().fold(0u64, |a, b| a.saturating_add(b.output_bytes)),
                tiled: chunk.iter().flat_map(|b| b.tiled.iter().cloned()).collect(),
                cut_bytes: last.cut_bytes,
                // Read later by another merged block: renumbered; inside this one: gone.
                sends: chunk
                    .iter()
                    .flat_map(|b| b.sends.iter().map(|&(c, bytes)| (c / per, bytes)))
                    .filter(|&(c, _)| c > m)
                    .collect(),
                parts: chunk.iter().flat_map(|b| b.parts.iter().copied()).collect(),
                // Members are sharded independently (each hands on whole values), so a merged
                // block runs on the group sizes all members have, at their summed cost.
                groups: chunk[0]
                    .groups
                    .iter()
                    .filter_map(|first| {
                        let members: Option<Vec<&blocks::GroupCost>> = chunk
                            .iter()
                            .map(|b| b.groups.iter().find(|c| c.ways == first.ways))
                            .collect();
                        let members = members?;
                        Some(blocks::GroupCost {
                            ways: first.ways,
                            cycles: members.iter().fold(0u64, |a, c| a.saturating_add(c.cycles)),
                            bytes_per_chip: members
                                .iter()
                                .fold(0u64, |a, c| a.saturating_add(c.bytes_per_chip)),
                            activation_per_chip: members
                                .iter()
                                .map(|c| c.activation_per_chip)
                                .max()
                                .unwrap_or(0),
                            outputs_per_chip: members
                                .iter()
                                .fold(0u64, |a, c| a.saturating_add(c.outputs_per_chip)),
                            tasks: members.iter().fold(0u64, |a, c| a.saturating_add(c.tasks)),
                            method: if members.iter().all(|c| c.method == first.method) {
                                first.method
                            } else {
                                sharding::Method::Heuristic
                            },
                            heuristic_cycles: members
                                .iter()
                                .fold(0u64, |a, c| a.saturating_add(c.heuristic_cycles)),
                            lower_bound: members.iter().fold(0u64, |a, c| a.saturating_add(c.lower_bound)),
                            choice: members.iter().flat_map(|c| c.choice.iter().copied()).collect(),
                        })
                    })
                    .collect(),
            }
        })
        .collect();
    let mut still_shared = Vec::new();
    for w in shared {
        let mut readers: Vec<usize> = w.readers.iter().map(|&r| r / per).collect();
        readers.dedup();
        match readers.as_slice() {
            [one] => merged[*one].weight_bytes = merged[*one].weight_bytes.saturating_add(w.bytes),
            _ => still_shared.push(Shared {
                bytes: w.bytes,
                readers,
            }),
        }
    }
    (merged, still_shared)
}

/// One stage as the scheduler needs it: its chips, its ops in program order, and the strategy
/// index each op runs (into `sharding::strategies::strategies(g, op, chips)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagePlan {
    pub first_chip: u32,
    pub chips: u32,
    pub ops: Vec<lpuc_ir::OpId>,
    /// Op counts of the blocks the ops form, in order (the scheduler finds tiled regions within
    /// each, as the placer estimated them).
    pub blocks: Vec<usize>,
    pub choice: Vec<usize>,
}

/// Place `g` onto the chips `opts` allows.
pub fn place(g: &Graph, target: &Target, opts: &PlaceOptions) -> Result<Placement, PlaceError> {
    place_with_plan(g, target, opts).map(|(p, _)| p)
}

/// The instructions and transfers a placement may be estimated at (`sharding::task_estimate`):
/// the scheduler's limit less a tenth, since the estimate runs a little under the real count
/// (measured on the 70B prefill: 0.93x of the real count at 1024 tokens on 576 chips, 0.97x at
/// 4096 on 676; the 70B decode 1.01x; the 7B prefill at 512 tokens 1.97x).
const PROGRAM_BUDGET: u64 = MAX_TASKS / 10 * 9;

/// The program size a placement is held to first: 1.08 million estimated instructions and
/// transfers. Only a model that places on the chips given under no program this size is placed
/// again under [`PROGRAM_BUDGET`]: a smaller program compiles in less time and memory, and its
/// narrower groups are where the placer's estimates are closest to the schedule (the 70B prefill
/// at 1024 tokens on 576 chips: 2.06 billion cycles under this budget, 3.29 billion with 32-chip
/// stages under the larger one).
const PREFERRED_BUDGET: u64 = 1_080_000;

/// The best partition of `chain` into stages under `opts`, or why there is none.
fn partition(
    chain: &[Block],
    shared: &[Shared],
    target: &Target,
    opts: &PlaceOptions,
    budget: u64,
) -> Result<Vec<StageCut>, PlaceError> {
    let costs = StageCosts::with_shared(chain, shared, target).with_partition(opts.partition);
    // A block no group size holds cannot be placed however many chips there are.
    if let Some(b) = (0..chain.len()).find(|&b| costs.stage(b, b + 1).chips == u32::MAX) {
        let largest = chain[b].groups.last().map_or(1, |c| c.ways);
        let most = blocks::group_sizes(target.topology.chips_per_node)
            .last()
            .copied()
            .unwrap_or(1);
        return Err(PlaceError::BlockTooLarge {
            block: chain[b].name.clone(),
            largest,
            bytes_per_chip: costs.bytes_per_chip(b, b + 1, largest).unwrap_or(u64::MAX),
            chip_bytes: target.sram.bytes,
            usable_bytes: costs.capacity(),
            larger: left_out(largest < most, None),
        });
    }
    // The fewest chips any partition needs: every block on its own group.
    let upper: u32 = (0..chain.len())
        .map(|b| costs.stage(b, b + 1).chips)
        .fold(0u32, u32::saturating_add)
        .min(MAX_CHIPS);
    // Without chips given, use the fewest that fit (what a user expects); with chips given, the
    // fastest pipeline on at most that many.
    let (limit, goal) = match opts.chips {
        Some(n) => (n.min(MAX_CHIPS), Goal::Fastest),
        None => (upper, Goal::Fewest),
    };
    // Unless racks may be crossed, the whole placement stays in one rack.
    let per_rack = target.chips_per_rack();
    let limit = if opts.allow_cross_rack {
        limit
    } else {
        limit.min(per_rack)
    };
    let best = best_partition(&costs, limit, goal).map(|cuts| {
        // A pipeline over the program-size budget keeps its bottleneck on fewer instructions
        // and transfers where it can: stages that do not set the bottleneck take narrower groups.
        let tasks = |cuts: &[StageCut]| {
            cuts.iter()
                .map(|s| pipeline::stage_tasks(&costs, s.start, s.end, s.chips))
                .fold(0u64, u64::saturating_add)
        };
        if tasks(&cuts) <= budget {
            return cuts;
        }
        let leaner = match goal {
            // The same bottleneck on fewer tasks.
            Goal::Fastest => {
                let bottleneck = cuts.iter().map(|s| s.cycles).max().unwrap_or(0);
                pipeline::fewest_tasks(&costs, limit, bottleneck)
            }
            // The fewest chips on which the program fits the budget.
            Goal::Fewest => pipeline::fewest_chips_within(&costs, limit, budget),
        };
        match leaner {
            Some(leaner) if tasks(&leaner) < tasks(&cuts) => leaner,
            _ => cuts,
        }
    });
    best.ok_or_else(|| {
        let min_chips = best_partition(&costs, upper, Goal::Fewest)
            .map(|s| s.iter().map(|x| x.chips).sum())
            .unwrap_or(upper);
        if !opts.allow_cross_rack && min_chips > per_rack && opts.chips.is_none_or(|n| n >= min_chips) {
            return PlaceError::CrossRack {
                chips: min_chips,
                racks: target.racks_for(min_chips),
                per_rack,
            };
        }
        PlaceError::TooFewChips {
            needed_bytes: costs.bytes(0, chain.len()),
            chip_bytes: target.sram.bytes,
            min_chips,
            chips: opts.chips.unwrap_or(limit),
        }
    })
}

/// The best partition whose program stays buildable: while the placement's estimated
/// instructions and transfers exceed `budget`, the costliest group size it chose is
/// withdrawn from `chain` (with every one as costly) and the chain placed again.
fn buildable(
    chain: &mut [Block],
    shared: &[Shared],
    target: &Target,
    opts: &PlaceOptions,
    budget: u64,
) -> Result<Vec<StageCut>, PlaceError> {
    // No one block may take more than the whole program.
    let mut ceiling = budget;
    loop {
        for b in chain.iter_mut() {
            b.groups.retain(|c| c.ways == 1 || c.tasks <= ceiling);
        }
        let cuts = partition(chain, shared, target, opts, budget)?;
        let chosen: Vec<u64> = cuts
            .iter()
            .flat_map(|cut| {
                chain[cut.start..cut.end]
                    .iter()
                    .filter_map(|b| b.groups.iter().find(|c| c.ways == cut.chips).map(|c| c.tasks))
            })
            .collect();
        if chosen.iter().fold(0u64, |a, &t| a.saturating_add(t)) <= budget {
            return Ok(cuts);
        }
        ceiling = chosen.iter().copied().max().unwrap_or(0).saturating_sub(1);
    }
}

/// Why a block's larger groups were left out, with the chips the model would need without the
/// program-size limit when known; empty when no larger group exists.
fn left_out(larger_exists: bool, unlimited_chips: Option<u32>) -> String {
    match (larger_exists, unlimited_chips) {
        (false, _) => String::new(),
        (true, None) => " (larger groups are left out: exchanging its values tile by tile among them would exceed the program-size limit)".into(),
        (true, Some(n)) => format!(" (larger groups are left out: exchanging its values tile by tile among them would exceed the program-size limit; without that limit the model needs at least {n} chips)"),
    }
}

/// A block that fits no group only because larger groups would outgrow the program-size limit:
/// the error also says how many chips the model would need without that limit (placed on every
/// group size, fewest chips), so the user sees both what it costs and why it is refused.
fn with_unlimited_count(
    mut e: PlaceError,
    original: &[Block],
    shared: &[Shared],
    target: &Target,
    opts: &PlaceOptions,
) -> PlaceError {
    if let PlaceError::BlockTooLarge { larger, .. } = &mut e {
        if !larger.is_empty() {
            if let Ok(cuts) = partition(original, shared, target, &opts.unlimited(), PROGRAM_BUDGET) {
                let chips = cuts.iter().map(|c| c.chips).fold(0, u32::saturating_add);
                *larger = left_out(true, Some(chips));
            }
        }
    }
    e
}

/// [`place`], with the per-stage plan the fabric scheduler executes.
pub fn place_with_plan(
    g: &Graph,
    target: &Target,
    opts: &PlaceOptions,
) -> Result<(Placement, Vec<StagePlan>), PlaceError> {
    place_within(g, target, opts, &[PREFERRED_BUDGET, PROGRAM_BUDGET], true)
}

/// [`place_with_plan`] held to the preferred program size only: what the driver tries on every
/// form before it lets any form's program grow (see [`PREFERRED_BUDGET`]). Its errors are bare
/// (no fewest-chips count): the driver shows [`place_with_plan`]'s when nothing places.
pub fn place_preferred(
    g: &Graph,
    target: &Target,
    opts: &PlaceOptions,
) -> Result<(Placement, Vec<StagePlan>), PlaceError> {
    place_within(g, target, opts, &[PREFERRED_BUDGET], false)
}

/// The placement under the first of `budgets` (program sizes, ascending) that has one; with
/// `explain`, an error says how many chips would do.
fn place_within(
    g: &Graph,
    target: &Target,
    opts: &PlaceOptions,
    budgets: &[u64],
    explain: bool,
) -> Result<(Placement, Vec<StagePlan>), PlaceError> {
    let largest = budgets.last().copied().unwrap_or(PROGRAM_BUDGET);
    let (chain, shared) = blocks::blocks(g, target, opts.weight_dtype);
    let (chain, shared) = coarsen(chain, shared, MAX_BLOCKS);
    if chain.is_empty() {
        return Err(PlaceError::Empty);
    }
    let original = chain.clone();
    let mut chain = chain;
    let unlimited = |e: PlaceError| with_unlimited_count(e, &original, &shared, target, opts);
    // Each program size in turn; the last one's answer (or error) stands.
    let mut tried = Err(PlaceError::Empty);
    for (k, &budget) in budgets.iter().enumerate() {
        let mut attempt = chain.clone();
        tried = buildable(&mut attempt, &shared, target, opts, budget);
        if tried.is_ok() || k + 1 == budgets.len() {
            chain = attempt;
            break;
        }
    }
    let cuts = match tried {
        Ok(cuts) => cuts,
        Err(e) if !explain => return Err(e),
        // The fewest chips named must be a buildable placement's too: place without limits.
        Err(e @ (PlaceError::TooFewChips { .. } | PlaceError::CrossRack { .. })) => {
            let fewest = buildable(&mut chain.clone(), &shared, target, &opts.unlimited(), largest)
                .map(|cuts| cuts.iter().map(|c| c.chips).fold(0u32, u32::saturating_add));
            return Err(match (e, fewest) {
                (
                    PlaceError::TooFewChips {
                        needed_bytes,
                        chip_bytes,
                        chips,
                        ..
                    },
                    Ok(min_chips),
                ) => PlaceError::TooFewChips {
                    needed_bytes,
                    chip_bytes,
                    min_chips,
                    chips,
                },
                (PlaceError::CrossRack { per_rack, .. }, Ok(chips)) => PlaceError::CrossRack {
                    chips,
                    racks: target.racks_for(chips),
                    per_rack,
                },
                // No buildable placement at any chip count: that is the answer.
                (_, Err(none)) => unlimited(none),
                (e, _) => e,
            });
        }
        Err(e) => return Err(unlimited(e)),
    };
    let costs = StageCosts::with_shared(&chain, &shared, target).with_partition(opts.partition);
    // The ILP (ilp.rs) is an independent check of this optimum in the tests; microlp's branch and
    // bound has no deterministic node limit and can take minutes on 20-block chains, so a compile
    // never waits for it.
    let proven = chain
        .iter()
        .filter(|b| {
            b.groups
                .iter()
                .all(|c| matches!(c.method, sharding::Method::Ilp | sharding::Method::Single))
        })
        .count();
    let method = format!(
        "pipeline stages by exact dynamic program over {} blocks; ops split over each stage's group by ILP ({} of {} blocks proven optimal at every group size; the rest by the ILP's best within its node limit or the heuristic); {:?} partitioning",
        chain.len(),
        proven,
        chain.len(),
        opts.partition
    )
    .to_lowercase();
    let chips_used: u32 = cuts.iter().map(|s| s.chips).sum();
    let racks = target.racks_for(chips_used);
    let mut first_chip = 0u32;
    let mut stages = Vec::with_capacity(cuts.len());
    let mut plans = Vec::with_capacity(cuts.len());
    for (k, cut) in cuts.iter().enumerate() {
        let run = &chain[cut.start..cut.end];
        let last_chip = first_chip + cut.chips - 1;
        let mut stage_racks: Vec<u32> = (first_chip..=last_chip).map(|c| target.locate(c).rack).collect();
        stage_racks.dedup();
        let per_chip = cut.bytes.div_ceil(u64::from(cut.chips));
        let costs_here: Vec<&blocks::GroupCost> = run
            .iter()
            .filter_map(|b| b.groups.iter().find(|c| c.ways == cut.chips))
            .collect();
        // The same stage had the heuristic split every block: the sharded part swapped.
        let heuristic_cycles = costs_here.iter().fold(cut.cycles, |a, c| {
            a.saturating_sub(c.cycles).saturating_add(c.heuristic_cycles)
        });
        // The same stage with every block at its sharding's lower bound: the gap left open by
        // blocks the ILP did not prove (equal to `cycles` when all were proven or single).
        let lower_bound_cycles = if costs_here.iter().all(|c| c.method == sharding::Method::Ilp) {
            cut.cycles
        } else {
            costs_here.iter().fold(cut.cycles, |a, c| {
                a.saturating_sub(c.cycles)
                    .saturating_add(c.lower_bound.min(c.cycles))
            })
        };
        let sharding = if cut.chips == 1 {
            "single"
        } else if costs_here.iter().all(|c| c.method == sharding::Method::Ilp) {
            "ilp"
        } else if costs_here.iter().all(|c| c.method == sharding::Method::Heuristic) {
            "heuristic"
        } else {
            "mixed"
        };
        let reason = if k + 1 == cuts.len() {
            "end"
        } else if cut.chips > costs.stage(cut.start, cut.end).chips {
            "speed"
        } else if costs.stage(cut.start, cut.end + 1).chips > cut.chips {
            "capacity"
        } else {
            "bottleneck"
        };
        stages.push(Stage {
            first_chip,
            chips: cut.chips,
            racks: stage_racks,
            blocks: (run[0].name.clone(), run[run.len() - 1].name.clone()),
            block_count: run.len(),
            ops: run.iter().map(|b| b.ops.len()).sum(),
            weight_bytes: costs.weights(cut.start, cut.end),
            activation_bytes: run.iter().map(|b| b.activation_bytes).max().unwrap_or(0),
            transfer_in_bytes: costs.cut_in(cut.start),
            cycles: cut.cycles,
            sharding: sharding.to_string(),
            heuristic_cycles,
            lower_bound_cycles,
            sram_bytes_per_chip: per_chip,
            sram_utilization: per_chip as f64 / target.sram.bytes as f64,
            cut: reason.to_string(),
        });
        plans.push(StagePlan {
            first_chip,
            chips: cut.chips,
            ops: run.iter().flat_map(|b| b.ops.iter().copied()).collect(),
            blocks: run.iter().flat_map(|b| b.parts.iter().copied()).collect(),
            choice: run
                .iter()
                .flat_map(|b| {
                    let cost = b.groups.iter().find(|c| c.ways == cut.chips);
                    // A hand-built block has no sharding: every op whole (strategy 0).
                    cost.map_or_else(|| vec![0; b.ops.len()], |c| c.choice.clone())
                })
                .collect(),
        });
        first_chip += cut.chips;
    }
    let last_chip = chips_used.saturating_sub(1);
    let mut nodes: Vec<u32> = (0..=last_chip).map(|c| target.locate(c).node).collect();
    nodes.dedup();
    let mut rack_ids: Vec<u32> = (0..=last_chip).map(|c| target.locate(c).rack).collect();
    rack_ids.dedup();
    let placement = Placement {
        method,
        blocks: chain.len(),
        chips_used,
        chips_given: opts.chips,
        racks,
        bottleneck_cycles: stages.iter().map(|s| s.cycles).max().unwrap_or(0),
        weight_bytes: stages.iter().map(|s| s.weight_bytes).sum(),
        stages,
        tiled: chain.iter().flat_map(|b| b.tiled.iter().cloned()).collect(),
        failure_domains: FailureDomains {
            chips: chips_used,
            nodes,
            racks: rack_ids,
        },
    };
    Ok((placement, plans))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blocks::GroupCost;

    /// A block built by hand with its sharding: per group size, (ways, bytes a chip, estimated
    /// instructions and transfers).
    fn block_on(name: &str, groups: &[(u32, u64, u64)]) -> Block {
        let mut b = Block::by_hand(name, 1_000, 0, 0);
        b.groups = groups
            .iter()
            .map(|&(ways, bytes, tasks)| GroupCost::by_hand(ways, 1_000 / u64::from(ways), bytes, tasks))
            .collect();
        b
    }

    #[test]
    fn a_block_held_back_only_by_the_program_size_says_what_it_would_need_without_it() {
        let t = Target::lpu_v1();
        let cap = t.sram.bytes;
        let opts = PlaceOptions::default();
        // `big` fits no chip alone and a pair only with more instructions and transfers than
        // any program may have.
        let chain = vec![
            block_on("small", &[(1, cap / 4, 10)]),
            block_on("big", &[(1, 2 * cap, 10), (2, cap / 4, PROGRAM_BUDGET + 1)]),
        ];
        let e = buildable(&mut chain.clone(), &[], &t, &opts, PROGRAM_BUDGET).unwrap_err();
        let e = with_unlimited_count(e, &chain, &[], &t, &opts);
        let PlaceError::BlockTooLarge {
            block,
            largest,
            bytes_per_chip,
            usable_bytes,
            ..
        } = &e
        else {
            panic!("expected BlockTooLarge, got {e:?}");
        };
        assert_eq!((block.as_str(), *largest), ("big", 1));
        assert!(bytes_per_chip > usable_bytes);
        let message = e.to_string();
        assert!(
            message.contains(
                "exceed the program-size limit; without that limit the model needs at least 3 chips"
            ),
            "{message}"
        );
        // Within the program size the same pair places: one chip and a pair.
        let chain = vec![
            block_on("small", &[(1, cap / 4, 10)]),
            block_on("big", &[(1, 2 * cap, 10), (2, cap / 4, 10)]),
        ];
        let cuts = buildable(&mut chain.clone(), &[], &t, &opts, PROGRAM_BUDGET).unwrap();
        let spans: Vec<(usize, usize, u32)> = cuts.iter().map(|c| (c.start, c.end, c.chips)).collect();
        assert_eq!(spans, vec![(0, 1, 1), (1, 2, 2)]);
    }
}
