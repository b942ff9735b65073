//! Property: the saturation rewrites never change what a graph computes, never add an op, and the
//! rewritten graph still schedules and passes the emulator. Random graphs from the supported ops
//! (transposes and reshapes among them, so chains to cancel and merge arise), evaluated before and
//! after by the reference interpreter on the same inputs, and both schedules executed by the
//! functional emulator on the same values.

use lpuc::passes::{eliminate_dead_ops::eliminate_dead_ops, run_passes, saturate::saturate};
use lpuc::scheduler::schedule_graph;
use lpuc_ir::interp::{evaluate, EvalError, Tensor};
use lpuc_ir::{DType, Graph, ValueKind};
use lpuc_target::Target;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[path = "graph_gen.rs"]
mod graph_gen;
#[path = "values.rs"]
mod values;
use graph_gen::{build, step};

/// Inputs and weights by name: values in [-1, 1), integer inputs 0 (a valid index).
fn feeds(g: &Graph) -> BTreeMap<lpuc_ir::ValueId, Tensor> {
    let mut feeds = BTreeMap::new();
    for v in g.value_ids() {
        let value = g.value(v);
        if matches!(value.kind, ValueKind::Computed { .. }) {
            continue;
        }
        let dims: Vec<usize> = value.ty.shape.dims().iter().map(|&d| d as usize).collect();
        let n: usize = dims.iter().product();
        let mut x = value.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }) | 1;
        let data: Vec<f64> = (0..n)
            .map(|_| {
                if matches!(value.ty.dtype, DType::I64 | DType::I32) {
                    return 0.0;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 52) as f64 * 2.0 - 1.0
            })
            .collect();
        // Rounded to the value's dtype, as a chip holds it.
        let data = data.into_iter().map(|x: f64| value.ty.dtype.round(x)).collect();
        feeds.insert(v, Tensor::new(dims, data).expect("sized"));
    }
    feeds
}

fn run(g: &Graph) -> Result<Vec<Tensor>, EvalError> {
    evaluate(g, &feeds(g))
}

/// `g` scheduled on one chip and executed by the functional emulator on [`feeds`].
fn execute(g: &Graph, target: &Target) -> Result<Vec<Tensor>, String> {
    let (schedule, _) = schedule_graph(g, target).map_err(|e| e.to_string())?;
    let mut d = lpuc::scheduler::dataflow::single_chip(g, &schedule);
    let fed = feeds(g);
    let blob = values::embed(&mut d, &fed);
    let inputs: Vec<Tensor> = g.inputs().iter().map(|v| fed[v].clone()).collect();
    let run = lpuc_emulator::functional::execute_parts(&schedule, &d, Some(&blob), &inputs)
        .map_err(|e| e.to_string())?;
    Ok(run.outputs.into_iter().map(|(_, t)| t).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn rewrites_keep_the_numbers(
        rows in prop_oneof![Just(2u64), Just(8), Just(16)],
        cols in prop_oneof![Just(4u64), Just(16)],
        steps in proptest::collection::vec(step(), 1..24),
    ) {
        let g = run_passes(build(rows, cols, &steps)).unwrap();
        let target = Target::lpu_v1();
        let (out, fired) = saturate(&g, &target);
        let out = eliminate_dead_ops(&out);
        prop_assert!(lpuc_ir::verify(&out).is_ok());
        prop_assert!(out.num_ops() <= g.num_ops(), "{} > {}", out.num_ops(), g.num_ops());
        if fired.is_empty() {
            prop_assert_eq!(lpuc_ir::print::print(&out), lpuc_ir::print::print(&g));
        }
        // Layout rewrites move values without arithmetic; fused ops compute the same formula in
        // another order: equal to rounding.
        match (run(&g), run(&out)) {
            (Ok(before), Ok(after)) => {
                prop_assert_eq!(before.len(), after.len());
                for (b, a) in before.iter().zip(&after) {
                    prop_assert_eq!(&b.dims, &a.dims);
                    for (x, y) in b.data.iter().zip(&a.data) {
                        prop_assert!(x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(1.0), "{} vs {}", x, y);
                    }
                }
            }
            // An op the interpreter does not evaluate: nothing to compare.
            (Err(EvalError::Unsupported { .. }), _) => {}
            (a, b) => prop_assert!(false, "before {:?}, after {:?}", a.err(), b.err()),
        }
        prop_assert!(schedule_graph(&out, &target).is_ok());
        // Both schedules executed: each op's result rounded to its dtype, so a fused op (one
        // rounding) and its parts (one each) differ by a few units in the last place.
        match (execute(&g, &target), execute(&out, &target)) {
            (Ok(before), Ok(after)) => {
                for ((b, a), &v) in before.iter().zip(&after).zip(g.outputs()) {
                    let tol = match g.value(v).ty.dtype {
                        DType::F16 => 2e-2,
                        DType::Bf16 => 1e-1,
                        _ => 1e-4,
                    };
                    for (x, y) in b.data.iter().zip(&a.data) {
                        let close = x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * x.abs().max(1.0);
                        prop_assert!(close, "executed: {} vs {}", x, y);
                    }
                }
            }
            (Err(b), _) if b.contains("no kernel") => {}
            (b, a) => prop_assert!(false, "executed before {:?}, after {:?}", b.err(), a.err()),
        }
    }
}
