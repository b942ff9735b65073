//! Matrix products, convolutions, pools, normalisations, reductions and quantization.

use super::{
    attr_or_input, invalid, normalize_axes, normalize_axis, unsupported, Operand, Operands, Plan, Reject,
    Step,
};
use crate::frontend::consts::{Const, Values};
use crate::frontend::model::Node;
use lpuc_ir::{BinaryOp, DType, OpKind, PoolKind, ReduceOp, TensorType, UnaryOp, Window};

pub(super) fn translate(node: &Node, ops: &Operands) -> Result<Option<Plan>, Reject> {
    let present = |range: std::ops::Range<usize>| range.filter(|&i| ops.present(i)).collect::<Vec<_>>();
    let plan = match node.op_type.as_str() {
        "MatMul" => Plan::op(OpKind::MatMul, vec![0, 1]),
        "MatMulInteger" => Plan::Steps(vec![Step {
            kind: OpKind::MatMulInteger,
            inputs: positional_zero_points(ops)?,
            outputs: vec![0],
        }]),
        "Gemm" => Plan::op(
            OpKind::Gemm {
                trans_a: node.attr_int("transA").unwrap_or(0) != 0,
                trans_b: node.attr_int("transB").unwrap_or(0) != 0,
                alpha: node.attr_float("alpha").unwrap_or(1.0),
                beta: node.attr_float("beta").unwrap_or(1.0),
            },
            present(0..3),
        ),
        "Einsum" => {
            let eq = node
                .attr_str("equation")
                .ok_or_else(|| invalid("Einsum without an equation"))?;
            let ranks = (0..node.inputs.len())
                .map(|i| ops.rank(i))
                .collect::<Result<Vec<_>, _>>()?;
            let equation =
                lpuc_ir::einsum::explicit_equation(eq, &ranks).map_err(|e| invalid(e.to_string()))?;
            Plan::op(OpKind::Einsum { equation }, (0..ranks.len()).collect())
        }
        "Conv" => {
            let w = ops.dims(1)?;
            let window = window(node, ops.dims(0)?, Some(&w[2.min(w.len())..]), false)?;
            let group = group(node)?;
            Plan::op(OpKind::Conv { window, group }, present(0..3))
        }
        "ConvTranspose" => conv_transpose(node, ops)?,
        "MaxPool" | "AveragePool" => {
            let indices = node.outputs.get(1).is_some_and(|o| !o.is_empty());
            let window = window(node, ops.dims(0)?, None, true)?;
            let kind = match (node.op_type.as_str(), indices) {
                ("MaxPool", false) => PoolKind::Max,
                ("MaxPool", true) => PoolKind::MaxWithIndices {
                    column_major: node.attr_int("storage_order").unwrap_or(0) != 0,
                },
                _ => PoolKind::Average {
                    count_include_pad: node.attr_int("count_include_pad").unwrap_or(0) != 0,
                },
            };
            Plan::Steps(vec![Step {
                kind: OpKind::Pool { kind, window },
                inputs: vec![Operand::Input(0)],
                outputs: if indices { vec![0, 1] } else { vec![0] },
            }])
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let rank = ops.rank(0)?;
            if rank < 3 {
                return Err(invalid(format!("global pool of rank {rank}")));
            }
            let op = if node.op_type == "GlobalMaxPool" {
                ReduceOp::Max
            } else {
                ReduceOp::Mean
            };
            Plan::op(
                OpKind::Reduce {
                    op,
                    axes: (2..rank).collect(),
                    keep_dims: true,
                },
                vec![0],
            )
        }
        "InstanceNormalization" => Plan::op(
            OpKind::InstanceNorm {
                epsilon: node.attr_float("epsilon").unwrap_or(1e-5),
            },
            vec![0, 1, 2],
        ),
        "GroupNormalization" => {
            let g = node
                .attr_int("num_groups")
                .ok_or_else(|| invalid("GroupNormalization without num_groups"))?;
            let groups = u64::try_from(g).map_err(|_| invalid(format!("num_groups {g}")))?;
            Plan::op(
                OpKind::GroupNorm {
                    groups,
                    epsilon: node.attr_float("epsilon").unwrap_or(1e-5),
                },
                vec![0, 1, 2],
            )
        }
        "ConvInteger" => {
            let w = ops.dims(1)?;
            let window = window(node, ops.dims(0)?, Some(&w[2.min(w.len())..]), false)?;
            let kind = OpKind::ConvInteger {
                window,
                group: group(node)?,
            };
            Plan::Steps(vec![Step {
                kind,
                inputs: positional_zero_points(ops)?,
                outputs: vec![0],
            }])
        }
        "QLinearConv" => {
            let w = ops.dims(3)?;
            let window = window(node, ops.dims(0)?, Some(&w[2.min(w.len())..]), false)?;
            let inputs = (0..9).filter(|&i| i < 8 || ops.present(i)).collect();
            Plan::op(
                OpKind::QLinearConv {
                    window,
                    group: group(node)?,
                },
                inputs,
            )
        }
        "QLinearMatMul" => Plan::op(OpKind::QLinearMatMul, (0..8).collect()),
        "BatchNormalization" => {
            if node.outputs.iter().skip(1).any(|o| !o.is_empty())
                || node.attr_int("training_mode").unwrap_or(0) != 0
            {
                return Err(unsupported(
                    "BatchNormalization's training outputs (running mean and variance) are not produced",
                    "export in inference mode (model.eval())",
                ));
            }
            Plan::op(
                OpKind::BatchNorm {
                    epsilon: node.attr_float("epsilon").unwrap_or(1e-5),
                },
                vec![0, 1, 2, 3, 4],
            )
        }
        "LayerNormalization" => {
            let stats = node.outputs.iter().skip(1).any(|o| !o.is_empty());
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), ops.rank(0)?)?;
            Plan::Steps(vec![Step {
                kind: OpKind::LayerNorm {
                    axis,
                    epsilon: node.attr_float("epsilon").unwrap_or(1e-5),
                    stats,
                },
                inputs: present(0..3).into_iter().map(Operand::Input).collect(),
                outputs: if stats { vec![0, 1, 2] } else { vec![0] },
            }])
        }
        "RMSNormalization" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), ops.rank(0)?)?;
            Plan::op(
                OpKind::RmsNorm {
                    axis,
                    epsilon: node.attr_float("epsilon").unwrap_or(1e-5),
                },
                vec![0, 1],
            )
        }
        "ArgMax" | "ArgMin" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(0), ops.rank(0)?)?;
            Plan::op(
                OpKind::ArgReduce {
                    max: node.op_type == "ArgMax",
                    axis,
                    keep_dims: node.attr_int("keepdims").unwrap_or(1) != 0,
                    select_last: node.attr_int("select_last_index").unwrap_or(0) != 0,
                },
                vec![0],
            )
        }
        "TopK" => {
            let axis = normalize_axis(node.attr_int("axis").unwrap_or(-1), ops.rank(0)?)?;
            let k = super::attr_or_input(node, ops, "k", 1, "K")?
                .and_then(|v| v.first().copied())
                .ok_or_else(|| invalid("TopK without K"))?;
            let k = u64::try_from(k).map_err(|_| invalid(format!("K={k}")))?;
            Plan::Steps(vec![Step {
                kind: OpKind::TopK {
                    axis,
                    k,
                    largest: node.attr_int("largest").unwrap_or(1) != 0,
                },
                inputs: vec![Operand::Input(0)],
                outputs: vec![0, 1],
            }])
        }
        "CumSum" => {
            let axis = ops
                .ints(node, 1, "the axis")?
                .and_then(|v| v.first().copied())
                .ok_or_else(|| invalid("CumSum without an axis"))?;
            Plan::op(
                OpKind::CumSum {
                    axis: normalize_axis(axis, ops.rank(0)?)?,
                    exclusive: node.attr_int("exclusive").unwrap_or(0) != 0,
                    reverse: node.attr_int("reverse").unwrap_or(0) != 0,
                },
                vec![0],
            )
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
        | "ReduceSumSquare" | "ReduceLogSum" | "ReduceLogSumExp" => reduce(node, ops)?,
        "QuantizeLinear" => {
            if node.attr_int("block_size").unwrap_or(0) != 0 {
                return Err(unsupported(
                    "blocked quantization",
                    "use per-tensor or per-axis scales",
                ));
            }
            let to = if ops.present(2) {
                ops.dtype(2)?
            } else {
                match node.attr_int("output_dtype").unwrap_or(0) {
                    0 => DType::U8,
                    code => super::dtype_attr(code)?,
                }
            };
            Plan::op(
                OpKind::Quantize {
                    axis: quant_axis(node, ops)?,
                    to,
                },
                present(0..3),
            )
        }
        "DequantizeLinear" => {
            if node.attr_int("block_size").unwrap_or(0) != 0 {
                return Err(unsupported(
                    "blocked quantization",
                    "use per-tensor or per-axis scales",
                ));
            }
            Plan::op(
                OpKind::Dequantize {
                    axis: quant_axis(node, ops)?,
                },
                present(0..3),
            )
        }
        "DynamicQuantizeLinear" => Plan::Steps(vec![Step {
            kind: OpKind::DynamicQuantize,
            inputs: vec![Operand::Input(0)],
            outputs: vec![0, 1, 2],
        }]),
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

/// The axis of per-axis scales; irrelevant (0) when the scale is one value per tensor.
/// Operands of an integer op (A, B, optional zero points of A and B). Zero points are positional: a
/// missing A zero point before a present B one is a scalar 0 of A's type.
fn positional_zero_points(ops: &Operands) -> Result<Vec<Operand>, Reject> {
    let mut inputs: Vec<Operand> = vec![Operand::Input(0), Operand::Input(1)];
    if ops.present(3) && !ops.present(2) {
        let dtype = ops.dtype(0)?;
        let zero = Const::new(TensorType::new(dtype, vec![]), Values::Int(vec![0]), "zero point");
        inputs.push(Operand::Const(Box::new(zero)));
    } else if ops.present(2) {
        inputs.push(Operand::Input(2));
    }
    if ops.present(3) {
        inputs.push(Operand::Input(3));
    }
    Ok(inputs)
}

fn quant_axis(node: &Node, ops: &Operands) -> Result<usize, Reject> {
    let rank = ops.rank(0)?;
    let per_tensor = ops.ty(1).is_ok_and(|s| s.shape.num_elements() == Some(1));
    if rank == 0 || (per_tensor && node.attr_int("axis").is_none()) {
        return Ok(0);
    }
    normalize_axis(node.attr_int("axis").unwrap_or(1), rank)
}

fn group(node: &Node) -> Result<u64, Reject> {
    let g = node.attr_int("group").unwrap_or(1);
    u64::try_from(g)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| invalid(format!("group {g}")))
}

