//! Stable text renderings of a schedule and a report: what people review and tests snapshot.
//!
//! Fixed column widths and no floating point beyond fixed decimals, so the text changes only when
//! the schedule does.

use crate::report::{LinkReport, PerToken, StepKind};
use crate::{Report, Schedule};
use std::fmt::Write;

/// `schedule.txt`: a header, one line per instruction in issue order, the transfers, then the SRAM
/// map. A multi-chip schedule adds a chip column to instructions and buffers; a single-chip one
/// reads as it always has.
pub fn schedule_text(s: &Schedule) -> String {
    let mut out = Vec::new();
    write_schedule_text(&mut out, s).expect("writing to memory does not fail");
    String::from_utf8(out).expect("the schedule text is UTF-8")
}

/// [`schedule_text`] written to `out` line by line, so a schedule of millions of instructions is
/// never held as one string.
pub fn write_schedule_text(out: &mut impl std::io::Write, s: &Schedule) -> std::io::Result<()> {
    let multi = s.chips > 1 || !s.transfers.is_empty();
    let chip = |c: u32| {
        if multi {
            format!("{c:>4} ")
        } else {
            String::new()
        }
    };
    let chip_head = if multi { "chip " } else { "" };
    write!(
        out,
        "# lpuc schedule v{}  target={}  makespan={} cycles  instructions={}  buffers={}",
        s.format,
        s.target,
        s.makespan_cycles,
        s.instructions.len(),
        s.buffers.len()
    )?;
    if multi {
        write!(out, "  chips={}  transfers={}", s.chips, s.transfers.len())?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "# {:>9} {chip_head}{:<5} {:>9} {:>9}  {:<10} {:<24} node",
        "cycle", "unit", "busy", "latency", "op", "reads -> writes"
    )?;
    for i in &s.instructions {
        let reads: Vec<String> = i.reads.iter().map(|b| b.to_string()).collect();
        let writes: Vec<String> = i.writes.iter().map(|b| b.to_string()).collect();
        let io = format!("{} -> {}", reads.join(","), writes.join(","));
        writeln!(
            out,
            "{:>11} {}{:<5} {:>9} {:>9}  {:<10} {:<24} {} ({})",
            i.start,
            chip(i.chip),
            i.unit.to_string(),
            i.occupancy,
            i.latency,
            i.op,
            io,
            i.node,
            i.onnx_op
        )?;
    }
    if !s.transfers.is_empty() {
        writeln!(out, "# transfers: hop from->to chip [start, end)")?;
        writeln!(
            out,
            "# {:<6} {:>12} {:<16} {:<14} hops",
            "id", "bytes", "from -> to", "purpose"
        )?;
        for t in &s.transfers {
            let hops: Vec<String> = t
                .hops
                .iter()
                .map(|h| format!("{}->{} [{}, {})", h.from_chip, h.to_chip, h.start, h.end))
                .collect();
            writeln!(
                out,
                "  {:<6} {:>12} {:<16} {:<14} {}",
                t.id.to_string(),
                t.bytes,
                format!("{} -> {}", t.from, t.to),
                t.purpose,
                hops.join("  ")
            )?;
        }
    }
    let per_chip = if multi { " per chip" } else { "" };
    writeln!(out, "# sram: capacity={} bytes{per_chip}", s.sram_capacity_bytes)?;
    writeln!(
        out,
        "# {:<6} {chip_head}{:<10} {:>12} {:>12}  {:<20} name",
        "buffer", "kind", "offset", "bytes", "type"
    )?;
    for b in &s.buffers {
        let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
        let kind = format!("{:?}", b.kind).to_lowercase();
        writeln!(
            out,
            "  {:<6} {}{:<10} {:>12} {:>12}  {:<20} {}",
            b.id.to_string(),
            chip(b.chip),
            kind,
            b.offset,
            b.bytes,
            format!("{}[{}]", b.dtype, dims.join(",")),
            b.name
        )?;
    }
    Ok(())
}

