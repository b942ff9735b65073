//! The opset-23 transformer ops, `Attention` and `RotaryEmbedding`, decomposed into IR ops.
//!
//! The dynamo exporter emits them from opset 23 on. Each becomes the plain graph an older export
//! would have had (matmuls, a masked softmax, slices and concats), following the ONNX reference
//! implementation, so the scheduler and the emulator need nothing new. Fully masked rows give NaN
//! here where the reference gives 0 (they do not occur with causal or padding masks that keep at
//! least one position).

use super::{invalid, unsupported, Operand, Operands, Plan, Reject, Step};
use crate::frontend::consts::{Const, Values, FOLD_LIMIT};
use crate::frontend::model::Node;
use lpuc_ir::{BinaryOp, DType, OpKind, TensorType, UnaryOp};

/// Builds a plan step by step; each step's first result can feed later steps.
struct Steps(Vec<Step>);

impl Steps {
    fn op(&mut self, kind: OpKind, inputs: Vec<Operand>) -> Operand {
        self.0.push(Step {
            kind,
            inputs,
            outputs: vec![],
        });
        Operand::Step(self.0.len() - 1)
    }

    /// Make `value` node output `output`. An input passed through unchanged is copied first
    /// (a same-shape reshape), so every output is a value of its own.
    fn output(&mut self, value: &Operand, output: usize, dims: &[u64]) {
        let step = match value {
            Operand::Step(i) => *i,
            other => {
                self.reshape(other.clone(), dims.to_vec());
                self.0.len() - 1
            }
        };
        self.0[step].outputs.push(output);
    }

    fn reshape(&mut self, x: Operand, shape: Vec<u64>) -> Operand {
        self.op(OpKind::Reshape { shape }, vec![x])
    }

    fn transpose(&mut self, x: Operand, perm: Vec<usize>) -> Operand {
        self.op(OpKind::Transpose { perm }, vec![x])
    }

    fn binary(&mut self, op: BinaryOp, a: Operand, b: Operand) -> Operand {
        self.op(OpKind::Binary(op), vec![a, b])
    }

    /// `x[..., start..end]` on the last of `rank` dims (`step` 2 picks every other element).
    fn last_axis(&mut self, x: Operand, dims: &[u64], start: u64, end: u64, step: i64) -> Operand {
        let r = dims.len();
        let mut starts = vec![0i64; r];
        let mut ends: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let mut steps = vec![1i64; r];
        starts[r - 1] = start as i64;
        ends[r - 1] = end as i64;
        steps[r - 1] = step;
        self.op(OpKind::Slice { starts, ends, steps }, vec![x])
    }
}

fn scalar(dtype: DType, v: f64, what: &str) -> Operand {
    Operand::Const(Box::new(Const::new(
        TensorType::new(dtype, vec![]),
        Values::Float(vec![v]).cast(dtype),
        what,
    )))
}

