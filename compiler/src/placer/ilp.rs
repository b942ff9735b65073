//! The pipeline partition as an integer linear program (good_lp with the pure-Rust microlp
//! solver), a second, independent way to the same optimum as the dynamic program.
//!
//! One binary per candidate stage `[i, j)`; the chosen stages form a path from block 0 to the
//! end (flow conservation at every block boundary), use at most the chips given, and a continuous
//! `T` bounds every chosen stage's cycles; the objective is `T`. Cycles are scaled by the largest
//! candidate so coefficients stay near 1. A panic or error inside the solver is caught and reported
//! as no answer, and the decoded stages are re-checked (contiguity, chips, SRAM, cycles recomputed
//! from the cost model), never taken on the solver's word.
//!
//! It prices every incoming transfer as one hop (a stage's position is not a variable), so it is
//! compared with the dynamic program on [`StageCosts::without_distance`]. It is a check, not part of
//! `lpuc place`: microlp's branch and bound has no deterministic node
//! limit, and chains of 14-24 blocks took from seconds to minutes (and gigabytes) in review, so
//! only the tests run it, on short chains, to prove the dynamic program's optimum independently.

use super::pipeline::{StageCosts, StageCut};
use good_lp::{variable, Expression, ProblemVariables, Solution, SolverModel, Variable};

/// Branch-and-bound nodes HiGHS may explore on a pipeline partition (the `highs` feature): a
/// deterministic bound, far above what the largest instance given needs.
#[cfg(feature = "highs")]
const PIPELINE_NODE_LIMIT: usize = 100_000;

/// Largest instance the ILP is given: blocks and chips (microlp's branch and bound is fast below).
pub const MAX_ILP_BLOCKS: usize = 24;
pub const MAX_ILP_CHIPS: u32 = 64;

/// The optimal partition by ILP, or `None` when the instance is too big, infeasible, or the
/// solver failed. The result is re-checked before it is returned.
pub fn solve(costs: &StageCosts, blocks: usize, max_chips: u32) -> Option<Vec<StageCut>> {
    if blocks == 0 || blocks > MAX_ILP_BLOCKS || max_chips > MAX_ILP_CHIPS {
        return None;
    }
    let candidates: Vec<StageCut> = (0..blocks)
        .flat_map(|i| (i + 1..=blocks).map(move |j| (i, j)))
        .flat_map(|(i, j)| costs.options(i, j, max_chips))
        .filter(|s| s.chips <= max_chips)
        .collect();
    let scale = candidates.iter().map(|s| s.cycles).max().unwrap_or(1).max(1) as f64;
    let result = std::panic::catch_unwind(|| {
        let mut vars = ProblemVariables::new();
        let x: Vec<Variable> = candidates.iter().map(|_| vars.add(variable().binary())).collect();
        let t = vars.add(variable().min(0.0).max(1.0));
        #[cfg(not(feature = "highs"))]
        let mut model = vars.minimise(t).using(good_lp::microlp);
        #[cfg(feature = "highs")]
        let mut model = crate::placer::highs_model(vars.minimise(t), PIPELINE_NODE_LIMIT);
        for k in 0..=blocks {
            let mut flow = Expression::from(0.0);
            for (s, &v) in candidates.iter().zip(&x) {
                if s.end == k {
                    flow += v;
                }
                if s.start == k {
                    flow -= v;
                }
            }
            let net = if k == 0 {
                -1.0
            } else if k == blocks {
                1.0
            } else {
                0.0
            };
            model = model.with(flow.eq(net));
        }
        let chips: Expression = candidates
            .iter()
            .zip(&x)
            .map(|(s, &v)| f64::from(s.chips) * v)
            .sum();
        model = model.with(chips.leq(f64::from(max_chips)));
        for (s, &v) in candidates.iter().zip(&x) {
            model = model.with((s.cycles as f64 / scale * v).leq(t));
        }
        model.solve().ok().map(|sol| {
            candidates
                .iter()
                .zip(&x)
                .filter(|(_, &v)| sol.value(v) > 0.5)
                .map(|(s, _)| s.clone())
                .collect::<Vec<StageCut>>()
        })
    })
    .ok()
    .flatten()?;
    recheck(costs, blocks, max_chips, result)
}

/// Accept a decoded solution only if it is a contiguous cover within the chips, with every stage's
/// cost recomputed from the cost model.
fn recheck(
    costs: &StageCosts,
    blocks: usize,
    max_chips: u32,
    mut stages: Vec<StageCut>,
) -> Option<Vec<StageCut>> {
    stages.sort_by_key(|s| s.start);
    let mut next = 0;
    for s in &stages {
        let fits = s.bytes <= u64::from(s.chips).saturating_mul(costs.capacity());
        if s.start != next || *s != costs.stage_on(s.start, s.end, s.chips) || !costs.allowed(s) || !fits {
            return None;
        }
        next = s.end;
    }
    let chips: u32 = stages.iter().map(|s| s.chips).sum();
    (next == blocks && chips <= max_chips).then_some(stages)
}

#[cfg(test)]
mod tests {
    use super::super::blocks::Block;
    use super::super::pipeline::{best_partition, Goal};
    use super::*;
    use lpuc_target::Target;

    #[test]
    fn the_ilp_reaches_the_dynamic_programs_optimum() {
        let t = Target::lpu_v1();
        let cap = t.sram.bytes;
        let blocks: Vec<Block> = (0..12u64)
            .map(|i| Block {
                name: format!("l{i}"),
                ops: vec![],
                compute_cycles: 10_000 + (i * 7919) % 5000,
                weight_bytes: cap / 3 + (i * 104_729) % (cap / 4),
                input_bytes: 0,
                activation_bytes: 1 << 20,
                output_bytes: 0,
                tiled: vec![],
                cut_bytes: 1 << 22,
                sends: vec![],
                groups: vec![],
                parts: vec![],
            })
            .collect();
        let costs = StageCosts::new(&blocks, &t).without_distance();
        for chips in [4, 6, 9, 12] {
            let dp = best_partition(&costs, chips, Goal::Fastest).map(|s| s.iter().map(|x| x.cycles).max());
            let ilp = solve(&costs, blocks.len(), chips).map(|s| s.iter().map(|x| x.cycles).max());
            assert_eq!(ilp, dp, "{chips} chips");
        }
    }
}
