//! Data movement: reshapes, transposes, concat/split/slice, gathers and scatters, expand, tile, pad,
//! trilu and resize. Shape-deciding inputs must fold to constants.

use super::{
    attr_or_input, invalid, normalize_axes, normalize_axis, product, sizes, unsupported, Operand, Operands,
    Plan, Reject, Step,
};
use crate::frontend::model::Node;
use lpuc_ir::{OpKind, PadMode, ReduceOp, ResizeMode, ResizeSampling};

pub(super) fn translate(node: &Node, opset: i64, ops: &Operands) -> Result<Option<Plan>, Reject> {
    let plan = match node.op_type.as_str() {
        "Reshape" => {
            let spec = ops
                .ints(node, 1, "the target shape")?
                .ok_or_else(|| invalid("Reshape without a shape"))?;
            let allow_zero = node.attr_int("allowzero").unwrap_or(0) != 0;
            let shape = reshape_dims(ops.dims(0)?, &spec, allow_zero).map_err(invalid)?;
            Plan::op(OpKind::Reshape { shape }, vec![0])
        }
        "Flatten" => {
            let dims = ops.dims(0)?;
            let r = dims.len() as i64;
            let a = node.attr_int("axis").unwrap_or(1);
            let a = if a < 0 { a + r } else { a };
            if !(0..=r).contains(&a) {
                return Err(invalid(format!("axis {a} for rank {r}")));
            }
            let (outer, inner) = dims.split_at(a as usize);
            let shape = vec![product(outer)?, product(inner)?];
            Plan::op(OpKind::Reshape { shape }, vec![0])
        }
        "Squeeze" => {
            let dims = ops.dims(0)?;
            let axes = attr_or_input(node, ops, "axes", 1, "the axes")?;
            let axes = match axes {
                Some(a) => normalize_axes(&a, dims.len())?,
                None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
            };
            if let Some(&bad) = axes.iter().find(|&&a| dims[a] != 1) {
                return Err(invalid(format!("cannot squeeze dim {bad} of size {}", dims[bad])));
            }
            let shape = (0..dims.len())
                .filter(|i| !axes.contains(i))
                .map(|i| dims[i])
                .collect();
            Plan::op(OpKind::Reshape { shape }, vec![0])
        }
        "Unsqueeze" => {
            let dims = ops.dims(0)?;
            let axes = attr_or_input(node, ops, "axes", 1, "the axes")?
                .ok_or_else(|| invalid("Unsqueeze without axes"))?;
            let out_rank = dims.len() + axes.len();
            let axes = normalize_axes(&axes, out_rank)?;
            let mut rest = dims.iter();
            let shape = (0..out_rank)
                .map(|i| {
                    if axes.contains(&i) {
                        1
                    } else {
                        *rest.next().unwrap_or(&1)
                    }
                })
                .collect();
            Plan::op(OpKind::Reshape { shape }, vec![0])
        }
        "Transpose" => {
            let rank = ops.rank(0)?;
            let perm = match node.attr_ints("perm") {
                Some(p) => p
                    .iter()
                    .map(|&a| usize::try_from(a).map_err(|_| invalid(format!("negative perm entry {a}"))))
                    .collect::<Result<Vec<_>, _>>()?,
                None => (0..rank).rev().collect(),
            };
            Plan::op(OpKind::Transpose { perm }, vec![0])
        }
        "Concat" => {
            let axis = node
                .attr_int("axis")
                .ok_or_else(|| invalid("Concat without axis"))?;
            let axis = normalize_axis(axis, ops.rank(0)?)?;
            let inputs = (0..node.inputs.len()).filter(|&i| ops.present(i)).collect();
            Plan::op(OpKind::Concat { axis }, inputs)
        }
        "Split" => split(node, opset, ops)?,
        "Slice" => slice(node, ops)?,
        "Gather" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), ops.rank(0)?)?;
            check_indices(node, ops, ops.dims(0)?[axis])?;
            Plan::op(OpKind::Gather { axis }, vec![0, 1])
        }
        "GatherElements" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), ops.rank(0)?)?;
            Plan::op(OpKind::GatherElements { axis }, vec![0, 1])
        }
        "GatherND" => {
            let b = node.attr_int("batch_dims").unwrap_or(0);
            let batch_dims = usize::try_from(b).map_err(|_| invalid(format!("batch_dims {b}")))?;
            Plan::op(OpKind::GatherNd { batch_dims }, vec![0, 1])
        }
        "ScatterND" => {
            let reduction = scatter_reduction(node)?;
            Plan::op(OpKind::ScatterNd { reduction }, vec![0, 1, 2])
        }
        "Expand" => {
            let shape = sizes(ops.ints(node, 1, "the target shape")?, "the target shape")?;
            Plan::op(OpKind::Expand { shape }, vec![0])
        }
        "Tile" => {
            let repeats = sizes(ops.ints(node, 1, "the repeats")?, "the repeats")?;
            Plan::op(OpKind::Tile { repeats }, vec![0])
        }
        "Pad" => pad(node, opset, ops)?,
        "Trilu" => {
            let k = ops
                .ints(node, 1, "k")?
                .and_then(|v| v.first().copied())
                .unwrap_or(0);
            let upper = node.attr_int("upper").unwrap_or(1) != 0;
            Plan::op(OpKind::Trilu { upper, k }, vec![0])
        }
        "Resize" => resize(node, ops)?,
        "DepthToSpace" | "SpaceToDepth" => depth_space(node, ops)?,
        "ScatterElements" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), ops.rank(0)?)?;
            let reduction = scatter_reduction(node)?;
            Plan::op(OpKind::ScatterElements { axis, reduction }, vec![0, 1, 2])
        }
        "OneHot" => {
            let depth = ops
                .floats(node, 1, "the depth")?
                .and_then(|v| v.first().copied())
                .ok_or_else(|| invalid("OneHot without a depth"))?;
            if !(depth >= 1.0 && depth <= lpuc_ir::shape::MAX_ELEMENTS as f64) {
                return Err(invalid(format!("OneHot depth {depth}")));
            }
            let rank = ops.rank(0)? + 1;
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), rank)?;
            Plan::op(
                OpKind::OneHot {
                    axis,
                    depth: depth as u64,
                },
                vec![0, 2],
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// Indices known at compile time must lie in `[-n, n)`: an index past a position table is how a
/// bucket larger than the model's maximum positions shows up, and the chip would read garbage.
fn check_indices(node: &Node, ops: &Operands, n: u64) -> Result<(), Reject> {
    let Some(c) = ops.consts.get(1).and_then(Option::as_ref) else {
        return Ok(());
    };
    let Some(indices) = c.resolved().map_err(invalid)?.ints() else {
        return Ok(());
    };
    let n = n as i64;
    match indices.iter().find(|&&i| i >= n || i < -n) {
        None => Ok(()),
        Some(bad) => Err((
            crate::checker::Category::InvalidModel,
            format!("index {bad} of '{}' is outside a dim of {n}", node.inputs[1]),
            "if it indexes a position table, the bound sequence length exceeds the model's maximum positions: use a smaller --bucket",
        )),
    }
}

/// The `reduction` attribute of the scatter ops.
fn scatter_reduction(node: &Node) -> Result<Option<ReduceOp>, Reject> {
    Ok(match node.attr_str("reduction").unwrap_or("none") {
        "none" => None,
        "add" => Some(ReduceOp::Sum),
        "mul" => Some(ReduceOp::Prod),
        "max" => Some(ReduceOp::Max),
        "min" => Some(ReduceOp::Min),
        other => return Err(invalid(format!("unknown reduction '{other}'"))),
    })
}

/// DepthToSpace (DCR or CRD) and SpaceToDepth as the reshape, transpose, reshape the spec
/// defines them by.
fn depth_space(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let d = ops.dims(0)?;
    let b = node
        .attr_int("blocksize")
        .and_then(|b| u64::try_from(b).ok())
        .filter(|&b| b > 0)
        .ok_or_else(|| invalid("blocksize must be positive"))?;
    let [n, c, h, w] = <[u64; 4]>::try_from(d).map_err(|_| invalid(format!("{} of {d:?}", node.op_type)))?;
    let bb = b.checked_mul(b).ok_or_else(|| invalid("blocksize overflows"))?;
    let (first, perm, last) = if node.op_type == "DepthToSpace" {
        if !c.is_multiple_of(bb) {
            return Err(invalid(format!("{c} channels for blocksize {b}")));
        }
        let out = vec![n, c / bb, product(&[h, b])?, product(&[w, b])?];
        match node.attr_str("mode").unwrap_or("DCR") {
            "DCR" => (vec![n, b, b, c / bb, h, w], vec![0, 3, 4, 1, 5, 2], out),
            "CRD" => (vec![n, c / bb, b, b, h, w], vec![0, 1, 4, 2, 5, 3], out),
            m => return Err(invalid(format!("unknown mode '{m}'"))),
        }
    } else {
        if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
            return Err(invalid(format!("{h}x{w} for blocksize {b}")));
        }
        let out = vec![n, product(&[c, bb])?, h / b, w / b];
        (vec![n, c, h / b, b, w / b, b], vec![0, 3, 5, 1, 2, 4], out)
    };
    Ok(Plan::Steps(vec![
        Step {
            kind: OpKind::Reshape { shape: first },
            inputs: vec![Operand::Input(0)],
            outputs: vec![],
        },
        Step {
            kind: OpKind::Transpose { perm },
            inputs: vec![Operand::Step(0)],
            outputs: vec![],
        },
        Step {
            kind: OpKind::Reshape { shape: last },
            inputs: vec![Operand::Step(1)],
            outputs: vec![0],
        },
    ]))
}

