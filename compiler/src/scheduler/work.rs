//! What each IR op asks of the hardware, in the cost model's terms: matrix products (and
//! convolutions as implicit GEMMs) on the MXM, arithmetic and reductions on the VXM, data movement
//! on the SXM.

use lpuc_ir::{einsum, Graph, OpId, OpKind, TensorType};
use lpuc_target::Work;

/// A product of sizes that saturates instead of wrapping: an absurd op must cost "forever", never
/// wrap around to almost free.
fn product<'a>(values: impl IntoIterator<Item = &'a u64>) -> u64 {
    values.into_iter().fold(1u64, |a, &v| a.saturating_mul(v))
}

fn elements(t: &TensorType) -> u64 {
    t.shape.num_elements().unwrap_or(u64::MAX)
}

/// The work of op `o`.
pub fn work_of(g: &Graph, o: OpId) -> Work {
    let op = g.op(o);
    let inputs: Vec<&TensorType> = op.inputs.iter().map(|&v| &g.value(v).ty).collect();
    work_for(&op.kind, &inputs, &g.value(op.outputs[0]).ty)
}

/// The work of an op of `kind` reading `inputs` and making `out` (its first result).
pub fn work_for(kind: &OpKind, inputs: &[&TensorType], out: &TensorType) -> Work {
    let input = |i: usize| inputs[i];
    let dims = |i: usize| input(i).shape.dims().to_vec();
    let vector = |elements: u64, dtype| Work::Vector {
        op: kind.name().to_string(),
        elements,
        dtype,
    };
    match kind {
        OpKind::MatMul
        | OpKind::MatMulT
        | OpKind::MatMulBias { .. }
        | OpKind::MatMulInteger
        | OpKind::QLinearMatMul => {
            let a = dims(0);
            let mut b = dims(if *kind == OpKind::QLinearMatMul { 3 } else { 1 });
            // A MatMulT's right operand is [.., n, k]: read as the [.., k, n] it stands for.
            if *kind == OpKind::MatMulT && b.len() >= 2 {
                let r = b.len();
                b.swap(r - 2, r - 1);
            }
            let k = *a.last().unwrap_or(&1);
            let m = if a.len() > 1 { a[a.len() - 2] } else { 1 };
            let n = if b.len() > 1 { *b.last().unwrap_or(&1) } else { 1 };
            Work::Matmul {
                batch: elements(out) / m.saturating_mul(n).max(1),
                m,
                k,
                n,
                dtype: input(0).dtype,
            }
        }
        OpKind::Gemm { trans_a, .. } => {
            let a = dims(0);
            let d = out.shape.dims();
            Work::Matmul {
                batch: 1,
                m: d[0],
                k: if *trans_a { a[0] } else { a[1] },
                n: d[1],
                dtype: out.dtype,
            }
        }
        OpKind::Conv { window, group }
        | OpKind::ConvInteger { window, group }
        | OpKind::QLinearConv { window, group } => {
            // Implicit GEMM per group: (N * output pixels) x (C/group * kernel) x (M/group).
            let w = dims(if matches!(kind, OpKind::QLinearConv { .. }) {
                3
            } else {
                1
            });
            let od = out.shape.dims();
            Work::Matmul {
                batch: *group,
                m: od[0].saturating_mul(product(&od[2..])),
                k: w[1].saturating_mul(product(&window.kernel)),
                n: w[0] / group,
                dtype: input(0).dtype,
            }
        }
        OpKind::ConvTranspose { window, group, .. } => {
            // Scatter form: every input pixel times every (output channel, kernel tap).
            let x = dims(0);
            let w = dims(1);
            Work::Matmul {
                batch: *group,
                m: x[0].saturating_mul(product(&x[2..])),
                k: w[0] / group,
                n: w[1].saturating_mul(product(&window.kernel)),
                dtype: input(0).dtype,
            }
        }
        OpKind::Einsum { equation } => einsum_work(inputs, equation).unwrap_or_else(|| {
            let all = einsum::index_sizes(equation, inputs)
                .map(|s| product(s.values()))
                .unwrap_or(u64::MAX);
            vector(all, input(0).dtype)
        }),
        OpKind::Pool { window, .. } => vector(
            elements(out).saturating_mul(window.kernel.iter().product()),
            input(0).dtype,
        ),
        OpKind::Reduce { .. }
        | OpKind::ArgReduce { .. }
        | OpKind::TopK { .. }
        | OpKind::Quantize { .. }
        | OpKind::DynamicQuantize => vector(elements(input(0)), input(0).dtype),
        OpKind::Where => vector(elements(out), input(1).dtype),
        OpKind::Binary(_)
        | OpKind::Unary(_)
        | OpKind::Cast { .. }
        | OpKind::Softmax { .. }
        | OpKind::LayerNorm { .. }
        | OpKind::RmsNorm { .. }
        | OpKind::Hardmax { .. }
        | OpKind::CumSum { .. }
        | OpKind::BatchNorm { .. }
        | OpKind::InstanceNorm { .. }
        | OpKind::GroupNorm { .. }
        | OpKind::Dequantize { .. }
        | OpKind::Trilu { .. } => vector(elements(out), input(0).dtype),
        OpKind::Reshape { .. }
        | OpKind::Transpose { .. }
        | OpKind::Concat { .. }
        | OpKind::Slice { .. }
        | OpKind::Gather { .. }
        | OpKind::GatherElements { .. }
        | OpKind::GatherNd { .. }
        | OpKind::ScatterNd { .. }
        | OpKind::ScatterElements { .. }
        | OpKind::OneHot { .. }
        | OpKind::Expand { .. }
        | OpKind::Tile { .. }
        | OpKind::Pad { .. }
        | OpKind::Resize { .. } => Work::Stream {
            bytes: out.size_bytes().unwrap_or(u64::MAX),
        },
    }
}

/// A two-operand einsum with a contraction, as a batched matmul: indices on both operands and the
/// output are the batch, on one operand and the output are m or n, on both operands only are k.
fn einsum_work(types: &[&TensorType], equation: &str) -> Option<Work> {
    if types.len() != 2 {
        return None;
    }
    let sizes = einsum::index_sizes(equation, types).ok()?;
    let eq = einsum::parse(equation).ok()?;
    let (a, b, out) = (&eq.operands[0], &eq.operands[1], &eq.output);
    let product =
        |f: &dyn Fn(char) -> bool| -> u64 { product(sizes.iter().filter(|(c, _)| f(**c)).map(|(_, s)| s)) };
    let k = product(&|c| a.contains(&c) && b.contains(&c) && !out.contains(&c));
    let has_k = sizes
        .keys()
        .any(|&c| a.contains(&c) && b.contains(&c) && !out.contains(&c));
    if !has_k {
        return None;
    }
    Some(Work::Matmul {
        batch: product(&|c| a.contains(&c) && b.contains(&c) && out.contains(&c)),
        m: product(&|c| a.contains(&c) && !b.contains(&c)),
        k,
        n: product(&|c| b.contains(&c) && !a.contains(&c)),
        dtype: types[0].dtype,
    })
}
