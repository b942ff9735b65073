//! The report: critical path, per-unit utilization and SRAM figures, derived from a schedule.

use super::build::SramUse;
use super::system::ChipSram;
use lpuc_artifact::placement::Placement;
use lpuc_artifact::{
    ChipReport, CriticalStep, Instruction, Report, Schedule, SramReport, Transfer, UnitReport,
};
use lpuc_target::Target;
use std::collections::BTreeMap;

/// Busy time per unit name, summed over chips; utilization over all `chips`.
fn unit_reports(s: &Schedule, target: &Target) -> Vec<UnitReport> {
    let span = s.makespan_cycles.saturating_mul(u64::from(s.chips.max(1)));
    let mut busy: BTreeMap<lpuc_target::UnitId, (u64, u64)> = BTreeMap::new();
    for i in &s.instructions {
        let e = busy.entry(i.unit).or_default();
        e.0 += 1;
        e.1 += i.occupancy;
    }
    target
        .units()
        .into_iter()
        .map(|unit| {
            let (count, busy) = busy.get(&unit).copied().unwrap_or_default();
            UnitReport {
                unit,
                instructions: count,
                busy_cycles: busy,
                utilization: if span == 0 { 0.0 } else { busy as f64 / span as f64 },
            }
        })
        .collect()
}

/// Build the report of a multi-chip schedule `s` placed as `placement`.
pub fn build_system_report(
    s: &Schedule,
    target: &Target,
    chips: &[ChipSram],
    placement: Placement,
) -> Report {
    // The chip with the highest peak; the earliest peak among equals.
    let top = chips
        .iter()
        .min_by_key(|c| (std::cmp::Reverse(c.peak_bytes), c.peak_cycle))
        .copied()
        .unwrap_or_default();
    let sram = SramReport {
        capacity_bytes: target.sram.bytes,
        peak_bytes: top.peak_bytes,
        peak_cycle: top.peak_cycle,
        weight_bytes: top.weight_bytes,
        high_water_bytes: top.high_water_bytes,
    };
    Report {
        chips: chips
            .iter()
            .enumerate()
            .map(|(c, x)| {
                let at = target.locate(c as u32);
                ChipReport {
                    chip: c as u32,
                    node: at.node,
                    rack: at.rack,
                    instructions: x.instructions,
                    weight_bytes: x.weight_bytes,
                    input_bytes: x.input_bytes,
                    peak_bytes: x.peak_bytes,
                    peak_cycle: x.peak_cycle,
                    high_water_bytes: x.high_water_bytes,
                    sram_utilization: x.high_water_bytes as f64 / target.sram.bytes as f64,
                }
            })
            .collect(),
        placement: Some(placement),
        ..report_of(s, target, sram)
    }
}

/// Build the report of a single-chip schedule `s`.
pub fn build_report(s: &Schedule, target: &Target, sram: SramUse) -> Report {
    report_of(
        s,
        target,
        SramReport {
            capacity_bytes: target.sram.bytes,
            peak_bytes: sram.peak_bytes,
            peak_cycle: sram.peak_cycle,
            weight_bytes: sram.weight_bytes,
            high_water_bytes: sram.high_water_bytes,
        },
    )
}

/// The figures every report has: makespan, critical path, units, and `sram`.
fn report_of(s: &Schedule, target: &Target, sram: SramReport) -> Report {
    let makespan = s.makespan_cycles;
    Report {
        target: s.target.clone(),
        clock_hz: target.clock_hz,
        makespan_cycles: makespan,
        makespan_us: target.cycles_to_us(makespan),
        instructions: s.instructions.len() as u64,
        critical_path: critical_path(s, target.hop_arrival_delay()),
        units: unit_reports(s, target),
        sram,
        chips: Vec::new(),
        placement: None,
    }
}

