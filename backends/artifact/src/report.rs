//! The report: what a person reads about a schedule. Derived from the schedule by the compiler and
//! re-checked by the emulator where it makes claims (makespan, peak SRAM).

use lpuc_target::UnitId;
use serde::{Deserialize, Serialize};

/// One link of the critical path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalStep {
    pub instruction: u32,
    /// The chip it runs on (multi-chip schedules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<u32>,
    pub unit: UnitId,
    pub op: String,
    pub node: String,
    pub start: u64,
    pub end: u64,
    /// Why this step could not start earlier: `data` (waited for its predecessor's result),
    /// `transfer tN from chip C` (waited for that transfer to bring the predecessor's result),
    /// `unit` (waited for its unit), `issue` (issued in order on its chip after an instruction
    /// that issued the same cycle), or `start` (first step).
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

/// One chip of a multi-chip schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipReport {
    pub chip: u32,
    pub node: u32,
    pub rack: u32,
    pub instructions: u64,
    /// Weight bytes it stores, and graph-input bytes (a decode step's KV cache).
    pub weight_bytes: u64,
    pub input_bytes: u64,
    /// Most bytes live at once (weights, inputs, activations, transfers in flight) and when.
    pub peak_bytes: u64,
    pub peak_cycle: u64,
    pub high_water_bytes: u64,
    /// `high_water_bytes` over the SRAM capacity.
    pub sram_utilization: f64,
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
    /// Per unit name; in a multi-chip schedule summed over chips (utilization over all chips).
    pub units: Vec<UnitReport>,
    /// SRAM of the chip with the highest peak (the first such chip).
    pub sram: SramReport,
    /// Multi-chip schedules: every chip, and the placement that decided them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chips: Vec<ChipReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::placement::Placement>,
}
