//! Shape and dtype rules of the compute ops: matrix products, convolutions, pools, normalisations,
//! reductions and quantization.

use crate::infer::{arity, axis_in_range, broadcast, checked, float_only, same_dtype, ShapeError};
use crate::op::{PoolKind, Window};
use crate::{DType, OpKind, ReduceOp, Shape, TensorType};

pub(crate) fn infer_compute(kind: &OpKind, inputs: &[&TensorType]) -> Result<Vec<TensorType>, ShapeError> {
    let t = match kind {
        OpKind::MatMul => {
            arity(inputs, 2, 2, "2")?;
            same_dtype(inputs)?;
            matmul(inputs[0], inputs[1], inputs[0].dtype)?
        }
        OpKind::MatMulT => {
            arity(inputs, 2, 2, "2")?;
            same_dtype(inputs)?;
            matmul(inputs[0], &swap_last_two(inputs[1])?, inputs[0].dtype)?
        }
        OpKind::MatMulBias { .. } => {
            arity(inputs, 3, 3, "3")?;
            same_dtype(inputs)?;
            let out = matmul(inputs[0], inputs[1], inputs[0].dtype)?;
            let n = out.shape.dims().last().copied();
            if out.shape.rank() < 1 || inputs[2].shape.dims() != [n.unwrap_or(0)] {
                return Err(ShapeError::Invalid(format!(
                    "MatMulBias needs a bias of the result's last dim {:?}, got {}",
                    n, inputs[2].shape
                )));
            }
            out
        }
        OpKind::MatMulInteger => {
            arity(inputs, 2, 4, "2 to 4")?;
            for t in &inputs[..2] {
                if !matches!(t.dtype, DType::I8 | DType::U8) {
                    return Err(ShapeError::Invalid(format!(
                        "MatMulInteger needs int8/uint8 operands, got {}",
                        t.dtype
                    )));
                }
            }
            matmul(inputs[0], inputs[1], DType::I32)?
        }
        OpKind::Gemm { trans_a, trans_b, .. } => gemm(inputs, *trans_a, *trans_b)?,
        OpKind::Conv { window, group } => conv(inputs, window, *group, None)?,
        OpKind::ConvInteger { window, group } => {
            arity(inputs, 2, 4, "2 to 4")?;
            integer8(&inputs[..2])?;
            let x = TensorType::new(DType::F32, inputs[0].shape.0.clone());
            let w = TensorType::new(DType::F32, inputs[1].shape.0.clone());
            let t = conv(&[&x, &w], window, *group, None)?;
            TensorType::new(DType::I32, t.shape.0)
        }
        OpKind::QLinearConv { window, group } => {
            arity(inputs, 8, 9, "8 or 9")?;
            integer8(&[inputs[0], inputs[3], inputs[7]])?;
            let x = TensorType::new(DType::F32, inputs[0].shape.0.clone());
            let w = TensorType::new(DType::F32, inputs[3].shape.0.clone());
            let t = conv(&[&x, &w], window, *group, None)?;
            TensorType::new(inputs[7].dtype, t.shape.0)
        }
        OpKind::QLinearMatMul => {
            arity(inputs, 8, 8, "8")?;
            integer8(&[inputs[0], inputs[3], inputs[7]])?;
            matmul(inputs[0], inputs[3], inputs[7].dtype)?
        }
        OpKind::InstanceNorm { .. } => {
            arity(inputs, 3, 3, "3")?;
            per_channel(inputs, 1)?;
            inputs[0].clone()
        }
        OpKind::GroupNorm { groups, .. } => {
            arity(inputs, 3, 3, "3")?;
            let c = inputs[0].shape.0.get(1).copied().unwrap_or(0);
            if *groups == 0 || c % groups != 0 {
                return Err(ShapeError::Invalid(format!("{groups} groups of {c} channels")));
            }
            // Scale and bias hold one value per channel (opset 21) or per group (opset 18).
            let per = if inputs[1].shape.0 == [*groups] && *groups != c {
                *groups
            } else {
                c
            };
            let x = inputs[0];
            float_only(x)?;
            for p in &inputs[1..] {
                if p.shape.0 != [per] {
                    return Err(ShapeError::Invalid(format!(
                        "GroupNormalization parameter {p} for {c} channels"
                    )));
                }
            }
            x.clone()
        }
        OpKind::ConvTranspose {
            window,
            group,
            output_padding,
        } => conv(inputs, window, *group, Some(output_padding))?,
        OpKind::Einsum { equation } => crate::einsum::infer_einsum(equation, inputs)?,
        OpKind::Softmax { axis, .. } => {
            arity(inputs, 1, 2, "1 or 2")?;
            float_only(inputs[0])?;
            axis_in_range(*axis, inputs[0])?;
            // An additive mask broadcasts to the scores without changing their shape.
            if let Some(mask) = inputs.get(1) {
                crate::infer::same_dtype(inputs)?;
                if crate::infer::broadcast(&inputs[0].shape, &mask.shape)? != inputs[0].shape {
                    return Err(ShapeError::Invalid(format!(
                        "Softmax's mask {} does not broadcast to its input {}",
                        mask.shape, inputs[0].shape
                    )));
                }
            }
            inputs[0].clone()
        }
        OpKind::LayerNorm { axis, stats, .. } => {
            arity(inputs, 2, 3, "2 or 3")?;
            normalization(inputs, *axis)?;
            if *stats {
                let d = &inputs[0].shape.0;
                let mut s = d[..*axis].to_vec();
                s.resize(d.len(), 1);
                let stat = TensorType::new(DType::F32, s);
                return Ok(vec![inputs[0].clone(), stat.clone(), stat]);
            }
            inputs[0].clone()
        }
        OpKind::RmsNorm { axis, .. } => {
            arity(inputs, 2, 2, "2")?;
            normalization(inputs, *axis)?;
            inputs[0].clone()
        }
        OpKind::Hardmax { axis } | OpKind::CumSum { axis, .. } => {
            arity(inputs, 1, 1, "1")?;
            axis_in_range(*axis, inputs[0])?;
            if inputs[0].dtype == DType::Bool {
                return Err(ShapeError::Invalid(format!("{} of bool", kind.name())));
            }
            inputs[0].clone()
        }
        OpKind::ArgReduce { axis, keep_dims, .. } => {
            arity(inputs, 1, 1, "1")?;
            axis_in_range(*axis, inputs[0])?;
            let mut d = inputs[0].shape.0.clone();
            if *keep_dims {
                d[*axis] = 1;
            } else {
                d.remove(*axis);
            }
            TensorType::new(DType::I64, d)
        }
        OpKind::TopK { axis, k, .. } => {
            arity(inputs, 1, 1, "1")?;
            axis_in_range(*axis, inputs[0])?;
            let mut d = inputs[0].shape.0.clone();
            if *k > d[*axis] {
                return Err(ShapeError::Invalid(format!(
                    "TopK k={k} of a dim of {}",
                    d[*axis]
                )));
            }
            d[*axis] = *k;
            return Ok(vec![
                checked(TensorType::new(inputs[0].dtype, d.clone()))?,
                checked(TensorType::new(DType::I64, d))?,
            ]);
        }
        OpKind::BatchNorm { .. } => {
            arity(inputs, 5, 5, "5")?;
            float_only(inputs[0])?;
            let x = &inputs[0].shape;
            if x.rank() < 2 {
                return Err(ShapeError::Invalid(format!("BatchNormalization of {x}")));
            }
            for p in &inputs[1..] {
                if p.shape.0 != [x.0[1]] || !p.dtype.is_float() {
                    return Err(ShapeError::Invalid(format!(
                        "BatchNormalization parameter {p} for {} channels",
                        x.0[1]
                    )));
                }
            }
            inputs[0].clone()
        }
        OpKind::Reduce { axes, keep_dims, .. } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            if x.dtype == DType::Bool
                && !matches!(
                    kind,
                    OpKind::Reduce {
                        op: ReduceOp::Max | ReduceOp::Min,
                        ..
                    }
                )
            {
                return Err(ShapeError::Invalid("arithmetic reduction of bool".into()));
            }
            if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= x.shape.rank()) {
                return Err(ShapeError::Invalid(format!("axes {axes:?} for {}", x.shape)));
            }
            let mut dims = Vec::new();
            for (i, &d) in x.shape.0.iter().enumerate() {
                if !axes.contains(&i) {
                    dims.push(d);
                } else if *keep_dims {
                    dims.push(1);
                }
            }
            TensorType::new(x.dtype, dims)
        }
        OpKind::Pool { kind, window } => {
            arity(inputs, 1, 1, "1")?;
            let x = inputs[0];
            if matches!(kind, PoolKind::Average { .. }) {
                float_only(x)?;
            }
            let spatial = window_output(&x.shape, window, None)?;
            let mut dims = x.shape.0[..2].to_vec();
            dims.extend(spatial);
            if matches!(kind, PoolKind::MaxWithIndices { .. }) {
                return Ok(vec![
                    checked(TensorType::new(x.dtype, dims.clone()))?,
                    checked(TensorType::new(DType::I64, dims))?,
                ]);
            }
            TensorType::new(x.dtype, dims)
        }
        OpKind::Quantize { axis, to } => {
            arity(inputs, 2, 3, "2 or 3")?;
            float_only(inputs[0])?;
            scales(inputs, *axis)?;
            if !matches!(to, DType::I8 | DType::U8) {
                return Err(ShapeError::Invalid(format!("quantize to {to}")));
            }
            TensorType {
                dtype: *to,
                shape: inputs[0].shape.clone(),
            }
        }
        OpKind::Dequantize { axis } => {
            arity(inputs, 2, 3, "2 or 3")?;
            scales(inputs, *axis)?;
            float_only(inputs[1])?;
            TensorType {
                dtype: inputs[1].dtype,
                shape: inputs[0].shape.clone(),
            }
        }
        OpKind::DynamicQuantize => {
            arity(inputs, 1, 1, "1")?;
            if inputs[0].dtype != DType::F32 {
                return Err(ShapeError::Invalid("DynamicQuantizeLinear needs float32".into()));
            }
            return Ok(vec![
                checked(TensorType {
                    dtype: DType::U8,
                    shape: inputs[0].shape.clone(),
                })?,
                TensorType::new(DType::F32, vec![]),
                TensorType::new(DType::U8, vec![]),
            ]);
        }
        other => unreachable!("{} is not a compute op", other.name()),
    };
    Ok(vec![checked(t)?])
}

