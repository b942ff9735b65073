//! The ways one op can run on a group of chips: replicated, or split along one axis of its result
//! (each chip computing an equal contiguous piece), or, for a matmul, split along its contraction
//! (each chip a partial sum).
//!
//! An axis of the result can be split when every input either has the matching axis (split with
//! it) or does not vary along it (broadcast, or an axis the op does not touch: kept whole). Which
//! axes qualify is a property of the op kind:
//! - elementwise ops and `Where`/`Cast`: every axis, matched by numpy broadcasting;
//! - softmax, hardmax, cumsum, layer and RMS normalisation: every axis they do not reduce over;
//! - `Transpose` follows its permutation; `Reshape` maps the outermost axis of each group of axes
//!   whose sizes multiply to the same number (splitting it cuts the flattened group into
//!   contiguous ranges on both sides);
//! - `MatMul`: batch axes, rows (`m`, A split), columns (`n`, B split), and the contraction `k`;
//!   `MatMulBias` the same but the contraction, its bias split with the columns;
//! - `Gemm`: rows and columns; `Gather`: every axis of the data except the gathered one, and the
//!   indices' axes; `Reduce`: every axis it keeps;
//! - `Concat`: every axis but the one it joins along; `Slice`, `Pad`, `Tile`, `Expand`: every
//!   axis they leave unchanged (a KV cache splits by head through the concat that extends it).
//!
//! Every other op runs replicated. A split needs the axis (and every matching input axis) to be a
//! multiple of the group size, so every chip's share is exactly equal and the shard's work is
//! the op's work divided exactly.

use super::layout::Layout;
use crate::scheduler::work::work_of;
use lpuc_ir::{Graph, OpId, OpKind};
use lpuc_target::Work;

/// One way to run an op on a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strategy {
    /// `R`, `S<axis>` (split along a result axis) or `K` (split along the contraction).
    pub name: String,
    /// The layout each input must have (`Replicated` or `Split`).
    pub inputs: Vec<Layout>,
    /// The layout of the first result (ops with several results are only replicated).
    pub output: Layout,
    /// One chip's share of the work.
    pub work: Work,
}

/// Which input axis matches a split result axis (`None`: the input is kept whole).
type AxisMap = Vec<Option<usize>>;

/// How a result axis maps to inputs, per splittable axis, and the contraction's input axes.
struct Splits {
    axes: Vec<(usize, AxisMap)>,
    contraction: Option<AxisMap>,
    /// Which dim of a matmul's work each result axis divides: batch, m or n.
    matmul_dim: Vec<MatmulDim>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatmulDim {
    Batch,
    M,
    N,
}

fn dims(g: &Graph, v: lpuc_ir::ValueId) -> Vec<u64> {
    g.value(v).ty.shape.dims().to_vec()
}

/// Numpy broadcasting: the axis of an input of `shape` matching result axis `a` of a rank-`rank`
/// result with size `size`, if it has one of that size.
fn broadcast_axis(shape: &[u64], rank: usize, a: usize, size: u64) -> Option<usize> {
    let offset = rank.checked_sub(shape.len())?;
    let i = a.checked_sub(offset)?;
    (shape[i] == size).then_some(i)
}

/// Result axes that are elementwise over every input, except those in `excluded`.
fn elementwise(
    g: &Graph,
    o: OpId,
    inputs: &[usize],
    excluded: &dyn Fn(usize) -> bool,
) -> Vec<(usize, AxisMap)> {
    let op = g.op(o);
    let out = dims(g, op.outputs[0]);
    (0..out.len())
        .filter(|&a| !excluded(a))
        .map(|a| {
            let map = (0..op.inputs.len())
                .map(|i| {
                    if inputs.contains(&i) {
                        broadcast_axis(&dims(g, op.inputs[i]), out.len(), a, out[a])
                    } else {
                        None
                    }
                })
                .collect();
            (a, map)
        })
        .collect()
}

/// For a reshape from `from` to `to`: pairs (input axis, result axis) of the outermost non-trivial
/// axis of each group of axes whose sizes multiply to the same number.
fn reshape_pairs(from: &[u64], to: &[u64]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0usize, 0usize);
    while i < from.len() && j < to.len() {
        // Skip size-1 axes: they never split.
        if from[i] == 1 {
            i += 1;
            continue;
        }
        if to[j] == 1 {
            j += 1;
            continue;
        }
        let (start_i, start_j) = (i, j);
        let (mut p, mut q) = (from[i] as u128, to[j] as u128);
        i += 1;
        j += 1;
        while p != q {
            if p < q {
                let Some(&d) = from.get(i) else { return pairs };
                p *= d as u128;
                i += 1;
            } else {
                let Some(&d) = to.get(j) else { return pairs };
                q *= d as u128;
                j += 1;
            }
        }
        pairs.push((start_i, start_j));
    }
    pairs
}

