//! `mlp.onnx`: the smallest realistic model, a two-layer MNIST-sized classifier.

use crate::builder::{attr_int, f32_weight, model, tensor_value, Dim, GraphBuilder};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::ModelProto;

/// Path of the generated file, relative to `examples/`.
pub const PATH: &str = "mlp.onnx";

const IN_FEATURES: i64 = 784;
const HIDDEN: i64 = 512;
const CLASSES: i64 = 10;

/// input [batch, 784] -> Gemm -> Relu -> MatMul -> Add -> Softmax -> probs [batch, 10].
pub fn build() -> ModelProto {
    let batch = Dim::Named("batch");
    let mut g = GraphBuilder::new("mlp");
    g.input(tensor_value(
        "input",
        DataType::FLOAT,
        &[batch, Dim::Fixed(IN_FEATURES)],
    ));

    let w1 = g.init(f32_weight("fc1.weight", &[HIDDEN, IN_FEATURES], IN_FEATURES));
    let b1 = g.init(f32_weight("fc1.bias", &[HIDDEN], IN_FEATURES));
    let w2 = g.init(f32_weight("fc2.weight", &[HIDDEN, CLASSES], HIDDEN));
    let b2 = g.init(f32_weight("fc2.bias", &[CLASSES], HIDDEN));

    let h = g.op(
        "Gemm",
        "fc1/Gemm",
        &["input", &w1, &b1],
        vec![attr_int("transB", 1)],
    );
    let h = g.op("Relu", "fc1/Relu", &[&h], vec![]);
    let logits = g.op("MatMul", "fc2/MatMul", &[&h, &w2], vec![]);
    let logits = g.op("Add", "fc2/Add", &[&logits, &b2], vec![]);
    g.op_to(
        "Softmax",
        "head/Softmax",
        &[&logits],
        "probs",
        vec![attr_int("axis", -1)],
    );

    g.output(tensor_value(
        "probs",
        DataType::FLOAT,
        &[batch, Dim::Fixed(CLASSES)],
    ));
    model(g.finish())
}
