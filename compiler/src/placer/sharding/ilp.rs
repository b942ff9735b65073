//! The exact solver: one strategy per op as an integer linear program, Alpa-style (good_lp with
//! the pure-Rust microlp solver).
//!
//! ```text
//! x[o][s] in {0,1}, sum_s x[o][s] = 1                      one strategy per op
//! t[e][L][M] >= sum_{s: out(s)=L} x[p][s]
//!             + sum_{s: in_i(s)=M} x[c][s] - 1, t >= 0     edge e = (p -> c, input i) pays the
//!                                                          collective L -> M when both are chosen
//! u[r][M] >= sum_{s: in_i(s)=M} x[c][s]                     resident r is stored in layout M
//! sum_{r,M} bytes(r, M) u[r][M] <= budget                   a chip's share of the block's SRAM
//! minimise sum compute(s) x + sum leaving(s) x + sum cost(L,M) t
//! ```
//!
//! Edge variables exist per pair of layouts, not per pair of strategies, which keeps the program
//! small (a transformer layer: a few hundred binaries). Costs are scaled so coefficients stay near
//! one. The answer is decoded and re-evaluated by [`Problem::evaluate`]; a panic or error inside
//! the solver, or an answer over the budget, is no answer. Only blocks of at most [`MAX_ILP_OPS`]
//! ops are given to the solver, and branch and bound stops after [`NODE_LIMIT`] nodes (microlp's
//! deterministic limit; good_lp builds the model, microlp solves it with that option), so the
//! same block gets the same answer on any machine; an answer cut short by the limit is used only
//! if it beats the heuristic, and is reported as not proven.

use super::layout::Layout;
use super::problem::Problem;
use good_lp::{variable, Expression, ProblemVariables, SolverModel, Variable};
use std::collections::BTreeMap;

/// Largest block the ILP is given.
pub const MAX_ILP_OPS: usize = 200;

/// Branch-and-bound nodes a solve may explore: a deterministic budget (the same answer on a fast
/// or a slow machine), where a time limit would not be.
pub const NODE_LIMIT: u64 = 2_000;

/// An answer of the ILP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub choice: Vec<usize>,
    /// Proven optimal (else the best found within [`NODE_LIMIT`]).
    pub optimal: bool,
}

