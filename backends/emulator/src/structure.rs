//! Structural checks before any replay: ids in range, one writer per computed buffer, sizes that
//! match types, real units of the right kind, and durations that match the target's cost model.

use crate::{Fault, FaultKind};
use lpuc_artifact::{BufferKind, Schedule};
use lpuc_target::Target;

pub(crate) fn check(s: &Schedule, target: &Target) -> Vec<Fault> {
    let mut faults = Vec::new();
    let mut bad = |msg: String| faults.push(Fault::new(FaultKind::Malformed, 0, msg));
    for (i, b) in s.buffers.iter().enumerate() {
        if b.id.0 as usize != i {
            bad(format!("buffer at position {i} has id {}", b.id));
        }
        let elems = b.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if elems.and_then(|e| e.checked_mul(b.dtype.size_bytes())) != Some(b.bytes) {
            bad(format!(
                "buffer {} ({}) has {} bytes, which is not its type's size",
                b.id, b.name, b.bytes
            ));
        }
    }
    let mut writers = vec![0u32; s.buffers.len()];
    for (i, ins) in s.instructions.iter().enumerate() {
        if ins.id.0 as usize != i {
            bad(format!("instruction at position {i} has id {}", ins.id));
        }
        for b in ins.reads.iter().chain(&ins.writes) {
            if b.0 as usize >= s.buffers.len() {
                bad(format!(
                    "instruction {} refers to buffer {b}, which does not exist",
                    ins.id
                ));
            }
        }
        for b in &ins.writes {
            if let Some(w) = writers.get_mut(b.0 as usize) {
                *w += 1;
            }
        }
        if ins.start.checked_add(ins.latency.max(ins.occupancy)).is_none() {
            bad(format!("instruction {} ends beyond cycle 2^64", ins.id));
        }
    }
    for (b, &n) in s.buffers.iter().zip(&writers) {
        let computed = matches!(b.kind, BufferKind::Activation | BufferKind::Output);
        if computed && n != 1 {
            bad(format!(
                "{} buffer {} ({}) is written {n} times; it must be written once",
                kind(b.kind),
                b.id,
                b.name
            ));
        }
        if !computed && n != 0 {
            bad(format!(
                "{} buffer {} ({}) is written by an instruction",
                kind(b.kind),
                b.id,
                b.name
            ));
        }
    }
    for ins in &s.instructions {
        if !target.has_unit(ins.unit) {
            faults.push(
                Fault::new(
                    FaultKind::BadUnit,
                    ins.start,
                    format!("{} has no unit {}", target.name, ins.unit),
                )
                .at(ins.unit, vec![ins.id]),
            );
        } else if ins.work.unit_kind() != ins.unit.kind {
            faults.push(
                Fault::new(
                    FaultKind::BadUnit,
                    ins.start,
                    format!("{} work cannot run on {}", ins.op, ins.unit),
                )
                .at(ins.unit, vec![ins.id]),
            );
        }
        match target.cost(&ins.work) {
            Ok(c) if c.occupancy == ins.occupancy && c.latency == ins.latency => {}
            Ok(c) => faults.push(
                Fault::new(
                    FaultKind::CostMismatch,
                    ins.start,
                    format!(
                        "{} ({}) claims occupancy {} and latency {}, the target's cost model gives {} and {}",
                        ins.op, ins.node, ins.occupancy, ins.latency, c.occupancy, c.latency
                    ),
                )
                .at(ins.unit, vec![ins.id]),
            ),
            Err(e) => faults.push(
                Fault::new(
                    FaultKind::CostMismatch,
                    ins.start,
                    format!("{} ({}): {e}", ins.op, ins.node),
                )
                .at(ins.unit, vec![ins.id]),
            ),
        }
    }
    faults
}

fn kind(k: BufferKind) -> String {
    format!("{k:?}").to_lowercase()
}
