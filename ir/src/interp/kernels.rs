//! One reference kernel per op kind, written from the ONNX definitions: whole tensors in, whole
//! tensors out, the output shapes taken from the graph (shape inference already decided them).

use super::tensor::Tensor;
use crate::{BinaryOp, DType, OpKind, ReduceOp, UnaryOp};

/// Why a kernel could not run.
pub(super) enum KernelError {
    /// No reference kernel for this op kind yet.
    Unsupported,
    /// The operands do not fit the op.
    Invalid(String),
}

type Result<T> = std::result::Result<T, KernelError>;

fn invalid(reason: impl Into<String>) -> KernelError {
    KernelError::Invalid(reason.into())
}

fn count(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Run `kind` on `inputs`, producing tensors of `outs` (dims and dtype of each result).
pub(super) fn run(kind: &OpKind, inputs: &[&Tensor], outs: &[(Vec<usize>, DType)]) -> Result<Vec<Tensor>> {
    let out = outs.first().map(|(d, _)| d.clone()).unwrap_or_default();
    let dtype = outs.first().map_or(DType::F32, |&(_, t)| t);
    let arg = |k: usize| {
        inputs
            .get(k)
            .copied()
            .ok_or_else(|| invalid(format!("missing input {k}")))
    };
    let one = |t: Tensor| Ok(vec![t]);
    match kind {
        OpKind::Binary(b) => one(elementwise(&out, &[arg(0)?, arg(1)?], |x| {
            binary(*b, x[0], x[1], dtype)
        })),
        OpKind::Unary(u) => one(map(arg(0)?, &out, |x| unary(*u, x))),
        OpKind::Where => one(elementwise(&out, &[arg(0)?, arg(1)?, arg(2)?], |x| {
            if x[0] != 0.0 {
                x[1]
            } else {
                x[2]
            }
        })),
        OpKind::Cast { to } => one(map(arg(0)?, &out, |x| cast(x, *to))),
        OpKind::MatMul => one(matmul(arg(0)?, arg(1)?, &out)?),
        OpKind::MatMulT => {
            let b = arg(1)?;
            let r = b.dims.len();
            if r < 2 {
                return Err(invalid("MatMulT of a vector"));
            }
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            one(matmul(arg(0)?, &transpose(b, &perm), &out)?)
        }
        OpKind::MatMulBias { act } => {
            let product = matmul(arg(0)?, arg(1)?, &out)?;
            let biased = elementwise(&out, &[&product, arg(2)?], |x| x[0] + x[1]);
            match act {
                Some(u) => one(map(&biased, &out, |x| unary(*u, x))),
                None => one(biased),
            }
        }
        OpKind::Gemm {
            trans_a,
            trans_b,
            alpha,
            beta,
        } => one(gemm(
            inputs,
            *trans_a,
            *trans_b,
            f64::from(*alpha),
            f64::from(*beta),
            &out,
        )?),
        OpKind::Softmax { axis, log } => match inputs.get(1) {
            Some(mask) => {
                let x = arg(0)?;
                let masked = elementwise(&x.dims, &[x, mask], |v| v[0] + v[1]);
                one(softmax(&masked, *axis, *log))
            }
            None => one(softmax(arg(0)?, *axis, *log)),
        },
        OpKind::LayerNorm { axis, epsilon, stats } => {
            layer_norm(inputs, *axis, f64::from(*epsilon), *stats, outs)
        }
        OpKind::RmsNorm { axis, epsilon } => one(rms_norm(arg(0)?, arg(1)?, *axis, f64::from(*epsilon))),
        OpKind::Reduce { op, axes, .. } => one(reduce(arg(0)?, *op, axes, &out)),
        OpKind::Reshape { .. } => one(Tensor {
            dims: out,
            data: arg(0)?.data.clone(),
        }),
        OpKind::Transpose { perm } => one(transpose(arg(0)?, perm)),
        OpKind::Concat { axis } => one(concat(inputs, *axis, &out)),
        OpKind::Slice { starts, ends, steps } => one(slice(arg(0)?, starts, ends, steps, &out)?),
        OpKind::Gather { axis } => one(gather(arg(0)?, arg(1)?, *axis, &out)?),
        OpKind::Expand { .. } => one(elementwise(&out, &[arg(0)?], |x| x[0])),
        OpKind::Tile { .. } => {
            let x = arg(0)?;
            one(Tensor {
                data: (0..count(&out))
                    .map(|f| {
                        let idx = Tensor::unravel(f, &out);
                        let src: Vec<usize> = idx.iter().zip(&x.dims).map(|(&i, &d)| i % d).collect();
                        x.data[flat(&src, &x.dims)]
                    })
                    .collect(),
                dims: out,
            })
        }
        OpKind::Trilu { upper, k } => {
            let x = arg(0)?;
            let r = x.dims.len();
            if r < 2 {
                return Err(invalid("Trilu needs two dims"));
            }
            one(Tensor {
                data: x
                    .data
                    .iter()
                    .enumerate()
                    .map(|(f, &v)| {
                        let idx = Tensor::unravel(f, &x.dims);
                        let d = idx[r - 1] as i64 - idx[r - 2] as i64;
                        let keep = if *upper { d >= *k } else { d <= *k };
                        if keep {
                            v
                        } else {
                            0.0
                        }
                    })
                    .collect(),
                dims: x.dims.clone(),
            })
        }
        OpKind::CumSum {
            axis,
            exclusive,
            reverse,
        } => one(cumsum(arg(0)?, *axis, *exclusive, *reverse)),
        OpKind::Conv { window, group } => {
            one(
                super::windows::conv(arg(0)?, arg(1)?, inputs.get(2).copied(), window, *group, &out)
                    .map_err(invalid)?,
            )
        }
        OpKind::Pool {
            kind: kind @ (crate::PoolKind::Max | crate::PoolKind::Average { .. }),
            window,
        } => one(super::windows::pool(arg(0)?, *kind, window, &out).map_err(invalid)?),
        OpKind::ArgReduce {
            max,
            axis,
            select_last,
            ..
        } => one(super::along::arg_reduce(arg(0)?, *axis, *max, *select_last, &out).map_err(invalid)?),
        OpKind::Hardmax { axis } => one(super::along::hardmax(arg(0)?, *axis).map_err(invalid)?),
        OpKind::GatherElements { axis } => {
            one(super::along::gather_elements(arg(0)?, arg(1)?, *axis).map_err(invalid)?)
        }
        OpKind::TopK { axis, k, largest } => {
            let (v, i) = super::indexing::top_k(arg(0)?, *axis, *k as usize, *largest).map_err(invalid)?;
            Ok(vec![v, i])
        }
        OpKind::OneHot { axis, depth } => {
            one(super::indexing::one_hot(arg(0)?, arg(1)?, *axis, *depth as usize, &out).map_err(invalid)?)
        }
        OpKind::GatherNd { batch_dims } => {
            one(super::indexing::gather_nd(arg(0)?, arg(1)?, *batch_dims, &out).map_err(invalid)?)
        }
        OpKind::ScatterNd { reduction } => {
            one(super::indexing::scatter_nd(arg(0)?, arg(1)?, arg(2)?, *reduction).map_err(invalid)?)
        }
        OpKind::ScatterElements { axis, reduction } => {
            one(
                super::indexing::scatter_elements(arg(0)?, arg(1)?, arg(2)?, *axis, *reduction)
                    .map_err(invalid)?,
            )
        }
        OpKind::Quantize { axis, to } => {
            one(
                super::quant::quantize(arg(0)?, arg(1)?, inputs.get(2).copied(), *axis, *to)
                    .map_err(invalid)?,
            )
        }
        OpKind::Dequantize { axis } => {
            one(super::quant::dequantize(arg(0)?, arg(1)?, inputs.get(2).copied(), *axis).map_err(invalid)?)
        }
        OpKind::DynamicQuantize => Ok(super::quant::dynamic_quantize(arg(0)?)),
        OpKind::QLinearMatMul => one(super::quant::qlinear_matmul(inputs, &out, dtype).map_err(invalid)?),
        OpKind::InstanceNorm { epsilon } => {
            let c = arg(0)?.dims.get(1).copied().unwrap_or(1);
            let y = super::windows::group_norm(arg(0)?, arg(1)?, arg(2)?, c, f64::from(*epsilon));
            one(y.map_err(invalid)?)
        }
        OpKind::GroupNorm { groups, epsilon } => {
            one(
                super::windows::group_norm(arg(0)?, arg(1)?, arg(2)?, *groups as usize, f64::from(*epsilon))
                    .map_err(invalid)?,
            )
        }
        OpKind::ConvTranspose { window, group, .. } => one(super::windows::conv_transpose(
            arg(0)?,
            arg(1)?,
            inputs.get(2).copied(),
            window,
            *group,
            &out,
        )
        .map_err(invalid)?),
        OpKind::Pool {
            kind: crate::PoolKind::MaxWithIndices { column_major },
            window,
        } => {
            let (v, i) = super::windows::max_pool_with_indices(arg(0)?, window, *column_major, &out)
                .map_err(invalid)?;
            Ok(vec![v, i])
        }
        OpKind::Resize { sampling, .. } => match super::resize::resize(arg(0)?, sampling, &out) {
            Some(t) => one(t),
            None => Err(KernelError::Unsupported),
        },
        OpKind::Pad { pads, mode } => one(super::windows::pad(arg(0)?, pads, *mode, &out).map_err(invalid)?),
        OpKind::BatchNorm { epsilon } => {
            one(super::windows::batch_norm(inputs, f64::from(*epsilon)).map_err(invalid)?)
        }
        _ => Err(KernelError::Unsupported),
    }
}

/// Flat position of `idx` in `dims`.
fn flat(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(Tensor::strides(dims)).map(|(&i, s)| i * s).sum()
}

/// `f` over the operands broadcast to `out`.
fn elementwise(out: &[usize], operands: &[&Tensor], f: impl Fn(&[f64]) -> f64) -> Tensor {
    let mut args = vec![0.0; operands.len()];
    let data = (0..count(out))
        .map(|p| {
            let idx = Tensor::unravel(p, out);
            for (a, t) in args.iter_mut().zip(operands) {
                *a = t.at_broadcast(&idx);
            }
            f(&args)
        })
        .collect();
    Tensor {
        dims: out.to_vec(),
        data,
    }
}

fn map(x: &Tensor, out: &[usize], f: impl Fn(f64) -> f64) -> Tensor {
    Tensor {
        dims: out.to_vec(),
        data: x.data.iter().map(|&v| f(v)).collect(),
    }
}

fn is_integer(t: DType) -> bool {
    !t.is_float() && t != DType::Bool
}

fn truth(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

fn binary(op: BinaryOp, x: f64, y: f64, dtype: DType) -> f64 {
    use BinaryOp::*;
    match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        // Integer division truncates toward zero, as ONNX's integer Div.
        Div if is_integer(dtype) => (x / y).trunc(),
        Div => x / y,
        Pow => x.powf(y),
        Min => x.min(y),
        Max => x.max(y),
        Mod { fmod: true } => x - (x / y).trunc() * y,
        Mod { fmod: false } => x - (x / y).floor() * y,
        And => truth(x != 0.0 && y != 0.0),
        Or => truth(x != 0.0 || y != 0.0),
        Xor => truth((x != 0.0) != (y != 0.0)),
        Equal => truth(x == y),
        Less => truth(x < y),
        Greater => truth(x > y),
        LessOrEqual => truth(x <= y),
        GreaterOrEqual => truth(x >= y),
        PRelu => {
            if x < 0.0 {
                y * x
            } else {
                x
            }
        }
    }
}

/// The error function, by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7: below a
/// float32 ulp near 1, which is as exact as a reference for float32 models needs).
pub fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x < 0.0 {
        -y
    } else {
        y
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

/// `op` applied to one value, as ONNX defines it.
pub fn unary(op: UnaryOp, x: f64) -> f64 {
    use UnaryOp::*;
    match op {
        Relu => x.max(0.0),
        Gelu { tanh: true } => {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044_715 * x * x * x)).tanh())
        }
        Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Erf => erf(x),
        Tanh => x.tanh(),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Sqrt => x.sqrt(),
        Reciprocal => 1.0 / x,
        Neg => -x,
        Abs => x.abs(),
        Exp => x.exp(),
        Log => x.ln(),
        Sin => x.sin(),
        Cos => x.cos(),
        Tan => x.tan(),
        Floor => x.floor(),
        Ceil => x.ceil(),
        // Halves to even, as ONNX's Round.
        Round => x.round_ties_even(),
        Sign => {
            if x == 0.0 {
                0.0
            } else {
                x.signum()
            }
        }
        Softplus => softplus(x),
        HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        HardSigmoid { alpha, beta } => (f64::from(alpha) * x + f64::from(beta)).clamp(0.0, 1.0),
        LeakyRelu { alpha } => {
            if x < 0.0 {
                f64::from(alpha) * x
            } else {
                x
            }
        }
        Elu { alpha } => {
            if x < 0.0 {
                f64::from(alpha) * x.exp_m1()
            } else {
                x
            }
        }
        Clip { min, max } => x.max(min).min(max),
        Not => truth(x == 0.0),
        IsNaN => truth(x.is_nan()),
        IsInf { negative, positive } => {
            truth((negative && x == f64::NEG_INFINITY) || (positive && x == f64::INFINITY))
        }
        Selu { alpha, gamma } => {
            let y = if x > 0.0 { x } else { f64::from(alpha) * x.exp_m1() };
            f64::from(gamma) * y
        }
        ThresholdedRelu { alpha } => {
            if x > f64::from(alpha) {
                x
            } else {
                0.0
            }
        }
        Acos => x.acos(),
        Asin => x.asin(),
        Atan => x.atan(),
        Acosh => x.acosh(),
        Asinh => x.asinh(),
        Atanh => x.atanh(),
        Sinh => x.sinh(),
        Cosh => x.cosh(),
        Softsign => x / (1.0 + x.abs()),
        Mish => x * softplus(x).tanh(),
        Celu { alpha } => {
            let a = f64::from(alpha);
            x.max(0.0) + (a * (x / a).exp_m1()).min(0.0)
        }
        Shrink { bias, lambd } => {
            let (b, l) = (f64::from(bias), f64::from(lambd));
            if x < -l {
                x + b
            } else if x > l {
                x - b
            } else {
                0.0
            }
        }
    }
}

