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
        rewrite: true,
        embed_weights: false,
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

// ---------------------------------------------------------------------------------------------
// Multi-chip schedules: a generator of valid schedules (test code, not the compiler's scheduler),
// one mutation at a time, and an oracle that says which rule each mutation breaks.

mod multi_chip {
    use lpuc_artifact::{
        Buffer, BufferId, BufferKind, Hop, InstrId, Instruction, Schedule, Transfer, TransferId,
        SCHEDULE_FORMAT,
    };
    use lpuc_emulator::{emulate_schedule, FaultKind};
    use lpuc_ir::DType;
    use lpuc_target::{Target, UnitId, UnitKind, Work};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    /// Chips 0..16: two nodes, so some transfers forward through the nodes' gateway chips.
    const CHIPS: u32 = 16;

    /// One op of a random graph: its chip, whether it streams (SXM) or computes (VXM), and which
    /// earlier values (by index modulo) it reads.
    #[derive(Clone, Debug)]
    struct OpSpec {
        chip: u32,
        stream: bool,
        reads: Vec<usize>,
    }

    #[derive(Clone, Debug)]
    struct GraphSpec {
        rows: u64,
        /// Chip of each graph input (or weight).
        inputs: Vec<(u32, bool)>,
        ops: Vec<OpSpec>,
        seed: u64,
    }

    fn graph_spec() -> impl Strategy<Value = GraphSpec> {
        let op = (
            0..CHIPS,
            any::<bool>(),
            prop::collection::vec(any::<usize>(), 1..=2),
        )
            .prop_map(|(chip, stream, reads)| OpSpec { chip, stream, reads });
        (
            1u64..=64,
            prop::collection::vec((0..CHIPS, any::<bool>()), 1..=3),
            prop::collection::vec(op, 2..=14),
            any::<u64>(),
        )
            .prop_map(|(rows, inputs, ops, seed)| GraphSpec {
                rows,
                inputs,
                ops,
                seed,
            })
    }

    /// A valid multi-chip schedule built greedily: each op as soon as its inputs are on its chip and
    /// a unit of its kind is free; each missing input sent along `Target::route`, each hop as soon
    /// as its data is there and its link is free (some a little later, for slack). Every buffer
    /// gets its own SRAM range.
    struct Gen {
        t: Target,
        s: Schedule,
        bytes: u64,
        shape: Vec<u64>,
        next_offset: Vec<u64>,
        ready: Vec<u64>,
        unit_free: BTreeMap<(u32, UnitId), u64>,
        link_free: BTreeMap<(u32, u32), u64>,
        copies: BTreeMap<(BufferId, u32), BufferId>,
        /// Leaves some slack: a third of the ops and hops start up to 200 cycles late.
        rng: Rng,
    }

    impl Gen {
        fn slack(&mut self) -> u64 {
            if self.rng.below(3) == 0 {
                self.rng.below(200)
            } else {
                0
            }
        }

        fn buffer(&mut self, kind: BufferKind, chip: u32, ready: u64) -> BufferId {
            let id = BufferId(self.s.buffers.len() as u32);
            let offset = self.next_offset[chip as usize];
            self.next_offset[chip as usize] += self.bytes.div_ceil(320) * 320;
            self.s.buffers.push(Buffer {
                id,
                name: format!("v{}", id.0),
                kind,
                dtype: DType::F32,
                shape: self.shape.clone(),
                bytes: self.bytes,
                chip,
                offset,
            });
            self.ready.push(ready);
            id
        }

        /// `v`, or its copy on `chip`, sent there if it is not yet.
        fn on_chip(&mut self, v: BufferId, chip: u32) -> BufferId {
            let from = self.s.buffers[v.0 as usize].chip;
            if from == chip {
                return v;
            }
            if let Some(&c) = self.copies.get(&(v, chip)) {
                return c;
            }
            let cycles = self.t.hop_cycles(self.bytes);
            let mut at = self.ready[v.0 as usize];
            let mut hops = Vec::new();
            for w in self.t.route(from, chip).windows(2) {
                let start = at.max(self.link_free.get(&(w[0], w[1])).copied().unwrap_or(0)) + self.slack();
                let hop = Hop {
                    from_chip: w[0],
                    to_chip: w[1],
                    start,
                    end: start + cycles,
                };
                self.link_free.insert((w[0], w[1]), hop.end);
                at = hop.end + self.t.hop_arrival_delay();
                hops.push(hop);
            }
            let copy = self.buffer(BufferKind::Activation, chip, at);
            self.s.transfers.push(Transfer {
                id: TransferId(self.s.transfers.len() as u32),
                from: v,
                to: copy,
                bytes: self.bytes,
                purpose: "activation".into(),
                hops,
            });
            self.copies.insert((v, chip), copy);
            copy
        }

