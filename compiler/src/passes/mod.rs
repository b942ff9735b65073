//! Graph passes, each one job in its own file, run in order by [`run_passes`] with the verifier
//! after each in debug builds and tests.
//!
//! A rewrite that is not better everywhere is offered as an alternative form instead of applied:
//! [`grouped_attention`] gives the graph with grouped-query attention broadcasting its keys and
//! values, and the driver places both forms and keeps the better placement (on one node's group
//! it saves the copies; on a larger group the per-head form splits more evenly).

pub mod broadcast_repeated_heads;
pub mod eliminate_dead_ops;
pub mod fold_transposed_operand;
pub mod saturate;

use lpuc_ir::{verify, Graph, VerifyError};

/// The pass pipeline. Returns the rewritten graph, or the verifier's complaints (our bug).
pub fn run_passes(g: Graph) -> Result<Graph, Vec<VerifyError>> {
    let g = eliminate_dead_ops::eliminate_dead_ops(&g);
    if cfg!(debug_assertions) {
        verify(&g)?;
    }
    Ok(g)
}

/// `g` (as [`run_passes`] left it) with every grouped-query attention broadcasting its keys and
/// values rather than copying them per query head, and how many attentions changed; `None` when
/// there is none.
pub fn grouped_attention(g: &Graph) -> Result<Option<(Graph, usize)>, Vec<VerifyError>> {
    finish(broadcast_repeated_heads::broadcast_repeated_heads(g))
}

/// The same with the groups axis `groups` long, each key and value head serving several groups
/// (see [`broadcast_repeated_heads::broadcast_repeated_heads_in_groups`]); `None` when no
/// attention has fewer key and value heads that divide it.
pub fn grouped_attention_in(g: &Graph, groups: u64) -> Result<Option<(Graph, usize)>, Vec<VerifyError>> {
    finish(broadcast_repeated_heads::broadcast_repeated_heads_in_groups(
        g, groups,
    ))
}

fn finish((rewritten, count): (Graph, usize)) -> Result<Option<(Graph, usize)>, Vec<VerifyError>> {
    if count == 0 {
        return Ok(None);
    }
    let rewritten = run_passes(rewritten)?;
    Ok(Some((rewritten, count)))
}
