//! Layers shared by the model families (mostly transformer pieces for GPT-2, BERT and Llama), in the
//! op sequences that `torch.onnx.export` (TorchScript) emits for the PyTorch modules they stand for.

use crate::builder::{attr_float, attr_int, attr_ints};
use crate::net::Net;
use crate::shapes::{reduce_mean, reshape, unsqueeze, Extent};
use crate::weights::Values;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::AttributeProto;

/// Which graph a decoder family writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The whole prompt at once: `input_ids [batch, sequence]`, no cache.
    Prefill,
    /// One new token against a KV cache: `past_*` inputs in, `present_*` outputs out.
    Decode,
}

impl Variant {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Prefill => "prefill",
            Variant::Decode => "decode",
        }
    }
}

/// The additive value that masks a score out: `torch.finfo(torch.float32).min`, as HF uses.
pub const MASK_VALUE: f32 = f32::MIN;

/// `x @ W (+ b)` with `W: [d_in, d_out]` named `<param>.weight`: MatMul, then Add for the bias.
pub fn linear(net: &mut Net, scope: &str, x: &str, param: &str, d_in: i64, d_out: i64, bias: bool) -> String {
    let w = net.param(&format!("{param}.weight"), &[d_in, d_out], Values::fan_in(d_in));
    let y = net.op(scope, "MatMul", &[x, &w], vec![]);
    if !bias {
        return y;
    }
    let b = net.param(&format!("{param}.bias"), &[d_out], Values::fan_in(d_in));
    net.op(scope, "Add", &[&y, &b], vec![])
}

/// `nn.Linear` on a 2-D input, which the exporter writes as one Gemm with `W: [d_out, d_in]`
/// (`<param>.weight`, transposed by `transB`) and `<param>.bias`; optionally writing `output`.
pub fn linear_gemm(
    net: &mut Net,
    scope: &str,
    x: &str,
    param: &str,
    d_in: i64,
    d_out: i64,
    output: Option<&str>,
) -> String {
    let w = net.param(&format!("{param}.weight"), &[d_out, d_in], Values::fan_in(d_in));
    let b = net.param(&format!("{param}.bias"), &[d_out], Values::fan_in(d_in));
    // Written out as the exporter does, though 1.0 is the default.
    let attrs = vec![
        attr_float("alpha", 1.0),
        attr_float("beta", 1.0),
        attr_int("transB", 1),
    ];
    op_or_output(net, scope, "Gemm", &[x, &w, &b], output, attrs)
}

/// A node writing a fresh value, or the graph output `output` when given; returns the value's name.
fn op_or_output(
    net: &mut Net,
    scope: &str,
    op_type: &str,
    inputs: &[&str],
    output: Option<&str>,
    attrs: Vec<AttributeProto>,
) -> String {
    match output {
        Some(out) => {
            net.op_to(scope, op_type, inputs, out, attrs);
            out.to_string()
        }
        None => net.op(scope, op_type, inputs, attrs),
    }
}

/// `nn.Embedding`: the table `<param>.weight [rows, d]`, uniform in `±amplitude`, indexed by `ids`
/// (Gather on axis 0). Returns the table's value name (a tied LM head reuses it) and the rows.
pub fn embedding(
    net: &mut Net,
    scope: &str,
    ids: &str,
    param: &str,
    rows: i64,
    d: i64,
    amplitude: f32,
) -> (String, String) {
    let values = Values::Uniform {
        center: 0.0,
        amplitude,
    };
    let table = net.param(&format!("{param}.weight"), &[rows, d], values);
    let looked_up = net.op(scope, "Gather", &[&table, ids], vec![attr_int("axis", 0)]);
    (table, looked_up)
}

/// `nn.LayerNorm` as exported before opset 17: ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt,
/// Div, Mul gamma, Add beta.
pub fn layer_norm_decomposed(net: &mut Net, scope: &str, x: &str, param: &str, d: i64, eps: f32) -> String {
    let mean = reduce_mean(net, scope, x, &[-1]);
    let centered = net.op(scope, "Sub", &[x, &mean], vec![]);
    let two = net.float(scope, 2.0);
    let squared = net.op(scope, "Pow", &[&centered, &two], vec![]);
    let var = reduce_mean(net, scope, &squared, &[-1]);
    let eps = net.float(scope, eps);
    let var = net.op(scope, "Add", &[&var, &eps], vec![]);
    let std = net.op(scope, "Sqrt", &[&var], vec![]);
    let normed = net.op(scope, "Div", &[&centered, &std], vec![]);
    let gamma = net.param(&format!("{param}.weight"), &[d], Values::norm_scale());
    let y = net.op(scope, "Mul", &[&normed, &gamma], vec![]);
    let beta = net.param(&format!("{param}.bias"), &[d], Values::norm_bias());
    net.op(scope, "Add", &[&y, &beta], vec![])
}

/// `nn.LayerNorm` at opset 17+: one LayerNormalization over the last axis, optionally writing `output`.
pub fn layer_norm(
    net: &mut Net,
    scope: &str,
    x: &str,
    param: &str,
    d: i64,
    eps: f32,
    output: Option<&str>,
) -> String {
    let gamma = net.param(&format!("{param}.weight"), &[d], Values::norm_scale());
    let beta = net.param(&format!("{param}.bias"), &[d], Values::norm_bias());
    let attrs = vec![attr_int("axis", -1), attr_float("epsilon", eps)];
    op_or_output(
        net,
        scope,
        "LayerNormalization",
        &[x, &gamma, &beta],
        output,
        attrs,
    )
}

