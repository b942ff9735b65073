//! Bad input gets a clear error and a non-zero exit, never a panic: truncated and garbage files,
//! cycles, dangling names, external data leaving the model's folder, absurd dims, broken artifacts.

use clap::Parser;
use lpuc::cli::Cli;
use lpuc::driver::{check, compile, CompileError, CompileOptions};
use lpuc::frontend::LoadError;
use lpuc_tests::{example, lpuc, scratch, ModelBuilder, D, F32};
use std::path::PathBuf;

fn opts(model: PathBuf) -> CompileOptions {
    lpuc_tests::options(model, None)
}

#[test]
fn every_truncation_of_a_real_model_is_an_error_not_a_panic() {
    let bytes = std::fs::read(example("transformer_block.onnx")).unwrap();
    let dir = scratch("truncated");
    let path = dir.join("t.onnx");
    // Cut at many points, including inside the weights and inside the node list.
    let mut cuts: Vec<usize> = (1..200).collect();
    cuts.extend((1..60).map(|i| i * bytes.len() / 61));
    let mut accepted = Vec::new();
    for &cut in &cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        // A cut on a field boundary can still be a valid (smaller) protobuf message; then the model
        // must be checked cleanly. Any other cut must be a load error (exit 2), never a panic.
        match check(&opts(path.clone())) {
            Err(e) => assert_eq!(e.exit_code(), 2, "cut {cut}: {e}"),
            Ok(_) => accepted.push(cut),
        }
    }
    // The graph is one length-delimited field, so only cuts outside it can parse at all.
    assert!(accepted.len() <= 2, "cuts that parsed: {accepted:?}");
}

#[test]
fn garbage_and_missing_files_exit_2() {
    let dir = scratch("garbage");
    let path = dir.join("g.onnx");
    std::fs::write(&path, b"\xff\xff\xff\xff this is not protobuf \x00\x01").unwrap();
    let err = check(&opts(path.clone())).unwrap_err();
    assert!(
        matches!(err, CompileError::Load(LoadError::Parse { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("not a valid ONNX model"));
    assert_eq!(lpuc(&["check", path.to_str().unwrap()]), 2);
    assert_eq!(lpuc(&["check", "/nonexistent/model.onnx"]), 2);
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        check(&opts(empty)).unwrap_err(),
        CompileError::Load(LoadError::NoGraph { .. })
    ));
}

#[test]
fn cycles_and_dangling_names_are_malformed_models() {
    let cyclic = ModelBuilder::new(17)
        .input("x", F32, &[D::N(4)])
        .node("a", "Add", &["x", "b_out"], &["a_out"])
        .node("b", "Relu", &["a_out"], &["b_out"])
        .output("b_out", F32, &[D::N(4)])
        .write("cycle");
    let err = check(&opts(cyclic)).unwrap_err();
    assert!(matches!(err, CompileError::Load(LoadError::Cycle(_))), "{err}");
    assert_eq!(err.exit_code(), 2);

    let dangling = ModelBuilder::new(17)
        .input("x", F32, &[D::N(4)])
        .node("a", "Add", &["x", "nowhere"], &["y"])
        .output("y", F32, &[D::N(4)])
        .write("dangling");
    let err = check(&opts(dangling)).unwrap_err();
    assert!(err.to_string().contains("'nowhere'"), "{err}");
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    for location in ["../secret.bin", "/etc/passwd", "a/../../b.bin"] {
        let model = ModelBuilder::new(17)
            .input("x", F32, &[D::N(4)])
            .initializer("w", F32, &[4], Some(location))
            .node("a", "Add", &["x", "w"], &["y"])
            .output("y", F32, &[D::N(4)])
            .write("external_escape");
        let err = check(&opts(model)).unwrap_err();
        assert!(
            matches!(err, CompileError::Load(LoadError::ExternalPathEscapes { .. })),
            "{location}: {err}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    // Inside the folder is fine: the weights' bytes are never read by a compile.
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(4)])
        .initializer("w", F32, &[4], Some("weights/w.bin"))
        .node("a", "Add", &["x", "w"], &["y"])
        .output("y", F32, &[D::N(4)])
        .write("external_inside");
    let artifact = compile(&opts(model)).unwrap();
    assert!(lpuc_emulator::emulate_artifact(&artifact).is_ok());
}

#[test]
fn absurd_dims_are_errors_not_overflows() {
    let model = example("transformer_block.onnx");
    let mut o = opts(model);
    o.binder.bucket = Some(1 << 32);
    let err = compile(&o).unwrap_err();
    assert_eq!(err.exit_code(), 1, "{err}");
    o.binder.bucket = Some(1 << 20);
    assert_eq!(compile(&o).unwrap_err().exit_code(), 1);
    // A declared dim of 2^62 in the model itself.
    let huge = ModelBuilder::new(17)
        .input("x", F32, &[D::N(1 << 62), D::N(1 << 62)])
        .node("r", "Relu", &["x"], &["y"])
        .output("y", F32, &[D::N(1 << 62), D::N(1 << 62)])
        .write("huge_dims");
    let outcome = check(&opts(huge)).unwrap();
    assert_eq!(outcome.violations.len(), 1);
    assert!(outcome.violations[0].reason.contains("2^48"));
    // Bad flags are usage errors (clap exits 2).
    assert!(Cli::try_parse_from(["lpuc", "check", "m.onnx", "--bucket", "0"]).is_err());
    assert!(Cli::try_parse_from(["lpuc", "check", "m.onnx", "--dim", "seq"]).is_err());
    assert!(Cli::try_parse_from(["lpuc", "check", "m.onnx", "--dim", "seq=-3"]).is_err());
}

#[test]
fn broken_artifacts_are_errors() {
    let out = scratch("broken_artifact");
    assert_eq!(lpuc(&["emulate", out.to_str().unwrap()]), 2);
    let model = example("mlp.onnx");
    assert_eq!(
        lpuc(&["compile", model.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        0
    );
    std::fs::write(out.join("schedule.json"), "{\"format\": 1, \"trunc").unwrap();
    assert_eq!(lpuc(&["emulate", out.to_str().unwrap()]), 2);
    assert_eq!(lpuc(&["report", "/nonexistent/dir"]), 2);
}

#[test]
fn an_unknown_target_is_a_usage_error() {
    let mut o = opts(example("mlp.onnx"));
    o.target = "lpu-v9".into();
    assert_eq!(compile(&o).unwrap_err().exit_code(), 2);
}

#[test]
fn a_reshape_of_a_huge_initializer_is_an_error_not_an_overflow() {
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::N(4)])
        .initializer("w", F32, &[1 << 40, 1 << 40], Some("w.bin"))
        .int64s("shape", &[-1])
        .node("r", "Reshape", &["w", "shape"], &["y"])
        .output("y", F32, &[D::Unknown])
        .write("huge_reshape");
    let outcome = check(&opts(model)).unwrap();
    assert!(!outcome.violations.is_empty());
}
