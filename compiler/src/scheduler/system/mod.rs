//! The system scheduler: a placed model as one cycle-exact program for many chips.
//!
//! [`lower`] turns the placement's stages and each op's sharding strategy into per-chip
//! instructions and chip-to-chip sends (collectives and stage hand-offs spelled out as cuts,
//! sends, sums and assemblies: `exchange`, `reduce`), with the regions [`tiles`] finds run tile
//! by tile (`tiled`); [`timing`] gives each an exact cycle on an exact unit or link;
//! this module then places every buffer in its chip's SRAM for exactly its lifetime and writes the
//! artifact's schedule. One clock for the whole system: the target's per-hop synchronisation
//! margin is part of every hop's arrival.

mod exchange;
pub mod lower;
mod reduce;
mod tiled;
pub mod tiles;
pub mod timing;

use super::sram_alloc::{allocate, peak_live, Lifetime};
use super::ScheduleError;
use crate::placer::StagePlan;
use lower::Task;
use lpuc_artifact::{
    Buffer, BufferId, BufferKind, InstrId, Instruction, Schedule, Transfer, TransferId, SCHEDULE_FORMAT,
};
use lpuc_ir::{DType, Graph};
use lpuc_target::Target;
use rayon::prelude::*;

/// SRAM figures of one chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChipSram {
    pub peak_bytes: u64,
    pub peak_cycle: u64,
    pub high_water_bytes: u64,
    pub weight_bytes: u64,
    pub input_bytes: u64,
    pub instructions: u64,
}

/// Schedule `g` as `plan` places it on `target`'s chips.
pub fn schedule_system(
    g: &Graph,
    plan: &[StagePlan],
    weight_dtype: Option<DType>,
    target: &Target,
) -> Result<(Schedule, lpuc_artifact::Dataflow, Vec<ChipSram>), ScheduleError> {
    let (tile_above, tile_bytes) = tiles::thresholds(target);
    let prog = lower::lower_placed(g, plan, weight_dtype, target, tile_above, tile_bytes)?;
    let timing = timing::time_program(&prog, target)?;
    let chips = plan
        .iter()
        .map(|s| s.first_chip + s.chips)
        .max()
        .unwrap_or(1)
        .max(1);

    // Lifetimes, then addresses, chip by chip.
    let n = prog.buffers.len();
    let mut lifetimes = Vec::with_capacity(n);
    for (b, spec) in prog.buffers.iter().enumerate() {
        lifetimes.push(match spec.kind {
            BufferKind::Input | BufferKind::Weight => Lifetime::WHOLE_PROGRAM,
            BufferKind::Output => Lifetime {
                alloc: timing.alloc[b],
                free: u64::MAX,
            },
            BufferKind::Activation => Lifetime {
                alloc: timing.alloc[b],
                free: timing.last_use[b].unwrap_or(timing.ready[b]).max(timing.alloc[b]),
            },
        });
    }
    let mut by_chip: Vec<Vec<usize>> = vec![Vec::new(); chips as usize];
    for (b, spec) in prog.buffers.iter().enumerate() {
        by_chip[spec.chip as usize].push(b);
    }
    // Chips are allocated independently, in parallel; the results are used in chip order, so
    // the first chip that does not fit is the one reported, however the threads ran.
    let allocated: Vec<Result<(ChipSram, Vec<u64>), ScheduleError>> = by_chip
        .par_iter()
        .enumerate()
        .map(|(chip, members)| allocate_chip(chip as u32, members, &prog.buffers, &lifetimes, target))
        .collect();
    let mut offsets = vec![0u64; n];
    let mut sram = Vec::with_capacity(chips as usize);
    for (members, result) in by_chip.iter().zip(allocated) {
        let (chip_sram, placed) = result?;
        for (k, &b) in members.iter().enumerate() {
            offsets[b] = placed[k];
        }
        sram.push(chip_sram);
    }

    // The program is taken apart as the schedule is built (names, shapes and regions move, not
    // copy): on a 70B prefill it holds millions of tasks, and two copies of their text would
    // double the compile's peak memory.
    let lower::Program {
        buffers: specs,
        mut tasks,
        regions,
    } = prog;
    let mut dataflow = super::dataflow::graph_tables(g);
    dataflow.buffers = specs
        .iter()
        .zip(regions)
        .map(|(spec, r)| lpuc_artifact::dataflow::Holding {
            value: spec.value.index() as u32,
            region: r.into_iter().map(|(lo, hi)| [lo, hi]).collect(),
        })
        .collect();
    let buffer_bytes: Vec<u64> = specs.iter().map(|spec| spec.bytes()).collect();
    let buffers: Vec<Buffer> = specs
        .into_iter()
        .enumerate()
        .map(|(b, spec)| Buffer {
            id: BufferId(b as u32),
            bytes: buffer_bytes[b],
            name: spec.name,
            kind: spec.kind,
            dtype: spec.dtype,
            shape: spec.shape,
            chip: spec.chip,
            offset: offsets[b],
        })
        .collect();
    let mut instrs = timing.instrs;
    instrs.sort_by_key(|i| (i.start, i.chip, i.unit, i.task));
    let mut steps = Vec::with_capacity(instrs.len());
    let instructions: Vec<Instruction> = instrs
        .iter()
        .enumerate()
        .map(|(id, t)| {
            let Task::Compute {
                chip,
                work,
                step,
                op,
                node,
                onnx_op,
                reads,
                writes,
                ..
            } = &mut tasks[t.task]
            else {
                unreachable!("timed instructions come from compute tasks")
            };
            sram[*chip as usize].instructions += 1;
            steps.push(*step);
            Instruction {
                id: InstrId(id as u32),
                chip: *chip,
                unit: t.unit,
                start: t.start,
                occupancy: t.cost.occupancy,
                latency: t.cost.latency,
                op: std::mem::take(op),
                node: std::mem::take(node),
                onnx_op: std::mem::take(onnx_op),
                reads: reads.iter().map(|&b| BufferId(b as u32)).collect(),
                writes: writes.iter().map(|&b| BufferId(b as u32)).collect(),
                work: work.clone(),
            }
        })
        .collect();
    drop(instrs);
    let mut sends = timing.sends;
    sends.sort_by_key(|s| (s.hops.first().map_or(s.arrival, |h| h.start), s.task));
    let transfers: Vec<Transfer> = sends
        .into_iter()
        .enumerate()
        .map(|(id, s)| {
            let Task::Send {
                from, to, purpose, ..
            } = &tasks[s.task]
            else {
                unreachable!("timed sends come from send tasks")
            };
            Transfer {
                id: TransferId(id as u32),
                from: BufferId(*from as u32),
                to: BufferId(*to as u32),
                bytes: buffer_bytes[*from],
                purpose: (*purpose).to_string(),
                hops: s.hops,
            }
        })
        .collect();
    drop(tasks);
    let schedule = Schedule {
        format: SCHEDULE_FORMAT,
        target: target.name.clone(),
        sram_capacity_bytes: target.sram.bytes,
        makespan_cycles: timing.makespan,
        chips,
        buffers,
        instructions,
        transfers,
    };
    dataflow.steps = steps;
    Ok((schedule, dataflow, sram))
}

