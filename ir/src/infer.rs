//! Static shape and dtype rules for every op kind.
//!
//! One function serves both the frontend (to type the values it creates) and the verifier (to check
//! that every value's type is what its op computes), so the two can never disagree.

use crate::{BinaryOp, DType, OpKind, Shape, TensorType, UnaryOp};
use thiserror::Error;

/// Why an op cannot be applied to the given operand types. Model-side errors: the frontend reports
/// them against the ONNX node; the verifier reports them as our bug.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ShapeError {
    #[error("expects {expected} inputs, got {got}")]
    Arity { expected: &'static str, got: usize },
    #[error("operand dtypes differ: {0} and {1}")]
    DTypeMismatch(String, String),
    #[error("shapes {0} and {1} do not broadcast")]
    Broadcast(String, String),
    #[error("inner dims differ: {0} x {1}")]
    InnerDim(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("result has more than 2^48 elements")]
    TooLarge,
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, ShapeError> {
    let rank = a.rank().max(b.rank());
    let mut out = vec![0u64; rank];
    for (i, slot) in out.iter_mut().enumerate() {
        let da = dim_from_right(a, rank - 1 - i);
        let db = dim_from_right(b, rank - 1 - i);
        *slot = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(ShapeError::Broadcast(a.to_string(), b.to_string())),
        };
    }
    Ok(Shape(out))
}

fn dim_from_right(s: &Shape, from_right: usize) -> u64 {
    if from_right < s.rank() {
        s.0[s.rank() - 1 - from_right]
    } else {
        1
    }
}

pub(crate) fn same_dtype(types: &[&TensorType]) -> Result<(), ShapeError> {
    for t in types.iter().skip(1) {
        if t.dtype != types[0].dtype {
            return Err(ShapeError::DTypeMismatch(
                types[0].dtype.to_string(),
                t.dtype.to_string(),
            ));
        }
    }
    Ok(())
}

pub(crate) fn arity(
    inputs: &[&TensorType],
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<(), ShapeError> {
    if inputs.len() < min || inputs.len() > max {
        return Err(ShapeError::Arity {
            expected,
            got: inputs.len(),
        });
    }
    Ok(())
}

pub(crate) fn checked(t: TensorType) -> Result<TensorType, ShapeError> {
    t.size_bytes().ok_or(ShapeError::TooLarge)?;
    Ok(t)
}

/// The result types of `kind` applied to `inputs`, one per result (`DynamicQuantize`, `TopK` and
/// `LayerNorm` with stats have several).
pub fn infer(kind: &OpKind, inputs: &[&TensorType]) -> Result<Vec<TensorType>, ShapeError> {
    let one = |t: Result<TensorType, ShapeError>| t.and_then(checked).map(|t| vec![t]);
    match kind {
        OpKind::MatMul
        | OpKind::MatMulT
        | OpKind::MatMulBias { .. }
        | OpKind::MatMulInteger
        | OpKind::Gemm { .. }
        | OpKind::Conv { .. }
        | OpKind::ConvTranspose { .. }
        | OpKind::Einsum { .. }
        | OpKind::Softmax { .. }
        | OpKind::LayerNorm { .. }
        | OpKind::RmsNorm { .. }
        | OpKind::Hardmax { .. }
        | OpKind::CumSum { .. }
        | OpKind::ArgReduce { .. }
        | OpKind::TopK { .. }
        | OpKind::BatchNorm { .. }
        | OpKind::InstanceNorm { .. }
        | OpKind::GroupNorm { .. }
        | OpKind::ConvInteger { .. }
        | OpKind::QLinearConv { .. }
        | OpKind::QLinearMatMul
        | OpKind::Reduce { .. }
        | OpKind::Pool { .. }
        | OpKind::Quantize { .. }
        | OpKind::Dequantize { .. }
        | OpKind::DynamicQuantize => crate::infer_compute::infer_compute(kind, inputs),
        OpKind::Binary(op) => one(binary(*op, inputs)),
        OpKind::Unary(op) => one(unary(*op, inputs)),
        OpKind::Where => {
            arity(inputs, 3, 3, "3")?;
            if inputs[0].dtype != DType::Bool {
                return Err(ShapeError::Invalid("Where's condition must be bool".into()));
            }
            same_dtype(&inputs[1..])?;
            let shape = broadcast(&broadcast(&inputs[0].shape, &inputs[1].shape)?, &inputs[2].shape)?;
            one(Ok(TensorType {
                dtype: inputs[1].dtype,
                shape,
            }))
        }
        OpKind::Cast { to } => {
            arity(inputs, 1, 1, "1")?;
            one(Ok(TensorType {
                dtype: *to,
                shape: inputs[0].shape.clone(),
            }))
        }
        _ => crate::infer_layout::infer_layout(kind, inputs)
            .and_then(checked)
            .map(|t| vec![t]),
    }
}

fn binary(op: BinaryOp, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    arity(inputs, 2, 2, "2")?;
    let shape = broadcast(&inputs[0].shape, &inputs[1].shape)?;
    if op == BinaryOp::Pow {
        // Pow allows an exponent of another numeric type; the result has the base's type.
        return Ok(TensorType {
            dtype: inputs[0].dtype,
            shape,
        });
    }
    same_dtype(inputs)?;
    let dtype = inputs[0].dtype;
    if op.is_logical() != (dtype == DType::Bool) {
        return Err(ShapeError::Invalid(format!("{} on {dtype}", op.name())));
    }
    Ok(TensorType {
        dtype: if op.is_comparison() { DType::Bool } else { dtype },
        shape,
    })
}

fn unary(op: UnaryOp, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    arity(inputs, 1, 1, "1")?;
    let t = inputs[0];
    match op {
        UnaryOp::Not => {
            if t.dtype != DType::Bool {
                return Err(ShapeError::Invalid("Not needs a bool operand".into()));
            }
            Ok(t.clone())
        }
        UnaryOp::IsNaN | UnaryOp::IsInf { .. } => {
            float_only(t)?;
            Ok(TensorType {
                dtype: DType::Bool,
                shape: t.shape.clone(),
            })
        }
        op if op.accepts_integers() => {
            if t.dtype == DType::Bool {
                return Err(ShapeError::Invalid(format!("{} on bool", op.name())));
            }
            Ok(t.clone())
        }
        _ => {
            float_only(t)?;
            Ok(t.clone())
        }
    }
}

pub(crate) fn float_only(t: &TensorType) -> Result<(), ShapeError> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!(
            "needs a float operand, got {}",
            t.dtype
        )))
    }
}

