//! Functional emulation: the example models compiled with their weights, placed on one chip and
//! split over 8 and 16 (layer-wise and tensor-wise), executed instruction by instruction by the
//! emulator and compared with the reference interpreter running the unpartitioned graph as lowered
//! (before rewrites), and with tract (an independent ONNX runtime) running the model file. And the
//! other way round: a schedule whose timing is legal but whose data is
//! wrong (a partial sum left out of a reduction, a shard read from the wrong chip) is caught by
//! its numbers.

use lpuc::driver::{check, compile_placed, CompileOptions};
use lpuc::placer::{Partition, PlaceOptions};
use lpuc_artifact::{Artifact, Step};
use lpuc_ir::interp::{evaluate, Tensor};
use lpuc_ir::{DType, ValueKind};
use lpuc_tests::{example, options, ModelBuilder, D, F32};
use std::collections::BTreeMap;

#[path = "values.rs"]
mod values;

fn with_weights(model: &str, bucket: Option<u64>) -> CompileOptions {
    CompileOptions {
        embed_weights: true,
        ..options(example(model), bucket)
    }
}

/// Inputs for the artifact's graph: floats in [-1, 1), token ids and other integers small
/// (valid in every example's vocabulary), masks all ones.
fn inputs_for(a: &Artifact) -> Vec<Tensor> {
    let d = &a.dataflow;
    d.inputs
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let value = &d.values[v as usize];
            let dims: Vec<usize> = value.shape.iter().map(|&x| x as usize).collect();
            let n: usize = dims.iter().product();
            let data = (0..n)
                .map(|i| {
                    let h = ((i * 7919 + k * 104_729) % 1000) as f64 / 1000.0;
                    match value.dtype {
                        _ if value.name.contains("mask") => 1.0,
                        DType::F32 | DType::F16 | DType::Bf16 => value.dtype.round(h * 2.0 - 1.0),
                        _ if value.name.contains("position") => {
                            (i % dims.last().copied().unwrap_or(1)) as f64
                        }
                        _ if value.name.contains("type") => 0.0,
                        _ => (i * 13 % 50) as f64,
                    }
                })
                .collect();
            Tensor::new(dims, data).unwrap()
        })
        .collect()
}

/// The reference: the lowered graph (no rewrites, no placement) on the model's own weights.
fn reference(opts: &CompileOptions, inputs: &[Tensor]) -> Vec<Tensor> {
    let outcome = check(opts).unwrap();
    let g = outcome.graph.unwrap();
    let mut feeds = BTreeMap::new();
    for (k, &v) in g.inputs().iter().enumerate() {
        feeds.insert(v, inputs[k].clone());
    }
    for v in g.value_ids() {
        let value = g.value(v);
        if let ValueKind::Weight { .. } = value.kind {
            let dims = value.ty.shape.dims().iter().map(|&x| x as usize).collect();
            let data = outcome.weight_values[&value.name].to_floats();
            feeds.insert(v, Tensor::new(dims, data).unwrap());
        }
    }
    evaluate(&g, &feeds).unwrap()
}

