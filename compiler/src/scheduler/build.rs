//! Assemble the artifact's schedule: instructions from the list schedule, buffers from the values
//! with their lifetimes and SRAM offsets.

use super::list_schedule::{list_schedule, Placed};
use super::sram_alloc::{allocate, peak_live, Lifetime};
use super::ScheduleError;
use lpuc_artifact::{Buffer, BufferId, BufferKind, InstrId, Instruction, Schedule, SCHEDULE_FORMAT};
use lpuc_ir::{Graph, ValueKind};
use lpuc_target::Target;

/// SRAM figures the allocator measured, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SramUse {
    pub peak_bytes: u64,
    pub peak_cycle: u64,
    pub high_water_bytes: u64,
    pub weight_bytes: u64,
}

/// Schedule `g` on one chip of `target` (chip 0, no transfers).
pub fn schedule_graph(g: &Graph, target: &Target) -> Result<(Schedule, SramUse), ScheduleError> {
    let placed = list_schedule(g, target)?;
    let makespan = placed.iter().map(Placed::done).max().unwrap_or(0);
    // When each value's last reader is done (one pass over the ops).
    let mut last_read: Vec<Option<u64>> = vec![None; g.num_values()];
    for p in &placed {
        for v in &g.op(p.op).inputs {
            let slot = &mut last_read[v.index()];
            *slot = Some(slot.map_or(p.done(), |t| t.max(p.done())));
        }
    }

    // One buffer per value; buffer id == value index.
    let mut sizes = Vec::with_capacity(g.num_values());
    let mut lifetimes = Vec::with_capacity(g.num_values());
    let mut kinds = Vec::with_capacity(g.num_values());
    for v in g.value_ids() {
        let value = g.value(v);
        sizes.push(
            value
                .ty
                .size_bytes()
                .expect("the verifier bounds every value's size"),
        );
        let (kind, lifetime) = match value.kind {
            ValueKind::Input => (BufferKind::Input, Lifetime::WHOLE_PROGRAM),
            ValueKind::Weight { .. } => (BufferKind::Weight, Lifetime::WHOLE_PROGRAM),
            ValueKind::Computed { producer } => {
                let w = &placed[producer.index()];
                if g.outputs().contains(&v) {
                    (
                        BufferKind::Output,
                        Lifetime {
                            alloc: w.start,
                            free: u64::MAX,
                        },
                    )
                } else {
                    let last_read = last_read[v.index()];
                    (
                        BufferKind::Activation,
                        Lifetime {
                            alloc: w.start,
                            free: last_read.unwrap_or(w.done()).max(w.start),
                        },
                    )
                }
            }
        };
        kinds.push(kind);
        lifetimes.push(lifetime);
    }

    let capacity = target.sram.bytes;
    let does_not_fit = |needed: u64, measure: &'static str| ScheduleError::DoesNotFit {
        measure,
        needed,
        available: capacity,
        weights: g.weight_bytes(),
    };
    let (peak, peak_cycle) = peak_live(&sizes, &lifetimes);
    if peak > capacity {
        return Err(does_not_fit(peak, "at its peak of live tensors"));
    }
    let (offsets, high_water) = allocate(&sizes, &lifetimes, target.vector.bytes, target.sram.bytes);
    if high_water > capacity {
        return Err(does_not_fit(
            high_water,
            "after allocation (fragmentation above the live peak)",
        ));
    }

    let buffers = g
        .value_ids()
        .map(|v| {
            let value = g.value(v);
            Buffer {
                id: BufferId(v.0),
                name: value.name.clone(),
                kind: kinds[v.index()],
                dtype: value.ty.dtype,
                shape: value.ty.shape.dims().to_vec(),
                bytes: sizes[v.index()],
                chip: 0,
                offset: offsets[v.index()],
            }
        })
        .collect();

    let mut order: Vec<&Placed> = placed.iter().collect();
    order.sort_by_key(|p| (p.start, p.unit, p.op));
    let instructions = order
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let op = g.op(p.op);
            let prov = g.provenance(p.op);
            Instruction {
                id: InstrId(i as u32),
                chip: 0,
                unit: p.unit,
                start: p.start,
                occupancy: p.cost.occupancy,
                latency: p.cost.latency,
                op: op.kind.name().to_string(),
                node: prov.node.clone(),
                onnx_op: prov.op_type.clone(),
                reads: op.inputs.iter().map(|v| BufferId(v.0)).collect(),
                writes: op.outputs.iter().map(|v| BufferId(v.0)).collect(),
                work: p.work.clone(),
            }
        })
        .collect();

    let schedule = Schedule {
        format: SCHEDULE_FORMAT,
        target: target.name.clone(),
        sram_capacity_bytes: capacity,
        makespan_cycles: makespan,
        chips: 1,
        buffers,
        instructions,
        transfers: Vec::new(),
    };
    let sram = SramUse {
        peak_bytes: peak,
        peak_cycle,
        high_water_bytes: high_water,
        weight_bytes: g.weight_bytes(),
    };
    Ok((schedule, sram))
}
