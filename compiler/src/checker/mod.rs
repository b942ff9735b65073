//! The operator-subset checker: a validator over the capability table.
//!
//! It returns every violation at once (unknown ops were imported as placeholder nodes for exactly
//! this), each naming the ONNX node, its op type, the reason and a hint. The lowering adds the
//! violations only it can see (shapes that do not match, attributes it cannot honour).

pub mod capabilities;
pub mod onnx_ops;
pub mod policy_text;
pub mod violation;

pub use capabilities::{capability, policy_table, Capability, OpPolicy, OPSETS};
pub use violation::{Category, Violation};

use crate::frontend::model::{ir_dtype, Attr, Dim, OnnxModel};
use crate::frontend::DimBinder;

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
    let opset = model.opset();
    if opset < *OPSETS.start() {
        out.push(Violation::new(
            Category::NotYetSupported,
            &model.graph_name,
            "opset_import",
            format!(
                "the model imports default-domain opset {opset}; lpuc implements opsets {}-{}",
                OPSETS.start(),
                OPSETS.end()
            ),
            "re-export with a newer opset (torch.onnx.export(..., opset_version=17)) or convert it with onnx.version_converter",
        ));
    }
    for node in &model.nodes {
        let op = if node.domain.is_empty() {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        };
        let cap = capability(&node.domain, &node.op_type);
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
        if let Some(given) = binder.inputs.get(&input.name) {
            if binder.input_dims(input, &mut Default::default()).is_none() {
                out.push(Violation::new(
                    Category::InvalidModel,
                    &input.name,
                    op,
                    format!("--input gives {given:?}, which does not match the declared shape"),
                    "give one size per dim, equal to every fixed dim the model declares",
                ));
            }
            continue;
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
                    format!(
                        "pass the whole shape with --input {}=DIMS (e.g. 1x3x224x224)",
                        input.name
                    ),
                )),
            }
        }
    }
}
