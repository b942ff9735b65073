//! Errors of a whole compile, typed by whose fault they are.

use crate::checker::Violation;
use crate::frontend::LoadError;
use crate::scheduler::ScheduleError;
use lpuc_ir::VerifyError;
use lpuc_target::TargetError;
use thiserror::Error;

/// Why a compile stopped.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The model file could not be read or is malformed (exit 2).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The target description could not be used (exit 2).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The model uses what cannot be scheduled statically (exit 1).
    #[error("the model cannot be scheduled statically: {} violation(s)", .0.len())]
    Rejected(Vec<Violation>),
    /// The model is valid but does not fit the hardware (exit 1). `dims` lists how the symbolic
    /// dims were bound, since the bucket is usually what decides the fit, and `chips` how many
    /// chips the placer would spread it over.
    #[error(
        "{source}{}{}",
        if .dims.is_empty() { String::new() } else { format!(" (dims bound: {})", .dims) },
        .chips.map_or(String::new(), |c| format!("; `lpuc place` puts it on {c} chips"))
    )]
    Resources {
        source: ScheduleError,
        dims: String,
        chips: Option<u32>,
    },
    /// No placement fits the chips and racks allowed (exit 1).
    #[error(transparent)]
    Placement(#[from] crate::placer::PlaceError),
    /// `--dim NAME=VALUE` names a dim the model does not have (exit 2): a typo would otherwise
    /// be ignored and the dim bound by another rule.
    #[error("--dim {name}: the model has no dim named '{name}'; its named dims are: {known}")]
    UnknownDim { name: String, known: String },
    /// `--embed-weights`, but some weights' values are not known at compile time (exit 1).
    #[error("--embed-weights: the values of {count} weight(s) are not known at compile time: {names}. They are derived from the model's weights by folding larger than lpuc evaluates; compile without --embed-weights to schedule it without values")]
    WeightsUnknown { count: usize, names: String },
    /// `lpuc emulate --model` was given another model than the artifact was compiled from (exit 2).
    #[error("{path} is not the model this artifact was compiled from (its sha256 is {found}, the manifest pins {expected})")]
    OtherModel {
        path: String,
        found: String,
        expected: String,
    },
    /// An output file could not be written (exit 2).
    #[error("cannot write the artifact: {0}")]
    Write(String),
    /// The IR verifier failed after a stage: a bug in lpuc (exit 3).
    #[error("internal compiler error after {stage}: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Internal {
        stage: &'static str,
        errors: Vec<VerifyError>,
    },
}

impl CompileError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CompileError::Load(_)
            | CompileError::Target(_)
            | CompileError::Write(_)
            | CompileError::OtherModel { .. }
            | CompileError::UnknownDim { .. } => 2,
            CompileError::Rejected(_)
            | CompileError::Resources { .. }
            | CompileError::Placement(_)
            | CompileError::WeightsUnknown { .. } => 1,
            CompileError::Internal { .. } => 3,
        }
    }
}
