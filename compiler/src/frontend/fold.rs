//! Constant folding: evaluating an IR op on compile-time values.
//!
//! This is what turns exporters' shape subgraphs (Shape -> Gather -> Unsqueeze -> Concat ->
//! Reshape, Range, Equal/Where on shapes, Cast of shape values) into constants. It evaluates the
//! resolved IR op kinds, so it agrees with shape inference by construction. Ops it does not
//! evaluate return `None`; their results stay constants without values.

use super::consts::{round_float, wrap_int, Values, FOLD_LIMIT};
use lpuc_ir::{BinaryOp, DType, OpKind, ReduceOp, TensorType, UnaryOp};

/// Row-major strides of `dims`.
fn strides(dims: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Call `f` with every multi-index of `dims` in row-major order.
fn each_index(dims: &[u64], mut f: impl FnMut(&[u64])) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0u64; dims.len()];
    loop {
        f(&idx);
        let mut d = dims.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Flat indices into an input of `in_dims` broadcast to `out_dims`.
fn broadcast_map(in_dims: &[u64], out_dims: &[u64]) -> Vec<usize> {
    let st = strides(in_dims);
    let off = out_dims.len() - in_dims.len();
    let mut map = Vec::new();
    each_index(out_dims, |idx| {
        let mut flat = 0;
        for (i, &d) in in_dims.iter().enumerate() {
            if d > 1 {
                flat += idx[off + i] * st[i];
            }
        }
        map.push(flat as usize);
    });
    map
}

/// Evaluate `kind` on `inputs` (every one with values) producing a value of type `out`.
pub fn evaluate(kind: &OpKind, inputs: &[(&TensorType, &Values)], out: &TensorType) -> Option<Values> {
    if out.shape.num_elements()? > FOLD_LIMIT {
        return None;
    }
    let dims = |i: usize| inputs[i].0.shape.dims();
    let out_dims = out.shape.dims();
    let values = match kind {
        OpKind::Binary(op) => {
            let a = inputs[0].1.pick(&broadcast_map(dims(0), out_dims));
            let b = inputs[1].1.pick(&broadcast_map(dims(1), out_dims));
            binary(*op, &a, &b, inputs[0].0.dtype)?
        }
        OpKind::Unary(op) => unary(*op, inputs[0].1, out.dtype)?,
        OpKind::Where => {
            let Values::Bool(c) = inputs[0].1.pick(&broadcast_map(dims(0), out_dims)) else {
                return None;
            };
            let x = inputs[1].1.pick(&broadcast_map(dims(1), out_dims));
            let y = inputs[2].1.pick(&broadcast_map(dims(2), out_dims));
            let choose: Vec<usize> = c
                .iter()
                .enumerate()
                .map(|(i, &t)| if t { i } else { i + c.len() })
                .collect();
            concat_values(&[x, y])?.pick(&choose)
        }
        OpKind::Cast { to } => inputs[0].1.cast(*to),
        OpKind::Reshape { .. } => inputs[0].1.clone(),
        OpKind::Expand { .. } => inputs[0].1.pick(&broadcast_map(dims(0), out_dims)),
        OpKind::Concat { axis } => {
            let parts: Vec<Values> = inputs.iter().map(|(_, v)| (*v).clone()).collect();
            let all = concat_values(&parts)?;
            let mut offsets = Vec::new();
            let mut base = 0usize;
            for (_, v) in inputs {
                offsets.push(base);
                base += v.len();
            }
            let mut map = Vec::new();
            each_index(out_dims, |idx| {
                let mut pos = idx[*axis];
                let mut k = 0;
                while pos >= inputs[k].0.shape.dims()[*axis] {
                    pos -= inputs[k].0.shape.dims()[*axis];
                    k += 1;
                }
                let d = inputs[k].0.shape.dims();
                let st = strides(d);
                let flat: u64 = idx
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| if i == *axis { pos * st[i] } else { x * st[i] })
                    .sum();
                map.push(offsets[k] + flat as usize);
            });
            all.pick(&map)
        }
        OpKind::Slice { starts, steps, .. } => {
            let d = dims(0);
            let st = strides(d);
            let mut map = Vec::new();
            each_index(out_dims, |idx| {
                let flat: i64 = (0..d.len())
                    .map(|i| {
                        let di = d[i] as i64;
                        let s = if starts[i] < 0 { starts[i] + di } else { starts[i] };
                        let s = if steps[i] > 0 {
                            s.clamp(0, di)
                        } else {
                            s.clamp(0, di - 1)
                        };
                        (s + idx[i] as i64 * steps[i]) * st[i] as i64
                    })
                    .sum();
                map.push(flat as usize);
            });
            inputs[0].1.pick(&map)
        }
        OpKind::Gather { axis } => {
            let d = dims(0);
            let idx_vals = inputs[1].1.to_ints();
            let checked = |ds: &[u64]| ds.iter().try_fold(1u64, |a, &x| a.checked_mul(x));
            let (outer, inner) = (checked(&d[..*axis])?, checked(&d[axis + 1..])?);
            let mut map = Vec::new();
            for o in 0..outer {
                for &i in &idx_vals {
                    let i = if i < 0 { i + d[*axis] as i64 } else { i };
                    if i < 0 || i as u64 >= d[*axis] {
                        return None;
                    }
                    for r in 0..inner {
                        map.push(((o * d[*axis] + i as u64) * inner + r) as usize);
                    }
                }
            }
            inputs[0].1.pick(&map)
        }
        OpKind::Transpose { perm } => {
            let st = strides(dims(0));
            let mut map = Vec::new();
            each_index(out_dims, |idx| {
                map.push(perm.iter().enumerate().map(|(o, &p)| idx[o] * st[p]).sum::<u64>() as usize);
            });
            inputs[0].1.pick(&map)
        }
        OpKind::Tile { .. } => {
            let d = dims(0);
            let st = strides(d);
            let mut map = Vec::new();
            each_index(out_dims, |idx| {
                map.push(
                    idx.iter()
                        .enumerate()
                        .map(|(i, &x)| (x % d[i]) * st[i])
                        .sum::<u64>() as usize,
                );
            });
            inputs[0].1.pick(&map)
        }
        OpKind::Trilu { upper, k } => {
            let d = dims(0);
            let mut keep = Vec::new();
            each_index(d, |idx| {
                let (r, c) = (idx[d.len() - 2] as i64, idx[d.len() - 1] as i64);
                keep.push(if *upper { c - r >= *k } else { c - r <= *k });
            });
            let zero = Values::Int(vec![0]).cast(out.dtype);
            let all = concat_values(&[inputs[0].1.clone(), zero])?;
            let n = inputs[0].1.len();
            all.pick(
                &keep
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| if k { i } else { n })
                    .collect::<Vec<_>>(),
            )
        }
        OpKind::Reduce { op, axes, .. } => reduce(*op, axes, dims(0), inputs[0].1, out)?,
        _ => return None,
    };
    Some(values)
}

