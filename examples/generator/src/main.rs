//! `gen-examples [--out DIR] [--check]`: regenerates (or verifies) the example ONNX models.

use lpuc_examples::sync::{self, Written};
use lpuc_examples::{all_examples, DEFAULT_EXAMPLES_DIR};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: gen-examples [--out DIR] [--check]

Writes every example ONNX model under DIR (default: the examples/ folder).
  --out DIR   write to (or check) DIR instead
  --check     write nothing; exit 1 listing files that differ or are missing";

struct Options {
    out: PathBuf,
    check: bool,
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        out: PathBuf::from(DEFAULT_EXAMPLES_DIR),
        check: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => options.check = true,
            "--out" => match args.next() {
                Some(dir) => options.out = PathBuf::from(dir),
                None => return Err("--out needs a directory".to_string()),
            },
            "-h" | "--help" => return Ok(None),
            other => match other.strip_prefix("--out=") {
                Some(dir) => options.out = PathBuf::from(dir),
                None => return Err(format!("unknown argument `{other}`")),
            },
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("gen-examples: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Tidies `generator/..` in messages; a folder that does not exist yet is kept as given.
    let out = std::fs::canonicalize(&options.out).unwrap_or(options.out);
    let examples = all_examples();

    if options.check {
        let problems = sync::check(&out, &examples);
        if problems.is_empty() {
            println!("all {} examples are up to date", examples.len());
            return ExitCode::SUCCESS;
        }
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!("run `cargo run -p lpuc-examples` to regenerate");
        return ExitCode::from(1);
    }

    match sync::write(&out, &examples) {
        Ok(written) => {
            for w in written {
                match w {
                    Written::Updated(p) => println!("wrote     {}", p.display()),
                    Written::Unchanged(p) => println!("unchanged {}", p.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gen-examples: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_to_examples_dir() {
        let o = parse(&[]).expect("ok").expect("options");
        assert_eq!(o.out, PathBuf::from(DEFAULT_EXAMPLES_DIR));
        assert!(!o.check);
    }

    #[test]
    fn parses_out_and_check() {
        let o = parse(&["--check", "--out", "/tmp/x"])
            .expect("ok")
            .expect("options");
        assert!(o.check);
        assert_eq!(o.out, PathBuf::from("/tmp/x"));
        let o = parse(&["--out=/tmp/y"]).expect("ok").expect("options");
        assert_eq!(o.out, PathBuf::from("/tmp/y"));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&["--out"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        assert!(parse(&["--help"]).expect("ok").is_none());
    }
}
