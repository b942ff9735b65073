//! A plain reference interpreter of the IR: every op evaluated in program order on whole tensors,
//! with no placement, tiling or schedule. It is the reference the functional emulator and the
//! rewrites will be compared with (issue 6), so it favours obviousness over speed: values are
//! held as `f64` (exact for every integer an index or a count can be, and wider than any float
//! dtype of the IR), and each kernel follows the ONNX definition directly.
//!
//! Dtype rounding (f16/bf16, int8 saturation) is not modelled yet: results are the exact-math
//! values a float32 (or wider) implementation approximates. Ops without a kernel are an
//! [`EvalError::Unsupported`], never a wrong answer.

mod along;
mod indexing;
mod kernels;
mod quant;
mod resize;
mod tensor;
mod windows;

pub use kernels::{erf, unary};
pub use tensor::Tensor;

use crate::{Graph, ValueId, ValueKind};
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a graph could not be evaluated.
#[derive(Debug, Error, PartialEq)]
pub enum EvalError {
    #[error("no value given for {kind} '{name}'")]
    Missing { kind: &'static str, name: String },
    #[error("'{name}' was given with shape {given:?}, the graph declares {declared:?}")]
    WrongShape {
        name: String,
        given: Vec<usize>,
        declared: Vec<usize>,
    },
    #[error("op {op} ({node}) has no reference kernel yet")]
    Unsupported { op: String, node: String },
    #[error("op {op} ({node}): {reason}")]
    Invalid {
        op: String,
        node: String,
        reason: String,
    },
}

/// Evaluate one op of kind `kind` on whole tensors, with results of the given dims and dtypes:
/// what the functional emulator computes each instruction with. `Err` says why not (no kernel
/// for the op yet, or operands that do not fit it).
pub fn evaluate_op(
    kind: &crate::OpKind,
    inputs: &[&Tensor],
    outs: &[(Vec<usize>, crate::DType)],
) -> Result<Vec<Tensor>, String> {
    kernels::run(kind, inputs, outs).map_err(|e| match e {
        kernels::KernelError::Unsupported => format!("no kernel for {kind} yet"),
        kernels::KernelError::Invalid(reason) => reason,
    })
}

/// Evaluate `g` on `feeds`: a tensor for every graph input and weight, by value id. Returns the
/// graph outputs in order.
pub fn evaluate(g: &Graph, feeds: &BTreeMap<ValueId, Tensor>) -> Result<Vec<Tensor>, EvalError> {
    evaluate_with(g, feeds, false)
}

/// [`evaluate`] with every op's results rounded to their dtype, as a chip holds them (what the
/// functional emulator computes on one chip).
pub fn evaluate_rounded(g: &Graph, feeds: &BTreeMap<ValueId, Tensor>) -> Result<Vec<Tensor>, EvalError> {
    evaluate_with(g, feeds, true)
}

fn evaluate_with(
    g: &Graph,
    feeds: &BTreeMap<ValueId, Tensor>,
    rounded: bool,
) -> Result<Vec<Tensor>, EvalError> {
    let mut values: BTreeMap<ValueId, Tensor> = BTreeMap::new();
    for v in g.value_ids() {
        let value = g.value(v);
        let kind = match value.kind {
            ValueKind::Input => "input",
            ValueKind::Weight { .. } => "weight",
            ValueKind::Computed { .. } => continue,
        };
        let t = feeds.get(&v).ok_or_else(|| EvalError::Missing {
            kind,
            name: value.name.clone(),
        })?;
        let declared: Vec<usize> = value.ty.shape.dims().iter().map(|&d| d as usize).collect();
        if t.dims != declared {
            return Err(EvalError::WrongShape {
                name: value.name.clone(),
                given: t.dims.clone(),
                declared,
            });
        }
        values.insert(v, t.clone());
    }
    for o in g.op_ids() {
        let op = g.op(o);
        let inputs: Vec<&Tensor> = op.inputs.iter().map(|v| &values[v]).collect();
        let outs: Vec<(Vec<usize>, crate::DType)> = op
            .outputs
            .iter()
            .map(|&v| {
                let ty = &g.value(v).ty;
                (ty.shape.dims().iter().map(|&d| d as usize).collect(), ty.dtype)
            })
            .collect();
        let results = kernels::run(&op.kind, &inputs, &outs).map_err(|e| {
            let p = g.provenance(o);
            match e {
                kernels::KernelError::Unsupported => EvalError::Unsupported {
                    op: op.kind.to_string(),
                    node: p.node.clone(),
                },
                kernels::KernelError::Invalid(reason) => EvalError::Invalid {
                    op: op.kind.to_string(),
                    node: p.node.clone(),
                    reason,
                },
            }
        })?;
        for (&v, mut t) in op.outputs.iter().zip(results) {
            if rounded {
                let dtype = g.value(v).ty.dtype;
                t.data.iter_mut().for_each(|x| *x = dtype.round(*x));
            }
            values.insert(v, t);
        }
    }
    Ok(g.outputs().iter().map(|v| values[v].clone()).collect())
}

#[cfg(test)]
mod tests;