/// The chain of instructions that sets the makespan, first to last.
///
/// Start from the instruction that finishes last and walk back: an instruction waited for an
/// operand (a producer whose result became ready exactly at its start), for a transfer that
/// arrived exactly then (`hop_delay` after its last hop; the walk continues at the instruction
/// that made what it carried), for its unit (freed exactly then), or for its chip's previous
/// instruction to issue (in-order issue, the same cycle); one that waited for none starts the
/// chain.
pub fn critical_path(s: &Schedule, hop_delay: u64) -> Vec<CriticalStep> {
    let Some(last) = s
        .instructions
        .iter()
        .max_by_key(|i| (i.done_cycle(), std::cmp::Reverse(i.id)))
    else {
        return Vec::new();
    };
    let mut writer: BTreeMap<u32, &Instruction> = BTreeMap::new();
    for i in &s.instructions {
        for b in &i.writes {
            writer.insert(b.0, i);
        }
    }
    // Who frees a unit at a cycle, and who issues on a chip at a cycle: looked up, not scanned,
    // at every step of the walk.
    let mut freeing: BTreeMap<(u32, lpuc_target::UnitId, u64), Vec<&Instruction>> = BTreeMap::new();
    let mut issuing: BTreeMap<(u32, u64), Vec<&Instruction>> = BTreeMap::new();
    for i in &s.instructions {
        freeing
            .entry((i.chip, i.unit, i.busy_until()))
            .or_default()
            .push(i);
        issuing.entry((i.chip, i.start)).or_default().push(i);
    }
    let mut carried: BTreeMap<u32, &Transfer> = BTreeMap::new();
    for t in &s.transfers {
        carried.insert(t.to.0, t);
    }
    let mut chain: Vec<(&Instruction, String)> = Vec::new();
    let mut current = last;
    // Instructions already on the chain: an in-order wait between two that issue the same cycle
    // must not walk back and forth.
    let mut seen: std::collections::BTreeSet<lpuc_artifact::InstrId> = std::collections::BTreeSet::new();
    loop {
        seen.insert(current.id);
        let data = current
            .reads
            .iter()
            .filter_map(|b| writer.get(&b.0).copied())
            .filter(|p| p.done_cycle() == current.start)
            .min_by_key(|p| p.id);
        // A transfer that arrived exactly at the start, and the instruction that made what it
        // carried (through forwarded copies).
        let moved = || {
            current
                .reads
                .iter()
                .filter_map(|b| carried.get(&b.0).copied())
                .filter(|t| t.hops.last().map(|h| h.end + hop_delay) == Some(current.start))
                .min_by_key(|t| t.id)
                .and_then(|t| {
                    let mut src = t;
                    loop {
                        if let Some(p) = writer.get(&src.from.0) {
                            return Some((t, *p));
                        }
                        src = carried.get(&src.from.0)?;
                    }
                })
        };
        let unit = || {
            freeing
                .get(&(current.chip, current.unit, current.start))
                .into_iter()
                .flatten()
                .filter(|p| p.id != current.id)
                .min_by_key(|p| p.id)
                .copied()
        };
        if current.start == 0 {
            chain.push((current, "start".into()));
            break;
        }
        if let Some(p) = data {
            chain.push((current, "data".into()));
            current = p;
        } else if let Some((t, p)) = moved() {
            let from = t.hops.first().map_or(p.chip, |h| h.from_chip);
            chain.push((current, format!("transfer {} from chip {from}", t.id)));
            current = p;
        } else if let Some(p) = unit() {
            chain.push((current, "unit".into()));
            current = p;
        } else if let Some(p) = issuing
            .get(&(current.chip, current.start))
            .into_iter()
            .flatten()
            .filter(|p| !seen.contains(&p.id))
            .min_by_key(|p| p.id)
            .copied()
        {
            // Issued in order on its chip, right after an instruction that issued this cycle.
            chain.push((current, "issue".into()));
            current = p;
        } else {
            chain.push((current, "start".into()));
            break;
        }
    }
    chain.reverse();
    let makespan = s.makespan_cycles.max(1) as f64;
    let starts: Vec<u64> = chain.iter().map(|(i, _)| i.start).collect();
    chain
        .iter()
        .enumerate()
        .map(|(k, (i, why))| {
            let until = starts.get(k + 1).copied().unwrap_or(i.done_cycle());
            CriticalStep {
                instruction: i.id.0,
                chip: (s.chips > 1).then_some(i.chip),
                unit: i.unit,
                op: i.op.clone(),
                node: i.node.clone(),
                start: i.start,
                end: i.done_cycle(),
                waits_on: why.clone(),
                share: (until - i.start) as f64 / makespan,
            }
        })
        .collect()
}
