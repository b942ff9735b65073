//! Compile-time tensors: initializers, Constant nodes and everything folded from them.
//!
//! A constant always has a static type. Its values are known only when it is small (shapes,
//! scalars, axes) or was computed by folding; a weight's bytes are never read by an ordinary
//! compile, so a large constant derived from weights (a dequantized or transposed weight) carries
//! the recipe it came from instead of values, and becomes one IR weight if the program reads it.

use super::model::{ConstTensor, ExternalData};
use lpuc_ir::{DType, TensorType};
use std::path::{Path, PathBuf};

/// Results of folding above this many elements are not materialized as values.
pub const FOLD_LIMIT: u64 = 1 << 16;

/// Element values of a folded tensor, widened to one of three carriers.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as integers (floats truncated toward zero, bools as 0/1).
    pub fn to_ints(&self) -> Vec<i64> {
        match self {
            Values::Int(v) => v.clone(),
            Values::Float(v) => v.iter().map(|&f| f as i64).collect(),
            Values::Bool(v) => v.iter().map(|&b| i64::from(b)).collect(),
        }
    }

    pub fn to_floats(&self) -> Vec<f64> {
        match self {
            Values::Int(v) => v.iter().map(|&i| i as f64).collect(),
            Values::Float(v) => v.clone(),
            Values::Bool(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
        }
    }

    /// Convert to the carrier of `dtype`, rounding and wrapping as a cast to `dtype` does.
    pub fn cast(&self, dtype: DType) -> Values {
        match dtype {
            DType::Bool => Values::Bool(self.to_floats().iter().map(|&f| f != 0.0).collect()),
            DType::F32 | DType::F16 | DType::Bf16 => Values::Float(
                self.to_floats()
                    .into_iter()
                    .map(|f| round_float(f, dtype))
                    .collect(),
            ),
            _ => {
                let ints = match self {
                    Values::Float(v) => v.iter().map(|&f| saturating_int(f)).collect(),
                    other => other.to_ints(),
                };
                Values::Int(ints.into_iter().map(|i| wrap_int(i, dtype)).collect())
            }
        }
    }

    /// The elements at the flat `indices`, in the same carrier.
    pub fn pick(&self, indices: &[usize]) -> Values {
        match self {
            Values::Int(v) => Values::Int(indices.iter().map(|&i| v[i]).collect()),
            Values::Float(v) => Values::Float(indices.iter().map(|&i| v[i]).collect()),
            Values::Bool(v) => Values::Bool(indices.iter().map(|&i| v[i]).collect()),
        }
    }
}

fn saturating_int(f: f64) -> i64 {
    if f.is_nan() {
        0
    } else {
        f as i64
    }
}

/// Round a value to the nearest value `dtype` holds (ties to even, overflow to infinity).
pub fn round_float(f: f64, dtype: DType) -> f64 {
    dtype.round(f)
}

/// Two's-complement wrap of `i` into `dtype`.
pub fn wrap_int(i: i64, dtype: DType) -> i64 {
    match dtype {
        DType::I8 => i64::from(i as i8),
        DType::U8 => i64::from(i as u8),
        DType::I32 => i64::from(i as i32),
        _ => i,
    }
}

/// A compile-time tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub ty: TensorType,
    /// The values, when known (small tensors and folding results).
    pub values: Option<Values>,
    /// Where it comes from: an initializer's name, or a description of the folding that made it.
    pub source: String,
    /// A small external tensor whose bytes are read only if something needs its values.
    pub pending: Option<PendingRead>,
}

/// Where to read a small external tensor's values from, when they are needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRead {
    pub dir: PathBuf,
    pub external: ExternalData,
    pub elem_type: i32,
}

impl Const {
    pub fn new(ty: TensorType, values: Values, source: impl Into<String>) -> Const {
        Const {
            ty,
            values: Some(values),
            source: source.into(),
            pending: None,
        }
    }

    /// A constant whose values are not known (derived from weights whose bytes are not read).
    pub fn opaque(ty: TensorType, source: impl Into<String>) -> Const {
        Const {
            ty,
            values: None,
            source: source.into(),
            pending: None,
        }
    }

