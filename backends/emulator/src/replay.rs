//! The replay: when each buffer becomes ready and how long it lives, then sweeps in cycle order
//! over every unit, every directed link and every chip's SRAM.
//!
//! Readiness is a closed form of the schedule: an instruction's results at `start + latency`, a
//! transfer's destination at its last hop's end plus the hop arrival delay, inputs and weights at 0.
//! Each check then sorts what it needs and sweeps once, so a replay costs O(n log n) in
//! instructions, hops and buffers. In the SRAM sweep, at one cycle frees come before allocations (a
//! buffer whose last reader finished at t no longer holds its bytes at t). Intervals are half-open:
//! a unit or link busy until t is free at t.

use crate::{Fault, FaultKind};
use lpuc_artifact::{BufferId, BufferKind, InstrId, Instruction, Schedule, TransferId};
use lpuc_target::{Target, UnitId};

/// What the replay measured on one chip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChipStats {
    /// Most bytes live in this chip's SRAM at once, and the first cycle it happened.
    pub peak_sram_bytes: u64,
    pub peak_sram_cycle: u64,
}

/// What the replay measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub instructions: u64,
    pub transfers: u64,
    /// Hops over all transfers.
    pub hops: u64,
    /// Latest cycle at which a result becomes readable or a transfer arrives.
    pub makespan: u64,
    /// The highest chip peak of live SRAM bytes, and the first cycle it happened (the lowest chip
    /// on a tie).
    pub peak_sram_bytes: u64,
    pub peak_sram_cycle: u64,
    /// Per chip, `0..chips`.
    pub chips: Vec<ChipStats>,
    /// Cycles that links are busy, summed over every hop.
    pub link_busy_cycles: u64,
    /// Bytes moved between chips, summed over transfers.
    pub transfer_bytes: u64,
}

/// Who writes a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Writer {
    /// An input or weight, present from cycle 0.
    Static,
    Instr(InstrId),
    Transfer(TransferId),
}

/// The instructions and transfers a fault about `w`'s buffer names, and how to call `w`.
fn involved(s: &Schedule, w: Writer) -> (Vec<InstrId>, Vec<TransferId>, String) {
    match w {
        Writer::Static => (Vec::new(), Vec::new(), "the program's start".into()),
        Writer::Instr(i) => {
            let p = &s.instructions[i.0 as usize];
            (vec![i], Vec::new(), format!("{} ({})", p.op, p.node))
        }
        Writer::Transfer(t) => {
            let x = &s.transfers[t.0 as usize];
            (Vec::new(), vec![t], format!("transfer {t} ({})", x.purpose))
        }
    }
}

pub(crate) fn replay(s: &Schedule, target: &Target) -> (Stats, Vec<Fault>) {
    let delay = target.hop_arrival_delay();
    let n_buf = s.buffers.len();
    let mut writer = vec![Writer::Static; n_buf];
    let mut ready = vec![0u64; n_buf];
    let mut alloc = vec![0u64; n_buf];
    for ins in &s.instructions {
        for b in &ins.writes {
            let b = b.0 as usize;
            (writer[b], ready[b], alloc[b]) = (Writer::Instr(ins.id), ins.done_cycle(), ins.start);
        }
    }
    for t in &s.transfers {
        let b = t.to.0 as usize;
        let first = t.hops.first().map_or(0, |h| h.start);
        (writer[b], ready[b], alloc[b]) = (Writer::Transfer(t.id), t.arrival(delay).unwrap_or(0), first);
    }
    let mut last_read: Vec<Option<u64>> = vec![None; n_buf];
    let mut read_until = |b: BufferId, t: u64| {
        let slot = &mut last_read[b.0 as usize];
        *slot = Some(slot.map_or(t, |x| x.max(t)));
    };
    for ins in &s.instructions {
        for &b in &ins.reads {
            read_until(b, ins.done_cycle());
        }
    }
    for t in &s.transfers {
        if let Some(h) = t.hops.first() {
            read_until(t.from, h.end);
        }
    }
    let makespan = s
        .instructions
        .iter()
        .map(Instruction::done_cycle)
        .chain(s.transfers.iter().filter_map(|t| t.arrival(delay)))
        .max()
        .unwrap_or(0);

    let mut faults = Vec::new();
    check_instruction_inputs(s, &writer, &ready, &mut faults);
    check_hop_inputs(s, &writer, &ready, delay, &mut faults);
    check_units(s, &mut faults);
    check_links(s, &mut faults);
    let chips = check_sram(s, &writer, &ready, &alloc, &last_read, &mut faults);
    faults.sort_by_key(|f| f.cycle);

    let peak = chips
        .iter()
        .min_by_key(|c| (std::cmp::Reverse(c.peak_sram_bytes), c.peak_sram_cycle))
        .cloned()
        .unwrap_or_default();
    let stats = Stats {
        instructions: s.instructions.len() as u64,
        transfers: s.transfers.len() as u64,
        hops: s.transfers.iter().map(|t| t.hops.len() as u64).sum(),
        makespan,
        peak_sram_bytes: peak.peak_sram_bytes,
        peak_sram_cycle: peak.peak_sram_cycle,
        chips,
        link_busy_cycles: s
            .transfers
            .iter()
            .flat_map(|t| &t.hops)
            .fold(0u64, |a, h| a.saturating_add(h.end.saturating_sub(h.start))),
        transfer_bytes: s.transfers.iter().fold(0u64, |a, t| a.saturating_add(t.bytes)),
    };
    (stats, faults)
}