/// Whether an axis list names a dim twice (order matters for Pad and Resize, so no sorting).
fn has_repeats(axes: &[usize]) -> bool {
    axes.iter().enumerate().any(|(i, a)| axes[..i].contains(a))
}

/// ONNX Reshape semantics: 0 copies the input dim (unless `allow_zero`), -1 is inferred.
pub fn reshape_dims(input: &[u64], spec: &[i64], allow_zero: bool) -> Result<Vec<u64>, String> {
    let total = input
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("the input's element count overflows")?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *input
                    .get(i)
                    .ok_or_else(|| format!("shape entry {i} is 0 but the input has rank {}", input.len()))?,
            ),
            s if s >= 0 => out.push(s as u64),
            _ => return Err(format!("invalid reshape spec {spec:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("reshape overflows")?;
    if let Some(i) = infer_at {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {input:?} ({total} elements) to {spec:?}"));
    }
    Ok(out)
}

fn split(node: &Node, opset: i64, ops: &Operands) -> Result<Plan, Reject> {
    let dims = ops.dims(0)?;
    let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), dims.len())?;
    let outputs = node.outputs.len();
    let d = dims[axis];
    let sizes: Vec<u64> = match attr_or_input(node, ops, "split", 1, "the split sizes")? {
        Some(s) => s
            .iter()
            .map(|&v| u64::try_from(v).map_err(|_| invalid(format!("negative split {s:?}"))))
            .collect::<Result<_, _>>()?,
        None => {
            let n = match node.attr_int("num_outputs") {
                Some(n) if n == outputs as i64 => outputs as u64,
                Some(n) => return Err(invalid(format!("num_outputs {n} for {outputs} outputs"))),
                None => outputs as u64,
            };
            if n == 0 {
                return Err(invalid("Split without outputs"));
            }
            // Opset 18: equal chunks of ceil(d/n), the last one smaller; before, equal parts.
            let chunk = d.div_ceil(n);
            if (opset < 18 && !d.is_multiple_of(n)) || (n - 1) * chunk >= d.max(1) && n > 1 {
                return Err(invalid(format!("a dim of {d} does not split into {n} parts")));
            }
            (0..n).map(|i| chunk.min(d.saturating_sub(i * chunk))).collect()
        }
    };
    let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
    if sizes.len() != outputs || total != Some(d) {
        return Err(invalid(format!(
            "split sizes {sizes:?} for {outputs} outputs over a dim of {d}"
        )));
    }
    let rank = dims.len();
    let mut start = 0i64;
    let steps = sizes
        .iter()
        .enumerate()
        .map(|(o, &s)| {
            let mut starts = vec![0i64; rank];
            let mut ends: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
            starts[axis] = start;
            ends[axis] = start + s as i64;
            start += s as i64;
            Step {
                kind: OpKind::Slice {
                    starts,
                    ends,
                    steps: vec![1; rank],
                },
                inputs: vec![Operand::Input(0)],
                outputs: vec![o],
            }
        })
        .collect();
    Ok(Plan::Steps(steps))
}

