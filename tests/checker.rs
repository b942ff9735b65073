//! The operator-subset checker: every rejection reason, all violations in one run, text and JSON.

use lpuc::checker::Category;
use lpuc::driver::{check, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc_tests::{example, int, ints, ModelBuilder, COMPLEX64, D, F32, F64, I64, STRING};
use std::path::PathBuf;

fn categories(path: PathBuf, bucket: Option<u64>) -> Vec<(String, Category)> {
    let opts = CompileOptions {
        model: path,
        binder: DimBinder {
            bucket,
            ..Default::default()
        },
        target: "lpu-v1".into(),
        rewrite: true,
        embed_weights: false,
    };
    check(&opts)
        .expect("the model loads")
        .violations
        .into_iter()
        .map(|v| (v.node, v.category))
        .collect()
}

#[test]
fn the_dynamic_ops_example_lists_every_violation_in_one_run() {
    let found = categories(example("rejected/dynamic_ops.onnx"), Some(128));
    let expect = [
        Category::UnboundDim,
        Category::ControlFlow,
        Category::Random,
        Category::ControlFlow,
        Category::DataDependentShape,
    ];
    assert_eq!(found.iter().map(|(_, c)| *c).collect::<Vec<_>>(), expect);
    let ops: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert!(ops.iter().any(|n| n.contains("Loop")) && ops.iter().any(|n| n.contains("If")));
    assert!(ops.iter().any(|n| n.contains("NonZero")) && ops.iter().any(|n| n.contains("RandomNormal")));
}

#[test]
fn json_output_has_exactly_the_documented_keys() {
    let opts = CompileOptions {
        model: example("rejected/dynamic_ops.onnx"),
        binder: DimBinder::default(),
        target: "lpu-v1".into(),
        rewrite: true,
        embed_weights: false,
    };
    let v = check(&opts).unwrap().violations;
    let json: serde_json::Value = serde_json::to_value(&v).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 5);
    for obj in arr {
        let mut keys: Vec<&String> = obj.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["hint", "node", "op", "reason"]);
    }
    assert!(arr[0]["hint"].as_str().unwrap().contains("--dim unbound_len=N"));
}

#[test]
fn every_rejection_reason() {
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::P("batch"), D::P("seq_len")])
        .input("names", STRING, &[D::N(4)])
        .input("wide", F64, &[D::N(4)])
        .input("mystery", F32, &[D::Unknown, D::P("frames")])
        .initializer("c", COMPLEX64, &[2], None)
        .initializer("k", I64, &[1], None)
        .node("nz", "NonZero", &["x"], &["nz_out"])
        .node("topk", "TopK", &["x", "nz_out"], &["tv", "ti"])
        .node("col2im", "Col2Im", &["x", "k", "k"], &["ci"])
        .node("loop", "Scan", &["x"], &["scan_out"])
        .node("rand", "RandomUniformLike", &["x"], &["r"])
        .node("conv", "Conv", &["x", "x"], &["conv_out"])
        .node("fancy", "FancyOp", &["x"], &["f"])
        .node_in("org.example", "custom", "MatMul", &["x", "x"], &["cm"], vec![])
        .node_in(
            "com.microsoft",
            "fused",
            "FusedMatMul",
            &["x", "x"],
            &["fm"],
            vec![],
        )
        .node("relu", "Relu", &["x"], &["y"])
        .output("y", F32, &[D::P("batch"), D::P("seq_len")])
        .write("every_reason");
    let found = categories(model, None);
    let has = |node: &str, c: Category| {
        assert!(
            found.contains(&(node.to_string(), c)),
            "missing {node} {c:?} in {found:#?}"
        );
    };
    has("x", Category::UnboundDim);
    has("names", Category::UnsupportedDtype);
    has("wide", Category::UnsupportedDtype);
    has("mystery", Category::UnboundDim);
    has("c", Category::UnsupportedDtype);
    has("nz", Category::DataDependentShape);
    has("col2im", Category::NotYetSupported);
    // TopK reads the NonZero result, which is already rejected: no second report.
    assert!(!found.iter().any(|(n, _)| n == "topk"));
    has("loop", Category::ControlFlow);
    has("rand", Category::Random);
    // Conv is supported; its operand's dims are unbound, which is reported once, on `x`.
    assert!(!found.iter().any(|(n, _)| n == "conv"));
    has("fancy", Category::UnknownOp);
    has("custom", Category::UnknownDomain);
    has("fused", Category::NotYetSupported);
    // One violation for each unbound dim: `mystery` has two.
    assert_eq!(found.iter().filter(|(n, _)| n == "mystery").count(), 2);
    assert!(!found.iter().any(|(n, _)| n == "relu"));
}

#[test]
fn shape_errors_are_reported_against_their_node() {
    let model = ModelBuilder::new(17)
        .input("a", F32, &[D::N(2), D::N(3)])
        .input("b", F32, &[D::N(4), D::N(5)])
        .node("mm", "MatMul", &["a", "b"], &["c"])
        .output("c", F32, &[D::N(2), D::N(5)])
        .write("shape_error");
    assert_eq!(
        categories(model, None),
        vec![("mm".to_string(), Category::InvalidModel)]
    );
}

#[test]
fn reshape_needs_a_shape_known_after_folding_and_transpose_a_permutation() {
    let model = ModelBuilder::new(17)
        .input("a", F32, &[D::N(2), D::N(3)])
        .input("shape", I64, &[D::N(2)])
        .int64s("good_shape", &[3, -1])
        .node("r1", "Reshape", &["a", "shape"], &["r1o"])
        .node("r2", "Reshape", &["a", "good_shape"], &["r2o"])
        .node_with("t", "Transpose", &["r2o"], &["to"], vec![ints("perm", &[0, 0])])
        .node_with("s", "Softmax", &["a"], &["so"], vec![int("axis", 5)])
        .output("to", F32, &[D::N(2), D::N(3)])
        .write("reshape_transpose");
    let found = categories(model, None);
    assert_eq!(
        found,
        vec![
            ("r1".to_string(), Category::DataDependentShape),
            ("t".to_string(), Category::InvalidModel),
            ("s".to_string(), Category::InvalidModel),
        ]
    );
}

#[test]
fn a_bound_model_has_no_violations() {
    assert!(categories(example("transformer_block.onnx"), Some(64)).is_empty());
    assert!(categories(example("mlp.onnx"), None).is_empty());
}

#[test]
fn ops_the_target_cannot_execute_are_violations() {
    let model = ModelBuilder::new(17)
        .input("a", I64, &[D::N(2), D::N(3)])
        .input("b", I64, &[D::N(3), D::N(4)])
        .node("mm", "MatMul", &["a", "b"], &["c"])
        .output("c", I64, &[D::N(2), D::N(4)])
        .write("int64_matmul");
    assert_eq!(
        categories(model, None),
        vec![("mm".to_string(), Category::UnsupportedDtype)]
    );
}
