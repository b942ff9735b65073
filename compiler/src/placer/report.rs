//! The placement as text for people (`lpuc place`); JSON is the serialized `Placement`.

use super::Placement;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// A stable text rendering of `p`.
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
    out.push_str("stage  chips        racks  blocks                                   ops   weights MiB  sram/chip  cycles      split      heuristic   cut\n");
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
            "{k:>5}  {chips:<11}  {:>5}  {blocks:<40} {:>5} {:>12.1}  {:>8.1}%  {:>10}  {:<9}  {:>10}  {}\n",
            racks.join(","),
            s.ops,
            mib(s.weight_bytes),
            s.sram_utilization * 100.0,
            s.cycles,
            s.sharding,
            s.heuristic_cycles,
            s.cut
        ));
    }
    out
}