/// `Attention` (opset 23): Q, K, V, optional mask and past key/value; Y and present key/value.
pub(super) fn attention(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let qk_mode = node.attr_int("qk_matmul_output_mode").unwrap_or(0);
    if !(0..=3).contains(&qk_mode) {
        return Err(invalid(format!("qk_matmul_output_mode {qk_mode}")));
    }
    if ops.present(6) {
        return Err(unsupported(
            "Attention with nonpad_kv_seqlen (a run-time per-batch cache length) is not lowered",
            "export with a static cache length",
        ));
    }
    if node.attr_int("left_window_size").unwrap_or(-1) >= 0
        || node.attr_int("right_window_size").unwrap_or(-1) >= 0
    {
        return Err(unsupported(
            "Attention with a sliding window",
            "export the window as an attention mask",
        ));
    }
    let (qd, kd, vd) = (
        ops.dims(0)?.to_vec(),
        ops.dims(1)?.to_vec(),
        ops.dims(2)?.to_vec(),
    );
    let dtype = ops.dtype(0)?;
    let rank = qd.len();
    if !(rank == 3 || rank == 4) || kd.len() != rank || vd.len() != rank {
        return Err(invalid(format!(
            "Attention on ranks {}, {}, {}",
            qd.len(),
            kd.len(),
            vd.len()
        )));
    }
    let mut s = Steps(Vec::new());
    // Bring Q, K, V to [batch, heads, sequence, head size].
    let heads = |attr: &str| -> Result<u64, Reject> {
        node.attr_int(attr)
            .and_then(|h| u64::try_from(h).ok())
            .filter(|&h| h > 0)
            .ok_or_else(|| invalid(format!("3-D Attention needs {attr}")))
    };
    let to_4d = |s: &mut Steps, x: Operand, d: &[u64], h: u64| -> Result<(Operand, Vec<u64>), Reject> {
        if !d[2].is_multiple_of(h) {
            return Err(invalid(format!(
                "hidden size {} is not a multiple of {h} heads",
                d[2]
            )));
        }
        let r = s.reshape(x, vec![d[0], d[1], h, d[2] / h]);
        Ok((s.transpose(r, vec![0, 2, 1, 3]), vec![d[0], h, d[1], d[2] / h]))
    };
    let (mut q, mut k, mut v) = (Operand::Input(0), Operand::Input(1), Operand::Input(2));
    let (mut qd4, mut kd4, mut vd4) = (qd.clone(), kd.clone(), vd.clone());
    if rank == 3 {
        let (hq, hkv) = (heads("q_num_heads")?, heads("kv_num_heads")?);
        (q, qd4) = to_4d(&mut s, q, &qd, hq)?;
        (k, kd4) = to_4d(&mut s, k, &kd, hkv)?;
        (v, vd4) = to_4d(&mut s, v, &vd, hkv)?;
    }
    // The cache: past key/value are concatenated in front of the new ones.
    if ops.present(4) != ops.present(5) {
        return Err(invalid("past_key and past_value must be given together"));
    }
    if ops.present(4) && (ops.rank(4)? != 4 || ops.rank(5)? != 4) {
        return Err(invalid(
            "past_key and past_value must be 4-D [batch, heads, past, head size]",
        ));
    }
    let past_len = if ops.present(4) { ops.dims(4)?[2] } else { 0 };
    if ops.present(4) {
        k = s.op(OpKind::Concat { axis: 2 }, vec![Operand::Input(4), k]);
        v = s.op(OpKind::Concat { axis: 2 }, vec![Operand::Input(5), v]);
        kd4[2] += past_len;
        vd4[2] += past_len;
    }
    if node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
        s.output(&k, 1, &kd4);
    }
    if node.outputs.get(2).is_some_and(|o| !o.is_empty()) {
        s.output(&v, 2, &vd4);
    }
    // Grouped-query attention: each K/V head serves hq/hkv query heads.
    let (hq, hkv) = (qd4[1], kd4[1]);
    if hq != hkv {
        if hkv == 0 || !hq.is_multiple_of(hkv) || vd4[1] != hkv {
            return Err(invalid(format!("{hq} query heads over {hkv} key/value heads")));
        }
        let g = hq / hkv;
        let repeat = |s: &mut Steps, x: Operand, d: &[u64]| {
            let r = s.reshape(x, vec![d[0], hkv, 1, d[2], d[3]]);
            let e = s.op(
                OpKind::Expand {
                    shape: vec![d[0], hkv, g, d[2], d[3]],
                },
                vec![r],
            );
            s.reshape(e, vec![d[0], hq, d[2], d[3]])
        };
        k = repeat(&mut s, k, &kd4);
        v = repeat(&mut s, v, &vd4);
    }
    let (q_len, kv_len) = (qd4[2], kd4[2]);
    let kt = s.transpose(k, vec![0, 1, 3, 2]);
    let qk = s.op(OpKind::MatMul, vec![q, kt]);
    let scale = match node.attr_float("scale") {
        Some(x) => f64::from(x),
        None => 1.0 / (qd4[3] as f64).sqrt(),
    };
    let mut scores = s.binary(BinaryOp::Mul, qk, scalar(dtype, scale, "attention scale"));
    let softcap = f64::from(node.attr_float("softcap").unwrap_or(0.0));
    if softcap > 0.0 {
        let d = s.binary(BinaryOp::Div, scores, scalar(dtype, softcap, "softcap"));
        let t = s.op(OpKind::Unary(UnaryOp::Tanh), vec![d]);
        scores = s.binary(BinaryOp::Mul, t, scalar(dtype, softcap, "softcap"));
    }
    // The optional QK output: the scaled (and soft-capped) scores, with the mask, or the softmax.
    let mut qk_output = scores.clone();
    let neg_inf = || scalar(dtype, f64::NEG_INFINITY, "masked score");
    if ops.present(3) {
        let md = ops.dims(3)?.to_vec();
        let mut mask = Operand::Input(3);
        let short = kv_len.saturating_sub(*md.last().unwrap_or(&kv_len));
        let is_bool = ops.dtype(3)? == DType::Bool;
        if short > 0 {
            // A mask shorter than the keys is padded with "masked".
            let mut pads = vec![0i64; 2 * md.len()];
            pads[2 * md.len() - 1] = short as i64;
            let value = if is_bool { 0.0 } else { f64::NEG_INFINITY };
            mask = s.op(
                OpKind::Pad {
                    pads,
                    mode: lpuc_ir::PadMode::Constant { value },
                },
                vec![mask],
            );
        }
        scores = if is_bool {
            s.op(OpKind::Where, vec![mask, scores, neg_inf()])
        } else {
            s.binary(BinaryOp::Add, scores, mask)
        };
    }
    if node.attr_int("is_causal").unwrap_or(0) != 0 {
        // Query i sees key j iff j <= i + past length (bottom-right aligned with the cache).
        let ty = TensorType::new(DType::Bool, vec![q_len, kv_len]);
        let n = q_len.saturating_mul(kv_len);
        let values = (n <= FOLD_LIMIT).then(|| {
            Values::Bool(
                (0..q_len)
                    .flat_map(|i| (0..kv_len).map(move |j| j <= i + past_len))
                    .collect(),
            )
        });
        let causal = Const {
            values,
            ..Const::opaque(ty, format!("causal mask of {} (offset {past_len})", node.name))
        };
        scores = s.op(
            OpKind::Where,
            vec![Operand::Const(Box::new(causal)), scores, neg_inf()],
        );
    }
    if qk_mode == 2 {
        qk_output = scores.clone();
    }
    let probs = s.op(OpKind::Softmax { axis: 3, log: false }, vec![scores]);
    if qk_mode == 3 {
        qk_output = probs.clone();
    }
    if node.outputs.get(3).is_some_and(|o| !o.is_empty()) {
        s.output(&qk_output, 3, &[]);
    }
    let mut y = s.op(OpKind::MatMul, vec![probs, v]);
    if rank == 3 {
        let t = s.transpose(y, vec![0, 2, 1, 3]);
        y = s.reshape(t, vec![qd4[0], q_len, hq * vd4[3]]);
    }
    s.output(&y, 0, &[]);
    Ok(Plan::Steps(s.0))
}

