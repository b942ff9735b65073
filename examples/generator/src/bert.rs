//! BERT-style encoder at opset 17, as HF's `BertModel` exports: the LayerNormalization op, Erf GELU,
//! an additive padding mask and the Tanh pooler.
//!
//! Position ids are HF's registered `position_ids` buffer `[1, max_positions]` sliced to the
//! sequence length with Slice bounds from the shape subgraph. Constants are initializers, as after
//! constant folding (the GPT-2 and Llama families use Constant nodes, so both forms are covered).

use crate::builder::{attr_int, Dim};
use crate::net::{Built, ConstStyle, Layout, Net};
use crate::nn::{
    attend, embedding, gelu_erf, layer_norm, linear, linear_gemm, merge_heads, padding_mask, scaled_scores,
    split_heads,
};
use crate::shapes::{dim, unsqueeze};
use crate::weights::WeightDtype;
use onnx_protobuf::tensor_proto::DataType;

/// Default-domain opset of every BERT model (the first with LayerNormalization).
pub const OPSET: i64 = 17;

/// The shape of a BERT model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BertConfig {
    pub layers: usize,
    pub d_model: i64,
    pub heads: i64,
    pub ffn: i64,
    pub vocab: i64,
    pub max_positions: i64,
    pub type_vocab: i64,
    pub ln_epsilon: f32,
    pub dtype: WeightDtype,
}

impl BertConfig {
    /// The committed examples: 2 layers of width 64 and 2048 positions.
    pub fn tiny() -> Self {
        BertConfig {
            layers: 2,
            d_model: 64,
            heads: 4,
            ffn: 256,
            vocab: 1024,
            max_positions: 2048,
            type_vocab: 2,
            ln_epsilon: 1e-12,
            dtype: WeightDtype::F32,
        }
    }

