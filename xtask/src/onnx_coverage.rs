//! docs/ONNX_COVERAGE.md is rendered here from two sources of truth, the capability table and the
//! node-test results, so the published subset can never drift from what the compiler does.

use lpuc::checker::capabilities::OpPolicy;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// The header line of tests/onnx-node/expected.tsv.
const HEADER: &str = "test\tops\tresult\tnumeric\tdetail";
/// How many test names the unsupported section shows per group, to keep the document short.
const EXAMPLES: usize = 4;

/// What the conformance run made of one node test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// The checker rejected the model, so it was not run.
    Unsupported,
}

/// What executing a test whose types pass gave (the functional emulator against its outputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numeric {
    Pass,
    Fail,
    /// An op has no reference kernel in the emulator yet.
    NoKernel,
    /// Not run (the types did not pass, or it does not fit one chip).
    NotRun,
}

/// One line of the results file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTest {
    pub test: String,
    /// Sorted unique op types of the model's nodes.
    pub ops: Vec<String>,
    pub outcome: Outcome,
    pub numeric: Numeric,
    pub detail: String,
}

/// A malformed results file, pinned to its 1-based line.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

/// Parses the results TSV. The `detail` column may be left off when empty; duplicate test names
/// are an error because each would be counted twice.
pub fn parse_results(text: &str) -> Result<Vec<NodeTest>, ParseError> {
    let err = |line: usize, message: String| ParseError { line, message };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header)) if header == HEADER => {}
        Some((n, header)) => {
            return Err(err(
                n,
                format!("expected the header {HEADER:?}, found {header:?}"),
            ));
        }
        None => return Err(err(1, format!("empty file; expected the header {HEADER:?}"))),
    }
    let mut tests = Vec::new();
    let mut seen = BTreeMap::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.splitn(5, '\t').collect();
        if fields.len() < 4 {
            return Err(err(
                n,
                format!(
                    "expected 5 tab-separated fields (test, ops, result, numeric, detail), found {}",
                    fields.len()
                ),
            ));
        }
        let test = fields[0];
        if test.is_empty() {
            return Err(err(n, "empty test name".into()));
        }
        if let Some(first) = seen.insert(test.to_string(), n) {
            return Err(err(n, format!("duplicate test {test:?} (first on line {first})")));
        }
        let outcome = match fields[2] {
            "pass" => Outcome::Pass,
            "fail" => Outcome::Fail,
            "unsupported" => Outcome::Unsupported,
            other => {
                return Err(err(
                    n,
                    format!("result {other:?} of {test} is not one of pass, fail, unsupported"),
                ));
            }
        };
        let numeric = match fields[3] {
            "pass" => Numeric::Pass,
            "fail" => Numeric::Fail,
            "no-kernel" => Numeric::NoKernel,
            "-" => Numeric::NotRun,
            other => {
                return Err(err(
                    n,
                    format!("numeric {other:?} of {test} is not one of pass, fail, no-kernel, -"),
                ));
            }
        };
        let ops = fields[1]
            .split(',')
            .filter(|op| !op.is_empty())
            .map(str::to_string)
            .collect();
        let detail = fields.get(4).copied().unwrap_or("").to_string();
        tests.push(NodeTest {
            test: test.to_string(),
            ops,
            outcome,
            numeric,
            detail,
        });
    }
    tests.sort_by(|a, b| a.test.cmp(&b.test));
    Ok(tests)
}

/// Per op type, over the tests whose model uses that op: passed, total, and passed by their
/// numbers.
pub fn count_per_op(tests: &[NodeTest]) -> BTreeMap<&str, (usize, usize, usize)> {
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for t in tests {
        for op in &t.ops {
            let entry = counts.entry(op.as_str()).or_default();
            entry.1 += 1;
            if t.outcome == Outcome::Pass {
                entry.0 += 1;
            }
            if t.numeric == Numeric::Pass {
                entry.2 += 1;
            }
        }
    }
    counts
}

/// The first op of the test's own model that its detail names: the op the checker rejected.
/// Ops of other domains are written `domain::Op` in the results and `Op` in the detail. Words are
/// split at anything but letters, digits and `_`, so a node named `Loop_0` is not `Loop`.
pub fn rejected_op(test: &NodeTest) -> Option<&str> {
    let bare = |op: &str| op.rsplit("::").next().unwrap_or(op).to_string();
    test.detail
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .find_map(|word| test.ops.iter().find(|op| bare(op) == word))
        .map(String::as_str)
}