fn concat_values(parts: &[Values]) -> Option<Values> {
    Some(match parts.first()? {
        Values::Int(_) => Values::Int(parts.iter().flat_map(Values::to_ints).collect()),
        Values::Float(_) => Values::Float(parts.iter().flat_map(Values::to_floats).collect()),
        Values::Bool(_) => Values::Bool(
            parts
                .iter()
                .flat_map(|p| p.to_ints().into_iter().map(|i| i != 0))
                .collect(),
        ),
    })
}

fn binary(op: BinaryOp, a: &Values, b: &Values, dtype: DType) -> Option<Values> {
    use BinaryOp::*;
    Some(match (a, b) {
        (Values::Bool(x), Values::Bool(y)) => {
            let f = |p: bool, q: bool| match op {
                And => Some(p && q),
                Or => Some(p || q),
                Xor => Some(p != q),
                Equal => Some(p == q),
                _ => None,
            };
            Values::Bool(x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect::<Option<_>>()?)
        }
        (Values::Int(x), Values::Int(y)) if op.is_comparison() => {
            Values::Bool(x.iter().zip(y).map(|(&p, &q)| compare(op, p.cmp(&q))).collect())
        }
        (Values::Int(x), Values::Int(y)) => {
            let f = |p: i64, q: i64| -> Option<i64> {
                Some(match op {
                    Add => p.wrapping_add(q),
                    Sub => p.wrapping_sub(q),
                    Mul => p.wrapping_mul(q),
                    Div => p.checked_div(q)?,
                    Min => p.min(q),
                    Max => p.max(q),
                    Mod { fmod: true } => p.checked_rem(q)?,
                    Mod { fmod: false } => {
                        p.checked_rem_euclid(q)
                            .map(|r| if q < 0 && r != 0 { r + q } else { r })?
                    }
                    Pow => p.checked_pow(u32::try_from(q).ok()?)?,
                    PRelu => {
                        if p < 0 {
                            p.wrapping_mul(q)
                        } else {
                            p
                        }
                    }
                    _ => return None,
                })
            };
            Values::Int(
                x.iter()
                    .zip(y)
                    .map(|(&p, &q)| f(p, q).map(|r| wrap_int(r, dtype)))
                    .collect::<Option<_>>()?,
            )
        }
        _ => {
            let (x, y) = (a.to_floats(), b.to_floats());
            if op.is_comparison() {
                return Some(Values::Bool(
                    x.iter()
                        .zip(&y)
                        .map(|(&p, &q)| p.partial_cmp(&q).is_some_and(|o| compare(op, o)))
                        .collect(),
                ));
            }
            let f = |p: f64, q: f64| -> Option<f64> {
                Some(match op {
                    Add => p + q,
                    Sub => p - q,
                    Mul => p * q,
                    Div => p / q,
                    Min => p.min(q),
                    Max => p.max(q),
                    Pow => p.powf(q),
                    Mod { .. } => p % q,
                    PRelu => {
                        if p < 0.0 {
                            p * q
                        } else {
                            p
                        }
                    }
                    _ => return None,
                })
            };
            let r: Vec<f64> = x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect::<Option<_>>()?;
            if dtype.is_float() {
                Values::Float(r.into_iter().map(|v| round_float(v, dtype)).collect())
            } else {
                Values::Float(r).cast(dtype)
            }
        }
    })
}

