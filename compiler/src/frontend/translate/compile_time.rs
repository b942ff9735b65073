//! Nodes that never reach the chip: constants, shape queries, Range, ConstantOfShape, identities.

use super::{invalid, unsupported, Operands, Plan, Reject};
use crate::checker::Category;
use crate::frontend::consts::{self, Const, Values, FOLD_LIMIT};
use crate::frontend::model::{Attr, Node};
use lpuc_ir::{DType, TensorType};

pub(super) fn translate(node: &Node, opset: i64, ops: &Operands) -> Result<Option<Plan>, Reject> {
    let plan = match node.op_type.as_str() {
        "Constant" => Plan::Consts(vec![constant(node)?]),
        "Identity" => {
            ops.ty(0)?;
            Plan::Alias(0, vec![])
        }
        "Dropout" => dropout(node, opset, ops)?,
        "Shape" => {
            let dims = ops.dims(0)?;
            let r = dims.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clamp(node.attr_int("start").unwrap_or(0));
            let end = clamp(node.attr_int("end").unwrap_or(r));
            let vals: Vec<i64> = dims[start..end.max(start)].iter().map(|&d| d as i64).collect();
            Plan::Consts(vec![Const::int_vector(
                vals,
                format!("Shape({})", node.inputs[0]),
            )])
        }
        "Size" => {
            let n = ops
                .ty(0)?
                .shape
                .num_elements()
                .ok_or_else(|| invalid("size overflows"))?;
            Plan::Consts(vec![Const::new(
                TensorType::new(DType::I64, vec![]),
                Values::Int(vec![n as i64]),
                format!("Size({})", node.inputs[0]),
            )])
        }
        "Range" => range(node, ops)?,
        "ConstantOfShape" => constant_of_shape(node, ops)?,
        "EyeLike" => eye_like(node, ops)?,
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

fn constant(node: &Node) -> Result<Const, Reject> {
    let scalar = |dtype: DType, values: Values, dims: Vec<u64>| {
        Const::new(TensorType::new(dtype, dims), values, node.name.clone())
    };
    let c = match node.attrs.iter().next() {
        Some((name, Attr::Tensor(t))) if name == "value" => {
            let c = consts::from_tensor(t, None)
                .map_err(invalid)?
                .ok_or_else(|| {
                    (
                        Category::UnsupportedDtype,
                        format!("constant of element type {} has no LPU dtype", t.elem_type),
                        "use a float32, float16, int8 or int64 constant",
                    )
                })?;
            Const {
                source: node.name.clone(),
                ..c
            }
        }
        Some((name, Attr::Float(f))) if name == "value_float" => {
            scalar(DType::F32, Values::Float(vec![f64::from(*f)]), vec![])
        }
        Some((name, Attr::Int(i))) if name == "value_int" => scalar(DType::I64, Values::Int(vec![*i]), vec![]),
        Some((name, Attr::Floats(f))) if name == "value_floats" => scalar(
            DType::F32,
            Values::Float(f.iter().map(|&v| f64::from(v)).collect()),
            vec![f.len() as u64],
        ),
        Some((name, Attr::Ints(i))) if name == "value_ints" => {
            scalar(DType::I64, Values::Int(i.clone()), vec![i.len() as u64])
        }
        _ => {
            return Err(unsupported(
                "only Constant with value, value_float(s) or value_int(s) is lowered (not sparse or string values)",
                "export the constant as a dense initializer",
            ))
        }
    };
    Ok(c)
}

fn dropout(node: &Node, opset: i64, ops: &Operands) -> Result<Plan, Reject> {
    ops.ty(0)?;
    if opset >= 12 {
        if let Some(training) = ops.ints(node, 2, "training_mode")? {
            if training.first().is_some_and(|&t| t != 0) {
                return Err((
                    Category::Random,
                    "Dropout in training mode drops random elements".into(),
                    "export in inference mode (model.eval())",
                ));
            }
        }
    }
    let mut rest = Vec::new();
    if node.outputs.get(1).is_some_and(|m| !m.is_empty()) {
        let ty = TensorType::new(DType::Bool, ops.dims(0)?.to_vec());
        let n = ty.shape.num_elements().unwrap_or(u64::MAX);
        rest.push(Const {
            values: (n <= FOLD_LIMIT).then(|| Values::Bool(vec![true; n as usize])),
            ..Const::opaque(ty, format!("{}.mask (all true in inference)", node.name))
        });
    }
    Ok(Plan::Alias(0, rest))
}

fn scalar_of(node: &Node, ops: &Operands, i: usize, what: &str) -> Result<f64, Reject> {
    let v = ops
        .floats(node, i, what)?
        .ok_or_else(|| invalid(format!("Range needs {what}")))?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(invalid(format!("Range's {what} must be a scalar"))),
    }
}

fn range(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let dtype = ops.dtype(0)?;
    let start = scalar_of(node, ops, 0, "start")?;
    let limit = scalar_of(node, ops, 1, "limit")?;
    let delta = scalar_of(node, ops, 2, "delta")?;
    if delta == 0.0 || !delta.is_finite() || !start.is_finite() || !limit.is_finite() {
        return Err(invalid("Range with a zero or non-finite delta"));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > lpuc_ir::shape::MAX_ELEMENTS as f64 {
        return Err(invalid("Range has more than 2^48 elements"));
    }
    let n = n as u64;
    let ty = TensorType::new(dtype, vec![n]);
    let values = (n <= FOLD_LIMIT)
        .then(|| Values::Float((0..n).map(|i| start + i as f64 * delta).collect()).cast(dtype));
    Ok(Plan::Consts(vec![Const {
        values,
        ..Const::opaque(ty, format!("Range({start}, {limit}, {delta})"))
    }]))
}

fn constant_of_shape(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let dims = super::sizes(ops.ints(node, 0, "the shape")?, "the shape")?;
    let (dtype, fill) = match node.attrs.get("value") {
        Some(Attr::Tensor(t)) => {
            let c = consts::from_tensor(t, None).map_err(invalid)?.ok_or_else(|| {
                (
                    Category::UnsupportedDtype,
                    format!("fill value of element type {}", t.elem_type),
                    "use a float32, float16, int8 or int64 fill value",
                )
            })?;
            let v = c
                .values
                .filter(|v| v.len() == 1)
                .ok_or_else(|| invalid("ConstantOfShape's value must hold one element"))?;
            (c.ty.dtype, v)
        }
        _ => (DType::F32, Values::Float(vec![0.0])),
    };
    let ty = TensorType::new(dtype, dims);
    let n = ty
        .shape
        .num_elements()
        .ok_or_else(|| invalid("ConstantOfShape has more than 2^48 elements"))?;
    let values = (n <= FOLD_LIMIT).then(|| fill.pick(&vec![0; n as usize]));
    Ok(Plan::Consts(vec![Const {
        values,
        ..Const::opaque(
            ty,
            format!("{} (every element {:?})", node.name, fill.to_floats()[0]),
        )
    }]))
}

/// EyeLike: ones on diagonal `k` of a 2-D shape, zeros elsewhere.
fn eye_like(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let d = ops.dims(0)?;
    let [rows, cols] = <[u64; 2]>::try_from(d).map_err(|_| invalid(format!("EyeLike of {d:?}")))?;
    let dtype = match node.attr_int("dtype") {
        Some(code) => super::dtype_attr(code)?,
        None => ops.dtype(0)?,
    };
    let k = node.attr_int("k").unwrap_or(0);
    let ty = TensorType::new(dtype, vec![rows, cols]);
    let n = rows.saturating_mul(cols);
    let values = (n <= FOLD_LIMIT).then(|| {
        let ones = (0..rows).flat_map(|r| (0..cols).map(move |c| i64::from(c as i64 - r as i64 == k)));
        Values::Int(ones.collect()).cast(dtype)
    });
    Ok(Plan::Consts(vec![Const {
        values,
        ..Const::opaque(ty, format!("{} (identity, diagonal {k})", node.name))
    }]))
}
