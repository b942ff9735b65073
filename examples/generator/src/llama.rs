//! Llama-style decoder at opset 18: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU,
//! and weights stored narrower than the f32 the graph computes in.
//!
//! Storage: every parameter (and the rotary tables) is stored in the configured dtype and widened
//! right where it enters the graph, by `Cast(to = FLOAT)` for f16 or `DequantizeLinear` (per-tensor
//! scale, zero point 0) for int8. The graph itself is all f32, so only the initializers and one
//! widening node each differ between dtypes. The committed example uses f16; the 70B-shaped preset
//! uses int8, about 69 GB of logical weights.
//!
//! Opset 18 is where ReduceMean takes `axes` as an input. The causal mask is Trilu over a
//! ConstantOfShape of the runtime `[q, k]` shape (no `max_positions^2` buffer), combined with the
//! padding mask by And, then Where -> additive. Rotary tables `[max_positions, head_dim]` are
//! sliced to the key length by Slice and indexed by Gather with position ids from Range.

use crate::builder::{attr_int, attr_ints, attr_tensor, bool_tensor};
use crate::decoder::{DecoderIo, Positions, TotalLen};
use crate::net::{Built, ConstStyle, Layout, Net};
use crate::nn::{attend, embedding, merge_heads, rms_norm, scaled_scores, split_heads, Variant, MASK_VALUE};
use crate::shapes::{reshape, shape_vector, unsqueeze, Extent};
use crate::weights::{Values, WeightDtype};
use onnx_protobuf::tensor_proto::DataType;

/// Default-domain opset of every Llama model.
pub const OPSET: i64 = 18;

/// The shape of a Llama model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlamaConfig {
    pub layers: usize,
    pub d_model: i64,
    pub heads: i64,
    /// Key/value heads; fewer than `heads` means grouped-query attention.
    pub kv_heads: i64,
    pub ffn: i64,
    pub vocab: i64,
    pub max_positions: i64,
    pub rms_epsilon: f32,
    pub rope_theta: f64,
    pub dtype: WeightDtype,
}

impl LlamaConfig {
    /// The committed examples: 2 layers of width 128, 4 query heads sharing 2 KV heads, f16 weights,
    /// 4096 positions.
    pub fn tiny() -> Self {
        LlamaConfig {
            layers: 2,
            d_model: 128,
            heads: 4,
            kv_heads: 2,
            ffn: 384,
            vocab: 512,
            max_positions: 4096,
            rms_epsilon: 1e-5,
            rope_theta: 10_000.0,
            dtype: WeightDtype::F16,
        }
    }

    /// Llama-2-7B: 32 layers, width 4096, 32 heads (no GQA), FFN 11008, f16.
    pub fn llama2_7b() -> Self {
        LlamaConfig {
            layers: 32,
            d_model: 4096,
            heads: 32,
            kv_heads: 32,
            ffn: 11008,
            vocab: 32000,
            ..Self::tiny()
        }
    }

