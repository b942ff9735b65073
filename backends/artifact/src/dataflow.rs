//! The dataflow: what each buffer of the schedule holds and what each instruction computes, so the
//! schedule can be executed on real tensors (`lpuc emulate --inputs`), not only timed.
//!
//! The schedule says where and when; this file says what. Every buffer holds a box (`region`, a
//! half-open range per axis) of one value of the scheduled graph; a partial sum holds the whole box
//! but only part of the sum. Every instruction is one of three things:
//! - [`Step::Op`]: an op of the graph, computed on its chip's buffers. Reads hold boxes of the op's
//!   operands, the write a box of its result; what a read does not hold counts as zero (so a
//!   matrix product over a slice of the contraction axis makes that slice's partial sum);
//! - [`Step::Copy`]: each write's box copied from the reads holding it (a cut or an assembly);
//! - [`Step::Sum`]: the write's box summed over every read (a reduction of partial sums).
//!
//! Transfers copy their buffer whole and need no entry. Weights' values are in `weights.bin`
//! (little-endian, in each value's dtype) when the artifact was compiled with `--embed-weights`.

use lpuc_ir::{DType, OpKind};
use serde::{Deserialize, Serialize};

/// Version of the dataflow layout; bump on any incompatible change.
pub const DATAFLOW_FORMAT: u32 = 1;

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Input,
    Weight,
    Computed,
}

/// Where a weight's values are stored in `weights.bin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    pub offset: u64,
    pub bytes: u64,
}

/// A value of the scheduled graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataValue {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub role: Role,
    /// A weight's values in `weights.bin`, when embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Stored>,
}

/// An op of the scheduled graph, by value index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataOp {
    pub kind: OpKind,
    pub inputs: Vec<u32>,
    pub outputs: Vec<u32>,
}

/// The box of a value one buffer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holding {
    pub value: u32,
    /// `[lo, hi)` per axis of the value.
    pub region: Vec<[u64; 2]>,
}

/// What one instruction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "step")]
pub enum Step {
    Op { op: u32 },
    Copy,
    Sum,
}

/// Where the weights' values are, as the manifest states it too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightSource {
    /// In the artifact's `weights.bin`.
    Embedded,
    /// Not in the artifact: it can be timed, not executed.
    NotEmbedded,
}

/// The whole dataflow of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataflow {
    pub format: u32,
    pub weights: WeightSource,
    pub values: Vec<DataValue>,
    pub ops: Vec<DataOp>,
    /// Graph inputs and outputs, in order (value indices).
    pub inputs: Vec<u32>,
    pub outputs: Vec<u32>,
    /// One per schedule buffer, same order.
    pub buffers: Vec<Holding>,
    /// One per schedule instruction, same order.
    pub steps: Vec<Step>,
}

impl Holding {
    /// The whole of value `value` of `shape`.
    pub fn whole(value: u32, shape: &[u64]) -> Holding {
        Holding {
            value,
            region: shape.iter().map(|&d| [0, d]).collect(),
        }
    }
}

/// Little-endian bytes of `values` in `dtype` (floats rounded to it, integers saturated to its
/// range).
pub fn encode(dtype: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size_bytes() as usize);
    for &x in values {
        match dtype {
            DType::F32 => out.extend((x as f32).to_le_bytes()),
            DType::F16 => out.extend(f16_bits(x).to_le_bytes()),
            DType::Bf16 => out.extend(bf16_bits(x).to_le_bytes()),
            DType::I8 => out.push(x as i8 as u8),
            DType::U8 | DType::Bool => out.push(x as u8),
            DType::I32 => out.extend((x as i32).to_le_bytes()),
            DType::I64 => out.extend((x as i64).to_le_bytes()),
        }
    }
    out
}

/// The values `encode` wrote.
pub fn decode(dtype: DType, bytes: &[u8]) -> Vec<f64> {
    let w = dtype.size_bytes() as usize;
    bytes
        .chunks_exact(w)
        .map(|c| match dtype {
            DType::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::F16 => f16_value(u16::from_le_bytes([c[0], c[1]])),
            DType::Bf16 => f64::from(f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)),
            DType::I8 => f64::from(c[0] as i8),
            DType::U8 | DType::Bool => f64::from(c[0]),
            DType::I32 => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DType::I64 => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64,
        })
        .collect()
}

/// IEEE half bits of `x`, rounded to nearest even.
fn f16_bits(x: f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
    let a = x.abs();
    if a.is_nan() {
        return 0x7e00;
    }
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 2f64.powi(-24) / 2.0 {
        return sign;
    }
    if a < 2f64.powi(-14) {
        // Subnormal: multiples of 2^-24.
        let m = (a / 2f64.powi(-24)).round_ties_even() as u16;
        return sign | m;
    }
    let e = a.log2().floor() as i32;
    let mut m = (a / 2f64.powi(e) - 1.0) * 1024.0;
    m = m.round_ties_even();
    let (e, m) = if m >= 1024.0 { (e + 1, 0.0) } else { (e, m) };
    if e > 15 {
        return sign | 0x7c00;
    }
    sign | (((e + 15) as u16) << 10) | m as u16
}

fn f16_value(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 10) & 0x1f);
    let m = f64::from(bits & 0x3ff);
    sign * match e {
        0 => m * 2f64.powi(-24),
        31 if m == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + m / 1024.0) * 2f64.powi(e - 15),
    }
}

/// bfloat16 bits of `x`, rounded to nearest even.
fn bf16_bits(x: f64) -> u16 {
    let f = x as f32;
    if f.is_nan() {
        return 0x7fc0;
    }
    let b = f.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    (rounded >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dtype_round_trips_what_it_holds() {
        let xs = [0.0, 1.0, -2.5, 0.333251953125, 65504.0, 1e-7, -3.0];
        for dtype in [DType::F32, DType::F16, DType::Bf16] {
            let once = decode(dtype, &encode(dtype, &xs));
            assert_eq!(decode(dtype, &encode(dtype, &once)), once, "{dtype}");
        }
        assert_eq!(
            decode(DType::F16, &encode(DType::F16, &[0.333251953125]))[0],
            0.333251953125
        );
        assert_eq!(decode(DType::F16, &encode(DType::F16, &[1e6]))[0], f64::INFINITY);
        assert_eq!(
            decode(DType::Bf16, &encode(DType::Bf16, &[1.0 + 1.0 / 256.0]))[0],
            1.0
        );
        let ints = [0.0, 1.0, -128.0, 127.0];
        assert_eq!(decode(DType::I8, &encode(DType::I8, &ints)), ints);
        assert_eq!(
            decode(DType::I64, &encode(DType::I64, &[-5.0, 1e12])),
            [-5.0, 1e12]
        );
    }
}
