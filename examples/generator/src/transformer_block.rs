//! `transformer_block.onnx`: one post-norm encoder layer, exercising attention, LayerNorm and Erf-GELU.

use crate::builder::{
    attr_float, attr_int, attr_ints, f32_norm_bias, f32_norm_scale, f32_scalar, f32_weight, i64_tensor,
    model, tensor_value, Dim, GraphBuilder,
};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::ModelProto;

/// Path of the generated file, relative to `examples/`.
pub const PATH: &str = "transformer_block.onnx";

const D_MODEL: i64 = 128;
const HEADS: i64 = 4;
const HEAD_DIM: i64 = 32;
const FFN: i64 = 512;
const LN_EPSILON: f32 = 1e-5;

/// Linear layer `x @ W + b` with `W: [d_in, d_out]`, as exporters emit it (MatMul then Add).
fn linear(g: &mut GraphBuilder, prefix: &str, x: &str, d_in: i64, d_out: i64) -> String {
    let w = g.init(f32_weight(
        &format!("{}.weight", prefix.replace('/', ".")),
        &[d_in, d_out],
        d_in,
    ));
    let b = g.init(f32_weight(
        &format!("{}.bias", prefix.replace('/', ".")),
        &[d_out],
        d_in,
    ));
    let y = g.op("MatMul", &format!("{prefix}/MatMul"), &[x, &w], vec![]);
    g.op("Add", &format!("{prefix}/Add"), &[&y, &b], vec![])
}

/// LayerNormalization over the last axis with its own scale and bias.
fn layer_norm(g: &mut GraphBuilder, prefix: &str, x: &str, output: Option<&str>) -> String {
    let scale = g.init(f32_norm_scale(&format!("{prefix}.weight"), &[D_MODEL]));
    let bias = g.init(f32_norm_bias(&format!("{prefix}.bias"), &[D_MODEL]));
    let name = format!("{prefix}/LayerNormalization");
    let attrs = vec![attr_int("axis", -1), attr_float("epsilon", LN_EPSILON)];
    match output {
        Some(out) => {
            g.op_to("LayerNormalization", &name, &[x, &scale, &bias], out, attrs);
            out.to_string()
        }
        None => g.op("LayerNormalization", &name, &[x, &scale, &bias], attrs),
    }
}

/// Projects `x` and splits it into heads: [b, s, 128] -> [b, s, 4, 32] -> transposed by `perm`.
fn head_projection(g: &mut GraphBuilder, prefix: &str, x: &str, split_shape: &str, perm: &[i64]) -> String {
    let y = linear(g, prefix, x, D_MODEL, D_MODEL);
    let y = g.op(
        "Reshape",
        &format!("{prefix}/Reshape"),
        &[&y, split_shape],
        vec![],
    );
    g.op(
        "Transpose",
        &format!("{prefix}/Transpose"),
        &[&y],
        vec![attr_ints("perm", perm)],
    )
}

/// hidden_states [batch, sequence, 128] -> self-attention + FFN, post-norm -> output.
pub fn build() -> ModelProto {
    let dims = [Dim::Named("batch"), Dim::Named("sequence"), Dim::Fixed(D_MODEL)];
    let mut g = GraphBuilder::new("transformer_block");
    g.input(tensor_value("hidden_states", DataType::FLOAT, &dims));
    let x = "hidden_states";

    // Self-attention.
    let split_shape = g.init(i64_tensor(
        "attn.split_heads_shape",
        &[4],
        &[0, 0, HEADS, HEAD_DIM],
    ));
    let merge_shape = g.init(i64_tensor("attn.merge_heads_shape", &[3], &[0, 0, D_MODEL]));
    let scale = g.init(f32_scalar("attn.scale", (HEAD_DIM as f32).sqrt()));

    let q = head_projection(&mut g, "attn/q_proj", x, &split_shape, &[0, 2, 1, 3]);
    let k_t = head_projection(&mut g, "attn/k_proj", x, &split_shape, &[0, 2, 3, 1]);
    let v = head_projection(&mut g, "attn/v_proj", x, &split_shape, &[0, 2, 1, 3]);

    let scores = g.op("MatMul", "attn/scores/MatMul", &[&q, &k_t], vec![]);
    let scores = g.op("Div", "attn/scores/Div", &[&scores, &scale], vec![]);
    let probs = g.op(
        "Softmax",
        "attn/probs/Softmax",
        &[&scores],
        vec![attr_int("axis", -1)],
    );
    let context = g.op("MatMul", "attn/context/MatMul", &[&probs, &v], vec![]);
    let context = g.op(
        "Transpose",
        "attn/context/Transpose",
        &[&context],
        vec![attr_ints("perm", &[0, 2, 1, 3])],
    );
    let context = g.op(
        "Reshape",
        "attn/context/Reshape",
        &[&context, &merge_shape],
        vec![],
    );
    let attn_out = linear(&mut g, "attn/out_proj", &context, D_MODEL, D_MODEL);
    let residual = g.op("Add", "attn/residual/Add", &[x, &attn_out], vec![]);
    let normed = layer_norm(&mut g, "ln1", &residual, None);

    // Feed-forward with exporter-style exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))).
    let h = linear(&mut g, "ffn/fc1", &normed, D_MODEL, FFN);
    let sqrt2 = g.init(f32_scalar("ffn.gelu.sqrt2", std::f32::consts::SQRT_2));
    let one = g.init(f32_scalar("ffn.gelu.one", 1.0));
    let half = g.init(f32_scalar("ffn.gelu.half", 0.5));
    let t = g.op("Div", "ffn/gelu/Div", &[&h, &sqrt2], vec![]);
    let t = g.op("Erf", "ffn/gelu/Erf", &[&t], vec![]);
    let t = g.op("Add", "ffn/gelu/Add", &[&t, &one], vec![]);
    let t = g.op("Mul", "ffn/gelu/Mul", &[&h, &t], vec![]);
    let gelu = g.op("Mul", "ffn/gelu/Mul_1", &[&t, &half], vec![]);
    let ffn_out = linear(&mut g, "ffn/fc2", &gelu, FFN, D_MODEL);
    let residual = g.op("Add", "ffn/residual/Add", &[&normed, &ffn_out], vec![]);
    layer_norm(&mut g, "ln2", &residual, Some("output"));

    g.output(tensor_value("output", DataType::FLOAT, &dims));
    model(g.finish())
}