/// Every instruction issues at or after each of its inputs is ready.
fn check_instruction_inputs(s: &Schedule, writer: &[Writer], ready: &[u64], faults: &mut Vec<Fault>) {
    for ins in &s.instructions {
        for &b in &ins.reads {
            let r = ready[b.0 as usize];
            if r > ins.start {
                let (mut instrs, transfers, who) = involved(s, writer[b.0 as usize]);
                instrs.push(ins.id);
                faults.push(
                    Fault::new(
                        FaultKind::DependencyNotReady,
                        ins.start,
                        format!(
                            "{} ({}) reads {} ({}) which {who} makes ready only at cycle {r}",
                            ins.op, ins.node, b, s.buffers[b.0 as usize].name
                        ),
                    )
                    .at(ins.chip, ins.unit, instrs)
                    .with_transfers(transfers),
                );
            }
        }
    }
}

/// Every hop starts once its data is at its sending chip: the source buffer ready for the first
/// hop, the previous hop's data arrived for the others.
fn check_hop_inputs(s: &Schedule, writer: &[Writer], ready: &[u64], delay: u64, faults: &mut Vec<Fault>) {
    for t in &s.transfers {
        let Some(first) = t.hops.first() else { continue };
        let r = ready[t.from.0 as usize];
        if r > first.start {
            let (instrs, mut transfers, who) = involved(s, writer[t.from.0 as usize]);
            transfers.push(t.id);
            faults.push(
                Fault::new(
                    FaultKind::TransferNotReady,
                    first.start,
                    format!(
                        "transfer {} ({}) starts its first hop, {} -> {}, but {} ({}) is ready only at cycle {r}, from {who}",
                        t.id, t.purpose, first.from_chip, first.to_chip, t.from, s.buffers[t.from.0 as usize].name
                    ),
                )
                .on_chip(first.from_chip)
                .with_instructions(instrs)
                .with_transfers(transfers),
            );
        }
        for (k, pair) in t.hops.windows(2).enumerate() {
            let arrived = pair[0].end.saturating_add(delay);
            if pair[1].start < arrived {
                faults.push(
                    Fault::new(
                        FaultKind::TransferNotReady,
                        pair[1].start,
                        format!(
                            "transfer {} ({}) starts hop {} from chip {}, but hop {k}'s data arrives there only at cycle {arrived}",
                            t.id,
                            t.purpose,
                            k + 1,
                            pair[1].from_chip
                        ),
                    )
                    .on_chip(pair[1].from_chip)
                    .with_transfers(vec![t.id]),
                );
            }
        }
    }
}

/// No unit of a chip runs two instructions at once: per (chip, unit), in issue order, each
/// instruction starts after the latest `busy_until` so far.
fn check_units(s: &Schedule, faults: &mut Vec<Fault>) {
    let mut order: Vec<&Instruction> = s.instructions.iter().collect();
    order.sort_by_key(|i| (i.chip, i.unit, i.start, i.id));
    let mut holder: Option<(u32, UnitId, u64, InstrId)> = None;
    for ins in order {
        let until = ins.busy_until();
        match holder {
            Some((chip, unit, held, h)) if (chip, unit) == (ins.chip, ins.unit) => {
                if held > ins.start {
                    let hi = &s.instructions[h.0 as usize];
                    faults.push(
                        Fault::new(
                            FaultKind::UnitConflict,
                            ins.start,
                            format!(
                                "{} ({}) issues while {} ({}) holds {} until cycle {held}",
                                ins.op, ins.node, hi.op, hi.node, ins.unit
                            ),
                        )
                        .at(ins.chip, ins.unit, vec![h, ins.id]),
                    );
                }
                if until >= held {
                    holder = Some((chip, unit, until, ins.id));
                }
            }
            _ => holder = Some((ins.chip, ins.unit, until, ins.id)),
        }
    }
}

