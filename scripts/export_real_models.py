#!/usr/bin/env python3
"""Export small, randomly initialised models with real exporters, to validate lpuc's ONNX frontend.

The models are built from configs (no hub downloads: the weights are random) and are small (the
transformer files are 0.3-1.3 MB; gpt2_ts_eager.onnx is 5.4 MB because it stores GPT-2's
[1,1,2048,2048] causal-bias buffer; resnet18 is 11.7 M parameters whatever num_classes is, so its
files are 45 MB, 22 MB in float16), but the graphs are exactly what PyTorch's exporters emit for the real architectures:
the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`, what Optimum and most tutorials
use) and the dynamo exporter (`dynamo=True`, the default since torch 2.9).

Pinned versions (the ones this script was run with, CPython 3.11, Linux x86_64):

    torch==2.15.0 torchvision==0.29.2 transformers==4.57.6 onnx==1.23.2 onnxscript==0.7.2
    (pulled in: onnx-ir==1.1.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.22.2)

Exact commands:

    python3 -m venv /tmp/exportenv
    /tmp/exportenv/bin/pip install torch==2.15.0 torchvision==0.29.2 transformers==4.57.6 \
        onnx==1.23.2 onnxscript==0.7.2
    /tmp/exportenv/bin/python scripts/export_real_models.py /tmp/real_models

Download size: PyPI has no CPU-only torch wheel for Linux x86_64, so `pip install torch` brings the
CUDA build and its nvidia-* wheels: about 2.9 GB downloaded (torch 514 MB, cudnn 495 MB, cublas
386 MB, triton 273 MB, ...), 5.6 GB installed. The CPU wheels of download.pytorch.org are much
smaller where that index is reachable.

transformers is pinned to 4.57.6, the last 4.x release. Its attention masks are built with
torch.vmap, which the TorchScript exporter cannot trace; `masks_without_vmap` below swaps in a
broadcasting version during TorchScript exports, as Optimum's exporter does.

Besides the models asked for (gpt2/bert/llama/resnet18, TorchScript and dynamo), it writes a few
extras real users also produce: the dynamo exporter at opset 23, a float16 Llama, GPT-2 with eager
attention, and onnxruntime's dynamic int8 quantization of the BERT (only if onnxruntime is installed:
`pip install onnxruntime==1.32.0`).

Writes into the output folder (argv[1]) every model that exports, and `summary.json` with, for each
file: exporter, opset, node count, op types, inputs/outputs, size, onnx.checker result, or the
export error. A model that fails to export is recorded and skipped; the others still export.
"""

import contextlib
import json
import os
import sys
import traceback
import warnings
from collections import Counter

import onnx
import torch

warnings.filterwarnings("ignore")
torch.manual_seed(0)

OUT = None
SUMMARY = {}


def versions():
    v = {"torch": torch.__version__, "onnx": onnx.__version__}
    for mod in ("transformers", "torchvision", "onnxscript", "onnx_ir", "numpy"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            v[mod] = f"not available: {e}"
    return v


def describe(path):
    """Opset, node count, op types, inputs/outputs of an exported file; runs onnx.checker."""
    m = onnx.load(path)
    opsets = {o.domain or "ai.onnx": o.version for o in m.opset_import}

    def shape(vi):
        t = vi.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?")
                for d in t.shape.dim]
        return {"name": vi.name, "dtype": onnx.TensorProto.DataType.Name(t.elem_type), "dims": dims}

    ops = Counter(n.op_type if not n.domain else f"{n.domain}::{n.op_type}" for n in m.graph.node)
    info = {
        "file_bytes": os.path.getsize(path),
        "ir_version": m.ir_version,
        "opsets": opsets,
        "producer": f"{m.producer_name} {m.producer_version}",
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "functions": len(m.functions),
        "op_types": dict(sorted(ops.items())),
        "inputs": [shape(i) for i in m.graph.input],
        "outputs": [shape(o) for o in m.graph.output],
    }
    try:
        onnx.checker.check_model(m)
        info["checker"] = "ok"
    except Exception as e:  # noqa: BLE001
        info["checker"] = f"FAILED: {e}"
    try:
        onnx.checker.check_model(m, full_check=True)
        info["checker_full"] = "ok"
    except Exception as e:  # noqa: BLE001
        info["checker_full"] = f"FAILED: {e}"
    return info


