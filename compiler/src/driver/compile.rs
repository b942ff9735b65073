//! `compile` and `check`: the pipeline functions the CLI calls.

use super::forms::Forms;
use super::CompileError;
use crate::checker::{check_model, Category, Violation};
use crate::frontend::{bind::DimBinder, load_model, lower::lower};
use crate::placer::{PlaceOptions, Placement};
use crate::scheduler::per_token::StepInfo;
use crate::scheduler::report::{build_report, build_system_report};
use crate::scheduler::system::schedule_system;
use crate::scheduler::{work::work_of, ScheduleError};
use lpuc_artifact::digest::{hex, sha256_hex};
use lpuc_artifact::{Artifact, Manifest};
use lpuc_ir::{verify, Graph};
use lpuc_target::Target;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// Everything that decides a compile's output.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub model: PathBuf,
    pub binder: DimBinder,
    /// A built-in target name or a path to a `.toml` file.
    pub target: String,
    /// Whether rewritten forms of the graph are offered (see `driver::forms`); `--no-rewrite`
    /// turns them off.
    pub rewrite: bool,
    /// Whether the weights' values are read and stored in the artifact (`weights.bin`), so
    /// `lpuc emulate --inputs` can execute it; off, an ordinary compile never reads them.
    pub embed_weights: bool,
}

/// Where `--stop-after` stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// After lowering to the IR.
    Lower,
    /// After the graph passes.
    Passes,
}

/// The result of checking a model.
#[derive(Debug)]
pub struct CheckOutcome {
    pub violations: Vec<Violation>,
    pub bound_dims: BTreeMap<String, u64>,
    pub graph: Option<Graph>,
    /// With `embed_weights`: every weight's values by name, and the weights whose values are
    /// unknown (with the recipe that derives them).
    pub weight_values: BTreeMap<String, crate::frontend::consts::Values>,
    pub unknown_weights: Vec<(String, String)>,
}

/// Load, bind, check and lower: every violation the model has, in one run.
pub fn check(opts: &CompileOptions) -> Result<CheckOutcome, CompileError> {
    let (target, _) = Target::load(&opts.target)?;
    check_for(opts, &target)
}

/// Every `--dim NAME` must name a dim the binder reads: a graph input's named dim, alone or inside
/// a dim expression such as `past_sequence + 1`.
fn check_dim_names(
    model: &crate::frontend::model::OnnxModel,
    binder: &crate::frontend::bind::DimBinder,
) -> Result<(), CompileError> {
    use crate::frontend::model::Dim;
    let declared: std::collections::BTreeSet<String> = model
        .inputs
        .iter()
        .filter_map(|v| v.dims.as_ref())
        .flatten()
        .filter_map(|d| match d {
            Dim::Named(n) => Some(n.trim().to_string()),
            _ => None,
        })
        .collect();
    let readable: std::collections::BTreeSet<String> = declared
        .iter()
        .flat_map(|n| crate::frontend::bind::names_in(n))
        .collect();
    match binder.explicit.keys().find(|k| !readable.contains(k.trim())) {
        Some(name) => Err(CompileError::UnknownDim {
            name: name.clone(),
            known: if declared.is_empty() {
                "none".into()
            } else {
                declared.iter().cloned().collect::<Vec<_>>().join(", ")
            },
        }),
        None => Ok(()),
    }
}

/// [`check`] against an already loaded target.
fn check_for(opts: &CompileOptions, target: &Target) -> Result<CheckOutcome, CompileError> {
    let model = if opts.embed_weights {
        crate::frontend::load::load_model_with_values(&opts.model)?
    } else {
        load_model(&opts.model)?
    };
    check_dim_names(&model, &opts.binder)?;
    let mut violations = check_model(&model, &opts.binder);
    let lowered = lower(&model, &opts.binder);
    violations.extend(lowered.violations);
    if !lowered.complete && violations.is_empty() {
        violations.push(Violation::new(
            Category::InvalidModel,
            &model.graph_name,
            "graph",
            "a graph output is not computed by any node",
            "check that every graph output is produced by the graph",
        ));
    }
    let mut graph = if violations.is_empty() {
        lowered.graph
    } else {
        None
    };
    if let Some(g) = &graph {
        verify(g).map_err(|errors| CompileError::Internal {
            stage: "lowering",
            errors,
        })?;
        violations.extend(unexecutable_ops(g, target));
        if !violations.is_empty() {
            graph = None;
        }
    }
    Ok(CheckOutcome {
        violations,
        bound_dims: lowered.bound_dims,
        graph,
        weight_values: lowered.weight_values,
        unknown_weights: lowered.unknown_weights,
    })
}