        fn op(&mut self, spec: &OpSpec, values: &[BufferId], output: bool) -> BufferId {
            let reads: Vec<BufferId> = spec
                .reads
                .iter()
                .map(|&r| values[r % values.len()])
                .map(|v| self.on_chip(v, spec.chip))
                .collect();
            let (kind, work) = if spec.stream {
                (UnitKind::Sxm, Work::Stream { bytes: self.bytes })
            } else {
                let op = if reads.len() == 1 { "Relu" } else { "Add" };
                let elements = self.bytes / 4;
                let work = Work::Vector {
                    op: op.into(),
                    elements,
                    dtype: DType::F32,
                };
                (UnitKind::Vxm, work)
            };
            let cost = self.t.cost(&work).unwrap();
            let inputs_ready = reads.iter().map(|b| self.ready[b.0 as usize]).max().unwrap() + self.slack();
            let (start, unit) = self
                .t
                .units()
                .into_iter()
                .filter(|u| u.kind == kind)
                .map(|u| {
                    let free = self.unit_free.get(&(spec.chip, u)).copied().unwrap_or(0);
                    (inputs_ready.max(free), u)
                })
                .min()
                .unwrap();
            self.unit_free.insert((spec.chip, unit), start + cost.occupancy);
            let kind = if output {
                BufferKind::Output
            } else {
                BufferKind::Activation
            };
            let out = self.buffer(kind, spec.chip, start + cost.latency);
            let name = if spec.stream { "Transpose" } else { "Relu" };
            self.s.instructions.push(Instruction {
                id: InstrId(self.s.instructions.len() as u32),
                chip: spec.chip,
                unit,
                start,
                occupancy: cost.occupancy,
                latency: cost.latency,
                op: name.into(),
                node: format!("n{}", self.s.instructions.len()),
                onnx_op: name.into(),
                reads,
                writes: vec![out],
                work,
            });
            out
        }
    }

    fn generate(spec: &GraphSpec) -> (Schedule, Target) {
        let t = Target::lpu_v1();
        let shape = vec![spec.rows, 64];
        let mut g = Gen {
            s: Schedule {
                format: SCHEDULE_FORMAT,
                target: t.name.clone(),
                sram_capacity_bytes: t.sram.bytes,
                makespan_cycles: 0,
                chips: CHIPS,
                buffers: Vec::new(),
                instructions: Vec::new(),
                transfers: Vec::new(),
            },
            bytes: spec.rows * 64 * 4,
            shape,
            next_offset: vec![0; CHIPS as usize],
            ready: Vec::new(),
            unit_free: BTreeMap::new(),
            link_free: BTreeMap::new(),
            copies: BTreeMap::new(),
            rng: Rng(spec.seed ^ 0x5eed),
            t,
        };
        let mut values: Vec<BufferId> = spec
            .inputs
            .iter()
            .map(|&(chip, weight)| {
                let kind = if weight {
                    BufferKind::Weight
                } else {
                    BufferKind::Input
                };
                g.buffer(kind, chip, 0)
            })
            .collect();
        for (k, op) in spec.ops.iter().enumerate() {
            let out = g.op(op, &values, k + 1 == spec.ops.len());
            values.push(out);
        }
        // The artifact's orders: instructions by (start, chip, unit), transfers by first hop.
        g.s.instructions.sort_by_key(|i| (i.start, i.chip, i.unit, i.id));
        for (k, i) in g.s.instructions.iter_mut().enumerate() {
            i.id = InstrId(k as u32);
        }
        g.s.transfers.sort_by_key(|t| (t.hops[0].start, t.id));
        for (k, t) in g.s.transfers.iter_mut().enumerate() {
            t.id = TransferId(k as u32);
        }
        g.s.makespan_cycles = makespan(&g.s, &g.t);
        (g.s, g.t)
    }

    fn makespan(s: &Schedule, t: &Target) -> u64 {
        let delay = t.hop_arrival_delay();
        s.instructions
            .iter()
            .map(|i| i.done_cycle())
            .chain(s.transfers.iter().filter_map(|x| x.arrival(delay)))
            .max()
            .unwrap_or(0)
    }

