//! `trace.json`: the schedule as a timeline in the Chrome trace event format, which Perfetto
//! (ui.perfetto.dev) and chrome://tracing open.
//!
//! One process per chip, one thread per unit and one per outgoing link (`link -> N`); every
//! instruction is a complete event (`ph: "X"`) over the cycles it holds its unit, every hop one
//! over the cycles it holds its link. Times are microseconds at the target's clock, with the exact
//! cycles in `args`. Steps of the critical path carry the category `critical` and
//! `args.critical = true`. Derived from the schedule and report, so it is as reproducible as they
//! are.

use crate::report::StepKind;
use crate::{Report, Schedule};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Thread ids of links start here, above any unit's.
const LINK_TID: u32 = 1 << 20;

#[derive(Serialize)]
struct Event {
    name: String,
    cat: &'static str,
    ph: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tid: Option<u32>,
    args: Args,
}

#[derive(Serialize, Default)]
struct Args {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_cycle: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_cycle: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    critical: bool,
}

fn metadata(what: &str, pid: u32, tid: Option<u32>, name: String) -> Event {
    Event {
        name: what.into(),
        cat: "__metadata",
        ph: "M",
        ts: None,
        dur: None,
        pid,
        tid,
        args: Args {
            name: Some(name),
            ..Args::default()
        },
    }
}

/// The Chrome trace of `s`, with `r`'s critical path flagged.
pub fn chrome_trace(s: &Schedule, r: &Report) -> String {
    let mut out = Vec::new();
    write_chrome_trace(&mut out, s, r).expect("writing to memory does not fail");
    String::from_utf8(out).expect("the trace is UTF-8")
}

/// [`chrome_trace`] written to `out` an event at a time (the same bytes), so a schedule of
/// millions of instructions is never held as one string.
pub fn write_chrome_trace(out: &mut impl std::io::Write, s: &Schedule, r: &Report) -> std::io::Result<()> {
    let us = |cycles: u64| cycles as f64 * 1e6 / r.clock_hz.max(1) as f64;
    let critical: BTreeSet<(bool, u32)> = r
        .critical_path
        .iter()
        .map(|p| (p.kind == StepKind::Transfer, p.id))
        .collect();
    // Threads per chip: units in name order, then links by destination.
    let mut units: BTreeMap<u32, BTreeSet<lpuc_target::UnitId>> = BTreeMap::new();
    let mut links: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for i in &s.instructions {
        units.entry(i.chip).or_default().insert(i.unit);
    }
    for h in s.transfers.iter().flat_map(|t| &t.hops) {
        links.entry(h.from_chip).or_default().insert(h.to_chip);
    }
    let unit_tid: BTreeMap<(u32, lpuc_target::UnitId), u32> = units
        .iter()
        .flat_map(|(&chip, set)| set.iter().enumerate().map(move |(k, &u)| ((chip, u), k as u32)))
        .collect();
    out.write_all(b"{\"traceEvents\":[")?;
    let mut first = true;
    let mut emit = |out: &mut dyn std::io::Write, e: Event| -> std::io::Result<()> {
        if !std::mem::take(&mut first) {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &e).map_err(std::io::Error::other)
    };
    let chips: BTreeSet<u32> = units.keys().chain(links.keys()).copied().collect();
    for &chip in &chips {
        emit(out, metadata("process_name", chip, None, format!("chip {chip}")))?;
    }
    for (&(chip, unit), &tid) in &unit_tid {
        emit(out, metadata("thread_name", chip, Some(tid), unit.to_string()))?;
    }
    for (&chip, tos) in &links {
        for &to in tos {
            emit(
                out,
                metadata("thread_name", chip, Some(LINK_TID + to), format!("link -> {to}")),
            )?;
        }
    }
    for i in &s.instructions {
        let on_path = critical.contains(&(false, i.id.0));
        emit(
            out,
            Event {
                name: i.op.clone(),
                cat: if on_path { "critical" } else { "compute" },
                ph: "X",
                ts: Some(us(i.start)),
                dur: Some(us(i.occupancy)),
                pid: i.chip,
                tid: unit_tid.get(&(i.chip, i.unit)).copied(),
                args: Args {
                    id: Some(format!("#{}", i.id.0)),
                    node: Some(i.node.clone()),
                    start_cycle: Some(i.start),
                    end_cycle: Some(i.start + i.occupancy),
                    critical: on_path,
                    ..Args::default()
                },
            },
        )?;
    }
    for t in &s.transfers {
        let on_path = critical.contains(&(true, t.id.0));
        for h in &t.hops {
            emit(
                out,
                Event {
                    name: format!("t{} {}", t.id.0, t.purpose),
                    cat: if on_path { "critical" } else { "transfer" },
                    ph: "X",
                    ts: Some(us(h.start)),
                    dur: Some(us(h.end - h.start)),
                    pid: h.from_chip,
                    tid: Some(LINK_TID + h.to_chip),
                    args: Args {
                        id: Some(format!("t{}", t.id.0)),
                        start_cycle: Some(h.start),
                        end_cycle: Some(h.end),
                        bytes: Some(t.bytes),
                        critical: on_path,
                        ..Args::default()
                    },
                },
            )?;
        }
    }
    out.write_all(b"],\"displayTimeUnit\":\"ns\"}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hop, InstrId, Instruction, Transfer, TransferId};
    use lpuc_target::{UnitId, UnitKind, Work};

    #[test]
    fn every_instruction_and_hop_is_a_complete_event_on_its_chip() {
        let unit = UnitId {
            kind: UnitKind::Vxm,
            index: 0,
        };
        let instr = |id: u32, chip: u32, start: u64| Instruction {
            id: InstrId(id),
            chip,
            unit,
            start,
            occupancy: 900,
            latency: 950,
            op: "Relu".into(),
            node: format!("n{id}"),
            onnx_op: "Relu".into(),
            reads: vec![],
            writes: vec![],
            work: Work::Stream { bytes: 1 },
        };
        let s = Schedule {
            format: crate::SCHEDULE_FORMAT,
            target: "t".into(),
            sram_capacity_bytes: 1,
            makespan_cycles: 3000,
            chips: 2,
            buffers: vec![],
            instructions: vec![instr(0, 0, 0), instr(1, 1, 2000)],
            transfers: vec![Transfer {
                id: TransferId(0),
                from: crate::BufferId(0),
                to: crate::BufferId(1),
                bytes: 64,
                purpose: "activation".into(),
                hops: vec![Hop {
                    from_chip: 0,
                    to_chip: 1,
                    start: 950,
                    end: 1900,
                }],
            }],
        };
        let r = Report {
            clock_hz: 900_000_000,
            ..Report::default()
        };
        let v: serde_json::Value = serde_json::from_str(&chrome_trace(&s, &r)).unwrap();
        let events = v["traceEvents"].as_array().unwrap();
        let complete: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(complete.len(), 3);
        // 900 cycles at 900 MHz is one microsecond.
        assert_eq!(complete[0]["dur"], 1.0);
        assert_eq!(complete[1]["pid"], 1);
        let hop = complete[2];
        assert_eq!(
            (hop["pid"].as_u64(), hop["tid"].as_u64()),
            (Some(0), Some(u64::from(LINK_TID) + 1))
        );
        assert_eq!(hop["args"]["bytes"], 64);
        // Both chips are named processes; each thread is named.
        let names = events.iter().filter(|e| e["name"] == "process_name").count();
        assert_eq!(names, 2);
        let threads = events.iter().filter(|e| e["name"] == "thread_name").count();
        assert_eq!(threads, 3);
    }
}
