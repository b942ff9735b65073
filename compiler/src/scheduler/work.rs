//! What each IR op asks of the hardware, in the cost model's terms.

use lpuc_ir::{Graph, OpId, OpKind};
use lpuc_target::Work;

/// The work of op `o`.
pub fn work_of(g: &Graph, o: OpId) -> Work {
    let op = g.op(o);
    let out = &g.value(op.outputs[0]).ty;
    let out_elems = out.shape.num_elements().unwrap_or(u64::MAX);
    let input_dims = |i: usize| g.value(op.inputs[i]).ty.shape.dims().to_vec();
    match &op.kind {
        OpKind::MatMul => {
            let a = input_dims(0);
            let b = input_dims(1);
            let k = *a.last().unwrap_or(&1);
            let m = if a.len() > 1 { a[a.len() - 2] } else { 1 };
            let n = if b.len() > 1 { *b.last().unwrap_or(&1) } else { 1 };
            Work::Matmul {
                batch: out_elems / (m * n).max(1),
                m,
                k,
                n,
                dtype: out.dtype,
            }
        }
        OpKind::Gemm { trans_a, .. } => {
            let a = input_dims(0);
            let d = out.shape.dims();
            Work::Matmul {
                batch: 1,
                m: d[0],
                k: if *trans_a { a[0] } else { a[1] },
                n: d[1],
                dtype: out.dtype,
            }
        }
        OpKind::Binary(_) | OpKind::Unary(_) | OpKind::Softmax { .. } | OpKind::LayerNorm { .. } => {
            Work::Vector {
                op: op.kind.name().to_string(),
                elements: out_elems,
                dtype: out.dtype,
            }
        }
        OpKind::Reshape | OpKind::Transpose { .. } => Work::Stream {
            bytes: out.size_bytes().unwrap_or(u64::MAX),
        },
    }
}
