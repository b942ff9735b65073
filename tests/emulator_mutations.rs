//! The emulator catches every broken rule in an otherwise valid artifact, and names the exact fault:
//! the kind, the cycle, the unit and the instructions involved.

use lpuc::driver::{compile, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc_artifact::{Artifact, BufferKind, InstrId};
use lpuc_emulator::{emulate_artifact, FaultKind};
use lpuc_tests::example;

fn valid() -> Artifact {
    let a = compile(&CompileOptions {
        model: example("transformer_block.onnx"),
        binder: DimBinder {
            bucket: Some(256),
            ..Default::default()
        },
        target: "lpu-v1".into(),
    })
    .unwrap();
    assert!(emulate_artifact(&a).is_ok());
    a
}

fn kinds(a: &Artifact) -> Vec<FaultKind> {
    emulate_artifact(a).faults.iter().map(|f| f.kind).collect()
}

#[test]
fn an_instruction_moved_before_its_input_is_ready() {
    let mut a = valid();
    let s = &a.schedule;
    // An instruction that reads a computed buffer, and that buffer's writer.
    let (reader, writer) = s
        .instructions
        .iter()
        .find_map(|i| {
            i.reads.iter().find_map(|b| {
                s.instructions
                    .iter()
                    .find(|w| w.writes.contains(b))
                    .map(|w| (i.id, w.id))
            })
        })
        .unwrap();
    let ready = s.instructions[writer.0 as usize].done_cycle();
    a.schedule.instructions[reader.0 as usize].start = ready - 1;
    let v = emulate_artifact(&a);
    let dep = v
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::DependencyNotReady)
        .expect("dependency fault");
    assert_eq!(dep.cycle, ready - 1);
    assert_eq!(dep.instructions, vec![writer, reader]);
    assert_eq!(dep.unit, Some(a.schedule.instructions[reader.0 as usize].unit));
}

#[test]
fn two_instructions_on_one_unit_at_once() {
    let mut a = valid();
    let s = &a.schedule;
    let (first, second) = s
        .instructions
        .iter()
        .find_map(|x| {
            s.instructions
                .iter()
                .find(|y| {
                    y.id > x.id
                        && y.unit.kind == x.unit.kind
                        && y.unit != x.unit
                        && y.start >= x.start
                        && y.start < x.busy_until()
                })
                .map(|y| (x.id, y.id))
        })
        .expect("two overlapping instructions on units of one kind");
    let unit = s.instructions[first.0 as usize].unit;
    let at = s.instructions[second.0 as usize].start;
    a.schedule.instructions[second.0 as usize].unit = unit;
    let v = emulate_artifact(&a);
    assert_eq!(v.faults.len(), 1, "{:#?}", v.faults);
    let f = &v.faults[0];
    assert_eq!(
        (f.kind, f.cycle, f.unit),
        (FaultKind::UnitConflict, at, Some(unit))
    );
    assert_eq!(f.instructions, vec![first, second]);
}

#[test]
fn overlapping_sram_ranges() {
    let mut a = valid();
    let weights: Vec<usize> = a
        .schedule
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.kind == BufferKind::Weight)
        .map(|(i, _)| i)
        .take(2)
        .collect();
    let offset = a.schedule.buffers[weights[0]].offset;
    a.schedule.buffers[weights[1]].offset = offset + 4;
    let v = emulate_artifact(&a);
    assert_eq!(v.faults.len(), 1, "{:#?}", v.faults);
    assert_eq!(v.faults[0].kind, FaultKind::SramOverlap);
    assert_eq!(v.faults[0].cycle, 0);
    assert!(v.faults[0].message.contains(&a.schedule.buffers[weights[0]].name));

    // An activation placed over a live weight is caught at its writer's issue cycle.
    let mut b = valid();
    let act = b
        .schedule
        .buffers
        .iter()
        .position(|x| x.kind == BufferKind::Activation)
        .unwrap();
    let writer = b
        .schedule
        .instructions
        .iter()
        .find(|i| i.writes.contains(&b.schedule.buffers[act].id))
        .unwrap();
    let (wid, wstart) = (writer.id, writer.start);
    b.schedule.buffers[act].offset = b.schedule.buffers[weights[0]].offset;
    let v = emulate_artifact(&b);
    let f = v
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::SramOverlap)
        .expect("overlap");
    assert_eq!((f.cycle, f.instructions.clone()), (wstart, vec![wid]));
}

#[test]
fn a_buffer_beyond_sram_and_too_little_sram() {
    let mut a = valid();
    let cap = a.schedule.sram_capacity_bytes;
    a.schedule.buffers[0].offset = cap - 1;
    assert!(kinds(&a).contains(&FaultKind::SramOutOfRange));

    let b = valid();
    let mut small = lpuc_target::Target::lpu_v1();
    small.sram.bytes = b.report.sram.peak_bytes - 1;
    let mut s = b.schedule.clone();
    s.sram_capacity_bytes = small.sram.bytes;
    let v = lpuc_emulator::emulate_schedule(&s, &small);
    assert!(
        v.faults.iter().any(|f| f.kind == FaultKind::SramOverCapacity),
        "{:#?}",
        v.faults
    );
}

#[test]
fn a_wrong_makespan() {
    let mut a = valid();
    a.schedule.makespan_cycles += 1;
    assert_eq!(kinds(&a), vec![FaultKind::MakespanMismatch]);
}

#[test]
fn a_shrunk_duration_and_a_false_report() {
    let mut a = valid();
    a.schedule.instructions[3].occupancy -= 1;
    let v = emulate_artifact(&a);
    assert_eq!(v.faults.len(), 1);
    assert_eq!(v.faults[0].kind, FaultKind::CostMismatch);
    assert_eq!(v.faults[0].instructions, vec![InstrId(3)]);

    let mut b = valid();
    b.report.sram.peak_bytes -= 320;
    assert_eq!(kinds(&b), vec![FaultKind::ReportMismatch]);
}

#[test]
fn a_unit_the_chip_does_not_have() {
    let mut a = valid();
    a.schedule.instructions[0].unit = "MXM9".parse().unwrap();
    assert!(kinds(&a).contains(&FaultKind::BadUnit));
    let mut b = valid();
    let sxm = b
        .schedule
        .instructions
        .iter()
        .position(|i| i.unit.kind == lpuc_target::UnitKind::Sxm)
        .unwrap();
    b.schedule.instructions[sxm].unit = "MXM3".parse().unwrap();
    assert!(kinds(&b).contains(&FaultKind::BadUnit));
}

#[test]
fn a_target_description_the_manifest_does_not_pin() {
    let mut a = valid();
    a.target_toml = a
        .target_toml
        .replace("pipeline_cycles = 16", "pipeline_cycles = 17");
    let v = emulate_artifact(&a);
    assert!(v
        .faults
        .iter()
        .any(|f| f.kind == FaultKind::Malformed && f.message.contains("target_sha256")));
}

#[test]
fn a_buffer_written_twice_is_malformed() {
    let mut a = valid();
    let w = a.schedule.instructions[1].writes[0];
    a.schedule.instructions[2].writes.push(w);
    assert_eq!(kinds(&a), vec![FaultKind::Malformed]);
}
