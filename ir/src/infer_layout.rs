//! Shape and dtype rules of the data-movement ops: reshape, transpose, concat, slice, gathers and
//! scatters, expand, tile, pad, trilu and resize. None of them does arithmetic.

use crate::infer::{arity, broadcast, same_dtype, ShapeError};
use crate::{DType, OpKind, Shape, TensorType};

fn invalid(s: String) -> ShapeError {
    ShapeError::Invalid(s)
}

fn index_dtype(t: &TensorType) -> Result<(), ShapeError> {
    if matches!(t.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(invalid(format!(
            "indices must be int32 or int64, got {}",
            t.dtype
        )))
    }
}

/// The number of elements of a strided slice `[start, end)` by `step` over a dim of size `dim`,
/// with ONNX's clamping of out-of-range bounds.
pub fn slice_len(dim: u64, start: i64, end: i64, step: i64) -> Option<u64> {
    if step == 0 {
        return None;
    }
    let d = i64::try_from(dim).ok()?;
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (norm(start), norm(end));
    // ONNX (Slice-13): a negative step clamps the start to [0, d-1] and the end to [-1, d-1].
    if d == 0 {
        return Some(0);
    }
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, d - 1), e.clamp(-1, d - 1))
    };
    let span = if step > 0 { e - s } else { s - e };
    if span <= 0 {
        return Some(0);
    }
    let step = step.unsigned_abs();
    Some((span as u64).div_ceil(step))
}

/// Data, int indices and updates of the data's dtype: the operands of the scatter ops.
fn scatter_operands(inputs: &[&TensorType]) -> Result<(), ShapeError> {
    arity(inputs, 3, 3, "3")?;
    index_dtype(inputs[1])?;
    if inputs[2].dtype != inputs[0].dtype {
        return Err(ShapeError::DTypeMismatch(
            inputs[0].dtype.to_string(),
            inputs[2].dtype.to_string(),
        ));
    }
    Ok(())
}

