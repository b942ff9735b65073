//! Faults: each rule a schedule can break, with where and when it broke.

use lpuc_artifact::{InstrId, TransferId};
use lpuc_target::UnitId;
use std::fmt;

/// Which rule was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Ids out of range, a buffer written twice or never, sizes that do not match types, an
    /// instruction touching another chip's buffer, a transfer between unlike buffers.
    Malformed,
    /// An instruction on a unit the target does not have, or on the wrong kind of unit.
    BadUnit,
    /// An instruction's occupancy or latency differs from the target's cost model.
    CostMismatch,
    /// A transfer whose hops are not links of the topology, do not chain, or do not start at its
    /// source buffer's chip and end at its destination buffer's chip.
    BadRoute,
    /// A hop whose duration (`end - start`) differs from the link model (`Target::hop_cycles`).
    TransferDuration,
    /// An instruction issues before one of its inputs is ready (computed, or arrived by transfer).
    DependencyNotReady,
    /// A hop starts before its data is there: the source buffer is not ready yet, or the previous
    /// hop's data has not arrived.
    TransferNotReady,
    /// Two instructions occupy one unit of one chip at the same cycle.
    UnitConflict,
    /// Two hops occupy one directed link at the same cycle.
    LinkConflict,
    /// A buffer extends past the end of its chip's SRAM.
    SramOutOfRange,
    /// Two live buffers on one chip share SRAM bytes.
    SramOverlap,
    /// Live buffers on one chip exceed its SRAM capacity.
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
    /// The chip where it broke (for a link, the sending chip).
    pub chip: Option<u32>,
    pub unit: Option<UnitId>,
    pub instructions: Vec<InstrId>,
    pub transfers: Vec<TransferId>,
    pub message: String,
}

impl Fault {
    pub(crate) fn new(kind: FaultKind, cycle: u64, message: String) -> Self {
        Fault {
            kind,
            cycle,
            chip: None,
            unit: None,
            instructions: Vec::new(),
            transfers: Vec::new(),
            message,
        }
    }

    /// The fault happened on `unit` of `chip`, involving `instructions`.
    pub(crate) fn at(mut self, chip: u32, unit: UnitId, instructions: Vec<InstrId>) -> Self {
        self.chip = Some(chip);
        self.unit = Some(unit);
        self.instructions = instructions;
        self
    }

    pub(crate) fn on_chip(mut self, chip: u32) -> Self {
        self.chip = Some(chip);
        self
    }

    pub(crate) fn with_instructions(mut self, instructions: Vec<InstrId>) -> Self {
        self.instructions = instructions;
        self
    }

    pub(crate) fn with_transfers(mut self, transfers: Vec<TransferId>) -> Self {
        self.transfers = transfers;
        self
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at cycle {}", self.kind, self.cycle)?;
        match (self.chip, self.unit) {
            (Some(c), Some(u)) => write!(f, " on chip {c} {u}")?,
            (Some(c), None) => write!(f, " on chip {c}")?,
            (None, Some(u)) => write!(f, " on {u}")?,
            (None, None) => {}
        }
        let ids: Vec<String> = self
            .instructions
            .iter()
            .map(|i| i.to_string())
            .chain(self.transfers.iter().map(|t| t.to_string()))
            .collect();
        if !ids.is_empty() {
            write!(f, " [{}]", ids.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}
