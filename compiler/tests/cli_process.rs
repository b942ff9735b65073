//! The real `lpuc` process: exit codes, help text, and no panic on bad input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn lpuc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lpuc"))
        .args(args)
        .output()
        .expect("the lpuc binary runs")
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_explains_every_command_and_flag() {
    for cmd in ["compile", "check", "emulate", "report", "place", "ops"] {
        let o = lpuc(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.len() > 100, "{cmd}: {text}");
    }
    let compile = String::from_utf8_lossy(&lpuc(&["compile", "--help"]).stdout).into_owned();
    for flag in [
        "--bucket",
        "--dim",
        "--batch",
        "--input",
        "--phase",
        "--target",
        "--out",
        "--stop-after",
    ] {
        assert!(compile.contains(flag), "compile --help lacks {flag}");
    }
    let place = String::from_utf8_lossy(&lpuc(&["place", "--help"]).stdout).into_owned();
    for flag in ["--chips", "--weight-dtype", "--allow-cross-rack", "--format"] {
        assert!(place.contains(flag), "place --help lacks {flag}");
    }
}

#[test]
fn place_reports_the_stages_and_ops_prints_the_policy() {
    let model = examples().join("gpt2_prefill.onnx");
    let o = lpuc(&[
        "place",
        model.to_str().unwrap(),
        "--bucket",
        "2048",
        "--chips",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("exact dynamic program") && text.contains("h.1"),
        "{text}"
    );
    let o = lpuc(&[
        "place",
        model.to_str().unwrap(),
        "--bucket",
        "2048",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["chips_used"], 1);
    let o = lpuc(&["ops", "--format", "json"]);
    let ops: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(ops
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["op"] == "MatMul" && p["status"] == "supported"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(lpuc(&[]).status.code(), Some(2));
    assert_eq!(lpuc(&["compile"]).status.code(), Some(2));
    assert_eq!(lpuc(&["frobnicate"]).status.code(), Some(2));
    let model = examples().join("mlp.onnx");
    assert_eq!(
        lpuc(&["check", model.to_str().unwrap(), "--bucket", "zero"])
            .status
            .code(),
        Some(2)
    );
    // check honours --target like compile does: an unreadable target file is bad input.
    let o = lpuc(&[
        "check",
        model.to_str().unwrap(),
        "--target",
        "/nonexistent/t.toml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/t.toml"));
}

#[test]
fn the_rejected_example_exits_1_and_garbage_exits_2_without_panicking() {
    let rejected = examples().join("rejected/dynamic_ops.onnx");
    let o = lpuc(&["check", rejected.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);

    let o = lpuc(&[
        "compile",
        rejected.to_str().unwrap(),
        "-o",
        "/nonexistent/never-written",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("NonZero"));

    let cargo_toml = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    for args in [
        vec!["check", cargo_toml.to_str().unwrap()],
        vec!["emulate", "/nonexistent"],
        vec!["report", cargo_toml.to_str().unwrap()],
    ] {
        let o = lpuc(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: "), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_reader_closing_the_pipe_early_is_not_a_panic() {
    // `lpuc report out | head -1`: the reader goes away after its first line.
    let out = std::env::temp_dir().join(format!("lpuc_pipe_{}", std::process::id()));
    let model = examples().join("transformer_block.onnx");
    let o = lpuc(&[
        "compile",
        model.to_str().unwrap(),
        "--bucket",
        "2048",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for format in ["text", "json"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lpuc"))
            .args(["report", out.to_str().unwrap(), "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the lpuc binary runs");
        drop(child.stdout.take());
        let done = child.wait_with_output().expect("lpuc ends");
        let err = stderr(&done);
        assert!(!err.contains("panicked"), "{format}: {err}");
        assert_eq!(done.status.code(), Some(0), "{format}: {err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
