//! The report: what a person reads about a schedule. Derived from the schedule by the compiler and
//! re-checked by the emulator where it makes claims (makespan, peak SRAM).

use lpuc_target::UnitId;
use serde::{Deserialize, Serialize};

/// What a step of the critical path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// An instruction on a unit of a chip.
    Compute,
    /// A chip-to-chip transfer along its route.
    Transfer,
}

/// One step of the critical path: an instruction or a transfer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalStep {
    pub kind: StepKind,
    /// The instruction's id (compute) or the transfer's (transfer).
    pub id: u32,
    /// The chip an instruction runs on, or the chip a transfer leaves (multi-chip schedules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<u32>,
    /// The instruction's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitId>,
    /// The chips a transfer passes, first to last: each neighbouring pair is one link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<u32>,
    /// IR op name (compute), or `transfer` / the transfer's purpose.
    pub op: String,
    /// ONNX node name (compute), or the buffer a transfer delivers.
    pub node: String,
    /// An instruction's issue cycle, or a transfer's first hop start.
    pub start: u64,
    /// When its result can be read: an instruction's `start + latency`, a transfer's arrival.
    pub end: u64,
    /// Why this step could not start earlier: `data` (waited for its predecessor's result),
    /// `transfer` (waited for the transfer before it on the path to arrive), `unit` (waited for its
    /// unit), `link` (a transfer waited for its first link to be free), `issue` (issued in order
    /// on its chip after an instruction that issued the same cycle), `order` (ordered after an
    /// instruction on its chip that finished then, e.g. a tile after the tile two before it), or
    /// `start` (first step).
    pub waits_on: String,
    /// Fraction of the makespan this step holds the path: cycles from its start to the next step's
    /// start (to its own end for the last step), over the makespan. When the first step starts at
    /// cycle 0 the shares sum to 1.
    pub share: f64,
}

/// How the critical path's cycles divide: computing, moving data between chips, and neither (a
/// step done but the next not started yet, e.g. waiting for a unit or a link held by work off the
/// path). The three sum to the makespan when the path starts at cycle 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalSplit {
    pub compute_cycles: u64,
    pub communication_cycles: u64,
    pub waiting_cycles: u64,
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Unit-cycles its units are busy (instruction occupancy, summed), and that over all its
    /// units for the whole makespan.
    pub busy_cycles: u64,
    pub unit_utilization: f64,
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub target: String,
    pub clock_hz: u64,
    pub makespan_cycles: u64,
    pub makespan_us: f64,
    pub instructions: u64,
    pub critical_path: Vec<CriticalStep>,
    pub critical_split: CriticalSplit,
    /// Per unit name; in a multi-chip schedule summed over chips (utilization over all chips).
    pub units: Vec<UnitReport>,
    /// SRAM of the chip with the highest peak (the first such chip).
    pub sram: SramReport,
    /// Multi-chip schedules: every chip, and the placement that decided them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chips: Vec<ChipReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::placement::Placement>,
    /// One token step: latency, tokens per second, and every chip-to-chip transfer.
    pub per_token: PerToken,
    /// Multi-chip schedules: every directed link that carries a hop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkReport>,
    /// The graph rewrites that changed the model, when any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrites: Option<Rewrites>,
}

/// What the rewrites did: how often each rule fired, and the graph's op count and predicted
/// cycles before and after.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrites {
    pub fired: std::collections::BTreeMap<String, u64>,
    pub ops_before: u64,
    pub ops_after: u64,
    /// The graph as exported and the chosen form, measured alike (`cycles_measure`); before is
    /// absent when the graph as exported could not be scheduled or placed.
    pub cycles_before: Option<u64>,
    pub cycles_after: u64,
    /// What the cycles are: one chip's makespan, or the placer's estimate of the pipeline's
    /// slowest stage.
    pub cycles_measure: String,
}

/// One step of the program (a decode step's token, or a prefill's prompt) and what it moves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerToken {
    /// `prefill` or `decode`.
    pub phase: String,
    /// Tokens one step produces per stream: 1 for decode, the bucket for prefill (absent when
    /// the model has no sequence bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_step: Option<u64>,
    /// Streams one step serves (the batch).
    pub streams: u64,
    /// One step, end to end (the makespan).
    pub latency_cycles: u64,
    pub latency_us: f64,
    /// One stream's tokens per second, steps back to back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
    /// Pipeline stages (chip groups one step passes through in turn).
    pub stages: u32,
    /// Cycles between two steps entering the pipeline when it is full: a stage works on one step
    /// at a time, so this is the most cycles any stage is active for one step (the union of its
    /// instructions' issue-to-result intervals and its outgoing hops; the wait after a hop for its
    /// data to arrive is not counted).
    pub initiation_interval_cycles: u64,
    /// Steps in flight needed to fill the pipeline: `ceil(latency / interval)`.
    pub steps_in_flight: u64,
    /// Tokens per second over all streams when the pipeline is full. An upper bound: it assumes
    /// `steps_in_flight` independent steps (for decode, that many streams, each with its own KV
    /// cache), while the placement sized SRAM for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state_tokens_per_second: Option<f64>,
    /// Every transfer of the step, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfers: Vec<TransferReport>,
    pub total_bytes: u64,
    /// Link-cycles: each hop's cycles on its link, summed.
    pub total_link_cycles: u64,
    /// Transfers on the critical path, and their hops that leave a node or a rack.
    pub critical_transfers: u64,
    pub critical_cross_node_hops: u64,
    pub critical_cross_rack_hops: u64,
}

/// One transfer of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferReport {
    pub id: u32,
    pub from_chip: u32,
    pub to_chip: u32,
    pub bytes: u64,
    /// The chips it passes, first to last.
    pub route: Vec<u32>,
    /// Its hops' cycles on their links, summed.
    pub link_cycles: u64,
    pub start: u64,
    pub arrival: u64,
    pub critical: bool,
}

/// One directed chip-to-chip link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkReport {
    pub from_chip: u32,
    pub to_chip: u32,
    /// `local` (inside a node) or `global`.
    pub kind: String,
    pub hops: u64,
    pub busy_cycles: u64,
    /// Busy cycles over the makespan.
    pub utilization: f64,
}
