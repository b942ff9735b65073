//! Running one of ONNX's backend node tests through the frontend: import, bind, check, lower, and
//! compare the static types the IR infers for the graph outputs with the reference outputs, and the
//! values of outputs that folded to constants.
//!
//! A node test's folder holds `model.onnx` and `test_data_set_0/{input,output}_<i>.pb`. The inputs
//! give every graph input its shape (node tests often declare none); inputs that a node needs as a
//! compile-time constant (a Reshape's shape, Slice's bounds, ...) are fed with their values, as a
//! user's exporter would have written them as initializers. The verdict is `Unsupported` only when
//! the capability table rejects an op or a dtype has no LPU type, so the allowlist can never
//! disagree with the table: every other outcome is a pass or a failure with its reason.
//!
//! A test whose types pass is then run for its numbers: lowered again with its initializers'
//! values, scheduled on one chip as `lpuc compile` would (rewrites included), and executed by the
//! functional emulator on the test's inputs; the outputs must match `output_<i>.pb` within
//! `rtol` 1e-3 and `atol` 1e-5 ([`Numeric`]).

use super::tensors::{data_files, read_tensor};
use crate::checker::{capability, check_model, Capability, Category};
use crate::frontend::consts::{self, Const, Values};
use crate::frontend::load::{const_tensor, load_model};
use crate::frontend::lower::lower_with;
use crate::frontend::model::ir_dtype;
use crate::frontend::DimBinder;
use onnx_protobuf::TensorProto;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The outcome of one node test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Unsupported(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Unsupported(_) => "unsupported",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass => "",
            Verdict::Fail(d) | Verdict::Unsupported(d) => d,
        }
    }
}

/// What executing a node test's schedule gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Numeric {
    /// The outputs match the reference.
    Pass,
    /// They do not, or the schedule could not be executed: why.
    Fail(String),
    /// An op has no reference kernel in the emulator yet.
    NoKernel(String),
    /// Not run: the types did not pass, or the model does not fit one chip.
    NotRun(String),
}

impl Numeric {
    pub fn label(&self) -> &'static str {
        match self {
            Numeric::Pass => "pass",
            Numeric::Fail(_) => "fail",
            Numeric::NoKernel(_) => "no-kernel",
            Numeric::NotRun(_) => "-",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Numeric::Pass => "",
            Numeric::Fail(d) | Numeric::NoKernel(d) | Numeric::NotRun(d) => d,
        }
    }
}

/// Tolerances of the numeric comparison (ONNX's backend tests use rtol 1e-3).
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-5;

/// One node test's ops and verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTestResult {
    /// Sorted, distinct op types of the model's nodes (`domain::Op` outside the default domain).
    pub ops: Vec<String>,
    pub verdict: Verdict,
    pub numeric: Numeric,
}

