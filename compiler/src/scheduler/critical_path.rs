//! The critical path: the chain of instructions and transfers, across chips, that sets the
//! makespan, found by walking back from the last result.
//!
//! Each step names why it could not start earlier. An instruction waited for an operand (its
//! producer's result ready exactly at its start), for a transfer that arrived exactly then (`hop
//! delay` after its last hop), for its unit (freed exactly then), or for its chip's previous
//! instruction to issue (in-order issue, the same cycle). A transfer waited for the buffer it
//! sends (made by an instruction, or delivered by an earlier transfer it relays) or for its first
//! link (freed exactly then by another hop). Failing those, a step ordered after an instruction
//! on its chip (for a transfer, the chip it leaves or reaches) that finished exactly then (the
//! scheduler's `after` order, e.g. a tile's fetch waiting for the tile two before it, which the
//! artifact does not record) waited on that, `order`. A step that waited for none starts the chain.

use lpuc_artifact::{CriticalSplit, CriticalStep, Instruction, Schedule, StepKind, Transfer};
use lpuc_target::UnitId;
use std::collections::{BTreeMap, BTreeSet};

/// A step while walking.
#[derive(Clone, Copy)]
enum Item<'a> {
    Compute(&'a Instruction),
    Transfer(&'a Transfer),
}

impl Item<'_> {
    fn start(&self) -> u64 {
        match self {
            Item::Compute(i) => i.start,
            Item::Transfer(t) => t.hops.first().map_or(0, |h| h.start),
        }
    }
}

/// Who made what, who frees what when: looked up, not scanned, at every step of the walk.
struct Index<'a> {
    hop_delay: u64,
    writer: BTreeMap<u32, &'a Instruction>,
    carried: BTreeMap<u32, &'a Transfer>,
    freeing: BTreeMap<(u32, UnitId, u64), Vec<&'a Instruction>>,
    issuing: BTreeMap<(u32, u64), Vec<&'a Instruction>>,
    /// Hops ending on a directed link at a cycle: (from chip, to chip, end) -> transfers.
    link_free: BTreeMap<(u32, u32, u64), Vec<&'a Transfer>>,
    /// Instructions by (chip, cycle their result is ready).
    done: BTreeMap<(u32, u64), Vec<&'a Instruction>>,
}

impl<'a> Index<'a> {
    fn new(s: &'a Schedule, hop_delay: u64) -> Self {
        let mut ix = Index {
            hop_delay,
            writer: BTreeMap::new(),
            carried: BTreeMap::new(),
            freeing: BTreeMap::new(),
            issuing: BTreeMap::new(),
            link_free: BTreeMap::new(),
            done: BTreeMap::new(),
        };
        for i in &s.instructions {
            for b in &i.writes {
                ix.writer.insert(b.0, i);
            }
            ix.freeing
                .entry((i.chip, i.unit, i.busy_until()))
                .or_default()
                .push(i);
            ix.issuing.entry((i.chip, i.start)).or_default().push(i);
            ix.done.entry((i.chip, i.done_cycle())).or_default().push(i);
        }
        for t in &s.transfers {
            ix.carried.insert(t.to.0, t);
            for h in &t.hops {
                ix.link_free
                    .entry((h.from_chip, h.to_chip, h.end))
                    .or_default()
                    .push(t);
            }
        }
        ix
    }

    fn arrival(&self, t: &Transfer) -> u64 {
        t.arrival(self.hop_delay).unwrap_or(0)
    }

    /// An instruction on `chip`, not yet on the path, whose result is ready exactly at `at`: what a
    /// step ordered after it (a tile waiting for the tile two before it, say) waited for.
    fn done_on(&self, chip: u32, at: u64, seen: &BTreeSet<(bool, u32)>) -> Option<&'a Instruction> {
        self.done
            .get(&(chip, at))
            .into_iter()
            .flatten()
            .filter(|p| !seen.contains(&(false, p.id.0)))
            .min_by_key(|p| p.id)
            .copied()
    }

    /// What made buffer `b` ready exactly at `at`, if anything.
    fn ready_at(&self, b: u32, at: u64) -> Option<Item<'a>> {
        if let Some(&p) = self.writer.get(&b) {
            return (p.done_cycle() == at).then_some(Item::Compute(p));
        }
        let &t = self.carried.get(&b)?;
        (self.arrival(t) == at).then_some(Item::Transfer(t))
    }
}