/// The text report printed by `lpuc report`.
pub fn report_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lpuc report (target {}, {} MHz)",
        r.target,
        r.clock_hz / 1_000_000
    );
    let _ = writeln!(
        out,
        "makespan: {} cycles = {:.3} us  ({} instructions)",
        r.makespan_cycles, r.makespan_us, r.instructions
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let _ = writeln!(
        out,
        "sram: peak {:.2} MiB at cycle {} of {:.2} MiB ({:.1}%); weights {:.2} MiB; allocator high water {:.2} MiB",
        mib(r.sram.peak_bytes),
        r.sram.peak_cycle,
        mib(r.sram.capacity_bytes),
        100.0 * r.sram.peak_bytes as f64 / r.sram.capacity_bytes.max(1) as f64,
        mib(r.sram.weight_bytes),
        mib(r.sram.high_water_bytes),
    );
    if let Some(rw) = &r.rewrites {
        let fired: Vec<String> = rw.fired.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let before = rw
            .cycles_before
            .map_or("(the graph as exported did not fit)".to_string(), |c| {
                c.to_string()
            });
        let _ = writeln!(
            out,
            "rewrites: {} ops -> {}, {before} cycles -> {} ({}); fired {}",
            rw.ops_before,
            rw.ops_after,
            rw.cycles_after,
            rw.cycles_measure,
            fired.join(", ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "critical path ({} steps):", r.critical_path.len());
    let split = &r.critical_split;
    let pct = |c: u64| 100.0 * c as f64 / r.makespan_cycles.max(1) as f64;
    let _ = writeln!(
        out,
        "  compute {} cycles ({:.1}%), communication {} ({:.1}%), waiting {} ({:.1}%)",
        split.compute_cycles,
        pct(split.compute_cycles),
        split.communication_cycles,
        pct(split.communication_cycles),
        split.waiting_cycles,
        pct(split.waiting_cycles)
    );
    let _ = writeln!(
        out,
        "  {:>7} {:<9} {:>10} {:>10} {:>7}  {:<8} {:<10} node",
        "step", "where", "start", "end", "share", "waits", "op"
    );
    for s in &r.critical_path {
        let (id, place) = match s.kind {
            StepKind::Compute => {
                let unit = s.unit.map_or_else(String::new, |u| u.to_string());
                let place = match s.chip {
                    Some(c) => format!("{c}:{unit}"),
                    None => unit,
                };
                (format!("#{}", s.id), place)
            }
            StepKind::Transfer => {
                let route: Vec<String> = s.route.iter().map(u32::to_string).collect();
                (format!("t{}", s.id), route.join(">"))
            }
        };
        let _ = writeln!(
            out,
            "  {:>7} {:<9} {:>10} {:>10} {:>6.2}%  {:<8} {:<10} {}",
            id,
            place,
            s.start,
            s.end,
            100.0 * s.share,
            s.waits_on,
            s.op,
            s.node
        );
    }
    per_token_text(&mut out, &r.per_token);
    let _ = writeln!(out);
    let _ = writeln!(out, "units:");
    let _ = writeln!(
        out,
        "  {:<5} {:>7} {:>12} {:>8}",
        "unit", "instrs", "busy", "util"
    );
    for u in &r.units {
        let _ = writeln!(
            out,
            "  {:<5} {:>7} {:>12} {:>7.2}%",
            u.unit.to_string(),
            u.instructions,
            u.busy_cycles,
            100.0 * u.utilization
        );
    }
    if !r.chips.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "chips:");
        let _ = writeln!(
            out,
            "  {:>5} {:>5} {:>5} {:>7} {:>7} {:>12} {:>12} {:>12} {:>8}",
            "chip", "node", "rack", "instrs", "units", "weights MiB", "inputs MiB", "peak MiB", "sram"
        );
        for c in &r.chips {
            let _ = writeln!(
                out,
                "  {:>5} {:>5} {:>5} {:>7} {:>6.2}% {:>12.2} {:>12.2} {:>12.2} {:>7.1}%",
                c.chip,
                c.node,
                c.rack,
                c.instructions,
                100.0 * c.unit_utilization,
                mib(c.weight_bytes),
                mib(c.input_bytes),
                mib(c.peak_bytes),
                100.0 * c.sram_utilization
            );
        }
    }
    if !r.links.is_empty() {
        links_text(&mut out, &r.links);
    }
    if let Some(p) = &r.placement {
        let _ = writeln!(out);
        out.push_str(&crate::placement::placement_text(p, r.clock_hz));
    }
    out
}

/// The step's latency and throughput, and its transfers: totals, and those on the critical path.
fn per_token_text(out: &mut String, t: &PerToken) {
    let _ = writeln!(out);
    let _ = writeln!(out, "per token ({} step, {} stream(s)):", t.phase, t.streams);
    let _ = writeln!(
        out,
        "  latency {} cycles = {:.3} us{}",
        t.latency_cycles,
        t.latency_us,
        t.tokens_per_step
            .zip(t.tokens_per_second)
            .map_or(String::new(), |(n, s)| format!(
                "; {n} token(s) a step, {s:.1} tokens/s for one stream"
            ))
    );
    let _ = writeln!(
        out,
        "  pipeline: {} stage(s), a step enters every {} cycles, {} step(s) in flight fill it{}",
        t.stages,
        t.initiation_interval_cycles,
        t.steps_in_flight,
        t.steady_state_tokens_per_second
            .map_or(String::new(), |s| format!(
                "; {s:.1} tokens/s over all streams when full"
            ))
    );
    let _ = writeln!(
        out,
        "  transfers: {} moving {} bytes over {} link-cycles; {} on the critical path with {} cross-node and {} cross-rack hop(s)",
        t.transfers.len(),
        t.total_bytes,
        t.total_link_cycles,
        t.critical_transfers,
        t.critical_cross_node_hops,
        t.critical_cross_rack_hops
    );
    for x in t.transfers.iter().filter(|x| x.critical) {
        let route: Vec<String> = x.route.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "    t{:<6} {:>10} bytes  {:<12} {:>8} link-cycles  {:>10} -> {:>10}",
            x.id,
            x.bytes,
            route.join(">"),
            x.link_cycles,
            x.start,
            x.arrival
        );
    }
}

