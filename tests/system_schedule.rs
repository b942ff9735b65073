//! Multi-chip compiles end to end: every example placed onto chips in every partitioning, its
//! fabric schedule (instructions on units, transfers on links) accepted by the independent
//! emulator; a group spanning two nodes exchanging in two levels; tiling in time; determinism;
//! and snapshots of multi-chip schedules and reports (a decoder on 16 chips, split two ways), with
//! their per-token figures and trace checked against the schedule.

use lpuc::driver::compile_placed;
use lpuc::placer::sharding::{shard, BlockContext};
use lpuc::placer::{Partition, PlaceOptions, StagePlan};
use lpuc::scheduler::system::schedule_system;
use lpuc_artifact::text::{report_text, schedule_text};
use lpuc_emulator::{emulate_artifact, emulate_schedule};
use lpuc_target::Target;
use lpuc_tests::{example, options};

const EXAMPLES: [&str; 6] = [
    "gpt2_prefill.onnx",
    "gpt2_decode.onnx",
    "bert_encoder.onnx",
    "llama_prefill.onnx",
    "llama_decode.onnx",
    "resnet_small.onnx",
];

fn on(chips: u32, partition: Partition) -> PlaceOptions {
    PlaceOptions {
        chips: Some(chips),
        partition,
        ..Default::default()
    }
}

#[test]
fn every_example_compiles_onto_chips_and_the_emulator_accepts_it() {
    let target = Target::lpu_v1();
    for model in EXAMPLES {
        for partition in [
            Partition::Layer,
            Partition::Tensor,
            Partition::Hybrid,
            Partition::Auto,
        ] {
            let opts = options(example(model), Some(64));
            let a = compile_placed(&opts, Some(&on(8, partition)))
                .unwrap_or_else(|e| panic!("{model} {partition:?}: {e}"));
            let verdict = emulate_artifact(&a);
            assert!(verdict.is_ok(), "{model} {partition:?}: {:#?}", verdict.faults);
            let p = a
                .report
                .placement
                .as_ref()
                .expect("a placed compile reports its placement");
            assert_eq!(p.chips_used, a.schedule.chips);
            assert_eq!(a.report.chips.len() as u32, a.schedule.chips);
            for c in &a.report.chips {
                assert!(
                    c.high_water_bytes <= target.sram.bytes,
                    "{model}: chip {} over",
                    c.chip
                );
            }
            match partition {
                Partition::Layer => assert!(p.stages.iter().all(|s| s.chips == 1)),
                Partition::Tensor => assert_eq!(p.stages.len(), 1),
                Partition::Hybrid => assert!(p.stages.iter().all(|s| s.chips >= 2)),
                Partition::Auto => {}
            }
            // The critical path runs from cycle 0 to the makespan, across chips and transfers.
            let path = &a.report.critical_path;
            assert_eq!(path.first().map(|s| s.start), Some(0), "{model} {partition:?}");
            assert_eq!(path.last().map(|s| s.end), Some(a.report.makespan_cycles));
            let total: f64 = path.iter().map(|s| s.share).sum();
            assert!(
                (total - 1.0).abs() < 1e-9,
                "{model} {partition:?}: shares sum to {total}"
            );
            // A chip holds only buffers it reads or writes; every transfer moves at least a hop.
            assert!(a.schedule.transfers.iter().all(|t| !t.hops.is_empty()));
        }
    }
}