pub(crate) fn infer_layout(kind: &OpKind, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    let x = inputs.first().ok_or(ShapeError::Arity {
        expected: "at least 1",
        got: 0,
    })?;
    let dims = x.shape.dims();
    let with = |d: Vec<u64>| TensorType::new(x.dtype, d);
    match kind {
        OpKind::Reshape { shape } => {
            arity(inputs, 1, 1, "1")?;
            let to = Shape(shape.clone());
            if to.num_elements() != x.shape.num_elements() {
                return Err(invalid(format!("cannot reshape {} to {to}", x.shape)));
            }
            Ok(with(shape.clone()))
        }
        OpKind::Transpose { perm } => {
            arity(inputs, 1, 1, "1")?;
            let mut seen = vec![false; dims.len()];
            if perm.len() != dims.len() {
                return Err(invalid(format!("perm {perm:?} for rank {}", dims.len())));
            }
            for &p in perm {
                if p >= dims.len() || seen[p] {
                    return Err(invalid(format!("perm {perm:?} is not a permutation")));
                }
                seen[p] = true;
            }
            Ok(with(perm.iter().map(|&p| dims[p]).collect()))
        }
        OpKind::Concat { axis } => {
            same_dtype(inputs)?;
            if *axis >= dims.len() {
                return Err(invalid(format!("axis {axis} for rank {}", dims.len())));
            }
            let mut out = dims.to_vec();
            out[*axis] = 0;
            for t in inputs {
                let d = t.shape.dims();
                let same_rest = d.len() == dims.len()
                    && d.iter()
                        .zip(dims)
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !same_rest {
                    return Err(invalid(format!(
                        "cannot concatenate {} and {} on axis {axis}",
                        x.shape, t.shape
                    )));
                }
                out[*axis] = out[*axis].checked_add(d[*axis]).ok_or(ShapeError::TooLarge)?;
            }
            Ok(with(out))
        }
        OpKind::Slice { starts, ends, steps } => {
            arity(inputs, 1, 1, "1")?;
            if starts.len() != dims.len() || ends.len() != dims.len() || steps.len() != dims.len() {
                return Err(invalid(format!("slice bounds for rank {}", dims.len())));
            }
            let out = (0..dims.len())
                .map(|i| slice_len(dims[i], starts[i], ends[i], steps[i]))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("slice step 0".into()))?;
            Ok(with(out))
        }
        OpKind::Gather { axis } => {
            arity(inputs, 2, 2, "2")?;
            index_dtype(inputs[1])?;
            if *axis >= dims.len() {
                return Err(invalid(format!("axis {axis} for rank {}", dims.len())));
            }
            let mut out = dims[..*axis].to_vec();
            out.extend(inputs[1].shape.dims());
            out.extend(&dims[axis + 1..]);
            Ok(with(out))
        }
        OpKind::GatherElements { axis } => {
            arity(inputs, 2, 2, "2")?;
            index_dtype(inputs[1])?;
            if *axis >= dims.len() || inputs[1].shape.rank() != dims.len() {
                return Err(invalid(format!(
                    "GatherElements of {} by {}",
                    x.shape, inputs[1].shape
                )));
            }
            Ok(with(inputs[1].shape.0.clone()))
        }
        OpKind::GatherNd { batch_dims } => {
            arity(inputs, 2, 2, "2")?;
            index_dtype(inputs[1])?;
            let idx = inputs[1].shape.dims();
            let last = *idx
                .last()
                .ok_or_else(|| invalid("GatherND indices are a scalar".into()))?;
            let b = *batch_dims;
            let last = usize::try_from(last).map_err(|_| ShapeError::TooLarge)?;
            if b >= idx.len() || b + last > dims.len() || dims[..b] != idx[..b] {
                return Err(invalid(format!("GatherND of {} by {}", x.shape, inputs[1].shape)));
            }
            let mut out = idx[..idx.len() - 1].to_vec();
            out.extend(&dims[b + last..]);
            Ok(with(out))
        }
        OpKind::ScatterNd { .. } => {
            scatter_operands(inputs)?;
            let idx = inputs[1].shape.dims();
            let last = idx
                .last()
                .and_then(|&l| usize::try_from(l).ok())
                .unwrap_or(usize::MAX);
            if last > dims.len() {
                return Err(invalid(format!(
                    "ScatterND into {} by {}",
                    x.shape, inputs[1].shape
                )));
            }
            let mut upd = idx[..idx.len() - 1].to_vec();
            upd.extend(&dims[last..]);
            if inputs[2].shape.0 != upd {
                return Err(invalid(format!(
                    "ScatterND updates {} where {upd:?} is needed",
                    inputs[2].shape
                )));
            }
            Ok(with(dims.to_vec()))
        }
        OpKind::ScatterElements { axis, .. } => {
            scatter_operands(inputs)?;
            let same_rank = inputs[1].shape.rank() == dims.len() && inputs[1].shape == inputs[2].shape;
            if *axis >= dims.len() || !same_rank {
                return Err(invalid(format!(
                    "ScatterElements into {} by {} with {}",
                    x.shape, inputs[1].shape, inputs[2].shape
                )));
            }
            Ok(with(dims.to_vec()))
        }
        OpKind::OneHot { axis, depth } => {
            arity(inputs, 2, 2, "2")?;
            if x.dtype == DType::Bool || inputs[1].shape.num_elements() != Some(2) {
                return Err(invalid(format!("OneHot of {} with values {}", x, inputs[1])));
            }
            if *axis > dims.len() {
                return Err(invalid(format!("axis {axis} for rank {}", dims.len())));
            }
            let mut out = dims.to_vec();
            out.insert(*axis, *depth);
            Ok(TensorType::new(inputs[1].dtype, out))
        }
        OpKind::Expand { shape } => {
            arity(inputs, 1, 1, "1")?;
            Ok(with(broadcast(&x.shape, &Shape(shape.clone()))?.0))
        }
        OpKind::Tile { repeats } => {
            arity(inputs, 1, 1, "1")?;
            if repeats.len() != dims.len() {
                return Err(invalid(format!("repeats {repeats:?} for rank {}", dims.len())));
            }
            let out = dims
                .iter()
                .zip(repeats)
                .map(|(&d, &r)| d.checked_mul(r))
                .collect::<Option<Vec<_>>>()
                .ok_or(ShapeError::TooLarge)?;
            Ok(with(out))
        }
        OpKind::Pad { pads, .. } => {
            arity(inputs, 1, 1, "1")?;
            let r = dims.len();
            if pads.len() != 2 * r {
                return Err(invalid(format!("pads {pads:?} for rank {r}")));
            }
            let out = (0..r)
                .map(|i| {
                    i64::try_from(dims[i])
                        .ok()
                        .and_then(|d| d.checked_add(pads[i]))
                        .and_then(|d| d.checked_add(pads[r + i]))
                        .and_then(|d| u64::try_from(d).ok())
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(format!("pads {pads:?} crop {} below zero", x.shape)))?;
            Ok(with(out))
        }
        OpKind::Trilu { .. } => {
            arity(inputs, 1, 1, "1")?;
            if dims.len() < 2 {
                return Err(invalid(format!("Trilu of {}", x.shape)));
            }
            Ok(with(dims.to_vec()))
        }
        OpKind::Resize { shape, .. } => {
            arity(inputs, 1, 1, "1")?;
            if shape.len() != dims.len() || shape.contains(&0) {
                return Err(invalid(format!("resize {} to {shape:?}", x.shape)));
            }
            Ok(with(shape.clone()))
        }
        other => unreachable!("{} is not a layout op", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_clamp_like_onnx() {
        assert_eq!(slice_len(10, 0, i64::MAX, 1), Some(10));
        assert_eq!(slice_len(10, -3, i64::MAX, 1), Some(3));
        assert_eq!(slice_len(10, 1, 1000, 3), Some(3));
        assert_eq!(slice_len(10, -1, i64::MIN, -1), Some(10));
        assert_eq!(slice_len(10, 20, -20, -2), Some(5));
        assert_eq!(slice_len(10, 5, 2, 1), Some(0));
        assert_eq!(slice_len(10, 0, 3, 0), None);
        // A negative step clamps the start into the dim: one element, where numpy gives none.
        assert_eq!(slice_len(5, -10, -20, -1), Some(1));
        assert_eq!(slice_len(0, 0, 1, 1), Some(0));
    }
}