/// int8/uint8 operands of the integer and quantized ops.
fn integer8(inputs: &[&TensorType]) -> Result<(), ShapeError> {
    match inputs.iter().find(|t| !matches!(t.dtype, DType::I8 | DType::U8)) {
        Some(t) => Err(ShapeError::Invalid(format!(
            "needs int8/uint8 operands, got {}",
            t.dtype
        ))),
        None => Ok(()),
    }
}

/// Float data of rank >= `min_rank + 1` and one float parameter per channel (dim 1) after it.
fn per_channel(inputs: &[&TensorType], min_rank: usize) -> Result<(), ShapeError> {
    let x = inputs[0];
    float_only(x)?;
    if x.shape.rank() <= min_rank {
        return Err(ShapeError::Invalid(format!("normalisation of {}", x.shape)));
    }
    for p in &inputs[1..] {
        if p.shape.0 != [x.shape.0[1]] || !p.dtype.is_float() {
            return Err(ShapeError::Invalid(format!(
                "parameter {p} for {} channels",
                x.shape.0[1]
            )));
        }
    }
    Ok(())
}

/// The operands of a normalisation over the dims from `axis` on: float data, parameters that
/// broadcast to the normalised dims.
fn normalization(inputs: &[&TensorType], axis: usize) -> Result<(), ShapeError> {
    same_dtype(inputs)?;
    float_only(inputs[0])?;
    axis_in_range(axis, inputs[0])?;
    let normalized = Shape(inputs[0].shape.0[axis..].to_vec());
    for p in &inputs[1..] {
        if broadcast(&p.shape, &normalized)? != normalized {
            return Err(ShapeError::Broadcast(p.shape.to_string(), normalized.to_string()));
        }
    }
    Ok(())
}

