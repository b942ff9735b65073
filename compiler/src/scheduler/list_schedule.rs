//! List scheduling: ops in priority order, each at the earliest cycle its operands are ready, on
//! the unit of its kind with the earliest idle gap long enough to hold it.
//!
//! Priority is the op's bottom level (the longest latency chain from it to the end), so the chain
//! that sets the makespan is served first; ties go to the lower op id, which keeps the result
//! deterministic.

use super::work::work_of;
use super::ScheduleError;
use lpuc_ir::{Graph, OpId};
use lpuc_target::{Cost, Target, UnitId, UnitKind, Work};
use std::collections::{BTreeMap, BTreeSet};

/// An op with its place in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub op: OpId,
    pub unit: UnitId,
    pub start: u64,
    pub cost: Cost,
    pub work: Work,
}

impl Placed {
    pub fn done(&self) -> u64 {
        self.start + self.cost.latency
    }
}

/// Busy intervals of one unit, sorted by start.
#[derive(Default)]
struct Timeline(Vec<(u64, u64)>);

impl Timeline {
    /// Earliest start >= `from` where `len` cycles are free.
    fn earliest_gap(&self, from: u64, len: u64) -> u64 {
        let mut t = from;
        for &(s, e) in &self.0 {
            if t + len <= s {
                return t;
            }
            t = t.max(e);
        }
        t
    }

    fn insert(&mut self, start: u64, end: u64) {
        let pos = self.0.partition_point(|&(s, _)| s < start);
        self.0.insert(pos, (start, end));
    }
}

/// Place every op of `g` (indexed by op id).
pub fn list_schedule(g: &Graph, target: &Target) -> Result<Vec<Placed>, ScheduleError> {
    let n = g.num_ops();
    let mut costs = Vec::with_capacity(n);
    let mut works = Vec::with_capacity(n);
    for o in g.op_ids() {
        let work = work_of(g, o);
        let cost = target.cost(&work).map_err(|reason| ScheduleError::Unexecutable {
            node: g.provenance(o).node.clone(),
            op: g.op(o).kind.name().to_string(),
            reason,
        })?;
        costs.push(cost);
        works.push(work);
    }
    let preds: Vec<BTreeSet<OpId>> = g
        .op_ids()
        .map(|o| g.op(o).inputs.iter().filter_map(|&v| g.producer(v)).collect())
        .collect();
    let mut succs: Vec<BTreeSet<OpId>> = vec![BTreeSet::new(); n];
    for o in g.op_ids() {
        for p in &preds[o.index()] {
            succs[p.index()].insert(o);
        }
    }
    // Ops are in topological order, so a reverse sweep sees successors first.
    let mut bottom = vec![0u64; n];
    for o in g.op_ids().collect::<Vec<_>>().into_iter().rev() {
        let tail = succs[o.index()]
            .iter()
            .map(|s| bottom[s.index()])
            .max()
            .unwrap_or(0);
        bottom[o.index()] = costs[o.index()].latency + tail;
    }

    let mut timelines: BTreeMap<UnitId, Timeline> = BTreeMap::new();
    for u in target.units() {
        timelines.insert(u, Timeline::default());
    }
    let mut waiting: Vec<usize> = preds.iter().map(BTreeSet::len).collect();
    // Ready ops keyed by (higher bottom level first, then lower id).
    let mut ready: BTreeSet<(std::cmp::Reverse<u64>, OpId)> = g
        .op_ids()
        .filter(|o| waiting[o.index()] == 0)
        .map(|o| (std::cmp::Reverse(bottom[o.index()]), o))
        .collect();
    let mut placed: Vec<Option<Placed>> = vec![None; n];
    while let Some(entry) = ready.pop_first() {
        let o = entry.1;
        let cost = costs[o.index()];
        let earliest = preds[o.index()]
            .iter()
            .map(|p| placed[p.index()].as_ref().map_or(0, Placed::done))
            .max()
            .unwrap_or(0);
        let kind: UnitKind = works[o.index()].unit_kind();
        let (unit, start) = timelines
            .iter()
            .filter(|(u, _)| u.kind == kind)
            .map(|(u, t)| (*u, t.earliest_gap(earliest, cost.occupancy)))
            .min_by_key(|&(u, start)| (start, u))
            .expect("every target has at least one unit of each kind");
        timelines
            .get_mut(&unit)
            .expect("unit exists")
            .insert(start, start + cost.occupancy);
        placed[o.index()] = Some(Placed {
            op: o,
            unit,
            start,
            cost,
            work: works[o.index()].clone(),
        });
        for s in &succs[o.index()] {
            waiting[s.index()] -= 1;
            if waiting[s.index()] == 0 {
                ready.insert((std::cmp::Reverse(bottom[s.index()]), *s));
            }
        }
    }
    Ok(placed
        .into_iter()
        .map(|p| p.expect("all ops placed: the graph is acyclic"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_filled() {
        let mut t = Timeline::default();
        t.insert(10, 20);
        t.insert(30, 40);
        assert_eq!(t.earliest_gap(0, 10), 0);
        assert_eq!(t.earliest_gap(0, 11), 40);
        assert_eq!(t.earliest_gap(15, 10), 20);
        assert_eq!(t.earliest_gap(21, 10), 40);
    }
}
