//! Random values for a graph's inputs and weights, embedded into an artifact's dataflow the way
//! `--embed-weights` does, so a test can execute a schedule (`lpuc_emulator::execute`) and compare
//! it with the reference interpreter on the same values.

// Each test binary includes this file and uses part of it.
#![allow(dead_code)]

use lpuc_artifact::dataflow::{decode, encode, Role, Stored};
use lpuc_artifact::{Dataflow, WeightSource};
use lpuc_ir::interp::Tensor;
use lpuc_ir::{Graph, ValueId, ValueKind};
use std::collections::BTreeMap;

/// What a test feeds both sides.
pub struct Fed {
    /// Graph inputs, in order (for the emulator).
    pub inputs: Vec<Tensor>,
    /// Inputs and weights by value (for the reference interpreter).
    pub feeds: BTreeMap<ValueId, Tensor>,
    /// `weights.bin`.
    pub blob: Vec<u8>,
}

/// A deterministic stream of values in [-1, 1).
fn stream(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Random values for every input and weight of `g` (floats in [-1, 1) rounded to their dtype,
/// integers and bools 0 or 1, so every index is valid), with `d`'s weights embedded.
pub fn random_values(g: &Graph, d: &mut Dataflow, seed: u64) -> Fed {
    let mut next = stream(seed);
    let mut feeds = BTreeMap::new();
    for v in g.value_ids() {
        let value = g.value(v);
        if matches!(value.kind, ValueKind::Computed { .. }) {
            continue;
        }
        let dims: Vec<usize> = value.ty.shape.dims().iter().map(|&x| x as usize).collect();
        let n: usize = dims.iter().product();
        let dtype = value.ty.dtype;
        let raw: Vec<f64> = (0..n)
            .map(|k| match dtype {
                _ if dtype.is_float() => next(),
                lpuc_ir::DType::Bool => (k % 2) as f64,
                // Integers index (Gather, Slice bounds): 0 is valid for every dim.
                _ => 0.0,
            })
            .collect();
        let data = decode(dtype, &encode(dtype, &raw));
        feeds.insert(v, Tensor::new(dims, data).expect("dims match"));
    }
    let blob = embed(d, &feeds);
    let inputs = g.inputs().iter().map(|v| feeds[v].clone()).collect();
    Fed { inputs, feeds, blob }
}

/// `d`'s weights embedded from `feeds` (by value, as `--embed-weights` stores them): returns
/// `weights.bin`.
pub fn embed(d: &mut Dataflow, feeds: &BTreeMap<ValueId, Tensor>) -> Vec<u8> {
    let mut blob = Vec::new();
    for (k, dv) in d.values.iter_mut().enumerate() {
        if dv.role != Role::Weight {
            continue;
        }
        let bytes = encode(dv.dtype, &feeds[&ValueId(k as u32)].data);
        dv.stored = Some(Stored {
            offset: blob.len() as u64,
            bytes: bytes.len() as u64,
        });
        blob.extend(bytes);
    }
    d.weights = WeightSource::Embedded;
    blob
}

/// The largest difference between `a` and `b` beyond `atol + rtol * |b|` (0 when all within),
/// NaN matching NaN.
pub fn excess(a: &Tensor, b: &Tensor, rtol: f64, atol: f64) -> f64 {
    assert_eq!(a.dims, b.dims);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            if (x.is_nan() && y.is_nan()) || x == y {
                0.0
            } else {
                ((x - y).abs() - atol - rtol * y.abs()).max(0.0)
            }
        })
        .fold(0.0, f64::max)
}
