//! Models exported by PyTorch's TorchScript and dynamo exporters (and onnxruntime's dynamic int8
//! quantizer), committed under tests/fixtures/exported: they compile without hand edits at both
//! ends of the bucket range and the emulator confirms every artifact.

use lpuc::driver::{check, compile};
use lpuc_tests::repo_root;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/exported").join(name)
}

const MODELS: &[&str] = &[
    "gpt2_ts.onnx",
    "llama_ts.onnx",
    "bert_dynamo.onnx",
    "llama_dynamo_op23.onnx",
    "bert_ts_op17_int8.onnx",
];

#[test]
fn real_exports_compile_at_bucket_128_and_2048() {
    for model in MODELS {
        for bucket in [128, 2048] {
            let a = compile(&lpuc_tests::options(fixture(model), Some(bucket)))
                .unwrap_or_else(|e| panic!("{model} at {bucket}: {e}"));
            let verdict = lpuc_emulator::emulate_artifact(&a);
            assert!(verdict.is_ok(), "{model} at {bucket}: {:?}", verdict.faults);
        }
    }
}

#[test]
fn a_bucket_past_the_position_table_is_named() {
    // GPT-2's position table has 2048 rows; at 4096 tokens the folded position ids run past it.
    let v = check(&lpuc_tests::options(fixture("gpt2_ts.onnx"), Some(4096)))
        .unwrap()
        .violations;
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].node.contains("wpe"), "{v:?}");
    assert!(v[0].reason.contains("index 2048"), "{}", v[0].reason);
    assert!(v[0].hint.contains("--bucket"), "{}", v[0].hint);
}

#[test]
fn opset_23_attention_lowers_to_plain_ops() {
    let g = lpuc::driver::lower_to(
        &lpuc_tests::options(fixture("llama_dynamo_op23.onnx"), Some(128)),
        lpuc::driver::Stage::Lower,
    )
    .unwrap();
    let names: Vec<&str> = g.op_ids().map(|o| g.op(o).kind.name()).collect();
    // Two layers: two softmaxes, and the RMSNormalization ops kept as such.
    assert_eq!(names.iter().filter(|&&n| n == "Softmax").count(), 2);
    assert!(names.contains(&"RmsNorm"));
    assert!(!names
        .iter()
        .any(|n| n.contains("Attention") || n.contains("Rotary")));
}