fn splits(g: &Graph, o: OpId) -> Splits {
    let op = g.op(o);
    let none = Splits {
        axes: vec![],
        contraction: None,
        matmul_dim: vec![],
    };
    if op.outputs.len() != 1 {
        return none;
    }
    let out = dims(g, op.outputs[0]);
    let rank = out.len();
    let n_in = op.inputs.len();
    let all: Vec<usize> = (0..n_in).collect();
    let simple = |axes| Splits {
        axes,
        contraction: None,
        matmul_dim: vec![],
    };
    match &op.kind {
        OpKind::Binary(_) | OpKind::Unary(_) | OpKind::Where | OpKind::Cast { .. } => {
            simple(elementwise(g, o, &all, &|_| false))
        }
        // A masked softmax's mask follows the scores where it has their axis (it is replicated
        // where it broadcasts).
        OpKind::Softmax { axis, .. } => simple(elementwise(g, o, &all, &|a| a == *axis)),
        OpKind::Hardmax { axis } | OpKind::CumSum { axis, .. } => {
            simple(elementwise(g, o, &[0], &|a| a == *axis))
        }
        OpKind::LayerNorm { axis, .. } | OpKind::RmsNorm { axis, .. } => {
            simple(elementwise(g, o, &[0], &|a| a >= *axis))
        }
        // Axes a concat, slice, pad or tile leaves alone: kept by every input (concat's axis is
        // the one it joins along; a slice's, pad's or tile's are those it changes).
        OpKind::Concat { axis } => simple(
            (0..rank)
                .filter(|a| a != axis)
                .map(|a| (a, vec![Some(a); n_in]))
                .collect(),
        ),
        OpKind::Slice { .. } | OpKind::Pad { .. } | OpKind::Tile { .. } | OpKind::Expand { .. }
            if n_in == 1 =>
        {
            let input = dims(g, op.inputs[0]);
            simple(
                (0..rank)
                    .filter(|&a| input.len() == rank && input[a] == out[a])
                    .filter(|&a| match &op.kind {
                        OpKind::Slice { starts, steps, .. } => starts[a] == 0 && steps[a] == 1,
                        OpKind::Pad { pads, .. } => pads[a] == 0 && pads[a + rank] == 0,
                        _ => true,
                    })
                    .map(|a| (a, vec![Some(a)]))
                    .collect(),
            )
        }
        OpKind::Transpose { perm } => simple((0..rank).map(|a| (a, vec![Some(perm[a])])).collect()),
        OpKind::Reshape { .. } => simple(
            reshape_pairs(&dims(g, op.inputs[0]), &out)
                .into_iter()
                .map(|(i, a)| {
                    let mut map = vec![None; n_in];
                    map[0] = Some(i);
                    (a, map)
                })
                .collect(),
        ),
        OpKind::Reduce { axes, keep_dims, .. } => {
            let input_rank = dims(g, op.inputs[0]).len();
            let kept: Vec<usize> = (0..input_rank).filter(|i| !axes.contains(i)).collect();
            simple(
                (0..input_rank)
                    .filter(|i| !axes.contains(i))
                    .map(|i| {
                        let a = if *keep_dims {
                            i
                        } else {
                            kept.iter().position(|&k| k == i).unwrap_or(0)
                        };
                        let mut map = vec![None; n_in];
                        map[0] = Some(i);
                        (a, map)
                    })
                    .collect(),
            )
        }
        OpKind::Gather { axis } if n_in == 2 => {
            let index_rank = dims(g, op.inputs[1]).len();
            simple(
                (0..rank)
                    .map(|a| {
                        let map = if a < *axis {
                            vec![Some(a), None]
                        } else if a < axis + index_rank {
                            vec![None, Some(a - axis)]
                        } else {
                            vec![Some(a + 1 - index_rank), None]
                        };
                        (a, map)
                    })
                    .collect(),
            )
        }
        OpKind::MatMul | OpKind::MatMulT | OpKind::MatMulInteger | OpKind::MatMulBias { .. }
            if n_in == 2 || (n_in == 3 && matches!(op.kind, OpKind::MatMulBias { .. })) =>
        {
            let (a, b) = (dims(g, op.inputs[0]), dims(g, op.inputs[1]));
            // A MatMulT's right operand holds its columns on its second-last axis and its
            // contraction on its last.
            let (b_cols, b_k) = if op.kind == OpKind::MatMulT {
                (b.len().saturating_sub(2), b.len().saturating_sub(1))
            } else {
                (b.len().saturating_sub(1), b.len().saturating_sub(2))
            };
            if a.len() < 2 || b.len() < 2 || rank < 2 {
                return none;
            }
            // A bias (a vector along the columns) splits with the columns, and is kept whole
            // along every other axis.
            let bias = |map: &mut Vec<Option<usize>>, column: bool| {
                if n_in == 3 {
                    map.push(column.then_some(0));
                }
            };
            let mut axes = Vec::new();
            let mut kinds = Vec::new();
            for (x, &size) in out.iter().enumerate().take(rank - 2) {
                let mut map = vec![
                    broadcast_axis(&a[..a.len() - 2], rank - 2, x, size),
                    broadcast_axis(&b[..b.len() - 2], rank - 2, x, size),
                ];
                bias(&mut map, false);
                axes.push((x, map));
                kinds.push(MatmulDim::Batch);
            }
            let mut rows = vec![Some(a.len() - 2), None];
            bias(&mut rows, false);
            axes.push((rank - 2, rows));
            kinds.push(MatmulDim::M);
            let mut columns = vec![None, Some(b_cols)];
            bias(&mut columns, true);
            axes.push((rank - 1, columns));
            kinds.push(MatmulDim::N);
            Splits {
                axes,
                // Partial sums would each add the bias: a biased product never splits its
                // contraction.
                contraction: (n_in == 2).then(|| vec![Some(a.len() - 1), Some(b_k)]),
                matmul_dim: kinds,
            }
        }
        OpKind::Gemm {
            trans_a: false,
            trans_b,
            ..
        } => {
            let c = |a: usize| {
                (n_in == 3)
                    .then(|| broadcast_axis(&dims(g, op.inputs[2]), rank, a, out[a]))
                    .flatten()
            };
            let mut rows = vec![Some(0), None];
            let mut cols = vec![None, Some(if *trans_b { 0 } else { 1 })];
            if n_in == 3 {
                rows.push(c(0));
                cols.push(c(1));
            }
            Splits {
                axes: vec![(0, rows), (1, cols)],
                contraction: (n_in == 2).then(|| vec![Some(1), Some(if *trans_b { 1 } else { 0 })]),
                matmul_dim: vec![MatmulDim::M, MatmulDim::N],
            }
        }
        _ => none,
    }
}

