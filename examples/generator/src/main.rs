//! `gen-examples [--out DIR] [--check]`: regenerates (or verifies) the example ONNX models;
//! `gen-examples model FAMILY ...` writes one model of any preset size outside the repo.

use lpuc_examples::catalog::{self, Overrides, PRESETS};
use lpuc_examples::nn::Variant;
use lpuc_examples::standalone::{self, Weights};
use lpuc_examples::sync::{self, Written};
use lpuc_examples::weights::WeightDtype;
use lpuc_examples::{all_examples, DEFAULT_EXAMPLES_DIR};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: gen-examples [--out DIR] [--check]
       gen-examples model FAMILY --out DIR [options]
       gen-examples presets

Writes every example ONNX model under DIR (default: the examples/ folder).
  --out DIR   write to (or check) DIR instead
  --check     write nothing; exit 1 listing files that differ or are missing

`model` writes one model, DIR/model.onnx (and DIR/model.onnx.data for external weights):
  FAMILY                 gpt2, bert, llama or resnet
  --preset NAME          a preset of FAMILY (default: tiny; `gen-examples presets` lists them)
  --variant V            prefill (default) or decode (gpt2, llama: KV-cache inputs and outputs)
  --weights W            inline (default), external, or external-sparse (a sparse data file of
                         full logical length with no bytes written)
  --dtype D              store weights as f32, f16 (Cast to f32) or i8 (DequantizeLinear)
  --layers N             override the preset's layer count (transformers)
  --unnamed-dims         resnet: write the input dims as unnamed `?`
  --name FILE            model file name (default: model.onnx)

example: gen-examples model llama --preset llama2-70b --weights external-sparse --out /tmp/llama70b";

/// One command-line request.
enum Command {
    Help,
    Presets,
    Examples(Options),
    Model(ModelOptions),
}

struct Options {
    out: PathBuf,
    check: bool,
}

/// `gen-examples model ...`.
struct ModelOptions {
    family: String,
    preset: String,
    variant: Variant,
    weights: Weights,
    overrides: Overrides,
    out: PathBuf,
    name: String,
}

fn parse_command(args: Vec<String>) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        Some("model") => parse_model_args(args.into_iter().skip(1)).map(Command::Model),
        Some("presets") if args.len() == 1 => Ok(Command::Presets),
        _ => Ok(match parse_args(args)? {
            Some(options) => Command::Examples(options),
            None => Command::Help,
        }),
    }
}

fn parse_model_args(args: impl IntoIterator<Item = String>) -> Result<ModelOptions, String> {
    let mut args = args.into_iter();
    let family = args
        .next()
        .ok_or("model needs a FAMILY (gpt2, bert, llama, resnet)")?;
    let mut preset = "tiny".to_string();
    let mut variant = Variant::Prefill;
    let mut weights = Weights::Inline;
    let mut overrides = Overrides::default();
    let mut out = None;
    let mut name = "model.onnx".to_string();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "--unnamed-dims" {
            overrides.unnamed_dims = true;
            continue;
        }
        let value = match inline_value.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--preset" => preset = value,
            "--variant" => {
                variant = match value.as_str() {
                    "prefill" => Variant::Prefill,
                    "decode" => Variant::Decode,
                    other => return Err(format!("unknown variant `{other}` (prefill, decode)")),
                }
            }
            "--weights" => {
                weights = Weights::parse(&value).ok_or(format!(
                    "unknown weights `{value}` (inline, external, external-sparse)"
                ))?
            }
            "--dtype" => {
                overrides.dtype = Some(
                    WeightDtype::parse(&value).ok_or(format!("unknown dtype `{value}` (f32, f16, i8)"))?,
                )
            }
            "--layers" => {
                overrides.layers = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--layers needs a number, got `{value}`"))?,
                )
            }
            "--out" => out = Some(PathBuf::from(value)),
            "--name" => name = value,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let out = out.ok_or("model needs --out DIR")?;
    if name.is_empty() || name.contains('/') {
        return Err(format!("--name must be a plain file name, got `{name}`"));
    }
    Ok(ModelOptions {
        family,
        preset,
        variant,
        weights,
        overrides,
        out,
        name,
    })
}