    /// Llama-2-70B: 80 layers, width 8192, 64 heads sharing 8 KV heads, FFN 28672, int8.
    pub fn llama2_70b() -> Self {
        LlamaConfig {
            layers: 80,
            d_model: 8192,
            heads: 64,
            kv_heads: 8,
            ffn: 28672,
            vocab: 32000,
            dtype: WeightDtype::I8,
            ..Self::tiny()
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.d_model / self.heads
    }

    /// Trained parameters: embedding and untied LM head, per-layer q/k/v/o, gate/up/down and two
    /// RMSNorm weights, and the final norm.
    pub fn parameter_count(&self) -> u64 {
        let d = self.d_model as u64;
        let q = (self.heads * self.head_dim()) as u64;
        let kv = (self.kv_heads * self.head_dim()) as u64;
        let f = self.ffn as u64;
        let per_layer = 2 * d * q + 2 * d * kv + 3 * d * f + 2 * d;
        2 * self.vocab as u64 * d + self.layers as u64 * per_layer + d
    }
}

/// `cos` and `sin` of HF's rotary embedding: `[max_positions, head_dim]`, the frequencies repeated
/// for both halves.
fn rotary_tables(cfg: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let hd = cfg.head_dim() as usize;
    let half = hd / 2;
    let mut cos = Vec::with_capacity(cfg.max_positions as usize * hd);
    let mut sin = Vec::with_capacity(cos.capacity());
    for p in 0..cfg.max_positions {
        for j in 0..hd {
            let inv_freq = cfg.rope_theta.powf(-((2 * (j % half)) as f64) / hd as f64);
            let angle = p as f64 * inv_freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Builds the model; `layout` decides where weights go.
pub fn build(cfg: &LlamaConfig, variant: Variant, layout: Layout) -> Result<Built, String> {
    let d = cfg.d_model;
    let hd = cfg.head_dim();
    let name = format!("llama_{}", variant.name());
    let mut net = Net::new(&name, OPSET, cfg.dtype, ConstStyle::Node, layout);
    let io = DecoderIo {
        variant,
        layers: cfg.layers,
        kv_heads: cfg.kv_heads,
        head_dim: hd,
    };
    io.declare_inputs(&mut net);

    let top = "/model";
    let (_, mut h) = embedding(
        &mut net,
        &format!("{top}/embed_tokens"),
        "input_ids",
        "model.embed_tokens",
        cfg.vocab,
        d,
        0.02,
    );
    let positions = io.positions(&mut net, top, TotalLen::PastPlusNew);
    let (cos, sin) = rope(&mut net, cfg, &positions.total_len, &positions.ids);
    let mask = attention_mask(&mut net, top, &positions);

    for i in 0..cfg.layers {
        let scope = format!("{top}/layers.{i}");
        let param = format!("model.layers.{i}");
        let x = rms_norm(
            &mut net,
            &format!("{scope}/input_layernorm"),
            &h,
            &format!("{param}.input_layernorm"),
            d,
            cfg.rms_epsilon,
        );
        let attn = format!("{scope}/self_attn");
        let project = |net: &mut Net, which: &str, heads: i64| {
            let w = format!("{param}.self_attn.{which}.weight");
            let w = net.param(&w, &[d, heads * hd], Values::fan_in(d));
            let y = net.op(&format!("{attn}/{which}"), "MatMul", &[&x, &w], vec![]);
            split_heads(net, &attn, &y, heads, hd, &[0, 2, 1, 3])
        };
        let q = project(&mut net, "q_proj", cfg.heads);
        let k = project(&mut net, "k_proj", cfg.kv_heads);
        let v = project(&mut net, "v_proj", cfg.kv_heads);
        let q = apply_rotary(&mut net, &attn, &q, &cos, &sin, hd);
        let k = apply_rotary(&mut net, &attn, &k, &cos, &sin, hd);
        let (k, v) = io.append_cache(&mut net, &attn, i, (k, v), 2);
        let k = repeat_kv(&mut net, &attn, &k, cfg.kv_heads, cfg.heads / cfg.kv_heads, hd);
        let v = repeat_kv(&mut net, &attn, &v, cfg.kv_heads, cfg.heads / cfg.kv_heads, hd);
        let k_t = net.op(&attn, "Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        let scores = scaled_scores(&mut net, &attn, &q, &k_t, hd);
        let scores = net.op(&attn, "Add", &[&scores, &mask], vec![]);
        let context = attend(&mut net, &attn, &scores, &v);
        let context = merge_heads(&mut net, &attn, &context, cfg.heads * hd);
        let w = net.param(
            &format!("{param}.self_attn.o_proj.weight"),
            &[cfg.heads * hd, d],
            Values::fan_in(cfg.heads * hd),
        );
        let attn_out = net.op(&format!("{attn}/o_proj"), "MatMul", &[&context, &w], vec![]);
        h = net.op(&scope, "Add", &[&h, &attn_out], vec![]);

        let x = rms_norm(
            &mut net,
            &format!("{scope}/post_attention_layernorm"),
            &h,
            &format!("{param}.post_attention_layernorm"),
            d,
            cfg.rms_epsilon,
        );
        let mlp_out = swiglu(
            &mut net,
            &format!("{scope}/mlp"),
            &x,
            &format!("{param}.mlp"),
            d,
            cfg.ffn,
        );
        h = net.op(&scope, "Add", &[&h, &mlp_out], vec![]);
    }

    let h = rms_norm(
        &mut net,
        &format!("{top}/norm"),
        &h,
        "model.norm",
        d,
        cfg.rms_epsilon,
    );
    let w = net.param("lm_head.weight", &[d, cfg.vocab], Values::fan_in(d));
    net.op_to("/lm_head", "MatMul", &[&h, &w], "logits", vec![]);

    io.declare_outputs(&mut net, cfg.vocab);
    net.finish()
}

/// The rotary `cos`/`sin` for the current positions, `[1, 1, s, head_dim]`:
/// `table[:total_len]` (Slice) then `[position_ids]` (Gather), then Unsqueeze for the head axis.
fn rope(net: &mut Net, cfg: &LlamaConfig, total_len: &str, positions: &str) -> (String, String) {
    let scope = "/model/rotary_emb";
    let (cos, sin) = rotary_tables(cfg);
    let dims = [cfg.max_positions, cfg.head_dim()];
    let mut pick = |name: &str, table: Vec<f32>| {
        let table = net.buffer(
            &format!("model.rotary_emb.{name}_cached"),
            &dims,
            Values::Explicit(table),
        );
        let starts = net.ints(scope, &[0]);
        let ends = unsqueeze(net, scope, total_len, &[0]);
        let axes = net.ints(scope, &[0]);
        let sliced = net.op(scope, "Slice", &[&table, &starts, &ends, &axes], vec![]);
        let rows = net.op(scope, "Gather", &[&sliced, positions], vec![attr_int("axis", 0)]);
        unsqueeze(net, scope, &rows, &[1])
    };
    let cos = pick("cos", cos);
    let sin = pick("sin", sin);
    (cos, sin)
}

/// Additive mask `[b, 1, q, k]`: query `r` sees keys `0..=past_len + r` that are not padding.
fn attention_mask(net: &mut Net, scope: &str, positions: &Positions) -> String {
    let (q_len, k_len, past_len) = (&positions.new_len, &positions.total_len, &positions.past_len);
    let shape = shape_vector(net, scope, &[Extent::Scalar(q_len), Extent::Scalar(k_len)]);
    let ones = net.op(
        scope,
        "ConstantOfShape",
        &[&shape],
        vec![attr_tensor("value", bool_tensor("", &[1], &[true]))],
    );
    let causal = net.op(scope, "Trilu", &[&ones, past_len], vec![attr_int("upper", 0)]);
    let padding = unsqueeze(net, scope, "attention_mask", &[1, 2]);
    let padding = net.op(
        scope,
        "Cast",
        &[&padding],
        vec![attr_int("to", DataType::BOOL as i64)],
    );
    let allowed = net.op(scope, "And", &[&causal, &padding], vec![]);
    let zero = net.float(scope, 0.0);
    let min = net.float(scope, MASK_VALUE);
    net.op(scope, "Where", &[&allowed, &zero, &min], vec![])
}

/// `x * cos + rotate_half(x) * sin`, with `rotate_half(x) = Concat(-x[..., half:], x[..., :half])`.
fn apply_rotary(net: &mut Net, scope: &str, x: &str, cos: &str, sin: &str, head_dim: i64) -> String {
    let half = head_dim / 2;
    let axes = net.ints(scope, &[-1]);
    let zero = net.ints(scope, &[0]);
    let mid = net.ints(scope, &[half]);
    let x1 = net.op(scope, "Slice", &[x, &zero, &mid, &axes], vec![]);
    let mid = net.ints(scope, &[half]);
    // `x[..., half:]`: the exporter writes an open end as INT64_MAX (Slice clamps it).
    let end = net.ints(scope, &[i64::MAX]);
    let axes = net.ints(scope, &[-1]);
    let x2 = net.op(scope, "Slice", &[x, &mid, &end, &axes], vec![]);
    let neg = net.op(scope, "Neg", &[&x2], vec![]);
    let rotated = net.op(scope, "Concat", &[&neg, &x1], vec![attr_int("axis", -1)]);
    let a = net.op(scope, "Mul", &[x, cos], vec![]);
    let b = net.op(scope, "Mul", &[&rotated, sin], vec![]);
    net.op(scope, "Add", &[&a, &b], vec![])
}

/// HF's `repeat_kv`: `[b, kv, t, hd]` -> Unsqueeze `[b, kv, 1, t, hd]` -> Expand `[b, kv, n, t, hd]`
/// -> Reshape `[b, kv * n, t, hd]`. The identity when `n == 1`, as in HF.
fn repeat_kv(net: &mut Net, scope: &str, x: &str, kv_heads: i64, n_rep: i64, head_dim: i64) -> String {
    if n_rep == 1 {
        return x.to_string();
    }
    let u = unsqueeze(net, scope, x, &[2]);
    let shape = shape_vector(
        net,
        scope,
        &[
            Extent::Of(x, 0),
            Extent::Fixed(kv_heads),
            Extent::Fixed(n_rep),
            Extent::Of(x, 2),
            Extent::Fixed(head_dim),
        ],
    );
    let expanded = net.op(scope, "Expand", &[&u, &shape], vec![]);
    reshape(
        net,
        scope,
        &expanded,
        &[
            Extent::Of(x, 0),
            Extent::Fixed(kv_heads * n_rep),
            Extent::Of(x, 2),
            Extent::Fixed(head_dim),
        ],
    )
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`, SiLU exported as Sigmoid then Mul.
fn swiglu(net: &mut Net, scope: &str, x: &str, param: &str, d: i64, ffn: i64) -> String {
    let gate_w = net.param(&format!("{param}.gate_proj.weight"), &[d, ffn], Values::fan_in(d));
    let gate = net.op(&format!("{scope}/gate_proj"), "MatMul", &[x, &gate_w], vec![]);
    let act = format!("{scope}/act_fn");
    let sig = net.op(&act, "Sigmoid", &[&gate], vec![]);
    let silu = net.op(&act, "Mul", &[&gate, &sig], vec![]);
    let up_w = net.param(&format!("{param}.up_proj.weight"), &[d, ffn], Values::fan_in(d));
    let up = net.op(&format!("{scope}/up_proj"), "MatMul", &[x, &up_w], vec![]);
    let gated = net.op(scope, "Mul", &[&silu, &up], vec![]);
    let down_w = net.param(
        &format!("{param}.down_proj.weight"),
        &[ffn, d],
        Values::fan_in(ffn),
    );
    net.op(
        &format!("{scope}/down_proj"),
        "MatMul",
        &[&gated, &down_w],
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Config;
    use crate::external::extent;
    use crate::standalone::{write_model, Weights};
    use crate::testing::{
        assert_nodes_per_layer_constant, count, input_names, named, op_types, output_names, round_trip,
        signature,
    };
    use onnx_protobuf::{Message, ModelProto};

    fn built(cfg: &LlamaConfig, variant: Variant) -> ModelProto {
        round_trip(&build(cfg, variant, Layout::Inline).expect("small").model)
    }

    fn with_layers(layers: usize) -> LlamaConfig {
        LlamaConfig {
            layers,
            ..LlamaConfig::tiny()
        }
    }

    #[test]
    fn structure_scales_with_layers() {
        for variant in [Variant::Prefill, Variant::Decode] {
            assert_nodes_per_layer_constant(variant.name(), |l| built(&with_layers(l), variant));
        }
        let m = built(&with_layers(3), Variant::Prefill);
        let ops = op_types(&m);
        assert_eq!(count(&ops, "ReduceMean"), 2 * 3 + 1);
        assert_eq!(count(&ops, "Reciprocal"), 2 * 3 + 1);
        assert_eq!(count(&ops, "Sigmoid"), 3);
        assert_eq!(count(&ops, "Neg"), 2 * 3);
        assert_eq!(count(&ops, "Expand"), 2 * 3, "GQA repeats k and v");
        assert_eq!(count(&ops, "Trilu"), 1);
        assert_eq!(count(&ops, "ConstantOfShape"), 1);
        for n in m.graph.node.iter().filter(|n| n.op_type == "ReduceMean") {
            assert_eq!(n.input.len(), 2, "opset 18: axes is an input");
            assert_eq!(n.attribute.len(), 1);
            assert_eq!(n.attribute[0].name, "keepdims");
        }
        let no_gqa = LlamaConfig {
            kv_heads: 4,
            ..with_layers(3)
        };
        assert_eq!(count(&op_types(&built(&no_gqa, Variant::Prefill)), "Expand"), 0);
    }

    #[test]
    fn every_f16_initializer_is_cast_to_f32_once() {
        let m = built(&LlamaConfig::tiny(), Variant::Prefill);
        let halves: Vec<&str> = m
            .graph
            .initializer
            .iter()
            .filter(|t| t.data_type == DataType::FLOAT16 as i32)
            .map(|t| t.name.as_str())
            .collect();
        // 2 per model (embedding, LM head) + 9 per layer + final norm + 2 rotary tables.
        assert_eq!(halves.len(), 2 + 9 * 2 + 1 + 2);
        for name in halves {
            let users: Vec<_> = m
                .graph
                .node
                .iter()
                .filter(|n| n.input.iter().any(|i| i == name))
                .collect();
            assert_eq!(users.len(), 1, "{name}");
            assert_eq!(users[0].op_type, "Cast");
            assert_eq!(users[0].attribute[0].i, DataType::FLOAT as i64);
        }
    }

    #[test]
    fn decode_cache_uses_kv_heads() {
        let m = built(&LlamaConfig::tiny(), Variant::Decode);
        assert_eq!(input_names(&m).len(), 2 + 2 * 2);
        assert_eq!(output_names(&m).len(), 1 + 2 * 2);
        let past = named(&m.graph.input, "past_key_values.1.value");
        assert_eq!(signature(past).1, ["batch", "2", "past_sequence", "32"]);
        let present = named(&m.graph.output, "present.1.value");
        assert_eq!(signature(present).1, ["batch", "2", "past_sequence + 1", "32"]);
        assert_eq!(signature(&m.graph.input[1]).1, ["batch", "past_sequence + 1"]);
    }

    #[test]
    fn rotary_tables_start_at_identity() {
        let (cos, sin) = rotary_tables(&LlamaConfig::tiny());
        assert!(cos[..32].iter().all(|&c| c == 1.0) && sin[..32].iter().all(|&s| s == 0.0));
        // Position 1, frequency 0 is one radian in both halves.
        assert_eq!(cos[32], 1f64.cos() as f32);
        assert_eq!(cos[32 + 16], cos[32]);
    }

    /// The 70B-shaped preset, written with sparse weights: the parameter count follows the
    /// published shape and the data file's logical length is exactly the tensors' bytes.
    #[test]
    fn llama2_70b_sparse_weights_add_up() {
        let cfg = LlamaConfig::llama2_70b();
        let (d, layers, ffn, vocab, kv_width) = (8192u64, 80u64, 28672u64, 32000u64, 8 * 128u64);
        let per_layer = 2 * d * d + 2 * d * kv_width + 3 * d * ffn + 2 * d;
        let expected = 2 * vocab * d + layers * per_layer + d;
        assert_eq!(expected, 68_976_648_192);
        assert_eq!(cfg.parameter_count(), expected);

        let dir = std::env::temp_dir().join(format!("lpuc-examples-70b-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = write_model(
            &Config::Llama(cfg),
            Variant::Prefill,
            Weights::ExternalSparse,
            &dir,
            "model.onnx",
        )
        .expect("writes");
        assert_eq!(written.parameters, expected);
        let bytes = std::fs::read(&written.model_path).expect("model file");
        let m = ModelProto::parse_from_bytes(&bytes).expect("parses");
        let lengths: Vec<(u64, u64, &str)> = m
            .graph
            .initializer
            .iter()
            .filter_map(|t| extent(t).map(|(o, l)| (o, l, t.name.as_str())))
            .collect();
        let total: u64 = lengths.iter().map(|(_, l, _)| l).sum();
        let params: u64 = lengths
            .iter()
            .filter(|(_, _, n)| !n.starts_with("model.rotary_emb."))
            .map(|(_, l, _)| l)
            .sum();
        // int8: one byte per parameter; every parameter is large enough to be external.
        assert_eq!(params, expected);
        let rotary = 2 * 4096 * 128 * 4;
        assert_eq!(total, expected + rotary);
        let (data_path, logical) = written.data.clone().expect("data file");
        let meta = std::fs::metadata(&data_path).expect("data file exists");
        assert_eq!(meta.len(), logical);
        // Every tensor length is a multiple of the alignment, so there is no padding.
        assert_eq!(meta.len(), total);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert!(meta.blocks() * 512 < 1 << 20, "the data file is sparse");
        }
        assert!(written.model_bytes < 8 << 20, "{}", written.model_bytes);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