    /// When each buffer is ready in `s` (inputs and weights at 0).
    fn ready(s: &Schedule, t: &Target) -> Vec<u64> {
        let mut r = vec![0; s.buffers.len()];
        for i in &s.instructions {
            for b in &i.writes {
                r[b.0 as usize] = i.done_cycle();
            }
        }
        for x in &s.transfers {
            r[x.to.0 as usize] = x.arrival(t.hop_arrival_delay()).unwrap();
        }
        r
    }

    /// The mutations, each meant to break one rule (a move earlier may land in slack and break
    /// none; the oracle says which).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Mutation {
        InstructionEarlier,
        InstructionLater,
        HopEarlier,
        HopLater,
        HopsOverlap,
        TransferDropped,
        ConsumerRepointed,
        HopOverNonLink,
        HopDuration,
    }

    const MUTATIONS: [Mutation; 9] = [
        Mutation::InstructionEarlier,
        Mutation::InstructionLater,
        Mutation::HopEarlier,
        Mutation::HopLater,
        Mutation::HopsOverlap,
        Mutation::TransferDropped,
        Mutation::ConsumerRepointed,
        Mutation::HopOverNonLink,
        Mutation::HopDuration,
    ];

    /// splitmix64: the mutations' choices, from the case's seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (`n > 0`).
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    /// Whether `[a0, a1)` and `[b0, b1)` share a cycle.
    fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> bool {
        a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1
    }

    /// Whether `ins` moved to `start` would share its unit with another instruction.
    fn unit_clash(s: &Schedule, ins: &Instruction, start: u64) -> bool {
        s.instructions.iter().any(|j| {
            j.id != ins.id
                && (j.chip, j.unit) == (ins.chip, ins.unit)
                && overlap(j.start, j.busy_until(), start, start + ins.occupancy)
        })
    }

    /// Hops of other transfers (or other hops of this one) that share a cycle on `hop`'s directed
    /// link.
    fn link_clash(s: &Schedule, t: usize, k: usize, hop: Hop) -> bool {
        s.transfers.iter().enumerate().any(|(ti, x)| {
            x.hops.iter().enumerate().any(|(hk, h)| {
                (ti, hk) != (t, k)
                    && (h.from_chip, h.to_chip) == (hop.from_chip, hop.to_chip)
                    && overlap(h.start, h.end, hop.start, hop.end)
            })
        })
    }

    /// Apply `m` to a copy of `s`; the mutated schedule and the fault kinds it must produce (empty:
    /// it must be accepted). `None` when `s` offers nothing to mutate this way.
    fn mutate(
        s: &Schedule,
        t: &Target,
        m: Mutation,
        rng: &mut Rng,
    ) -> Option<(Schedule, BTreeSet<FaultKind>)> {
        let mut out = s.clone();
        let mut expect = BTreeSet::new();
        let ready = ready(s, t);
        let delay = t.hop_arrival_delay();
        let hops: Vec<(usize, usize)> = s
            .transfers
            .iter()
            .enumerate()
            .flat_map(|(ti, x)| (0..x.hops.len()).map(move |k| (ti, k)))
            .collect();
        match m {
            Mutation::InstructionEarlier => {
                let movable: Vec<usize> = (0..s.instructions.len())
                    .filter(|&i| s.instructions[i].start > 0)
                    .collect();
                let i = *movable.get(rng.below(movable.len().max(1) as u64) as usize)?;
                let ins = &s.instructions[i];
                let reach = if rng.below(2) == 0 {
                    ins.start
                } else {
                    ins.start.min(300)
                };
                let start = ins.start - 1 - rng.below(reach);
                let needs = ins.reads.iter().map(|b| ready[b.0 as usize]).max().unwrap();
                if start < needs {
                    expect.insert(FaultKind::DependencyNotReady);
                }
                if unit_clash(s, ins, start) {
                    expect.insert(FaultKind::UnitConflict);
                }
                out.instructions[i].start = start;
            }
            Mutation::HopEarlier => {
                let (ti, k) = *hops.get(rng.below(hops.len().max(1) as u64) as usize)?;
                let x = &s.transfers[ti];
                let h = x.hops[k];
                if h.start == 0 {
                    return None;
                }
                let reach = if rng.below(2) == 0 {
                    h.start
                } else {
                    h.start.min(300)
                };
                let d = 1 + rng.below(reach);
                let moved = Hop {
                    start: h.start - d,
                    end: h.end - d,
                    ..h
                };
                let data = if k == 0 {
                    ready[x.from.0 as usize]
                } else {
                    x.hops[k - 1].end + delay
                };
                if moved.start < data {
                    expect.insert(FaultKind::TransferNotReady);
                }
                if link_clash(s, ti, k, moved) {
                    expect.insert(FaultKind::LinkConflict);
                }
                out.transfers[ti].hops[k] = moved;
            }
            Mutation::InstructionLater => {
                let i = rng.below(s.instructions.len() as u64) as usize;
                let ins = &s.instructions[i];
                let start = ins.start + 1 + rng.below(2 * ins.occupancy.max(100));
                let done = start + ins.latency;
                let written = ins.writes[0];
                if s.instructions
                    .iter()
                    .any(|j| j.reads.contains(&written) && j.start < done)
                {
                    expect.insert(FaultKind::DependencyNotReady);
                }
                if s.transfers
                    .iter()
                    .any(|x| x.from == written && x.hops[0].start < done)
                {
                    expect.insert(FaultKind::TransferNotReady);
                }
                if unit_clash(s, ins, start) {
                    expect.insert(FaultKind::UnitConflict);
                }
                out.instructions[i].start = start;
            }
            Mutation::HopLater => {
                let (ti, k) = *hops.get(rng.below(hops.len().max(1) as u64) as usize)?;
                let x = &s.transfers[ti];
                let h = x.hops[k];
                let d = 1 + rng.below(2 * (h.end - h.start).max(100));
                let moved = Hop {
                    start: h.start + d,
                    end: h.end + d,
                    ..h
                };
                let arrived = moved.end + delay;
                match x.hops.get(k + 1) {
                    Some(next) if next.start < arrived => {
                        expect.insert(FaultKind::TransferNotReady);
                    }
                    Some(_) => {}
                    None => {
                        if s.instructions
                            .iter()
                            .any(|j| j.reads.contains(&x.to) && j.start < arrived)
                        {
                            expect.insert(FaultKind::DependencyNotReady);
                        }
                        if s.transfers
                            .iter()
                            .any(|y| y.from == x.to && y.hops[0].start < arrived)
                        {
                            expect.insert(FaultKind::TransferNotReady);
                        }
                    }
                }
                if link_clash(s, ti, k, moved) {
                    expect.insert(FaultKind::LinkConflict);
                }
                out.transfers[ti].hops[k] = moved;
            }
            Mutation::HopsOverlap => {
                // Two hops on one directed link; the second is moved into the first's interval.
                let pairs: Vec<((usize, usize), (usize, usize))> = hops
                    .iter()
                    .flat_map(|&a| hops.iter().map(move |&b| (a, b)))
                    .filter(|&((ta, ka), (tb, kb))| {
                        let (ha, hb) = (s.transfers[ta].hops[ka], s.transfers[tb].hops[kb]);
                        (ta, ka) != (tb, kb) && (ha.from_chip, ha.to_chip) == (hb.from_chip, hb.to_chip)
                    })
                    .collect();
                let ((ta, ka), (tb, kb)) = *pairs.get(rng.below(pairs.len().max(1) as u64) as usize)?;
                let a = s.transfers[ta].hops[ka];
                let b = s.transfers[tb].hops[kb];
                let start = a.start + rng.below(a.end - a.start);
                out.transfers[tb].hops[kb] = Hop {
                    start,
                    end: start + (b.end - b.start),
                    ..b
                };
                expect.insert(FaultKind::LinkConflict);
            }
            Mutation::TransferDropped => {
                // The copy is then written by nobody.
                let ti = rng.below(s.transfers.len().max(1) as u64) as usize;
                if ti >= s.transfers.len() {
                    return None;
                }
                out.transfers.remove(ti);
                for (k, x) in out.transfers.iter_mut().enumerate() {
                    x.id = TransferId(k as u32);
                }
                expect.insert(FaultKind::Malformed);
            }
            Mutation::ConsumerRepointed => {
                // A consumer reads the transfer's source, on another chip, instead of the copy.
                let uses: Vec<(usize, usize, usize)> = s
                    .instructions
                    .iter()
                    .enumerate()
                    .flat_map(|(i, ins)| {
                        ins.reads.iter().enumerate().filter_map(move |(r, b)| {
                            s.transfers.iter().position(|x| x.to == *b).map(|ti| (i, r, ti))
                        })
                    })
                    .collect();
                let (i, r, ti) = *uses.get(rng.below(uses.len().max(1) as u64) as usize)?;
                out.instructions[i].reads[r] = s.transfers[ti].from;
                expect.insert(FaultKind::Malformed);
            }
            Mutation::HopOverNonLink => {
                let (ti, k) = *hops.get(rng.below(hops.len().max(1) as u64) as usize)?;
                let h = s.transfers[ti].hops[k];
                let unlinked: Vec<u32> = (0..CHIPS)
                    .filter(|&c| c != h.to_chip && t.link(h.from_chip, c).is_none())
                    .collect();
                let c = rng.pick(&unlinked);
                out.transfers[ti].hops[k].to_chip = c;
                if let Some(next) = out.transfers[ti].hops.get_mut(k + 1) {
                    next.from_chip = c;
                }
                expect.insert(FaultKind::BadRoute);
            }
            Mutation::HopDuration => {
                let (ti, k) = *hops.get(rng.below(hops.len().max(1) as u64) as usize)?;
                let h = &mut out.transfers[ti].hops[k];
                let len = h.end - h.start;
                if rng.below(2) == 0 {
                    h.end -= 1 + rng.below(len);
                } else {
                    h.end += 1 + rng.below(len);
                }
                expect.insert(FaultKind::TransferDuration);
            }
        }
        out.makespan_cycles = makespan(&out, t);
        Some((out, expect))
    }

    #[derive(Default)]
    struct Tally {
        /// Per mutation: (applied, breaking, detected with the right kinds, neutral, neutral accepted).
        per: BTreeMap<Mutation, [u64; 5]>,
        schedules: u64,
        transfers: u64,
        hops: u64,
    }

    #[test]
    fn every_broken_rule_in_a_random_multi_chip_schedule_is_caught() {
        let tally = RefCell::new(Tally::default());
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&graph_spec(), |spec| {
                let (s, t) = generate(&spec);
                let v = emulate_schedule(&s, &t);
                prop_assert!(v.is_ok(), "the generator's schedule is invalid: {:#?}", v.faults);
                let mut tally = tally.borrow_mut();
                tally.schedules += 1;
                tally.transfers += s.transfers.len() as u64;
                tally.hops += s.transfers.iter().map(|x| x.hops.len() as u64).sum::<u64>();
                let mut rng = Rng(spec.seed);
                for m in MUTATIONS {
                    let Some((mutated, expect)) = mutate(&s, &t, m, &mut rng) else {
                        continue;
                    };
                    let found: BTreeSet<FaultKind> = emulate_schedule(&mutated, &t)
                        .faults
                        .iter()
                        .map(|f| f.kind)
                        .collect();
                    let row = tally.per.entry(m).or_default();
                    row[0] += 1;
                    if expect.is_empty() {
                        row[3] += 1;
                        prop_assert!(
                            found.is_empty(),
                            "{m:?} breaks no rule but {found:?} was reported"
                        );
                        row[4] += 1;
                    } else {
                        row[1] += 1;
                        // Moving a hop into another's interval may also starve its own next hop
                        // or its reader; every other mutation must give exactly what it breaks.
                        let right = if m == Mutation::HopsOverlap {
                            expect.is_subset(&found)
                        } else {
                            expect == found
                        };
                        prop_assert!(right, "{m:?} must give {expect:?}, the emulator found {found:?}");
                        row[2] += 1;
                    }
                }
                Ok(())
            })
            .unwrap();
        let tally = tally.into_inner();
        let (mut breaking, mut detected, mut neutral, mut accepted) = (0, 0, 0, 0);
        for (m, [applied, b, d, n, a]) in &tally.per {
            println!("  {m:?}: {applied} applied, {d}/{b} breaking detected, {a}/{n} neutral accepted");
            breaking += b;
            detected += d;
            neutral += n;
            accepted += a;
        }
        println!(
            "multi-chip mutations: {detected} of {breaking} rule-breaking mutations detected with the right fault kind ({:.2}%); {accepted} of {neutral} harmless ones accepted; over {} schedules on {CHIPS} chips with {} transfers and {} hops",
            100.0 * detected as f64 / breaking.max(1) as f64,
            tally.schedules,
            tally.transfers,
            tally.hops
        );
        assert!(breaking >= 1000, "only {breaking} breaking mutations");
        assert_eq!(detected, breaking);
        assert_eq!(accepted, neutral);
    }
}
