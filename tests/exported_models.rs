//! The generated exporter-style models (GPT-2 prefill and decode, BERT, Llama with fp16 weights,
//! ResNet, external weights) compile at both ends of the bucket range and the emulator confirms
//! every artifact; the decoder schedules and reports are snapshot-reviewed.

use lpuc::driver::{compile, CompileOptions};
use lpuc_artifact::text::{report_text, schedule_text};
use lpuc_tests::example;

const MODELS: &[&str] = &[
    "gpt2_prefill.onnx",
    "gpt2_decode.onnx",
    "bert_encoder.onnx",
    "llama_prefill.onnx",
    "llama_decode.onnx",
    "resnet_small.onnx",
    "external/bert_external.onnx",
];

fn options(model: &str, bucket: u64) -> CompileOptions {
    lpuc_tests::options(example(model), Some(bucket))
}

#[test]
fn every_example_compiles_at_bucket_128_and_2048_and_is_confirmed() {
    for model in MODELS {
        for bucket in [128, 2048] {
            let a = compile(&options(model, bucket)).unwrap_or_else(|e| panic!("{model} at {bucket}: {e}"));
            let verdict = lpuc_emulator::emulate_artifact(&a);
            assert!(verdict.is_ok(), "{model} at {bucket}: {:?}", verdict.faults);
            assert_eq!(verdict.stats.makespan, a.report.makespan_cycles);
        }
    }
}

#[test]
fn unnamed_dims_compile_once_the_whole_input_is_given() {
    let mut opts = lpuc_tests::options(example("resnet_unnamed_dims.onnx"), None);
    assert!(compile(&opts).is_err());
    opts.binder.inputs.insert("input".into(), vec![1, 3, 224, 224]);
    let named = compile(&lpuc_tests::options(example("resnet_small.onnx"), None)).unwrap();
    let unnamed = compile(&opts).unwrap();
    assert_eq!(schedule_text(&named.schedule), schedule_text(&unnamed.schedule));
    // The artifact records the shape it was built for.
    assert_eq!(unnamed.manifest.options["input.input"], "1x3x224x224");
}

#[test]
fn external_weights_compile_like_inline_ones() {
    let inline = compile(&options("bert_encoder.onnx", 128)).unwrap();
    let external = compile(&options("external/bert_external.onnx", 128)).unwrap();
    assert_eq!(report_text(&inline.report), report_text(&external.report));
}

#[test]
fn decoder_snapshots() {
    let prefill = compile(&options("llama_prefill.onnx", 128)).unwrap();
    insta::assert_snapshot!("llama_prefill_128_schedule", schedule_text(&prefill.schedule));
    insta::assert_snapshot!("llama_prefill_128_report", report_text(&prefill.report));
    let decode = compile(&options("gpt2_decode.onnx", 2048)).unwrap();
    insta::assert_snapshot!("gpt2_decode_2048_report", report_text(&decode.report));
}