fn positive(values: &[i64], what: &str) -> Result<Vec<u64>, Reject> {
    values
        .iter()
        .map(|&v| u64::try_from(v).ok().filter(|&v| v > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid(format!("{what} {values:?} must be positive")))
}

/// The window of a Conv or pool: explicit pads, or pads resolved from `auto_pad`.
fn window(node: &Node, x: &[u64], weight_kernel: Option<&[u64]>, pool: bool) -> Result<Window, Reject> {
    let n = x
        .len()
        .checked_sub(2)
        .filter(|&n| n > 0)
        .ok_or_else(|| invalid(format!("input of rank {}", x.len())))?;
    let kernel = match (node.attr_ints("kernel_shape"), weight_kernel) {
        (Some(k), _) => positive(k, "kernel_shape")?,
        (None, Some(k)) if !pool => {
            if k.contains(&0) {
                return Err(invalid(format!("the weights' kernel {k:?} has a zero dim")));
            }
            k.to_vec()
        }
        _ => return Err(invalid("no kernel_shape")),
    };
    let ones = vec![1i64; n];
    let strides = positive(node.attr_ints("strides").unwrap_or(&ones), "strides")?;
    let dilations = positive(node.attr_ints("dilations").unwrap_or(&ones), "dilations")?;
    if kernel.len() != n || strides.len() != n || dilations.len() != n {
        return Err(invalid(format!(
            "window attributes do not match {n} spatial dims"
        )));
    }
    let ceil_mode = node.attr_int("ceil_mode").unwrap_or(0) != 0;
    let pads = match node.attr_str("auto_pad").unwrap_or("NOTSET") {
        "NOTSET" => {
            let zeros = vec![0i64; 2 * n];
            let p = node.attr_ints("pads").unwrap_or(&zeros);
            if p.len() != 2 * n || p.iter().any(|&v| v < 0) {
                return Err(invalid(format!("pads {p:?} for {n} spatial dims")));
            }
            p.iter().map(|&v| v as u64).collect()
        }
        "VALID" => vec![0; 2 * n],
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let mut pads = vec![0u64; 2 * n];
            for i in 0..n {
                let out = x[2 + i].div_ceil(strides[i]);
                let span = (kernel[i] - 1)
                    .checked_mul(dilations[i])
                    .and_then(|v| v.checked_add(1))
                    .and_then(|span| out.saturating_sub(1).checked_mul(strides[i])?.checked_add(span))
                    .ok_or_else(|| invalid("the window's extent overflows"))?;
                let total = span.saturating_sub(x[2 + i]);
                let small = total / 2;
                let (b, e) = if mode == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[i] = b;
                pads[n + i] = e;
            }
            pads
        }
        other => return Err(invalid(format!("unknown auto_pad '{other}'"))),
    };
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads,
        ceil_mode,
    })
}

