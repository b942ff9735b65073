//! The report: critical path, per-unit utilization and SRAM figures, derived from a schedule.

use super::build::SramUse;
use super::critical_path::critical_path;
use super::per_token::{link_reports, per_token, StageChips, StepInfo};
use super::system::ChipSram;
use lpuc_artifact::placement::Placement;
use lpuc_artifact::{ChipReport, Report, Schedule, SramReport, UnitReport};
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
    step: &StepInfo,
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
    let stages: StageChips = placement
        .stages
        .iter()
        .map(|st| (st.first_chip, st.chips))
        .collect();
    let mut busy = vec![0u64; chips.len()];
    for i in &s.instructions {
        if let Some(b) = busy.get_mut(i.chip as usize) {
            *b = b.saturating_add(i.occupancy);
        }
    }
    let unit_span = (target.units().len() as u64)
        .saturating_mul(s.makespan_cycles)
        .max(1) as f64;
    Report {
        placement: Some(placement),
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
                    busy_cycles: busy[c],
                    unit_utilization: busy[c] as f64 / unit_span,
                    weight_bytes: x.weight_bytes,
                    input_bytes: x.input_bytes,
                    peak_bytes: x.peak_bytes,
                    peak_cycle: x.peak_cycle,
                    high_water_bytes: x.high_water_bytes,
                    sram_utilization: x.high_water_bytes as f64 / target.sram.bytes as f64,
                }
            })
            .collect(),
        links: link_reports(s, target),
        ..report_of(s, target, sram, step, &stages)
    }
}

/// Build the report of a single-chip schedule `s`.
pub fn build_report(s: &Schedule, target: &Target, sram: SramUse, step: &StepInfo) -> Report {
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
        step,
        &vec![(0, 1)],
    )
}

/// The figures every report has: makespan, critical path, units, `sram` and the step's figures
/// (`stages`: the chips of each pipeline stage).
fn report_of(
    s: &Schedule,
    target: &Target,
    sram: SramReport,
    step: &StepInfo,
    stages: &StageChips,
) -> Report {
    let makespan = s.makespan_cycles;
    let (critical_path, critical_split) = critical_path(s, target.hop_arrival_delay());
    Report {
        per_token: per_token(s, target, &critical_path, step, stages),
        target: s.target.clone(),
        clock_hz: target.clock_hz,
        makespan_cycles: makespan,
        makespan_us: target.cycles_to_us(makespan),
        instructions: s.instructions.len() as u64,
        critical_path,
        critical_split,
        units: unit_reports(s, target),
        sram,
        chips: Vec::new(),
        placement: None,
        links: Vec::new(),
        rewrites: None,
    }
}