/// A value converted to `to`: booleans to 0/1, floats to integers truncated toward zero (float
/// rounding to f16/bf16 is not modelled).
fn cast(x: f64, to: DType) -> f64 {
    match to {
        DType::Bool => truth(x != 0.0),
        t if is_integer(t) => x.trunc(),
        _ => x,
    }
}

/// Numpy matmul: 1-D operands are promoted (a row, a column) and the promoted dim dropped; batch
/// dims broadcast.
fn matmul(a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Tensor> {
    let ad: Vec<usize> = if a.dims.len() == 1 {
        vec![1, a.dims[0]]
    } else {
        a.dims.clone()
    };
    let bd: Vec<usize> = if b.dims.len() == 1 {
        vec![b.dims[0], 1]
    } else {
        b.dims.clone()
    };
    if ad.len() < 2 || bd.len() < 2 {
        return Err(invalid("matmul of a scalar"));
    }
    let (m, k) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (k2, n) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    if k != k2 {
        return Err(invalid(format!("contraction {k} against {k2}")));
    }
    let a2 = Tensor {
        dims: ad.clone(),
        data: a.data.clone(),
    };
    let b2 = Tensor {
        dims: bd.clone(),
        data: b.data.clone(),
    };
    let rank = ad.len().max(bd.len());
    let batch: Vec<usize> = (0..rank - 2)
        .map(|i| {
            let pick = |d: &[usize]| {
                let off = rank - d.len();
                if i >= off {
                    d[i - off]
                } else {
                    1
                }
            };
            pick(&ad).max(pick(&bd))
        })
        .collect();
    let mut full = batch.clone();
    full.extend([m, n]);
    let mut data = vec![0.0; count(&full)];
    // Per batch position, the offset of its matrix in each operand (a size-1 batch dim
    // broadcasts); then a plain product, each sum in contraction order.
    let offset = |d: &[usize], idx: &[usize]| -> usize {
        let strides = Tensor::strides(d);
        let off = rank - d.len();
        (0..d.len() - 2)
            .map(|a| if d[a] == 1 { 0 } else { idx[a + off] * strides[a] })
            .sum()
    };
    for bpos in 0..count(&batch) {
        let idx = Tensor::unravel(bpos, &batch);
        let (ao, bo) = (offset(&ad, &idx), offset(&bd, &idx));
        let rows = &mut data[bpos * m * n..(bpos + 1) * m * n];
        for i in 0..m {
            let row = &mut rows[i * n..(i + 1) * n];
            for kk in 0..k {
                let av = a2.data[ao + i * k + kk];
                let brow = &b2.data[bo + kk * n..bo + (kk + 1) * n];
                for (slot, &bv) in row.iter_mut().zip(brow) {
                    *slot += av * bv;
                }
            }
        }
    }
    if count(&full) != count(out) {
        return Err(invalid("matmul result does not match its declared shape"));
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

fn gemm(inputs: &[&Tensor], ta: bool, tb: bool, alpha: f64, beta: f64, out: &[usize]) -> Result<Tensor> {
    let (a, b) = match inputs {
        [a, b, ..] => (a, b),
        _ => return Err(invalid("Gemm needs A and B")),
    };
    let at = |i: usize, j: usize| {
        if ta {
            a.data[j * a.dims[1] + i]
        } else {
            a.data[i * a.dims[1] + j]
        }
    };
    let bt = |i: usize, j: usize| {
        if tb {
            b.data[j * b.dims[1] + i]
        } else {
            b.data[i * b.dims[1] + j]
        }
    };
    let (m, n) = (out[0], out[1]);
    let k = if ta { a.dims[0] } else { a.dims[1] };
    let mut data = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|kk| at(i, kk) * bt(kk, j)).sum();
            let c = inputs.get(2).map_or(0.0, |c| c.at_broadcast(&[i, j]));
            data[i * n + j] = alpha * dot + beta * c;
        }
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// The flat positions of each lane along `axis` (every other index fixed).
fn lanes(dims: &[usize], axis: usize) -> Vec<Vec<usize>> {
    let strides = Tensor::strides(dims);
    let len = dims[axis];
    (0..count(dims))
        .filter(|&p| Tensor::unravel(p, dims)[axis] == 0)
        .map(|p| (0..len).map(|i| p + i * strides[axis]).collect())
        .collect()
}

fn softmax(x: &Tensor, axis: usize, log: bool) -> Tensor {
    let mut data = x.data.clone();
    for lane in lanes(&x.dims, axis) {
        let max = lane.iter().map(|&p| x.data[p]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = lane.iter().map(|&p| (x.data[p] - max).exp()).sum();
        for &p in &lane {
            data[p] = if log {
                x.data[p] - max - sum.ln()
            } else {
                (x.data[p] - max).exp() / sum
            };
        }
    }
    Tensor {
        dims: x.dims.clone(),
        data,
    }
}

/// The groups of flat positions normalised together: everything from `axis` on.
fn norm_groups(dims: &[usize], axis: usize) -> Vec<std::ops::Range<usize>> {
    let size: usize = dims[axis..].iter().product();
    (0..count(dims) / size.max(1))
        .map(|g| g * size..(g + 1) * size)
        .collect()
}

fn layer_norm(
    inputs: &[&Tensor],
    axis: usize,
    eps: f64,
    stats: bool,
    outs: &[(Vec<usize>, DType)],
) -> Result<Vec<Tensor>> {
    let (x, scale) = match inputs {
        [x, s, ..] => (x, s),
        _ => return Err(invalid("LayerNorm needs x and scale")),
    };
    let bias = inputs.get(2);
    let mut data = vec![0.0; x.data.len()];
    let (mut means, mut inv) = (Vec::new(), Vec::new());
    for group in norm_groups(&x.dims, axis) {
        let n = group.len() as f64;
        let mean = x.data[group.clone()].iter().sum::<f64>() / n;
        let var = x.data[group.clone()]
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / n;
        let r = 1.0 / (var + eps).sqrt();
        for p in group {
            let idx = Tensor::unravel(p, &x.dims);
            let y = (x.data[p] - mean) * r * scale.at_broadcast(&idx);
            data[p] = y + bias.map_or(0.0, |b| b.at_broadcast(&idx));
        }
        means.push(mean);
        inv.push(r);
    }
    let mut results = vec![Tensor {
        dims: x.dims.clone(),
        data,
    }];
    if stats {
        for values in [means, inv] {
            let dims = outs
                .get(results.len())
                .map(|(d, _)| d.clone())
                .unwrap_or_default();
            results.push(Tensor { dims, data: values });
        }
    }
    Ok(results)
}

fn rms_norm(x: &Tensor, scale: &Tensor, axis: usize, eps: f64) -> Tensor {
    let mut data = vec![0.0; x.data.len()];
    for group in norm_groups(&x.dims, axis) {
        let n = group.len() as f64;
        let ms = x.data[group.clone()].iter().map(|v| v * v).sum::<f64>() / n;
        let r = 1.0 / (ms + eps).sqrt();
        for p in group {
            let idx = Tensor::unravel(p, &x.dims);
            data[p] = x.data[p] * r * scale.at_broadcast(&idx);
        }
    }
    Tensor {
        dims: x.dims.clone(),
        data,
    }
}

fn reduce(x: &Tensor, op: ReduceOp, axes: &[usize], out: &[usize]) -> Tensor {
    // Reduce into the keep-dims shape; dropping size-1 dims keeps the same flat order.
    let kept: Vec<usize> = x
        .dims
        .iter()
        .enumerate()
        .map(|(k, &d)| if axes.contains(&k) { 1 } else { d })
        .collect();
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); count(&kept)];
    for (p, &v) in x.data.iter().enumerate() {
        let mut idx = Tensor::unravel(p, &x.dims);
        for &a in axes {
            idx[a] = 0;
        }
        groups[flat(&idx, &kept)].push(v);
    }
    let data = groups
        .iter()
        .map(|g| {
            let sum = |f: &dyn Fn(f64) -> f64| g.iter().map(|&v| f(v)).sum::<f64>();
            match op {
                ReduceOp::Sum => sum(&|v| v),
                ReduceOp::Mean => sum(&|v| v) / g.len().max(1) as f64,
                ReduceOp::Max => g.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                ReduceOp::Min => g.iter().copied().fold(f64::INFINITY, f64::min),
                ReduceOp::Prod => g.iter().product(),
                ReduceOp::L1 => sum(&|v| v.abs()),
                ReduceOp::L2 => sum(&|v| v * v).sqrt(),
                ReduceOp::SumSquare => sum(&|v| v * v),
                ReduceOp::LogSum => sum(&|v| v).ln(),
                ReduceOp::LogSumExp => {
                    let m = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    m + sum(&|v| (v - m).exp()).ln()
                }
            }
        })
        .collect();
    Tensor {
        dims: out.to_vec(),
        data,
    }
}

fn transpose(x: &Tensor, perm: &[usize]) -> Tensor {
    let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
    let data = (0..x.data.len())
        .map(|f| {
            let out_idx = Tensor::unravel(f, &dims);
            let mut src = vec![0; perm.len()];
            for (k, &p) in perm.iter().enumerate() {
                src[p] = out_idx[k];
            }
            x.data[flat(&src, &x.dims)]
        })
        .collect();
    Tensor { dims, data }
}

fn concat(inputs: &[&Tensor], axis: usize, out: &[usize]) -> Tensor {
    let data = (0..count(out))
        .map(|f| {
            let mut idx = Tensor::unravel(f, out);
            for t in inputs {
                if idx[axis] < t.dims[axis] {
                    return t.data[flat(&idx, &t.dims)];
                }
                idx[axis] -= t.dims[axis];
            }
            f64::NAN
        })
        .collect();
    Tensor {
        dims: out.to_vec(),
        data,
    }
}

fn slice(x: &Tensor, starts: &[i64], ends: &[i64], steps: &[i64], out: &[usize]) -> Result<Tensor> {
    if starts.len() != x.dims.len() || ends.len() != x.dims.len() || steps.len() != x.dims.len() {
        return Err(invalid("a slice needs one start, end and step per dim"));
    }
    // The source positions along each dim, as ONNX Slice-13 defines them: a negative start or
    // end counts from the end; with a positive step both clamp to [0, d], with a negative one the
    // start to [0, d-1] and the end to [-1, d-1].
    let picks: Vec<Vec<usize>> = (0..x.dims.len())
        .map(|k| {
            let d = x.dims[k] as i64;
            let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
            let step = steps[k];
            let (mut i, end) = if step > 0 {
                (norm(starts[k]).clamp(0, d), norm(ends[k]).clamp(0, d))
            } else {
                (
                    norm(starts[k]).clamp(0, (d - 1).max(0)),
                    norm(ends[k]).clamp(-1, d - 1),
                )
            };
            let mut v = Vec::new();
            while d > 0 && ((step > 0 && i < end) || (step < 0 && i > end)) {
                v.push(i as usize);
                i += step;
            }
            v
        })
        .collect();
    let got: Vec<usize> = picks.iter().map(Vec::len).collect();
    if got != out {
        return Err(invalid(format!("slice gives {got:?}, declared {out:?}")));
    }
    let data = (0..count(out))
        .map(|f| {
            let idx = Tensor::unravel(f, out);
            let src: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| picks[k][i]).collect();
            x.data[flat(&src, &x.dims)]
        })
        .collect();
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

fn gather(x: &Tensor, indices: &Tensor, axis: usize, out: &[usize]) -> Result<Tensor> {
    let len = x.dims[axis] as i64;
    let ir = indices.dims.len();
    let mut data = Vec::with_capacity(count(out));
    for f in 0..count(out) {
        let idx = Tensor::unravel(f, out);
        let at = idx[axis..axis + ir].to_vec();
        let raw = indices.data[flat(&at, &indices.dims)] as i64;
        let i = if raw < 0 { raw + len } else { raw };
        if !(0..len).contains(&i) {
            return Err(invalid(format!("index {raw} out of range for a dim of {len}")));
        }
        let mut src: Vec<usize> = idx[..axis].to_vec();
        src.push(i as usize);
        src.extend_from_slice(&idx[axis + ir..]);
        data.push(x.data[flat(&src, &x.dims)]);
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

fn cumsum(x: &Tensor, axis: usize, exclusive: bool, reverse: bool) -> Tensor {
    let mut data = x.data.clone();
    for mut lane in lanes(&x.dims, axis) {
        if reverse {
            lane.reverse();
        }
        let mut acc = 0.0;
        for &p in &lane {
            let v = x.data[p];
            data[p] = if exclusive { acc } else { acc + v };
            acc += v;
        }
    }
    Tensor {
        dims: x.dims.clone(),
        data,
    }
}
