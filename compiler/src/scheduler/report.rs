//! The report: critical path, per-unit utilization and SRAM figures, derived from a schedule.

use super::build::SramUse;
use lpuc_artifact::{CriticalStep, Instruction, Report, Schedule, SramReport, UnitReport};
use lpuc_target::Target;
use std::collections::BTreeMap;

/// Build the report of `s`.
pub fn build_report(s: &Schedule, target: &Target, sram: SramUse) -> Report {
    let makespan = s.makespan_cycles;
    let units = target
        .units()
        .into_iter()
        .map(|unit| {
            let on_unit = s.instructions.iter().filter(|i| i.unit == unit);
            let (count, busy) = on_unit.fold((0u64, 0u64), |(c, b), i| (c + 1, b + i.occupancy));
            UnitReport {
                unit,
                instructions: count,
                busy_cycles: busy,
                utilization: if makespan == 0 {
                    0.0
                } else {
                    busy as f64 / makespan as f64
                },
            }
        })
        .collect();
    Report {
        target: s.target.clone(),
        clock_hz: target.clock_hz,
        makespan_cycles: makespan,
        makespan_us: target.cycles_to_us(makespan),
        instructions: s.instructions.len() as u64,
        critical_path: critical_path(s),
        units,
        sram: SramReport {
            capacity_bytes: target.sram.bytes,
            peak_bytes: sram.peak_bytes,
            peak_cycle: sram.peak_cycle,
            weight_bytes: sram.weight_bytes,
            high_water_bytes: sram.high_water_bytes,
        },
    }
}

/// The chain of instructions that sets the makespan, first to last.
///
/// Start from the instruction that finishes last and walk back: an instruction waited either for
/// an operand (a producer whose result became ready exactly at its start) or for its unit (an
/// instruction on the same unit that freed it exactly at its start); an instruction that waited for
/// neither starts the chain.
pub fn critical_path(s: &Schedule) -> Vec<CriticalStep> {
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
    let mut chain: Vec<(&Instruction, &'static str)> = Vec::new();
    let mut current = last;
    loop {
        let data = current
            .reads
            .iter()
            .filter_map(|b| writer.get(&b.0).copied())
            .filter(|p| p.done_cycle() == current.start)
            .min_by_key(|p| p.id);
        let unit = || {
            s.instructions
                .iter()
                .filter(|p| p.unit == current.unit && p.id != current.id && p.busy_until() == current.start)
                .min_by_key(|p| p.id)
        };
        match (data, current.start) {
            (_, 0) => {
                chain.push((current, "start"));
                break;
            }
            (Some(p), _) => {
                chain.push((current, "data"));
                current = p;
            }
            (None, _) => match unit() {
                Some(p) => {
                    chain.push((current, "unit"));
                    current = p;
                }
                None => {
                    chain.push((current, "start"));
                    break;
                }
            },
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
                unit: i.unit,
                op: i.op.clone(),
                node: i.node.clone(),
                start: i.start,
                end: i.done_cycle(),
                waits_on: why.to_string(),
                share: (until - i.start) as f64 / makespan,
            }
        })
        .collect()
}
