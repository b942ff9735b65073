//! The frontend on the patterns real exporters emit: shape subgraphs folded to constants, opset
//! variants lowering to the same IR, weight dequantization folded at compile time, dims written as
//! expressions, whole-input shapes, and what stays data-dependent after folding.

use lpuc::checker::Category;
use lpuc::driver::{check, lower_to, CompileOptions, Stage};
use lpuc_ir::{Graph, OpKind, ValueKind};
use lpuc_tests::{int, ints, lpuc, scratch, ModelBuilder, D, F32, I64, I8};
use std::path::PathBuf;

fn lowered(model: PathBuf, bucket: Option<u64>) -> Graph {
    lower_to(&lpuc_tests::options(model, bucket), Stage::Lower).unwrap_or_else(|e| panic!("{e}"))
}

fn op_names(g: &Graph) -> Vec<&'static str> {
    g.op_ids().map(|o| g.op(o).kind.name()).collect()
}

/// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as torch.onnx.export writes a head split.
fn head_split(opset: i64) -> ModelBuilder {
    let unsqueeze = |b: ModelBuilder, name: &str, input: &str, out: &str| {
        if opset >= 13 {
            b.node(name, "Unsqueeze", &[input, "axes0"], &[out])
        } else {
            b.node_with(name, "Unsqueeze", &[input], &[out], vec![ints("axes", &[0])])
        }
    };
    let b = ModelBuilder::new(opset)
        .input("x", F32, &[D::P("batch"), D::P("sequence"), D::N(128)])
        .int64s("axes0", &[0])
        .raw("i0", I64, &[], 0i64.to_le_bytes().to_vec())
        .raw("i1", I64, &[], 1i64.to_le_bytes().to_vec())
        .int64s("heads", &[4, 32])
        .node("shape", "Shape", &["x"], &["s"])
        .node("g0", "Gather", &["s", "i0"], &["b"])
        .node("g1", "Gather", &["s", "i1"], &["t"]);
    let b = unsqueeze(b, "u0", "b", "b1");
    let b = unsqueeze(b, "u1", "t", "t1");
    b.node_with(
        "cat",
        "Concat",
        &["b1", "t1", "heads"],
        &["spec"],
        vec![int("axis", 0)],
    )
    .node("reshape", "Reshape", &["x", "spec"], &["y"])
    .output("y", F32, &[D::P("batch"), D::P("sequence"), D::N(4), D::N(32)])
}

#[test]
fn shape_subgraphs_fold_to_a_static_reshape() {
    let g = lowered(head_split(13).write("fold_head_split"), Some(128));
    assert_eq!(op_names(&g), ["Reshape"]);
    let op = g.op(g.op_ids().next().unwrap());
    assert_eq!(
        op.kind,
        OpKind::Reshape {
            shape: vec![1, 128, 4, 32]
        }
    );
    // No shape tensor became a weight: nothing of the subgraph occupies SRAM.
    assert_eq!(g.weight_bytes(), 0);
}

#[test]
fn attribute_and_input_forms_of_an_op_lower_alike() {
    let old = lpuc_ir::print::print(&lowered(head_split(11).write("fold_opset11"), Some(64)));
    let new = lpuc_ir::print::print(&lowered(head_split(13).write("fold_opset13"), Some(64)));
    assert_eq!(old, new);
    // Split: sizes as an attribute before 13, as an input from 13 on.
    let split = |opset: i64| {
        let b = ModelBuilder::new(opset).input("x", F32, &[D::N(2), D::N(10)]);
        let b = if opset >= 13 {
            b.int64s("sizes", &[3, 7]).node_with(
                "split",
                "Split",
                &["x", "sizes"],
                &["a", "c"],
                vec![int("axis", 1)],
            )
        } else {
            b.node_with(
                "split",
                "Split",
                &["x"],
                &["a", "c"],
                vec![int("axis", 1), ints("split", &[3, 7])],
            )
        };
        b.output("a", F32, &[D::N(2), D::N(3)])
            .output("c", F32, &[D::N(2), D::N(7)])
    };
    let a = lpuc_ir::print::print(&lowered(split(11).write("split11"), None));
    let b = lpuc_ir::print::print(&lowered(split(13).write("split13"), None));
    assert_eq!(a, b);
    assert!(a.contains("f32[2,7]"), "{a}");
}

