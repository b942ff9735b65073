//! Property: any valid graph built from the supported ops schedules, the independent emulator
//! accepts the schedule, its makespan and its report, and executing it on random values gives
//! what the reference interpreter computes.

use lpuc::scheduler::{report::build_report, schedule_graph};
use lpuc_artifact::{Artifact, Manifest};
use lpuc_target::Target;
use proptest::prelude::*;

#[path = "graph_gen.rs"]
mod graph_gen;
#[path = "values.rs"]
mod values;
use graph_gen::{build, step};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_valid_graph_yields_a_schedule_the_emulator_accepts(
        rows in prop_oneof![Just(1u64), Just(7), Just(64), Just(333)],
        cols in prop_oneof![Just(16u64), Just(128), Just(320)],
        steps in proptest::collection::vec(step(), 1..24),
    ) {
        let g = build(rows, cols, &steps);
        prop_assert!(lpuc_ir::verify(&g).is_ok());
        let g = lpuc::passes::run_passes(g).unwrap();
        let target = Target::lpu_v1();
        let (schedule, sram) = schedule_graph(&g, &target).unwrap();
        let report = build_report(
            &schedule,
            &target,
            sram,
            &lpuc::scheduler::per_token::StepInfo {
                phase: "prefill".into(),
                tokens_per_step: None,
                streams: 1,
            },
        );
        let artifact = Artifact {
            manifest: Manifest {
                format_version: 1,
                compiler: "lpuc".into(),
                compiler_version: "test".into(),
                target: target.name.clone(),
                target_sha256: lpuc_artifact::digest::sha256_hex(lpuc_target::desc::LPU_V1_TOML.as_bytes()),
                model_file: "random".into(),
                model_sha256: String::new(),
                bucket: None,
                bound_dims: Default::default(),
                options: Default::default(),
            },
            dataflow: lpuc::scheduler::dataflow::single_chip(&g, &schedule),
            weights: None,
            schedule,
            report,
            target_toml: lpuc_target::desc::LPU_V1_TOML.to_string(),
        };
        let verdict = lpuc_emulator::emulate_artifact(&artifact);
        prop_assert!(verdict.is_ok(), "{:#?}", verdict.faults);
        prop_assert_eq!(verdict.stats.instructions as usize, g.num_ops());
        // The numbers: the schedule executed, against the interpreter of the graph.
        let mut artifact = artifact;
        let fed = values::random_values(&g, &mut artifact.dataflow, rows * 131 + cols);
        artifact.weights = Some(fed.blob.clone());
        let run = lpuc_emulator::execute(&artifact, &fed.inputs).unwrap();
        let reference = lpuc_ir::interp::evaluate_rounded(&g, &fed.feeds).unwrap();
        for ((name, got), want) in run.outputs.iter().zip(&reference) {
            // Both round every result to its dtype; one chip computes exactly the same.
            prop_assert!(values::excess(got, want, 0.0, 0.0) == 0.0, "{name}: {:?} vs {:?}", &got.data[..4.min(got.data.len())], &want.data[..4.min(want.data.len())]);
        }
    }
}
