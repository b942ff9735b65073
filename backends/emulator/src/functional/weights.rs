//! Weights' values: read from `weights.bin`, and held as the placement stores them.

use lpuc_artifact::dataflow::{decode, DataValue};
use lpuc_ir::interp::Tensor;
use lpuc_ir::DType;

/// The values of weight `value` from the artifact's `weights.bin`.
pub fn load(value: &DataValue, blob: &[u8]) -> Result<Vec<f64>, String> {
    let stored = value
        .stored
        .ok_or_else(|| format!("weight '{}' has no values in weights.bin", value.name))?;
    let elements: u64 = value.shape.iter().product();
    let end = stored.offset.checked_add(stored.bytes);
    if stored.bytes != elements.saturating_mul(value.dtype.size_bytes())
        || end.is_none_or(|e| e > blob.len() as u64)
    {
        return Err(format!(
            "weight '{}': bytes {}..+{} of a {}-byte weights.bin do not hold {elements} {} values",
            value.name,
            stored.offset,
            stored.bytes,
            blob.len(),
            value.dtype
        ));
    }
    Ok(decode(
        value.dtype,
        &blob[stored.offset as usize..(stored.offset + stored.bytes) as usize],
    ))
}

/// `t` as a weight stored in `dtype` holds it: floats rounded; int8 symmetric with one scale per
/// index of the last axis (the largest magnitude maps to 127), dequantized back.
pub fn store_as(dtype: DType, t: &mut Tensor) {
    match dtype {
        DType::F32 | DType::F16 | DType::Bf16 => super::round_to(dtype, &mut t.data),
        DType::I8 => {
            let channels = t.dims.last().copied().unwrap_or(1).max(1);
            let mut scale = vec![0.0f64; channels];
            for (k, &x) in t.data.iter().enumerate() {
                scale[k % channels] = scale[k % channels].max(x.abs());
            }
            for s in &mut scale {
                *s /= 127.0;
            }
            for (k, x) in t.data.iter_mut().enumerate() {
                let s = scale[k % channels];
                if s > 0.0 {
                    *x = (*x / s).round().clamp(-127.0, 127.0) * s;
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_keeps_each_channel_within_half_a_step() {
        let mut t = Tensor {
            dims: vec![2, 2],
            data: vec![1.0, -0.01, 0.5, 0.02],
        };
        let before = t.data.clone();
        store_as(DType::I8, &mut t);
        // Column 0 has scale 1/127, column 1 0.02/127.
        for (k, (a, b)) in before.iter().zip(&t.data).enumerate() {
            let step = if k % 2 == 0 { 1.0 / 127.0 } else { 0.02 / 127.0 };
            assert!((a - b).abs() <= step / 2.0 + 1e-15, "{k}: {a} -> {b}");
        }
        assert_ne!(t.data, before);
    }
}
