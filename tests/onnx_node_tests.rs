//! Conformance: ONNX 1.22.0's backend node tests through the frontend.
//!
//! Every node test is imported, bound and lowered, and the static types the IR infers for its
//! outputs are compared with the reference outputs; a test whose types pass is scheduled and
//! executed by the functional emulator, and its numbers compared too (see
//! `lpuc::driver::conformance`). The results
//! must equal `tests/onnx-node/expected.tsv` line for line, so a regression, a newly passing test
//! and a capability-table change all show up as a diff; `LPUC_BLESS=1` rewrites the file after
//! review, and `cargo run -p xtask -- onnx-coverage` turns it into docs/ONNX_COVERAGE.md.
//!
//! The data comes from `scripts/fetch-onnx-node-tests.sh` (into `target/onnx-node-tests`, or
//! `$LPUC_ONNX_NODE_TESTS`). Without it the test says so and passes, unless
//! `LPUC_REQUIRE_ONNX_NODE_TESTS=1` (set by CI) makes the absence a failure.

use lpuc::driver::conformance::run_node_test;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    match std::env::var_os("LPUC_ONNX_NODE_TESTS") {
        Some(d) => PathBuf::from(d),
        None => lpuc_tests::repo_root().join("target/onnx-node-tests"),
    }
    .join("node")
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

#[test]
fn node_tests_match_the_recorded_results() {
    let dir = data_dir();
    if !dir.is_dir() {
        let required = std::env::var("LPUC_REQUIRE_ONNX_NODE_TESTS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{} is missing; run scripts/fetch-onnx-node-tests.sh",
            dir.display()
        );
        eprintln!(
            "skipping: {} is missing (run scripts/fetch-onnx-node-tests.sh)",
            dir.display()
        );
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("readable node-test folder")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("model.onnx").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() > 1000,
        "only {} node tests found in {}",
        names.len(),
        dir.display()
    );
    let mut table = String::from("test\tops\tresult\tnumeric\tdetail\n");
    for name in &names {
        let r = run_node_test(&dir.join(name));
        // The detail says why the types failed, or else why the numbers did.
        let detail = match r.verdict.detail() {
            "" => r.numeric.detail(),
            d => d,
        };
        table.push_str(&format!(
            "{name}\t{}\t{}\t{}\t{}\n",
            r.ops.join(","),
            r.verdict.label(),
            r.numeric.label(),
            clean(detail)
        ));
    }
    let expected_path = lpuc_tests::repo_root().join("tests/onnx-node/expected.tsv");
    if std::env::var("LPUC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&expected_path, &table).expect("write expected.tsv");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    let mut diffs = Vec::new();
    let exp: std::collections::BTreeMap<&str, &str> = expected
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let got: std::collections::BTreeMap<&str, &str> =
        table.lines().skip(1).filter_map(|l| l.split_once('\t')).collect();
    for (name, line) in &got {
        match exp.get(name) {
            Some(e) if e == line => {}
            Some(e) => diffs.push(format!("changed {name}:\n  recorded {e}\n  now      {line}")),
            None => diffs.push(format!("new {name}: {line}")),
        }
    }
    for name in exp.keys().filter(|n| !got.contains_key(*n)) {
        diffs.push(format!("gone {name}"));
    }
    let passed = got
        .values()
        .filter(|l| l.split('\t').nth(1) == Some("pass"))
        .count();
    let numeric = got
        .values()
        .filter(|l| l.split('\t').nth(2) == Some("pass"))
        .count();
    eprintln!(
        "{} node tests, {passed} pass, {numeric} of them numerically",
        got.len()
    );
    assert!(
        diffs.is_empty(),
        "{} node-test results differ from tests/onnx-node/expected.tsv (review, then rerun with LPUC_BLESS=1):\n{}",
        diffs.len(),
        diffs.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
}
