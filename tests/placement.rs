//! Layer-wise placement: stages are contiguous, cover every op once and fit their chips' SRAM; the
//! 70B-shaped decoder places across racks only when allowed; too few chips is an error naming the
//! minimum; and the dynamic program is never beaten by any other partition of random chains.

use lpuc::driver::place;
use lpuc::placer::blocks::Block;
use lpuc::placer::pipeline::{best_partition, brute_force, Goal, StageCosts};
use lpuc::placer::{Partition, PlaceError, PlaceOptions, Placement};
use lpuc_examples::catalog::preset;
use lpuc_examples::nn::Variant;
use lpuc_examples::standalone::{write_model, Weights};
use lpuc_target::Target;
use lpuc_tests::{example, scratch};
use proptest::prelude::*;

fn assert_sound(p: &Placement, ops: usize) {
    assert_sound_on(p, ops, &Target::lpu_v1());
}

fn assert_sound_on(p: &Placement, ops: usize, t: &Target) {
    assert_eq!(
        p.stages.iter().map(|s| s.ops).sum::<usize>(),
        ops,
        "every op placed once"
    );
    let mut next = 0;
    for s in &p.stages {
        assert_eq!(s.first_chip, next, "stages take consecutive chips");
        next += s.chips;
        assert!(s.sram_bytes_per_chip <= t.sram.bytes, "{s:?}");
    }
    assert_eq!(next, p.chips_used);
}

#[test]
fn gpt2_pipelines_over_the_chips_it_is_given() {
    let opts = lpuc_tests::options(example("gpt2_prefill.onnx"), Some(2048));
    let ops = lpuc::driver::lower_to(&opts, lpuc::driver::Stage::Passes)
        .unwrap()
        .num_ops();
    let (one, _) = place(&opts, &PlaceOptions::default()).unwrap();
    assert_eq!(one.chips_used, 1, "the fewest chips that fit by default");
    assert_sound(&one, ops);
    let four_chips = |partition| PlaceOptions {
        chips: Some(4),
        partition,
        ..Default::default()
    };
    // Layer-wise: a pipeline of single chips, cut at layer boundaries.
    let (layer, _) = place(&opts, &four_chips(Partition::Layer)).unwrap();
    assert_sound(&layer, ops);
    assert!(layer.stages.len() > 1 && layer.bottleneck_cycles < one.bottleneck_cycles);
    assert!(layer.stages.iter().all(|s| s.chips == 1));
    assert!(layer
        .stages
        .iter()
        .any(|s| s.blocks.0.starts_with("h.0") || s.blocks.1.starts_with("h.0")));
    // Tensor-wise: one stage, its ops split over all four chips.
    let (tensor, _) = place(&opts, &four_chips(Partition::Tensor)).unwrap();
    assert_sound(&tensor, ops);
    assert_eq!((tensor.stages.len(), tensor.stages[0].chips), (1, 4));
    assert_eq!(tensor.stages[0].sharding, "ilp");
    assert!(tensor.bottleneck_cycles < one.bottleneck_cycles);
    // Auto searches both and their mixes, so it is never slower than either.
    let (auto, _) = place(&opts, &four_chips(Partition::Auto)).unwrap();
    assert_sound(&auto, ops);
    assert!(auto.bottleneck_cycles <= layer.bottleneck_cycles.min(tensor.bottleneck_cycles));
    // Hybrid: every stage a split group.
    let (hybrid, _) = place(&opts, &four_chips(Partition::Hybrid)).unwrap();
    assert!(hybrid.stages.iter().all(|s| s.chips >= 2));
}