fn slice(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let rank = ops.rank(0)?;
    let starts = attr_or_input(node, ops, "starts", 1, "the starts")?
        .ok_or_else(|| invalid("Slice without starts"))?;
    let ends =
        attr_or_input(node, ops, "ends", 2, "the ends")?.ok_or_else(|| invalid("Slice without ends"))?;
    let axes = attr_or_input(node, ops, "axes", 3, "the axes")?;
    let steps = ops.ints(node, 4, "the steps")?;
    let n = starts.len();
    let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || axes.len() != n || steps.len() != n {
        return Err(invalid("Slice's starts, ends, axes and steps differ in length"));
    }
    let dims = ops.dims(0)?;
    let mut s = vec![0i64; rank];
    let mut e: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut st = vec![1i64; rank];
    let mut seen = vec![false; rank];
    for i in 0..n {
        let a = normalize_axis(axes[i], rank)?;
        if seen[a] {
            return Err(invalid(format!("axis {a} repeats")));
        }
        seen[a] = true;
        if steps[i] == 0 {
            return Err(invalid("Slice step 0"));
        }
        // Forward slices are stored clamped to the dim, so the IR reads [0, 16) and not
        // [0, i64::MAX); backward ones keep ONNX's encoding, where -1 means "from the end".
        let d = ops.dims(0)?[a] as i64;
        let norm = |v: i64| (if v < 0 { v.saturating_add(d) } else { v }).clamp(0, d);
        if steps[i] > 0 {
            s[a] = norm(starts[i]);
            e[a] = norm(ends[i]);
        } else {
            s[a] = starts[i];
            e[a] = ends[i];
        }
        st[a] = steps[i];
    }
    Ok(Plan::op(
        OpKind::Slice {
            starts: s,
            ends: e,
            steps: st,
        },
        vec![0],
    ))
}

