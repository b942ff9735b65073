//! The single-chip scheduler: every op gets a unit, an exact issue cycle and its cost; every value
//! gets an SRAM address range for exactly its lifetime.
//!
//! Stages, one file each: [`work`] says what each op asks of the hardware, [`list_schedule`] places
//! ops on units in time, [`sram_alloc`] places buffers in SRAM, [`build`] assembles the artifact's
//! schedule, [`report`] derives the critical path and utilization from it.

pub mod build;
pub mod critical_path;
pub mod dataflow;
pub mod list_schedule;
pub mod per_token;
pub mod report;
pub mod sram_alloc;
pub mod system;
pub mod work;

pub use build::{schedule_graph, SramUse};

use thiserror::Error;

fn mib(bytes: &u64) -> f64 {
    *bytes as f64 / (1024.0 * 1024.0)
}

/// Why a graph could not be scheduled. Resource errors: the model is valid but does not fit.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error(
        "the model does not fit one chip's SRAM: it needs {needed} bytes ({:.1} MiB) {measure}, {available} bytes ({:.1} MiB) are available; weights alone are {weights} bytes. Give it more chips with --chips N, or use a smaller --bucket (or --phase decode for one token against a KV cache)",
        mib(.needed),
        mib(.available)
    )]
    DoesNotFit {
        /// Which figure exceeded capacity: the peak of live bytes, or the allocator's high water.
        measure: &'static str,
        needed: u64,
        available: u64,
        weights: u64,
    },
    #[error(
        "chip {chip} of the placement overflows its SRAM: it needs {needed} bytes ({:.1} MiB) {measure}, {available} bytes ({:.1} MiB) are available, {weights} bytes of them weights; the largest other values live then: {largest}. The placer's estimate of its working set was too low: give it more chips with --chips N, or use a smaller --bucket",
        mib(.needed),
        mib(.available)
    )]
    ChipDoesNotFit {
        chip: u32,
        measure: &'static str,
        needed: u64,
        available: u64,
        weights: u64,
        /// The largest buffers live at the peak, with their sizes.
        largest: String,
    },
    #[error("the multi-chip program would need more than {limit} instructions and transfers (stopped in stage {stage} of {stages}): the placement splits large values over so many chips, in so many tiles, that every tile exchanges among all of them. Use fewer chips per stage (--partition layer), a smaller --bucket, or more chips")]
    ProgramTooLarge { limit: u64, stage: usize, stages: usize },
    #[error("node '{node}' ({op}): the target cannot execute it: {reason}")]
    Unexecutable {
        node: String,
        op: String,
        reason: String,
    },
}
