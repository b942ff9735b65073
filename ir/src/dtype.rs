//! Element types the IR accepts. Anything else is rejected by the operator-subset checker.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An element type with a fixed size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    Bf16,
    I8,
    U8,
    I32,
    I64,
    Bool,
}

impl DType {
    /// Bytes one element occupies in SRAM.
    pub fn size_bytes(self) -> u64 {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I64 => 8,
        }
    }

    /// The name used in printed IR, schedules and target files.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    /// `x` rounded to the nearest value this type holds: floats to nearest even (overflow to
    /// infinity), other types unchanged (integer results are already whole).
    pub fn round(self, x: f64) -> f64 {
        match self {
            DType::F32 => f64::from(x as f32),
            DType::F16 => round_binary(x, 10, -14, 15),
            DType::Bf16 => round_binary(f64::from(x as f32), 7, -126, 127),
            _ => x,
        }
    }

    /// Whether arithmetic on this type is floating point.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::Bf16)
    }
}

/// Round to a binary float format with `mantissa` stored bits and exponents `emin..=emax`
/// (subnormals below `emin`), ties to even.
fn round_binary(f: f64, mantissa: i32, emin: i32, emax: i32) -> f64 {
    if !f.is_finite() || f == 0.0 {
        return f;
    }
    let a = f.abs();
    let exponent = (((a.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(emin);
    let quantum = 2f64.powi(exponent - mantissa);
    let r = (a / quantum).round_ties_even() * quantum;
    let max = (2.0 - 2f64.powi(-mantissa)) * 2f64.powi(emax);
    let r = if r > max { f64::INFINITY } else { r };
    r.copysign(f)
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
