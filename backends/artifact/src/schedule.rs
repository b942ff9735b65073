//! The schedule: every instruction with its chip, unit and exact cycles, every buffer with its chip
//! and SRAM range, and every chip-to-chip transfer with its route and the cycles of each hop.
//!
//! Chips are numbered as the target's topology numbers them; a schedule uses chips `0..chips`.
//! Units and SRAM are per chip: `MXM0` on chip 3 is not `MXM0` on chip 4, and a buffer's offset is
//! an address in its own chip's SRAM. A single-chip schedule has `chips = 1`, every chip 0 and no
//! transfers.
//!
//! Timing rules (the contract the emulator checks):
//! - an instruction keeps its unit busy for `[start, start + occupancy)`, and reads and writes only
//!   buffers on its own chip;
//! - its results are readable from `start + latency` on;
//! - a buffer is written by exactly one instruction or one transfer, or is an input or weight
//!   (ready at cycle 0, on its chip for the whole program);
//! - a transfer copies its `from` buffer into its `to` buffer (same bytes, dtype and shape) along
//!   `hops`: the first hop leaves `from`'s chip, the last arrives at `to`'s chip, each starts where
//!   the previous one ended, and each is a link of the topology (`Target::link`). Forwarding chips
//!   hold no SRAM (ASSUMPTION: the stream passes through the switch);
//! - a hop occupies the directed link `from_chip -> to_chip` for `[start, end)`, with `end - start
//!   == Target::hop_cycles(bytes)` (`ceil(bytes * clock_hz / bytes_per_second_per_direction)`);
//!   at most one hop uses a directed link at any cycle;
//! - a hop's data is at its `to_chip` from `end + hop_latency_cycles + sync_margin_cycles` on
//!   (`Target::hop_arrival_delay`); the next hop starts at or after that (store and forward), and
//!   the first hop starts at or after the `from` buffer is ready;
//! - the `to` buffer is ready from the last hop's arrival (its *arrival*) on;
//! - a buffer occupies its chip's SRAM from its writer's start (an instruction's `start`, a
//!   transfer's first hop start: the space is reserved for the data in flight) until its last
//!   reader is done: an instruction at `start + latency`, a transfer at the end of its first hop.
//!   Without readers it is freed when it is ready; graph outputs stay until the makespan; inputs
//!   and weights occupy SRAM for the whole program. Live buffers on one chip never share bytes and
//!   never exceed `sram_capacity_bytes`;
//! - the makespan is the latest of every instruction's `start + latency` and every transfer's
//!   arrival.

use lpuc_ir::DType;
use lpuc_target::{UnitId, Work};
use serde::{Deserialize, Serialize};

/// Version of the schedule layout; bump on any incompatible change.
pub const SCHEDULE_FORMAT: u32 = 2;

/// Index of an instruction in [`Schedule::instructions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstrId(pub u32);

/// Index of a buffer in [`Schedule::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BufferId(pub u32);

/// Index of a transfer in [`Schedule::transfers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferId(pub u32);

impl std::fmt::Display for TransferId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

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
    /// The chip whose SRAM holds it.
    pub chip: u32,
    /// First byte in its chip's SRAM; the buffer occupies `[offset, offset + bytes)`.
    pub offset: u64,
}

/// One instruction on one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instruction {
    pub id: InstrId,
    /// The chip it runs on; `unit` is a unit of that chip.
    pub chip: u32,
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

/// One hop of a transfer: the directed link `from_chip -> to_chip`, busy for `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hop {
    pub from_chip: u32,
    pub to_chip: u32,
    pub start: u64,
    pub end: u64,
}

/// A copy of one buffer into a buffer on another chip, over one or more links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub id: TransferId,
    /// The buffer read on the source chip and the buffer written on the destination chip (same
    /// bytes, same dtype and shape).
    pub from: BufferId,
    pub to: BufferId,
    pub bytes: u64,
    /// Why it exists: `activation`, `all-gather`, `reduce-scatter`, `all-reduce`, ... (free text
    /// for reports).
    pub purpose: String,
    /// The route, one hop per link, in order.
    pub hops: Vec<Hop>,
}

impl Transfer {
    /// The chips it passes, first to last (each neighbouring pair one hop's link); empty without
    /// hops.
    pub fn route(&self) -> Vec<u32> {
        let mut route: Vec<u32> = self.hops.iter().map(|h| h.from_chip).collect();
        route.extend(self.hops.last().map(|h| h.to_chip));
        route
    }

    /// Cycle from which the `to` buffer is ready, given the delay after each hop
    /// (`Target::hop_arrival_delay`); `None` without hops.
    pub fn arrival(&self, hop_arrival_delay: u64) -> Option<u64> {
        self.hops.last().map(|h| h.end.saturating_add(hop_arrival_delay))
    }
}

/// A complete schedule, on one chip or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub format: u32,
    pub target: String,
    /// SRAM bytes of each chip.
    pub sram_capacity_bytes: u64,
    pub makespan_cycles: u64,
    /// Chips that hold buffers or run instructions: ids `0..chips`. A route may forward through
    /// chips outside this range (forwarding uses links only).
    pub chips: u32,
    pub buffers: Vec<Buffer>,
    /// Sorted by (start, chip, unit, id).
    pub instructions: Vec<Instruction>,
    /// Sorted by (first hop's start, id).
    pub transfers: Vec<Transfer>,
}