    /// This constant with its values read, if they are pending in an external file.
    pub fn resolved(&self) -> Result<Const, String> {
        let Some(p) = &self.pending else {
            return Ok(self.clone());
        };
        let elements = self.ty.shape.num_elements().unwrap_or(u64::MAX);
        let len = elements * width(p.elem_type).unwrap_or(1);
        let bytes = read_external(&p.dir, &p.external, len)?;
        Ok(Const {
            values: decode(p.elem_type, &bytes, elements),
            pending: None,
            ..self.clone()
        })
    }

    /// An int64 vector (the type of every shape tensor).
    pub fn int_vector(values: Vec<i64>, source: impl Into<String>) -> Const {
        let ty = TensorType::new(DType::I64, vec![values.len() as u64]);
        Const::new(ty, Values::Int(values), source)
    }

    pub fn ints(&self) -> Option<Vec<i64>> {
        self.values.as_ref().map(Values::to_ints)
    }

    pub fn floats(&self) -> Option<Vec<f64>> {
        self.values.as_ref().map(Values::to_floats)
    }
}

/// The IR dtype a constant of ONNX type `code` is held in: float64 is narrowed to float32 (the
/// only castable type the LPU lacks); other unsupported types have none.
pub fn const_dtype(code: i32) -> Option<DType> {
    if code == 11 {
        Some(DType::F32)
    } else {
        super::model::ir_dtype(code).ok()
    }
}

/// The constant for an initializer or Constant value. A small external tensor's bytes stay in
/// `base_dir`'s file until [`Const::resolved`] needs them; a large one's are never read.
pub fn from_tensor(t: &ConstTensor, base_dir: Option<&Path>) -> Result<Option<Const>, String> {
    from_tensor_reading(t, base_dir, false)
}

/// [`from_tensor`]; with `all_values` an external tensor of any size is read when resolved.
pub fn from_tensor_reading(
    t: &ConstTensor,
    base_dir: Option<&Path>,
    all_values: bool,
) -> Result<Option<Const>, String> {
    let Some(dtype) = const_dtype(t.elem_type) else {
        return Ok(None);
    };
    let ty = TensorType::new(dtype, t.dims.clone());
    let Some(elements) = ty.shape.num_elements() else {
        return Ok(None);
    };
    let pending = match (&t.small_data, &t.external, base_dir) {
        (None, Some(ext), Some(dir)) if elements <= 4096 || all_values => Some(PendingRead {
            dir: dir.to_path_buf(),
            external: ext.clone(),
            elem_type: t.elem_type,
        }),
        _ => None,
    };
    let values = t
        .small_data
        .as_ref()
        .and_then(|b| decode(t.elem_type, b, elements));
    Ok(Some(Const {
        ty,
        values,
        source: t.name.clone(),
        pending,
    }))
}

/// Bytes per element of an ONNX type with a fixed width.
fn width(code: i32) -> Option<u64> {
    Some(match code {
        1 | 6 | 12 => 4,
        7 | 11 | 13 => 8,
        2 | 3 | 9 => 1,
        4 | 5 | 10 | 16 => 2,
        _ => return None,
    })
}

