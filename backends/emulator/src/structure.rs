//! Structural checks before any replay: the format version, ids in range, one writer per computed
//! buffer, sizes that match types, buffers on the chip that uses them, real units of the right kind,
//! durations that match the target's cost model, and transfers over real, chained links with the
//! link model's hop durations.

use crate::{Fault, FaultKind};
use lpuc_artifact::{BufferId, BufferKind, Schedule, Transfer, SCHEDULE_FORMAT};
use lpuc_target::Target;

/// More chips than any system has (the largest published one has 10,440): a schedule claiming more
/// is refused before the replay sizes its per-chip tables.
const MAX_CHIPS: u32 = 1 << 20;

pub(crate) fn check(s: &Schedule, target: &Target) -> Vec<Fault> {
    let mut bad: Vec<String> = Vec::new();
    if s.format != SCHEDULE_FORMAT {
        bad.push(format!(
            "schedule format {} is not the format this emulator reads ({SCHEDULE_FORMAT})",
            s.format
        ));
    }
    if s.chips == 0 || s.chips > MAX_CHIPS {
        bad.push(format!(
            "the schedule uses {} chips; it must use 1 to {MAX_CHIPS}",
            s.chips
        ));
    }
    for (i, b) in s.buffers.iter().enumerate() {
        if b.id.0 as usize != i {
            bad.push(format!("buffer at position {i} has id {}", b.id));
        }
        let elems = b.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if elems.and_then(|e| e.checked_mul(b.dtype.size_bytes())) != Some(b.bytes) {
            bad.push(format!(
                "buffer {} ({}) has {} bytes, which is not its type's size",
                b.id, b.name, b.bytes
            ));
        }
        if b.chip >= s.chips {
            bad.push(format!(
                "buffer {} ({}) is on chip {}, but the schedule uses chips 0..{}",
                b.id, b.name, b.chip, s.chips
            ));
        }
    }
    let buffer_chip = |b: BufferId| s.buffers.get(b.0 as usize).map(|x| x.chip);
    let mut writers = vec![0u32; s.buffers.len()];
    for (i, ins) in s.instructions.iter().enumerate() {
        if ins.id.0 as usize != i {
            bad.push(format!("instruction at position {i} has id {}", ins.id));
        }
        if ins.chip >= s.chips {
            bad.push(format!(
                "instruction {} runs on chip {}, but the schedule uses chips 0..{}",
                ins.id, ins.chip, s.chips
            ));
        }
        for b in ins.reads.iter().chain(&ins.writes) {
            match buffer_chip(*b) {
                None => bad.push(format!(
                    "instruction {} refers to buffer {b}, which does not exist",
                    ins.id
                )),
                Some(c) if c != ins.chip => bad.push(format!(
                    "instruction {} ({}) on chip {} uses buffer {b} ({}), which is on chip {c}",
                    ins.id, ins.node, ins.chip, s.buffers[b.0 as usize].name
                )),
                Some(_) => {}
            }
        }
        for b in &ins.writes {
            if let Some(w) = writers.get_mut(b.0 as usize) {
                *w += 1;
            }
        }
        if ins.start.checked_add(ins.latency.max(ins.occupancy)).is_none() {
            bad.push(format!("instruction {} ends beyond cycle 2^64", ins.id));
        }
    }
    let delay = target.hop_arrival_delay();
    for (i, t) in s.transfers.iter().enumerate() {
        if t.id.0 as usize != i {
            bad.push(format!("transfer at position {i} has id {}", t.id));
        }
        let (from, to) = (s.buffers.get(t.from.0 as usize), s.buffers.get(t.to.0 as usize));
        let (Some(from), Some(to)) = (from, to) else {
            bad.push(format!(
                "transfer {} refers to buffer {} or {}, which does not exist",
                t.id, t.from, t.to
            ));
            continue;
        };
        if t.from == t.to {
            bad.push(format!("transfer {} copies {} onto itself", t.id, t.from));
        }
        if from.bytes != t.bytes || to.bytes != t.bytes || from.dtype != to.dtype || from.shape != to.shape {
            bad.push(format!(
                "transfer {} of {} bytes copies {} ({}, {} bytes) into {} ({}, {} bytes): the buffers and the transfer must agree in bytes, dtype and shape",
                t.id, t.bytes, t.from, from.name, from.bytes, t.to, to.name, to.bytes
            ));
        }
        writers[t.to.0 as usize] += 1;
        if t.hops.iter().any(|h| h.end.checked_add(delay).is_none()) {
            bad.push(format!("transfer {} arrives beyond cycle 2^64", t.id));
        }
    }
    for (b, &n) in s.buffers.iter().zip(&writers) {
        let computed = matches!(b.kind, BufferKind::Activation | BufferKind::Output);
        if computed && n != 1 {
            bad.push(format!(
                "{} buffer {} ({}) is written {n} times; it must be written once (by an instruction or a transfer)",
                kind(b.kind),
                b.id,
                b.name
            ));
        }
        if !computed && n != 0 {
            bad.push(format!(
                "{} buffer {} ({}) is written by an instruction or a transfer",
                kind(b.kind),
                b.id,
                b.name
            ));
        }
    }
    let mut faults: Vec<Fault> = bad
        .into_iter()
        .map(|m| Fault::new(FaultKind::Malformed, 0, m))
        .collect();

    for ins in &s.instructions {
        let at = |f: Fault| f.at(ins.chip, ins.unit, vec![ins.id]);
        if !target.has_unit(ins.unit) {
            faults.push(at(Fault::new(
                FaultKind::BadUnit,
                ins.start,
                format!("{} has no unit {}", target.name, ins.unit),
            )));
        } else if ins.work.unit_kind() != ins.unit.kind {
            faults.push(at(Fault::new(
                FaultKind::BadUnit,
                ins.start,
                format!("{} work cannot run on {}", ins.op, ins.unit),
            )));
        }
        match target.cost(&ins.work) {
            Ok(c) if c.occupancy == ins.occupancy && c.latency == ins.latency => {}
            Ok(c) => faults.push(at(Fault::new(
                FaultKind::CostMismatch,
                ins.start,
                format!(
                    "{} ({}) claims occupancy {} and latency {}, the target's cost model gives {} and {}",
                    ins.op, ins.node, ins.occupancy, ins.latency, c.occupancy, c.latency
                ),
            ))),
            Err(e) => faults.push(at(Fault::new(
                FaultKind::CostMismatch,
                ins.start,
                format!("{} ({}): {e}", ins.op, ins.node),
            ))),
        }
    }
    for t in &s.transfers {
        if let (Some(from), Some(to)) = (buffer_chip(t.from), buffer_chip(t.to)) {
            check_route(t, from, to, target, &mut faults);
        }
    }
    faults
}

