//! The lpuc intermediate representation.
//!
//! A dataflow graph of operations over values whose shapes and dtypes are all static: partial shapes
//! belong to the frontend, so everything downstream (passes, placer, scheduler) can rely on exact
//! sizes. Values and ops live in arenas addressed by typed ids; ONNX provenance is a side table so
//! every diagnostic can name the node it came from.

pub mod dtype;
pub mod einsum;
pub mod graph;
pub mod ids;
pub mod infer;
mod infer_compute;
pub mod infer_layout;
pub mod interp;
pub mod op;
pub mod print;
mod serde_float;
pub mod shape;
pub mod verify;

pub use dtype::DType;
pub use graph::{Graph, Provenance, Value, ValueKind};
pub use ids::{OpId, ValueId};
pub use infer::ShapeError;
pub use op::{
    BinaryOp, Op, OpKind, PadMode, PoolKind, ReduceOp, ResizeMode, ResizeSampling, UnaryOp, Window,
};
pub use shape::{Shape, TensorType};
pub use verify::{verify, VerifyError};
