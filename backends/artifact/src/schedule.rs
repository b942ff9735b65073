//! The schedule: every instruction with its unit and exact cycles, every buffer with its SRAM range.
//!
//! Timing rules (the contract the emulator checks):
//! - an instruction keeps its unit busy for `[start, start + occupancy)`;
//! - its results are readable from `start + latency` on;
//! - a buffer it writes occupies SRAM from its `start` until the last reader's `start + latency`
//!   (graph outputs until the makespan); inputs and weights occupy SRAM for the whole program;
//! - the makespan is the latest `start + latency`.

use lpuc_ir::DType;
use lpuc_target::{UnitId, Work};
use serde::{Deserialize, Serialize};

/// Version of the schedule layout; bump on any incompatible change.
pub const SCHEDULE_FORMAT: u32 = 1;

/// Index of an instruction in [`Schedule::instructions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstrId(pub u32);

/// Index of a buffer in [`Schedule::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BufferId(pub u32);

impl std::fmt::Display for InstrId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl std::fmt::Display for BufferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Why a buffer exists, which decides its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferKind {
    /// A graph input, present from cycle 0.
    Input,
    /// A weight or constant, present from cycle 0.
    Weight,
    /// An intermediate result.
    Activation,
    /// A graph output: kept until the end.
    Output,
}

/// A tensor's place in SRAM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffer {
    pub id: BufferId,
    pub name: String,
    pub kind: BufferKind,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub bytes: u64,
    /// First byte in SRAM; the buffer occupies `[offset, offset + bytes)`.
    pub offset: u64,
}

/// One instruction on one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    pub id: InstrId,
    pub unit: UnitId,
    pub start: u64,
    pub occupancy: u64,
    pub latency: u64,
    /// IR op name, e.g. `MatMul`.
    pub op: String,
    /// ONNX node name and op type it came from.
    pub node: String,
    pub onnx_op: String,
    pub reads: Vec<BufferId>,
    pub writes: Vec<BufferId>,
    /// What the cost model charged, so a checker can recompute the durations.
    pub work: Work,
}

impl Instruction {
    /// Cycle at which the unit is free again.
    pub fn busy_until(&self) -> u64 {
        self.start + self.occupancy
    }

    /// Cycle from which the results can be read.
    pub fn done_cycle(&self) -> u64 {
        self.start + self.latency
    }
}

/// A complete single-chip schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub format: u32,
    pub target: String,
    pub sram_capacity_bytes: u64,
    pub makespan_cycles: u64,
    pub buffers: Vec<Buffer>,
    /// Sorted by (start, unit, id).
    pub instructions: Vec<Instruction>,
}