def export(name, exporter, fn):
    """Run one export; record what it produced or why it failed."""
    path = os.path.join(OUT, name)
    print(f"== {name} ({exporter})", flush=True)
    try:
        extra = fn(path) or {}
        info = {"exporter": exporter, **extra, **describe(path)}
        print(f"   ok: opset {info['opsets']}, {info['nodes']} nodes, {info['file_bytes']} bytes, "
              f"checker {info['checker']}", flush=True)
    except Exception as e:  # noqa: BLE001
        info = {"exporter": exporter, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-4000:]}
        print(f"   FAILED: {type(e).__name__}: {str(e)[:2000]}", flush=True)
        if os.path.exists(path):
            os.remove(path)
    SUMMARY[name] = info


# ---------------------------------------------------------------- mask patch

@contextlib.contextmanager
def masks_without_vmap():
    """transformers >= 4.53 builds its attention masks with torch.vmap when torch >= 2.6, which the
    TorchScript tracer cannot go through (`IndexError: unordered_map::at` from
    torch/_functorch/autograd_function.py). Optimum's exporter swaps in a broadcasting version for the
    "sdpa" and "eager" mask functions while it exports; this does the same, so the graph is the one
    Optimum users get. The dynamo exporter handles vmap and needs no patch."""
    from transformers import masking_utils as mu

    def sdpa_mask(batch_size, cache_position, kv_length, kv_offset=0, mask_function=None, attention_mask=None,
                  local_size=None, allow_is_causal_skip=True, **kwargs):
        mask_function = mask_function or mu.causal_mask_function
        q_length = cache_position.shape[0]
        padding = mu.prepare_padding_mask(attention_mask, kv_length, kv_offset, _slice=False)
        if allow_is_causal_skip and mu._ignore_causal_mask_sdpa(padding, q_length, kv_length, kv_offset, local_size):
            return None
        if padding is not None:
            mask_function = mu.and_masks(mask_function, mu.padding_mask_function(padding))
        dev = cache_position.device
        b = torch.arange(batch_size, device=dev)[:, None, None, None]
        h = torch.arange(1, device=dev)[None, :, None, None]
        q = cache_position[None, None, :, None]
        kv = torch.arange(kv_length, device=dev)[None, None, None, :] + kv_offset
        return mask_function(b, h, q, kv).expand(batch_size, -1, q_length, kv_length)

    def eager_mask(*args, **kwargs):
        kwargs.pop("allow_is_causal_skip", None)
        dtype = kwargs.get("dtype", torch.float32)
        mask = sdpa_mask(*args, allow_is_causal_skip=False, **kwargs)
        return torch.where(mask, torch.tensor(0.0, dtype=dtype), torch.finfo(dtype).min)

    table = mu.ALL_MASK_ATTENTION_FUNCTIONS
    saved = (table["sdpa"], table["eager"])
    table["sdpa"], table["eager"] = sdpa_mask, eager_mask
    try:
        yield
    finally:
        table["sdpa"], table["eager"] = saved


# ---------------------------------------------------------------- wrappers


class LogitsOnly(torch.nn.Module):
    """A causal LM called without a cache, returning the logits alone."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


class WithPast(torch.nn.Module):
    """A causal LM with a flat past: inputs past_key_values.{i}.key/value, outputs logits and
    present.{i}.key/value (the layout of Optimum's decoder_with_past)."""

    def __init__(self, model, n_layer):
        super().__init__()
        self.model = model
        self.n_layer = n_layer

    def forward(self, input_ids, attention_mask, *past):
        from transformers.cache_utils import DynamicCache

        legacy = tuple((past[2 * i], past[2 * i + 1]) for i in range(self.n_layer))
        cache = DynamicCache.from_legacy_cache(legacy)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache,
                         use_cache=True)
        pkv = out.past_key_values
        if hasattr(pkv, "to_legacy_cache"):
            pkv = pkv.to_legacy_cache()
        flat = []
        for k, v in pkv:
            flat += [k, v]
        return (out.logits, *flat)


class BertOutputs(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return out.last_hidden_state, out.pooler_output


# ---------------------------------------------------------------- models

B, S, P = 2, 8, 8  # dummy batch, sequence, past length used for tracing
BS = {0: "batch", 1: "sequence"}


def gpt2(use_cache):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=2048, use_cache=use_cache)
    return GPT2LMHeadModel(cfg).eval(), cfg


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=2048, use_cache=False)
    return LlamaForCausalLM(cfg).eval(), cfg


def bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     vocab_size=256, max_position_embeddings=2048)
    return BertModel(cfg).eval(), cfg


def lm_inputs():
    return torch.randint(0, 256, (B, S)), torch.ones(B, S, dtype=torch.int64)


def bert_inputs():
    ids, mask = lm_inputs()
    return ids, mask, torch.zeros(B, S, dtype=torch.int64)


def ts_export(module, args, path, opset, input_names, output_names, dynamic_axes):
    with torch.no_grad(), masks_without_vmap():
        torch.onnx.export(module, args, path, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)


def dynamo_export(module, args, path, input_names, output_names, dynamic_axes, opset=None):
    with torch.no_grad():
        prog = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=input_names,
                                 output_names=output_names, dynamic_axes=dynamic_axes, external_data=False)
    prog.save(path, external_data=False)
    return {"dynamo_default_opset": opset is None}


def export_gpt2_ts(path, opset=14):
    model, _ = gpt2(False)
    ts_export(LogitsOnly(model), lm_inputs(), path, opset, ["input_ids", "attention_mask"], ["logits"],
              {"input_ids": BS, "attention_mask": BS, "logits": BS})


def export_gpt2_ts_past(path, opset=14):
    model, cfg = gpt2(True)
    export_with_past(model, cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, path, opset)


def export_llama_ts_past(path, opset=17):
    model, cfg = llama()
    model.config.use_cache = True
    export_with_past(model, cfg.num_hidden_layers, cfg.num_key_value_heads,
                     cfg.hidden_size // cfg.num_attention_heads, path, opset)


def export_with_past(model, n_layer, kv_heads, head, path, opset):
    """Optimum's decoder_with_past layout: past_key_values.{i}.key/value [batch, kv_heads,
    past_sequence, head] in, present.{i}.key/value [batch, kv_heads, past_sequence + sequence, head]
    out, attention_mask [batch, past_sequence + sequence]."""
    ids = torch.randint(0, 256, (B, S))
    mask = torch.ones(B, P + S, dtype=torch.int64)
    past, names, outs, axes = [], [], ["logits"], {
        "input_ids": BS, "attention_mask": {0: "batch", 1: "past_sequence + sequence"}, "logits": BS}
    for i in range(n_layer):
        for kv in ("key", "value"):
            past.append(torch.randn(B, kv_heads, P, head))
            names.append(f"past_key_values.{i}.{kv}")
            outs.append(f"present.{i}.{kv}")
            axes[names[-1]] = {0: "batch", 2: "past_sequence"}
            axes[outs[-1]] = {0: "batch", 2: "past_sequence + sequence"}
    ts_export(WithPast(model, n_layer), (ids, mask, *past), path, opset, ["input_ids", "attention_mask", *names],
              outs, axes)


def export_bert_ts(path, opset):
    model, _ = bert()
    ts_export(BertOutputs(model), bert_inputs(), path, opset, ["input_ids", "attention_mask", "token_type_ids"],
              ["last_hidden_state", "pooler_output"],
              {"input_ids": BS, "attention_mask": BS, "token_type_ids": BS, "last_hidden_state": BS,
               "pooler_output": {0: "batch"}})


def export_llama_ts(path, opset):
    model, _ = llama()
    ts_export(LogitsOnly(model), lm_inputs(), path, opset, ["input_ids", "attention_mask"], ["logits"],
              {"input_ids": BS, "attention_mask": BS, "logits": BS})


def resnet(half=False):
    import torchvision

    m = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(1, 3, 224, 224)
    if half:
        m, x = m.half(), x.half()
    return m, x


def export_resnet_ts(path, half=False):
    m, x = resnet(half)
    ts_export(m, (x,), path, 13, ["input"], ["logits"], {"input": {0: "batch"}, "logits": {0: "batch"}})


def export_gpt2_dynamo(path):
    model, _ = gpt2(False)
    return dynamo_export(LogitsOnly(model), lm_inputs(), path, ["input_ids", "attention_mask"], ["logits"],
                         {"input_ids": BS, "attention_mask": BS, "logits": BS})


def export_bert_dynamo(path):
    model, _ = bert()
    return dynamo_export(BertOutputs(model), bert_inputs(), path, ["input_ids", "attention_mask", "token_type_ids"],
                         ["last_hidden_state", "pooler_output"],
                         {"input_ids": BS, "attention_mask": BS, "token_type_ids": BS, "last_hidden_state": BS,
                          "pooler_output": {0: "batch"}})


def export_llama_dynamo(path):
    model, _ = llama()
    return dynamo_export(LogitsOnly(model), lm_inputs(), path, ["input_ids", "attention_mask"], ["logits"],
                         {"input_ids": BS, "attention_mask": BS, "logits": BS})


def export_resnet_dynamo(path):
    m, x = resnet()
    return dynamo_export(m, (x,), path, ["input"], ["logits"], {"input": {0: "batch"}, "logits": {0: "batch"}})


# ---------------------------------------------------------------- extras beyond the brief's list


def export_dynamo_op23(path, which):
    """The dynamo exporter at opset 23 emits the ONNX Attention op for SDPA, RotaryEmbedding for
    Llama's rope and RMSNormalization for its RMSNorm (its default here is opset 20, which does not)."""
    model, _ = gpt2(False) if which == "gpt2" else llama()
    return dynamo_export(LogitsOnly(model), lm_inputs(), path, ["input_ids", "attention_mask"], ["logits"],
                         {"input_ids": BS, "attention_mask": BS, "logits": BS}, opset=23)


def export_llama_ts_fp16(path):
    model, _ = llama()
    ts_export(LogitsOnly(model.half()), lm_inputs(), path, 17, ["input_ids", "attention_mask"], ["logits"],
              {"input_ids": BS, "attention_mask": BS, "logits": BS})


def export_gpt2_ts_eager(path):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=2048, use_cache=False,
                     attn_implementation="eager")
    ts_export(LogitsOnly(GPT2LMHeadModel(cfg).eval()), lm_inputs(), path, 14, ["input_ids", "attention_mask"],
              ["logits"], {"input_ids": BS, "attention_mask": BS, "logits": BS})


