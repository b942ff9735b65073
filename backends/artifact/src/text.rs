//! Stable text renderings of a schedule and a report: what people review and tests snapshot.
//!
//! Fixed column widths and no floating point beyond fixed decimals, so the text changes only when
//! the schedule does.

use crate::{Report, Schedule};
use std::fmt::Write;

/// `schedule.txt`: a header, one line per instruction in issue order, then the SRAM map.
pub fn schedule_text(s: &Schedule) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# lpuc schedule v{}  target={}  makespan={} cycles  instructions={}  buffers={}",
        s.format,
        s.target,
        s.makespan_cycles,
        s.instructions.len(),
        s.buffers.len()
    );
    let _ = writeln!(
        out,
        "# {:>9} {:<5} {:>9} {:>9}  {:<10} {:<24} node",
        "cycle", "unit", "busy", "latency", "op", "reads -> writes"
    );
    for i in &s.instructions {
        let reads: Vec<String> = i.reads.iter().map(|b| b.to_string()).collect();
        let writes: Vec<String> = i.writes.iter().map(|b| b.to_string()).collect();
        let io = format!("{} -> {}", reads.join(","), writes.join(","));
        let _ = writeln!(
            out,
            "{:>11} {:<5} {:>9} {:>9}  {:<10} {:<24} {} ({})",
            i.start,
            i.unit.to_string(),
            i.occupancy,
            i.latency,
            i.op,
            io,
            i.node,
            i.onnx_op
        );
    }
    let _ = writeln!(out, "# sram: capacity={} bytes", s.sram_capacity_bytes);
    let _ = writeln!(
        out,
        "# {:<6} {:<10} {:>12} {:>12}  {:<20} name",
        "buffer", "kind", "offset", "bytes", "type"
    );
    for b in &s.buffers {
        let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
        let kind = format!("{:?}", b.kind).to_lowercase();
        let _ = writeln!(
            out,
            "  {:<6} {:<10} {:>12} {:>12}  {:<20} {}",
            b.id.to_string(),
            kind,
            b.offset,
            b.bytes,
            format!("{}[{}]", b.dtype, dims.join(",")),
            b.name
        );
    }
    out
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
    let _ = writeln!(out);
    let _ = writeln!(out, "critical path ({} steps):", r.critical_path.len());
    let _ = writeln!(
        out,
        "  {:>6} {:<5} {:>10} {:>10} {:>7}  {:<5} {:<10} node",
        "instr", "unit", "start", "end", "share", "waits", "op"
    );
    for s in &r.critical_path {
        let _ = writeln!(
            out,
            "  {:>6} {:<5} {:>10} {:>10} {:>6.2}%  {:<5} {:<10} {}",
            format!("#{}", s.instruction),
            s.unit.to_string(),
            s.start,
            s.end,
            100.0 * s.share,
            s.waits_on,
            s.op,
            s.node
        );
    }
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
    out
}
