//! Compile-time benchmark: `cargo bench -p lpuc --bench compile`.
//!
//! Times each stage on the examples and on a synthetic chain of transformer blocks' worth of ops,
//! reporting the median of several runs. Figures go to docs/PERFORMANCE.md with this command.

use lpuc::driver::{check, compile, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc::scheduler::schedule_graph;
use lpuc_ir::{BinaryOp, DType, Graph, OpKind, Provenance, TensorType, UnaryOp};
use lpuc_target::Target;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `layers` repetitions of MatMul -> Add -> Gelu -> MatMul -> Add -> residual Add -> LayerNorm.
fn synthetic(layers: usize, seq: u64, d: u64) -> Graph {
    let mut g = Graph::new("synthetic");
    let prov = |i: usize| Provenance {
        node: format!("n{i}"),
        op_type: "Synthetic".into(),
    };
    let mut x = g.add_input("x", TensorType::new(DType::F16, vec![seq, d]));
    for l in 0..layers {
        let w1 = g.add_weight(
            format!("w1_{l}"),
            TensorType::new(DType::F16, vec![d, 4 * d]),
            "w",
        );
        let b1 = g.add_weight(format!("b1_{l}"), TensorType::new(DType::F16, vec![4 * d]), "b");
        let w2 = g.add_weight(
            format!("w2_{l}"),
            TensorType::new(DType::F16, vec![4 * d, d]),
            "w",
        );
        let s = g.add_weight(format!("s_{l}"), TensorType::new(DType::F16, vec![d]), "s");
        let h = g.add_op(OpKind::MatMul, vec![x, w1], "h", prov(l)).unwrap();
        let h = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![h, b1], "hb", prov(l))
            .unwrap();
        let h = g
            .add_op(
                OpKind::Unary(UnaryOp::Gelu { tanh: false }),
                vec![h],
                "hg",
                prov(l),
            )
            .unwrap();
        let h = g.add_op(OpKind::MatMul, vec![h, w2], "o", prov(l)).unwrap();
        let h = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![h, x], "r", prov(l))
            .unwrap();
        let op = OpKind::LayerNorm {
            axis: 1,
            epsilon: 1e-5,
            stats: false,
        };
        x = g.add_op(op, vec![h, s], "ln", prov(l)).unwrap();
    }
    g.add_output(x);
    g
}

fn main() {
    let runs = 7;
    println!("{:<44} {:>12}", "case", "median");
    for (model, bucket) in [
        ("mlp.onnx", None),
        ("transformer_block.onnx", Some(128)),
        ("transformer_block.onnx", Some(2048)),
        ("gpt2_prefill.onnx", Some(2048)),
        ("gpt2_decode.onnx", Some(2048)),
        ("bert_encoder.onnx", Some(2048)),
        ("llama_prefill.onnx", Some(2048)),
        ("resnet_small.onnx", None),
    ] {
        let opts = CompileOptions {
            model: example(model),
            binder: DimBinder {
                bucket,
                ..Default::default()
            },
            target: "lpu-v1".into(),
            rewrite: true,
            embed_weights: false,
        };
        let label = format!("{model} bucket={}", bucket.map_or("-".into(), |b| b.to_string()));
        let t = median(|| drop(check(&opts).unwrap()), runs);
        println!("{:<44} {:>12.3?}", format!("check {label}"), t);
        let t = median(|| drop(compile(&opts).unwrap()), runs);
        println!("{:<44} {:>12.3?}", format!("compile {label}"), t);
        let a = compile(&opts).unwrap();
        let t = median(|| assert!(lpuc_emulator::emulate_artifact(&a).is_ok()), runs);
        println!("{:<44} {:>12.3?}", format!("emulate {label}"), t);
    }
    let target = Target::lpu_v1();
    for (layers, d) in [(50usize, 128u64), (300, 128), (1000, 64)] {
        let g = synthetic(layers, 64, d);
        let t = median(|| drop(schedule_graph(&g, &target).unwrap()), 3);
        println!(
            "{:<44} {:>12.3?}",
            format!("schedule synthetic {} ops", g.num_ops()),
            t
        );
        let (s, sram) = schedule_graph(&g, &target).unwrap();
        let step = lpuc::scheduler::per_token::StepInfo {
            phase: "prefill".into(),
            tokens_per_step: None,
            streams: 1,
        };
        let report = lpuc::scheduler::report::build_report(&s, &target, sram, &step);
        let a = lpuc_artifact::Artifact {
            manifest: compile(&CompileOptions {
                model: example("mlp.onnx"),
                binder: DimBinder::default(),
                target: "lpu-v1".into(),
                rewrite: true,
                embed_weights: false,
            })
            .unwrap()
            .manifest,
            dataflow: lpuc::scheduler::dataflow::single_chip(&g, &s),
            weights: None,
            schedule: s,
            report,
            target_toml: lpuc_target::desc::LPU_V1_TOML.into(),
        };
        let t = median(|| assert!(lpuc_emulator::emulate_artifact(&a).is_ok()), 3);
        println!(
            "{:<44} {:>12.3?}",
            format!("emulate synthetic {} ops", g.num_ops()),
            t
        );
    }
    // Functional emulation: examples compiled with their weights, executed on real values.
    for (model, bucket, chips) in [
        ("bert_encoder.onnx", 128, None),
        ("llama_prefill.onnx", 128, None),
        ("llama_prefill.onnx", 128, Some(8)),
        ("gpt2_prefill.onnx", 128, Some(8)),
    ] {
        let opts = CompileOptions {
            model: example(model),
            binder: DimBinder {
                bucket: Some(bucket),
                ..Default::default()
            },
            target: "lpu-v1".into(),
            rewrite: true,
            embed_weights: true,
        };
        let place = chips.map(|n| lpuc::placer::PlaceOptions {
            chips: Some(n),
            partition: lpuc::placer::Partition::Tensor,
            ..Default::default()
        });
        let a = lpuc::driver::compile_placed(&opts, place.as_ref()).unwrap();
        // Every input 1 (a valid token id, a mask that keeps everything, a plain float).
        let inputs: Vec<lpuc_ir::interp::Tensor> = a
            .dataflow
            .inputs
            .iter()
            .map(|&v| {
                let dims: Vec<usize> = a.dataflow.values[v as usize]
                    .shape
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                let n = dims.iter().product();
                lpuc_ir::interp::Tensor::new(dims, vec![1.0; n]).unwrap()
            })
            .collect();
        let t = median(|| drop(lpuc_emulator::execute(&a, &inputs).unwrap()), 3);
        println!(
            "{:<44} {:>12.3?}",
            format!("execute {model} bucket={bucket} on {} chip(s)", a.schedule.chips),
            t
        );
    }
}