#[test]
fn weight_dequantization_is_folded_at_compile_time() {
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(8), D::N(64)])
        .raw("w_q", I8, &[64, 64], vec![1u8; 64 * 64])
        .scalar("scale", 0.02)
        .node_with("cast", "Cast", &["w_q"], &["w_f"], vec![int("to", 1)])
        .node("dq", "Mul", &["w_f", "scale"], &["w"])
        .node("mm", "MatMul", &["x", "w"], &["y"])
        .output("y", F32, &[D::N(8), D::N(64)])
        .write("dequant_fold");
    let g = lowered(model, None);
    assert_eq!(op_names(&g), ["MatMul"]);
    let weights: Vec<_> = g
        .value_ids()
        .filter_map(|v| match &g.value(v).kind {
            ValueKind::Weight { source } => Some((g.value(v).ty.to_string(), source.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(weights.len(), 1, "{weights:?}");
    assert_eq!(weights[0].0, "f32[64,64]");
    assert_eq!(weights[0].1, "Mul(w_f, scale) at node dq", "{weights:?}");
}

#[test]
fn only_what_stays_data_dependent_after_folding_is_rejected() {
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(2), D::N(3)])
        .input("n", I64, &[D::N(1)])
        .int64s("rest", &[-1])
        .node_with("cat", "Concat", &["n", "rest"], &["spec"], vec![int("axis", 0)])
        .node("reshape", "Reshape", &["x", "spec"], &["y"])
        .output("y", F32, &[D::N(2), D::N(3)])
        .write("data_dependent_reshape");
    let v = check(&lpuc_tests::options(model, None)).unwrap().violations;
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].node.as_str(), v[0].category),
        ("reshape", Category::DataDependentShape)
    );
    assert!(v[0].reason.contains("'spec'"), "{}", v[0].reason);
}

#[test]
fn dims_written_as_expressions_and_whole_input_shapes_bind() {
    let model = ModelBuilder::new(17)
        .input("mask", F32, &[D::P("batch"), D::P("past_sequence + 1")])
        .input("image", F32, &[D::Unknown, D::N(3), D::Unknown, D::Unknown])
        .node("relu", "Relu", &["mask"], &["m"])
        .node("pool", "GlobalAveragePool", &["image"], &["p"])
        .output("m", F32, &[D::P("batch"), D::P("past_sequence + 1")])
        .output("p", F32, &[D::Unknown, D::N(3), D::N(1), D::N(1)])
        .write("expressions");
    let mut opts: CompileOptions = lpuc_tests::options(model.clone(), Some(127));
    let unbound = check(&opts).unwrap().violations;
    assert_eq!(unbound.len(), 3, "three unnamed image dims: {unbound:?}");
    assert!(unbound[0].hint.contains("--input image="), "{}", unbound[0].hint);
    opts.binder.inputs.insert("image".into(), vec![2, 3, 32, 32]);
    opts.binder.batch = Some(2);
    let out = check(&opts).unwrap();
    assert!(out.violations.is_empty(), "{:?}", out.violations);
    let g = out.graph.unwrap();
    let types: Vec<String> = g.outputs().iter().map(|&v| g.value(v).ty.to_string()).collect();
    assert_eq!(types, ["f32[2,128]", "f32[2,3,1,1]"]);
    // The same through the command line.
    let path = model.to_str().unwrap();
    let args = [
        "check",
        path,
        "--bucket",
        "127",
        "--batch",
        "2",
        "--input",
        "image=2x3x32x32",
    ];
    assert_eq!(lpuc(&args), 0);
    assert_eq!(
        lpuc(&["check", path, "--bucket", "127", "--input", "image=2x4x32x32"]),
        1
    );
    use clap::Parser;
    assert!(lpuc::cli::Cli::try_parse_from(["lpuc", "check", path, "--input", "image=2xbad"]).is_err());
}

