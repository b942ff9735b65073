//! lpuc: a static scheduling compiler for deterministic dataflow accelerators (Groq LPU / TSP).
//!
//! `lpuc compile model.onnx --bucket 2048 -o out` turns an ONNX model into an artifact: a
//! cycle-exact schedule that `lpuc emulate out` proves with an independent replay. See
//! docs/ARCHITECTURE.md for the stages and the invariant each guarantees to the next.

pub mod checker;
pub mod cli;
pub mod driver;
pub mod frontend;
pub mod passes;
pub mod placer;
pub mod scheduler;
