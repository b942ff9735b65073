//! The command line: flags, dispatch, and the one place errors become friendly messages and exit
//! codes (0 success, 1 rejected: checker violations, emulator faults, does not fit; 2 unreadable
//! input or bad usage; 3 internal compiler error).

/// Print to standard output. A reader that closes the pipe early (`lpuc report out | head`) ends
/// the program quietly instead of panicking, as command-line tools do.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = write!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        out!("{}\n", format_args!($($arg)*))
    }};
}

use crate::driver::{self, CompileError, CompileOptions, Stage};
use crate::frontend::DimBinder;
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::frontend::bind::MAX_DIM;

#[derive(Parser, Debug)]
#[command(
    name = "lpuc",
    version,
    about = "Static scheduling compiler for deterministic dataflow accelerators (Groq LPU / TSP kind)",
    long_about = "Compiles an ONNX model into a cycle-exact schedule (an artifact directory) and proves it with an independent emulator.\n\nExit codes: 0 success; 1 the model or artifact was rejected (checker violations, emulator faults, does not fit); 2 unreadable input or bad usage; 3 internal compiler error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// The ONNX model file.
    pub model: PathBuf,
    /// Shape bucket: binds every sequence-like symbolic dim (names containing "seq", "context" or "ctx") to N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_DIM))]
    pub bucket: Option<u64>,
    /// Bind (or override) the symbolic dim NAME to VALUE; repeatable.
    #[arg(long = "dim", value_name = "NAME=VALUE", value_parser = parse_dim)]
    pub dims: Vec<(String, u64)>,
    /// Binds every batch-like symbolic dim (names containing "batch"); 1 when not given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_DIM))]
    pub batch: Option<u64>,
    /// Give graph input NAME the whole shape DIMS (e.g. image=1x3x224x224), for inputs whose dims are unnamed ("?"); repeatable.
    #[arg(long = "input", value_name = "NAME=DIMS", value_parser = parse_input)]
    pub inputs: Vec<(String, Vec<u64>)>,
    /// prefill: every sequence-like dim is the bucket; decode: one new token against a cache of
    /// --bucket positions (past/cache names: the bucket; total names: the bucket + 1; other sequence-like dims: 1).
    #[arg(long, value_enum, default_value_t = Phase::Prefill)]
    pub phase: Phase,
    /// Target: a built-in name (lpu-v1) or a path to a target description .toml file.
    #[arg(long, default_value = "lpu-v1", value_name = "lpu-v1|FILE.toml")]
    pub target: String,
    /// Compile the graph as the passes leave it, without offering rewritten forms (grouped
    /// attention broadcasting its keys and values) to the placer and scheduler.
    #[arg(long)]
    pub no_rewrite: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile a model into an artifact directory (runs the checker first).
    Compile {
        #[command(flatten)]
        model: ModelArgs,
        /// Output directory for the artifact (created if missing; files in it are overwritten).
        #[arg(
            short = 'o',
            long = "out",
            value_name = "DIR",
            required_unless_present = "stop_after"
        )]
        out: Option<PathBuf>,
        /// Stop after a stage and print its IR to stdout instead of writing an artifact.
        #[arg(long, value_name = "STAGE")]
        stop_after: Option<Stage>,
        #[command(flatten)]
        place: PlaceArgs,
        /// Read the weights' values and store them in the artifact (weights.bin), so
        /// `lpuc emulate --inputs` can execute it; an ordinary compile never reads them.
        #[arg(long)]
        embed_weights: bool,
    },
    /// Check that every op of a model can be scheduled statically; list every violation.
    Check {
        #[command(flatten)]
        model: ModelArgs,
        /// Output format: text for people, json for tools (an array of {node, op, reason, hint}).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Replay an artifact cycle by cycle and prove it: dependencies, unit conflicts, SRAM, makespan.
    Emulate {
        /// The artifact directory written by `lpuc compile -o DIR`.
        dir: PathBuf,
        /// Also execute it on real tensors: a directory of input_<i>.pb files (serialized ONNX
        /// TensorProtos, one per graph input in order, as ONNX's node tests lay them out). The
        /// artifact needs its weights (`lpuc compile --embed-weights`).
        #[arg(long, value_name = "DIR")]
        inputs: Option<PathBuf>,
        /// Compare the outputs computed with the output_<i>.pb files in DIR: report the largest
        /// absolute and relative error of each, and exit 1 if any element is beyond tolerance.
        #[arg(long, value_name = "DIR", requires = "inputs")]
        expect: Option<PathBuf>,
        /// Relative tolerance of --expect (an element passes within atol + rtol * |expected|).
        #[arg(long, default_value_t = 1e-3, value_name = "R")]
        rtol: f64,
        /// Absolute tolerance of --expect.
        #[arg(long, default_value_t = 1e-5, value_name = "A")]
        atol: f64,
        /// Write the outputs computed as output_<i>.pb into DIR (created if missing).
        #[arg(long, value_name = "DIR", requires = "inputs")]
        write_outputs: Option<PathBuf>,
        /// For an artifact compiled without --embed-weights: read the weights from this model,
        /// which must be the file the manifest pins (same sha256).
        #[arg(long, value_name = "MODEL.onnx", requires = "inputs")]
        model: Option<PathBuf>,
    },
    /// Print the capability table: every ONNX op, whether lpuc supports, folds or rejects it, and why.
    Ops {
        /// Output format: text for people, json for tools, markdown for documents.
        #[arg(long, value_enum, default_value_t = OpsFormat::Text)]
        format: OpsFormat,
    },
    /// Place a model onto chips: pipeline stages over its layers, each on the fewest chips whose SRAM holds it.
    Place {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        place: PlaceArgs,
        /// Output format: text for people, json for tools.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print an artifact's report: makespan, critical path, unit utilization, peak SRAM.
    Report {
        /// The artifact directory written by `lpuc compile -o DIR`.
        dir: PathBuf,
        /// Output format: text for people, json (the artifact's report.json) for tools.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Prefill,
    Decode,
}

/// How a model is spread over chips (`compile` and `place`).
#[derive(clap::Args, Clone, Debug)]
pub struct PlaceArgs {
    /// Chips available (default: one if the model fits it, else the fewest that fit, reported).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::placer::MAX_CHIPS)))]
    chips: Option<u32>,
    /// Storage dtype of the float weights (default: the model's own).
    #[arg(long, value_enum)]
    weight_dtype: Option<WeightDtype>,
    /// Let the placement span racks (the critical path then crosses global links).
    #[arg(long)]
    allow_cross_rack: bool,
    /// How to partition: auto (fastest), layer (pipeline of single chips), tensor (one split
    /// group), hybrid (pipeline of split groups).
    #[arg(long, value_enum, default_value_t = crate::placer::Partition::Auto)]
    partition: crate::placer::Partition,
}

impl PlaceArgs {
    fn options(&self) -> crate::placer::PlaceOptions {
        crate::placer::PlaceOptions {
            partition: self.partition,
            chips: self.chips,
            weight_dtype: self.weight_dtype.map(WeightDtype::dtype),
            allow_cross_rack: self.allow_cross_rack,
        }
    }

    /// Whether any placement flag was given (otherwise a model that fits one chip stays on one).
    fn given(&self) -> bool {
        self.chips.is_some()
            || self.weight_dtype.is_some()
            || self.allow_cross_rack
            || self.partition != crate::placer::Partition::Auto
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WeightDtype {
    Int8,
    Fp16,
    Bf16,
    F32,
}

impl WeightDtype {
    fn dtype(self) -> lpuc_ir::DType {
        match self {
            WeightDtype::Int8 => lpuc_ir::DType::I8,
            WeightDtype::Fp16 => lpuc_ir::DType::F16,
            WeightDtype::Bf16 => lpuc_ir::DType::Bf16,
            WeightDtype::F32 => lpuc_ir::DType::F32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub use crate::checker::policy_text::OpsFormat;

fn parse_dim(s: &str) -> Result<(String, u64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("'{s}' has an empty dim name"));
    }
    let v: u64 = value
        .parse()
        .map_err(|_| format!("'{value}' is not a positive integer"))?;
    if v == 0 || v > MAX_DIM {
        return Err(format!("dim {name}={v} must be between 1 and {MAX_DIM}"));
    }
    Ok((name.to_string(), v))
}

fn parse_input(s: &str) -> Result<(String, Vec<u64>), String> {
    let (name, dims) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=DIMS (e.g. image=1x3x224x224)"))?;
    if name.is_empty() {
        return Err(format!("'{s}' has an empty input name"));
    }
    let dims = dims
        .split('x')
        .map(|d| match d.trim().parse::<u64>() {
            Ok(v) if (1..=MAX_DIM).contains(&v) => Ok(v),
            _ => Err(format!("'{d}' in '{s}' is not a dim between 1 and {MAX_DIM}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

impl ModelArgs {
    fn options(&self) -> CompileOptions {
        let explicit: BTreeMap<String, u64> = self.dims.iter().cloned().collect();
        CompileOptions {
            model: self.model.clone(),
            binder: DimBinder {
                bucket: self.bucket,
                explicit,
                batch: self.batch,
                inputs: self.inputs.iter().cloned().collect(),
                decode: self.phase == Phase::Decode,
            },
            target: self.target.clone(),
            rewrite: !self.no_rewrite,
            embed_weights: false,
        }
    }
}

/// Run a parsed command; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Compile {
            model,
            out,
            stop_after,
            place,
            embed_weights,
        } => compile(
            &CompileOptions {
                embed_weights,
                ..model.options()
            },
            place.given().then(|| place.options()),
            out,
            stop_after,
        ),
        Command::Check { model, format } => check(&model.options(), format),
        Command::Emulate {
            dir,
            inputs,
            expect,
            rtol,
            atol,
            write_outputs,
            model,
        } => emulate(
            &dir,
            inputs.map(|inputs| Execute {
                inputs,
                expect,
                rtol,
                atol,
                write_outputs,
                model,
            }),
        ),
        Command::Report { dir, format } => report(&dir, format),
        Command::Place { model, place, format } => place_model(&model.options(), &place.options(), format),
        Command::Ops { format } => {
            out!("{}", crate::checker::policy_text::render(format));
            0
        }
    }
}

fn fail(e: &CompileError) -> i32 {
    match e {
        CompileError::Rejected(violations) => {
            eprintln!("error: {e}");
            for v in violations {
                eprintln!("  {v}");
            }
        }
        _ => eprintln!("error: {e}"),
    }
    e.exit_code()
}

fn compile(
    opts: &CompileOptions,
    place: Option<crate::placer::PlaceOptions>,
    out: Option<PathBuf>,
    stop_after: Option<Stage>,
) -> i32 {
    if let Some(stage) = stop_after {
        return match driver::lower_to(opts, stage) {
            Ok(g) => {
                out!("{}", lpuc_ir::print::print(&g));
                0
            }
            Err(e) => fail(&e),
        };
    }
    let Some(out) = out else {
        eprintln!("error: -o DIR is required");
        return 2;
    };
    let artifact = match driver::compile_placed(opts, place.as_ref()) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    if let Err(e) = lpuc_artifact::write_artifact(&out, &artifact) {
        return fail(&CompileError::Write(e.to_string()));
    }
    let r = &artifact.report;
    let chips = match &r.placement {
        Some(p) => format!(
            " on {} chip(s) in {} rack(s), {} stage(s), {} transfers",
            p.chips_used,
            p.racks,
            p.stages.len(),
            artifact.schedule.transfers.len()
        ),
        None => String::new(),
    };
    outln!(
        "compiled {} for {}{chips}: {} instructions, makespan {} cycles ({:.3} us), peak SRAM {:.2} MiB of {:.2} MiB -> {}",
        opts.model.display(),
        r.target,
        r.instructions,
        r.makespan_cycles,
        r.makespan_us,
        r.sram.peak_bytes as f64 / 1048576.0,
        r.sram.capacity_bytes as f64 / 1048576.0,
        out.display()
    );
    0
}

fn check(opts: &CompileOptions, format: Format) -> i32 {
    let outcome = match driver::check(opts) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    match format {
        Format::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&outcome.violations).expect("violations serialize")
            );
        }
        Format::Text => {
            if outcome.violations.is_empty() {
                let dims: Vec<String> = outcome
                    .bound_dims
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let ops = outcome.graph.as_ref().map_or(0, |g| g.num_ops());
                outln!(
                    "{}: ok: every op can be scheduled statically ({ops} IR ops; dims: {})",
                    opts.model.display(),
                    if dims.is_empty() {
                        "none".into()
                    } else {
                        dims.join(", ")
                    }
                );
            } else {
                outln!(
                    "{}: {} violation(s)",
                    opts.model.display(),
                    outcome.violations.len()
                );
                for v in &outcome.violations {
                    outln!("  {v}");
                }
            }
        }
    }
    if outcome.violations.is_empty() {
        0
    } else {
        1
    }
}

fn place_model(opts: &CompileOptions, place_opts: &crate::placer::PlaceOptions, format: Format) -> i32 {
    match driver::place(opts, place_opts) {
        Ok((placement, target)) => {
            match format {
                Format::Text => out!(
                    "{}",
                    lpuc_artifact::placement::placement_text(&placement, target.clock_hz)
                ),
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&placement).expect("placement serializes")
                ),
            }
            0
        }
        Err(e) => fail(&e),
    }
}

/// What `lpuc emulate --inputs` executes the artifact on, and what it does with the results.
struct Execute {
    inputs: PathBuf,
    expect: Option<PathBuf>,
    rtol: f64,
    atol: f64,
    write_outputs: Option<PathBuf>,
    model: Option<PathBuf>,
}

fn emulate(dir: &std::path::Path, execute: Option<Execute>) -> i32 {
    let artifact = match lpuc_artifact::read_artifact(dir) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let timed = replay(&artifact);
    match execute {
        Some(x) if timed == 0 => run_functional(&artifact, &x),
        _ => timed,
    }
}

/// Execute the artifact on the tensors `x` names, write and compare its outputs.
fn run_functional(artifact: &lpuc_artifact::Artifact, x: &Execute) -> i32 {
    use crate::driver::tensors::{compare, read_tensors, write_tensor};
    let inputs = match read_tensors(&x.inputs, "input_") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --inputs: {e}");
            return 2;
        }
    };
    let expected = match x
        .expect
        .as_deref()
        .map(|d| read_tensors(d, "output_"))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --expect: {e}");
            return 2;
        }
    };
    // Weights from the model when the artifact does not carry them and one is given.
    let from_model = match (&artifact.weights, &x.model) {
        (None, Some(model)) => match crate::driver::embed::weights_from_model(artifact, model) {
            Ok(found) => Some(found),
            Err(e) => return fail(&e),
        },
        _ => None,
    };
    let executed = match &from_model {
        Some((dataflow, blob)) => {
            lpuc_emulator::functional::execute_parts(&artifact.schedule, dataflow, Some(blob), &inputs)
        }
        None => lpuc_emulator::execute(artifact, &inputs),
    };
    let run = match executed {
        Ok(r) => r,
        Err(
            e @ (lpuc_emulator::FunctionalError::Input { .. }
            | lpuc_emulator::FunctionalError::InputCount { .. }),
        ) => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("error: the artifact computes wrongly or cannot be executed: {e}");
            return 1;
        }
    };
    outln!(
        "executed: {} instructions and {} transfers on real tensors; {} output(s)",
        run.instructions,
        run.transfers,
        run.outputs.len()
    );
    if let Some(out) = &x.write_outputs {
        if let Err(e) = std::fs::create_dir_all(out) {
            eprintln!("error: {}: {e}", out.display());
            return 2;
        }
        for (k, (name, t)) in run.outputs.iter().enumerate() {
            let dtype = artifact.dataflow.values[artifact.dataflow.outputs[k] as usize].dtype;
            if let Err(e) = write_tensor(&out.join(format!("output_{k}.pb")), name, dtype, t) {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    let Some(expected) = expected else {
        return 0;
    };
    if expected.len() != run.outputs.len() {
        eprintln!(
            "error: --expect holds {} output(s), the model has {}",
            expected.len(),
            run.outputs.len()
        );
        return 1;
    }
    let mut failed = false;
    for (k, ((name, got), want)) in run.outputs.iter().zip(&expected).enumerate() {
        match compare(got, want, x.rtol, x.atol) {
            Ok((abs, rel, ok)) => {
                outln!(
                    "output {k} ({name}): max abs error {abs:.3e}, max rel error {rel:.3e}: {}",
                    if ok {
                        "within tolerance"
                    } else {
                        "BEYOND TOLERANCE"
                    }
                );
                failed |= !ok;
            }
            Err(e) => {
                outln!("output {k} ({name}): {e}");
                failed = true;
            }
        }
    }
    if failed {
        eprintln!(
            "error: outputs differ from --expect beyond rtol {} and atol {}",
            x.rtol, x.atol
        );
        1
    } else {
        0
    }
}

/// The timing replay: 0 when the artifact keeps every rule.
fn replay(artifact: &lpuc_artifact::Artifact) -> i32 {
    let verdict = lpuc_emulator::emulate_artifact(artifact);
    if verdict.is_ok() {
        let s = &verdict.stats;
        if s.chips.len() > 1 || s.transfers > 0 {
            outln!(
                "ok: {} instructions and {} transfers ({} hops) replayed on {} chips; makespan {} cycles confirmed; peak SRAM {} bytes on a chip at cycle {}; no dependency, unit, link, route or SRAM fault",
                s.instructions, s.transfers, s.hops, s.chips.len(), s.makespan, s.peak_sram_bytes, s.peak_sram_cycle
            );
        } else {
            outln!(
                "ok: {} instructions replayed; makespan {} cycles confirmed; peak SRAM {} bytes at cycle {}; no dependency, unit or SRAM fault",
                s.instructions, s.makespan, s.peak_sram_bytes, s.peak_sram_cycle
            );
        }
        0
    } else {
        eprintln!(
            "error: the artifact is invalid: {} fault(s)",
            verdict.faults.len()
        );
        for f in verdict.faults.iter().take(100) {
            eprintln!("  {f}");
        }
        if verdict.faults.len() > 100 {
            eprintln!("  ... and {} more", verdict.faults.len() - 100);
        }
        1
    }
}

fn report(dir: &std::path::Path, format: Format) -> i32 {
    match lpuc_artifact::read_artifact(dir) {
        Ok(a) => {
            match format {
                Format::Text => out!("{}", lpuc_artifact::text::report_text(&a.report)),
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&a.report).expect("report serializes")
                ),
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