/// One chip's buffers (`members`) placed in its SRAM: its figures and each member's offset, or
/// the chip that does not fit, with what fills it at its peak.
fn allocate_chip(
    chip: u32,
    members: &[usize],
    buffers: &[lower::BufSpec],
    lifetimes: &[Lifetime],
    target: &Target,
) -> Result<(ChipSram, Vec<u64>), ScheduleError> {
    let sizes: Vec<u64> = members.iter().map(|&b| buffers[b].bytes()).collect();
    let lives: Vec<Lifetime> = members.iter().map(|&b| lifetimes[b]).collect();
    let (peak, peak_cycle) = peak_live(&sizes, &lives);
    let resident = |kind| {
        members
            .iter()
            .filter(|&&b| buffers[b].kind == kind)
            .map(|&b| buffers[b].bytes())
            .sum::<u64>()
    };
    // The largest buffers live at the peak, to say what does not fit (only then).
    let largest = || {
        let mut live: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&b| lifetimes[b].alloc <= peak_cycle && peak_cycle < lifetimes[b].free)
            .filter(|&b| buffers[b].kind != BufferKind::Weight)
            .collect();
        live.sort_by_key(|&b| (std::cmp::Reverse(buffers[b].bytes()), b));
        live.iter()
            .take(5)
            .map(|&b| {
                format!(
                    "{} ({:.1} MiB)",
                    buffers[b].name,
                    buffers[b].bytes() as f64 / 1048576.0
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let does_not_fit = |needed, measure| ScheduleError::ChipDoesNotFit {
        chip,
        measure,
        needed,
        available: target.sram.bytes,
        weights: resident(BufferKind::Weight),
        largest: largest(),
    };
    if peak > target.sram.bytes {
        return Err(does_not_fit(peak, "at its peak of live tensors"));
    }
    let (placed, high_water) = allocate(&sizes, &lives, target.vector.bytes, target.sram.bytes);
    if high_water > target.sram.bytes {
        return Err(does_not_fit(high_water, "after allocation"));
    }
    let chip_sram = ChipSram {
        peak_bytes: peak,
        peak_cycle,
        high_water_bytes: high_water,
        weight_bytes: resident(BufferKind::Weight),
        input_bytes: resident(BufferKind::Input),
        instructions: 0,
    };
    Ok((chip_sram, placed))
}
