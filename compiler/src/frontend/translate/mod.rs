//! Translating one ONNX node into a plan: IR ops over its inputs, an alias, or constants.
//!
//! Translation is a pure function of the node, the opset and its operands' static types (plus the
//! values of constant operands). It resolves every attribute-vs-input difference between opsets
//! 11 and 21 (Split, Squeeze/Unsqueeze and Reduce* axes, Clip, Pad, Slice, Resize) and every
//! negative axis, so the IR ops it emits carry only static, normalised parameters. The lowering
//! then decides whether a step runs on the chip or folds to a constant.

mod attention;
mod compile_time;
mod elementwise;
mod layout;
mod nn;

use super::consts::Const;
use super::model::Node;
use crate::checker::Category;
use lpuc_ir::{DType, OpKind, TensorType};

/// Why a node cannot be lowered: category, detail, hint.
pub type Reject = (Category, String, &'static str);

/// An operand of a step: a node input, or the (first) result of an earlier step of the plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Input(usize),
    Step(usize),
    /// A constant the translation introduces (a divisor, an epsilon).
    Const(Box<Const>),
}

/// One IR op of a plan.
#[derive(Clone, Debug)]
pub struct Step {
    pub kind: OpKind,
    /// What it reads, in the IR op's operand order.
    pub inputs: Vec<Operand>,
    /// Node output positions it defines, in the IR op's result order.
    pub outputs: Vec<usize>,
}

/// What a node becomes.
#[derive(Clone, Debug)]
pub enum Plan {
    Steps(Vec<Step>),
    /// Output 0 is input `i` (Identity, inference Dropout); further outputs are constants.
    Alias(usize, Vec<Const>),
    /// Every output is a constant computed here (Shape, Size, Range, Constant, ...).
    Consts(Vec<Const>),
}

impl Plan {
    /// One op over node inputs `inputs`, defining output 0.
    fn op(kind: OpKind, inputs: Vec<usize>) -> Plan {
        Plan::Steps(vec![Step {
            kind,
            inputs: inputs.into_iter().map(Operand::Input).collect(),
            outputs: vec![0],
        }])
    }
}

/// The node's operands as the lowering knows them: static types, and constants where known.
pub struct Operands {
    /// `None` for an omitted optional input.
    pub types: Vec<Option<TensorType>>,
    pub consts: Vec<Option<Const>>,
}

pub(crate) fn invalid(detail: impl Into<String>) -> Reject {
    (Category::InvalidModel, detail.into(), "check the exported model")
}

pub(crate) fn unsupported(detail: impl Into<String>, hint: &'static str) -> Reject {
    (Category::NotYetSupported, detail.into(), hint)
}

impl Operands {
    pub fn present(&self, i: usize) -> bool {
        self.types.get(i).is_some_and(Option::is_some)
    }

    pub fn ty(&self, i: usize) -> Result<&TensorType, Reject> {
        self.types
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| invalid(format!("input {i} is missing")))
    }

    pub fn dims(&self, i: usize) -> Result<&[u64], Reject> {
        Ok(self.ty(i)?.shape.dims())
    }

    pub fn rank(&self, i: usize) -> Result<usize, Reject> {
        Ok(self.dims(i)?.len())
    }

    pub fn dtype(&self, i: usize) -> Result<DType, Reject> {
        Ok(self.ty(i)?.dtype)
    }

    /// The constant at input `i` with its values (read now if they wait in an external file); a
    /// run-time value here makes the output shape data-dependent.
    pub fn constant(&self, node: &Node, i: usize, what: &str) -> Result<Option<Const>, Reject> {
        if !self.present(i) {
            return Ok(None);
        }
        let resolved = match self.consts.get(i).and_then(Option::as_ref) {
            Some(c) => Some(c.resolved().map_err(invalid)?),
            None => None,
        };
        match resolved {
            Some(c) if c.values.is_some() => Ok(Some(c)),
            _ => Err((
                Category::DataDependentShape,
                format!(
                    "{what} ('{}') is computed at run time, so the output's shape is not static",
                    node.inputs[i]
                ),
                "make it a constant, or compute it from shapes only (Shape/Gather/Concat fold once dims are bound)",
            )),
        }
    }

    /// Input `i` as integers, if present (it must fold to a constant).
    pub fn ints(&self, node: &Node, i: usize, what: &str) -> Result<Option<Vec<i64>>, Reject> {
        Ok(self.constant(node, i, what)?.and_then(|c| c.ints()))
    }

    /// Input `i` as floats, if present (it must fold to a constant).
    pub fn floats(&self, node: &Node, i: usize, what: &str) -> Result<Option<Vec<f64>>, Reject> {
        Ok(self.constant(node, i, what)?.and_then(|c| c.floats()))
    }
}