/// The hops of `t` chain real links from chip `from` to chip `to`, each lasting what the link
/// model gives for the transfer's bytes.
fn check_route(t: &Transfer, from: u32, to: u32, target: &Target, faults: &mut Vec<Fault>) {
    let fault = |kind, cycle, chip, message: String| {
        Fault::new(kind, cycle, format!("{} ({}): {message}", t.id, t.purpose))
            .on_chip(chip)
            .with_transfers(vec![t.id])
    };
    let (Some(first), Some(last)) = (t.hops.first(), t.hops.last()) else {
        faults.push(fault(
            FaultKind::BadRoute,
            0,
            from,
            format!("has no hops to carry {} to chip {to}", t.to),
        ));
        return;
    };
    if first.from_chip != from {
        faults.push(fault(
            FaultKind::BadRoute,
            first.start,
            first.from_chip,
            format!(
                "the first hop leaves chip {}, but {} is on chip {from}",
                first.from_chip, t.from
            ),
        ));
    }
    if last.to_chip != to {
        faults.push(fault(
            FaultKind::BadRoute,
            last.start,
            last.from_chip,
            format!(
                "the last hop arrives at chip {}, but {} is on chip {to}",
                last.to_chip, t.to
            ),
        ));
    }
    let cycles = target.hop_cycles(t.bytes);
    for (k, h) in t.hops.iter().enumerate() {
        if k > 0 && t.hops[k - 1].to_chip != h.from_chip {
            faults.push(fault(
                FaultKind::BadRoute,
                h.start,
                h.from_chip,
                format!(
                    "hop {k} leaves chip {}, but hop {} arrived at chip {}",
                    h.from_chip,
                    k - 1,
                    t.hops[k - 1].to_chip
                ),
            ));
        }
        if target.link(h.from_chip, h.to_chip).is_none() {
            faults.push(fault(
                FaultKind::BadRoute,
                h.start,
                h.from_chip,
                format!(
                    "hop {k} goes from chip {} to chip {}, which the topology does not link",
                    h.from_chip, h.to_chip
                ),
            ));
        }
        if h.end.checked_sub(h.start) != Some(cycles) {
            faults.push(fault(
                FaultKind::TransferDuration,
                h.start,
                h.from_chip,
                format!(
                    "hop {k} ({} -> {}) claims [{}, {}), but {} bytes take {cycles} cycles on a link",
                    h.from_chip, h.to_chip, h.start, h.end, t.bytes
                ),
            ));
        }
    }
}

fn kind(k: BufferKind) -> String {
    format!("{k:?}").to_lowercase()
}