/// `work` with one of its dims divided by `ways` (exactly: the caller checked divisibility).
fn divide(work: &Work, ways: u64, dim: Option<MatmulDim>, contraction: bool) -> Work {
    match work.clone() {
        Work::Matmul {
            batch,
            m,
            k,
            n,
            dtype,
        } => {
            let (mut batch, mut m, mut k, mut n) = (batch, m, k, n);
            if contraction {
                k /= ways;
            } else {
                match dim {
                    Some(MatmulDim::Batch) => batch /= ways,
                    Some(MatmulDim::M) => m /= ways,
                    Some(MatmulDim::N) | None => n /= ways,
                }
            }
            Work::Matmul {
                batch,
                m,
                k,
                n,
                dtype,
            }
        }
        Work::Vector { op, elements, dtype } => Work::Vector {
            op,
            elements: elements / ways,
            dtype,
        },
        Work::Stream { bytes } => Work::Stream { bytes: bytes / ways },
    }
}

/// [`strategies`] for weights stored at `weight_dtype`: a matrix product reading a float weight
/// stored narrower runs at the narrower dtype's MXM rate (the activations are converted as they
/// stream in; accumulation stays wide), which is how int8 weights speed up a 70B decode step.
pub fn strategies_at(g: &Graph, o: OpId, ways: u64, weight_dtype: Option<lpuc_ir::DType>) -> Vec<Strategy> {
    let mut list = strategies(g, o, ways);
    let Some(stored) = weight_dtype else {
        return list;
    };
    let reads_float_weight = g.op(o).inputs.iter().any(|&v| {
        matches!(g.value(v).kind, lpuc_ir::ValueKind::Weight { .. }) && g.value(v).ty.dtype.is_float()
    });
    if !reads_float_weight {
        return list;
    }
    for st in &mut list {
        if let Work::Matmul { dtype, .. } = &mut st.work {
            if dtype.is_float() && stored.size_bytes() < dtype.size_bytes() {
                *dtype = stored;
            }
        }
    }
    list
}