/// Scale and zero point of (de)quantization: a scalar (per tensor) or one per slice of `axis`.
fn scales(inputs: &[&TensorType], axis: usize) -> Result<(), ShapeError> {
    let x = &inputs[0].shape;
    for p in &inputs[1..] {
        let ok = p.shape.rank() == 0
            || p.shape.0 == [1]
            || (axis < x.rank() && p.shape.0 == [x.0[axis]])
            || p.shape.rank() == x.rank();
        if !ok {
            return Err(ShapeError::Invalid(format!(
                "scale or zero point {} for {x} on axis {axis}",
                p.shape
            )));
        }
    }
    if let Some(zp) = inputs.get(2) {
        if !matches!(zp.dtype, DType::I8 | DType::U8 | DType::I32) {
            return Err(ShapeError::Invalid(format!("zero point of type {}", zp.dtype)));
        }
    }
    Ok(())
}

fn gemm(inputs: &[&TensorType], trans_a: bool, trans_b: bool) -> Result<TensorType, ShapeError> {
    arity(inputs, 2, 3, "2 or 3")?;
    same_dtype(inputs)?;
    let (a, b) = (&inputs[0].shape, &inputs[1].shape);
    if a.rank() != 2 || b.rank() != 2 {
        return Err(ShapeError::Invalid(format!(
            "Gemm needs 2-D operands, got {a} and {b}"
        )));
    }
    let (m, ka) = if trans_a {
        (a.0[1], a.0[0])
    } else {
        (a.0[0], a.0[1])
    };
    let (kb, n) = if trans_b {
        (b.0[1], b.0[0])
    } else {
        (b.0[0], b.0[1])
    };
    if ka != kb {
        return Err(ShapeError::InnerDim(a.to_string(), b.to_string()));
    }
    let out = Shape(vec![m, n]);
    if let Some(c) = inputs.get(2) {
        if broadcast(&c.shape, &out)? != out {
            return Err(ShapeError::Broadcast(c.shape.to_string(), out.to_string()));
        }
    }
    Ok(TensorType {
        dtype: inputs[0].dtype,
        shape: out,
    })
}

