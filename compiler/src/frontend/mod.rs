//! The ONNX frontend: load a model file, bind its symbolic dims, lower it to the static IR.
//!
//! The frontend owns everything partial: unknown ops, unbound dims and unknown shapes live in its
//! own model ([`model::OnnxModel`]) so that the checker can list every problem at once; only a
//! model with no violations is lowered into the IR, where every shape is static.

pub mod bind;
pub mod consts;
mod dim_expr;
pub mod fold;
pub mod load;
pub mod lower;
pub mod model;
pub mod translate;

pub use bind::{DimBinder, DimSource};
pub use load::{load_model, LoadError};
pub use model::OnnxModel;
