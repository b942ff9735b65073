//! Reference kernels of quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
//! QLinearMatMul, from the ONNX definitions (round half to even, saturate to the integer type).

use super::tensor::Tensor;
use crate::DType;

/// The range of an integer type.
fn range(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

fn saturate(x: f64, dtype: DType) -> f64 {
    let (lo, hi) = range(dtype);
    x.round_ties_even().clamp(lo, hi)
}

/// The scale (or zero point) of element `f` of `x`: one value, or one per index of `axis`.
fn per_axis(p: Option<&Tensor>, x: &Tensor, axis: usize, f: usize, default: f64) -> Result<f64, String> {
    let Some(p) = p else { return Ok(default) };
    match p.data.len() {
        1 => Ok(p.data[0]),
        n if x.dims.get(axis) == Some(&n) => {
            let inner: usize = x.dims[axis + 1..].iter().product();
            Ok(p.data[(f / inner.max(1)) % n])
        }
        _ => Err(format!(
            "a scale or zero point of {:?} for an input of {:?} along axis {axis}",
            p.dims, x.dims
        )),
    }
}

/// QuantizeLinear: `saturate(round(x / scale) + zero_point)` in `to`.
pub fn quantize(
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    axis: usize,
    to: DType,
) -> Result<Tensor, String> {
    let data = (0..x.data.len())
        .map(|f| {
            let s = per_axis(Some(scale), x, axis, f, 1.0)?;
            let z = per_axis(zp, x, axis, f, 0.0)?;
            // In float32, as the definition divides (its rounding decides ties).
            let q = (x.data[f] as f32 / s as f32).round_ties_even();
            Ok(saturate(f64::from(q) + z, to))
        })
        .collect::<Result<_, String>>()?;
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

/// DequantizeLinear: `(x - zero_point) * scale`.
pub fn dequantize(x: &Tensor, scale: &Tensor, zp: Option<&Tensor>, axis: usize) -> Result<Tensor, String> {
    let data = (0..x.data.len())
        .map(|f| {
            let s = per_axis(Some(scale), x, axis, f, 1.0)?;
            let z = per_axis(zp, x, axis, f, 0.0)?;
            Ok((x.data[f] - z) * s)
        })
        .collect::<Result<_, String>>()?;
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

/// DynamicQuantizeLinear: uint8 `y`, its scale and zero point, from the data's range widened to
/// include zero. The definition computes in float32, whose rounding decides ties, so this does.
pub fn dynamic_quantize(x: &Tensor) -> Vec<Tensor> {
    let lo = x.data.iter().map(|&v| v as f32).fold(0.0f32, f32::min);
    let hi = x.data.iter().map(|&v| v as f32).fold(0.0f32, f32::max);
    let scale = (hi - lo) / 255.0;
    let zp = if scale > 0.0 {
        saturate(f64::from(-lo / scale), DType::U8)
    } else {
        0.0
    };
    let y = x
        .data
        .iter()
        .map(|&v| {
            if scale > 0.0 {
                saturate(f64::from((v as f32 / scale).round_ties_even()) + zp, DType::U8)
            } else {
                zp
            }
        })
        .collect();
    vec![
        Tensor {
            dims: x.dims.clone(),
            data: y,
        },
        Tensor::scalar(f64::from(scale)),
        Tensor::scalar(zp),
    ]
}

/// QLinearMatMul: the product of the dequantized operands, requantized to `y`'s scale and zero
/// point; scales and zero points are scalars or per row of `a` and per column of `b`.
pub fn qlinear_matmul(inputs: &[&Tensor], out: &[usize], dtype: DType) -> Result<Tensor, String> {
    let [a, a_s, a_z, b, b_s, b_z, y_s, y_z] = inputs else {
        return Err(format!("QLinearMatMul takes 8 inputs, given {}", inputs.len()));
    };
    let (ra, rb) = (a.dims.len(), b.dims.len());
    if ra < 2 || rb < 2 || out.len() < 2 {
        return Err("QLinearMatMul of a vector".into());
    }
    let (m, k, n) = (a.dims[ra - 2], a.dims[ra - 1], b.dims[rb - 1]);
    if b.dims[rb - 2] != k {
        return Err(format!("contraction {k} against {}", b.dims[rb - 2]));
    }
    let batch: usize = out[..out.len() - 2].iter().product();
    if m * n * batch == 0 {
        return Tensor::new(out.to_vec(), vec![]).ok_or_else(|| "QLinearMatMul of an empty result".into());
    }
    // Batch dims broadcast whole: each operand has every batch or one.
    let a_batch: usize = a.dims[..ra - 2].iter().product();
    let b_batch: usize = b.dims[..rb - 2].iter().product();
    if ![1, batch].contains(&a_batch) || ![1, batch].contains(&b_batch) {
        return Err(format!(
            "QLinearMatMul batches {:?} and {:?} broadcast in part",
            a.dims, b.dims
        ));
    }
    let pick = |t: &Tensor, i: usize| {
        if t.data.len() == 1 {
            t.data[0]
        } else {
            t.data[i % t.data.len()]
        }
    };
    let mut data = Vec::with_capacity(batch * m * n);
    for bt in 0..batch {
        let (ao, bo) = ((bt % a_batch) * m * k, (bt % b_batch) * k * n);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for kk in 0..k {
                    let av = a.data[ao + i * k + kk] - pick(a_z, i);
                    let bv = b.data[bo + kk * n + j] - pick(b_z, j);
                    acc += av * bv;
                }
                let real = acc * pick(a_s, i) * pick(b_s, j);
                data.push(saturate(
                    (real / pick(y_s, j)).round_ties_even() + pick(y_z, j),
                    dtype,
                ));
            }
        }
    }
    Tensor::new(out.to_vec(), data).ok_or_else(|| "QLinearMatMul result does not match its shape".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize], data: &[f64]) -> Tensor {
        Tensor::new(dims.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn quantization_rounds_half_to_even_and_saturates() {
        let x = t(&[4], &[0.0, 2.5, 3.5, 1000.0]);
        let q = quantize(&x, &t(&[], &[1.0]), Some(&t(&[], &[0.0])), 0, DType::I8).unwrap();
        assert_eq!(q.data, [0.0, 2.0, 4.0, 127.0]);
        let d = dequantize(
            &t(&[2], &[130.0, 128.0]),
            &t(&[], &[0.5]),
            Some(&t(&[], &[128.0])),
            0,
        )
        .unwrap();
        assert_eq!(d.data, [1.0, 0.0]);
        let dq = dynamic_quantize(&t(&[3], &[-1.0, 0.0, 2.0]));
        assert_eq!(dq[2].data, [85.0]);
        assert_eq!(dq[0].data[1], 85.0);
    }
}