/// numpy matmul: 1-D operands are promoted and the promoted dim dropped afterwards.
pub(crate) fn matmul(a: &TensorType, b: &TensorType, dtype: DType) -> Result<TensorType, ShapeError> {
    let (sa, sb) = (&a.shape, &b.shape);
    if sa.rank() == 0 || sb.rank() == 0 {
        return Err(ShapeError::Invalid("MatMul of a scalar".into()));
    }
    let a2 = if sa.rank() == 1 {
        Shape(vec![1, sa.0[0]])
    } else {
        sa.clone()
    };
    let b2 = if sb.rank() == 1 {
        Shape(vec![sb.0[0], 1])
    } else {
        sb.clone()
    };
    let (m, k) = (a2.0[a2.rank() - 2], a2.0[a2.rank() - 1]);
    let (kb, n) = (b2.0[b2.rank() - 2], b2.0[b2.rank() - 1]);
    if k != kb {
        return Err(ShapeError::InnerDim(sa.to_string(), sb.to_string()));
    }
    let batch = broadcast(
        &Shape(a2.0[..a2.rank() - 2].to_vec()),
        &Shape(b2.0[..b2.rank() - 2].to_vec()),
    )?;
    let mut dims = batch.0;
    if sa.rank() > 1 {
        dims.push(m);
    }
    if sb.rank() > 1 {
        dims.push(n);
    }
    Ok(TensorType {
        dtype,
        shape: Shape(dims),
    })
}