/// The optimal choice within `budget` resident bytes a chip (or the best found within the node
/// limit), or `None` (too big, infeasible, no solution within the limit, or the solver failed).
pub fn solve(p: &Problem, budget: u64) -> Option<Answer> {
    if p.ops.is_empty() || p.ops.len() > MAX_ILP_OPS {
        return None;
    }
    // Strategies whose cost is infinite (the target cannot run them) are left out.
    let usable = |k: usize, s: usize| p.compute[k][s] != u64::MAX && p.leaving[k][s] != u64::MAX;
    let finite_max = p
        .compute
        .iter()
        .chain(&p.leaving)
        .flatten()
        .copied()
        .filter(|&c| c != u64::MAX)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let scale = finite_max * p.ops.len() as f64;
    let answer = std::panic::catch_unwind(|| {
        let mut vars = ProblemVariables::new();
        // Variables are numbered in creation order, which is how microlp reports their values;
        // the strategy binaries come first.
        let mut count = 0usize;
        let mut x_index: Vec<Vec<usize>> = Vec::new();
        let x: Vec<Vec<Variable>> = p
            .strategies
            .iter()
            .map(|list| {
                let row: Vec<Variable> = list.iter().map(|_| vars.add(variable().binary())).collect();
                x_index.push((count..count + row.len()).collect());
                count += row.len();
                row
            })
            .collect();
        let mut objective = Expression::from(0.0);
        let mut constraints = Vec::new();
        for (k, row) in x.iter().enumerate() {
            let mut one = Expression::from(0.0);
            for (s, &v) in row.iter().enumerate() {
                one += v;
                if usable(k, s) {
                    objective += (p.compute[k][s] as f64 + p.leaving[k][s] as f64) / scale * v;
                } else {
                    constraints.push(Expression::from(v).leq(0.0));
                }
            }
            constraints.push(one.eq(1.0));
        }
        // Strategies grouped by the layout they give or need.
        let by_layout = |k: usize, f: &dyn Fn(usize) -> Layout| {
            let mut groups: BTreeMap<Layout, Vec<Variable>> = BTreeMap::new();
            for (s, &v) in x[k].iter().enumerate() {
                groups.entry(f(s)).or_default().push(v);
            }
            groups
        };
        for e in &p.edges {
            let from = by_layout(e.producer, &|s| p.strategies[e.producer][s].output);
            let to = by_layout(e.consumer, &|s| p.strategies[e.consumer][s].inputs[e.input]);
            for (l, lv) in &from {
                for (m, mv) in &to {
                    let cost = p.links_reshard(*l, *m, e);
                    if cost == 0 {
                        continue;
                    }
                    let both: Expression = lv.iter().chain(mv).map(|&v| Expression::from(v)).sum();
                    if cost == u64::MAX {
                        constraints.push(both.leq(1.0));
                        continue;
                    }
                    let t = vars.add(variable().min(0.0));
                    constraints.push((both - 1.0).leq(t));
                    objective += cost as f64 / scale * t;
                }
            }
        }
        let mut memory = Expression::from(0.0);
        for r in p.residents.iter().filter(|r| r.counted) {
            let mut layouts: BTreeMap<Layout, Variable> = BTreeMap::new();
            for &(op, input) in &r.reads {
                for (s, &v) in x[op].iter().enumerate() {
                    let l = p.strategies[op][s].inputs[input];
                    let u = *layouts
                        .entry(l)
                        .or_insert_with(|| vars.add(variable().min(0.0).max(1.0)));
                    // Reading in layout l at op means storing it in l.
                    constraints.push(Expression::from(v).leq(u));
                }
            }
            for (l, u) in layouts {
                memory += p.resident_bytes(r, l) as f64 / (1u64 << 20) as f64 * u;
            }
        }
        constraints.push(memory.leq(budget as f64 / (1u64 << 20) as f64));
        #[cfg(not(feature = "highs"))]
        let answer = {
            let _ = &x;
            let mut model = vars.minimise(objective).using(good_lp::microlp);
            for c in constraints {
                model = model.with(c);
            }
            let mut options = ::microlp::SolveOptions::default();
            options.node_limit = Some(NODE_LIMIT);
            let outcome = model.as_inner().solve_with(options).ok()?;
            let optimal = outcome.is_optimal();
            let values: Vec<f64> = outcome.solution()?.iter().map(|(_, v)| v).collect();
            let choice = x_index
                .iter()
                .map(|row| {
                    row.iter()
                        .position(|&i| values.get(i).is_some_and(|&v| v > 0.5))
                        .unwrap_or(0)
                })
                .collect::<Vec<usize>>();
            Answer { choice, optimal }
        };
        #[cfg(feature = "highs")]
        let answer = {
            use good_lp::{Solution, SolutionStatus};
            let _ = &x_index;
            let mut model = crate::placer::highs_model(vars.minimise(objective), NODE_LIMIT as usize);
            for c in constraints {
                model = model.with(c);
            }
            let sol = model.solve().ok()?;
            let optimal = matches!(sol.status(), SolutionStatus::Optimal);
            let choice = x
                .iter()
                .map(|row| row.iter().position(|&v| sol.value(v) > 0.5).unwrap_or(0))
                .collect::<Vec<usize>>();
            Answer { choice, optimal }
        };
        Some(answer)
    })
    .ok()
    .flatten()?;
    // Re-judge the answer: a valid pick per op, within the budget.
    let valid = answer
        .choice
        .iter()
        .enumerate()
        .all(|(k, &s)| s < p.strategies[k].len() && usable(k, s));
    (valid && p.bytes_of(&answer.choice) <= budget).then_some(answer)
}

impl Problem {
    /// Cycles of edge `e` for producer layout `from` and consumer layout `to`.
    fn links_reshard(&self, from: Layout, to: Layout, e: &super::problem::Edge) -> u64 {
        self.links()
            .reshard(from, to, e.bytes, e.elements, e.dtype, self.ways)
    }
}
