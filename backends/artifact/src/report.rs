//! The report: what a person reads about a schedule. Derived from the schedule by the compiler and
//! re-checked by the emulator where it makes claims (makespan, peak SRAM).

use lpuc_target::UnitId;
use serde::{Deserialize, Serialize};

/// One link of the critical path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalStep {
    pub instruction: u32,
    pub unit: UnitId,
    pub op: String,
    pub node: String,
    pub start: u64,
    pub end: u64,
    /// Why this step could not start earlier: `data` (waited for its predecessor's result),
    /// `unit` (waited for its unit), or `start` (first step).
    pub waits_on: String,
    /// Fraction of the makespan this step holds the path: cycles from its start to the next step's
    /// start (to its own end for the last step), over the makespan. When the first step starts at
    /// cycle 0 the shares sum to 1.
    pub share: f64,
}

/// Busy time of one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitReport {
    pub unit: UnitId,
    pub instructions: u64,
    pub busy_cycles: u64,
    pub utilization: f64,
}

/// SRAM use over the program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SramReport {
    pub capacity_bytes: u64,
    pub peak_bytes: u64,
    pub peak_cycle: u64,
    pub weight_bytes: u64,
    /// Highest address used plus one: what the allocator needed, including fragmentation.
    pub high_water_bytes: u64,
}

/// Everything `lpuc report` shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub target: String,
    pub clock_hz: u64,
    pub makespan_cycles: u64,
    pub makespan_us: f64,
    pub instructions: u64,
    pub critical_path: Vec<CriticalStep>,
    pub units: Vec<UnitReport>,
    pub sram: SramReport,
}