    /// bert-base-uncased (110M parameters).
    pub fn bert_base() -> Self {
        BertConfig {
            layers: 12,
            d_model: 768,
            heads: 12,
            ffn: 3072,
            vocab: 30522,
            max_positions: 512,
            ..Self::tiny()
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> i64 {
        self.d_model / self.heads
    }

    /// Trained parameters: three embeddings and their LayerNorm, per-layer attention (four
    /// projections), MLP and two LayerNorms, and the pooler.
    pub fn parameter_count(&self) -> u64 {
        let d = self.d_model as u64;
        let f = self.ffn as u64;
        let embeddings = (self.vocab + self.max_positions + self.type_vocab) as u64 * d + 2 * d;
        let per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 4 * d;
        embeddings + self.layers as u64 * per_layer + (d * d + d)
    }
}

/// Builds the model; `layout` decides where weights go.
pub fn build(cfg: &BertConfig, layout: Layout) -> Result<Built, String> {
    let d = cfg.d_model;
    let hd = cfg.head_dim();
    let mut net = Net::new("bert_encoder", OPSET, cfg.dtype, ConstStyle::Initializer, layout);
    let tokens = [Dim::Named("batch"), Dim::Named("sequence")];
    for name in ["input_ids", "attention_mask", "token_type_ids"] {
        net.input(name, DataType::INT64, &tokens);
    }

    let emb = "/embeddings";
    let embed = |net: &mut Net, ids: &str, table: &str, rows: i64| {
        embedding(net, emb, ids, &format!("embeddings.{table}"), rows, d, 0.02).1
    };
    let word = embed(&mut net, "input_ids", "word_embeddings", cfg.vocab);
    let kind = embed(
        &mut net,
        "token_type_ids",
        "token_type_embeddings",
        cfg.type_vocab,
    );
    let x = net.op(emb, "Add", &[&word, &kind], vec![]);
    // position_ids[:, 0:seq_len]
    let ids: Vec<i64> = (0..cfg.max_positions).collect();
    let ids = net.int_buffer("embeddings.position_ids", &[1, cfg.max_positions], &ids);
    let seq_len = dim(&mut net, emb, "input_ids", 1);
    let starts = net.ints(emb, &[0]);
    let ends = unsqueeze(&mut net, emb, &seq_len, &[0]);
    let axes = net.ints(emb, &[1]);
    let steps = net.ints(emb, &[1]);
    let ids = net.op(emb, "Slice", &[&ids, &starts, &ends, &axes, &steps], vec![]);
    let pos = embed(&mut net, &ids, "position_embeddings", cfg.max_positions);
    let x = net.op(emb, "Add", &[&x, &pos], vec![]);
    let mut h = layer_norm(
        &mut net,
        &format!("{emb}/LayerNorm"),
        &x,
        "embeddings.LayerNorm",
        d,
        cfg.ln_epsilon,
        None,
    );
    let additive_mask = padding_mask(&mut net, "", "attention_mask");

    for i in 0..cfg.layers {
        let scope = format!("/encoder/layer.{i}");
        let param = format!("encoder.layer.{i}");
        let last = i + 1 == cfg.layers;
        let sa = format!("{scope}/attention/self");
        let project = |net: &mut Net, which: &str| {
            let scope = format!("{sa}/{which}");
            linear(
                net,
                &scope,
                &h,
                &format!("{param}.attention.self.{which}"),
                d,
                d,
                true,
            )
        };
        let q = project(&mut net, "query");
        let k = project(&mut net, "key");
        let v = project(&mut net, "value");
        let q = split_heads(&mut net, &sa, &q, cfg.heads, hd, &[0, 2, 1, 3]);
        // transpose_for_scores then .transpose(-1, -2): the exporter fuses the two Transposes.
        let k_t = split_heads(&mut net, &sa, &k, cfg.heads, hd, &[0, 2, 3, 1]);
        let v = split_heads(&mut net, &sa, &v, cfg.heads, hd, &[0, 2, 1, 3]);
        let scores = scaled_scores(&mut net, &sa, &q, &k_t, hd);
        let scores = net.op(&sa, "Add", &[&scores, &additive_mask], vec![]);
        let context = attend(&mut net, &sa, &scores, &v);
        let context = merge_heads(&mut net, &sa, &context, d);

        let out = format!("{scope}/attention/output");
        let y = linear(
            &mut net,
            &format!("{out}/dense"),
            &context,
            &format!("{param}.attention.output.dense"),
            d,
            d,
            true,
        );
        let y = net.op(&out, "Add", &[&y, &h], vec![]);
        let attn_out = layer_norm(
            &mut net,
            &format!("{out}/LayerNorm"),
            &y,
            &format!("{param}.attention.output.LayerNorm"),
            d,
            cfg.ln_epsilon,
            None,
        );

        let up = linear(
            &mut net,
            &format!("{scope}/intermediate/dense"),
            &attn_out,
            &format!("{param}.intermediate.dense"),
            d,
            cfg.ffn,
            true,
        );
        let act = gelu_erf(
            &mut net,
            &format!("{scope}/intermediate/intermediate_act_fn"),
            &up,
        );
        let out = format!("{scope}/output");
        let y = linear(
            &mut net,
            &format!("{out}/dense"),
            &act,
            &format!("{param}.output.dense"),
            cfg.ffn,
            d,
            true,
        );
        let y = net.op(&out, "Add", &[&y, &attn_out], vec![]);
        h = layer_norm(
            &mut net,
            &format!("{out}/LayerNorm"),
            &y,
            &format!("{param}.output.LayerNorm"),
            d,
            cfg.ln_epsilon,
            last.then_some("last_hidden_state"),
        );
    }
    if cfg.layers == 0 {
        net.op_to("/encoder", "Identity", &[&h], "last_hidden_state", vec![]);
    }

    // Pooler: the first token's state -> Linear (Gemm, weight [out, in]) -> Tanh.
    let pool = "/pooler";
    let first = net.int(pool, 0);
    let first = net.op(
        pool,
        "Gather",
        &["last_hidden_state", &first],
        vec![attr_int("axis", 1)],
    );
    let y = linear_gemm(
        &mut net,
        &format!("{pool}/dense"),
        &first,
        "pooler.dense",
        d,
        d,
        None,
    );
    net.op_to(
        &format!("{pool}/activation"),
        "Tanh",
        &[&y],
        "pooler_output",
        vec![],
    );

    net.output(
        "last_hidden_state",
        DataType::FLOAT,
        &[tokens[0], tokens[1], Dim::Fixed(d)],
    );
    net.output("pooler_output", DataType::FLOAT, &[tokens[0], Dim::Fixed(d)]);
    net.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        assert_nodes_per_layer_constant, count, input_names, named, op_types, output_names, round_trip,
        signature,
    };

    fn built(layers: usize) -> onnx_protobuf::ModelProto {
        let cfg = BertConfig {
            layers,
            ..BertConfig::tiny()
        };
        round_trip(&build(&cfg, Layout::Inline).expect("small").model)
    }

    #[test]
    fn structure_scales_with_layers() {
        assert_nodes_per_layer_constant("bert", built);
        let m = built(3);
        let ops = op_types(&m);
        assert_eq!(count(&ops, "LayerNormalization"), 2 * 3 + 1);
        assert_eq!(count(&ops, "Erf"), 3);
        assert_eq!(count(&ops, "Softmax"), 3);
        assert_eq!(count(&ops, "Gemm"), 1);
        assert_eq!(count(&ops, "Tanh"), 1);
        assert_eq!(count(&ops, "Slice"), 1);
        assert_eq!(count(&ops, "Constant"), 0, "constants are initializers");
    }

    #[test]
    fn signature_and_pooler() {
        let m = built(2);
        assert_eq!(m.opset_import[0].version, 17);
        assert_eq!(input_names(&m), ["input_ids", "attention_mask", "token_type_ids"]);
        assert_eq!(output_names(&m), ["last_hidden_state", "pooler_output"]);
        assert_eq!(signature(&m.graph.output[1]).1, ["batch", "64"]);
        let gather = named(&m.graph.node, "/pooler/Gather");
        assert_eq!(gather.input[0], "last_hidden_state");
        assert_eq!(gather.attribute[0].i, 1, "gathers on the sequence axis");
        let unsq = m.graph.node.iter().filter(|n| n.op_type == "Unsqueeze");
        assert!(unsq
            .into_iter()
            .all(|n| n.input.len() == 2 && n.attribute.is_empty()));
    }

    #[test]
    fn parameter_count_matches_bert_base() {
        // HF reports 109,482,240 parameters for `bert-base-uncased`.
        assert_eq!(BertConfig::bert_base().parameter_count(), 109_482_240);
        let b = build(&BertConfig::tiny(), Layout::Inline).expect("small");
        assert_eq!(b.parameter_count(), BertConfig::tiny().parameter_count());
    }
}
