//! Static shape and dtype rules for every op kind.
//!
//! One function serves both the frontend (to type the values it creates) and the verifier (to check
//! that every value's type is what its op computes), so the two can never disagree.

use crate::{BinaryOp, OpKind, Shape, TensorType};
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

fn same_dtype(types: &[&TensorType]) -> Result<(), ShapeError> {
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

fn arity(inputs: &[&TensorType], min: usize, max: usize, expected: &'static str) -> Result<(), ShapeError> {
    if inputs.len() < min || inputs.len() > max {
        return Err(ShapeError::Arity {
            expected,
            got: inputs.len(),
        });
    }
    Ok(())
}

fn checked(t: TensorType) -> Result<TensorType, ShapeError> {
    t.size_bytes().ok_or(ShapeError::TooLarge)?;
    Ok(t)
}

/// The result type of `kind` applied to `inputs`. `Reshape` takes its target shape from
/// `reshape_to`, which must hold the same number of elements.
pub fn infer(
    kind: &OpKind,
    inputs: &[&TensorType],
    reshape_to: Option<&Shape>,
) -> Result<TensorType, ShapeError> {
    match kind {
        OpKind::MatMul => {
            arity(inputs, 2, 2, "2")?;
            same_dtype(inputs)?;
            matmul(inputs[0], inputs[1])
        }
        OpKind::Gemm { trans_a, trans_b, .. } => {
            arity(inputs, 2, 3, "2 or 3")?;
            same_dtype(inputs)?;
            let (a, b) = (&inputs[0].shape, &inputs[1].shape);
            if a.rank() != 2 || b.rank() != 2 {
                return Err(ShapeError::Invalid(format!(
                    "Gemm needs 2-D operands, got {a} and {b}"
                )));
            }
            let (m, ka) = if *trans_a {
                (a.0[1], a.0[0])
            } else {
                (a.0[0], a.0[1])
            };
            let (kb, n) = if *trans_b {
                (b.0[1], b.0[0])
            } else {
                (b.0[0], b.0[1])
            };
            if ka != kb {
                return Err(ShapeError::InnerDim(a.to_string(), b.to_string()));
            }
            let out = Shape(vec![m, n]);
            if let Some(c) = inputs.get(2) {
                if broadcast(&c.shape, &out)? != out {
                    return Err(ShapeError::Broadcast(c.shape.to_string(), out.to_string()));
                }
            }
            checked(TensorType {
                dtype: inputs[0].dtype,
                shape: out,
            })
        }
        OpKind::Binary(op) => {
            arity(inputs, 2, 2, "2")?;
            same_dtype(inputs)?;
            if matches!(op, BinaryOp::Div | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Add)
                && inputs[0].dtype == crate::DType::Bool
            {
                return Err(ShapeError::Invalid("arithmetic on bool".into()));
            }
            checked(TensorType {
                dtype: inputs[0].dtype,
                shape: broadcast(&inputs[0].shape, &inputs[1].shape)?,
            })
        }
        OpKind::Unary(_) => {
            arity(inputs, 1, 1, "1")?;
            float_only(inputs[0])?;
            Ok(inputs[0].clone())
        }
        OpKind::Softmax { axis } => {
            arity(inputs, 1, 1, "1")?;
            float_only(inputs[0])?;
            axis_in_range(*axis, inputs[0])?;
            Ok(inputs[0].clone())
        }
        OpKind::LayerNorm { axis, .. } => {
            arity(inputs, 2, 3, "2 or 3")?;
            same_dtype(inputs)?;
            float_only(inputs[0])?;
            axis_in_range(*axis, inputs[0])?;
            let normalized = Shape(inputs[0].shape.0[*axis..].to_vec());
            for p in &inputs[1..] {
                if broadcast(&p.shape, &normalized)? != normalized {
                    return Err(ShapeError::Broadcast(p.shape.to_string(), normalized.to_string()));
                }
            }
            Ok(inputs[0].clone())
        }
        OpKind::Reshape => {
            arity(inputs, 1, 1, "1")?;
            let to =
                reshape_to.ok_or_else(|| ShapeError::Invalid("Reshape without a target shape".into()))?;
            if to.num_elements() != inputs[0].shape.num_elements() {
                return Err(ShapeError::Invalid(format!(
                    "cannot reshape {} to {to}",
                    inputs[0].shape
                )));
            }
            Ok(TensorType {
                dtype: inputs[0].dtype,
                shape: to.clone(),
            })
        }
        OpKind::Transpose { perm } => {
            arity(inputs, 1, 1, "1")?;
            let s = &inputs[0].shape;
            let mut seen = vec![false; s.rank()];
            if perm.len() != s.rank() {
                return Err(ShapeError::Invalid(format!(
                    "perm {perm:?} for rank {}",
                    s.rank()
                )));
            }
            for &p in perm {
                if p >= s.rank() || seen[p] {
                    return Err(ShapeError::Invalid(format!("perm {perm:?} is not a permutation")));
                }
                seen[p] = true;
            }
            Ok(TensorType {
                dtype: inputs[0].dtype,
                shape: Shape(perm.iter().map(|&p| s.0[p]).collect()),
            })
        }
    }
}

fn float_only(t: &TensorType) -> Result<(), ShapeError> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!(
            "needs a float operand, got {}",
            t.dtype
        )))
    }
}