#[test]
fn a_group_of_two_nodes_gathers_and_reduces_in_two_levels() {
    use lpuc_ir::{BinaryOp, DType, Graph, OpKind, Provenance, TensorType, UnaryOp};
    // A transformer MLP with weights large enough that they must be split 16 ways.
    let mut g = Graph::new("mlp");
    let prov = |n: &str| Provenance {
        node: n.into(),
        op_type: n.into(),
    };
    let x = g.add_input("x", TensorType::new(DType::F32, vec![1, 256, 1024]));
    let w1 = g.add_weight("w1", TensorType::new(DType::F32, vec![1024, 4096]), "w1");
    let w2 = g.add_weight("w2", TensorType::new(DType::F32, vec![4096, 1024]), "w2");
    let h = g.add_op(OpKind::MatMul, vec![x, w1], "h", prov("up")).unwrap();
    let a = g
        .add_op(OpKind::Unary(UnaryOp::Relu), vec![h], "a", prov("act"))
        .unwrap();
    let d = g.add_op(OpKind::MatMul, vec![a, w2], "d", prov("down")).unwrap();
    let y = g
        .add_op(OpKind::Binary(BinaryOp::Add), vec![d, x], "y", prov("residual"))
        .unwrap();
    let z = g
        .add_op(OpKind::Unary(UnaryOp::Tanh), vec![y], "z", prov("out"))
        .unwrap();
    g.add_output(z);
    let target = Target::lpu_v1();
    let ops: Vec<lpuc_ir::OpId> = g.op_ids().collect();
    let outputs = g.outputs().to_vec();
    let bytes = |v: lpuc_ir::ValueId| g.value(v).ty.size_bytes().unwrap();
    let out = |v: lpuc_ir::ValueId| outputs.contains(&v);
    let ctx = BlockContext {
        counted: &|_| true,
        read_outside: &out,
        stored_bytes: &bytes,
        weight_dtype: None,
    };
    let s = shard(&g, &ops, 16, &target, &ctx);
    assert!(
        !s.collectives.is_empty(),
        "a 16-way split needs collectives: {:?}",
        s.choice
    );
    let plan = vec![StagePlan {
        first_chip: 0,
        chips: 16,
        ops: ops.clone(),
        blocks: vec![ops.len()],
        choice: s.choice_index.clone(),
    }];
    let (schedule, _, chips) = schedule_system(&g, &plan, None, &target).unwrap();
    let verdict = emulate_schedule(&schedule, &target);
    assert!(verdict.is_ok(), "{:#?}", verdict.faults);
    assert_eq!(chips.len(), 16);
    // Some hops leave a node, and none carries a piece between two chips of different nodes
    // other than through the nodes' one global link.
    let crossing = schedule
        .transfers
        .iter()
        .flat_map(|t| &t.hops)
        .filter(|h| h.from_chip / 8 != h.to_chip / 8)
        .count();
    assert!(crossing > 0);
    // Two levels: far fewer transfers than every chip sending a piece to every other chip for
    // each collective.
    let collectives: u64 = s.collectives.values().sum();
    assert!(
        (schedule.transfers.len() as u64) < collectives * 16 * 15,
        "{}",
        schedule.transfers.len()
    );
}

#[test]
fn a_gather_over_two_nodes_crosses_each_global_link_once() {
    use lpuc::placer::sharding::strategies::strategies_at;
    use lpuc_ir::{DType, Graph, OpKind, Provenance, TensorType, UnaryOp};
    // Relu split by rows over 16 chips, then a matmul split by columns, which needs its input
    // whole on every chip: an all-gather over two nodes.
    let mut g = Graph::new("gather");
    let prov = |n: &str| Provenance {
        node: n.into(),
        op_type: n.into(),
    };
    let x = g.add_input("x", TensorType::new(DType::F32, vec![1, 256, 1024]));
    let w = g.add_weight("w", TensorType::new(DType::F32, vec![1024, 1024]), "w");
    let a = g
        .add_op(OpKind::Unary(UnaryOp::Relu), vec![x], "a", prov("act"))
        .unwrap();
    let y = g.add_op(OpKind::MatMul, vec![a, w], "y", prov("proj")).unwrap();
    g.add_output(y);
    let ops: Vec<lpuc_ir::OpId> = g.op_ids().collect();
    let pick = |o: lpuc_ir::OpId, name: &str| {
        strategies_at(&g, o, 16, None)
            .iter()
            .position(|s| s.name == name)
            .unwrap()
    };
    let plan = vec![StagePlan {
        first_chip: 0,
        chips: 16,
        ops: ops.clone(),
        blocks: vec![ops.len()],
        choice: vec![pick(ops[0], "S1"), pick(ops[1], "S2")],
    }];
    let target = Target::lpu_v1();
    let (schedule, _, _) = schedule_system(&g, &plan, None, &target).unwrap();
    let verdict = emulate_schedule(&schedule, &target);
    assert!(verdict.is_ok(), "{:#?}", verdict.faults);
    // By gateways: node 1's block crosses to node 0 once and node 0's to node 1 once, each half
    // the value; sent directly, 8 x 8 pieces would cross each way.
    let crossing: Vec<&lpuc_artifact::Transfer> = schedule
        .transfers
        .iter()
        .filter(|t| t.hops.iter().any(|h| h.from_chip / 8 != h.to_chip / 8))
        .collect();
    assert_eq!(crossing.len(), 2, "{crossing:#?}");
    let whole = 256 * 1024 * 4;
    assert!(crossing.iter().all(|t| t.bytes == whole / 2 && t.hops.len() == 1));
}

