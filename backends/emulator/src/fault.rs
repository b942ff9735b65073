//! Faults: each rule a schedule can break, with where and when it broke.

use lpuc_artifact::InstrId;
use lpuc_target::UnitId;
use std::fmt;

/// Which rule was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Ids out of range, a buffer written twice or never, sizes that do not match types.
    Malformed,
    /// An instruction on a unit the target does not have, or on the wrong kind of unit.
    BadUnit,
    /// An instruction's occupancy or latency differs from the target's cost model.
    CostMismatch,
    /// An instruction issues before one of its inputs is ready.
    DependencyNotReady,
    /// Two instructions occupy one unit at the same cycle.
    UnitConflict,
    /// A buffer extends past the end of SRAM.
    SramOutOfRange,
    /// Two live buffers share SRAM bytes.
    SramOverlap,
    /// Live buffers exceed SRAM capacity.
    SramOverCapacity,
    /// The claimed makespan is not the replayed one.
    MakespanMismatch,
    /// The report claims a figure the replay does not reproduce.
    ReportMismatch,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub cycle: u64,
    pub unit: Option<UnitId>,
    pub instructions: Vec<InstrId>,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(kind: FaultKind, cycle: u64, message: String) -> Self {
        Fault {
            kind,
            cycle,
            unit: None,
            instructions: Vec::new(),
            message,
        }
    }

    pub(crate) fn at(mut self, unit: UnitId, instructions: Vec<InstrId>) -> Self {
        self.unit = Some(unit);
        self.instructions = instructions;
        self
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at cycle {}", self.kind, self.cycle)?;
        if let Some(u) = self.unit {
            write!(f, " on {u}")?;
        }
        if !self.instructions.is_empty() {
            let ids: Vec<String> = self.instructions.iter().map(|i| i.to_string()).collect();
            write!(f, " [{}]", ids.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}
