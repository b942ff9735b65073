//! Small models that once crashed the frontend or lowered to the wrong thing (found by review):
//! each must now give its exact violation, or lower to the IR the ONNX spec says.

use lpuc::driver::{check, lower_to, Stage};
use lpuc_ir::Graph;
use lpuc_tests::{int, ints, string, ModelBuilder, D, F32, I64};

/// The single violation of `model`, as (node, reason).
fn violation(model: ModelBuilder, test: &str) -> (String, String) {
    let v = check(&lpuc_tests::options(model.write(test), None))
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .violations;
    assert_eq!(v.len(), 1, "{test}: {v:?}");
    (v[0].node.clone(), v[0].reason.clone())
}

fn lowered(model: ModelBuilder, test: &str) -> Graph {
    lower_to(&lpuc_tests::options(model.write(test), None), Stage::Lower)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
}

fn x(dims: &[i64]) -> ModelBuilder {
    ModelBuilder::new(18).input("x", F32, &dims.iter().map(|&d| D::N(d)).collect::<Vec<_>>())
}

#[test]
fn malformed_attributes_are_violations_not_panics() {
    let cases: Vec<(&str, ModelBuilder, &str)> = vec![
        (
            "convtranspose_short_output_shape",
            x(&[1, 4, 5, 5])
                .initializer("w", F32, &[4, 2, 3, 3], None)
                .node_with(
                    "ct",
                    "ConvTranspose",
                    &["x", "w"],
                    &["y"],
                    vec![ints("output_shape", &[10])],
                )
                .output("y", F32, &[D::N(1)]),
            "output_shape [10] for 2 spatial dims",
        ),
        (
            "split_absurd_num_outputs",
            x(&[4])
                .node_with(
                    "split",
                    "Split",
                    &["x"],
                    &["a", "b"],
                    vec![int("num_outputs", 1 << 62)],
                )
                .output("a", F32, &[D::N(2)])
                .output("b", F32, &[D::N(2)]),
            "num_outputs",
        ),
        (
            "split_overflowing_sizes",
            x(&[4])
                .int64s("sizes", &[1 << 62, 1 << 62, 1 << 62, 1 << 62, 4])
                .node("split", "Split", &["x", "sizes"], &["a", "b", "c", "d", "e"])
                .output("a", F32, &[D::N(1)]),
            "split sizes",
        ),
        (
            "identity_without_input",
            x(&[4])
                .node("id", "Identity", &[], &["y"])
                .output("y", F32, &[D::N(4)]),
            "input 0 is missing",
        ),
        (
            "float_mod_without_fmod",
            x(&[4])
                .node("mod", "Mod", &["x", "x"], &["y"])
                .output("y", F32, &[D::N(4)]),
            "fmod=1",
        ),
        (
            "batchnorm_training_mode",
            x(&[1, 2, 3])
                .initializer("s", F32, &[2], None)
                .node_with(
                    "bn",
                    "BatchNormalization",
                    &["x", "s", "s", "s", "s"],
                    &["y"],
                    vec![int("training_mode", 1)],
                )
                .output("y", F32, &[D::N(1), D::N(2), D::N(3)]),
            "training outputs",
        ),
        (
            "reflect_pad_past_the_dim",
            x(&[2, 3])
                .int64s("pads", &[0, 3, 0, 0])
                .node_with(
                    "pad",
                    "Pad",
                    &["x", "pads"],
                    &["y"],
                    vec![string("mode", "reflect")],
                )
                .output("y", F32, &[D::N(2), D::N(6)]),
            "reflect pads",
        ),
        (
            "gather_past_the_table",
            x(&[4, 2])
                .int64s("idx", &[0, 5])
                .node("g", "Gather", &["x", "idx"], &["y"])
                .output("y", F32, &[D::N(2), D::N(2)]),
            "index 5",
        ),
    ];
    for (test, model, want) in cases {
        let (_, reason) = violation(model, test);
        assert!(reason.contains(want), "{test}: {reason}");
    }
}

#[test]
fn spec_corner_cases_lower_as_onnx_says() {
    // A negative step clamps the start into the dim (ONNX), where numpy would give nothing.
    let g = lowered(
        x(&[5])
            .int64s("s", &[-10])
            .int64s("e", &[-20])
            .int64s("a", &[0])
            .int64s("st", &[-1])
            .node("slice", "Slice", &["x", "s", "e", "a", "st"], &["y"])
            .output("y", F32, &[D::N(1)]),
        "slice_negative_start",
    );
    assert_eq!(g.value(g.outputs()[0]).ty.to_string(), "f32[1]");
    // A no-op ReduceSumSquare still squares.
    let g = lowered(
        x(&[4])
            .raw("axes", I64, &[0], vec![])
            .node_with(
                "rss",
                "ReduceSumSquare",
                &["x", "axes"],
                &["y"],
                vec![int("noop_with_empty_axes", 1)],
            )
            .output("y", F32, &[D::N(4)]),
        "reduce_sum_square_noop",
    );
    assert_eq!(g.op(g.op_ids().next().unwrap()).kind.name(), "Mul");
    // Clip with min > max folds to max instead of panicking.
    let g = lowered(
        ModelBuilder::new(18)
            .input("x", F32, &[D::N(2)])
            .int64s("c", &[1, 9])
            .scalar("lo", 5.0)
            .scalar("hi", 1.0)
            .node_with("cast", "Cast", &["c"], &["cf"], vec![int("to", 1)])
            .node("clip", "Clip", &["cf", "lo", "hi"], &["k"])
            .node("add", "Add", &["x", "k"], &["y"])
            .output("y", F32, &[D::N(2)]),
        "clip_min_above_max",
    );
    assert_eq!(g.num_ops(), 1);
}

#[test]
fn every_graph_output_is_its_own_value_with_its_own_name() {
    let g = lowered(
        ModelBuilder::new(18)
            .input("x", F32, &[D::N(4)])
            .node("relu", "Relu", &["x"], &["r"])
            .node("id1", "Identity", &["r"], &["y1"])
            .node("id2", "Identity", &["r"], &["y2"])
            .node("id3", "Identity", &["x"], &["y3"])
            .output("y1", F32, &[D::N(4)])
            .output("y2", F32, &[D::N(4)])
            .output("y3", F32, &[D::N(4)]),
        "alias_outputs",
    );
    let outs: Vec<&str> = g.outputs().iter().map(|&v| g.value(v).name.as_str()).collect();
    assert_eq!(outs, ["y1", "y2", "y3"]);
    let mut distinct = g.outputs().to_vec();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
}
