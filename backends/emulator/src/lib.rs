//! An independent, cycle-accurate replay of an lpuc artifact.
//!
//! Like regalloc2's checker, the emulator shares no code with the scheduler: it reads only the
//! artifact (schedule, report, target description) and replays it in cycle order, tracking when
//! every result becomes readable or arrives from another chip, which unit and which link is busy
//! and what occupies each chip's SRAM. It reports every rule the schedule breaks, each with the
//! cycle, chip, unit, instructions and transfers involved. Durations come from the target's cost
//! model and link model (`Target::cost`, `Target::hop_cycles`), routes are checked against the
//! target's link set (`Target::link`): the target description is the shared truth.
//!
//! **Architecture invariant:** this crate never depends on the `lpuc` compiler crate.

mod fault;
pub mod functional;
mod replay;
mod structure;

pub use fault::{Fault, FaultKind};
pub use functional::{execute, Execution, FunctionalError};
pub use replay::{ChipStats, Stats};

use lpuc_artifact::digest::sha256_hex;
use lpuc_artifact::{Artifact, Schedule};
use lpuc_target::Target;

/// The outcome of an emulation: what was measured and every fault found.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub stats: Stats,
    pub faults: Vec<Fault>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.faults.is_empty()
    }
}

/// Replay `schedule` on `target` and check every timing and SRAM rule.
pub fn emulate_schedule(schedule: &Schedule, target: &Target) -> Verdict {
    let mut faults = structure::check(schedule, target);
    if !faults.is_empty() {
        // Timing is meaningless over dangling ids; report the structural faults alone.
        return Verdict {
            stats: Stats::default(),
            faults,
        };
    }
    let (stats, replay_faults) = replay::replay(schedule, target);
    faults.extend(replay_faults);
    if stats.makespan != schedule.makespan_cycles {
        faults.push(Fault::new(
            FaultKind::MakespanMismatch,
            stats.makespan,
            format!(
                "the schedule claims a makespan of {} cycles, but its last result is ready at cycle {}",
                schedule.makespan_cycles, stats.makespan
            ),
        ));
    }
    Verdict { stats, faults }
}

/// Check a whole artifact: the schedule against the target it embeds, and the report's claims
/// against the replay.
pub fn emulate_artifact(a: &Artifact) -> Verdict {
    let target = match Target::from_toml(&a.target_toml) {
        Ok(t) => t,
        Err(e) => {
            return Verdict {
                stats: Stats::default(),
                faults: vec![Fault::new(FaultKind::Malformed, 0, format!("target.toml: {e}"))],
            }
        }
    };
    let mut verdict = emulate_schedule(&a.schedule, &target);
    if sha256_hex(a.target_toml.as_bytes()) != a.manifest.target_sha256 {
        verdict.faults.push(Fault::new(
            FaultKind::Malformed,
            0,
            "target.toml is not the target description the manifest's target_sha256 pins".into(),
        ));
    }
    if target.name != a.manifest.target || target.name != a.schedule.target {
        verdict.faults.push(Fault::new(
            FaultKind::Malformed,
            0,
            format!(
                "target.toml is '{}' but the manifest names '{}' and the schedule '{}'",
                target.name, a.manifest.target, a.schedule.target
            ),
        ));
    }
    if verdict.faults.is_empty() {
        let s = &verdict.stats;
        let claims = [
            ("report makespan_cycles", a.report.makespan_cycles, s.makespan),
            ("report instructions", a.report.instructions, s.instructions),
            (
                "report sram.peak_bytes",
                a.report.sram.peak_bytes,
                s.peak_sram_bytes,
            ),
            (
                "report sram.peak_cycle",
                a.report.sram.peak_cycle,
                s.peak_sram_cycle,
            ),
            (
                "report per_token.latency_cycles",
                a.report.per_token.latency_cycles,
                s.makespan,
            ),
            (
                "report per_token.transfers",
                a.report.per_token.transfers.len() as u64,
                s.transfers,
            ),
            (
                "report per_token.total_bytes",
                a.report.per_token.total_bytes,
                s.transfer_bytes,
            ),
            (
                "report per_token.total_link_cycles",
                a.report.per_token.total_link_cycles,
                s.link_busy_cycles,
            ),
            (
                "report links busy_cycles (summed)",
                a.report.links.iter().map(|l| l.busy_cycles).sum(),
                s.link_busy_cycles,
            ),
            (
                "schedule sram_capacity_bytes",
                a.schedule.sram_capacity_bytes,
                target.sram.bytes,
            ),
        ];
        let mismatches: Vec<Fault> = claims
            .iter()
            .filter(|(_, claimed, measured)| claimed != measured)
            .map(|(what, claimed, measured)| {
                Fault::new(
                    FaultKind::ReportMismatch,
                    0,
                    format!("{what}: the artifact claims {claimed}, the replay measures {measured}"),
                )
            })
            .collect();
        verdict.faults.extend(mismatches);
    }
    verdict
}

#[cfg(test)]
mod tests;
