//! The graph interface the decoder families (GPT-2, Llama) export with, written once: token and
//! padding-mask inputs, the per-layer KV cache (`past_key_values.*` in, `present.*` out) of the
//! decode variant, and position ids that continue after the cache.

use crate::builder::{attr_int, Dim};
use crate::net::Net;
use crate::nn::Variant;
use crate::shapes::{dim, unsqueeze};
use onnx_protobuf::tensor_proto::DataType;

/// What a decoder's inputs and outputs depend on; the cache holds `[batch, kv_heads, t, head_dim]`
/// per layer, for keys and for values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderIo {
    pub variant: Variant,
    pub layers: usize,
    pub kv_heads: i64,
    pub head_dim: i64,
}

/// How the exporter traced `past_len + new_len`: the operand order follows each model's source, and
/// the examples keep it so they read like real exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotalLen {
    /// GPT-2's `arange(past_length, input_shape[-1] + past_length)`.
    NewPlusPast,
    /// Llama's `arange(past_seen_tokens, past_seen_tokens + inputs_embeds.shape[1])`.
    PastPlusNew,
}

/// The lengths of one forward pass and its position ids, as scalar int64 values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Positions {
    /// Tokens in this pass: `input_ids.size(1)`.
    pub new_len: String,
    /// Cached tokens: 0 in prefill, `past_key_values.0.key.size(2)` in decode.
    pub past_len: String,
    /// `past_len + new_len`, the key length.
    pub total_len: String,
    /// `[1, new_len]` position ids: `Range(past_len, total_len)` with a leading axis.
    pub ids: String,
}

impl DecoderIo {
    /// `(batch, sequence, total)`: the dims of `input_ids` and of `attention_mask`.
    fn dims(&self) -> (Dim, Dim, Dim) {
        let batch = Dim::Named("batch");
        match self.variant {
            Variant::Prefill => (batch, Dim::Named("sequence"), Dim::Named("sequence")),
            Variant::Decode => (batch, Dim::Fixed(1), Dim::Named("past_sequence + 1")),
        }
    }

    /// Declares `input_ids [batch, sequence]`, `attention_mask [batch, total]` and, when decoding,
    /// `past_key_values.{i}.key` and `.value` for every layer.
    pub fn declare_inputs(&self, net: &mut Net) {
        let (batch, seq, total) = self.dims();
        net.input("input_ids", DataType::INT64, &[batch, seq]);
        net.input("attention_mask", DataType::INT64, &[batch, total]);
        if self.variant == Variant::Decode {
            let past = self.cache_dims(Dim::Named("past_sequence"));
            for i in 0..self.layers {
                net.input(&format!("past_key_values.{i}.key"), DataType::FLOAT, &past);
                net.input(&format!("past_key_values.{i}.value"), DataType::FLOAT, &past);
            }
        }
    }

    /// Declares `logits [batch, sequence, vocab]` and, when decoding, `present.{i}.key` and
    /// `.value` for every layer.
    pub fn declare_outputs(&self, net: &mut Net, vocab: i64) {
        let (batch, seq, total) = self.dims();
        net.output("logits", DataType::FLOAT, &[batch, seq, Dim::Fixed(vocab)]);
        if self.variant == Variant::Decode {
            let present = self.cache_dims(total);
            for i in 0..self.layers {
                net.output(&format!("present.{i}.key"), DataType::FLOAT, &present);
                net.output(&format!("present.{i}.value"), DataType::FLOAT, &present);
            }
        }
    }

    fn cache_dims(&self, length: Dim) -> [Dim; 4] {
        let (batch, _, _) = self.dims();
        [
            batch,
            Dim::Fixed(self.kv_heads),
            length,
            Dim::Fixed(self.head_dim),
        ]
    }

    /// This pass's lengths and position ids, computed from shapes in `scope`.
    pub fn positions(&self, net: &mut Net, scope: &str, order: TotalLen) -> Positions {
        let new_len = dim(net, scope, "input_ids", 1);
        let (past_len, total_len) = match self.variant {
            Variant::Prefill => (net.int(scope, 0), new_len.clone()),
            Variant::Decode => {
                let past_len = dim(net, scope, "past_key_values.0.key", 2);
                let sum = match order {
                    TotalLen::NewPlusPast => [&new_len, &past_len],
                    TotalLen::PastPlusNew => [&past_len, &new_len],
                };
                let total_len = net.op(scope, "Add", &[sum[0], sum[1]], vec![]);
                (past_len, total_len)
            }
        };
        let step = net.int(scope, 1);
        let ids = net.op(scope, "Range", &[&past_len, &total_len, &step], vec![]);
        let ids = unsqueeze(net, scope, &ids, &[0]);
        Positions {
            new_len,
            past_len,
            total_len,
            ids,
        }
    }

    /// Layer `layer`'s keys and values over the whole sequence: unchanged in prefill; in decode the
    /// cache followed by this step's, written to `present.{layer}.*` by a Concat on the sequence
    /// axis, spelt `axis` as the exporter wrote it (-2 or 2 of a rank-4 tensor).
    pub fn append_cache(
        &self,
        net: &mut Net,
        scope: &str,
        layer: usize,
        kv: (String, String),
        axis: i64,
    ) -> (String, String) {
        if self.variant == Variant::Prefill {
            return kv;
        }
        let mut append = |kind: &str, new: String| {
            let present = format!("present.{layer}.{kind}");
            let past = format!("past_key_values.{layer}.{kind}");
            let attrs = vec![attr_int("axis", axis)];
            net.op_to(scope, "Concat", &[&past, &new], &present, attrs);
            present
        };
        let k = append("key", kv.0);
        let v = append("value", kv.1);
        (k, v)
    }
}
