//! Tensors in files: the ONNX node-test layout (`input_<i>.pb`, `output_<i>.pb`, each a
//! serialized TensorProto) that `lpuc emulate --inputs/--expect/--write-outputs` and the
//! conformance harness read and write.

use crate::frontend::consts;
use crate::frontend::load::const_tensor_keeping;
use crate::frontend::model::ir_dtype;
use lpuc_ir::interp::Tensor;
use lpuc_ir::DType;
use onnx_protobuf::{Message, TensorProto};
use std::path::{Path, PathBuf};

/// Files larger than this are refused (a tensor of a shape-bucketed model is far smaller).
const MAX_TENSOR_FILE_BYTES: u64 = 2 << 30;

/// Parse one TensorProto file.
pub fn read_tensor(path: &Path) -> Result<TensorProto, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_TENSOR_FILE_BYTES {
        return Err(format!(
            "{}: {len} bytes is larger than any tensor lpuc reads",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    TensorProto::parse_from_bytes(&bytes).map_err(|e| format!("{}: not a TensorProto: {e}", path.display()))
}

/// The `prefix_<i>.pb` files of a data set, in index order.
pub fn data_files(set: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(set)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let i = name.strip_prefix(prefix)?.strip_suffix(".pb")?.parse().ok()?;
                    Some((i, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// A parsed TensorProto's values, whatever its size.
pub fn to_tensor(t: &TensorProto) -> Result<Tensor, String> {
    let c = const_tensor_keeping(t, &t.name, true).map_err(|e| e.to_string())?;
    let c = consts::from_tensor(&c, None)?
        .ok_or_else(|| format!("element type {} is not one lpuc computes with", t.data_type))?;
    let values = c.values.ok_or("its values could not be decoded")?;
    let dims: Vec<usize> = c.ty.shape.dims().iter().map(|&d| d as usize).collect();
    Tensor::new(dims, values.to_floats()).ok_or_else(|| "its element count does not match its dims".into())
}

/// Every `prefix_<i>.pb` tensor of `dir`, in index order, as values.
pub fn read_tensors(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    data_files(dir, prefix)
        .iter()
        .map(|p| to_tensor(&read_tensor(p)?).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// Write `t` as a TensorProto named `name` of `dtype` to `path`.
pub fn write_tensor(path: &Path, name: &str, dtype: DType, t: &Tensor) -> Result<(), String> {
    let mut proto = TensorProto::new();
    proto.name = name.to_string();
    proto.dims = t.dims.iter().map(|&d| d as i64).collect();
    proto.data_type = onnx_type(dtype);
    proto.raw_data = lpuc_artifact::dataflow::encode(dtype, &t.data);
    let bytes = proto.write_to_bytes().map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The ONNX element type code of `dtype` (the inverse of `ir_dtype`).
fn onnx_type(dtype: DType) -> i32 {
    let code = match dtype {
        DType::F32 => 1,
        DType::U8 => 2,
        DType::I8 => 3,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F16 => 10,
        DType::Bf16 => 16,
    };
    debug_assert_eq!(ir_dtype(code), Ok(dtype));
    code
}

/// How far `got` is from `expected`: the largest absolute and relative differences, and whether
/// every element is within `atol + rtol * |expected|` (NaN matches NaN, infinities match exactly).
pub fn compare(got: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Result<(f64, f64, bool), String> {
    if got.dims != expected.dims {
        return Err(format!("dims {:?}, expected {:?}", got.dims, expected.dims));
    }
    let (mut max_abs, mut max_rel, mut ok) = (0.0f64, 0.0f64, true);
    for (&a, &b) in got.data.iter().zip(&expected.data) {
        if (a.is_nan() && b.is_nan()) || a == b {
            continue;
        }
        let diff = (a - b).abs();
        if !diff.is_finite() {
            ok = false;
            max_abs = f64::INFINITY;
            continue;
        }
        max_abs = max_abs.max(diff);
        if b != 0.0 {
            max_rel = max_rel.max(diff / b.abs());
        }
        ok &= diff <= atol + rtol * b.abs();
    }
    Ok((max_abs, max_rel, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tensors_read_back() {
        let dir = std::env::temp_dir().join(format!("lpuc-tensors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tensor::new(vec![2, 3], vec![1.0, -2.0, 0.5, 3.25, 0.0, 7.0]).unwrap();
        write_tensor(&dir.join("output_0.pb"), "y", DType::F32, &t).unwrap();
        write_tensor(&dir.join("output_1.pb"), "z", DType::I64, &t).unwrap();
        let back = read_tensors(&dir, "output_").unwrap();
        assert_eq!(back[0], t);
        assert_eq!(back[1].data[1], -2.0);
        let (abs, _, ok) = compare(&back[0], &t, 0.0, 0.0).unwrap();
        assert!(ok && abs == 0.0);
        let off = Tensor::new(vec![2, 3], vec![1.0, -2.0, 0.5, 3.25, 0.1, 7.0]).unwrap();
        assert!(!compare(&off, &t, 1e-3, 1e-5).unwrap().2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