/// Ops the target has no mode for (e.g. an int64 matmul on an MXM without one), as violations, so
/// `check` says what `compile` would refuse.
fn unexecutable_ops(g: &Graph, target: &Target) -> Vec<Violation> {
    g.op_ids()
        .filter_map(|o| {
            let reason = target.cost(&work_of(g, o)).err()?;
            let p = g.provenance(o);
            Some(Violation::new(
                Category::UnsupportedDtype,
                &p.node,
                &p.op_type,
                format!("{} cannot execute {}: {reason}", target.name, g.op(o).kind.name()),
                "export in a dtype the target's units support (see the target file's throughput tables)",
            ))
        })
        .collect()
}

/// The IR after `stage`, for `--stop-after`.
pub fn lower_to(opts: &CompileOptions, stage: Stage) -> Result<Graph, CompileError> {
    let outcome = check(opts)?;
    let graph = outcome.graph.ok_or(CompileError::Rejected(outcome.violations))?;
    match stage {
        Stage::Lower => Ok(graph),
        Stage::Passes => {
            let (target, _) = Target::load(&opts.target)?;
            Ok(Forms::new(graph, opts.rewrite, &target)?.rewritten().clone())
        }
    }
}

/// Check, lower and run the passes, then place the model onto chips.
pub fn place(opts: &CompileOptions, place_opts: &PlaceOptions) -> Result<(Placement, Target), CompileError> {
    let (target, _) = Target::load(&opts.target)?;
    let outcome = check_for(opts, &target)?;
    let graph = outcome.graph.ok_or(CompileError::Rejected(outcome.violations))?;
    let forms = Forms::new(graph, opts.rewrite, &target)?;
    let (_, placement, _) = forms.place(&target, place_opts)?;
    Ok((placement, target))
}

/// The whole pipeline: an artifact, or why there is none. A model that fits one chip is
/// scheduled on one; one that does not is placed on the fewest chips that hold it.
pub fn compile(opts: &CompileOptions) -> Result<Artifact, CompileError> {
    compile_placed(opts, None)
}