/// No directed link carries two hops at once: per link, in start order, each hop starts after
/// the latest end so far. Hops of zero cycles occupy nothing.
fn check_links(s: &Schedule, faults: &mut Vec<Fault>) {
    let mut hops: Vec<(u32, u32, u64, u64, TransferId, usize)> = s
        .transfers
        .iter()
        .flat_map(|t| {
            t.hops
                .iter()
                .enumerate()
                .filter(|(_, h)| h.end > h.start)
                .map(move |(k, h)| (h.from_chip, h.to_chip, h.start, h.end, t.id, k))
        })
        .collect();
    hops.sort_unstable();
    let mut holder: Option<(u32, u32, u64, TransferId)> = None;
    for (from, to, start, end, t, k) in hops {
        match holder {
            Some((hf, ht, held, h)) if (hf, ht) == (from, to) => {
                if held > start {
                    faults.push(
                        Fault::new(
                            FaultKind::LinkConflict,
                            start,
                            format!(
                                "transfer {t} ({}) hop {k} uses link {from} -> {to} from cycle {start} while transfer {h} ({}) holds it until cycle {held}",
                                s.transfers[t.0 as usize].purpose,
                                s.transfers[h.0 as usize].purpose
                            ),
                        )
                        .on_chip(from)
                        .with_transfers(vec![h, t]),
                    );
                }
                if end >= held {
                    holder = Some((from, to, end, t));
                }
            }
            _ => holder = Some((from, to, end, t)),
        }
    }
}

/// An SRAM event of one buffer on its chip; frees sort before allocations at one cycle, and
/// allocations in writer order (inputs and weights, then instructions, then transfers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SramEvent {
    chip: u32,
    cycle: u64,
    /// 0 free, 1 allocate.
    phase: u8,
    writer: Writer,
    buffer: BufferId,
}

/// Each chip's SRAM over time: range, overlap and capacity, and the peak of live bytes. Graph
/// outputs, inputs and weights are never freed, so they stay until the makespan.
fn check_sram(
    s: &Schedule,
    writer: &[Writer],
    ready: &[u64],
    alloc: &[u64],
    last_read: &[Option<u64>],
    faults: &mut Vec<Fault>,
) -> Vec<ChipStats> {
    let cap = s.sram_capacity_bytes;
    let writer_fault = |f: Fault, b: BufferId, mut instrs: Vec<InstrId>, mut transfers: Vec<TransferId>| {
        let chip = s.buffers[b.0 as usize].chip;
        match writer[b.0 as usize] {
            Writer::Instr(i) => {
                instrs.push(i);
                f.at(chip, s.instructions[i.0 as usize].unit, instrs)
                    .with_transfers(transfers)
            }
            Writer::Transfer(t) => {
                transfers.push(t);
                f.on_chip(chip)
                    .with_instructions(instrs)
                    .with_transfers(transfers)
            }
            Writer::Static => f
                .on_chip(chip)
                .with_instructions(instrs)
                .with_transfers(transfers),
        }
    };
    let mut events = Vec::with_capacity(2 * s.buffers.len());
    for b in &s.buffers {
        let i = b.id.0 as usize;
        let end = b.offset.saturating_add(b.bytes);
        if end > cap {
            faults.push(writer_fault(
                Fault::new(
                    FaultKind::SramOutOfRange,
                    alloc[i],
                    format!(
                        "{} ({}) occupies [{}, {end}) of chip {}, beyond SRAM capacity {cap}",
                        b.id, b.name, b.offset, b.chip
                    ),
                ),
                b.id,
                Vec::new(),
                Vec::new(),
            ));
        }
        let free = match b.kind {
            BufferKind::Input | BufferKind::Weight | BufferKind::Output => None,
            BufferKind::Activation => Some(last_read[i].unwrap_or(ready[i]).max(alloc[i])),
        };
        if free == Some(alloc[i]) {
            continue; // never live
        }
        let ev = |cycle, phase| SramEvent {
            chip: b.chip,
            cycle,
            phase,
            writer: writer[i],
            buffer: b.id,
        };
        events.push(ev(alloc[i], 1));
        if let Some(f) = free {
            events.push(ev(f, 0));
        }
    }
    events.sort_unstable();

    let mut chips = vec![ChipStats::default(); s.chips as usize];
    let mut k = 0;
    while k < events.len() {
        let chip = events[k].chip;
        let len = events[k..].iter().take_while(|e| e.chip == chip).count();
        let chip_events = &events[k..k + len];
        k += len;
        let mut offsets: Vec<u64> = chip_events
            .iter()
            .map(|e| &s.buffers[e.buffer.0 as usize])
            .filter(|b| b.bytes > 0)
            .map(|b| b.offset)
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mut map = AddressMap::new(offsets);
        let mut live_bytes = 0u64;
        let stats = &mut chips[chip as usize];
        let mut overlapping = Vec::new();
        for (j, e) in chip_events.iter().enumerate() {
            let buf = &s.buffers[e.buffer.0 as usize];
            let end = buf.offset.saturating_add(buf.bytes);
            if e.phase == 0 {
                if buf.bytes > 0 {
                    map.remove(buf.offset, e.buffer);
                }
                live_bytes -= buf.bytes;
                continue;
            }
            if buf.bytes > 0 {
                overlapping.clear();
                map.overlapping(buf.offset, end, &mut overlapping);
                for &(other, other_end) in &overlapping {
                    let o = &s.buffers[other.0 as usize];
                    let (instrs, transfers, _) = involved(s, writer[other.0 as usize]);
                    faults.push(writer_fault(
                        Fault::new(
                            FaultKind::SramOverlap,
                            e.cycle,
                            format!(
                                "{} ({}) at [{}, {end}) overlaps live {} ({}) at [{}, {other_end}) on chip {chip}",
                                e.buffer, buf.name, buf.offset, other, o.name, o.offset
                            ),
                        ),
                        e.buffer,
                        instrs,
                        transfers,
                    ));
                }
                map.insert(buf.offset, end, e.buffer);
            }
            live_bytes += buf.bytes;
            if live_bytes > stats.peak_sram_bytes {
                stats.peak_sram_bytes = live_bytes;
                stats.peak_sram_cycle = e.cycle;
            }
            // Check capacity once a writer has allocated everything it writes at this cycle.
            let last_of_writer = chip_events
                .get(j + 1)
                .is_none_or(|n| (n.cycle, n.phase, n.writer) != (e.cycle, e.phase, e.writer));
            if last_of_writer && live_bytes > cap {
                let what = match e.writer {
                    Writer::Static => "with the inputs and weights alone".to_string(),
                    w => format!("after {} allocates", involved(s, w).2),
                };
                faults.push(writer_fault(
                    Fault::new(
                        FaultKind::SramOverCapacity,
                        e.cycle,
                        format!("{live_bytes} bytes live on chip {chip} {what}, capacity is {cap}"),
                    ),
                    e.buffer,
                    Vec::new(),
                    Vec::new(),
                ));
            }
        }
    }
    chips
}

