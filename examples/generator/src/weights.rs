//! How a parameter is stored: its element type on disk and the bytes of its deterministic values.
//!
//! Families describe values once (pseudo-random with a scale, or explicit f32s such as rotary tables)
//! and pick a storage type; this module turns that into ONNX elements. A description rather than a
//! vector lets sparse external weights skip computing values nobody will read (a 70B-shaped model
//! has 69e9 of them).

use crate::builder::pseudo_random;
use onnx_protobuf::tensor_proto::DataType;

/// The element type parameters are stored as; graphs always compute in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightDtype {
    /// Stored and used as float32.
    F32,
    /// Stored as float16 and widened by a `Cast(to = FLOAT)` right before use.
    F16,
    /// Stored as int8 with a per-tensor scale and widened by `DequantizeLinear` (opset 13 or later).
    I8,
}

impl WeightDtype {
    /// The ONNX element type of the stored tensor.
    pub fn data_type(self) -> DataType {
        match self {
            WeightDtype::F32 => DataType::FLOAT,
            WeightDtype::F16 => DataType::FLOAT16,
            WeightDtype::I8 => DataType::INT8,
        }
    }

    /// Bytes per stored element.
    pub fn bytes(self) -> u64 {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::F16 => 2,
            WeightDtype::I8 => 1,
        }
    }

    /// The spelling used on the command line (`f32`, `f16`, `i8`).
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::I8 => "i8",
        }
    }

    /// Parses a command-line spelling.
    pub fn parse(s: &str) -> Option<WeightDtype> {
        match s {
            "f32" | "float32" | "fp32" => Some(WeightDtype::F32),
            "f16" | "float16" | "fp16" => Some(WeightDtype::F16),
            "i8" | "int8" => Some(WeightDtype::I8),
            _ => None,
        }
    }
}

/// The values of one parameter, before conversion to its storage type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Uniform in `[center - amplitude, center + amplitude)`, seeded by the tensor's name.
    Uniform { center: f32, amplitude: f32 },
    /// Explicit values, row-major.
    Explicit(Vec<f32>),
}

impl Values {
    /// A weight matrix or bias: uniform in `[-1, 1) / sqrt(fan_in)`.
    pub fn fan_in(fan_in: i64) -> Values {
        Values::Uniform {
            center: 0.0,
            amplitude: 1.0 / (fan_in as f32).sqrt(),
        }
    }

    /// A normalisation scale: 1 ± 0.05.
    pub fn norm_scale() -> Values {
        Values::Uniform {
            center: 1.0,
            amplitude: 0.05,
        }
    }

    /// A normalisation shift: 0 ± 0.05.
    pub fn norm_bias() -> Values {
        Values::Uniform {
            center: 0.0,
            amplitude: 0.05,
        }
    }

    /// The largest magnitude any value can have, known without computing them (for the int8 scale).
    fn bound(&self) -> f32 {
        match self {
            Values::Uniform { center, amplitude } => center.abs() + amplitude,
            Values::Explicit(v) => v.iter().fold(0.0f32, |m, x| m.max(x.abs())),
        }
    }

    fn compute(&self, name: &str, count: usize) -> Vec<f32> {
        match self {
            Values::Uniform { center, amplitude } => pseudo_random(name, count, *center, *amplitude),
            Values::Explicit(v) => {
                debug_assert_eq!(v.len(), count, "{name}");
                v.clone()
            }
        }
    }
}

/// The int8 scale for `values`: symmetric, so the zero point is 0 and ±bound maps to ±127.
pub fn int8_scale(values: &Values) -> f32 {
    let bound = values.bound();
    if bound > 0.0 {
        bound / 127.0
    } else {
        1.0
    }
}

/// The little-endian stored bytes of `count` elements of `values` in `dtype`.
pub fn stored_bytes(name: &str, count: usize, values: &Values, dtype: WeightDtype) -> Vec<u8> {
    let v = values.compute(name, count);
    match dtype {
        WeightDtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        WeightDtype::F16 => v.iter().flat_map(|&x| f32_to_f16_bits(x).to_le_bytes()).collect(),
        WeightDtype::I8 => {
            let scale = int8_scale(values);
            v.iter()
                .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8)
                .collect()
        }
    }
}

/// IEEE 754 binary16 bits of `x`, rounded to nearest even (what numpy's `astype(float16)` does).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x007f_ffff;
    if exp == 0xff {
        let nan = if mant != 0 { 0x0200 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    // Exponent rebiased from 127 to 15.
    let e = exp - 112;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal in f16 (or zero): the value is m * 2^-24 with the implicit bit made explicit.
        if e < -10 {
            return sign;
        }
        let m = mant | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let truncated = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    let round_up = rest > 0x1000 || (rest == 0x1000 && truncated & 1 == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (truncated + u32::from(round_up)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_ieee() {
        let cases: [(f32, u16); 10] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.5, 0x3800),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00),
            (f32::INFINITY, 0x7c00),
            (1.0 / 16_777_216.0, 0x0001),
            (1023.0 / 16_777_216.0, 0x03ff),
        ];
        for (x, bits) in cases {
            assert_eq!(f32_to_f16_bits(x), bits, "{x}");
        }
        // Ties round to even: 1 + 2^-11 lies halfway between 1 and the next f16.
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 / 2048.0), 0x3c02);
        assert!(f32_to_f16_bits(f32::NAN) & 0x7c00 == 0x7c00 && f32_to_f16_bits(f32::NAN) & 0x3ff != 0);
    }

    #[test]
    fn stored_sizes_follow_dtype() {
        let v = Values::fan_in(16);
        assert_eq!(stored_bytes("w", 10, &v, WeightDtype::F32).len(), 40);
        assert_eq!(stored_bytes("w", 10, &v, WeightDtype::F16).len(), 20);
        assert_eq!(stored_bytes("w", 10, &v, WeightDtype::I8).len(), 10);
    }

    #[test]
    fn int8_uses_the_whole_range_symmetrically() {
        let v = Values::Uniform {
            center: 0.0,
            amplitude: 0.25,
        };
        let q: Vec<i8> = stored_bytes("w", 4096, &v, WeightDtype::I8)
            .into_iter()
            .map(|b| b as i8)
            .collect();
        assert!(q.iter().all(|&x| x != i8::MIN));
        assert!(q.iter().any(|&x| x > 120) && q.iter().any(|&x| x < -120));
        assert_eq!(int8_scale(&v), 0.25 / 127.0);
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in [WeightDtype::F32, WeightDtype::F16, WeightDtype::I8] {
            assert_eq!(WeightDtype::parse(d.name()), Some(d));
        }
        assert_eq!(WeightDtype::parse("bf16"), None);
    }
}
