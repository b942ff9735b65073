//! `rejected/dynamic_ops.onnx`: a plausible graph full of constructs a static scheduler cannot accept.
//!
//! It holds one NonZero (data-dependent output shape), one Loop and one If (control flow),
//! one RandomNormal (non-deterministic), and an input dimension `unbound_len` that is neither
//! batch-like nor sequence-like, so no default binding applies. The operator-subset checker
//! must reject it.

use crate::builder::{
    attr_graph, attr_int, attr_ints, bool_tensor, i64_tensor, model, tensor_value, tensor_value_unshaped,
    Dim, GraphBuilder,
};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{GraphProto, ModelProto};

/// Path of the generated file, relative to `examples/`.
pub const PATH: &str = "rejected/dynamic_ops.onnx";

/// Number of Loop iterations (the value of the trip-count initializer).
const TRIP_COUNT: i64 = 3;

/// Loop body: (iteration_num, cond, state) -> (cond, state), passing both through unchanged.
fn loop_body() -> GraphProto {
    let mut g = GraphBuilder::new("dynamic/Loop/body");
    g.input(tensor_value("iteration_num", DataType::INT64, &[]));
    g.input(tensor_value("cond_in", DataType::BOOL, &[]));
    g.input(tensor_value_unshaped("state_in", DataType::FLOAT));
    g.op_to(
        "Identity",
        "dynamic/Loop/body/cond/Identity",
        &["cond_in"],
        "cond_out",
        vec![],
    );
    g.op_to(
        "Identity",
        "dynamic/Loop/body/state/Identity",
        &["state_in"],
        "state_out",
        vec![],
    );
    g.output(tensor_value("cond_out", DataType::BOOL, &[]));
    g.output(tensor_value_unshaped("state_out", DataType::FLOAT));
    g.finish()
}

/// An If branch with one Identity forwarding the outer-scope value `captured`.
fn branch(name: &str, captured: &str, output: &str) -> GraphProto {
    let mut g = GraphBuilder::new(&format!("dynamic/If/{name}"));
    g.op_to(
        "Identity",
        &format!("dynamic/If/{name}/Identity"),
        &[captured],
        output,
        vec![],
    );
    g.output(tensor_value_unshaped(output, DataType::FLOAT));
    g.finish()
}

/// tokens -> Relu -> Loop ─┐
///           RandomNormal ─┴─ If (both branches capture from the outer scope) -> NonZero -> output
pub fn build() -> ModelProto {
    let mut g = GraphBuilder::new("dynamic_ops");
    g.input(tensor_value(
        "tokens",
        DataType::FLOAT,
        &[Dim::Named("batch"), Dim::Named("unbound_len")],
    ));
    let trip_count = g.init(i64_tensor("loop.trip_count", &[], &[TRIP_COUNT]));
    let loop_cond = g.init(bool_tensor("loop.keep_going", &[], &[true]));
    let if_cond = g.init(bool_tensor("if.take_then", &[], &[true]));

    g.op_to("Relu", "input/Relu", &["tokens"], "activated", vec![]);
    g.op_to(
        "Loop",
        "dynamic/Loop",
        &[&trip_count, &loop_cond, "activated"],
        "loop_state",
        vec![attr_graph("body", loop_body())],
    );
    g.op_to(
        "RandomNormal",
        "dynamic/RandomNormal",
        &[],
        "noise",
        vec![attr_ints("shape", &[4]), attr_int("dtype", 1)],
    );
    // Branch outputs may differ in shape (allowed since opset 11), which is part of the point.
    g.op_to(
        "If",
        "dynamic/If",
        &[&if_cond],
        "selected",
        vec![
            attr_graph("then_branch", branch("then_branch", "loop_state", "then_out")),
            attr_graph("else_branch", branch("else_branch", "noise", "else_out")),
        ],
    );
    g.op_to(
        "NonZero",
        "dynamic/NonZero",
        &["selected"],
        "nonzero_indices",
        vec![],
    );

    // NonZero yields [rank(selected), count]: rank 2, both extents unknown. (ONNX's checker wants a
    // shape on top-level outputs; `selected` has no expressible one, its branches differ in rank.)
    g.output(tensor_value(
        "nonzero_indices",
        DataType::INT64,
        &[Dim::Unknown, Dim::Unknown],
    ));
    model(g.finish())
}