/// The live buffers of one chip by address: a segment tree over the chip's distinct offsets, each
/// node holding the highest end below it, so the buffers overlapping a range are found in
/// O((1 + found) log n) rather than by scanning every live buffer.
struct AddressMap {
    offsets: Vec<u64>,
    size: usize,
    max_end: Vec<u64>,
    leaves: Vec<Vec<(BufferId, u64)>>,
}

impl AddressMap {
    fn new(offsets: Vec<u64>) -> Self {
        let size = offsets.len().next_power_of_two().max(1);
        AddressMap {
            leaves: vec![Vec::new(); offsets.len()],
            offsets,
            size,
            max_end: vec![0; 2 * size],
        }
    }

    fn leaf(&self, offset: u64) -> usize {
        self.offsets
            .binary_search(&offset)
            .expect("every live offset is in the map")
    }

    fn update(&mut self, leaf: usize) {
        let mut node = self.size + leaf;
        self.max_end[node] = self.leaves[leaf].iter().map(|l| l.1).max().unwrap_or(0);
        while node > 1 {
            node /= 2;
            self.max_end[node] = self.max_end[2 * node].max(self.max_end[2 * node + 1]);
        }
    }

    fn insert(&mut self, offset: u64, end: u64, b: BufferId) {
        let leaf = self.leaf(offset);
        self.leaves[leaf].push((b, end));
        self.update(leaf);
    }

    fn remove(&mut self, offset: u64, b: BufferId) {
        let leaf = self.leaf(offset);
        if let Some(pos) = self.leaves[leaf].iter().position(|l| l.0 == b) {
            self.leaves[leaf].swap_remove(pos);
            self.update(leaf);
        }
    }

    /// Live buffers sharing a byte with `[start, end)`, with their ends, in address order.
    fn overlapping(&self, start: u64, end: u64, out: &mut Vec<(BufferId, u64)>) {
        let below = self.offsets.partition_point(|&o| o < end);
        self.descend(1, 0, self.size, below, start, out);
    }

    fn descend(
        &self,
        node: usize,
        lo: usize,
        hi: usize,
        below: usize,
        start: u64,
        out: &mut Vec<(BufferId, u64)>,
    ) {
        if lo >= below || self.max_end[node] <= start {
            return;
        }
        if hi - lo == 1 {
            let mut found: Vec<(BufferId, u64)> =
                self.leaves[lo].iter().copied().filter(|l| l.1 > start).collect();
            found.sort_unstable();
            out.extend(found);
            return;
        }
        let mid = (lo + hi) / 2;
        self.descend(2 * node, lo, mid, below, start, out);
        self.descend(2 * node + 1, mid, hi, below, start, out);
    }
}
