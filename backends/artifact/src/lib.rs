//! The lpuc artifact: what `lpuc compile -o DIR` writes and `lpuc emulate` / `lpuc report` read.
//!
//! An artifact is a build output: the same model and options give the same bytes. It holds
//! `manifest.json` (what was built, from what, by which compiler for which hardware), `schedule.json`
//! (every instruction and buffer, machine-readable), `schedule.txt` (the same, stable text for
//! snapshot tests and review), `report.json` / `report.txt` (what a person reads), `trace.json` (the timeline, for Perfetto)
//! and `target.toml`
//! (the exact target description used, so the artifact can be checked without the compiler).

pub mod dataflow;
pub mod digest;
pub mod dir;
pub mod manifest;
pub mod placement;
pub mod report;
pub mod schedule;
pub mod text;
pub mod trace;

pub use dataflow::{Dataflow, Step, WeightSource, DATAFLOW_FORMAT};
pub use dir::{read_artifact, write_artifact, Artifact, ArtifactError, ARTIFACT_FILES};
pub use manifest::Manifest;
pub use report::{
    ChipReport, CriticalSplit, CriticalStep, LinkReport, PerToken, Report, SramReport, StepKind,
    TransferReport, UnitReport,
};
pub use schedule::{
    Buffer, BufferId, BufferKind, Hop, InstrId, Instruction, Schedule, Transfer, TransferId, SCHEDULE_FORMAT,
};