/// Renders the whole document; the same inputs always give the same bytes.
pub fn render(policy: &[OpPolicy], tests: &[NodeTest]) -> String {
    let count = |status: &str| policy.iter().filter(|p| p.status == status).count();
    let outcomes = |o: Outcome| tests.iter().filter(|t| t.outcome == o).count();
    let numerics = |n: Numeric| tests.iter().filter(|t| t.numeric == n).count();
    let (passed, failed, unsupported) = (
        outcomes(Outcome::Pass),
        outcomes(Outcome::Fail),
        outcomes(Outcome::Unsupported),
    );

    let mut s = String::new();
    s.push_str("# ONNX coverage\n\n");
    s.push_str(
        "This file is generated by `cargo run -p xtask -- onnx-coverage` from the capability table \
         (`lpuc ops`, compiler/src/checker/capabilities.rs) and the conformance results of ONNX 1.22.0's \
         backend node tests (fetched by `scripts/fetch-onnx-node-tests.sh`, checked by the \
         `onnx_node_tests` integration test, recorded in tests/onnx-node/expected.tsv). \
         Do not edit it by hand: change the table or the results and regenerate it; \
         `cargo run -p xtask -- onnx-coverage --check` fails when it is stale.\n\n",
    );

    s.push_str("## Summary\n\n| what | count |\n| --- | ---: |\n");
    for (what, n) in [
        ("ops supported (lowered and scheduled)", count("supported")),
        ("ops folded (evaluated at compile time)", count("folded")),
        ("ops rejected", count("rejected")),
        ("node tests", tests.len()),
        ("node tests run (not unsupported)", passed + failed),
        ("node tests passed", passed),
        ("node tests failed", failed),
        ("node tests unsupported", unsupported),
        (
            "node tests executed with matching numbers",
            numerics(Numeric::Pass),
        ),
        ("node tests executed with wrong numbers", numerics(Numeric::Fail)),
        (
            "node tests not executed: an op has no reference kernel yet",
            numerics(Numeric::NoKernel),
        ),
    ] {
        let _ = writeln!(s, "| {what} | {n} |");
    }

    s.push_str(
        "\n## Ops\n\nEvery op of the default ONNX domain. \"Node tests passed\" counts, among the node \
         tests whose model uses the op (unsupported ones included), those whose types pass; \
         \"numbers\" those that, compiled and executed by the functional emulator on the test's \
         inputs, also match its outputs (rtol 1e-3, atol 1e-5).\n\n\
         | op | status | opsets | conditions or reason | node tests passed | numbers |\n\
         | --- | --- | --- | --- | ---: | ---: |\n",
    );
    let per_op = count_per_op(tests);
    for p in policy {
        let conditions = match p.category {
            Some(category) => format!("{category}: {}", p.conditions),
            None => p.conditions.clone(),
        };
        let (tests, numbers) = per_op
            .get(p.op)
            .map_or(("-".to_string(), "-".to_string()), |(pass, total, numbers)| {
                (format!("{pass}/{total}"), format!("{numbers}/{total}"))
            });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {tests} | {numbers} |",
            p.op,
            p.status,
            p.opsets,
            cell(&conditions)
        );
    }

    s.push_str("\n## Failing node tests\n\n");
    if failed == 0 {
        s.push_str("None.\n");
    }
    for t in tests.iter().filter(|t| t.outcome == Outcome::Fail) {
        let detail = if t.detail.is_empty() {
            "(no detail)"
        } else {
            &t.detail
        };
        let _ = writeln!(s, "- `{}`: {detail}", t.test);
    }

    s.push_str("\n## Node tests whose types pass but whose numbers are not checked or differ\n\n");
    let unchecked: Vec<&NodeTest> = tests
        .iter()
        .filter(|t| matches!(t.numeric, Numeric::Fail | Numeric::NoKernel))
        .collect();
    if unchecked.is_empty() {
        s.push_str("None.\n");
    }
    for t in unchecked {
        let why = if t.numeric == Numeric::Fail {
            "wrong numbers"
        } else {
            "not executed"
        };
        let _ = writeln!(s, "- `{}` ({why}): {}", t.test, t.detail);
    }

    s.push_str("\n## Unsupported node tests\n\n");
    if unsupported == 0 {
        s.push_str("None.\n");
    } else {
        let _ = writeln!(
            s,
            "Grouped by the rejected op their detail names, the others by their detail; at most \
             {EXAMPLES} names each (tests/onnx-node/expected.tsv has them all).\n"
        );
    }
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for t in tests.iter().filter(|t| t.outcome == Outcome::Unsupported) {
        let key = match rejected_op(t) {
            Some(op) => format!("**{op}**"),
            None if t.detail.is_empty() => "(no detail)".to_string(),
            None => t.detail.clone(),
        };
        groups.entry(key).or_default().push(&t.test);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    // Largest groups first; the map already ordered equal sizes by key, and the sort is stable.
    groups.sort_by_key(|(_, names)| std::cmp::Reverse(names.len()));
    for (key, names) in groups {
        let shown: Vec<String> = names.iter().take(EXAMPLES).map(|n| format!("`{n}`")).collect();
        let more = match names.len().saturating_sub(EXAMPLES) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let _ = writeln!(s, "- {key} ({}): {}{more}", names.len(), shown.join(", "));
    }
    s
}