#[test]
fn the_70b_shaped_decoder_places_across_racks_only_when_allowed() {
    let dir = scratch("placement_70b");
    let config = preset("llama", "llama2-70b").unwrap();
    let written = write_model(
        &config,
        Variant::Decode,
        Weights::ExternalSparse,
        &dir,
        "decode.onnx",
    )
    .unwrap();
    let mut opts = lpuc_tests::options(written.model_path.clone(), Some(4095));
    opts.binder.decode = true;
    let int8 = PlaceOptions {
        weight_dtype: Some(lpuc_ir::DType::I8),
        allow_cross_rack: true,
        ..Default::default()
    };
    let (p, _) = place(&opts, &int8).unwrap();
    assert!(
        p.chips_used <= 576 && p.racks > 1,
        "{} chips, {} racks",
        p.chips_used,
        p.racks
    );
    assert!(
        p.stages.iter().all(|s| s.chips == 1 || s.sharding != "single"),
        "split stages say how they were split"
    );
    let no_cross = PlaceOptions {
        allow_cross_rack: false,
        ..int8.clone()
    };
    match place(&opts, &no_cross) {
        Err(lpuc::driver::CompileError::Placement(PlaceError::CrossRack { racks, .. })) => {
            assert_eq!(racks, p.racks)
        }
        other => panic!("expected a cross-rack error, got {other:?}"),
    }
    let fp16 = PlaceOptions {
        chips: Some(576),
        weight_dtype: Some(lpuc_ir::DType::F16),
        allow_cross_rack: true,
        ..Default::default()
    };
    match place(&opts, &fp16) {
        Err(lpuc::driver::CompileError::Placement(PlaceError::TooFewChips { min_chips, chips, .. })) => {
            assert_eq!(chips, 576);
            assert!(min_chips > 576, "{min_chips}");
        }
        other => panic!("expected too few chips, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_70b_prefill_places_on_576_chips_at_1024_and_4096_tokens() {
    let dir = scratch("placement_prefill");
    let int8 = PlaceOptions {
        weight_dtype: Some(lpuc_ir::DType::I8),
        allow_cross_rack: true,
        ..Default::default()
    };
    let config = preset("llama", "llama2-70b").unwrap();
    let written = write_model(
        &config,
        Variant::Prefill,
        Weights::ExternalSparse,
        &dir,
        "p70.onnx",
    )
    .unwrap();
    // 1024 tokens, int8 weights, float32 activations: attention's 64 x 1024 x 1024 scores run in
    // tiles, and the model fits 576 chips (7 racks).
    let at_1024 = lpuc_tests::options(written.model_path.clone(), Some(1024));
    let on_576 = PlaceOptions {
        chips: Some(576),
        ..int8.clone()
    };
    let (p, _) = place(&at_1024, &on_576).unwrap();
    assert!(
        p.chips_used <= 576 && p.racks > 1,
        "{} chips, {} racks",
        p.chips_used,
        p.racks
    );
    assert!(p
        .tiled
        .iter()
        .any(|t| t.op == "Softmax" && t.tile_bytes < t.working_bytes));
    // fp16 weights do not fit 576: the error gives the fewest chips that would.
    let fp16 = PlaceOptions {
        weight_dtype: Some(lpuc_ir::DType::F16),
        ..on_576.clone()
    };
    match place(&at_1024, &fp16) {
        Err(lpuc::driver::CompileError::Placement(PlaceError::TooFewChips { min_chips, chips, .. })) => {
            assert_eq!(chips, 576);
            assert!(min_chips > 576, "{min_chips}");
        }
        other => panic!("expected too few chips, got {other:?}"),
    }
    // Without --allow-cross-rack it says how many racks it needs.
    let in_rack = PlaceOptions {
        allow_cross_rack: false,
        ..on_576.clone()
    };
    match place(&at_1024, &in_rack) {
        Err(lpuc::driver::CompileError::Placement(PlaceError::CrossRack {
            racks,
            chips,
            per_rack,
        })) => {
            // The fewest chips of a buildable placement: more than a rack holds, no more than the
            // fastest placement on 576 uses.
            assert!(chips > per_rack && chips <= p.chips_used, "{chips} chips");
            assert_eq!(racks, chips.div_ceil(per_rack));
        }
        other => panic!("expected a cross-rack error, got {other:?}"),
    }
    // 4096 tokens: a layer's float32 activations fill 8 chips beside its weights, so 576 chips
    // need stages of 16 holding 2.5 layers (the form with attention in 16 groups, one key and
    // value head a chip), every chip under its SRAM less the reserve, in 8 racks.
    let at_4096 = lpuc_tests::options(written.model_path, Some(4096));
    let (p, _) = place(&at_4096, &on_576).unwrap();
    assert!(
        p.chips_used <= 576 && p.racks <= 8,
        "{} chips, {} racks",
        p.chips_used,
        p.racks
    );
    assert!(p.stages.iter().any(|s| s.chips == 16 && s.block_count == 5));
    let usable = lpuc::placer::pipeline::usable_sram(&Target::lpu_v1());
    assert!(p.stages.iter().all(|s| s.sram_bytes_per_chip <= usable));
    // With fp16 weights the model does not fit 576 chips: the error gives the bytes needed and
    // the fewest chips that would do.
    let fp16_4096 = PlaceOptions {
        weight_dtype: Some(lpuc_ir::DType::F16),
        ..on_576.clone()
    };
    match place(&at_4096, &fp16_4096) {
        Err(lpuc::driver::CompileError::Placement(PlaceError::TooFewChips { min_chips, chips, .. })) => {
            assert_eq!(chips, 576);
            assert!(min_chips > 576, "{min_chips}");
        }
        other => panic!("expected too few chips, got {other:?}"),
    }
    // 7B-shaped, fp16 weights, 512 tokens: one rack, so no hop of the critical path leaves it.
    let config = preset("llama", "llama2-7b").unwrap();
    let written = write_model(
        &config,
        Variant::Prefill,
        Weights::ExternalSparse,
        &dir,
        "p7.onnx",
    )
    .unwrap();
    let opts = lpuc_tests::options(written.model_path, Some(512));
    let fp16 = PlaceOptions {
        weight_dtype: Some(lpuc_ir::DType::F16),
        ..Default::default()
    };
    let (p, _) = place(&opts, &fp16).unwrap();
    assert_eq!((p.racks, p.failure_domains.racks.as_slice()), (1, &[0u32][..]));
    assert!(p.chips_used <= 72);
    let _ = std::fs::remove_dir_all(&dir);
}

fn chain() -> impl Strategy<Value = Vec<Block>> {
    let cap = Target::lpu_v1().sram.bytes;
    proptest::collection::vec(
        (1u64..100_000, 0u64..2 * cap, 0u64..cap / 4, 0u64..10_000_000),
        1..7,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(compute, weights, act, cut)| Block {
                activation_bytes: act,
                ..Block::by_hand("b", compute, weights, cut)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// The ILP (good_lp + microlp) reaches the dynamic program's bottleneck on every small chain.
    #[test]
    fn the_ilp_agrees_with_the_dynamic_program(blocks in chain(), chips in 1u32..16) {
        let t = Target::lpu_v1();
        let costs = StageCosts::new(&blocks, &t).without_distance();
        let neck = |s: Vec<lpuc::placer::pipeline::StageCut>| s.iter().map(|x| x.cycles).max();
        let dp = best_partition(&costs, chips, Goal::Fastest).map(neck);
        let ilp = lpuc::placer::ilp::solve(&costs, blocks.len(), chips).map(neck);
        prop_assert_eq!(ilp, dp);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// No contiguous partition and choice of group sizes within the chip budget has a smaller
    /// bottleneck than the DP's, and every stage of the DP's fits its chips.
    #[test]
    fn the_dynamic_program_is_never_beaten(blocks in chain(), chips in 1u32..24) {
        let t = Target::lpu_v1();
        let costs = StageCosts::new(&blocks, &t);
        let dp = best_partition(&costs, chips, Goal::Fastest);
        let best = brute_force(&costs, blocks.len(), chips).map(|(neck, _, _)| neck);
        match dp {
            None => prop_assert!(best.is_none()),
            Some(stages) => {
                prop_assert_eq!(Some(stages.iter().map(|s| s.cycles).max().unwrap()), best);
                for s in &stages {
                    prop_assert!(s.bytes <= u64::from(s.chips) * t.sram.bytes);
                }
            }
        }
    }
}

#[path = "graph_gen.rs"]
mod graph_gen;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Tensor-wise sharding of a random graph as one block: the chosen split is never worse than
    /// the heuristic's, every op gets a strategy, and a chip's resident bytes shrink with the group.
    #[test]
    fn the_sharding_ilp_is_never_worse_than_the_heuristic(
        rows in prop_oneof![Just(1u64), Just(8), Just(64), Just(96)],
        cols in prop_oneof![Just(16u64), Just(128), Just(320)],
        steps in proptest::collection::vec(graph_gen::step(), 1..20),
        ways in prop_oneof![Just(2u64), Just(4), Just(8)],
    ) {
        let g = lpuc::passes::run_passes(graph_gen::build(rows, cols, &steps)).unwrap();
        let t = Target::lpu_v1();
        let ops: Vec<lpuc_ir::OpId> = g.op_ids().collect();
        let outputs = g.outputs().to_vec();
        let bytes = |v: lpuc_ir::ValueId| g.value(v).ty.size_bytes().unwrap();
        let out = |v: lpuc_ir::ValueId| outputs.contains(&v);
        let ctx = lpuc::placer::sharding::BlockContext {
            counted: &|_| true,
            read_outside: &out,
            stored_bytes: &bytes,
            weight_dtype: None,
        };
        let split = lpuc::placer::sharding::shard(&g, &ops, ways, &t, &ctx);
        let whole = lpuc::placer::sharding::shard(&g, &ops, 1, &t, &ctx);
        prop_assert_eq!(split.choice.len(), ops.len());
        prop_assert!(split.cycles <= split.heuristic_cycles, "{} > {}", split.cycles, split.heuristic_cycles);
        prop_assert!(split.bytes_per_chip <= whole.bytes_per_chip + (1 << 20));
        prop_assert!(whole.collectives.is_empty());
    }

    /// Placing a random graph on chips with a small SRAM: every op is placed exactly once, stages
    /// are contiguous on consecutive chips, and no chip is over capacity.
    #[test]
    fn random_graphs_place_soundly(
        rows in prop_oneof![Just(8u64), Just(64), Just(96)],
        cols in prop_oneof![Just(128u64), Just(320)],
        steps in proptest::collection::vec(graph_gen::step(), 1..16),
        chips in 1u32..12,
        sram_kib in prop_oneof![Just(256u64), Just(1024), Just(8192)],
        partition in prop_oneof![Just(Partition::Auto), Just(Partition::Layer), Just(Partition::Tensor), Just(Partition::Hybrid)],
    ) {
        let g = lpuc::passes::run_passes(graph_gen::build(rows, cols, &steps)).unwrap();
        let mut t = Target::lpu_v1();
        t.sram.bytes = sram_kib << 10;
        let opts = PlaceOptions { chips: Some(chips), partition, ..Default::default() };
        match lpuc::placer::place(&g, &t, &opts) {
            Ok(p) => {
                assert_sound_on(&p, g.num_ops(), &t);
                prop_assert!(p.chips_used <= chips);
                match partition {
                    Partition::Layer => prop_assert!(p.stages.iter().all(|s| s.chips == 1)),
                    Partition::Tensor => prop_assert_eq!(p.stages.len(), 1),
                    Partition::Hybrid => prop_assert!(p.stages.iter().all(|s| s.chips >= 2)),
                    Partition::Auto => {}
                }
            }
            Err(PlaceError::TooFewChips { min_chips, .. }) => prop_assert!(min_chips > chips || partition != Partition::Auto),
            // With a tiny SRAM a block may not fit even the largest group; the error must be true.
            Err(PlaceError::BlockTooLarge { bytes_per_chip, usable_bytes, .. }) => {
                prop_assert!(bytes_per_chip > usable_bytes, "{} <= {}", bytes_per_chip, usable_bytes)
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
