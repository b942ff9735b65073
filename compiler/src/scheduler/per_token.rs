//! Per-token figures and link use, read off a finished schedule: one step's latency and tokens per
//! second, the steady-state throughput of a full pipeline, every transfer the step makes (and
//! which lie on the critical path), and how busy each directed link is.

use lpuc_artifact::{CriticalStep, LinkReport, PerToken, Schedule, StepKind, TransferReport};
use lpuc_target::{LinkKind, Target};
use std::collections::{BTreeMap, BTreeSet};

/// What one step of the program is, from the compile options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInfo {
    /// `prefill` or `decode`.
    pub phase: String,
    /// Tokens a step produces per stream, when known.
    pub tokens_per_step: Option<u64>,
    /// Streams a step serves (the batch).
    pub streams: u64,
}

/// The chips of each pipeline stage, `[first, first + count)`; one stage of every chip when the
/// schedule is not pipelined.
pub type StageChips = Vec<(u32, u32)>;

/// The per-token report of `s`, whose critical path is `path`.
pub fn per_token(
    s: &Schedule,
    target: &Target,
    path: &[CriticalStep],
    step: &StepInfo,
    stages: &StageChips,
) -> PerToken {
    let delay = target.hop_arrival_delay();
    let latency = s.makespan_cycles;
    let per_second = |cycles: u64, tokens: u64| {
        (cycles > 0).then(|| tokens as f64 * target.clock_hz as f64 / cycles as f64)
    };
    let critical: BTreeSet<u32> = path
        .iter()
        .filter(|p| p.kind == StepKind::Transfer)
        .map(|p| p.id)
        .collect();
    let mut out = PerToken {
        phase: step.phase.clone(),
        tokens_per_step: step.tokens_per_step,
        streams: step.streams,
        latency_cycles: latency,
        latency_us: target.cycles_to_us(latency),
        tokens_per_second: step.tokens_per_step.and_then(|t| per_second(latency, t)),
        stages: stages.len() as u32,
        ..PerToken::default()
    };
    for t in &s.transfers {
        let (Some(first), Some(last)) = (t.hops.first(), t.hops.last()) else {
            continue;
        };
        let link_cycles: u64 = t.hops.iter().map(|h| h.end - h.start).sum();
        let on_path = critical.contains(&t.id.0);
        out.total_bytes += t.bytes;
        out.total_link_cycles += link_cycles;
        if on_path {
            out.critical_transfers += 1;
            for h in &t.hops {
                let (a, b) = (target.locate(h.from_chip), target.locate(h.to_chip));
                out.critical_cross_node_hops += u64::from(a.node != b.node);
                out.critical_cross_rack_hops += u64::from(a.rack != b.rack);
            }
        }
        out.transfers.push(TransferReport {
            id: t.id.0,
            from_chip: first.from_chip,
            to_chip: last.to_chip,
            bytes: t.bytes,
            route: t.route(),
            link_cycles,
            start: first.start,
            arrival: t.arrival(delay).unwrap_or(last.end),
            critical: on_path,
        });
    }
    out.transfers.sort_by_key(|t| t.id);
    let interval = initiation_interval(s, stages).min(latency.max(1));
    out.initiation_interval_cycles = interval;
    out.steps_in_flight = latency.div_ceil(interval.max(1));
    out.steady_state_tokens_per_second = step
        .tokens_per_step
        .and_then(|t| per_second(interval, t.saturating_mul(step.streams)));
    out
}

/// The longest any stage is active for one step. A stage works on one step at a time, so a full
/// pipeline admits a step each time its slowest stage is done: the interval is the most cycles
/// any stage has some instruction (issue to result) or outgoing hop in progress (the union of
/// those intervals on its chips; work a stage does early, e.g. on the step's mask, counts but
/// the idle time between does not).
fn initiation_interval(s: &Schedule, stages: &StageChips) -> u64 {
    // Each chip's stage, looked up per instruction and hop rather than searched.
    let mut by_chip: Vec<Option<usize>> = Vec::new();
    for (k, &(first, count)) in stages.iter().enumerate() {
        let end = (first + count) as usize;
        if by_chip.len() < end {
            by_chip.resize(end, None);
        }
        by_chip[first as usize..end].fill(Some(k));
    }
    let stage_of = |chip: u32| by_chip.get(chip as usize).copied().flatten();
    let mut spans: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    for i in &s.instructions {
        if let Some(k) = stage_of(i.chip) {
            spans.entry(k).or_default().push((i.start, i.done_cycle()));
        }
    }
    for h in s.transfers.iter().flat_map(|t| &t.hops) {
        if let Some(k) = stage_of(h.from_chip) {
            spans.entry(k).or_default().push((h.start, h.end));
        }
    }
    spans
        .into_values()
        .map(|mut v| {
            v.sort_unstable();
            let (mut total, mut reach) = (0u64, 0u64);
            for (a, b) in v {
                let from = a.max(reach);
                if b > from {
                    total += b - from;
                    reach = b;
                }
            }
            total
        })
        .max()
        .unwrap_or(0)
}

/// Every directed link carrying a hop of `s`, by (from chip, to chip).
pub fn link_reports(s: &Schedule, target: &Target) -> Vec<LinkReport> {
    let mut busy: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for h in s.transfers.iter().flat_map(|t| &t.hops) {
        let e = busy.entry((h.from_chip, h.to_chip)).or_default();
        e.0 += 1;
        e.1 += h.end - h.start;
    }
    let span = s.makespan_cycles.max(1) as f64;
    busy.into_iter()
        .map(|((from_chip, to_chip), (hops, busy_cycles))| LinkReport {
            from_chip,
            to_chip,
            kind: match target.link(from_chip, to_chip) {
                Some(LinkKind::Local) => "local",
                Some(LinkKind::Global) => "global",
                None => "none",
            }
            .into(),
            hops,
            busy_cycles,
            utilization: busy_cycles as f64 / span,
        })
        .collect()
}