/// Keeps free text inside one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<NodeTest>, ParseError> {
        parse_results(&format!("{HEADER}\n{body}"))
    }

    #[test]
    fn parses_lines_and_optional_detail() {
        let tests = parse(
            "test_add\tAdd\tpass\tpass\t\ntest_loop11\tLoop\tunsupported\t-\tloop (Loop): control flow\n\
             test_reshape\tReshape,Shape\tfail\t-\tmismatch at 3\r\ntest_shape\tShape\tpass\tpass\n",
        )
        .unwrap();
        assert_eq!(tests.len(), 4);
        assert_eq!(tests[0].ops, ["Add"]);
        assert_eq!(tests[0].detail, "");
        assert_eq!(tests[1].outcome, Outcome::Unsupported);
        assert_eq!(tests[2].ops, ["Reshape", "Shape"]);
        assert_eq!(tests[2].outcome, Outcome::Fail);
        assert_eq!(tests[2].detail, "mismatch at 3");
        assert_eq!(tests[3].detail, "");
    }

    #[test]
    fn reports_malformed_lines_with_their_number() {
        let at = |body: &str| parse(body).unwrap_err();
        assert_eq!(at("test_a\tAdd\tpass\tpass\ntest_b\tAdd\n").line, 3);
        let e = at("test_a\tAdd\tpass\tpass\t\ntest_b\tAdd\tok\t-\t\n");
        assert_eq!((e.line, e.to_string().contains("\"ok\"")), (3, true));
        assert_eq!(at("test_a\tAdd\tpass\tpass\t\ntest_a\tAdd\tfail\t-\t\n").line, 3);
        assert_eq!(at("\tAdd\tpass\tpass\t\n").line, 2);
        assert_eq!(parse_results("test\tops\tresult\tdetail\n").unwrap_err().line, 1);
        assert_eq!(parse_results("").unwrap_err().line, 1);
    }

    #[test]
    fn counts_passed_over_tests_using_each_op() {
        let tests = parse(
            "test_a\tAdd\tpass\tpass\t\ntest_b\tAdd,Mul\tfail\t-\tx\ntest_c\tMul,Shape\tunsupported\t-\tShape: no\n",
        )
        .unwrap();
        let counts = count_per_op(&tests);
        assert_eq!(counts["Add"], (1, 2, 1));
        assert_eq!(counts["Mul"], (0, 2, 0));
        assert_eq!(counts["Shape"], (0, 1, 0));
        assert!(!counts.contains_key("Sub"));
    }

    #[test]
    fn rejected_op_is_the_first_own_op_the_detail_names() {
        let tests = parse(
            "t1\tAdd,Loop\tunsupported\t-\tLoop_0 (Loop): control flow: Add inside\n\
             t2\tAdd\tunsupported\t-\topset 7 is below 11\n\
             t3\tai.onnx.ml::Binarizer\tunsupported\t-\tBinarizer (not supported yet): domain\n",
        )
        .unwrap();
        assert_eq!(rejected_op(&tests[0]), Some("Loop"));
        assert_eq!(rejected_op(&tests[1]), None);
        assert_eq!(rejected_op(&tests[2]), Some("ai.onnx.ml::Binarizer"));
    }

    #[test]
    fn renders_every_policy_row_and_the_failures() {
        let policy = vec![
            OpPolicy {
                op: "Add",
                status: "supported",
                opsets: "11-21".into(),
                conditions: "always".into(),
                category: None,
                hint: String::new(),
            },
            OpPolicy {
                op: "Loop",
                status: "rejected",
                opsets: "all".into(),
                conditions: "a | b".into(),
                category: Some("control flow"),
                hint: "unroll".into(),
            },
        ];
        let tests = parse(
            "test_add\tAdd\tpass\tpass\t\ntest_add2\tAdd\tfail\t-\toff by one\ntest_loop\tAdd,Loop\tunsupported\t-\tn (Loop): no\n",
        )
        .unwrap();
        let doc = render(&policy, &tests);
        assert!(
            doc.contains("| Add | supported | 11-21 | always | 1/3 | 1/3 |\n"),
            "{doc}"
        );
        assert!(
            doc.contains("| Loop | rejected | all | control flow: a \\| b | 0/1 | 0/1 |\n"),
            "{doc}"
        );
        assert!(
            doc.contains("| node tests run (not unsupported) | 2 |\n"),
            "{doc}"
        );
        assert!(doc.contains("- `test_add2`: off by one\n"), "{doc}");
        assert!(doc.contains("- **Loop** (1): `test_loop`\n"), "{doc}");

        assert_eq!(doc, render(&policy, &tests));
    }
}
