//! Graph passes, each one job in its own file, run in order by [`run_passes`] with the verifier
//! after each in debug builds and tests.

pub mod eliminate_dead_ops;

use lpuc_ir::{verify, Graph, VerifyError};

/// The pass pipeline. Returns the rewritten graph, or the verifier's complaints (our bug).
pub fn run_passes(g: Graph) -> Result<Graph, Vec<VerifyError>> {
    let g = eliminate_dead_ops::eliminate_dead_ops(&g);
    if cfg!(debug_assertions) {
        verify(&g)?;
    }
    Ok(g)
}
