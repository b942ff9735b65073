//! The single-chip scheduler: every op gets a unit, an exact issue cycle and its cost; every value
//! gets an SRAM address range for exactly its lifetime.
//!
//! Stages, one file each: [`work`] says what each op asks of the hardware, [`list_schedule`] places
//! ops on units in time, [`sram_alloc`] places buffers in SRAM, [`build`] assembles the artifact's
//! schedule, [`report`] derives the critical path and utilization from it.

pub mod build;
pub mod list_schedule;
pub mod report;
pub mod sram_alloc;
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
        "the model does not fit one chip's SRAM: it needs {needed} bytes ({:.1} MiB) {measure}, {available} bytes ({:.1} MiB) are available; weights alone are {weights} bytes. Use a smaller --bucket (or --phase decode for one token against a KV cache); compiling onto several chips needs the fabric schedule, which is not built yet",
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
    #[error("node '{node}' ({op}): the target cannot execute it: {reason}")]
    Unexecutable {
        node: String,
        op: String,
        reason: String,
    },
}
