//! The pipeline, in one visible function per command: load -> bind -> check -> lower -> passes ->
//! schedule -> report -> artifact. Errors say whose fault they are, which decides the exit code.

mod compile;
pub mod conformance;
pub mod embed;
mod errors;
mod forms;
pub mod tensors;

pub use compile::{check, compile, compile_placed, lower_to, place, CheckOutcome, CompileOptions, Stage};
pub use errors::CompileError;