fn conv(
    inputs: &[&TensorType],
    window: &Window,
    group: u64,
    transposed: Option<&Vec<u64>>,
) -> Result<TensorType, ShapeError> {
    arity(inputs, 2, 3, "2 or 3")?;
    same_dtype(inputs)?;
    let (x, w) = (&inputs[0].shape, &inputs[1].shape);
    if x.rank() < 3 || w.rank() != x.rank() || group == 0 {
        return Err(ShapeError::Invalid(format!(
            "convolution of {x} with weights {w}"
        )));
    }
    let channels = x.0[1];
    let out_channels = match transposed {
        None => {
            if w.0[1].checked_mul(group) != Some(channels) || w.0[0] % group != 0 {
                return Err(ShapeError::Invalid(format!(
                    "weights {w} with group {group} for {channels} input channels"
                )));
            }
            w.0[0]
        }
        Some(_) => {
            if w.0[0] != channels || channels % group != 0 {
                return Err(ShapeError::Invalid(format!(
                    "transposed weights {w} with group {group} for {channels} input channels"
                )));
            }
            w.0[1].checked_mul(group).ok_or(ShapeError::TooLarge)?
        }
    };
    if window.kernel != w.0[2..] {
        return Err(ShapeError::Invalid(format!(
            "kernel {:?} differs from the weights' {w}",
            window.kernel
        )));
    }
    if let Some(b) = inputs.get(2) {
        if b.shape.0 != [out_channels] {
            return Err(ShapeError::Invalid(format!(
                "bias {} for {out_channels} channels",
                b.shape
            )));
        }
    }
    let spatial = window_output(x, window, transposed)?;
    let mut dims = vec![x.0[0], out_channels];
    dims.extend(spatial);
    Ok(TensorType::new(inputs[0].dtype, dims))
}

/// The spatial output dims of a window sliding over dims 2.. of `x` (or of its transpose).
pub(crate) fn window_output(
    x: &Shape,
    w: &Window,
    transposed: Option<&Vec<u64>>,
) -> Result<Vec<u64>, ShapeError> {
    let n = x.rank().saturating_sub(2);
    let ok = x.rank() >= 3
        && w.kernel.len() == n
        && w.strides.len() == n
        && w.dilations.len() == n
        && w.pads.len() == 2 * n
        && transposed.is_none_or(|p| p.len() == n)
        && w.strides
            .iter()
            .chain(&w.dilations)
            .chain(&w.kernel)
            .all(|&v| v > 0);
    if !ok {
        return Err(ShapeError::Invalid(format!("window {w} over {x}")));
    }
    let too_big = || ShapeError::TooLarge;
    (0..n)
        .map(|i| {
            let input = x.0[2 + i];
            let span = w.dilations[i]
                .checked_mul(w.kernel[i] - 1)
                .and_then(|s| s.checked_add(1))
                .ok_or_else(too_big)?;
            let pads = w.pads[i].checked_add(w.pads[n + i]).ok_or_else(too_big)?;
            if let Some(output_padding) = transposed {
                let full = w.strides[i]
                    .checked_mul(input - 1)
                    .and_then(|v| v.checked_add(output_padding[i]))
                    .and_then(|v| v.checked_add(span))
                    .ok_or_else(too_big)?;
                return full
                    .checked_sub(pads)
                    .filter(|&d| d > 0)
                    .ok_or_else(|| ShapeError::Invalid(format!("pads {:?} exceed the output", w.pads)));
            }
            let padded = input.checked_add(pads).ok_or_else(too_big)?;
            if padded < span {
                return Err(ShapeError::Invalid(format!(
                    "window {w} is larger than the padded input {x}"
                )));
            }
            let steps = padded - span;
            let mut out = if w.ceil_mode {
                steps.div_ceil(w.strides[i]) + 1
            } else {
                steps / w.strides[i] + 1
            };
            // The last window must start inside the input or its begin padding.
            if w.ceil_mode && (out - 1) * w.strides[i] >= input + w.pads[i] {
                out -= 1;
            }
            Ok(out)
        })
        .collect()
}

/// `t` with its last two axes swapped (the right operand of a `MatMulT` as a `MatMul` reads it).
pub(crate) fn swap_last_two(t: &TensorType) -> Result<TensorType, ShapeError> {
    let mut d = t.shape.dims().to_vec();
    let r = d.len();
    if r < 2 {
        return Err(ShapeError::Invalid(format!(
            "MatMulT's right operand {} has fewer than two axes",
            t.shape
        )));
    }
    d.swap(r - 2, r - 1);
    Ok(TensorType::new(t.dtype, d))
}
