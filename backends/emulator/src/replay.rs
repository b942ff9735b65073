//! The event replay: issue, completion and SRAM events in cycle order.
//!
//! At one cycle, completions are applied first (a result ready at cycle t may be read at t), then
//! frees (a buffer whose last reader finished at t no longer holds its bytes), then issues (which
//! allocate the buffers they write). Intervals are half-open: a unit busy until t is free at t.

use crate::{Fault, FaultKind};
use lpuc_artifact::{BufferId, BufferKind, InstrId, Schedule};
use lpuc_target::UnitId;
use std::collections::BTreeMap;

/// What the replay measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub instructions: u64,
    /// Latest cycle at which a result becomes readable.
    pub makespan: u64,
    /// Most bytes live in SRAM at once, and the first cycle it happened.
    pub peak_sram_bytes: u64,
    pub peak_sram_cycle: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// An instruction's results become readable.
    Complete(InstrId),
    /// A buffer's last reader is done with it.
    Free(BufferId),
    /// An instruction issues on its unit.
    Issue(InstrId),
}

impl Event {
    fn phase(self) -> u8 {
        match self {
            Event::Complete(_) => 0,
            Event::Free(_) => 1,
            Event::Issue(_) => 2,
        }
    }
}

struct Live {
    end: u64,
    buffer: BufferId,
    writer: Option<InstrId>,
}

pub(crate) fn replay(s: &Schedule) -> (Stats, Vec<Fault>) {
    let mut faults = Vec::new();
    let n_buf = s.buffers.len();
    let mut writer: Vec<Option<InstrId>> = vec![None; n_buf];
    let mut last_read: Vec<Option<u64>> = vec![None; n_buf];
    for ins in &s.instructions {
        for b in &ins.writes {
            writer[b.0 as usize] = Some(ins.id);
        }
        for b in &ins.reads {
            let slot = &mut last_read[b.0 as usize];
            *slot = Some(slot.unwrap_or(0).max(ins.done_cycle()));
        }
    }
    let makespan = s.instructions.iter().map(|i| i.done_cycle()).max().unwrap_or(0);

    let mut events: Vec<(u64, Event)> = Vec::new();
    for ins in &s.instructions {
        events.push((ins.start, Event::Issue(ins.id)));
        events.push((ins.done_cycle(), Event::Complete(ins.id)));
    }
    for b in &s.buffers {
        if b.kind == BufferKind::Activation {
            if let Some(w) = writer[b.id.0 as usize] {
                let w = &s.instructions[w.0 as usize];
                let free = last_read[b.id.0 as usize].unwrap_or(w.done_cycle()).max(w.start);
                events.push((free, Event::Free(b.id)));
            }
        }
    }
    events.sort_by_key(|&(cycle, e)| (cycle, e.phase(), e));

    let mut ready: Vec<Option<u64>> = vec![None; n_buf];
    let mut live: BTreeMap<u64, Vec<Live>> = BTreeMap::new();
    let mut live_bytes = 0u64;
    let mut stats = Stats {
        instructions: s.instructions.len() as u64,
        makespan,
        ..Stats::default()
    };
    let mut busy: BTreeMap<UnitId, (u64, InstrId)> = BTreeMap::new();

    // Inputs and weights are in SRAM from cycle 0 to the end.
    for b in &s.buffers {
        if matches!(b.kind, BufferKind::Input | BufferKind::Weight) {
            ready[b.id.0 as usize] = Some(0);
            allocate(s, b.id, None, 0, &mut live, &mut live_bytes, &mut faults);
        }
    }
    update_peak(&mut stats, live_bytes, 0);

    for (cycle, event) in events {
        match event {
            Event::Complete(i) => {
                for b in &s.instructions[i.0 as usize].writes {
                    ready[b.0 as usize] = Some(cycle);
                }
            }
            Event::Free(b) => {
                let buf = &s.buffers[b.0 as usize];
                if let Some(list) = live.get_mut(&buf.offset) {
                    if let Some(pos) = list.iter().position(|l| l.buffer == b) {
                        list.remove(pos);
                        live_bytes -= buf.bytes;
                    }
                    if list.is_empty() {
                        live.remove(&buf.offset);
                    }
                }
            }
            Event::Issue(i) => {
                let ins = &s.instructions[i.0 as usize];
                if let Some(&(until, holder)) = busy.get(&ins.unit) {
                    if until > cycle {
                        let h = &s.instructions[holder.0 as usize];
                        faults.push(
                            Fault::new(
                                FaultKind::UnitConflict,
                                cycle,
                                format!(
                                    "{} ({}) issues while {} ({}) holds {} until cycle {until}",
                                    ins.op, ins.node, h.op, h.node, ins.unit
                                ),
                            )
                            .at(ins.unit, vec![holder, i]),
                        );
                    }
                }
                let until = ins.start + ins.occupancy;
                let keep = busy.get(&ins.unit).is_none_or(|&(u, _)| until >= u);
                if keep {
                    busy.insert(ins.unit, (until, i));
                }
                for b in &ins.reads {
                    let r = ready[b.0 as usize];
                    if r.is_none_or(|r| r > cycle) {
                        let buf = &s.buffers[b.0 as usize];
                        let (who, when) = match writer[b.0 as usize] {
                            Some(w) => (w, s.instructions[w.0 as usize].done_cycle()),
                            None => (i, 0),
                        };
                        let p = &s.instructions[who.0 as usize];
                        faults.push(
                            Fault::new(
                                FaultKind::DependencyNotReady,
                                cycle,
                                format!(
                                    "{} ({}) reads {} ({}) which {} ({}) makes ready only at cycle {when}",
                                    ins.op, ins.node, b, buf.name, p.op, p.node
                                ),
                            )
                            .at(ins.unit, vec![who, i]),
                        );
                    }
                }
                for &b in &ins.writes {
                    allocate(s, b, Some(i), cycle, &mut live, &mut live_bytes, &mut faults);
                }
                update_peak(&mut stats, live_bytes, cycle);
                if live_bytes > s.sram_capacity_bytes {
                    faults.push(
                        Fault::new(
                            FaultKind::SramOverCapacity,
                            cycle,
                            format!(
                                "{live_bytes} bytes live after {} ({}) issues, capacity is {}",
                                ins.op, ins.node, s.sram_capacity_bytes
                            ),
                        )
                        .at(ins.unit, vec![i]),
                    );
                }
            }
        }
    }
    (stats, faults)
}