def export_bert_int8(path):
    """onnxruntime's dynamic quantization of bert_ts_op17.onnx (needs `pip install onnxruntime`)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(os.path.join(OUT, "bert_ts_op17.onnx"), path, weight_type=QuantType.QInt8)


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    OUT = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    SUMMARY["_versions"] = versions()
    print(json.dumps(SUMMARY["_versions"]), flush=True)

    export("gpt2_ts.onnx", "torchscript", lambda p: export_gpt2_ts(p))
    export("gpt2_ts_past.onnx", "torchscript", lambda p: export_gpt2_ts_past(p))
    export("bert_ts.onnx", "torchscript", lambda p: export_bert_ts(p, 14))
    export("bert_ts_op17.onnx", "torchscript", lambda p: export_bert_ts(p, 17))
    export("llama_ts.onnx", "torchscript", lambda p: export_llama_ts(p, 17))
    export("llama_ts_op18.onnx", "torchscript", lambda p: export_llama_ts(p, 18))
    export("llama_ts_past.onnx", "torchscript", lambda p: export_llama_ts_past(p, 17))
    export("resnet18_ts.onnx", "torchscript", lambda p: export_resnet_ts(p))
    export("resnet18_fp16.onnx", "torchscript", lambda p: export_resnet_ts(p, half=True))
    export("gpt2_dynamo.onnx", "dynamo", export_gpt2_dynamo)
    export("bert_dynamo.onnx", "dynamo", export_bert_dynamo)
    export("llama_dynamo.onnx", "dynamo", export_llama_dynamo)
    export("resnet18_dynamo.onnx", "dynamo", export_resnet_dynamo)

    export("gpt2_dynamo_op23.onnx", "dynamo", lambda p: export_dynamo_op23(p, "gpt2"))
    export("llama_dynamo_op23.onnx", "dynamo", lambda p: export_dynamo_op23(p, "llama"))
    export("llama_ts_fp16.onnx", "torchscript", export_llama_ts_fp16)
    export("gpt2_ts_eager.onnx", "torchscript", export_gpt2_ts_eager)
    export("bert_ts_op17_int8.onnx", "onnxruntime quantize_dynamic", export_bert_int8)

    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(SUMMARY, f, indent=1)
    failed = [k for k, v in SUMMARY.items() if isinstance(v, dict) and "error" in v]
    print(f"\n{len(SUMMARY) - 1 - len(failed)} exported, {len(failed)} failed: {failed}")


if __name__ == "__main__":
    main()