fn compare(op: BinaryOp, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        BinaryOp::Equal => o == Equal,
        BinaryOp::Less => o == Less,
        BinaryOp::Greater => o == Greater,
        BinaryOp::LessOrEqual => o != Greater,
        BinaryOp::GreaterOrEqual => o != Less,
        _ => false,
    }
}

fn unary(op: UnaryOp, v: &Values, dtype: DType) -> Option<Values> {
    use UnaryOp::*;
    if let Values::Bool(b) = v {
        return match op {
            Not => Some(Values::Bool(b.iter().map(|&x| !x).collect())),
            _ => None,
        };
    }
    if let Values::Int(x) = v {
        let f = |i: i64| -> Option<i64> {
            Some(match op {
                Neg => i.wrapping_neg(),
                Abs => i.wrapping_abs(),
                Sign => i.signum(),
                Relu => i.max(0),
                // ONNX Clip is Min(max, Max(x, min)): with min > max every value becomes max.
                Clip { min, max } => (i as f64).max(min).min(max) as i64,
                _ => return None,
            })
        };
        return Some(Values::Int(
            x.iter()
                .map(|&i| f(i).map(|r| wrap_int(r, dtype)))
                .collect::<Option<_>>()?,
        ));
    }
    // The ops folded exactly (std's own functions; approximations such as erf are left to run).
    let exact = matches!(
        op,
        Neg | Abs
            | Sqrt
            | Reciprocal
            | Exp
            | Log
            | Floor
            | Ceil
            | Round
            | Sign
            | Relu
            | Sigmoid
            | Tanh
            | Sin
            | Cos
            | Clip { .. }
            | Tan
            | Acos
            | Asin
            | Atan
            | Acosh
            | Asinh
            | Atanh
            | Sinh
            | Cosh
            | Softsign
    );
    let f = |x: f64| exact.then(|| lpuc_ir::interp::unary(op, x));
    let r: Vec<f64> = v.to_floats().into_iter().map(f).collect::<Option<_>>()?;
    Some(match op {
        IsNaN | IsInf { .. } | Not => return None,
        _ => Values::Float(r.into_iter().map(|x| round_float(x, dtype)).collect()),
    })
}