fn update_peak(stats: &mut Stats, live_bytes: u64, cycle: u64) {
    if live_bytes > stats.peak_sram_bytes {
        stats.peak_sram_bytes = live_bytes;
        stats.peak_sram_cycle = cycle;
    }
}

fn allocate(
    s: &Schedule,
    b: BufferId,
    by: Option<InstrId>,
    cycle: u64,
    live: &mut BTreeMap<u64, Vec<Live>>,
    live_bytes: &mut u64,
    faults: &mut Vec<Fault>,
) {
    let buf = &s.buffers[b.0 as usize];
    let end = buf.offset.saturating_add(buf.bytes);
    let with_unit = |f: Fault, others: Vec<InstrId>| match by {
        Some(i) => f.at(s.instructions[i.0 as usize].unit, others),
        None => f,
    };
    if end > s.sram_capacity_bytes {
        faults.push(with_unit(
            Fault::new(
                FaultKind::SramOutOfRange,
                cycle,
                format!(
                    "{b} ({}) occupies [{}, {end}), beyond SRAM capacity {}",
                    buf.name, buf.offset, s.sram_capacity_bytes
                ),
            ),
            by.into_iter().collect(),
        ));
    }
    // Any live range starting below `end` may overlap; ranges are few enough to scan.
    for (_, list) in live.range(..end.max(1)) {
        for l in list {
            let other = &s.buffers[l.buffer.0 as usize];
            if l.end > buf.offset && other.offset < end && buf.bytes > 0 && other.bytes > 0 {
                let mut who: Vec<InstrId> = l.writer.into_iter().collect();
                who.extend(by);
                faults.push(with_unit(
                    Fault::new(
                        FaultKind::SramOverlap,
                        cycle,
                        format!(
                            "{b} ({}) at [{}, {end}) overlaps live {} ({}) at [{}, {})",
                            buf.name, buf.offset, l.buffer, other.name, other.offset, l.end
                        ),
                    ),
                    who,
                ));
            }
        }
    }
    live.entry(buf.offset).or_default().push(Live {
        end,
        buffer: b,
        writer: by,
    });
    *live_bytes += buf.bytes;
}