/// Links by kind, and the busiest few.
fn links_text(out: &mut String, links: &[LinkReport]) {
    let _ = writeln!(out);
    let local = links.iter().filter(|l| l.kind == "local").count();
    let _ = writeln!(
        out,
        "links: {} directed links carry hops ({} local, {} global); busiest:",
        links.len(),
        local,
        links.len() - local
    );
    let mut busiest: Vec<&LinkReport> = links.iter().collect();
    busiest.sort_by_key(|l| (std::cmp::Reverse(l.busy_cycles), l.from_chip, l.to_chip));
    for l in busiest.iter().take(8) {
        let _ = writeln!(
            out,
            "  {:>5} -> {:<5} {:<6} {:>6} hops {:>12} cycles {:>7.2}%",
            l.from_chip,
            l.to_chip,
            l.kind,
            l.hops,
            l.busy_cycles,
            100.0 * l.utilization
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Buffer, BufferId, BufferKind, Hop, InstrId, Instruction, Transfer, TransferId};
    use lpuc_ir::DType;
    use lpuc_target::Work;

    /// A two-chip schedule shows chips on instructions and buffers, and its transfers with hops;
    /// the JSON form round-trips.
    #[test]
    fn a_multi_chip_schedule_names_its_chips_and_transfers() {
        let buffer = |id: u32, kind, chip| Buffer {
            id: BufferId(id),
            name: format!("v{id}"),
            kind,
            dtype: DType::F32,
            shape: vec![4],
            bytes: 16,
            chip,
            offset: 0,
        };
        let relu = |id: u32, chip: u32, start: u64, read: u32, write: u32| Instruction {
            id: InstrId(id),
            chip,
            unit: "VXM0".parse().unwrap(),
            start,
            occupancy: 1,
            latency: 10,
            op: "Relu".into(),
            node: format!("relu{id}"),
            onnx_op: "Relu".into(),
            reads: vec![BufferId(read)],
            writes: vec![BufferId(write)],
            work: Work::Vector {
                op: "Relu".into(),
                elements: 4,
                dtype: DType::F32,
            },
        };
        let s = Schedule {
            format: crate::SCHEDULE_FORMAT,
            target: "lpu-v1".into(),
            sram_capacity_bytes: 1024,
            makespan_cycles: 500,
            chips: 2,
            buffers: vec![
                buffer(0, BufferKind::Input, 0),
                buffer(1, BufferKind::Activation, 0),
                buffer(2, BufferKind::Activation, 1),
                buffer(3, BufferKind::Output, 1),
            ],
            instructions: vec![relu(0, 0, 0, 0, 1), relu(1, 1, 490, 2, 3)],
            transfers: vec![Transfer {
                id: TransferId(0),
                from: BufferId(1),
                to: BufferId(2),
                bytes: 16,
                purpose: "activation".into(),
                hops: vec![Hop {
                    from_chip: 0,
                    to_chip: 1,
                    start: 10,
                    end: 12,
                }],
            }],
        };
        insta::assert_snapshot!("multi_chip_schedule", schedule_text(&s));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        // Fields the format does not define are refused.
        let extra = json.replacen("\"chips\":2", "\"chips\":2,\"links\":[]", 1);
        assert!(serde_json::from_str::<Schedule>(&extra).is_err());
    }
}
