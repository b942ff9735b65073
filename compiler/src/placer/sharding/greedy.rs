//! The heuristic: ops in program order, each taking the strategy cheapest given its producers'
//! choices (its compute, the collectives its inputs need, and the gather its result needs if it
//! leaves the block). Large weights must be split when the op can split them at all, which keeps
//! a chip's share of the block near an even split. Linear in ops times strategies; deterministic
//! (ties go to the earlier strategy, replicated first).

use super::layout::Layout;
use super::problem::Problem;

/// Weights and inputs larger than this are split whenever a strategy can split them.
pub const SPLIT_ABOVE_BYTES: u64 = 1 << 20;

/// A strategy index per op.
pub fn solve(p: &Problem) -> Vec<usize> {
    // Per op, per input: the resident read there, if any, and its size.
    let mut resident_at: Vec<Vec<Option<u64>>> = p
        .ops
        .iter()
        .enumerate()
        .map(|(k, _)| vec![None; p.strategies[k][0].inputs.len()])
        .collect();
    for r in &p.residents {
        for &(op, input) in &r.reads {
            resident_at[op][input] = Some(r.bytes);
        }
    }
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); p.ops.len()];
    for (e, edge) in p.edges.iter().enumerate() {
        incoming[edge.consumer].push(e);
    }
    let mut choice: Vec<usize> = Vec::with_capacity(p.ops.len());
    for k in 0..p.ops.len() {
        let splits_big = |s: usize| {
            p.strategies[k][s].inputs.iter().enumerate().all(|(i, l)| {
                resident_at[k][i].is_none_or(|b| b <= SPLIT_ABOVE_BYTES || matches!(l, Layout::Split(_)))
            })
        };
        let lean: Vec<usize> = (0..p.strategies[k].len()).filter(|&s| splits_big(s)).collect();
        let candidates: Vec<usize> = if lean.is_empty() {
            (0..p.strategies[k].len()).collect()
        } else {
            lean
        };
        let cost = |s: usize| {
            incoming[k]
                .iter()
                .fold(p.compute[k][s].saturating_add(p.leaving[k][s]), |acc, &e| {
                    let edge = &p.edges[e];
                    acc.saturating_add(p.edge_cost(edge, choice[edge.producer], s))
                })
        };
        let best = candidates
            .into_iter()
            .min_by_key(|&s| (cost(s), s))
            .expect("every op has the replicated strategy");
        choice.push(best);
    }
    choice
}