fn axis_in_range(axis: usize, t: &TensorType) -> Result<(), ShapeError> {
    if axis < t.shape.rank() {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!(
            "axis {axis} out of range for {}",
            t.shape
        )))
    }
}

fn matmul(a: &TensorType, b: &TensorType) -> Result<TensorType, ShapeError> {
    let (sa, sb) = (&a.shape, &b.shape);
    if sa.rank() == 0 || sb.rank() == 0 {
        return Err(ShapeError::Invalid("MatMul of a scalar".into()));
    }
    // numpy semantics: 1-D operands are promoted and the promoted dim dropped afterwards.
    let a2 = if sa.rank() == 1 {
        Shape(vec![1, sa.0[0]])
    } else {
        sa.clone()
    };
    let b2 = if sb.rank() == 1 {
        Shape(vec![sb.0[0], 1])
    } else {
        sb.clone()
    };
    let (m, k) = (a2.0[a2.rank() - 2], a2.0[a2.rank() - 1]);
    let (kb, n) = (b2.0[b2.rank() - 2], b2.0[b2.rank() - 1]);
    if k != kb {
        return Err(ShapeError::InnerDim(sa.to_string(), sb.to_string()));
    }
    let batch = broadcast(
        &Shape(a2.0[..a2.rank() - 2].to_vec()),
        &Shape(b2.0[..b2.rank() - 2].to_vec()),
    )?;
    let mut dims = batch.0;
    if sa.rank() > 1 {
        dims.push(m);
    }
    if sb.rank() > 1 {
        dims.push(n);
    }
    checked(TensorType {
        dtype: a.dtype,
        shape: Shape(dims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn t(dims: &[u64]) -> TensorType {
        TensorType::new(DType::F32, dims.to_vec())
    }

    #[test]
    fn matmul_broadcasts_batch_dims() {
        let out = infer(&OpKind::MatMul, &[&t(&[1, 4, 8, 32]), &t(&[1, 4, 32, 8])], None).unwrap();
        assert_eq!(out.shape.0, vec![1, 4, 8, 8]);
        let out = infer(&OpKind::MatMul, &[&t(&[2, 8, 16]), &t(&[16, 4])], None).unwrap();
        assert_eq!(out.shape.0, vec![2, 8, 4]);
        let err = infer(&OpKind::MatMul, &[&t(&[8, 16]), &t(&[8, 4])], None).unwrap_err();
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
        let out = infer(&kind, &[&t(&[3, 784]), &t(&[512, 784]), &t(&[512])], None).unwrap();
        assert_eq!(out.shape.0, vec![3, 512]);
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
        assert_eq!(
            infer(&kind, &[&t(&[1, 2, 3])], None).unwrap().shape.0,
            vec![1, 3, 2]
        );
        let bad = OpKind::Transpose { perm: vec![0, 0, 1] };
        assert!(infer(&bad, &[&t(&[1, 2, 3])], None).is_err());
        let to = Shape(vec![6]);
        assert_eq!(
            infer(&OpKind::Reshape, &[&t(&[2, 3])], Some(&to))
                .unwrap()
                .shape
                .0,
            vec![6]
        );
        assert!(infer(&OpKind::Reshape, &[&t(&[2, 4])], Some(&to)).is_err());
    }
}