/// Llama's RMSNorm: `weight * x * rsqrt(mean(x^2) + eps)` as Pow, ReduceMean, Add, Sqrt,
/// Reciprocal, Mul, Mul.
pub fn rms_norm(net: &mut Net, scope: &str, x: &str, param: &str, d: i64, eps: f32) -> String {
    let two = net.float(scope, 2.0);
    let squared = net.op(scope, "Pow", &[x, &two], vec![]);
    let mean = reduce_mean(net, scope, &squared, &[-1]);
    let eps = net.float(scope, eps);
    let mean = net.op(scope, "Add", &[&mean, &eps], vec![]);
    let root = net.op(scope, "Sqrt", &[&mean], vec![]);
    let inv = net.op(scope, "Reciprocal", &[&root], vec![]);
    let normed = net.op(scope, "Mul", &[x, &inv], vec![]);
    let weight = net.param(&format!("{param}.weight"), &[d], Values::norm_scale());
    net.op(scope, "Mul", &[&weight, &normed], vec![])
}

/// Exact GELU as `nn.GELU()` exports it: `x * 0.5 * (1 + erf(x / sqrt(2)))`.
pub fn gelu_erf(net: &mut Net, scope: &str, x: &str) -> String {
    let sqrt2 = net.float(scope, std::f32::consts::SQRT_2);
    let t = net.op(scope, "Div", &[x, &sqrt2], vec![]);
    let t = net.op(scope, "Erf", &[&t], vec![]);
    let one = net.float(scope, 1.0);
    let t = net.op(scope, "Add", &[&t, &one], vec![]);
    let t = net.op(scope, "Mul", &[x, &t], vec![]);
    let half = net.float(scope, 0.5);
    net.op(scope, "Mul", &[&t, &half], vec![])
}

/// GPT-2's `NewGELUActivation`: `0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`.
pub fn gelu_tanh(net: &mut Net, scope: &str, x: &str) -> String {
    let half = net.float(scope, 0.5);
    let half_x = net.op(scope, "Mul", &[&half, x], vec![]);
    let three = net.float(scope, 3.0);
    let cube = net.op(scope, "Pow", &[x, &three], vec![]);
    let coeff = net.float(scope, 0.044715);
    let t = net.op(scope, "Mul", &[&coeff, &cube], vec![]);
    let t = net.op(scope, "Add", &[x, &t], vec![]);
    let k = net.float(scope, (2.0 / std::f32::consts::PI).sqrt());
    let t = net.op(scope, "Mul", &[&k, &t], vec![]);
    let t = net.op(scope, "Tanh", &[&t], vec![]);
    let one = net.float(scope, 1.0);
    let t = net.op(scope, "Add", &[&one, &t], vec![]);
    net.op(scope, "Mul", &[&half_x, &t], vec![])
}

/// `[b, s, heads * head_dim]` -> Reshape `[b, s, heads, head_dim]` (shape from the shape subgraph)
/// -> Transpose by `perm`.
pub fn split_heads(net: &mut Net, scope: &str, x: &str, heads: i64, head_dim: i64, perm: &[i64]) -> String {
    let y = reshape(
        net,
        scope,
        x,
        &[
            Extent::Of(x, 0),
            Extent::Of(x, 1),
            Extent::Fixed(heads),
            Extent::Fixed(head_dim),
        ],
    );
    net.op(scope, "Transpose", &[&y], vec![attr_ints("perm", perm)])
}

/// `[b, heads, s, head_dim]` -> Transpose `[b, s, heads, head_dim]` -> Reshape `[b, s, width]`.
pub fn merge_heads(net: &mut Net, scope: &str, x: &str, width: i64) -> String {
    let t = net.op(scope, "Transpose", &[x], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    reshape(
        net,
        scope,
        &t,
        &[Extent::Of(&t, 0), Extent::Of(&t, 1), Extent::Fixed(width)],
    )
}

/// HF's extended attention mask from an int64 `attention_mask [b, k]`:
/// Unsqueeze to `[b, 1, 1, k]`, Cast to float, `(1 - m) * MASK_VALUE`.
pub fn padding_mask(net: &mut Net, scope: &str, attention_mask: &str) -> String {
    let m = unsqueeze(net, scope, attention_mask, &[1, 2]);
    let m = net.op(scope, "Cast", &[&m], vec![attr_int("to", DataType::FLOAT as i64)]);
    let one = net.float(scope, 1.0);
    let inverted = net.op(scope, "Sub", &[&one, &m], vec![]);
    let min = net.float(scope, MASK_VALUE);
    net.op(scope, "Mul", &[&inverted, &min], vec![])
}

/// Scaled scores `q @ k_t / sqrt(head_dim)`: MatMul, then Div by a constant.
pub fn scaled_scores(net: &mut Net, scope: &str, q: &str, k_t: &str, head_dim: i64) -> String {
    let scores = net.op(scope, "MatMul", &[q, k_t], vec![]);
    let scale = net.float(scope, (head_dim as f32).sqrt());
    net.op(scope, "Div", &[&scores, &scale], vec![])
}

/// Softmax over keys, then the weighted sum of values.
pub fn attend(net: &mut Net, scope: &str, scores: &str, v: &str) -> String {
    let probs = net.op(scope, "Softmax", &[scores], vec![attr_int("axis", -1)]);
    net.op(scope, "MatMul", &[&probs, v], vec![])
}