/// Run the node test in `dir`.
pub fn run_node_test(dir: &Path) -> NodeTestResult {
    let model = match load_model(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            return NodeTestResult {
                ops: vec![],
                verdict: Verdict::Fail(format!("load: {e}")),
                numeric: Numeric::NotRun(String::new()),
            }
        }
    };
    let ops: Vec<String> = model
        .nodes
        .iter()
        .map(|n| {
            if n.domain.is_empty() {
                n.op_type.clone()
            } else {
                format!("{}::{}", n.domain, n.op_type)
            }
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (verdict, numeric) = match verdict(dir, &model) {
        Ok(run) => (Verdict::Pass, numeric(dir, &run)),
        Err(v) => (v, Numeric::NotRun(String::new())),
    };
    NodeTestResult {
        ops,
        verdict,
        numeric,
    }
}

/// What a test whose types passed is executed with: how it was bound, which inputs were fed as
/// constants, and the data.
struct Run {
    binder: DimBinder,
    known: BTreeMap<String, Const>,
    inputs: Vec<TensorProto>,
    outputs: Vec<TensorProto>,
}

/// Lower with values, schedule on one chip, execute on the test's inputs and compare.
fn numeric(dir: &Path, run: &Run) -> Numeric {
    use crate::frontend::load::load_model_with_values;
    let target = lpuc_target::Target::lpu_v1();
    let model = match load_model_with_values(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => return Numeric::Fail(format!("load with values: {e}")),
    };
    let lowered = lower_with(&model, &run.binder, &run.known);
    let Some(graph) = lowered.graph else {
        return Numeric::Fail("lowering with values failed".into());
    };
    // The graph's inputs, by name, from the data files.
    let as_tensor = |t: &TensorProto| super::tensors::to_tensor(t).ok();
    let by_name = run
        .inputs
        .iter()
        .all(|t| model.inputs.iter().any(|i| i.name == t.name));
    let mut inputs = Vec::new();
    for &v in graph.inputs() {
        let name = &graph.value(v).name;
        let data = if by_name {
            run.inputs.iter().find(|t| &t.name == name)
        } else {
            model
                .inputs
                .iter()
                .position(|i| &i.name == name)
                .and_then(|k| run.inputs.get(k))
        };
        match data.and_then(as_tensor) {
            Some(t) => inputs.push(t),
            None => return Numeric::Fail(format!("no data for input '{name}'")),
        }
    }
    let forms = match super::forms::Forms::new(graph, true, &target) {
        Ok(f) => f,
        Err(e) => return Numeric::Fail(e.to_string()),
    };
    let (graph, schedule, _, _) = match forms.schedule_single(&target) {
        Ok(done) => done,
        Err(e) => return Numeric::NotRun(e.to_string()),
    };
    let mut dataflow = crate::scheduler::dataflow::single_chip(graph, &schedule);
    let blob =
        match super::embed::embed_weights(&mut dataflow, &lowered.weight_values, &lowered.unknown_weights) {
            Ok(b) => b,
            Err(e) => return Numeric::Fail(e.to_string()),
        };
    let got = match lpuc_emulator::functional::execute_parts(&schedule, &dataflow, Some(&blob), &inputs) {
        Ok(r) => r,
        Err(e) => {
            let text = e.to_string();
            return if text.contains("no kernel for") {
                Numeric::NoKernel(text)
            } else {
                Numeric::Fail(text)
            };
        }
    };
    for (k, ((_, got), expected)) in got.outputs.iter().zip(&run.outputs).enumerate() {
        let Some(want) = as_tensor(expected) else {
            return Numeric::Fail(format!("output {k}: the reference cannot be decoded"));
        };
        match super::tensors::compare(got, &want, RTOL, ATOL) {
            Ok((_, _, true)) => {}
            Ok((abs, rel, false)) => {
                return Numeric::Fail(format!(
                    "output {k}: max abs error {abs:.3e}, max rel error {rel:.3e}"
                ))
            }
            Err(e) => return Numeric::Fail(format!("output {k}: {e}")),
        }
    }
    Numeric::Pass
}

fn verdict(dir: &Path, model: &crate::frontend::OnnxModel) -> Result<Run, Verdict> {
    let mut needs_values: BTreeSet<&str> = BTreeSet::new();
    for n in &model.nodes {
        match capability(&n.domain, &n.op_type) {
            Capability::Rejected { category, reason, .. } => {
                return Err(Verdict::Unsupported(format!(
                    "{} ({}): {reason}",
                    n.op_type,
                    category.label()
                )))
            }
            Capability::Supported { rule } | Capability::Folded { rule } => {
                needs_values.extend(rule.constant_inputs.iter().filter_map(|&i| n.input(i)));
            }
        }
    }
    if model.inputs.iter().chain(&model.outputs).any(|v| !v.is_tensor) {
        return Err(Verdict::Unsupported(
            "sequence or optional values (no fixed size)".into(),
        ));
    }
    if model.opset() < *crate::checker::OPSETS.start() {
        return Err(Verdict::Unsupported(format!(
            "opset {} is below 11",
            model.opset()
        )));
    }
    // A value feeding a shape-deciding input must be known too: walk producers backwards.
    for n in model.nodes.iter().rev() {
        if n.outputs.iter().any(|o| needs_values.contains(o.as_str())) {
            needs_values.extend(n.inputs.iter().filter(|i| !i.is_empty()).map(String::as_str));
        }
    }
    let set = dir.join("test_data_set_0");
    let read = |prefix| {
        data_files(&set, prefix)
            .iter()
            .map(|p| read_tensor(p))
            .collect::<Result<Vec<_>, _>>()
    };
    let (inputs, outputs) = match (read("input_"), read("output_")) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => return Err(Verdict::Fail(e)),
    };
    for t in inputs.iter().chain(&outputs) {
        if let Err(why) = ir_dtype(t.data_type) {
            return Err(Verdict::Unsupported(format!(
                "element type {}: {why}",
                t.data_type
            )));
        }
    }
    let mut binder = DimBinder::default();
    let mut known: BTreeMap<String, Const> = BTreeMap::new();
    // Data files pair with graph inputs by their tensor name, or by position when unnamed.
    let by_name = inputs
        .iter()
        .all(|t| model.inputs.iter().any(|i| i.name == t.name));
    let pairs: Vec<(&crate::frontend::model::ValueInfo, &TensorProto)> = if by_name {
        inputs
            .iter()
            .filter_map(|t| model.inputs.iter().find(|i| i.name == t.name).map(|i| (i, t)))
            .collect()
    } else {
        model.inputs.iter().zip(&inputs).collect()
    };
    for (info, t) in pairs {
        let dims: Vec<u64> = t.dims.iter().map(|&d| d.max(0) as u64).collect();
        if needs_values.contains(info.name.as_str()) {
            let c = const_tensor(t, &info.name)
                .ok()
                .and_then(|c| consts::from_tensor(&c, None).ok().flatten());
            if let Some(c) = c {
                known.insert(info.name.clone(), c);
                continue;
            }
        }
        binder.inputs.insert(info.name.clone(), dims);
    }
    let mut violations = check_model(model, &binder);
    violations.retain(|v| !known.contains_key(&v.node));
    let lowered = lower_with(model, &binder, &known);
    violations.extend(lowered.violations);
    if let Some(v) = violations.first() {
        if violations
            .iter()
            .all(|v| v.category == Category::UnsupportedDtype)
        {
            return Err(Verdict::Unsupported(v.to_string()));
        }
        return Err(Verdict::Fail(v.to_string()));
    }
    let Some(graph) = lowered.graph else {
        return Err(Verdict::Fail("a graph output was not computed".into()));
    };
    if graph.outputs().len() != outputs.len() {
        return Err(Verdict::Fail(format!(
            "{} outputs, {} reference outputs",
            graph.outputs().len(),
            outputs.len()
        )));
    }
    for (i, (&v, expected)) in graph.outputs().iter().zip(&outputs).enumerate() {
        let got = &graph.value(v).ty;
        let dims: Vec<u64> = expected.dims.iter().map(|&d| d.max(0) as u64).collect();
        let dtype = ir_dtype(expected.data_type).ok();
        if got.shape.dims() != dims || Some(got.dtype) != dtype {
            return Err(Verdict::Fail(format!(
                "output {i}: inferred {got}, reference {}{:?}",
                dtype.map_or("?".to_string(), |d| d.to_string()),
                dims
            )));
        }
    }
    for (&i, got) in &lowered.folded_outputs {
        if let Some(why) = compare_values(got, &outputs[i]) {
            return Err(Verdict::Fail(format!(
                "output {i} folded to values that differ from the reference: {why}"
            )));
        }
    }
    Ok(Run {
        binder,
        known,
        inputs,
        outputs,
    })
}

/// Where folded values differ from a reference tensor (floats within 1e-5 relative, 1e-6
/// absolute; integers and bools exactly), or `None` when they agree. References too large to
/// decode are not compared.
fn compare_values(got: &Values, reference: &TensorProto) -> Option<String> {
    let expected = const_tensor(reference, "reference")
        .ok()
        .and_then(|c| consts::from_tensor(&c, None).ok().flatten())
        .and_then(|c| c.values)?;
    let (a, b) = (got.to_floats(), expected.to_floats());
    if a.len() != b.len() {
        return Some(format!("{} values, reference has {}", a.len(), b.len()));
    }
    let exact = !matches!(expected, Values::Float(_));
    a.iter().zip(&b).enumerate().find_map(|(k, (&x, &y))| {
        let same = if exact {
            x == y
        } else {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-6 + 1e-5 * y.abs()
        };
        (!same).then(|| format!("element {k}: {x} where the reference has {y}"))
    })
}