/// tract running the ONNX file on `inputs` (dims bound to theirs), outputs as f64.
fn tract_outputs(model: &std::path::Path, a: &Artifact, inputs: &[Tensor]) -> Vec<Tensor> {
    use tract_onnx::prelude::{
        tvec, Framework, InferenceFact, InferenceModelExt, IntoRunnable, Tensor as TractTensor,
    };
    // Exported value_info types clash with tract's own inference of shape arithmetic (a Range over
    // a shape is TDim to tract): let tract infer the types itself.
    let onnx = tract_onnx::onnx()
        .with_ignore_output_types(true)
        .with_ignore_output_shapes(true);
    let mut m = onnx.model_for_path(model).unwrap();
    let mut feeds = tvec!();
    for (k, (&v, t)) in a.dataflow.inputs.iter().zip(inputs).enumerate() {
        let tensor = match a.dataflow.values[v as usize].dtype {
            DType::F32 => {
                let data: Vec<f32> = t.data.iter().map(|&x| x as f32).collect();
                TractTensor::from_shape(&t.dims, &data).unwrap()
            }
            DType::I64 => {
                let data: Vec<i64> = t.data.iter().map(|&x| x as i64).collect();
                TractTensor::from_shape(&t.dims, &data).unwrap()
            }
            DType::I32 => {
                let data: Vec<i32> = t.data.iter().map(|&x| x as i32).collect();
                TractTensor::from_shape(&t.dims, &data).unwrap()
            }
            other => panic!("no tract input of {other} in these tests"),
        };
        let fact = InferenceFact::dt_shape(tensor.datum_type(), t.dims.clone());
        m = m.with_input_fact(k, fact).unwrap();
        feeds.push(tensor.into());
    }
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    plan.run(feeds)
        .unwrap()
        .iter()
        .map(|o| {
            let o = o.cast_to::<f64>().unwrap();
            let view = o.to_plain_array_view::<f64>().unwrap();
            Tensor::new(o.shape().to_vec(), view.iter().copied().collect()).unwrap()
        })
        .collect()
}

/// Compile `model` as each of `places` says, execute each, and compare with the reference
/// interpreter and with tract; returns the chips each used.
fn agrees(model: &str, bucket: Option<u64>, places: &[Option<PlaceOptions>]) -> Vec<u32> {
    let opts = with_weights(model, bucket);
    let mut chips = Vec::new();
    let mut references: Option<(Vec<Tensor>, Vec<Tensor>, Vec<Tensor>)> = None;
    for place in places {
        let a = compile_placed(&opts, place.as_ref()).unwrap();
        assert!(lpuc_emulator::emulate_artifact(&a).is_ok());
        let (inputs, interpreted, tract) = references.get_or_insert_with(|| {
            let inputs = inputs_for(&a);
            let interpreted = reference(&opts, &inputs);
            let tract = tract_outputs(&example(model), &a, &inputs);
            (inputs, interpreted, tract)
        });
        let run = lpuc_emulator::execute(&a, inputs).unwrap();
        assert_eq!(run.outputs.len(), interpreted.len());
        assert_eq!(run.outputs.len(), tract.len());
        for (((name, got), want), theirs) in run.outputs.iter().zip(interpreted.iter()).zip(tract.iter()) {
            let excess = values::excess(got, want, 1e-3, 1e-4);
            assert!(
                excess == 0.0,
                "{model} {place:?}: output {name} is off the interpreter by {excess}"
            );
            let excess = values::excess(got, theirs, 1e-3, 1e-4);
            assert!(
                excess == 0.0,
                "{model} {place:?}: output {name} is off tract by {excess}"
            );
        }
        chips.push(a.schedule.chips);
    }
    chips
}

fn on(chips: u32, partition: Partition) -> Option<PlaceOptions> {
    Some(PlaceOptions {
        chips: Some(chips),
        partition,
        ..Default::default()
    })
}

#[test]
fn the_decoder_computes_the_same_on_1_8_and_16_chips() {
    let chips = agrees(
        "llama_prefill.onnx",
        Some(16),
        &[
            None,
            on(8, Partition::Tensor),
            on(8, Partition::Layer),
            on(16, Partition::Hybrid),
        ],
    );
    assert_eq!(chips[..2], [1, 8]);
    assert!(chips[2] > 1 && chips[3] > 1, "{chips:?}");
}

#[test]
fn the_decoder_computes_the_same_on_all_16_chips() {
    // At 256 tokens the hybrid placement uses all 16 chips: two 8-chip stages, split tensor-wise.
    let chips = agrees("llama_prefill.onnx", Some(256), &[on(16, Partition::Hybrid)]);
    assert_eq!(chips, [16]);
}