/// Why `current` started when it did, and the step before it; `None` starts the chain.
fn predecessor<'a>(
    ix: &Index<'a>,
    current: Item<'a>,
    seen: &BTreeSet<(bool, u32)>,
) -> Option<(&'static str, Item<'a>)> {
    match current {
        Item::Compute(i) => {
            let mut operands: Vec<Item> = i.reads.iter().filter_map(|b| ix.ready_at(b.0, i.start)).collect();
            operands.sort_by_key(|p| match p {
                Item::Compute(p) => (0, p.id.0),
                Item::Transfer(t) => (1, t.id.0),
            });
            if let Some(&p) = operands.first() {
                let why = match p {
                    Item::Compute(_) => "data",
                    Item::Transfer(_) => "transfer",
                };
                return Some((why, p));
            }
            let unit = ix
                .freeing
                .get(&(i.chip, i.unit, i.start))
                .into_iter()
                .flatten()
                .filter(|p| p.id != i.id && p.occupancy > 0 && !seen.contains(&(false, p.id.0)))
                .min_by_key(|p| p.id);
            if let Some(&p) = unit {
                return Some(("unit", Item::Compute(p)));
            }
            let issue = ix
                .issuing
                .get(&(i.chip, i.start))
                .into_iter()
                .flatten()
                .filter(|p| !seen.contains(&(false, p.id.0)))
                .min_by_key(|p| p.id);
            if let Some(&p) = issue {
                return Some(("issue", Item::Compute(p)));
            }
            ix.done_on(i.chip, i.start, seen)
                .map(|p| ("order", Item::Compute(p)))
        }
        Item::Transfer(t) => {
            let first = t.hops.first()?;
            if let Some(p) = ix.ready_at(t.from.0, first.start) {
                return Some(("data", p));
            }
            let link = ix
                .link_free
                .get(&(first.from_chip, first.to_chip, first.start))
                .into_iter()
                .flatten()
                .filter(|p| p.id != t.id && !seen.contains(&(true, p.id.0)))
                .min_by_key(|p| p.id);
            if let Some(&p) = link {
                return Some(("link", Item::Transfer(p)));
            }
            // Ordered after a tile on the chip it leaves or the one it reaches (a tile's slices
            // are fetched no sooner than the receiver is done with the tile two before).
            let to_chip = t.hops.last().map_or(first.to_chip, |h| h.to_chip);
            ix.done_on(first.from_chip, first.start, seen)
                .or_else(|| ix.done_on(to_chip, first.start, seen))
                .map(|p| ("order", Item::Compute(p)))
        }
    }
}

