//! GPT-2-style decoder at opset 13, as the TorchScript exporter writes HF's `GPT2LMHeadModel`.
//!
//! Opset 13 is the point: Split, Unsqueeze and Slice take their axes and sizes as inputs while
//! ReduceMean still takes `axes` as an attribute, LayerNorm is decomposed (LayerNormalization came
//! at 17), and every reshape and position id is computed from shapes at run time. Small constants
//! are Constant nodes, as the exporter leaves them.
//!
//! The causal mask comes in two forms: HF's registered lower-triangular `bias` buffer sliced by
//! Slice with bounds from the shape subgraph, or computed from Range and LessOrEqual. The buffer is
//! `max_positions^2` bytes, so the committed examples (which must cover 2048+ positions in a small
//! file) compute it; the full-size preset uses the buffer.

use crate::builder::{attr_int, attr_ints};
use crate::decoder::{DecoderIo, TotalLen};
use crate::net::{Built, ConstStyle, Layout, Net};
use crate::nn::{
    attend, embedding, gelu_erf, gelu_tanh, layer_norm_decomposed, linear, merge_heads, padding_mask,
    scaled_scores, split_heads, Variant, MASK_VALUE,
};
use crate::shapes::{dim, unsqueeze};
use crate::weights::WeightDtype;

/// Default-domain opset of every GPT-2 model.
pub const OPSET: i64 = 13;

/// Which GELU approximation the MLP uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gelu {
    /// `NewGELUActivation` (what GPT-2 uses): Pow, Mul, Add, Tanh.
    Tanh,
    /// Exact GELU: Div, Erf, Add, Mul, Mul.
    Erf,
}

/// How the causal mask is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CausalMask {
    /// A bool `[1, 1, max_positions, max_positions]` lower-triangular initializer, sliced per layer.
    Buffer,
    /// `LessOrEqual(key_pos, query_pos)` from two Ranges, per layer.
    Computed,
}

/// The shape of a GPT-2 model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gpt2Config {
    pub layers: usize,
    pub d_model: i64,
    pub heads: i64,
    pub ffn: i64,
    pub vocab: i64,
    pub max_positions: i64,
    pub ln_epsilon: f32,
    pub gelu: Gelu,
    pub causal_mask: CausalMask,
    pub dtype: WeightDtype,
}

impl Gpt2Config {
    /// The committed examples: 2 layers of width 64, 4096 positions (so a 2048 bucket plus a
    /// 2048-token cache fits), a computed mask.
    pub fn tiny() -> Self {
        Gpt2Config {
            layers: 2,
            d_model: 64,
            heads: 4,
            ffn: 256,
            vocab: 512,
            max_positions: 4096,
            ln_epsilon: 1e-5,
            gelu: Gelu::Tanh,
            causal_mask: CausalMask::Computed,
            dtype: WeightDtype::F32,
        }
    }

