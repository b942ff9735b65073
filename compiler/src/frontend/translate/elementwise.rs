//! Elementwise math, comparisons, logic, casts and the softmax family.

use super::{dtype_attr, invalid, normalize_axis, unsupported, Operand, Operands, Plan, Reject, Step};
use crate::frontend::consts::{Const, Values};
use crate::frontend::model::Node;
use lpuc_ir::{BinaryOp, OpKind, ReduceOp, TensorType, UnaryOp};

fn binary_op(op: &str, node: &Node) -> Option<BinaryOp> {
    use BinaryOp::*;
    Some(match op {
        "Add" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "Pow" => Pow,
        "Mod" => Mod {
            fmod: node.attr_int("fmod").unwrap_or(0) != 0,
        },
        "And" => And,
        "Or" => Or,
        "Xor" => Xor,
        "Equal" => Equal,
        "Less" => Less,
        "Greater" => Greater,
        "LessOrEqual" => LessOrEqual,
        "GreaterOrEqual" => GreaterOrEqual,
        "PRelu" => PRelu,
        _ => return None,
    })
}

fn unary_op(op: &str, node: &Node) -> Option<UnaryOp> {
    use UnaryOp::*;
    let f = |name: &str, default: f32| node.attr_float(name).unwrap_or(default);
    Some(match op {
        "Relu" => Relu,
        "Erf" => Erf,
        "Tanh" => Tanh,
        "Sigmoid" => Sigmoid,
        "Sqrt" => Sqrt,
        "Reciprocal" => Reciprocal,
        "Neg" => Neg,
        "Abs" => Abs,
        "Exp" => Exp,
        "Log" => Log,
        "Sin" => Sin,
        "Cos" => Cos,
        "Floor" => Floor,
        "Ceil" => Ceil,
        "Round" => Round,
        "Sign" => Sign,
        "Softplus" => Softplus,
        "HardSwish" => HardSwish,
        "Not" => Not,
        "IsNaN" => IsNaN,
        "HardSigmoid" => HardSigmoid {
            alpha: f("alpha", 0.2),
            beta: f("beta", 0.5),
        },
        "LeakyRelu" => LeakyRelu {
            alpha: f("alpha", 0.01),
        },
        "Elu" => Elu {
            alpha: f("alpha", 1.0),
        },
        "Tan" => Tan,
        "Acos" => Acos,
        "Asin" => Asin,
        "Atan" => Atan,
        "Acosh" => Acosh,
        "Asinh" => Asinh,
        "Atanh" => Atanh,
        "Sinh" => Sinh,
        "Cosh" => Cosh,
        "Softsign" => Softsign,
        "Mish" => Mish,
        "Celu" => Celu {
            alpha: f("alpha", 1.0),
        },
        "Shrink" => Shrink {
            bias: f("bias", 0.0),
            lambd: f("lambd", 0.5),
        },
        "Selu" => Selu {
            alpha: f("alpha", 1.673_263_2),
            gamma: f("gamma", 1.050_701),
        },
        "ThresholdedRelu" => ThresholdedRelu {
            alpha: f("alpha", 1.0),
        },
        "IsInf" => IsInf {
            negative: node.attr_int("detect_negative").unwrap_or(1) != 0,
            positive: node.attr_int("detect_positive").unwrap_or(1) != 0,
        },
        _ => return None,
    })
}