/// The critical path of `s` (hops deliver `hop_delay` cycles after they end), first to last, and
/// how its cycles divide between compute, communication and waiting.
pub fn critical_path(s: &Schedule, hop_delay: u64) -> (Vec<CriticalStep>, CriticalSplit) {
    let ix = Index::new(s, hop_delay);
    // The last result: the instruction or transfer finishing last (an instruction on ties).
    let last_instr = s
        .instructions
        .iter()
        .max_by_key(|i| (i.done_cycle(), std::cmp::Reverse(i.id)))
        .map(|i| (i.done_cycle(), Item::Compute(i)));
    let last_transfer = s
        .transfers
        .iter()
        .max_by_key(|t| (ix.arrival(t), std::cmp::Reverse(t.id)))
        .map(|t| (ix.arrival(t), Item::Transfer(t)));
    let last = match (last_instr, last_transfer) {
        (Some(i), Some(t)) if t.0 > i.0 => t.1,
        (Some(i), _) => i.1,
        (None, Some(t)) => t.1,
        (None, None) => return (Vec::new(), CriticalSplit::default()),
    };
    let mut chain: Vec<(Item, &'static str)> = Vec::new();
    let mut seen: BTreeSet<(bool, u32)> = BTreeSet::new();
    let mut current = last;
    loop {
        let key = match current {
            Item::Compute(i) => (false, i.id.0),
            Item::Transfer(t) => (true, t.id.0),
        };
        seen.insert(key);
        if current.start() == 0 {
            chain.push((current, "start"));
            break;
        }
        match predecessor(&ix, current, &seen) {
            Some((why, p)) => {
                chain.push((current, why));
                current = p;
            }
            None => {
                chain.push((current, "start"));
                break;
            }
        }
    }
    chain.reverse();
    let makespan = s.makespan_cycles.max(1) as f64;
    let starts: Vec<u64> = chain.iter().map(|(item, _)| item.start()).collect();
    // A path that could not be followed back to cycle 0 waited that long before its first step.
    let mut split = CriticalSplit {
        waiting_cycles: starts.first().copied().unwrap_or(0),
        ..CriticalSplit::default()
    };
    let steps = chain
        .iter()
        .enumerate()
        .map(|(k, &(item, why))| {
            let start = item.start();
            let end = match item {
                Item::Compute(i) => i.done_cycle(),
                Item::Transfer(t) => ix.arrival(t),
            };
            let until = starts.get(k + 1).copied().unwrap_or(end).max(start);
            let working = end.min(until).saturating_sub(start);
            match item {
                Item::Compute(_) => split.compute_cycles += working,
                Item::Transfer(_) => split.communication_cycles += working,
            }
            split.waiting_cycles += until - start - working;
            let share = (until - start) as f64 / makespan;
            match item {
                Item::Compute(i) => CriticalStep {
                    kind: StepKind::Compute,
                    id: i.id.0,
                    chip: (s.chips > 1).then_some(i.chip),
                    unit: Some(i.unit),
                    route: Vec::new(),
                    op: i.op.clone(),
                    node: i.node.clone(),
                    start,
                    end,
                    waits_on: why.into(),
                    share,
                },
                Item::Transfer(t) => {
                    let route = t.route();
                    CriticalStep {
                        kind: StepKind::Transfer,
                        id: t.id.0,
                        chip: route.first().copied(),
                        unit: None,
                        route,
                        op: t.purpose.clone(),
                        node: s
                            .buffers
                            .get(t.to.0 as usize)
                            .map_or_else(String::new, |b| b.name.clone()),
                        start,
                        end,
                        waits_on: why.into(),
                        share,
                    }
                }
            }
        })
        .collect();
    (steps, split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_artifact::{InstrId, SCHEDULE_FORMAT};
    use lpuc_target::{UnitKind, Work};

    fn instr(id: u32, kind: UnitKind, start: u64, latency: u64) -> Instruction {
        Instruction {
            id: InstrId(id),
            chip: 0,
            unit: UnitId { kind, index: 0 },
            start,
            occupancy: latency - 10,
            latency,
            op: format!("op{id}"),
            node: format!("n{id}"),
            onnx_op: "X".into(),
            reads: vec![],
            writes: vec![],
            work: Work::Stream { bytes: 1 },
        }
    }

    #[test]
    fn an_order_the_artifact_does_not_record_is_still_followed_to_cycle_0() {
        // B shares no buffer and no unit with A and issues later; it waited for A to finish (a
        // scheduler `after` edge, as between tiles). The path runs B <- A, from cycle 0.
        let s = Schedule {
            format: SCHEDULE_FORMAT,
            target: "t".into(),
            sram_capacity_bytes: 1,
            makespan_cycles: 170,
            chips: 1,
            buffers: vec![],
            instructions: vec![instr(0, UnitKind::Mxm, 0, 120), instr(1, UnitKind::Vxm, 120, 50)],
            transfers: vec![],
        };
        let (path, split) = critical_path(&s, 0);
        let ids: Vec<u32> = path.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(path[1].waits_on, "order");
        assert_eq!(path[0].start, 0);
        let total: f64 = path.iter().map(|p| p.share).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(
            split.compute_cycles + split.communication_cycles + split.waiting_cycles,
            170
        );
    }
}