/// Every strategy for op `o` on `ways` chips, the replicated one first.
pub fn strategies(g: &Graph, o: OpId, ways: u64) -> Vec<Strategy> {
    let op = g.op(o);
    let work = work_of(g, o);
    let mut out = vec![Strategy {
        name: "R".into(),
        inputs: vec![Layout::Replicated; op.inputs.len()],
        output: Layout::Replicated,
        work: work.clone(),
    }];
    if ways <= 1 {
        return out;
    }
    let s = splits(g, o);
    let input_dims: Vec<Vec<u64>> = op.inputs.iter().map(|&v| dims(g, v)).collect();
    let divisible = |map: &AxisMap| {
        map.iter().enumerate().all(|(i, axis)| {
            axis.is_none_or(|x| input_dims[i].get(x).is_some_and(|&d| d % ways == 0 && d >= ways))
        })
    };
    let layouts = |map: &AxisMap| -> Vec<Layout> {
        map.iter()
            .map(|axis| axis.map_or(Layout::Replicated, Layout::Split))
            .collect()
    };
    let result = op.outputs.first().map(|&v| dims(g, v)).unwrap_or_default();
    for (k, (axis, map)) in s.axes.iter().enumerate() {
        let size = result.get(*axis).copied().unwrap_or(0);
        if size % ways != 0 || size < ways || !divisible(map) {
            continue;
        }
        out.push(Strategy {
            name: format!("S{axis}"),
            inputs: layouts(map),
            output: Layout::Split(*axis),
            work: divide(&work, ways, s.matmul_dim.get(k).copied(), false),
        });
    }
    if let Some(map) = &s.contraction {
        if divisible(map) {
            out.push(Strategy {
                name: "K".into(),
                inputs: layouts(map),
                output: Layout::Partial,
                work: divide(&work, ways, None, true),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lpuc_ir::{DType, Graph, OpKind, Provenance, TensorType};

    fn prov() -> Provenance {
        Provenance {
            node: "n".into(),
            op_type: "T".into(),
        }
    }

    #[test]
    fn reshape_pairs_follow_merged_groups() {
        // [1, 128, 4096] -> [1, 128, 32, 128]: seq maps to seq, hidden's outer factor to heads.
        assert_eq!(
            reshape_pairs(&[1, 128, 4096], &[1, 128, 32, 128]),
            vec![(1, 1), (2, 2)]
        );
        // [2, 3, 4] -> [6, 4]: the merged group maps its outer axis.
        assert_eq!(reshape_pairs(&[2, 3, 4], &[6, 4]), vec![(0, 0), (2, 1)]);
    }

    #[test]
    fn a_weight_matmul_splits_rows_columns_and_contraction() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(DType::F16, vec![1, 128, 512]));
        let w = g.add_weight("w", TensorType::new(DType::F16, vec![512, 2048]), "w");
        let y = g.add_op(OpKind::MatMul, vec![x, w], "y", prov()).unwrap();
        g.add_output(y);
        let o = g.op_ids().next().unwrap();
        let names: Vec<String> = strategies(&g, o, 8).iter().map(|s| s.name.clone()).collect();
        // Batch 1 cannot split; rows, columns and the contraction can.
        assert_eq!(names, ["R", "S1", "S2", "K"]);
        let cols = &strategies(&g, o, 8)[2];
        assert_eq!(cols.inputs, vec![Layout::Replicated, Layout::Split(1)]);
        assert!(matches!(cols.work, Work::Matmul { n: 256, k: 512, .. }));
        let k = &strategies(&g, o, 8)[3];
        assert_eq!(k.inputs, vec![Layout::Split(2), Layout::Split(0)]);
        assert_eq!(k.output, Layout::Partial);
        // Seven does not divide 512 or 2048 or 128.
        assert_eq!(strategies(&g, o, 7).len(), 1);
    }
}