fn reduce(op: ReduceOp, axes: &[usize], dims: &[u64], v: &Values, out: &TensorType) -> Option<Values> {
    let n_out = out.shape.num_elements()? as usize;
    let kept: Vec<u64> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let kst = strides(&kept);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n_out];
    let mut flat = 0usize;
    each_index(dims, |idx| {
        let g: u64 = idx
            .iter()
            .enumerate()
            .map(|(i, &x)| if axes.contains(&i) { 0 } else { x * kst[i] })
            .sum();
        groups[g as usize].push(flat);
        flat += 1;
    });
    let x = v.to_floats();
    let r: Vec<f64> = groups
        .iter()
        .map(|g| {
            let it = g.iter().map(|&i| x[i]);
            match op {
                ReduceOp::Sum => it.sum(),
                ReduceOp::Mean => it.sum::<f64>() / g.len() as f64,
                ReduceOp::Prod => it.product(),
                ReduceOp::Max => it.fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => it.fold(f64::INFINITY, f64::min),
                ReduceOp::SumSquare => it.map(|y| y * y).sum(),
                ReduceOp::L1 => it.map(f64::abs).sum(),
                ReduceOp::L2 => it.map(|y| y * y).sum::<f64>().sqrt(),
                ReduceOp::LogSum => it.sum::<f64>().ln(),
                ReduceOp::LogSumExp => it.map(f64::exp).sum::<f64>().ln(),
            }
        })
        .collect();
    Some(Values::Float(r).cast(out.dtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dtype: DType, dims: &[u64]) -> TensorType {
        TensorType::new(dtype, dims.to_vec())
    }

    #[test]
    fn folds_a_shape_subgraph() {
        // Shape -> Gather(1) -> Unsqueeze -> Concat([-1, 4, 32]) as an exporter writes it.
        let shape = Values::Int(vec![1, 2048, 128]);
        let gathered = evaluate(
            &OpKind::Gather { axis: 0 },
            &[
                (&t(DType::I64, &[3]), &shape),
                (&t(DType::I64, &[]), &Values::Int(vec![1])),
            ],
            &t(DType::I64, &[]),
        )
        .unwrap();
        assert_eq!(gathered, Values::Int(vec![2048]));
        let cat = evaluate(
            &OpKind::Concat { axis: 0 },
            &[
                (&t(DType::I64, &[1]), &gathered),
                (&t(DType::I64, &[2]), &Values::Int(vec![4, 32])),
            ],
            &t(DType::I64, &[3]),
        )
        .unwrap();
        assert_eq!(cat, Values::Int(vec![2048, 4, 32]));
    }

    #[test]
    fn broadcasting_where_and_slices() {
        let c = Values::Bool(vec![true, false]);
        let r = evaluate(
            &OpKind::Where,
            &[
                (&t(DType::Bool, &[2]), &c),
                (&t(DType::I64, &[2]), &Values::Int(vec![1, 2])),
                (&t(DType::I64, &[]), &Values::Int(vec![9])),
            ],
            &t(DType::I64, &[2]),
        );
        assert_eq!(r, Some(Values::Int(vec![1, 9])));
        let s = evaluate(
            &OpKind::Slice {
                starts: vec![-1],
                ends: vec![i64::MIN],
                steps: vec![-2],
            },
            &[(&t(DType::I64, &[5]), &Values::Int(vec![0, 1, 2, 3, 4]))],
            &t(DType::I64, &[3]),
        );
        assert_eq!(s, Some(Values::Int(vec![4, 2, 0])));
        let tr = evaluate(
            &OpKind::Trilu { upper: false, k: 0 },
            &[(&t(DType::I64, &[2, 2]), &Values::Int(vec![1, 1, 1, 1]))],
            &t(DType::I64, &[2, 2]),
        );
        assert_eq!(tr, Some(Values::Int(vec![1, 0, 1, 1])));
    }
}