/// Read `len` bytes of an external tensor (the location was checked to stay inside `dir`).
fn read_external(dir: &Path, ext: &ExternalData, len: u64) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek, SeekFrom};
    if ext.length.is_some_and(|l| l != len) {
        return Err(format!(
            "external data '{}' declares {} bytes where the type needs {len}",
            ext.location,
            ext.length.unwrap_or(0)
        ));
    }
    let path = dir.join(&ext.location);
    // The location was checked as text at load time; a symbolic link inside the folder could still
    // point outside it, so the resolved path is checked too.
    let (base, real) = match (dir.canonicalize(), path.canonicalize()) {
        (Ok(b), Ok(r)) => (b, r),
        (_, Err(e)) | (Err(e), _) => {
            return Err(format!("cannot open external data {}: {e}", path.display()))
        }
    };
    if !real.starts_with(&base) {
        return Err(format!(
            "external data '{}' resolves to {}, outside the model's folder",
            ext.location,
            real.display()
        ));
    }
    let mut f = std::fs::File::open(&path)
        .map_err(|e| format!("cannot open external data {}: {e}", path.display()))?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if ext.offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(format!(
            "external data {} is {size} bytes; bytes {}..{} are past its end",
            path.display(),
            ext.offset,
            ext.offset.saturating_add(len)
        ));
    }
    f.seek(SeekFrom::Start(ext.offset)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Decode little-endian bytes of ONNX type `code`.
fn decode(code: i32, b: &[u8], elements: u64) -> Option<Values> {
    let w = width(code)?;
    if b.len() as u64 != elements * w {
        return None;
    }
    let chunks = b.chunks_exact(w as usize);
    Some(match code {
        1 => Values::Float(
            chunks
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().ok().unwrap_or([0; 4]))))
                .collect(),
        ),
        11 => Values::Float(
            chunks
                .map(|c| f64::from(f64::from_le_bytes(c.try_into().ok().unwrap_or([0; 8])) as f32))
                .collect(),
        ),
        10 => Values::Float(
            chunks
                .map(|c| f16_to_f64(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        16 => Values::Float(
            chunks
                .map(|c| f64::from(f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)))
                .collect(),
        ),
        7 => Values::Int(
            chunks
                .map(|c| i64::from_le_bytes(c.try_into().ok().unwrap_or([0; 8])))
                .collect(),
        ),
        13 => Values::Int(
            chunks
                .map(|c| u64::from_le_bytes(c.try_into().ok().unwrap_or([0; 8])) as i64)
                .collect(),
        ),
        6 => Values::Int(
            chunks
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().ok().unwrap_or([0; 4]))))
                .collect(),
        ),
        12 => Values::Int(
            chunks
                .map(|c| i64::from(u32::from_le_bytes(c.try_into().ok().unwrap_or([0; 4]))))
                .collect(),
        ),
        3 => Values::Int(chunks.map(|c| i64::from(c[0] as i8)).collect()),
        2 => Values::Int(chunks.map(|c| i64::from(c[0])).collect()),
        5 => Values::Int(
            chunks
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        4 => Values::Int(
            chunks
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        9 => Values::Bool(chunks.map(|c| c[0] != 0).collect()),
        _ => return None,
    })
}

/// IEEE half to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_width() {
        assert_eq!(decode(7, &5i64.to_le_bytes(), 1), Some(Values::Int(vec![5])));
        assert_eq!(decode(3, &[0xff], 1), Some(Values::Int(vec![-1])));
        assert_eq!(
            decode(10, &0x3c00u16.to_le_bytes(), 1),
            Some(Values::Float(vec![1.0]))
        );
        assert_eq!(
            decode(16, &0x3f80u16.to_le_bytes(), 1),
            Some(Values::Float(vec![1.0]))
        );
        assert_eq!(decode(9, &[1, 0], 2), Some(Values::Bool(vec![true, false])));
        assert_eq!(decode(7, &[0; 7], 1), None);
    }

    #[test]
    fn sixteen_bit_floats_round_to_nearest_even() {
        assert_eq!(round_float(2049.0, DType::F16), 2048.0);
        assert_eq!(round_float(2051.0, DType::F16), 2052.0);
        assert_eq!(round_float(65504.0, DType::F16), 65504.0);
        assert_eq!(round_float(65520.0, DType::F16), f64::INFINITY);
        assert_eq!(round_float(-1e-8, DType::F16), -0.0);
        assert_eq!(round_float(1.0 + 1.0 / 256.0, DType::Bf16), 1.0);
        assert_eq!(round_float(257.0, DType::Bf16), 256.0);
        assert_eq!(round_float(0.1, DType::F32), f64::from(0.1f32));
    }

    #[test]
    fn casts_wrap_and_round() {
        assert_eq!(Values::Int(vec![300]).cast(DType::U8), Values::Int(vec![44]));
        assert_eq!(
            Values::Float(vec![2.7, -2.7]).cast(DType::I64),
            Values::Int(vec![2, -2])
        );
        assert_eq!(
            Values::Int(vec![0, 3]).cast(DType::Bool),
            Values::Bool(vec![false, true])
        );
    }
}
