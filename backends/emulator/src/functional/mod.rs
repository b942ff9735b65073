//! Functional emulation: the artifact executed on real tensors, instruction by instruction, on
//! each chip's own buffers.
//!
//! A schedule can be perfectly timed and still wrong (a missing all-reduce after a row split, a
//! shard read from the wrong chip); executing it finds that. Every buffer holds a box of one value
//! (the artifact's `dataflow.json`); instructions run in cycle order:
//! - an op computes its result's box from the boxes its reads hold, everything they do not hold
//!   counting as zero, so a shard computes exactly what its data allows (a product over a slice of
//!   the contraction is that slice's partial sum, and a missing reduction shows in the numbers);
//! - a copy fills each written box from the reads holding it, and must cover it;
//! - a sum adds every read over the written box;
//! - a transfer copies its buffer to the other chip as it is.
//!
//! The outputs are assembled from the buffers the schedule leaves marked as outputs. The op math
//! is the IR's reference kernels (`lpuc_ir::interp`); results are rounded to each buffer's dtype,
//! and weights stored narrower than their value (`--weight-dtype`) are rounded (f16, bf16) or
//! quantized (int8: symmetric, one scale per index of the last axis, the output channel of a
//! matrix product's weight) when loaded, as the hardware would hold them.
//!
//! Nothing here is shared with the scheduler: the dataflow says what each buffer claims to hold,
//! and the numbers show whether it does.

mod boxes;
mod crop;
mod weights;

use boxes::{contains, copy_box, intersect, volume, Region};
use lpuc_artifact::dataflow::Role;
use lpuc_artifact::{Artifact, Dataflow, Schedule, Step, WeightSource};
use lpuc_ir::interp::Tensor;
use lpuc_ir::DType;
use thiserror::Error;

/// Why an artifact could not be executed.
#[derive(Debug, Error, PartialEq)]
pub enum FunctionalError {
    #[error("the artifact has no weights: compile it with --embed-weights, or give lpuc emulate --model the model it was compiled from")]
    NoWeights,
    #[error("dataflow.json does not describe this schedule: {0}")]
    Malformed(String),
    #[error("{given} input(s) given, the graph takes {expected}: {names}")]
    InputCount {
        given: usize,
        expected: usize,
        names: String,
    },
    #[error("input {index} ('{name}'): {reason}")]
    Input {
        index: usize,
        name: String,
        reason: String,
    },
    #[error("instruction #{instr} ({op} on chip {chip}, node '{node}'): {reason}")]
    Instruction {
        instr: usize,
        op: String,
        chip: u32,
        node: String,
        reason: String,
    },
    #[error("transfer t{transfer}: {reason}")]
    Transfer { transfer: usize, reason: String },
    #[error("output {index} ('{name}'): {reason}")]
    Output {
        index: usize,
        name: String,
        reason: String,
    },
}

/// What one execution computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    /// The graph outputs, in order, with their names.
    pub outputs: Vec<(String, Tensor)>,
    pub instructions: usize,
    pub transfers: usize,
}

/// The most elements one value may have here (held as f64: 2 GiB).
const MAX_ELEMENTS: u64 = 1 << 28;

/// Round `xs` to what `dtype` holds.
fn round_to(dtype: DType, xs: &mut [f64]) {
    xs.iter_mut().for_each(|x| *x = dtype.round(*x));
}

fn region_of(h: &lpuc_artifact::dataflow::Holding) -> Region {
    h.region.iter().map(|r| (r[0], r[1])).collect()
}

/// Execute artifact `a` on `inputs` (one tensor per graph input, in order).
pub fn execute(a: &Artifact, inputs: &[Tensor]) -> Result<Execution, FunctionalError> {
    execute_parts(&a.schedule, &a.dataflow, a.weights.as_deref(), inputs)
}

