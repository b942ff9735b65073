//! Tiling in time: an op whose working set does not fit a chip's share of SRAM runs as tiles one
//! after another, so only one tile's operands and result are resident at once.
//!
//! Tiles split the result along its leading axes (batch, heads, rows), outermost first, until a
//! tile fits the budget. An operand is split with the result when it has the same rank and the same
//! size on every split axis (Q and the scores of attention split by head and by query row); any
//! other operand (a weight, K^T along the rows) stays whole. The last axis is never split: it is
//! what softmax, normalisations and matrix rows reduce over. Compute cycles do not change.

pub use lpuc_artifact::placement::Tiled;
use lpuc_ir::{Graph, OpId, ValueKind};

fn bytes(g: &Graph, v: lpuc_ir::ValueId) -> u64 {
    g.value(v).ty.size_bytes().unwrap_or(u64::MAX)
}

/// The working set of op `o` (its non-weight operands and results) once tiled to fit `budget`,
/// and the tiling when one was needed.
pub fn tiled_working_set(g: &Graph, o: OpId, budget: u64) -> (u64, Option<Tiled>) {
    let op = g.op(o);
    let operands: Vec<_> = op
        .inputs
        .iter()
        .copied()
        .filter(|&v| !matches!(g.value(v).kind, ValueKind::Weight { .. }))
        .collect();
    let working = operands
        .iter()
        .chain(&op.outputs)
        .map(|&v| bytes(g, v))
        .fold(0u64, u64::saturating_add);
    if working <= budget || op.outputs.is_empty() {
        return (working, None);
    }
    let out = g.value(op.outputs[0]).ty.shape.dims().to_vec();
    let rank = out.len();
    // Tiles per result axis, outermost first, until the whole working set divided would fit.
    let mut tiles = vec![1u64; rank];
    let mut total = 1u64;
    let needed = working.div_ceil(budget.max(1));
    for axis in 0..rank.saturating_sub(1) {
        if total >= needed {
            break;
        }
        let t = out[axis].min(needed.div_ceil(total)).max(1);
        tiles[axis] = t;
        total = total.saturating_mul(t);
    }
    if total == 1 {
        return (working, None);
    }
    // What is resident per tile: split operands and results by their share of the tiles. A matrix
    // product's right operand is needed whole along its rows and columns (only its batch axes
    // split); the left operand and the result split on every leading axis.
    let matmul = matches!(
        op.kind,
        lpuc_ir::OpKind::MatMul
            | lpuc_ir::OpKind::MatMulT
            | lpuc_ir::OpKind::MatMulBias { .. }
            | lpuc_ir::OpKind::MatMulInteger
            | lpuc_ir::OpKind::QLinearMatMul
    );
    let right = if op.kind == lpuc_ir::OpKind::QLinearMatMul {
        3
    } else {
        1
    };
    let share = |v: lpuc_ir::ValueId, splittable: usize| -> u64 {
        let d = g.value(v).ty.shape.dims();
        let divisor: u64 = if d.len() == rank {
            (0..splittable.min(rank))
                .filter(|&a| tiles[a] > 1 && d[a] == out[a])
                .map(|a| tiles[a])
                .product()
        } else {
            1
        };
        bytes(g, v).div_ceil(divisor.max(1))
    };
    let tile_bytes = op
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| operands.contains(v))
        .map(|(i, &v)| {
            let splittable = if matmul && i == right {
                rank.saturating_sub(2)
            } else {
                rank
            };
            share(v, splittable)
        })
        .chain(op.outputs.iter().map(|&v| share(v, rank)))
        .fold(0u64, u64::saturating_add);
    let p = g.provenance(o);
    (
        tile_bytes,
        Some(Tiled {
            node: p.node.clone(),
            op: op.kind.name().to_string(),
            tiles,
            working_bytes: working,
            tile_bytes,
            fits: tile_bytes <= budget,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::{DType, OpKind, Provenance, TensorType};

    fn prov() -> Provenance {
        Provenance {
            node: "attn".into(),
            op_type: "MatMul".into(),
        }
    }

    #[test]
    fn attention_scores_tile_by_head_and_row() {
        let mut g = Graph::new("t");
        let q = g.add_input("q", TensorType::new(DType::F32, vec![1, 64, 4096, 128]));
        let kt = g.add_input("kt", TensorType::new(DType::F32, vec![1, 64, 128, 4096]));
        let s = g.add_op(OpKind::MatMul, vec![q, kt], "s", prov()).unwrap();
        let o = g.value(s).kind.clone();
        let ValueKind::Computed { producer } = o else {
            panic!()
        };
        let budget = 64 << 20;
        let (bytes, tiled) = tiled_working_set(&g, producer, budget);
        let t = tiled.expect("4 GiB of scores must be tiled");
        assert_eq!(t.tiles[0], 1);
        assert!(t.tiles[1] > 1, "{t:?}");
        assert!(bytes <= budget, "{bytes} > {budget}: {t:?}");
        // Small ops are untouched.
        let (_, none) = tiled_working_set(&g, producer, u64::MAX);
        assert!(none.is_none());
    }
}
