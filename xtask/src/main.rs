//! `cargo run -p xtask -- TASK`: repository chores that read the project's own tables, kept out of
//! the `lpuc` binary because users never run them.

mod onnx_coverage;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "xtask", about = "Repository chores for lpuc")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Regenerate docs/ONNX_COVERAGE.md from the capability table and the node-test results.
    OnnxCoverage {
        /// Compare with the file on disk instead of writing it; exit 1 when it is stale.
        #[arg(long)]
        check: bool,
        /// The conformance results [default: tests/onnx-node/expected.tsv in the workspace].
        #[arg(long, value_name = "TSV")]
        results: Option<PathBuf>,
        /// The generated document [default: docs/ONNX_COVERAGE.md in the workspace].
        #[arg(long, value_name = "MD")]
        output: Option<PathBuf>,
    },
}

const DOC: &str = "docs/ONNX_COVERAGE.md";
const RESULTS: &str = "tests/onnx-node/expected.tsv";

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::OnnxCoverage {
            check,
            results,
            output,
        } => {
            let root = workspace_root();
            let results = results.unwrap_or_else(|| root.join(RESULTS));
            // Messages name the document as the user would, relative to the workspace by default.
            let label = output
                .as_ref()
                .map_or(DOC.to_string(), |p| p.display().to_string());
            let output = output.unwrap_or_else(|| root.join(DOC));
            onnx_coverage_task(&results, &output, &label, check)
        }
    }
}

/// The workspace root, so the task works from any directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn onnx_coverage_task(results: &Path, output: &Path, label: &str, check: bool) -> ExitCode {
    let text = match std::fs::read_to_string(results) {
        Ok(text) => text,
        Err(e) => {
            eprintln!(
                "error: cannot read the node-test results {}: {e}\n  \
                 (the onnx_node_tests integration test writes it after scripts/fetch-onnx-node-tests.sh)",
                results.display()
            );
            return ExitCode::from(2);
        }
    };
    let tests = match onnx_coverage::parse_results(&text) {
        Ok(tests) => tests,
        Err(e) => {
            eprintln!("error: {}:{e}", results.display());
            return ExitCode::from(2);
        }
    };
    let doc = onnx_coverage::render(&lpuc::checker::capabilities::policy_table(), &tests);
    if check {
        return match std::fs::read_to_string(output) {
            Ok(on_disk) if on_disk == doc => {
                println!("{label} is up to date");
                ExitCode::SUCCESS
            }
            Ok(_) => {
                eprintln!("{label} is stale; run cargo run -p xtask -- onnx-coverage");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("{label} cannot be read ({e}); run cargo run -p xtask -- onnx-coverage");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = std::fs::write(output, doc) {
        eprintln!("error: cannot write {label}: {e}");
        return ExitCode::from(2);
    }
    println!("wrote {label} ({} node tests)", tests.len());
    ExitCode::SUCCESS
}