fn pad(node: &Node, opset: i64, ops: &Operands) -> Result<Plan, Reject> {
    let rank = ops.rank(0)?;
    let (raw, value) = if opset < 11 {
        (
            node.attr_ints("pads").map(<[i64]>::to_vec),
            f64::from(node.attr_float("value").unwrap_or(0.0)),
        )
    } else {
        let v = ops.floats(node, 2, "the pad value")?;
        (
            ops.ints(node, 1, "the pads")?,
            v.and_then(|v| v.first().copied()).unwrap_or(0.0),
        )
    };
    let raw = raw.ok_or_else(|| invalid("Pad without pads"))?;
    let axes = match ops.ints(node, 3, "the axes")? {
        Some(a) => a
            .iter()
            .map(|&x| normalize_axis(x, rank))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).collect(),
    };
    if has_repeats(&axes) {
        return Err(invalid(format!("Resize axes {axes:?} repeat")));
    }
    if raw.len() != 2 * axes.len() || has_repeats(&axes) {
        return Err(invalid(format!("pads {raw:?} for axes {axes:?}")));
    }
    let mut pads = vec![0i64; 2 * rank];
    for (i, &a) in axes.iter().enumerate() {
        pads[a] = raw[i];
        pads[rank + a] = raw[axes.len() + i];
    }
    let dims = ops.dims(0)?;
    let reflect = node.attr_str("mode") == Some("reflect");
    if reflect && (0..rank).any(|a| pads[a].max(pads[rank + a]) >= dims[a] as i64) {
        return Err(invalid(format!(
            "reflect pads {pads:?} must be smaller than the dims {dims:?}"
        )));
    }
    let mode = match node.attr_str("mode").unwrap_or("constant") {
        "constant" => PadMode::Constant { value },
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        other => return Err(invalid(format!("unknown pad mode '{other}'"))),
    };
    Ok(Plan::op(OpKind::Pad { pads, mode }, vec![0]))
}