#[test]
fn the_encoder_computes_the_same_on_1_8_and_16_chips() {
    let chips = agrees(
        "bert_encoder.onnx",
        Some(16),
        &[None, on(8, Partition::Layer), on(16, Partition::Hybrid)],
    );
    assert_eq!(chips[0], 1);
    assert!(chips[1] > 1 && chips[2] > 1, "{chips:?}");
}

#[test]
fn the_cnn_and_gpt2_compute_the_same_when_split() {
    let chips = agrees(
        "resnet_small.onnx",
        None,
        &[None, on(8, Partition::Layer), on(16, Partition::Hybrid)],
    );
    assert!(chips[1] > 1 && chips[2] > 1, "{chips:?}");
    agrees("gpt2_prefill.onnx", Some(16), &[None, on(16, Partition::Hybrid)]);
}

/// `n` float32 weights in [-scale, scale], little-endian, spread by `seed`.
fn seeded_weights(n: usize, seed: u64, scale: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let h = (i as u64).wrapping_mul(2654435761).wrapping_add(seed) % 2001;
            ((h as f32 - 1000.0) / 1000.0 * scale).to_le_bytes()
        })
        .collect()
}

/// A two-matmul MLP (1024 -> 4096 -> 1024, Relu between) with seeded weights, split tensor-wise on
/// 8 chips the Megatron way (columns, then rows and an all-reduce of partial sums), and inputs.
fn split_mlp(test: &str) -> (Artifact, Vec<Tensor>, Vec<Tensor>) {
    let weights = |n: usize, seed: u64| seeded_weights(n, seed, 1.0 / 30.0);
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::P("seq"), D::N(1024)])
        .output("y", F32, &[D::P("seq"), D::N(1024)])
        .raw("w1", F32, &[1024, 4096], weights(1024 * 4096, 1))
        .raw("w2", F32, &[4096, 1024], weights(4096 * 1024, 2))
        .node("up", "MatMul", &["x", "w1"], &["h"])
        .node("act", "Relu", &["h"], &["r"])
        .node("down", "MatMul", &["r", "w2"], &["y"])
        .write(test);
    let opts = CompileOptions {
        embed_weights: true,
        ..options(model, Some(16))
    };
    let a = compile_placed(&opts, on(8, Partition::Tensor).as_ref()).unwrap();
    assert!(
        a.dataflow.steps.contains(&Step::Sum),
        "the row split reduces partial sums"
    );
    let inputs = inputs_for(&a);
    let want = reference(&opts, &inputs);
    assert!(!wrong(&a, &inputs, &want), "the unmutated schedule is right");
    (a, inputs, want)
}

#[test]
fn the_megatron_split_computes_the_same() {
    let (a, _, _) = split_mlp("functional_megatron");
    assert_eq!(a.schedule.chips, 8);
}

