//! The operator-subset checker: a validator over the capability table.
//!
//! It returns every violation at once (unknown ops were imported as placeholder nodes for exactly
//! this), each naming the ONNX node, its op type, the reason and a hint. The lowering adds the
//! violations only it can see (shapes that do not match, attributes it cannot honour).

pub mod capabilities;
pub mod onnx_ops;
pub mod violation;

pub use capabilities::{capability, Capability};
pub use violation::{Category, Violation};

use crate::frontend::model::{ir_dtype, Attr, Dim, OnnxModel};
use crate::frontend::DimBinder;
use std::collections::BTreeSet;

/// Check graph inputs, initializers and every node against the capability table.
pub fn check_model(model: &OnnxModel, binder: &DimBinder) -> Vec<Violation> {
    let mut out = Vec::new();
    check_inputs(model, binder, &mut out);
    for (name, t) in &model.initializers {
        if t.elem_type != 11 {
            if let Err(why) = ir_dtype(t.elem_type) {
                out.push(Violation::new(
                    Category::UnsupportedDtype,
                    name,
                    "initializer",
                    why,
                    "store weights as float32, float16, bfloat16 or int8",
                ));
            }
        }
    }
    let constants: BTreeSet<&str> = model
        .initializers
        .keys()
        .map(String::as_str)
        .chain(
            model
                .nodes
                .iter()
                .filter(|n| n.op_type == "Constant" && n.domain.is_empty())
                .flat_map(|n| n.outputs.iter().map(String::as_str)),
        )
        .collect();
    for node in &model.nodes {
        let op = if node.domain.is_empty() {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        };
        let mut cap = capability(&node.domain, &node.op_type);
        if let Capability::NeedsConstantInputs { inputs, then } = &cap {
            let runtime: Vec<&str> = inputs
                .iter()
                .filter_map(|&i| node.input(i))
                .filter(|name| !constants.contains(name))
                .collect();
            if !runtime.is_empty() {
                out.push(Violation::new(
                    Category::DataDependentShape,
                    &node.name,
                    &op,
                    format!(
                        "the output size is given by {}, computed at run time",
                        runtime
                            .iter()
                            .map(|r| format!("'{r}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "make the size a constant (an initializer), or bind the dims it is computed from",
                ));
                continue;
            }
            cap = (**then).clone();
        }
        if let Capability::Rejected {
            category,
            reason,
            hint,
        } = cap
        {
            out.push(Violation::new(category, &node.name, &op, reason, hint));
            continue;
        }
        if node.op_type == "Constant" {
            if let Some(Attr::Tensor(t)) = node.attrs.get("value") {
                if let Err(why) = ir_dtype(t.elem_type) {
                    out.push(Violation::new(
                        Category::UnsupportedDtype,
                        &node.name,
                        &op,
                        why,
                        "use a float32, float16, int8 or int64 constant",
                    ));
                }
            }
        }
    }
    out
}

fn check_inputs(model: &OnnxModel, binder: &DimBinder, out: &mut Vec<Violation>) {
    for input in &model.inputs {
        let op = "graph-input";
        if !input.is_tensor {
            out.push(Violation::new(
                Category::DataDependentShape,
                &input.name,
                op,
                "a sequence, map or optional input has a run-time length",
                "export with plain tensor inputs",
            ));
            continue;
        }
        if let Err(why) = ir_dtype(input.elem_type) {
            let why = if input.elem_type == 11 {
                "float64 inputs are not castable at compile time; the LPU has no float64 datapath"
            } else {
                why
            };
            out.push(Violation::new(
                Category::UnsupportedDtype,
                &input.name,
                op,
                why,
                "export the model with float32 (or narrower) inputs",
            ));
        }
        let Some(dims) = &input.dims else {
            out.push(Violation::new(
                Category::UnboundDim,
                &input.name,
                op,
                "the input declares no shape",
                "export with input shapes (e.g. torch.onnx.export with dynamic_axes naming each dynamic dim)",
            ));
            continue;
        };
        for (axis, d) in dims.iter().enumerate() {
            match d {
                Dim::Known(0) => out.push(Violation::new(
                    Category::InvalidModel,
                    &input.name,
                    op,
                    format!("dim {axis} is 0"),
                    "an empty tensor cannot be scheduled; check the export",
                )),
                Dim::Known(_) => {}
                Dim::Named(name) => {
                    if binder.bind(name).is_none() {
                        out.push(Violation::new(
                            Category::UnboundDim,
                            &input.name,
                            op,
                            format!("dim {axis} '{name}' is symbolic and no flag binds it"),
                            binder.hint(name),
                        ));
                    }
                }
                Dim::Unknown => out.push(Violation::new(
                    Category::UnboundDim,
                    &input.name,
                    op,
                    format!("dim {axis} has neither a size nor a name"),
                    "name the dim in the export (dynamic_axes) and bind it with --dim NAME=N",
                )),
            }
        }
    }
}