fn resize(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let dims = ops.dims(0)?;
    let rank = dims.len();
    if node.attr_str("coordinate_transformation_mode") == Some("tf_crop_and_resize") {
        return Err(unsupported(
            "Resize with tf_crop_and_resize (a region of interest) is not lowered",
            "crop with Slice before a plain Resize",
        ));
    }
    let mode = match node.attr_str("mode").unwrap_or("nearest") {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        other => return Err(invalid(format!("unknown resize mode '{other}'"))),
    };
    let axes = match node.attr_ints("axes") {
        Some(a) => a
            .iter()
            .map(|&x| normalize_axis(x, rank))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).collect(),
    };
    // Opset 10 has (X, scales); from 11 on (X, roi, scales, sizes). An empty tensor means absent.
    let (scales_at, sizes_at) = if node.inputs.len() == 2 { (1, 4) } else { (2, 3) };
    let scales = ops
        .floats(node, scales_at, "the scales")?
        .filter(|s| !s.is_empty());
    let sizes = ops.ints(node, sizes_at, "the sizes")?.filter(|s| !s.is_empty());
    let mut shape = dims.to_vec();
    // The scale each axis is sampled with (1 where Resize leaves an axis alone).
    let mut axis_scales = vec![1.0f64; rank];
    match (scales, sizes) {
        (_, Some(sizes)) => {
            if sizes.len() != axes.len() || sizes.iter().any(|&s| s <= 0) {
                return Err(invalid(format!("sizes {sizes:?} for axes {axes:?}")));
            }
            let policy = node.attr_str("keep_aspect_ratio_policy").unwrap_or("stretch");
            if policy == "stretch" {
                for (&a, &s) in axes.iter().zip(&sizes) {
                    shape[a] = s as u64;
                    axis_scales[a] = s as f64 / dims[a] as f64;
                }
            } else {
                let ratios = axes.iter().zip(&sizes).map(|(&a, &s)| s as f64 / dims[a] as f64);
                let scale = if policy == "not_larger" {
                    ratios.fold(f64::INFINITY, f64::min)
                } else {
                    ratios.fold(0.0, f64::max)
                };
                for &a in &axes {
                    shape[a] = (scale * dims[a] as f64 + 0.5).floor() as u64;
                    axis_scales[a] = scale;
                }
            }
        }
        (Some(scales), None) => {
            if scales.len() != axes.len() || scales.iter().any(|&s| s.is_nan() || s <= 0.0) {
                return Err(invalid(format!("scales {scales:?} for axes {axes:?}")));
            }
            for (&a, &s) in axes.iter().zip(&scales) {
                shape[a] = (dims[a] as f64 * s).floor() as u64;
                axis_scales[a] = s;
            }
        }
        (None, None) => return Err(invalid("Resize needs scales or sizes")),
    }
    let sampling = ResizeSampling {
        mode,
        coordinates: node
            .attr_str("coordinate_transformation_mode")
            .unwrap_or("half_pixel")
            .to_string(),
        nearest: node
            .attr_str("nearest_mode")
            .unwrap_or("round_prefer_floor")
            .to_string(),
        cubic_coeff_a: node.attr_float("cubic_coeff_a").unwrap_or(-0.75),
        exclude_outside: node.attr_int("exclude_outside").unwrap_or(0) != 0,
        antialias: node.attr_int("antialias").unwrap_or(0) != 0,
        scales: axis_scales,
    };
    Ok(Plan::op(OpKind::Resize { shape, sampling }, vec![0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_semantics() {
        assert_eq!(
            reshape_dims(&[1, 2048, 128], &[0, 0, 4, 32], false).unwrap(),
            vec![1, 2048, 4, 32]
        );
        assert_eq!(reshape_dims(&[2, 3, 4], &[-1, 4], false).unwrap(), vec![6, 4]);
        assert!(reshape_dims(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[7], false).is_err());
    }
}