/// The MLP of `split_mlp`, smaller (64 -> 896 -> 64 over 50 tokens), on 7 chips of a target
/// with 110 KiB of SRAM (its weights need at least 5), so the hidden layer runs in tiles and its partial sums leave the tiled
/// region reduced tile by tile. Neither axis of the result (50, 64) divides by 7: each chip's
/// reduced slice is a seventh, give or take a row, never a whole copy.
#[test]
fn partial_sums_with_no_axis_dividing_the_group_are_scattered_in_uneven_slices() {
    let weights = |n: usize, seed: u64| seeded_weights(n, seed, 1.0 / 3.0);
    let dir = lpuc_tests::scratch("functional_uneven_scatter");
    let target = dir.join("small.toml");
    let text = lpuc_target::desc::LPU_V1_TOML
        .replace("bytes = 230_686_720", "bytes = 112_640")
        .replace("slice_bytes = 2_621_440", "slice_bytes = 1_280");
    std::fs::write(&target, text).unwrap();
    let model = ModelBuilder::new(17)
        .input("x", F32, &[D::P("seq"), D::N(64)])
        .output("y", F32, &[D::P("seq"), D::N(64)])
        .raw("w1", F32, &[64, 896], weights(64 * 896, 1))
        .raw("w2", F32, &[896, 64], weights(896 * 64, 2))
        .node("up", "MatMul", &["x", "w1"], &["h"])
        .node("act", "Relu", &["h"], &["r"])
        .node("down", "MatMul", &["r", "w2"], &["y"])
        .write("functional_uneven_scatter_model");
    let opts = CompileOptions {
        embed_weights: true,
        target: target.to_str().unwrap().to_string(),
        ..options(model, Some(50))
    };
    let a = compile_placed(&opts, on(7, Partition::Tensor).as_ref()).unwrap();
    assert_eq!(a.schedule.chips, 7);
    assert!(
        !a.report.placement.as_ref().unwrap().tiled.is_empty(),
        "the hidden layer is tiled"
    );
    // Every piece of the reduction is one chip's slice of a tile: at most 8 of 64 columns.
    let pieces: Vec<_> = a
        .schedule
        .buffers
        .iter()
        .filter(|b| b.name.contains("~part"))
        .collect();
    assert!(!pieces.is_empty(), "the partial sums are reduce-scattered");
    for b in &pieces {
        assert!(
            b.shape.last().is_some_and(|&c| c <= 10),
            "{} {:?}",
            b.name,
            b.shape
        );
    }
    let inputs = inputs_for(&a);
    let want = reference(&opts, &inputs);
    assert!(
        !wrong(&a, &inputs, &want),
        "the uneven slices sum to the reference"
    );
}

fn wrong(a: &Artifact, inputs: &[Tensor], want: &[Tensor]) -> bool {
    // Timing-legal mutations: the replay still accepts them.
    assert!(lpuc_emulator::emulate_artifact(a).is_ok());
    match lpuc_emulator::execute(a, inputs) {
        Ok(run) => run
            .outputs
            .iter()
            .zip(want)
            .any(|((_, got), want)| values::excess(got, want, 1e-3, 1e-4) > 0.0),
        Err(_) => true,
    }
}

#[test]
fn a_reduction_missing_a_partial_sum_is_caught_by_the_numbers() {
    let (mut a, inputs, want) = split_mlp("functional_dropped_partial");
    let k = a
        .dataflow
        .steps
        .iter()
        .position(|s| *s == Step::Sum)
        .expect("a tensor split reduces partial sums");
    let reads = &mut a.schedule.instructions[k].reads;
    assert!(reads.len() > 1);
    reads.pop();
    assert!(
        wrong(&a, &inputs, &want),
        "a dropped partial sum must change the outputs"
    );
}

#[test]
fn a_weight_shard_on_the_wrong_chip_is_caught_by_the_numbers() {
    let (mut a, inputs, want) = split_mlp("functional_wrong_shard");
    // Two chips' shards of one weight trade places: every instruction and transfer is as
    // before, so the timing is legal, but each chip now multiplies by the other's columns.
    let d = &a.dataflow;
    let weights: Vec<usize> = (0..d.buffers.len())
        .filter(|&b| a.schedule.buffers[b].kind == lpuc_artifact::BufferKind::Weight)
        .collect();
    let (x, y) = weights
        .iter()
        .flat_map(|&x| weights.iter().map(move |&y| (x, y)))
        .find(|&(x, y)| {
            d.buffers[x].value == d.buffers[y].value
                && d.buffers[x].region != d.buffers[y].region
                && a.schedule.buffers[x].shape == a.schedule.buffers[y].shape
        })
        .expect("a split weight has shards of one shape");
    let rx = a.dataflow.buffers[x].region.clone();
    a.dataflow.buffers[x].region = a.dataflow.buffers[y].region.clone();
    a.dataflow.buffers[y].region = rx;
    assert!(
        wrong(&a, &inputs, &want),
        "swapped shards must change the outputs"
    );
}