#[test]
fn tiles_in_time_let_a_long_sequence_fit_one_chip() {
    // Attention's 4 x 8192 x 8192 float32 scores (1 GiB) on one chip of 220 MiB: only tiled.
    let a = compile_placed(&options(example("transformer_block.onnx"), Some(8192)), None).unwrap();
    let verdict = emulate_artifact(&a);
    assert!(verdict.is_ok(), "{:#?}", verdict.faults);
    assert_eq!(a.schedule.chips, 1);
    let softmaxes = a
        .schedule
        .instructions
        .iter()
        .filter(|i| i.op == "Softmax")
        .count();
    assert!(softmaxes > 1, "the softmax runs as {softmaxes} tile(s)");
    assert!(a.report.sram.peak_bytes <= a.report.sram.capacity_bytes);
    // Tiles wait for the tile two before them, an order the artifact does not record: the
    // critical path still runs back to cycle 0 through it.
    let path = &a.report.critical_path;
    assert_eq!(path.first().map(|s| s.start), Some(0));
    let total: f64 = path.iter().map(|s| s.share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
}

#[test]
fn a_multi_chip_compile_is_deterministic() {
    let opts = options(example("llama_prefill.onnx"), Some(64));
    let a = compile_placed(&opts, Some(&on(8, Partition::Auto))).unwrap();
    let b = compile_placed(&opts, Some(&on(8, Partition::Auto))).unwrap();
    assert_eq!(a.schedule, b.schedule);
    assert_eq!(report_text(&a.report), report_text(&b.report));
}

#[test]
fn a_multi_chip_report_reads_as_expected() {
    let opts = options(example("gpt2_prefill.onnx"), Some(32));
    let a = compile_placed(&opts, Some(&on(4, Partition::Hybrid))).unwrap();
    insta::assert_snapshot!(report_text(&a.report));
}

/// The committed two-layer decoder, a 256-token prefill, given 16 chips (two nodes): split
/// tensor-wise (the placer keeps the group inside one node, where links are direct) and
/// layer-wise.
fn decoder_on_16(partition: Partition) -> lpuc_artifact::Artifact {
    let opts = options(example("llama_prefill.onnx"), Some(256));
    compile_placed(&opts, Some(&on(16, partition))).unwrap()
}

#[test]
fn a_decoder_on_16_chips_reads_as_expected() {
    for (name, partition) in [("tensor", Partition::Tensor), ("layer", Partition::Layer)] {
        let a = decoder_on_16(partition);
        let verdict = emulate_artifact(&a);
        assert!(verdict.is_ok(), "{name}: {:#?}", verdict.faults);
        insta::assert_snapshot!(format!("decoder_16_{name}_schedule"), schedule_text(&a.schedule));
        insta::assert_snapshot!(format!("decoder_16_{name}_report"), report_text(&a.report));
    }
}

#[test]
fn the_per_token_report_and_the_trace_agree_with_the_schedule() {
    let a = decoder_on_16(Partition::Tensor);
    let t = &a.report.per_token;
    assert_eq!(t.phase, "prefill");
    assert_eq!(t.tokens_per_step, Some(256));
    assert_eq!(a.schedule.chips, 8, "the tensor split stays in one node");
    assert_eq!(t.latency_cycles, a.schedule.makespan_cycles);
    assert_eq!(t.transfers.len(), a.schedule.transfers.len());
    let bytes: u64 = a.schedule.transfers.iter().map(|x| x.bytes).sum();
    assert_eq!(t.total_bytes, bytes);
    // Transfers flagged critical are exactly the critical path's transfer steps.
    let on_path: Vec<u32> = a
        .report
        .critical_path
        .iter()
        .filter(|s| s.kind == lpuc_artifact::StepKind::Transfer)
        .map(|s| s.id)
        .collect();
    let flagged: Vec<u32> = t.transfers.iter().filter(|x| x.critical).map(|x| x.id).collect();
    assert_eq!(on_path, flagged);
    // Hops leaving a node on the path, recounted from the routes.
    let target = Target::lpu_v1();
    let cross_node: u64 = a
        .report
        .critical_path
        .iter()
        .flat_map(|s| s.route.windows(2))
        .filter(|w| target.locate(w[0]).node != target.locate(w[1]).node)
        .count() as u64;
    assert_eq!(t.critical_cross_node_hops, cross_node);
    assert!(t.critical_transfers > 0, "the split exchanges on the path");
    let split = &a.report.critical_split;
    assert_eq!(
        split.compute_cycles + split.communication_cycles + split.waiting_cycles,
        a.report.makespan_cycles
    );
    assert!(split.communication_cycles > 0);
    // Per chip and per link utilization account for every instruction and every hop.
    let occupancy: u64 = a.schedule.instructions.iter().map(|i| i.occupancy).sum();
    assert_eq!(
        a.report.chips.iter().map(|c| c.busy_cycles).sum::<u64>(),
        occupancy
    );
    assert!(a
        .report
        .chips
        .iter()
        .all(|c| c.unit_utilization > 0.0 && c.unit_utilization <= 1.0));
    let hop_cycles: u64 = a
        .schedule
        .transfers
        .iter()
        .flat_map(|x| &x.hops)
        .map(|h| h.end - h.start)
        .sum();
    assert_eq!(
        a.report.links.iter().map(|l| l.busy_cycles).sum::<u64>(),
        hop_cycles
    );
    // trace.json: one complete event per instruction and per hop, each on a named chip process.
    let trace: serde_json::Value =
        serde_json::from_str(&lpuc_artifact::trace::chrome_trace(&a.schedule, &a.report)).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let complete = events.iter().filter(|e| e["ph"] == "X").count();
    let hops: usize = a.schedule.transfers.iter().map(|x| x.hops.len()).sum();
    assert_eq!(complete, a.schedule.instructions.len() + hops);
    let critical = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["args"]["critical"] == true)
        .count();
    assert!(critical >= a.report.critical_path.len());
    let processes = events.iter().filter(|e| e["name"] == "process_name").count();
    assert_eq!(processes, 8);
}