/// `RotaryEmbedding` (opset 23): rotate the first `rotary_embedding_dim` channels of each head by
/// the cached cos/sin of its position, in halves or interleaved pairs.
pub(super) fn rotary_embedding(node: &Node, ops: &Operands) -> Result<Plan, Reject> {
    let xd = ops.dims(0)?.to_vec();
    let mut s = Steps(Vec::new());
    // Work in a 4-D layout whose last dim is the head: [B, H, S, D] as given, or [B, S, H, D].
    let (x, d4, heads_axis) = match xd.len() {
        4 => (Operand::Input(0), xd.clone(), 1),
        3 => {
            let h = node
                .attr_int("num_heads")
                .and_then(|h| u64::try_from(h).ok())
                .filter(|&h| h > 0 && xd[2].is_multiple_of(h))
                .ok_or_else(|| invalid("3-D RotaryEmbedding needs num_heads dividing the hidden size"))?;
            let d4 = vec![xd[0], xd[1], h, xd[2] / h];
            (s.reshape(Operand::Input(0), d4.clone()), d4, 2)
        }
        r => return Err(invalid(format!("RotaryEmbedding of rank {r}"))),
    };
    let head = d4[3];
    let rot = match node.attr_int("rotary_embedding_dim").unwrap_or(0) {
        0 => head,
        r => u64::try_from(r)
            .ok()
            .filter(|&r| r <= head && r.is_multiple_of(2))
            .ok_or_else(|| invalid(format!("rotary_embedding_dim {r}")))?,
    };
    let half = rot / 2;
    // cos/sin as [B, S, half], then with a size-1 heads axis so they broadcast.
    let cache = |s: &mut Steps, i: usize| -> Result<Operand, Reject> {
        let table = if ops.present(3) {
            s.op(
                OpKind::Gather { axis: 0 },
                vec![Operand::Input(i), Operand::Input(3)],
            )
        } else {
            Operand::Input(i)
        };
        let d = if ops.present(3) {
            let p = ops.dims(3)?;
            if p.len() != 2 {
                return Err(invalid(format!(
                    "position_ids {p:?} must be 2-D [batch, sequence]"
                )));
            }
            vec![p[0], p[1], *ops.dims(i)?.last().unwrap_or(&0)]
        } else {
            ops.dims(i)?.to_vec()
        };
        if d.len() != 3 || d[2] != half {
            return Err(invalid(format!(
                "cos/sin cache {d:?} for a rotary half of {half}"
            )));
        }
        let mut shape = vec![d[0], d[1]];
        shape.insert(heads_axis, 1);
        shape.push(half);
        Ok(s.reshape(table, shape))
    };
    let cos = cache(&mut s, 1)?;
    let sin = cache(&mut s, 2)?;
    let interleaved = node.attr_int("interleaved").unwrap_or(0) != 0;
    let (x1, x2) = if interleaved {
        (
            s.last_axis(x.clone(), &d4, 0, rot, 2),
            s.last_axis(x.clone(), &d4, 1, rot, 2),
        )
    } else {
        (
            s.last_axis(x.clone(), &d4, 0, half, 1),
            s.last_axis(x.clone(), &d4, half, rot, 1),
        )
    };
    let c1 = s.binary(BinaryOp::Mul, cos.clone(), x1.clone());
    let s2 = s.binary(BinaryOp::Mul, sin.clone(), x2.clone());
    let real = s.binary(BinaryOp::Sub, c1, s2);
    let s1 = s.binary(BinaryOp::Mul, sin, x1);
    let c2 = s.binary(BinaryOp::Mul, cos, x2);
    let imag = s.binary(BinaryOp::Add, s1, c2);
    let mut half_dims = d4.clone();
    half_dims[3] = half;
    let rotated = if interleaved {
        // Interleave back: (real, imag) pairs along a new last axis, then flatten it.
        let mut pair = half_dims.clone();
        pair.push(1);
        let r = s.reshape(real, pair.clone());
        let i = s.reshape(imag, pair);
        let both = s.op(OpKind::Concat { axis: 4 }, vec![r, i]);
        let mut flat = d4.clone();
        flat[3] = rot;
        s.reshape(both, flat)
    } else {
        s.op(OpKind::Concat { axis: 3 }, vec![real, imag])
    };
    let mut out = if rot < head {
        let rest = s.last_axis(x, &d4, rot, head, 1);
        s.op(OpKind::Concat { axis: 3 }, vec![rotated, rest])
    } else {
        rotated
    };
    if xd.len() == 3 {
        out = s.reshape(out, xd.clone());
    }
    s.output(&out, 0, &xd);
    Ok(Plan::Steps(s.0))
}