#[test]
fn the_cli_executes_an_artifact_and_compares_it_with_onnxruntime() {
    use lpuc_tests::{lpuc, repo_root, scratch};
    let dir = scratch("functional_cli");
    let data = repo_root().join("examples/data/llama_prefill_bucket16");
    let model = example("llama_prefill.onnx");
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let art = dir.join("split");
    let art = art.to_str().unwrap();
    // Split over chips; the expected outputs were computed by onnxruntime.
    let compile = [
        "compile",
        model,
        "--bucket",
        "16",
        "--chips",
        "8",
        "--partition",
        "tensor",
    ];
    assert_eq!(lpuc(&[&compile[..], &["--embed-weights", "-o", art]].concat()), 0);
    assert_eq!(lpuc(&["emulate", art, "--inputs", data, "--expect", data]), 0);
    // What it writes is what it computed: compared exactly.
    let written = dir.join("outputs");
    let written = written.to_str().unwrap();
    assert_eq!(
        lpuc(&["emulate", art, "--inputs", data, "--write-outputs", written]),
        0
    );
    let exact = ["--rtol", "0", "--atol", "0"];
    assert_eq!(
        lpuc(
            &[
                &["emulate", art, "--inputs", data, "--expect", written][..],
                &exact
            ]
            .concat()
        ),
        0
    );
    // Other expectations (the MLP's probabilities for the decoder's logits) fail.
    let mlp = repo_root().join("examples/data/mlp");
    assert_eq!(
        lpuc(&[
            "emulate",
            art,
            "--inputs",
            data,
            "--expect",
            mlp.to_str().unwrap()
        ]),
        1
    );
    // Inputs of the wrong shape are the user's error; an artifact without weights cannot run.
    assert_eq!(lpuc(&["emulate", art, "--inputs", mlp.to_str().unwrap()]), 2);
    let bare = dir.join("bare");
    let bare = bare.to_str().unwrap();
    assert_eq!(lpuc(&[&compile[..], &["-o", bare]].concat()), 0);
    assert_eq!(lpuc(&["emulate", bare, "--inputs", data]), 1);
    // Its weights read back from the model it was compiled from: the same numbers.
    assert_eq!(
        lpuc(&[
            "emulate", bare, "--inputs", data, "--expect", written, "--model", model, "--rtol", "0",
            "--atol", "0"
        ]),
        0
    );
    // Another model is refused.
    let other = example("bert_encoder.onnx");
    assert_eq!(
        lpuc(&[
            "emulate",
            bare,
            "--inputs",
            data,
            "--model",
            other.to_str().unwrap()
        ]),
        2
    );
}

#[test]
fn a_malformed_dataflow_is_an_error_not_a_panic() {
    let opts = with_weights("mlp.onnx", None);
    let a = compile_placed(&opts, None).unwrap();
    let inputs = inputs_for(&a);
    assert!(lpuc_emulator::execute(&a, &inputs).is_ok());
    let malformed = |a: &Artifact| {
        let e = lpuc_emulator::execute(a, &inputs).unwrap_err();
        assert!(matches!(e, lpuc_emulator::FunctionalError::Malformed(_)), "{e}");
    };
    // An op whose declared result is not what its kind makes.
    let mut m = a.clone();
    let out = m.dataflow.ops[0].outputs[0] as usize;
    m.dataflow.values[out].shape.push(3);
    malformed(&m);
    // An absurd shape.
    let mut m = a.clone();
    m.dataflow.values[out].shape = vec![1 << 40, 1 << 40];
    malformed(&m);
    // An instruction naming a buffer that is not there, and a holding outside its value.
    let mut m = a.clone();
    m.schedule.instructions[0].writes[0] = lpuc_artifact::BufferId(u32::MAX);
    malformed(&m);
    let mut m = a.clone();
    m.dataflow.buffers[0].region[0] = [0, u64::MAX];
    malformed(&m);
    // Weights cut short.
    let mut m = a.clone();
    m.weights.as_mut().unwrap().truncate(10);
    malformed(&m);
}
