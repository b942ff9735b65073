//! The placement: which chips hold which part of the model, why each stage ends where it does,
//! which ops were tiled in time, and what one replica depends on. The compiler's placer produces
//! it; `report.json` carries it under `placement`, and `lpuc place` prints it.

use serde::{Deserialize, Serialize};

/// One pipeline stage as placed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub first_chip: u32,
    pub chips: u32,
    pub racks: Vec<u32>,
    /// The first and last block of the stage.
    pub blocks: (String, String),
    pub block_count: usize,
    pub ops: usize,
    pub weight_bytes: u64,
    pub activation_bytes: u64,
    pub transfer_in_bytes: u64,
    /// Compute, collective and incoming-transfer cycles of the stage.
    pub cycles: u64,
    /// How its blocks' ops were split over the group: `ilp` (every block proven optimal),
    /// `heuristic`, `mixed`, or `single` (one chip).
    pub sharding: String,
    /// The stage's `cycles` had the heuristic split every block (equal to `cycles` when it
    /// did): the ILP's gain is the difference.
    pub heuristic_cycles: u64,
    /// A lower bound on the stage's cycles: `cycles` when every block's split was proven optimal
    /// (or it runs on one chip), else with each unproven block at a bound no split can beat
    /// (every op at its cheapest strategy, no collective).
    pub lower_bound_cycles: u64,
    /// SRAM bytes the stage needs per chip of its group.
    pub sram_bytes_per_chip: u64,
    pub sram_utilization: f64,
    /// Why the stage ends where it does: "capacity" (the next block would need another chip),
    /// "bottleneck" (a cut balances the pipeline), "speed" (a larger group than memory needs, to
    /// split the compute), or "end".
    pub cut: String,
}

/// A placement of the whole model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Which method decided and how sure it is.
    pub method: String,
    pub blocks: usize,
    pub chips_used: u32,
    pub chips_given: Option<u32>,
    pub racks: u32,
    /// The slowest stage's cycles: one token's (or one batch's) steady-state pipeline interval.
    pub bottleneck_cycles: u64,
    /// Weight bytes over all chips, a copy of each shared weight per stage that reads it included.
    pub weight_bytes: u64,
    pub stages: Vec<Stage>,
    /// Ops tiled in time because their working set exceeds a quarter of a chip's SRAM.
    pub tiled: Vec<Tiled>,
    /// The chips, nodes and racks this replica of the model depends on: losing any one stops it.
    pub failure_domains: FailureDomains,
}

/// What one replica depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureDomains {
    pub chips: u32,
    pub nodes: Vec<u32>,
    pub racks: Vec<u32>,
}

/// One tiled op, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tiled {
    pub node: String,
    pub op: String,
    /// Tiles per axis of the result, outermost first (1 where the axis is not split).
    pub tiles: Vec<u64>,
    pub working_bytes: u64,
    pub tile_bytes: u64,
    /// Whether a tile fits the budget (the leading axes may be too small to split enough).
    pub fits: bool,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// A stable text rendering of `p` for people (`lpuc place`, `lpuc report`).
pub fn placement_text(p: &Placement, clock_hz: u64) -> String {
    let mut out = String::new();
    out.push_str(&format!("placement: {}\n", p.method));
    out.push_str(&format!(
        "chips: {} used{} in {} rack(s); {} stage(s); weights {:.1} MiB\n",
        p.chips_used,
        p.chips_given.map_or(String::new(), |g| format!(" of {g} given")),
        p.racks,
        p.stages.len(),
        mib(p.weight_bytes)
    ));
    out.push_str(&format!(
        "bottleneck: {} cycles = {:.3} us per pipeline step\n",
        p.bottleneck_cycles,
        p.bottleneck_cycles as f64 * 1e6 / clock_hz as f64
    ));
    let fd = &p.failure_domains;
    out.push_str(&format!(
        "failure domains: {} chip(s) in {} node(s) of {} rack(s); losing any one stops this replica\n",
        fd.chips,
        fd.nodes.len(),
        fd.racks.len()
    ));
    if !p.tiled.is_empty() {
        let over = p.tiled.iter().filter(|t| !t.fits).count();
        out.push_str(&format!("tiled in time: {} op(s)", p.tiled.len()));
        if over > 0 {
            out.push_str(&format!(" ({over} still above a quarter of SRAM a tile)"));
        }
        if let Some(big) = p.tiled.iter().max_by_key(|t| t.working_bytes) {
            out.push_str(&format!(
                "; the largest, {} ({}), {:.1} MiB in tiles {:?} of {:.1} MiB",
                big.node,
                big.op,
                mib(big.working_bytes),
                big.tiles,
                mib(big.tile_bytes)
            ));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str("stage  chips        racks  blocks                                   ops   weights MiB  sram/chip  cycles      split      heuristic      gap  cut\n");
    for (k, s) in p.stages.iter().enumerate() {
        let chips = if s.chips == 1 {
            format!("{}", s.first_chip)
        } else {
            format!("{}-{}", s.first_chip, s.first_chip + s.chips - 1)
        };
        let racks: Vec<String> = s.racks.iter().map(u32::to_string).collect();
        let blocks = if s.block_count == 1 {
            s.blocks.0.clone()
        } else {
            format!("{} .. {} ({})", s.blocks.0, s.blocks.1, s.block_count)
        };
        out.push_str(&format!(
            "{k:>5}  {chips:<11}  {:>5}  {blocks:<40} {:>5} {:>12.1}  {:>8.1}%  {:>10}  {:<9}  {:>10}  {:>6.1}%  {}\n",
            racks.join(","),
            s.ops,
            mib(s.weight_bytes),
            s.sram_utilization * 100.0,
            s.cycles,
            s.sharding,
            s.heuristic_cycles,
            100.0 * s.cycles.saturating_sub(s.lower_bound_cycles) as f64 / s.cycles.max(1) as f64,
            s.cut
        ));
    }
    out
}