    /// GPT-2 small (124M parameters), with HF's mask buffer.
    pub fn gpt2_small() -> Self {
        Gpt2Config {
            layers: 12,
            d_model: 768,
            heads: 12,
            ffn: 3072,
            vocab: 50257,
            max_positions: 1024,
            causal_mask: CausalMask::Buffer,
            ..Self::tiny()
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.d_model / self.heads
    }

    /// Trained parameters: embeddings (the LM head is tied to `wte`), per-layer attention, MLP and
    /// two LayerNorms, and the final LayerNorm.
    pub fn parameter_count(&self) -> u64 {
        let d = self.d_model as u64;
        let f = self.ffn as u64;
        let per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d;
        (self.vocab as u64 + self.max_positions as u64) * d + self.layers as u64 * per_layer + 2 * d
    }
}

/// Builds the model; `layout` decides where weights go.
pub fn build(cfg: &Gpt2Config, variant: Variant, layout: Layout) -> Result<Built, String> {
    let d = cfg.d_model;
    let heads = cfg.heads;
    let hd = cfg.head_dim();
    let name = format!("gpt2_{}", variant.name());
    let mut net = Net::new(&name, OPSET, cfg.dtype, ConstStyle::Node, layout);
    let io = DecoderIo {
        variant,
        layers: cfg.layers,
        kv_heads: heads,
        head_dim: hd,
    };
    io.declare_inputs(&mut net);

    // Embeddings: positions run from the cache length to cache length + new tokens.
    let top = "/transformer";
    let (wte, tokens) = embedding(&mut net, top, "input_ids", "transformer.wte", cfg.vocab, d, 0.02);
    let positions = io.positions(&mut net, top, TotalLen::NewPlusPast);
    let (_, pos_embeds) = embedding(
        &mut net,
        top,
        &positions.ids,
        "transformer.wpe",
        cfg.max_positions,
        d,
        0.01,
    );
    let mut h = net.op(top, "Add", &[&tokens, &pos_embeds], vec![]);
    let additive_mask = padding_mask(&mut net, top, "attention_mask");
    let mask_buffer = (cfg.causal_mask == CausalMask::Buffer).then(|| {
        let p = cfg.max_positions;
        let tril: Vec<bool> = (0..p * p).map(|i| i % p <= i / p).collect();
        // One buffer for all layers: the exporter deduplicates the per-layer copies under the first name.
        net.bool_buffer("transformer.h.0.attn.bias", &[1, 1, p, p], &tril)
    });

    for i in 0..cfg.layers {
        let scope = format!("{top}/h.{i}");
        let param = format!("transformer.h.{i}");
        let attn = format!("{scope}/attn");
        let x = layer_norm_decomposed(
            &mut net,
            &format!("{scope}/ln_1"),
            &h,
            &format!("{param}.ln_1"),
            d,
            cfg.ln_epsilon,
        );
        let qkv = linear(
            &mut net,
            &format!("{attn}/c_attn"),
            &x,
            &format!("{param}.attn.c_attn"),
            d,
            3 * d,
            true,
        );
        let sizes = net.ints(&attn, &[d, d, d]);
        let parts = net.op_multi(&attn, "Split", &[&qkv, &sizes], 3, vec![attr_int("axis", 2)]);
        let perm = [0, 2, 1, 3];
        let q = split_heads(&mut net, &attn, &parts[0], heads, hd, &perm);
        let k = split_heads(&mut net, &attn, &parts[1], heads, hd, &perm);
        let v = split_heads(&mut net, &attn, &parts[2], heads, hd, &perm);
        let (k, v) = io.append_cache(&mut net, &attn, i, (k, v), -2);
        let k_t = net.op(&attn, "Transpose", &[&k], vec![attr_ints("perm", &[0, 1, 3, 2])]);
        let scores = scaled_scores(&mut net, &attn, &q, &k_t, hd);
        let causal = causal_mask(&mut net, &attn, &q, &k, mask_buffer.as_deref());
        let min = net.float(&attn, MASK_VALUE);
        let scores = net.op(&attn, "Where", &[&causal, &scores, &min], vec![]);
        let scores = net.op(&attn, "Add", &[&scores, &additive_mask], vec![]);
        let context = attend(&mut net, &attn, &scores, &v);
        let context = merge_heads(&mut net, &attn, &context, d);
        let attn_out = linear(
            &mut net,
            &format!("{attn}/c_proj"),
            &context,
            &format!("{param}.attn.c_proj"),
            d,
            d,
            true,
        );
        h = net.op(&scope, "Add", &[&attn_out, &h], vec![]);

        let x = layer_norm_decomposed(
            &mut net,
            &format!("{scope}/ln_2"),
            &h,
            &format!("{param}.ln_2"),
            d,
            cfg.ln_epsilon,
        );
        let mlp = format!("{scope}/mlp");
        let up = linear(
            &mut net,
            &format!("{mlp}/c_fc"),
            &x,
            &format!("{param}.mlp.c_fc"),
            d,
            cfg.ffn,
            true,
        );
        let act = match cfg.gelu {
            Gelu::Tanh => gelu_tanh(&mut net, &format!("{mlp}/act"), &up),
            Gelu::Erf => gelu_erf(&mut net, &format!("{mlp}/act"), &up),
        };
        let down = linear(
            &mut net,
            &format!("{mlp}/c_proj"),
            &act,
            &format!("{param}.mlp.c_proj"),
            cfg.ffn,
            d,
            true,
        );
        h = net.op(&scope, "Add", &[&h, &down], vec![]);
    }

    let h = layer_norm_decomposed(
        &mut net,
        &format!("{top}/ln_f"),
        &h,
        "transformer.ln_f",
        d,
        cfg.ln_epsilon,
    );
    // The LM head is tied to the token embedding: logits = h @ wte^T.
    let wte_t = net.op("/lm_head", "Transpose", &[&wte], vec![attr_ints("perm", &[1, 0])]);
    net.op_to("/lm_head", "MatMul", &[&h, &wte_t], "logits", vec![]);

    io.declare_outputs(&mut net, cfg.vocab);
    net.finish()
}

/// Bool `[q, k]` (or `[1, 1, q, k]` from the buffer): query row `r` may see keys up to
/// `k_len - q_len + r`.
fn causal_mask(net: &mut Net, scope: &str, q: &str, k: &str, buffer: Option<&str>) -> String {
    let q_len = dim(net, scope, q, 2);
    let k_len = dim(net, scope, k, 2);
    let first_query = net.op(scope, "Sub", &[&k_len, &q_len], vec![]);
    match buffer {
        // bias[:, :, k_len - q_len : k_len, :k_len], one Slice per axis as the exporter writes it.
        Some(bias) => {
            let starts = unsqueeze(net, scope, &first_query, &[0]);
            let ends = unsqueeze(net, scope, &k_len, &[0]);
            let axes = net.ints(scope, &[2]);
            let steps = net.ints(scope, &[1]);
            let rows = net.op(scope, "Slice", &[bias, &starts, &ends, &axes, &steps], vec![]);
            let zero = net.ints(scope, &[0]);
            let ends = unsqueeze(net, scope, &k_len, &[0]);
            let axes = net.ints(scope, &[3]);
            let steps = net.ints(scope, &[1]);
            net.op(scope, "Slice", &[&rows, &zero, &ends, &axes, &steps], vec![])
        }
        None => {
            let one = net.int(scope, 1);
            let query_pos = net.op(scope, "Range", &[&first_query, &k_len, &one], vec![]);
            let zero = net.int(scope, 0);
            let one = net.int(scope, 1);
            let key_pos = net.op(scope, "Range", &[&zero, &k_len, &one], vec![]);
            let key_row = unsqueeze(net, scope, &key_pos, &[0]);
            let query_col = unsqueeze(net, scope, &query_pos, &[1]);
            net.op(scope, "LessOrEqual", &[&key_row, &query_col], vec![])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        assert_nodes_per_layer_constant, count, input_names, named, op_types, output_names, round_trip,
        signature,
    };
    use onnx_protobuf::tensor_proto::DataType;

    fn built(cfg: &Gpt2Config, variant: Variant) -> onnx_protobuf::ModelProto {
        round_trip(&build(cfg, variant, Layout::Inline).expect("small").model)
    }

    fn with_layers(layers: usize) -> Gpt2Config {
        Gpt2Config {
            layers,
            ..Gpt2Config::tiny()
        }
    }

    #[test]
    fn nodes_per_layer_are_constant() {
        for variant in [Variant::Prefill, Variant::Decode] {
            assert_nodes_per_layer_constant(variant.name(), |l| built(&with_layers(l), variant));
            let m = built(&with_layers(3), variant);
            let ops = op_types(&m);
            // Two decomposed LayerNorms per layer plus ln_f, two ReduceMeans each.
            assert_eq!(count(&ops, "ReduceMean"), 2 * (2 * 3 + 1));
            assert_eq!(count(&ops, "Split"), 3);
            assert_eq!(count(&ops, "Softmax"), 3);
            assert_eq!(count(&ops, "Tanh"), 3);
            assert_eq!(count(&ops, "Where"), 3);
            assert_eq!(count(&ops, "LessOrEqual"), 3);
            assert_eq!(
                count(&ops, "Concat"),
                3 * 4 + if variant == Variant::Decode { 6 } else { 0 }
            );
        }
    }

    #[test]
    fn opset_13_forms() {
        let m = built(&Gpt2Config::tiny(), Variant::Prefill);
        assert_eq!(m.opset_import[0].version, 13);
        for n in &m.graph.node {
            let attrs: Vec<&str> = n.attribute.iter().map(|a| a.name.as_str()).collect();
            match n.op_type.as_str() {
                "Split" => assert_eq!((n.input.len(), attrs.as_slice()), (2, ["axis"].as_slice())),
                "Unsqueeze" => assert_eq!((n.input.len(), attrs.len()), (2, 0)),
                "ReduceMean" => assert_eq!(
                    (n.input.len(), attrs.as_slice()),
                    (1, ["axes", "keepdims"].as_slice())
                ),
                "Constant" => assert_eq!(attrs, ["value"]),
                _ => {}
            }
        }
    }

    #[test]
    fn prefill_signature() {
        let m = built(&Gpt2Config::tiny(), Variant::Prefill);
        assert_eq!(input_names(&m), ["input_ids", "attention_mask"]);
        assert_eq!(output_names(&m), ["logits"]);
        let int64 = DataType::INT64 as i32;
        assert_eq!(
            signature(&m.graph.input[0]),
            (int64, vec!["batch".into(), "sequence".into()])
        );
        assert_eq!(
            signature(&m.graph.output[0]),
            (
                DataType::FLOAT as i32,
                vec!["batch".into(), "sequence".into(), "512".into()]
            )
        );
    }

    #[test]
    fn decode_has_past_and_present_per_layer() {
        let cfg = with_layers(3);
        let m = built(&cfg, Variant::Decode);
        let inputs = input_names(&m);
        let outputs = output_names(&m);
        assert_eq!(inputs.len(), 2 + 2 * 3);
        assert_eq!(outputs.len(), 1 + 2 * 3);
        for i in 0..3 {
            for kind in ["key", "value"] {
                let past = format!("past_key_values.{i}.{kind}");
                let present = format!("present.{i}.{kind}");
                let p = named(&m.graph.input, &past);
                assert_eq!(signature(p).1, ["batch", "4", "past_sequence", "16"]);
                let q = named(&m.graph.output, &present);
                assert_eq!(signature(q).1, ["batch", "4", "past_sequence + 1", "16"]);
            }
        }
        assert_eq!(signature(&m.graph.input[0]).1, ["batch", "1"]);
        assert_eq!(signature(&m.graph.input[1]).1, ["batch", "past_sequence + 1"]);
    }

    #[test]
    fn buffer_mask_is_sliced_by_shapes() {
        let cfg = Gpt2Config {
            causal_mask: CausalMask::Buffer,
            max_positions: 16,
            ..with_layers(2)
        };
        let m = built(&cfg, Variant::Prefill);
        let ops = op_types(&m);
        assert_eq!(count(&ops, "Slice"), 4);
        assert_eq!(count(&ops, "LessOrEqual"), 0);
        let bias = named(&m.graph.initializer, "transformer.h.0.attn.bias");
        assert_eq!(bias.dims, [1, 1, 16, 16]);
        assert_eq!(bias.data_type, DataType::BOOL as i32);
        // Row r keeps columns 0..=r.
        assert_eq!(&bias.raw_data[16..19], &[1, 1, 0]);
    }

    #[test]
    fn parameter_count_matches_gpt2_small() {
        // HF reports 124,439,808 parameters for `gpt2`.
        assert_eq!(Gpt2Config::gpt2_small().parameter_count(), 124_439_808);
        let b = build(&Gpt2Config::tiny(), Variant::Prefill, Layout::Inline).expect("small");
        assert_eq!(b.parameter_count(), Gpt2Config::tiny().parameter_count());
    }
}
