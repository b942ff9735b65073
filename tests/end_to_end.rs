//! The examples compile, the emulator confirms them, the output is deterministic, and the schedule
//! and report text are snapshot-reviewed.

use lpuc::driver::{compile, CompileOptions};
use lpuc_artifact::text::{report_text, schedule_text};
use lpuc_tests::{example, lpuc, scratch};

fn options(model: &str, bucket: Option<u64>) -> CompileOptions {
    lpuc_tests::options(example(model), bucket)
}

#[test]
fn transformer_block_compiles_and_the_emulator_confirms_it() {
    let out = scratch("e2e_transformer");
    let model = example("transformer_block.onnx");
    let (model, out_s) = (model.to_str().unwrap(), out.to_str().unwrap());
    assert_eq!(lpuc(&["compile", model, "--bucket", "2048", "-o", out_s]), 0);
    for f in lpuc_artifact::ARTIFACT_FILES {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert_eq!(lpuc(&["emulate", out_s]), 0);
    assert_eq!(lpuc(&["report", out_s]), 0);
    assert_eq!(lpuc(&["report", out_s, "--format", "json"]), 0);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["bucket"], 2048);
    assert_eq!(manifest["bound_dims"]["sequence"], 2048);
    assert_eq!(manifest["bound_dims"]["batch"], 1);
    assert_eq!(manifest["model_file"], "transformer_block.onnx");
    assert_eq!(manifest["model_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn transformer_block_schedule_and_report_snapshots() {
    let a = compile(&options("transformer_block.onnx", Some(2048))).unwrap();
    insta::assert_snapshot!("transformer_block_2048_schedule", schedule_text(&a.schedule));
    insta::assert_snapshot!("transformer_block_2048_report", report_text(&a.report));
    assert!(lpuc_emulator::emulate_artifact(&a).is_ok());
}

#[test]
fn mlp_schedule_and_report_snapshots() {
    let a = compile(&options("mlp.onnx", None)).unwrap();
    insta::assert_snapshot!("mlp_schedule", schedule_text(&a.schedule));
    insta::assert_snapshot!("mlp_report", report_text(&a.report));
    assert!(lpuc_emulator::emulate_artifact(&a).is_ok());
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    let (a, b) = (scratch("det_a"), scratch("det_b"));
    let model = example("transformer_block.onnx");
    for dir in [&a, &b] {
        assert_eq!(
            lpuc(&[
                "compile",
                model.to_str().unwrap(),
                "--bucket",
                "512",
                "-o",
                dir.to_str().unwrap()
            ]),
            0
        );
    }
    for f in lpuc_artifact::ARTIFACT_FILES {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn the_critical_path_ends_at_the_makespan_and_its_shares_sum_to_one() {
    let a = compile(&options("transformer_block.onnx", Some(1024))).unwrap();
    let path = &a.report.critical_path;
    assert_eq!(path.first().unwrap().start, 0);
    assert_eq!(path.last().unwrap().end, a.report.makespan_cycles);
    let total: f64 = path.iter().map(|s| s.share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    for w in path.windows(2) {
        assert!(w[0].start <= w[1].start);
    }
}

#[test]
fn a_bucket_too_large_for_sram_fails_with_bytes_needed_and_available() {
    // At 8192 it runs on one chip with attention tiled in time; a million tokens do not fit
    // any group of chips.
    let err = compile(&options("transformer_block.onnx", Some(1 << 20))).unwrap_err();
    assert_eq!(err.exit_code(), 1);
    let msg = err.to_string();
    assert!(msg.contains("does not fit"), "{msg}");
    assert!(msg.contains("230686720 bytes"), "{msg}");
    let out = scratch("too_big");
    let model = example("transformer_block.onnx");
    assert_eq!(
        lpuc(&[
            "compile",
            model.to_str().unwrap(),
            "--bucket",
            "1048576",
            "-o",
            out.to_str().unwrap()
        ]),
        1
    );
}

#[test]
fn stop_after_prints_the_ir() {
    let g = lpuc::driver::lower_to(&options("mlp.onnx", None), lpuc::driver::Stage::Passes).unwrap();
    insta::assert_snapshot!("mlp_ir", lpuc_ir::print::print(&g));
}

#[test]
fn a_custom_target_file_changes_the_schedule() {
    let dir = scratch("custom_target");
    let text = lpuc_target::desc::LPU_V1_TOML
        .replace("name = \"lpu-v1\"", "name = \"lpu-v1-1vxm-slow\"")
        .replace("pipeline_cycles = 16", "pipeline_cycles = 64");
    let path = dir.join("slow.toml");
    std::fs::write(&path, text).unwrap();
    let base = compile(&options("mlp.onnx", None)).unwrap();
    let mut opts = options("mlp.onnx", None);
    opts.target = path.to_str().unwrap().to_string();
    let slow = compile(&opts).unwrap();
    assert_eq!(slow.manifest.target, "lpu-v1-1vxm-slow");
    assert!(slow.report.makespan_cycles > base.report.makespan_cycles);
    assert!(lpuc_emulator::emulate_artifact(&slow).is_ok());
}

#[test]
fn a_dim_the_model_does_not_have_is_a_usage_error() {
    let mut opts = options("transformer_block.onnx", Some(128));
    opts.binder.explicit.insert("seq_len".into(), 64);
    let err = compile(&opts).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("no dim named 'seq_len'") && msg.contains("sequence"),
        "{msg}"
    );
    // A name that is a dim, or appears inside a dim expression, is accepted.
    let mut opts = options("transformer_block.onnx", Some(128));
    opts.binder.explicit.insert("sequence".into(), 64);
    assert!(compile(&opts).is_ok());
    let out = scratch("unknown_dim");
    let model = example("transformer_block.onnx");
    let args = [
        "compile",
        model.to_str().unwrap(),
        "--dim",
        "seq_len=64",
        "-o",
        out.to_str().unwrap(),
    ];
    assert_eq!(lpuc(&args), 2);
}
