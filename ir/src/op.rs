//! Operations of the IR. Each kind names the computation only; operands are values in the graph.

use crate::ValueId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Elementwise binary operations with numpy-style broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Elementwise unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    Relu,
    /// GELU; `tanh` selects the tanh approximation.
    Gelu {
        tanh: bool,
    },
    Erf,
    Tanh,
    Sigmoid,
}

/// What an operation computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpKind {
    /// Batched matrix product with numpy broadcasting of the leading dims.
    MatMul,
    /// `alpha * op(A) @ op(B) + beta * C` on 2-D operands; C optional and broadcast.
    Gemm {
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    },
    Binary(BinaryOp),
    Unary(UnaryOp),
    /// Softmax along `axis` (already normalised to be non-negative).
    Softmax {
        axis: usize,
    },
    /// Layer normalisation over the dims from `axis` on; inputs: x, scale, optional bias.
    LayerNorm {
        axis: usize,
        epsilon: f32,
    },
    /// Same elements, new static shape (the result type carries the shape).
    Reshape,
    /// Permute dims: output dim `i` is input dim `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
}

impl OpKind {
    /// Short, stable name used in printed IR and schedules.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::MatMul => "MatMul",
            OpKind::Gemm { .. } => "Gemm",
            OpKind::Binary(BinaryOp::Add) => "Add",
            OpKind::Binary(BinaryOp::Sub) => "Sub",
            OpKind::Binary(BinaryOp::Mul) => "Mul",
            OpKind::Binary(BinaryOp::Div) => "Div",
            OpKind::Unary(UnaryOp::Relu) => "Relu",
            OpKind::Unary(UnaryOp::Gelu { .. }) => "Gelu",
            OpKind::Unary(UnaryOp::Erf) => "Erf",
            OpKind::Unary(UnaryOp::Tanh) => "Tanh",
            OpKind::Unary(UnaryOp::Sigmoid) => "Sigmoid",
            OpKind::Softmax { .. } => "Softmax",
            OpKind::LayerNorm { .. } => "LayerNorm",
            OpKind::Reshape => "Reshape",
            OpKind::Transpose { .. } => "Transpose",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            OpKind::Gemm {
                trans_a,
                trans_b,
                alpha,
                beta,
            } => write!(
                f,
                "{{trans_a={trans_a}, trans_b={trans_b}, alpha={alpha:?}, beta={beta:?}}}"
            ),
            OpKind::Unary(UnaryOp::Gelu { tanh: true }) => f.write_str("{approximate=tanh}"),
            OpKind::Softmax { axis } => write!(f, "{{axis={axis}}}"),
            OpKind::LayerNorm { axis, epsilon } => write!(f, "{{axis={axis}, epsilon={epsilon:?}}}"),
            OpKind::Transpose { perm } => write!(f, "{{perm={perm:?}}}"),
            _ => Ok(()),
        }
    }
}

/// An operation: its kind, the values it reads and the values it defines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub kind: OpKind,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}