/// Integer list from an attribute (older opsets) or a constant input (newer ones).
pub(crate) fn attr_or_input(
    node: &Node,
    ops: &Operands,
    attr: &str,
    input: usize,
    what: &str,
) -> Result<Option<Vec<i64>>, Reject> {
    if let Some(v) = node.attr_ints(attr) {
        return Ok(Some(v.to_vec()));
    }
    ops.ints(node, input, what)
}

/// A required list of sizes (a shape, repeats): present and non-negative.
pub(crate) fn sizes(values: Option<Vec<i64>>, what: &str) -> Result<Vec<u64>, Reject> {
    let values = values.ok_or_else(|| invalid(format!("{what} is missing")))?;
    values
        .iter()
        .map(|&d| u64::try_from(d).map_err(|_| invalid(format!("{what} {values:?} has a negative entry"))))
        .collect()
}

/// The product of some dims, or an error when it overflows (a huge tensor with a zero dim can hold
/// no elements and still have an overflowing partial product).
pub(crate) fn product(dims: &[u64]) -> Result<u64, Reject> {
    dims.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(format!("the product of dims {dims:?} overflows")))
}

/// Resolve an ONNX axis (possibly negative) against `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, Reject> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(invalid(format!("axis {axis} is out of range for rank {rank}")))
    }
}

/// Resolve a list of axes: normalised, sorted, distinct.
pub fn normalize_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, Reject> {
    let mut out = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    let n = out.len();
    out.dedup();
    if out.len() != n {
        return Err(invalid(format!("axes {axes:?} repeat")));
    }
    Ok(out)
}

/// The ONNX element type code as an IR dtype, for Cast targets and the like.
pub(crate) fn dtype_attr(code: i64) -> Result<DType, Reject> {
    let code = i32::try_from(code).map_err(|_| invalid(format!("element type {code}")))?;
    super::model::ir_dtype(code).map_err(|why| {
        (
            Category::UnsupportedDtype,
            format!("element type {code}: {why}"),
            "cast to float32, float16, bfloat16, int8, uint8, int32, int64 or bool",
        )
    })
}

/// Translate `node` at default-domain `opset`.
pub fn translate(node: &Node, opset: i64, ops: &Operands) -> Result<Plan, Reject> {
    if let Some(plan) = compile_time::translate(node, opset, ops)? {
        return Ok(plan);
    }
    if let Some(plan) = elementwise::translate(node, opset, ops)? {
        return Ok(plan);
    }
    if let Some(plan) = nn::translate(node, ops)? {
        return Ok(plan);
    }
    if let Some(plan) = layout::translate(node, opset, ops)? {
        return Ok(plan);
    }
    match node.op_type.as_str() {
        "Attention" => return attention::attention(node, ops),
        "RotaryEmbedding" => return attention::rotary_embedding(node, ops),
        _ => {}
    }
    Err(unsupported(
        format!("{} is in the capability table but has no lowering", node.op_type),
        "report this as an lpuc bug",
    ))
}