/// [`compile`] with placement options: with `Some`, always placed (even on one chip) as they say.
pub fn compile_placed(
    opts: &CompileOptions,
    place_opts: Option<&PlaceOptions>,
) -> Result<Artifact, CompileError> {
    let (target, target_toml) = Target::load(&opts.target)?;
    let outcome = check_for(opts, &target)?;
    let Some(graph) = outcome.graph else {
        return Err(CompileError::Rejected(outcome.violations));
    };
    let forms = Forms::new(graph, opts.rewrite, &target)?;
    let dims = || {
        outcome
            .bound_dims
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // One chip when no placement was asked for and the model fits it.
    let single = match place_opts {
        Some(_) => None,
        None => match forms.schedule_single(&target) {
            Ok(done) => Some(done),
            Err(ScheduleError::DoesNotFit { .. }) => None,
            Err(source) => {
                return Err(CompileError::Resources {
                    source,
                    dims: dims(),
                    chips: None,
                })
            }
        },
    };
    let step = StepInfo {
        phase: if opts.binder.decode { "decode" } else { "prefill" }.into(),
        // A decode step makes one token a stream; a prefill reads as many as its sequence dim
        // (unknown when the model names none).
        tokens_per_step: if opts.binder.decode {
            Some(1)
        } else {
            outcome
                .bound_dims
                .iter()
                .filter(|(name, _)| crate::frontend::bind::is_new_tokens(name))
                .map(|(_, &v)| v)
                .max()
        },
        // The streams a step serves: the batch-like dims as bound (however they were).
        streams: outcome
            .bound_dims
            .iter()
            .filter(|(name, _)| crate::frontend::bind::is_batch_like(name))
            .map(|(_, &v)| v)
            .max()
            .unwrap_or(1),
    };
    let defaults = PlaceOptions::default();
    let place_opts = place_opts.unwrap_or(&defaults);
    let (schedule, mut dataflow, mut report, rewrites) = match single {
        Some((graph, schedule, sram, plain)) => {
            let report = build_report(&schedule, &target, sram, &step);
            let dataflow = crate::scheduler::dataflow::single_chip(graph, &schedule);
            let cycles = (plain, schedule.makespan_cycles);
            let rewrites = forms.rewrites(graph, cycles, "makespan on one chip");
            (schedule, dataflow, report, rewrites)
        }
        None => {
            // The best placement whose schedule fits: a chip over its SRAM (the placer's
            // estimate was low) passes to the next form's placement; any other failure, or
            // the last form's, is the answer.
            let ranked = forms.place_ranked(&target, place_opts)?;
            // The graph as exported, placed alike: its slowest stage, for the rewrites' report.
            let plain = ranked
                .iter()
                .find(|(g, _, _)| std::ptr::eq(*g, forms.plain()))
                .map(|(_, p, _)| p.bottleneck_cycles);
            let mut ranked = ranked.into_iter().peekable();
            loop {
                let (graph, placement, plan) = ranked.next().expect("at least one placement");
                match schedule_system(graph, &plan, place_opts.weight_dtype, &target) {
                    Ok((schedule, dataflow, chips)) => {
                        let cycles = (plain, placement.bottleneck_cycles);
                        let measure = "the placer's estimate of the slowest pipeline stage";
                        let rewrites = forms.rewrites(graph, cycles, measure);
                        let report = build_system_report(&schedule, &target, &chips, placement, &step);
                        break (schedule, dataflow, report, rewrites);
                    }
                    Err(ScheduleError::ChipDoesNotFit { .. }) if ranked.peek().is_some() => continue,
                    Err(source) => {
                        return Err(CompileError::Resources {
                            source,
                            dims: dims(),
                            chips: None,
                        })
                    }
                }
            }
        }
    };
    report.rewrites = rewrites;
    let weights = if opts.embed_weights {
        Some(super::embed::embed_weights(
            &mut dataflow,
            &outcome.weight_values,
            &outcome.unknown_weights,
        )?)
    } else {
        None
    };
    let mut options = BTreeMap::new();
    // A target file is recorded by name; its exact content is pinned by target_sha256 and
    // target.toml, and an absolute path would make artifacts differ between machines.
    let target_option = std::path::Path::new(&opts.target)
        .file_name()
        .map_or_else(|| opts.target.clone(), |f| f.to_string_lossy().into_owned());
    options.insert("target".to_string(), target_option);
    for (k, v) in &opts.binder.explicit {
        options.insert(format!("dim.{k}"), v.to_string());
    }
    if let Some(p) = Some(place_opts).filter(|_| report.placement.is_some()) {
        if let Some(n) = p.chips {
            options.insert("chips".to_string(), n.to_string());
        }
        options.insert(
            "partition".to_string(),
            format!("{:?}", p.partition).to_lowercase(),
        );
        if let Some(d) = p.weight_dtype {
            options.insert("weight_dtype".to_string(), d.name().to_string());
        }
        options.insert("allow_cross_rack".to_string(), p.allow_cross_rack.to_string());
    }
    if !opts.rewrite {
        options.insert("rewrite".to_string(), "off".to_string());
    }
    // Where the weights' values are: in weights.bin, or in the model the manifest pins (read by
    // `lpuc emulate --model`).
    options.insert(
        "weights".to_string(),
        if opts.embed_weights { "embedded" } else { "model" }.to_string(),
    );
    if let Some(b) = opts.binder.batch {
        options.insert("batch".to_string(), b.to_string());
    }
    for (name, dims) in &opts.binder.inputs {
        let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
        options.insert(format!("input.{name}"), dims.join("x"));
    }
    let manifest = Manifest {
        format_version: 1,
        compiler: "lpuc".into(),
        compiler_version: env!("CARGO_PKG_VERSION").into(),
        target: target.name.clone(),
        target_sha256: sha256_hex(target_toml.as_bytes()),
        model_file: opts
            .model
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        model_sha256: sha256_file(&opts.model)?,
        bucket: opts.binder.bucket,
        bound_dims: outcome.bound_dims,
        options,
    };
    Ok(Artifact {
        manifest,
        schedule,
        dataflow,
        weights,
        report,
        target_toml,
    })
}

pub(crate) fn sha256_file(path: &std::path::Path) -> Result<String, CompileError> {
    let io = |source| crate::frontend::LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
