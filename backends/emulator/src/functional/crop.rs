//! Which part of each operand an op's result box depends on, for the ops that dominate the work
//! (matrix products, elementwise arithmetic, normalisations and softmax along trailing axes), so
//! an instruction computes its own box from the parts of its operands that box reads instead of
//! the whole op. Any other op is computed whole and its box cut out.

use super::boxes::Region;
use lpuc_ir::OpKind;

/// The box computed (`out`, a superset of the wanted box along the axes the op reduces over)
/// and the part of each operand it reads.
pub struct Crop {
    pub out: Region,
    pub operands: Vec<Region>,
}

/// `want` widened to the whole of `dims` from axis `from` on.
fn whole_from(want: &Region, dims: &[u64], from: usize) -> Region {
    want.iter()
        .zip(dims)
        .enumerate()
        .map(|(a, (&r, &d))| if a >= from { (0, d) } else { r })
        .collect()
}

/// The part of an operand of `dims` that elementwise broadcasting maps onto `out` (dims aligned
/// from the right; a size-1 dim is read whole).
fn aligned(dims: &[u64], out: &Region) -> Region {
    let off = out.len() - dims.len().min(out.len());
    dims.iter()
        .enumerate()
        .map(|(a, &d)| if d == 1 { (0, 1) } else { out[a + off] })
        .collect()
}

/// The crop for `kind` with operands of `dims` (of which the instruction holds the boxes `held`)
/// and a single result of `out_dims`, wanting box `want` of the result; `None` for ops computed
/// whole. A matrix product sums only over the contraction both its operands hold: what neither
/// holds is another chip's partial sum.
pub fn crop(
    kind: &OpKind,
    dims: &[Vec<u64>],
    held: &[Region],
    out_dims: &[u64],
    want: &Region,
) -> Option<Crop> {
    let rank = out_dims.len();
    if dims.iter().any(|d| d.len() > rank) {
        return None;
    }
    let elementwise = |out: Region| {
        let operands = dims.iter().map(|d| aligned(d, &out)).collect();
        Some(Crop { out, operands })
    };
    match kind {
        OpKind::Binary(_) | OpKind::Unary(_) | OpKind::Where | OpKind::Cast { .. } => {
            elementwise(want.clone())
        }
        OpKind::Softmax { axis, .. } | OpKind::CumSum { axis, .. } => {
            // Every other axis is independent; the reduced one is read and made whole.
            let out: Region = want
                .iter()
                .zip(out_dims)
                .enumerate()
                .map(|(a, (&r, &d))| if a == *axis { (0, d) } else { r })
                .collect();
            elementwise(out)
        }
        OpKind::RmsNorm { axis, .. }
        | OpKind::LayerNorm {
            axis, stats: false, ..
        } => elementwise(whole_from(want, out_dims, *axis)),
        OpKind::MatMul | OpKind::MatMulT | OpKind::MatMulBias { .. } => {
            let [a, b, rest @ ..] = dims else {
                return None;
            };
            if a.len() < 2 || b.len() < 2 || rank < 2 {
                return None;
            }
            let out = want.clone();
            // Batch dims broadcast; rows of the left and columns of the right follow the box;
            // the contraction is what both operands hold of it.
            // A MatMulT's right operand is [.., n, k].
            let t = *kind == OpKind::MatMulT;
            let (b_k, b_cols) = if t {
                (b.len() - 1, b.len() - 2)
            } else {
                (b.len() - 2, b.len() - 1)
            };
            let (hl, hr) = (&held[0][a.len() - 1], &held[1][b_k]);
            let k = (hl.0.max(hr.0), hl.1.min(hr.1).max(hl.0.max(hr.0)));
            let batch = |d: &[u64]| -> Vec<(u64, u64)> {
                let off = (rank - 2) - (d.len() - 2);
                (0..d.len() - 2)
                    .map(|x| if d[x] == 1 { (0, 1) } else { out[x + off] })
                    .collect()
            };
            let mut left = batch(a);
            left.extend([out[rank - 2], k]);
            let mut right = batch(b);
            right.extend([k, out[rank - 1]]);
            if t {
                right.swap(b_k, b_cols);
            }
            let mut operands = vec![left, right];
            operands.extend(rest.iter().map(|d| aligned(d, &out)));
            Some(Crop { out, operands })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_reads_its_rows_and_columns_and_the_whole_contraction() {
        let (a, b) = (vec![4, 8, 16], vec![16, 32]);
        let held = [vec![(0, 4), (0, 8), (0, 16)], vec![(4, 12), (0, 32)]];
        let c = crop(
            &OpKind::MatMul,
            &[a, b],
            &held,
            &[4, 8, 32],
            &vec![(1, 2), (0, 4), (8, 16)],
        )
        .unwrap();
        assert_eq!(
            c.operands,
            [vec![(1, 2), (0, 4), (4, 12)], vec![(4, 12), (8, 16)]]
        );
        let s = crop(
            &OpKind::Softmax { axis: 1, log: false },
            &[vec![2, 6]],
            &[vec![(0, 2), (0, 6)]],
            &[2, 6],
            &vec![(1, 2), (2, 4)],
        )
        .unwrap();
        assert_eq!(s.out, vec![(1, 2), (0, 6)]);
        let held = [vec![(0, 1), (0, 6)], vec![(0, 2), (0, 6)], vec![]];
        let b = crop(
            &OpKind::Where,
            &[vec![1, 6], vec![2, 6], vec![]],
            &held,
            &[2, 6],
            &vec![(1, 2), (2, 4)],
        )
        .unwrap();
        assert_eq!(b.operands, [vec![(0, 1), (2, 4)], vec![(1, 2), (2, 4)], vec![]]);
    }
}