fn run_model(o: &ModelOptions) -> ExitCode {
    let Some(mut config) = catalog::preset(&o.family, &o.preset) else {
        eprintln!(
            "gen-examples: no preset `{}` for family `{}`; `gen-examples presets` lists them",
            o.preset, o.family
        );
        return ExitCode::from(2);
    };
    if let Err(message) = config.apply(o.overrides) {
        eprintln!("gen-examples: {message}");
        return ExitCode::from(2);
    }
    let start = Instant::now();
    match standalone::write_model(&config, o.variant, o.weights, &o.out, &o.name) {
        Ok(w) => {
            println!("wrote {} ({} bytes)", w.model_path.display(), w.model_bytes);
            if let Some((path, len)) = &w.data {
                let how = if o.weights == Weights::ExternalSparse {
                    ", sparse"
                } else {
                    ""
                };
                println!("wrote {} ({len} bytes logical{how})", path.display());
            }
            println!(
                "{} parameters; took {:.2} s",
                w.parameters,
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gen-examples: {message}");
            ExitCode::from(2)
        }
    }
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
    let options = match parse_command(std::env::args().skip(1).collect()) {
        Ok(Command::Examples(options)) => options,
        Ok(Command::Model(options)) => return run_model(&options),
        Ok(Command::Presets) => {
            for (family, preset, description) in PRESETS {
                println!("{family:<7} {preset:<11} {description}");
            }
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
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

    fn model(args: &[&str]) -> Result<ModelOptions, String> {
        match parse_command(args.iter().map(|s| s.to_string()).collect())? {
            Command::Model(o) => Ok(o),
            _ => Err("not a model command".to_string()),
        }
    }

    #[test]
    fn parses_model_command() {
        let o = model(&[
            "model",
            "llama",
            "--preset",
            "llama2-70b",
            "--weights=external-sparse",
            "--variant",
            "decode",
            "--dtype",
            "f16",
            "--layers",
            "4",
            "--out",
            "/tmp/l",
        ])
        .expect("parses");
        assert_eq!((o.family.as_str(), o.preset.as_str()), ("llama", "llama2-70b"));
        assert_eq!(o.weights, Weights::ExternalSparse);
        assert_eq!(o.variant, Variant::Decode);
        assert_eq!(o.overrides.dtype, Some(WeightDtype::F16));
        assert_eq!(o.overrides.layers, Some(4));
        assert_eq!(o.out, PathBuf::from("/tmp/l"));
        assert_eq!(o.name, "model.onnx");
        let r = model(&["model", "resnet", "--unnamed-dims", "--out", "d"]).expect("parses");
        assert!(r.overrides.unnamed_dims);
        assert_eq!(r.preset, "tiny");
    }

    #[test]
    fn rejects_bad_model_arguments() {
        assert!(model(&["model"]).is_err());
        assert!(model(&["model", "gpt2"]).is_err(), "--out is required");
        assert!(model(&["model", "gpt2", "--out", "d", "--weights", "cloud"]).is_err());
        assert!(model(&["model", "gpt2", "--out", "d", "--dtype", "bf16"]).is_err());
        assert!(model(&["model", "gpt2", "--out", "d", "--layers", "x"]).is_err());
        assert!(model(&["model", "gpt2", "--out", "d", "--name", "a/b"]).is_err());
        assert!(model(&["model", "gpt2", "--out"]).is_err());
        assert!(matches!(
            parse_command(vec!["presets".to_string()]),
            Ok(Command::Presets)
        ));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&["--out"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        assert!(parse(&["--help"]).expect("ok").is_none());
    }
}
