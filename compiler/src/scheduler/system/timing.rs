//! Timing the system program: every instruction an exact cycle on an exact unit of its chip,
//! every send an exact cycle on every link of its route.
//!
//! Tasks are taken in program order. An instruction starts at the earliest cycle its operands are
//! ready, no earlier than the chip's previous instruction issued (in-order issue per chip, which
//! keeps results from waiting long for their readers, and so bounds SRAM), on a unit of its kind
//! with a gap long enough (the earliest such unit; ties to the lower index). A send follows `Target::route`; each hop takes the earliest gap on its
//! directed link at or after its data is there (store and forward), and the copy is ready at the
//! last hop's arrival. A task may also wait for other tasks to finish (`after`): tiles of a
//! region use it to keep at most two tiles in flight, which bounds their SRAM. Gaps are filled first-fit, so later tasks may run before earlier ones when
//! a unit or link is idle; nothing ever runs before its data, and no unit or link is ever used
//! twice at once, which is what makes the schedule exact without arbitration.

use super::lower::{Program, Task};
use crate::scheduler::ScheduleError;
use lpuc_artifact::Hop;
use lpuc_target::{Cost, Target, UnitId, UnitKind};
use std::collections::BTreeMap;

/// Busy intervals of one unit or link, sorted by start.
#[derive(Default)]
struct Timeline(Vec<(u64, u64)>);

impl Timeline {
    /// Earliest start >= `from` where `len` cycles are free.
    fn earliest_gap(&self, from: u64, len: u64) -> u64 {
        let mut t = from;
        // Intervals ending before `from` cannot block; skip them by binary search on the end,
        // which is sorted too because intervals never overlap.
        let first = self.0.partition_point(|&(_, e)| e <= from);
        for &(s, e) in &self.0[first..] {
            if t.saturating_add(len) <= s {
                return t;
            }
            t = t.max(e);
        }
        t
    }

    fn insert(&mut self, start: u64, end: u64) {
        if end == start {
            return;
        }
        let pos = self.0.partition_point(|&(s, _)| s < start);
        self.0.insert(pos, (start, end));
    }
}

/// A timed instruction: task index, unit, start and cost.
#[derive(Clone, Debug)]
pub struct TimedInstr {
    pub task: usize,
    pub chip: u32,
    pub unit: UnitId,
    pub start: u64,
    pub cost: Cost,
}

/// A timed send: task index and its hops.
#[derive(Clone, Debug)]
pub struct TimedSend {
    pub task: usize,
    pub hops: Vec<Hop>,
    pub arrival: u64,
}

/// The timing of a whole program.
pub struct Timing {
    pub instrs: Vec<TimedInstr>,
    pub sends: Vec<TimedSend>,
    /// Per buffer: when its writer starts (its space is taken), when it is ready, and when its
    /// last reader is done with it (`None`: never read).
    pub alloc: Vec<u64>,
    pub ready: Vec<u64>,
    pub last_use: Vec<Option<u64>>,
    pub makespan: u64,
}

fn units_of(target: &Target, kind: UnitKind) -> u32 {
    match kind {
        UnitKind::Mxm => target.mxm.count,
        UnitKind::Vxm => target.vxm.count,
        UnitKind::Sxm => target.sxm.count,
    }
}

/// Time every task of `prog`.
pub fn time_program(prog: &Program, target: &Target) -> Result<Timing, ScheduleError> {
    let n = prog.buffers.len();
    let mut alloc = vec![0u64; n];
    let mut ready = vec![0u64; n];
    let mut last_use: Vec<Option<u64>> = vec![None; n];
    let mut units: BTreeMap<(u32, UnitId), Timeline> = BTreeMap::new();
    let mut links: BTreeMap<(u32, u32), Timeline> = BTreeMap::new();
    let mut instrs = Vec::new();
    let mut sends = Vec::new();
    let mut makespan = 0u64;
    let mut done_at = vec![0u64; prog.tasks.len()];
    let mut issued: BTreeMap<u32, u64> = BTreeMap::new();
    let delay = target.hop_arrival_delay();
    let note_use = |last: &mut Vec<Option<u64>>, b: usize, t: u64| {
        last[b] = Some(last[b].map_or(t, |x: u64| x.max(t)));
    };
    for (task, t) in prog.tasks.iter().enumerate() {
        match t {
            Task::Compute {
                chip,
                work,
                op,
                node,
                reads,
                writes,
                after,
                ..
            } => {
                let cost = target.cost(work).map_err(|reason| ScheduleError::Unexecutable {
                    node: node.clone(),
                    op: op.clone(),
                    reason,
                })?;
                // In order per chip: never before the chip's previous instruction issued, so
                // results do not wait long for readers that program order puts far later.
                let earliest = reads
                    .iter()
                    .map(|&b| ready[b])
                    .chain(after.iter().map(|&t| done_at[t]))
                    .chain(issued.get(chip).copied())
                    .max()
                    .unwrap_or(0);
                let kind = work.unit_kind();
                let (unit, start) = (0..units_of(target, kind))
                    .map(|index| {
                        let unit = UnitId { kind, index };
                        let line = units.entry((*chip, unit)).or_default();
                        (unit, line.earliest_gap(earliest, cost.occupancy))
                    })
                    .min_by_key(|&(u, s)| (s, u.index))
                    .expect("every unit kind has at least one unit");
                units
                    .entry((*chip, unit))
                    .or_default()
                    .insert(start, start + cost.occupancy);
                let done = start + cost.latency;
                done_at[task] = done;
                issued.insert(*chip, start);
                for &b in reads {
                    note_use(&mut last_use, b, done);
                }
                for &b in writes {
                    alloc[b] = start;
                    ready[b] = done;
                }
                makespan = makespan.max(done);
                instrs.push(TimedInstr {
                    task,
                    chip: *chip,
                    unit,
                    start,
                    cost,
                });
            }
            Task::Send { from, to, after, .. } => {
                let (a, b) = (prog.buffers[*from].chip, prog.buffers[*to].chip);
                let route = target.route(a, b);
                let dur = target.hop_cycles(prog.buffers[*from].bytes());
                let mut at = after.iter().map(|&t| done_at[t]).fold(ready[*from], u64::max);
                let mut hops = Vec::with_capacity(route.len().saturating_sub(1));
                for w in route.windows(2) {
                    let line = links.entry((w[0], w[1])).or_default();
                    let start = line.earliest_gap(at, dur);
                    line.insert(start, start + dur);
                    hops.push(Hop {
                        from_chip: w[0],
                        to_chip: w[1],
                        start,
                        end: start + dur,
                    });
                    at = start + dur + delay;
                }
                let first = hops.first().map_or(at, |h| h.start);
                let first_end = hops.first().map_or(at, |h| h.end);
                note_use(&mut last_use, *from, first_end);
                alloc[*to] = first;
                ready[*to] = at;
                makespan = makespan.max(at);
                sends.push(TimedSend {
                    task,
                    hops,
                    arrival: at,
                });
            }
        }
    }
    Ok(Timing {
        instrs,
        sends,
        alloc,
        ready,
        last_use,
        makespan,
    })
}