fn conv_transpose(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let x = ops.dims(0)?;
    let w = ops.dims(1)?;
    let n = x.len().saturating_sub(2);
    let mut plain = node.clone();
    plain.attrs.remove("auto_pad");
    plain.attrs.remove("pads");
    let mut window = window(&plain, x, Some(&w[2.min(w.len())..]), false)?;
    let mut output_padding = match node.attr_ints("output_padding") {
        Some(p) => p
            .iter()
            .map(|&v| u64::try_from(v).map_err(|_| invalid(format!("output_padding {p:?}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![0; n],
    };
    if output_padding.len() != n {
        return Err(invalid("output_padding does not match the spatial dims"));
    }
    let auto_pad = node.attr_str("auto_pad").unwrap_or("NOTSET");
    let output_shape = node.attr_ints("output_shape");
    if let Some(s) = output_shape {
        if s.len() != n && s.len() != n + 2 {
            return Err(invalid(format!("output_shape {s:?} for {n} spatial dims")));
        }
    }
    if x[2..].contains(&0) {
        return Err(invalid(format!("transposed convolution of an empty input {x:?}")));
    }
    if output_shape.is_some() || matches!(auto_pad, "SAME_UPPER" | "SAME_LOWER") {
        for i in 0..n {
            let too_big = || invalid("the transposed convolution's output size overflows");
            let span = (window.kernel[i] - 1)
                .checked_mul(window.dilations[i])
                .and_then(|v| v.checked_add(1))
                .ok_or_else(too_big)?;
            let full = window.strides[i]
                .checked_mul(x[2 + i] - 1)
                .and_then(|v| v.checked_add(output_padding[i]))
                .and_then(|v| v.checked_add(span))
                .ok_or_else(too_big)?;
            let target = match output_shape {
                Some(s) => {
                    let s = &s[s.len() - n..];
                    u64::try_from(s[i]).map_err(|_| invalid(format!("output_shape {s:?}")))?
                }
                None => x[2 + i].checked_mul(window.strides[i]).ok_or_else(too_big)?,
            };
            // An output_shape past the full output extends it like output_padding does.
            let Some(total) = full.checked_sub(target) else {
                window.pads[i] = 0;
                window.pads[n + i] = 0;
                output_padding[i] += target - full;
                continue;
            };
            let (b, e) = if auto_pad == "SAME_UPPER" {
                (total / 2, total - total / 2)
            } else {
                (total - total / 2, total / 2)
            };
            window.pads[i] = b;
            window.pads[n + i] = e;
        }
    } else if let Some(p) = node.attr_ints("pads") {
        if p.len() != 2 * n || p.iter().any(|&v| v < 0) {
            return Err(invalid(format!("pads {p:?}")));
        }
        window.pads = p.iter().map(|&v| v as u64).collect();
    }
    let present = (0..3).filter(|&i| ops.present(i)).collect();
    Ok(Plan::op(
        OpKind::ConvTranspose {
            window,
            group: group(node)?,
            output_padding,
        },
        present,
    ))
}

fn reduce(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let op = match node.op_type.as_str() {
        "ReduceMean" => ReduceOp::Mean,
        "ReduceSum" => ReduceOp::Sum,
        "ReduceMax" => ReduceOp::Max,
        "ReduceMin" => ReduceOp::Min,
        "ReduceProd" => ReduceOp::Prod,
        "ReduceL1" => ReduceOp::L1,
        "ReduceL2" => ReduceOp::L2,
        "ReduceLogSum" => ReduceOp::LogSum,
        "ReduceLogSumExp" => ReduceOp::LogSumExp,
        _ => ReduceOp::SumSquare,
    };
    let rank = ops.rank(0)?;
    let keep_dims = node.attr_int("keepdims").unwrap_or(1) != 0;
    let axes = attr_or_input(node, ops, "axes", 1, "the axes")?.unwrap_or_default();
    let axes = if axes.is_empty() {
        if node.attr_int("noop_with_empty_axes").unwrap_or(0) != 0 {
            // No reduction, but the composite reductions still apply their elementwise part.
            return Ok(match op {
                ReduceOp::L1 | ReduceOp::L2 => Plan::op(OpKind::Unary(UnaryOp::Abs), vec![0]),
                ReduceOp::LogSum => Plan::op(OpKind::Unary(UnaryOp::Log), vec![0]),
                ReduceOp::SumSquare => Plan::op(OpKind::Binary(BinaryOp::Mul), vec![0, 0]),
                _ => Plan::Alias(0, vec![]),
            });
        }
        (0..rank).collect()
    } else {
        normalize_axes(&axes, rank)?
    };
    Ok(Plan::op(OpKind::Reduce { op, axes, keep_dims }, vec![0]))
}