#[test]
fn constants_in_typed_fields_fold_like_raw_ones() {
    let model = |typed: bool| {
        let b = ModelBuilder::new(17).input("x", F32, &[D::N(2), D::N(6)]);
        let b = if typed {
            b.typed_int64s("spec", &[3, 4])
        } else {
            b.int64s("spec", &[3, 4])
        };
        b.node("reshape", "Reshape", &["x", "spec"], &["y"])
            .output("y", F32, &[D::N(3), D::N(4)])
    };
    let typed = lowered(model(true).write("typed_fields"), None);
    let raw = lowered(model(false).write("raw_fields"), None);
    assert_eq!(lpuc_ir::print::print(&typed), lpuc_ir::print::print(&raw));
    assert_eq!(
        typed.op(typed.op_ids().next().unwrap()).kind,
        OpKind::Reshape { shape: vec![3, 4] }
    );
}

#[test]
fn recurrent_ops_are_rejected_with_a_hint() {
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(5), D::N(1), D::N(8)])
        .initializer("w", F32, &[1, 64, 8], None)
        .initializer("r", F32, &[1, 64, 16], None)
        .node("lstm", "LSTM", &["x", "w", "r"], &["y"])
        .output("y", F32, &[D::N(5), D::N(1), D::N(1), D::N(16)])
        .write("lstm");
    let v = check(&lpuc_tests::options(model, None)).unwrap().violations;
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].category, Category::ControlFlow);
    assert!(v[0].hint.contains("unrolled"), "{}", v[0].hint);
}

#[test]
fn small_external_tensors_are_read_only_when_needed() {
    let dir = scratch("external_shape");
    std::fs::write(
        dir.join("shape.bin"),
        [6i64, -1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(2), D::N(3)])
        .initializer("spec", I64, &[2], Some("shape.bin"))
        .node("reshape", "Reshape", &["x", "spec"], &["y"])
        .output("y", F32, &[D::N(6), D::N(1)])
        .bytes();
    let path = dir.join("model.onnx");
    std::fs::write(&path, model).unwrap();
    let g = lowered(path.clone(), None);
    assert_eq!(
        g.op(g.op_ids().next().unwrap()).kind,
        OpKind::Reshape { shape: vec![6, 1] }
    );
    // Needed but missing: a violation naming the file, not a panic.
    std::fs::remove_file(dir.join("shape.bin")).unwrap();
    let v = check(&lpuc_tests::options(path, None)).unwrap().violations;
    assert!(v.iter().any(|v| v.reason.contains("shape.bin")), "{v:?}");
}

#[test]
fn malformed_declarations_exit_2() {
    let negative = ModelBuilder::new(17)
        .input("x", F32, &[D::N(-3)])
        .node("r", "Relu", &["x"], &["y"])
        .output("y", F32, &[D::N(3)])
        .write("negative_dim");
    assert_eq!(lpuc(&["check", negative.to_str().unwrap()]), 2);
    let duplicate = ModelBuilder::new(17)
        .input("x", F32, &[D::N(3)])
        .initializer("w", F32, &[3], None)
        .initializer("w", F32, &[3], None)
        .node("a", "Add", &["x", "w"], &["y"])
        .output("y", F32, &[D::N(3)])
        .write("duplicate_initializer");
    assert_eq!(lpuc(&["check", duplicate.to_str().unwrap()]), 2);
    let old = ModelBuilder::new(9)
        .input("x", F32, &[D::N(3)])
        .node("r", "Relu", &["x"], &["y"])
        .output("y", F32, &[D::N(3)])
        .write("old_opset");
    assert_eq!(lpuc(&["check", old.to_str().unwrap()]), 1);
}