pub(super) fn translate(node: &Node, opset: i64, ops: &Operands) -> Result<Option<Plan>, Reject> {
    let op = node.op_type.as_str();
    if let Some(b) = binary_op(op, node) {
        if b == (BinaryOp::Mod { fmod: false }) && ops.dtype(0)?.is_float() {
            return Err(invalid(
                "Mod of floats needs fmod=1 (the spec leaves fmod=0 to integers)",
            ));
        }
        return Ok(Some(Plan::op(OpKind::Binary(b), vec![0, 1])));
    }
    if let Some(u) = unary_op(op, node) {
        return Ok(Some(Plan::op(OpKind::Unary(u), vec![0])));
    }
    let plan = match op {
        "Min" | "Max" | "Sum" => {
            let b = match op {
                "Min" => BinaryOp::Min,
                "Max" => BinaryOp::Max,
                _ => BinaryOp::Add,
            };
            variadic(node, OpKind::Binary(b))?
        }
        "Mean" => {
            let Plan::Steps(mut steps) = variadic(node, OpKind::Binary(BinaryOp::Add))? else {
                return Ok(Some(Plan::Alias(0, vec![])));
            };
            let n = node.inputs.len() as f64;
            let dtype = ops.dtype(0)?;
            let divisor = Const::new(
                TensorType::new(dtype, vec![]),
                Values::Float(vec![n]).cast(dtype),
                "input count",
            );
            let last = steps.len() - 1;
            steps[last].outputs = vec![];
            steps.push(Step {
                kind: OpKind::Binary(BinaryOp::Div),
                inputs: vec![Operand::Step(last), Operand::Const(Box::new(divisor))],
                outputs: vec![0],
            });
            Plan::Steps(steps)
        }
        "Hardmax" => {
            let rank = ops.rank(0)?;
            let default = if opset >= 13 { -1 } else { 1 };
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(default), rank)?;
            if opset < 13 && axis + 1 != rank {
                return Err(unsupported(
                    "Hardmax before opset 13 over several axes",
                    "export with opset 13 or later",
                ));
            }
            Plan::op(OpKind::Hardmax { axis }, vec![0])
        }
        "LpNormalization" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), ops.rank(0)?)?;
            let op = match node.attr_int("p").unwrap_or(2) {
                1 => ReduceOp::L1,
                2 => ReduceOp::L2,
                p => return Err(invalid(format!("p={p} (only 1 and 2 are defined)"))),
            };
            let dtype = ops.dtype(0)?;
            let smallest = if dtype == lpuc_ir::DType::F16 {
                6.103515625e-5
            } else {
                f64::from(f32::MIN_POSITIVE)
            };
            let tiny = Const::new(
                TensorType::new(dtype, vec![]),
                Values::Float(vec![smallest]).cast(dtype),
                "smallest normal",
            );
            Plan::Steps(vec![
                Step {
                    kind: OpKind::Reduce {
                        op,
                        axes: vec![axis],
                        keep_dims: true,
                    },
                    inputs: vec![Operand::Input(0)],
                    outputs: vec![],
                },
                // A slice whose norm is zero is all zeros and stays zero (ONNX's reference
                // divides only where the norm is not zero): the divisor is at least the smallest
                // normal float, so 0 / 0 never makes a NaN.
                Step {
                    kind: OpKind::Binary(BinaryOp::Max),
                    inputs: vec![Operand::Step(0), Operand::Const(Box::new(tiny))],
                    outputs: vec![],
                },
                Step {
                    kind: OpKind::Binary(BinaryOp::Div),
                    inputs: vec![Operand::Input(0), Operand::Step(1)],
                    outputs: vec![0],
                },
            ])
        }
        "Gelu" => {
            let tanh = match node.attr_str("approximate").unwrap_or("none") {
                "none" => false,
                "tanh" => true,
                other => return Err(invalid(format!("unknown approximate='{other}'"))),
            };
            Plan::op(OpKind::Unary(UnaryOp::Gelu { tanh }), vec![0])
        }
        "Clip" => {
            let bound = |attr: &str, input: usize, what: &str| -> Result<Option<f64>, Reject> {
                if opset < 11 {
                    return Ok(node.attr_float(attr).map(f64::from));
                }
                Ok(ops.floats(node, input, what)?.and_then(|v| v.first().copied()))
            };
            let min = bound("min", 1, "the min bound")?.unwrap_or(f64::NEG_INFINITY);
            let max = bound("max", 2, "the max bound")?.unwrap_or(f64::INFINITY);
            if min.is_nan() || max.is_nan() {
                return Err(invalid("Clip with a NaN bound"));
            }
            Plan::op(OpKind::Unary(UnaryOp::Clip { min, max }), vec![0])
        }
        "Where" => Plan::op(OpKind::Where, vec![0, 1, 2]),
        "Cast" => {
            let to = node
                .attr_int("to")
                .ok_or_else(|| invalid("Cast without 'to'"))
                .and_then(dtype_attr)?;
            Plan::op(OpKind::Cast { to }, vec![0])
        }
        "CastLike" => Plan::op(OpKind::Cast { to: ops.dtype(1)? }, vec![0]),
        "Softmax" | "LogSoftmax" => softmax(node, opset, ops, op == "LogSoftmax")?,
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// A variadic op (Min, Max) as a chain of binary ops.
fn variadic(node: &Node, kind: OpKind) -> Result<Plan, Reject> {
    let n = node.inputs.len();
    match n {
        0 => Err(invalid("no inputs")),
        1 => Ok(Plan::Alias(0, vec![])),
        _ => {
            let mut steps = Vec::new();
            let mut acc = Operand::Input(0);
            for i in 1..n {
                steps.push(Step {
                    kind: kind.clone(),
                    inputs: vec![acc, Operand::Input(i)],
                    outputs: if i == n - 1 { vec![0] } else { vec![] },
                });
                acc = Operand::Step(steps.len() - 1);
            }
            Ok(Plan::Steps(steps))
        }
    }
}

fn softmax(node: &Node, opset: i64, ops: &Operands, log: bool) -> Result<Plan, Reject> {
    let dims = ops.dims(0)?;
    let rank = dims.len();
    let default = if opset >= 13 { -1 } else { 1 };
    let axis = normalize_axis(node.attr_int("axis").unwrap_or(default), rank)?;
    if opset >= 13 || axis + 1 == rank {
        return Ok(Plan::op(OpKind::Softmax { axis, log }, vec![0]));
    }
    // Before opset 13 the input is coerced to 2-D at `axis` and normalised over the second part.
    let outer = super::product(&dims[..axis])?;
    let inner = super::product(&dims[axis..])?;
    if inner == 0 {
        return Err(unsupported("softmax over an empty axis", "check the export"));
    }
    Ok(Plan::Steps(vec![
        Step {
            kind: OpKind::Reshape {
                shape: vec![outer, inner],
            },
            inputs: vec![Operand::Input(0)],
            outputs: vec![],
        },
        Step {
            kind: OpKind::Softmax { axis: 1, log },
            inputs: vec![Operand::Step(0)],
            outputs: vec![],
        },
        Step {
            kind: OpKind::Reshape { shape: dims.to_vec() },
            inputs: vec![Operand::Step(1)],
            outputs: vec![0],
        },
    ]))
}