/// [`execute`] on a schedule, its dataflow and `weights.bin`, without the rest of an artifact.
pub fn execute_parts(
    s: &Schedule,
    d: &Dataflow,
    weights: Option<&[u8]>,
    inputs: &[Tensor],
) -> Result<Execution, FunctionalError> {
    let malformed = |m: String| FunctionalError::Malformed(m);
    if d.buffers.len() != s.buffers.len() || d.steps.len() != s.instructions.len() {
        return Err(malformed(format!(
            "{} holdings and {} steps for {} buffers and {} instructions",
            d.buffers.len(),
            d.steps.len(),
            s.buffers.len(),
            s.instructions.len()
        )));
    }
    // Every index the dataflow and the schedule give is in range, so nothing below can panic on
    // a malformed artifact.
    let values = d.values.len();
    let value_ok = |v: &u32| (*v as usize) < values;
    if !d.inputs.iter().chain(&d.outputs).all(value_ok)
        || !d
            .ops
            .iter()
            .all(|o| o.inputs.iter().chain(&o.outputs).all(value_ok))
    {
        return Err(malformed(
            "an input, output or op names a value that is not there".into(),
        ));
    }
    for (k, i) in s.instructions.iter().enumerate() {
        if i.reads
            .iter()
            .chain(&i.writes)
            .any(|b| b.0 as usize >= s.buffers.len())
        {
            return Err(malformed(format!(
                "instruction #{k} names a buffer that is not there"
            )));
        }
        if i.writes.is_empty() {
            return Err(malformed(format!("instruction #{k} writes nothing")));
        }
    }
    // Every value is small enough to hold as f64 (functional emulation is for checking numbers,
    // not for 70B-sized artifacts), and every op's declared result is what its kind gives its
    // operands, so the kernels never see shapes they do not expect.
    for v in &d.values {
        let elements = v.shape.iter().try_fold(1u64, |a, &x| a.checked_mul(x));
        if elements.is_none_or(|n| n > MAX_ELEMENTS) {
            return Err(malformed(format!(
                "value '{}' of shape {:?} is larger than functional emulation holds ({MAX_ELEMENTS} elements)",
                v.name, v.shape
            )));
        }
    }
    for (k, op) in d.ops.iter().enumerate() {
        let ty = |v: &u32| {
            let value = &d.values[*v as usize];
            lpuc_ir::TensorType::new(value.dtype, value.shape.clone())
        };
        let inputs: Vec<lpuc_ir::TensorType> = op.inputs.iter().map(ty).collect();
        let refs: Vec<&lpuc_ir::TensorType> = inputs.iter().collect();
        let declared: Vec<lpuc_ir::TensorType> = op.outputs.iter().map(ty).collect();
        match lpuc_ir::infer::infer(&op.kind, &refs) {
            Ok(inferred) if inferred == declared => {}
            Ok(inferred) => {
                return Err(malformed(format!(
                    "op {k} ({}) makes {inferred:?}, the dataflow declares {declared:?}",
                    op.kind
                )))
            }
            Err(e) => return Err(malformed(format!("op {k} ({}): {e}", op.kind))),
        }
    }
    // Every holding names a value and a box inside it the size of its buffer.
    for (b, (h, buf)) in d.buffers.iter().zip(&s.buffers).enumerate() {
        let value = d.values.get(h.value as usize).ok_or_else(|| {
            malformed(format!(
                "buffer b{b} holds value {} of {}",
                h.value,
                d.values.len()
            ))
        })?;
        let fits = h.region.len() == value.shape.len()
            && h.region
                .iter()
                .zip(&value.shape)
                .all(|(r, &dim)| r[0] <= r[1] && r[1] <= dim)
            && h.region.iter().map(|r| r[1] - r[0]).collect::<Vec<_>>() == buf.shape;
        if !fits {
            return Err(malformed(format!(
                "buffer b{b} ({}, shape {:?}) claims box {:?} of '{}' {:?}",
                buf.name, buf.shape, h.region, value.name, value.shape
            )));
        }
    }
    if d.weights != WeightSource::Embedded {
        return Err(FunctionalError::NoWeights);
    }
    let blob = weights.ok_or(FunctionalError::NoWeights)?;
    if inputs.len() != d.inputs.len() {
        let names: Vec<String> = d
            .inputs
            .iter()
            .map(|&v| {
                let value = &d.values[v as usize];
                format!("'{}' {} {:?}", value.name, value.dtype, value.shape)
            })
            .collect();
        return Err(FunctionalError::InputCount {
            given: inputs.len(),
            expected: d.inputs.len(),
            names: names.join(", "),
        });
    }
    let dims = |v: u32| -> Vec<usize> { d.values[v as usize].shape.iter().map(|&x| x as usize).collect() };
    // Whole values of inputs and weights, from which their buffers are cut.
    let mut whole: Vec<Option<Tensor>> = vec![None; d.values.len()];
    for (k, (&v, t)) in d.inputs.iter().zip(inputs).enumerate() {
        let value = &d.values[v as usize];
        if t.dims != dims(v) {
            return Err(FunctionalError::Input {
                index: k,
                name: value.name.clone(),
                reason: format!(
                    "given dims {:?}, the artifact was compiled for {:?}",
                    t.dims, value.shape
                ),
            });
        }
        whole[v as usize] = Some(t.clone());
    }
    for (v, value) in d
        .values
        .iter()
        .enumerate()
        .filter(|(_, x)| x.role == Role::Weight)
    {
        let data = weights::load(value, blob).map_err(malformed)?;
        whole[v] = Some(Tensor {
            dims: dims(v as u32),
            data,
        });
    }
    // Weights stored narrower than their value, per value (every shard of it alike).
    let mut stored_as: Vec<Option<DType>> = vec![None; d.values.len()];
    for (h, buf) in d.buffers.iter().zip(&s.buffers) {
        if d.values[h.value as usize].role == Role::Weight && buf.dtype != d.values[h.value as usize].dtype {
            stored_as[h.value as usize] = Some(buf.dtype);
        }
    }
    for (v, narrow) in stored_as.iter().enumerate() {
        if let (Some(dtype), Some(t)) = (narrow, whole[v].as_mut()) {
            weights::store_as(*dtype, t);
        }
    }
    // Buffer contents, filled as they are written.
    let mut data: Vec<Option<Vec<f64>>> = vec![None; s.buffers.len()];
    for (b, (h, buf)) in d.buffers.iter().zip(&s.buffers).enumerate() {
        if matches!(
            buf.kind,
            lpuc_artifact::BufferKind::Input | lpuc_artifact::BufferKind::Weight
        ) {
            let t = whole[h.value as usize].as_ref().ok_or_else(|| {
                malformed(format!(
                    "buffer b{b} ({}) is an input or weight, but '{}' is computed",
                    buf.name, d.values[h.value as usize].name
                ))
            })?;
            let full: Region = t.dims.iter().map(|&x| (0, x as u64)).collect();
            let r = region_of(h);
            let mut out = vec![0.0; volume(&r) as usize];
            copy_box(&t.data, &full, &mut out, &r, &r);
            data[b] = Some(out);
        }
    }
    // Instructions at their start, transfers at their first hop's start; at one cycle,
    // instructions first (a transfer never leaves before its source is written).
    let mut events: Vec<(u64, u8, usize)> = s
        .instructions
        .iter()
        .enumerate()
        .map(|(k, i)| (i.start, 0, k))
        .chain(
            s.transfers
                .iter()
                .enumerate()
                .map(|(k, t)| (t.hops.first().map_or(0, |h| h.start), 1, k)),
        )
        .collect();
    events.sort_unstable();
    for (_, kind, k) in events {
        if kind == 1 {
            let t = &s.transfers[k];
            let fail = |reason: String| FunctionalError::Transfer { transfer: k, reason };
            let (from, to) = (t.from.0 as usize, t.to.0 as usize);
            if from >= data.len() || to >= data.len() {
                return Err(fail("names a buffer the schedule does not have".into()));
            }
            if d.buffers[from] != d.buffers[to] {
                return Err(fail(format!(
                    "copies b{from} ({:?} of value {}) into b{to} ({:?} of value {})",
                    d.buffers[from].region, d.buffers[from].value, d.buffers[to].region, d.buffers[to].value
                )));
            }
            let src = data[from].clone().ok_or_else(|| {
                fail(format!(
                    "b{from} ({}) is sent before it is written",
                    s.buffers[from].name
                ))
            })?;
            data[to] = Some(src);
            continue;
        }
        let i = &s.instructions[k];
        let fail = |reason: String| FunctionalError::Instruction {
            instr: k,
            op: i.op.clone(),
            chip: i.chip,
            node: i.node.clone(),
            reason,
        };
        let mut reads = Vec::with_capacity(i.reads.len());
        for b in &i.reads {
            let b = b.0 as usize;
            let held = data
                .get(b)
                .and_then(Option::as_ref)
                .ok_or_else(|| fail(format!("reads b{b} before it is written")))?;
            reads.push((b, held));
        }
        let results: Vec<Vec<f64>> = match d.steps[k] {
            Step::Op { op } => {
                let op = d
                    .ops
                    .get(op as usize)
                    .ok_or_else(|| fail(format!("computes op {op} of {}", d.ops.len())))?;
                if reads.len() != op.inputs.len() || i.writes.len() != op.outputs.len() {
                    return Err(fail(format!(
                        "reads {} and writes {} buffers for an op of {} operands and {} results",
                        reads.len(),
                        i.writes.len(),
                        op.inputs.len(),
                        op.outputs.len()
                    )));
                }
                for (&(b, _), &v) in reads.iter().zip(&op.inputs) {
                    if d.buffers[b].value != v {
                        return Err(fail(format!(
                            "reads b{b} ('{}') where the op's operand is '{}'",
                            d.values[d.buffers[b].value as usize].name, d.values[v as usize].name
                        )));
                    }
                }
                for (w, &v) in i.writes.iter().zip(&op.outputs) {
                    if d.buffers[w.0 as usize].value != v {
                        return Err(fail(format!(
                            "writes b{}, which holds another value than the op's result",
                            w.0
                        )));
                    }
                }
                let shape = |v: u32| d.values[v as usize].shape.clone();
                let whole_box = |v: u32| -> Region { shape(v).iter().map(|&x| (0, x)).collect() };
                // The box each result is computed over and the part of each operand read: only
                // what this instruction's results need where the op allows, else everything.
                let want = region_of(&d.buffers[i.writes[0].0 as usize]);
                let operand_dims: Vec<Vec<u64>> = op.inputs.iter().map(|&v| shape(v)).collect();
                let held: Vec<Region> = reads.iter().map(|&(b, _)| region_of(&d.buffers[b])).collect();
                let cropped = (op.outputs.len() == 1)
                    .then(|| crop::crop(&op.kind, &operand_dims, &held, &shape(op.outputs[0]), &want))
                    .flatten();
                let (out_boxes, in_boxes): (Vec<Region>, Vec<Region>) = match cropped {
                    Some(c) => (vec![c.out], c.operands),
                    None => (
                        op.outputs.iter().map(|&v| whole_box(v)).collect(),
                        op.inputs.iter().map(|&v| whole_box(v)).collect(),
                    ),
                };
                // Each operand's part, zero where this chip holds nothing of it.
                let mut operands = Vec::with_capacity(reads.len());
                for (&(b, held), part) in reads.iter().zip(&in_boxes) {
                    let r = region_of(&d.buffers[b]);
                    let mut t = vec![0.0; volume(part) as usize];
                    if let Some(common) = intersect(&r, part) {
                        copy_box(held, &r, &mut t, part, &common);
                    }
                    let dims = part.iter().map(|&(lo, hi)| (hi - lo) as usize).collect();
                    operands.push(Tensor { dims, data: t });
                }
                let outs: Vec<(Vec<usize>, DType)> = out_boxes
                    .iter()
                    .zip(&op.outputs)
                    .map(|(bx, &v)| {
                        (
                            bx.iter().map(|&(lo, hi)| (hi - lo) as usize).collect(),
                            d.values[v as usize].dtype,
                        )
                    })
                    .collect();
                let refs: Vec<&Tensor> = operands.iter().collect();
                let computed = lpuc_ir::interp::evaluate_op(&op.kind, &refs, &outs).map_err(fail)?;
                let mut results = Vec::with_capacity(i.writes.len());
                for ((w, t), bx) in i.writes.iter().zip(&computed).zip(&out_boxes) {
                    let r = region_of(&d.buffers[w.0 as usize]);
                    if !contains(bx, &r) {
                        return Err(fail(format!("b{} lies outside its op's result", w.0)));
                    }
                    if t.data.len() as u64 != volume(bx) {
                        return Err(fail(format!("the kernel made {:?} for a box of {bx:?}", t.dims)));
                    }
                    let mut out = vec![0.0; volume(&r) as usize];
                    copy_box(&t.data, bx, &mut out, &r, &r);
                    results.push(out);
                }
                results
            }
            Step::Copy => {
                let mut results = Vec::with_capacity(i.writes.len());
                for w in &i.writes {
                    let w = w.0 as usize;
                    let r = region_of(&d.buffers[w]);
                    let mut out = vec![0.0; volume(&r) as usize];
                    let mut covered = 0u64;
                    let mut taken: Vec<Region> = Vec::new();
                    for &(b, held) in &reads {
                        if d.buffers[b].value != d.buffers[w].value {
                            return Err(fail(format!(
                                "copies b{b} into b{w}, which hold different values"
                            )));
                        }
                        let from = region_of(&d.buffers[b]);
                        let Some(part) = intersect(&from, &r) else {
                            continue;
                        };
                        // Each element from the first read holding it.
                        if taken.iter().any(|t| intersect(t, &part).is_some()) {
                            if taken.iter().any(|t| contains(t, &part)) {
                                continue;
                            }
                            return Err(fail(format!(
                                "b{b} overlaps another read of the copy into b{w} in part"
                            )));
                        }
                        copy_box(held, &from, &mut out, &r, &part);
                        covered += volume(&part);
                        taken.push(part);
                    }
                    if covered != volume(&r) {
                        return Err(fail(format!(
                            "its reads hold {covered} of the {} elements of b{w} ({:?})",
                            volume(&r),
                            d.buffers[w].region
                        )));
                    }
                    results.push(out);
                }
                results
            }
            Step::Sum => {
                let [w] = i.writes.as_slice() else {
                    return Err(fail(format!("a sum writes {} buffers", i.writes.len())));
                };
                let w = w.0 as usize;
                let r = region_of(&d.buffers[w]);
                let mut out = vec![0.0; volume(&r) as usize];
                for &(b, held) in &reads {
                    let from = region_of(&d.buffers[b]);
                    if d.buffers[b].value != d.buffers[w].value || !contains(&from, &r) {
                        return Err(fail(format!(
                            "sums b{b}, which does not hold b{w}'s box of its value"
                        )));
                    }
                    let mut part = vec![0.0; out.len()];
                    copy_box(held, &from, &mut part, &r, &r);
                    out.iter_mut().zip(part).for_each(|(o, p)| *o += p);
                }
                vec![out]
            }
        };
        for (w, mut out) in i.writes.iter().zip(results) {
            let w = w.0 as usize;
            round_to(s.buffers[w].dtype, &mut out);
            data[w] = Some(out);
        }
    }
    // The outputs, from every buffer the schedule marks as one.
    let mut outputs = Vec::with_capacity(d.outputs.len());
    for (index, &v) in d.outputs.iter().enumerate() {
        let value = &d.values[v as usize];
        let full: Region = value.shape.iter().map(|&x| (0, x)).collect();
        let mut t = vec![0.0; volume(&full) as usize];
        let mut taken: Vec<Region> = Vec::new();
        for (b, buf) in s.buffers.iter().enumerate() {
            if buf.kind != lpuc_artifact::BufferKind::Output || d.buffers[b].value != v {
                continue;
            }
            let r = region_of(&d.buffers[b]);
            if taken.iter().any(|x| contains(x, &r)) {
                continue;
            }
            let held = data[b].as_ref().ok_or_else(|| FunctionalError::Output {
                index,
                name: value.name.clone(),
                reason: format!("b{b} ({}) is never written", buf.name),
            })?;
            copy_box(held, &r, &mut t, &full, &r);
            taken.push(r);
        }
        let covered = boxes::union_volume(&taken, &full);
        if covered != volume(&full) {
            return Err(FunctionalError::Output {
                index,
                name: value.name.clone(),
                reason: format!(
                    "the output buffers hold {covered} of its {} elements",
                    volume(&full)
                ),
            });
        }
        outputs.push((
            value.name.clone(),
            Tensor {
                dims: dims(v),
                data: t,
            },
        ));
    }
    Ok(Execution {
        outputs,
        instructions: s.instructions.len(),
        transfers: s.transfers.len(),
    })
}

#[cfg(test)]
mod tests;