/// The decoder's grouped attention (4 query heads on 2 key/value heads): on 16 chips the placer
/// is offered the forms that broadcast keys and values, takes one when it places better, says so,
/// and the emulator accepts it; `--no-rewrite` places the graph as it is.
#[test]
fn grouped_attention_is_a_form_the_placer_chooses_and_no_rewrite_turns_off() {
    let opts = options(example("llama_prefill.onnx"), Some(256));
    let with = compile_placed(&opts, Some(&on(16, Partition::Tensor))).unwrap();
    let method = &with.report.placement.as_ref().unwrap().method;
    assert!(
        method.contains("placed best") && method.contains("broadcast-repeated-heads"),
        "{method}"
    );
    assert_eq!(
        with.report
            .rewrites
            .as_ref()
            .and_then(|r| r.fired.get("broadcast-repeated-heads")),
        Some(&2)
    );
    assert!(emulate_artifact(&with).is_ok());
    // The broadcast form copies no head: no Expand is scheduled.
    assert!(with.schedule.instructions.iter().all(|i| i.op != "Expand"));
    let plain_opts = lpuc::driver::CompileOptions {
        rewrite: false,
        embed_weights: false,
        ..opts
    };
    let without = compile_placed(&plain_opts, Some(&on(16, Partition::Tensor))).unwrap();
    let method = &without.report.placement.as_ref().unwrap().method;
    assert!(!method.contains("forms of the graph"), "{method}");
    assert!(without.report.rewrites.is_none());
    assert!(without.schedule.instructions.iter().any(|i| i.op == "Expand"));
    assert_eq!(
        without.manifest.options.get("rewrite").map(String::as_str),
        Some("off")
    );
    // It was chosen because it is faster here.
    assert!(with.report.makespan_cycles < without.report.makespan_cycles);
}
