//! Stable text renderings of a schedule and a report: what people review and tests snapshot.
//!
//! Fixed column widths and no floating point beyond fixed decimals, so the text changes only when
//! the schedule does.

use crate::{Report, Schedule};
use std::fmt::Write;

/// `schedule.txt`: a header, one line per instruction in issue order, the transfers, then the SRAM
/// map. A multi-chip schedule adds a chip column to instructions and buffers; a single-chip one
/// reads as it always has.
pub fn schedule_text(s: &Schedule) -> String {
    let multi = s.chips > 1 || !s.transfers.is_empty();
    let chip = |c: u32| {
        if multi {
            format!("{c:>4} ")
        } else {
            String::new()
        }
    };
    let chip_head = if multi { "chip " } else { "" };
    let mut out = String::new();
    let _ = write!(
        out,
        "# lpuc schedule v{}  target={}  makespan={} cycles  instructions={}  buffers={}",
        s.format,
        s.target,
        s.makespan_cycles,
        s.instructions.len(),
        s.buffers.len()
    );
    if multi {
        let _ = write!(out, "  chips={}  transfers={}", s.chips, s.transfers.len());
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "# {:>9} {chip_head}{:<5} {:>9} {:>9}  {:<10} {:<24} node",
        "cycle", "unit", "busy", "latency", "op", "reads -> writes"
    );
    for i in &s.instructions {
        let reads: Vec<String> = i.reads.iter().map(|b| b.to_string()).collect();
        let writes: Vec<String> = i.writes.iter().map(|b| b.to_string()).collect();
        let io = format!("{} -> {}", reads.join(","), writes.join(","));
        let _ = writeln!(
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
        );
    }
    if !s.transfers.is_empty() {
        let _ = writeln!(out, "# transfers: hop from->to chip [start, end)");
        let _ = writeln!(
            out,
            "# {:<6} {:>12} {:<16} {:<14} hops",
            "id", "bytes", "from -> to", "purpose"
        );
        for t in &s.transfers {
            let hops: Vec<String> = t
                .hops
                .iter()
                .map(|h| format!("{}->{} [{}, {})", h.from_chip, h.to_chip, h.start, h.end))
                .collect();
            let _ = writeln!(
                out,
                "  {:<6} {:>12} {:<16} {:<14} {}",
                t.id.to_string(),
                t.bytes,
                format!("{} -> {}", t.from, t.to),
                t.purpose,
                hops.join("  ")
            );
        }
    }
    let per_chip = if multi { " per chip" } else { "" };
    let _ = writeln!(out, "# sram: capacity={} bytes{per_chip}", s.sram_capacity_bytes);
    let _ = writeln!(
        out,
        "# {:<6} {chip_head}{:<10} {:>12} {:>12}  {:<20} name",
        "buffer", "kind", "offset", "bytes", "type"
    );
    for b in &s.buffers {
        let dims: Vec<String> = b.shape.iter().map(|d| d.to_string()).collect();
        let kind = format!("{:?}", b.kind).to_lowercase();
        let _ = writeln!(
            out,
            "  {:<6} {}{:<10} {:>12} {:>12}  {:<20} {}",
            b.id.to_string(),
            chip(b.chip),
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
        let unit = match s.chip {
            Some(c) => format!("{c}:{}", s.unit),
            None => s.unit.to_string(),
        };
        let _ = writeln!(
            out,
            "  {:>6} {:<5} {:>10} {:>10} {:>6.2}%  {:<5} {:<10} {}",
            format!("#{}", s.instruction),
            unit,
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
    if !r.chips.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "chips:");
        let _ = writeln!(
            out,
            "  {:>5} {:>5} {:>5} {:>7} {:>12} {:>12} {:>12} {:>8}",
            "chip", "node", "rack", "instrs", "weights MiB", "inputs MiB", "peak MiB", "sram"
        );
        for c in &r.chips {
            let _ = writeln!(
                out,
                "  {:>5} {:>5} {:>5} {:>7} {:>12.2} {:>12.2} {:>12.2} {:>7.1}%",
                c.chip,
                c.node,
                c.rack,
                c.instructions,
                mib(c.weight_bytes),
                mib(c.input_bytes),
                mib(c.peak_bytes),
                100.0 * c.sram_utilization
            );
        }
    }
    if let Some(p) = &r.placement {
        let _ = writeln!(out);
        out.push_str(&crate::placement::placement_text(p, r.clock_hz));
    }
    out
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