pub(crate) fn axis_in_range(axis: usize, t: &TensorType) -> Result<(), ShapeError> {
    if axis < t.shape.rank() {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!(
            "axis {axis} out of range for {}",
            t.shape
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PoolKind, ReduceOp, Window};

    fn t(dims: &[u64]) -> TensorType {
        TensorType::new(DType::F32, dims.to_vec())
    }

    fn one(kind: &OpKind, inputs: &[&TensorType]) -> Result<Vec<u64>, ShapeError> {
        infer(kind, inputs).map(|mut v| v.remove(0).shape.0)
    }

    #[test]
    fn matmul_broadcasts_batch_dims() {
        assert_eq!(
            one(&OpKind::MatMul, &[&t(&[1, 4, 8, 32]), &t(&[1, 4, 32, 8])]).unwrap(),
            vec![1, 4, 8, 8]
        );
        assert_eq!(
            one(&OpKind::MatMul, &[&t(&[2, 8, 16]), &t(&[16, 4])]).unwrap(),
            vec![2, 8, 4]
        );
        let err = one(&OpKind::MatMul, &[&t(&[8, 16]), &t(&[8, 4])]).unwrap_err();
        assert!(matches!(err, ShapeError::InnerDim(..)));
    }

    #[test]
    fn gemm_respects_transposes() {
        let kind = OpKind::Gemm {
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 1.0,
        };
        assert_eq!(
            one(&kind, &[&t(&[3, 784]), &t(&[512, 784]), &t(&[512])]).unwrap(),
            vec![3, 512]
        );
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(
            broadcast(&Shape(vec![4, 1, 3]), &Shape(vec![5, 1])).unwrap().0,
            vec![4, 5, 3]
        );
        assert!(broadcast(&Shape(vec![4]), &Shape(vec![3])).is_err());
    }

    #[test]
    fn transpose_and_reshape() {
        let kind = OpKind::Transpose { perm: vec![0, 2, 1] };
        assert_eq!(one(&kind, &[&t(&[1, 2, 3])]).unwrap(), vec![1, 3, 2]);
        let bad = OpKind::Transpose { perm: vec![0, 0, 1] };
        assert!(one(&bad, &[&t(&[1, 2, 3])]).is_err());
        assert_eq!(
            one(&OpKind::Reshape { shape: vec![6] }, &[&t(&[2, 3])]).unwrap(),
            vec![6]
        );
        assert!(one(&OpKind::Reshape { shape: vec![6] }, &[&t(&[2, 4])]).is_err());
    }

    #[test]
    fn comparisons_give_bool_and_logic_needs_bool() {
        let out = infer(&OpKind::Binary(BinaryOp::Less), &[&t(&[2, 3]), &t(&[3])]).unwrap();
        assert_eq!(out[0].dtype, DType::Bool);
        assert!(infer(&OpKind::Binary(BinaryOp::And), &[&t(&[2]), &t(&[2])]).is_err());
        let b = TensorType::new(DType::Bool, vec![2, 1]);
        let w = infer(&OpKind::Where, &[&b, &t(&[3]), &t(&[1])]).unwrap();
        assert_eq!(w[0].shape.0, vec![2, 3]);
    }

    fn square(k: u64, stride: u64, pad: u64, ceil_mode: bool) -> Window {
        Window {
            kernel: vec![k, k],
            strides: vec![stride, stride],
            dilations: vec![1, 1],
            pads: vec![pad; 4],
            ceil_mode,
        }
    }

    #[test]
    fn conv_and_pool_windows() {
        let conv = OpKind::Conv {
            window: square(7, 2, 3, false),
            group: 1,
        };
        assert_eq!(
            one(&conv, &[&t(&[1, 3, 224, 224]), &t(&[64, 3, 7, 7])]).unwrap(),
            vec![1, 64, 112, 112]
        );
        let depthwise = OpKind::Conv {
            window: square(3, 1, 1, false),
            group: 32,
        };
        assert_eq!(
            one(&depthwise, &[&t(&[1, 32, 56, 56]), &t(&[32, 1, 3, 3])]).unwrap(),
            vec![1, 32, 56, 56]
        );
        let pool = OpKind::Pool {
            kind: PoolKind::Max,
            window: square(3, 2, 0, true),
        };
        assert_eq!(one(&pool, &[&t(&[1, 1, 4, 4])]).unwrap(), vec![1, 1, 2, 2]);
        let reduce = OpKind::Reduce {
            op: ReduceOp::Mean,
            axes: vec![2, 3],
            keep_dims: true,
        };
        assert_eq!(one(&reduce, &[&t(&[1, 8, 7, 7])]).unwrap(), vec![1, 8, 1, 1]);
    }

    #[test]
    fn dynamic_quantize_has_three_results() {
        assert_eq!(infer(&OpKind::DynamicQuantize, &[&t(&[4, 8])]).unwrap().len(), 3);
    }
}
