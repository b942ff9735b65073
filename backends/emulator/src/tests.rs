//! Hand-built multi-chip schedules: the valid ones pass, and each broken rule is reported with its
//! exact fault kind, chip and transfer.

use crate::{emulate_schedule, FaultKind, Verdict};
use lpuc_artifact::{
    Buffer, BufferId, BufferKind, Hop, InstrId, Instruction, Schedule, Transfer, TransferId, SCHEDULE_FORMAT,
};
use lpuc_ir::DType;
use lpuc_target::{Target, Work};

/// Every buffer is f32 `[64, 64]`: 16,384 bytes.
const BYTES: u64 = 64 * 64 * 4;

struct Build {
    t: Target,
    s: Schedule,
}

impl Build {
    fn new(chips: u32) -> Self {
        let t = Target::lpu_v1();
        let s = Schedule {
            format: SCHEDULE_FORMAT,
            target: t.name.clone(),
            sram_capacity_bytes: t.sram.bytes,
            makespan_cycles: 0,
            chips,
            buffers: Vec::new(),
            instructions: Vec::new(),
            transfers: Vec::new(),
        };
        Build { t, s }
    }

    fn buffer(&mut self, kind: BufferKind, chip: u32, offset: u64) -> BufferId {
        let id = BufferId(self.s.buffers.len() as u32);
        self.s.buffers.push(Buffer {
            id,
            name: format!("v{}", id.0),
            kind,
            dtype: DType::F32,
            shape: vec![64, 64],
            bytes: BYTES,
            chip,
            offset,
        });
        id
    }

    /// A Relu on `chip`'s VXM0 reading `read` and writing `write`, issued at `start`.
    fn relu(&mut self, chip: u32, start: u64, read: BufferId, write: BufferId) -> InstrId {
        let id = InstrId(self.s.instructions.len() as u32);
        let work = Work::Vector {
            op: "Relu".into(),
            elements: 64 * 64,
            dtype: DType::F32,
        };
        let c = self.t.cost(&work).unwrap();
        self.s.instructions.push(Instruction {
            id,
            chip,
            unit: "VXM0".parse().unwrap(),
            start,
            occupancy: c.occupancy,
            latency: c.latency,
            op: "Relu".into(),
            node: format!("relu{}", id.0),
            onnx_op: "Relu".into(),
            reads: vec![read],
            writes: vec![write],
            work,
        });
        id
    }

    /// A transfer of `from` into `to` along `Target::route`, each hop as early as allowed from
    /// `start` on.
    fn transfer(&mut self, from: BufferId, to: BufferId, start: u64) -> TransferId {
        let id = TransferId(self.s.transfers.len() as u32);
        let (a, b) = (
            self.s.buffers[from.0 as usize].chip,
            self.s.buffers[to.0 as usize].chip,
        );
        let route = self.t.route(a, b);
        let cycles = self.t.hop_cycles(BYTES);
        let mut at = start;
        let hops = route
            .windows(2)
            .map(|w| {
                let h = Hop {
                    from_chip: w[0],
                    to_chip: w[1],
                    start: at,
                    end: at + cycles,
                };
                at = h.end + self.t.hop_arrival_delay();
                h
            })
            .collect();
        self.s.transfers.push(Transfer {
            id,
            from,
            to,
            bytes: BYTES,
            purpose: "activation".into(),
            hops,
        });
        id
    }

    fn done(&self, i: InstrId) -> u64 {
        self.s.instructions[i.0 as usize].done_cycle()
    }

    fn arrival(&self, t: TransferId) -> u64 {
        self.s.transfers[t.0 as usize]
            .arrival(self.t.hop_arrival_delay())
            .unwrap()
    }

    /// The schedule with its makespan claimed right.
    fn finish(mut self) -> (Schedule, Target) {
        let delay = self.t.hop_arrival_delay();
        self.s.makespan_cycles = self
            .s
            .instructions
            .iter()
            .map(|i| i.done_cycle())
            .chain(self.s.transfers.iter().filter_map(|t| t.arrival(delay)))
            .max()
            .unwrap_or(0);
        (self.s, self.t)
    }
}

/// Chip `src` computes a value, sends it to chip `dst`, which consumes it: b0 input, b1 on `src`,
/// b2 its copy on `dst`, b3 the output on `dst`.
fn send(src: u32, dst: u32, chips: u32) -> (Schedule, Target) {
    let mut b = Build::new(chips);
    let x = b.buffer(BufferKind::Input, src, 0);
    let y = b.buffer(BufferKind::Activation, src, 16384);
    let y_copy = b.buffer(BufferKind::Activation, dst, 0);
    let out = b.buffer(BufferKind::Output, dst, 16384);
    let i0 = b.relu(src, 0, x, y);
    let t0 = b.transfer(y, y_copy, b.done(i0));
    b.relu(dst, b.arrival(t0), y_copy, out);
    b.finish()
}

fn run(s: &Schedule, t: &Target) -> Verdict {
    emulate_schedule(s, t)
}

fn kinds(v: &Verdict) -> Vec<FaultKind> {
    v.faults.iter().map(|f| f.kind).collect()
}

#[test]
fn a_value_sent_within_a_node_and_across_nodes_is_accepted() {
    let (s, t) = send(0, 1, 2);
    assert_eq!(s.transfers[0].hops.len(), 1);
    let v = run(&s, &t);
    assert!(v.is_ok(), "{:#?}", v.faults);
    assert_eq!((v.stats.transfers, v.stats.hops, v.stats.chips.len()), (1, 1, 2));
    assert_eq!(v.stats.link_busy_cycles, t.hop_cycles(BYTES));
    // 16,384 bytes at 14 GB/s and 900 MHz: ceil(16384 * 9e8 / 1.4e10) = 1054 cycles.
    assert_eq!(t.hop_cycles(BYTES), 1054);

    // Chip 0 to chip 9 (node 1) forwards through chips 7 and 8, which hold no SRAM.
    let (s, t) = send(0, 9, 10);
    let chips: Vec<(u32, u32)> = s.transfers[0]
        .hops
        .iter()
        .map(|h| (h.from_chip, h.to_chip))
        .collect();
    assert_eq!(chips, vec![(0, 7), (7, 8), (8, 9)]);
    let v = run(&s, &t);
    assert!(v.is_ok(), "{:#?}", v.faults);
    assert_eq!(v.stats.chips[7], Default::default());
    // Chip 9 holds the copy and the output at once.
    assert_eq!(v.stats.chips[9].peak_sram_bytes, 2 * BYTES);
}

#[test]
fn units_and_sram_are_per_chip() {
    // The same unit name and the same addresses on two chips at the same cycles do not clash.
    let mut b = Build::new(2);
    for chip in 0..2 {
        let x = b.buffer(BufferKind::Input, chip, 0);
        let y = b.buffer(BufferKind::Output, chip, 16384);
        b.relu(chip, 0, x, y);
    }
    let (s, t) = b.finish();
    assert!(run(&s, &t).is_ok());

    // But on one chip they do.
    let mut s2 = s.clone();
    s2.instructions[1].chip = 0;
    for b in &mut s2.buffers[2..] {
        b.chip = 0;
    }
    let v = run(&s2, &t);
    assert!(kinds(&v).contains(&FaultKind::UnitConflict), "{:#?}", v.faults);
    assert!(kinds(&v).contains(&FaultKind::SramOverlap), "{:#?}", v.faults);
    let f = v
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::UnitConflict)
        .unwrap();
    assert_eq!(
        (f.chip, f.instructions.clone()),
        (Some(0), vec![InstrId(0), InstrId(1)])
    );
}

#[test]
fn a_hop_over_a_missing_link_or_a_broken_chain_is_a_bad_route() {
    let (s, t) = send(0, 9, 10);
    let cycles = t.hop_cycles(BYTES);

    // Straight from chip 0 to chip 9: no such link.
    let mut direct = s.clone();
    let first = direct.transfers[0].hops[0];
    direct.transfers[0].hops = vec![Hop {
        from_chip: 0,
        to_chip: 9,
        start: first.start,
        end: first.start + cycles,
    }];
    let v = run(&direct, &t);
    assert_eq!(kinds(&v), vec![FaultKind::BadRoute], "{:#?}", v.faults);
    assert_eq!(v.faults[0].transfers, vec![TransferId(0)]);
    assert_eq!(v.faults[0].chip, Some(0));
    assert!(v.faults[0].message.contains("does not link"));

    // A middle hop that leaves a chip the previous hop did not reach (7 -> 8 becomes 6 -> 8,
    // which is also not a link).
    let mut gap = s.clone();
    gap.transfers[0].hops[1].from_chip = 6;
    let v = run(&gap, &t);
    assert_eq!(kinds(&v), vec![FaultKind::BadRoute; 2], "{:#?}", v.faults);
    assert!(v.faults[0]
        .message
        .contains("hop 1 leaves chip 6, but hop 0 arrived at chip 7"));

    // A route that ends on the wrong chip.
    let mut wrong_end = s.clone();
    wrong_end.transfers[0].hops.pop();
    let v = run(&wrong_end, &t);
    assert_eq!(kinds(&v), vec![FaultKind::BadRoute]);
    assert!(v.faults[0].message.contains("last hop arrives at chip 8"));

    // A transfer without hops.
    let mut none = s.clone();
    none.transfers[0].hops.clear();
    assert_eq!(kinds(&run(&none, &t)), vec![FaultKind::BadRoute]);
}

#[test]
fn two_hops_on_one_directed_link_at_once() {
    // Chip 0 sends its computed value and, at the same time, its input to chip 1.
    let mut b = Build::new(2);
    let x = b.buffer(BufferKind::Input, 0, 0);
    let y = b.buffer(BufferKind::Activation, 0, 16384);
    let y_copy = b.buffer(BufferKind::Output, 1, 0);
    let x_copy = b.buffer(BufferKind::Output, 1, 16384);
    let i0 = b.relu(0, 0, x, y);
    let at = b.done(i0);
    b.transfer(y, y_copy, at);
    b.transfer(x, x_copy, at + 10);
    let (s, t) = b.finish();
    let v = run(&s, &t);
    assert_eq!(kinds(&v), vec![FaultKind::LinkConflict], "{:#?}", v.faults);
    let f = &v.faults[0];
    assert_eq!((f.cycle, f.chip), (at + 10, Some(0)));
    assert_eq!(f.transfers, vec![TransferId(0), TransferId(1)]);

    // After the first hop ends, the link is free; the opposite direction is another link.
    let mut later = s.clone();
    let end = later.transfers[0].hops[0].end;
    let h = &mut later.transfers[1].hops[0];
    (h.start, h.end) = (end, end + t.hop_cycles(BYTES));
    later.makespan_cycles = h.end + t.hop_arrival_delay();
    assert!(run(&later, &t).is_ok(), "{:#?}", run(&later, &t).faults);
    let mut reverse = s.clone();
    reverse.buffers[1].chip = 1; // y: computed on chip 1 now, copied to chip 0
    reverse.buffers[0].chip = 1;
    reverse.instructions[0].chip = 1;
    reverse.buffers[2].chip = 0;
    for h in &mut reverse.transfers[0].hops {
        (h.from_chip, h.to_chip) = (1, 0);
    }
    let v = run(&reverse, &t);
    assert!(!kinds(&v).contains(&FaultKind::LinkConflict), "{:#?}", v.faults);
}

#[test]
fn a_hop_before_its_data_is_there() {
    // The first hop leaves before the producer's result is ready.
    let (mut s, t) = send(0, 1, 2);
    let ready = s.instructions[0].done_cycle();
    for h in &mut s.transfers[0].hops {
        h.start -= 1;
        h.end -= 1;
    }
    s.instructions[1].start -= 1;
    s.makespan_cycles -= 1;
    let v = run(&s, &t);
    assert_eq!(kinds(&v), vec![FaultKind::TransferNotReady], "{:#?}", v.faults);
    let f = &v.faults[0];
    assert_eq!((f.cycle, f.chip), (ready - 1, Some(0)));
    assert_eq!(
        (f.instructions.clone(), f.transfers.clone()),
        (vec![InstrId(0)], vec![TransferId(0)])
    );

    // A forwarding hop leaves before the previous hop's data has arrived.
    let (mut s, t) = send(0, 9, 10);
    let arrived = s.transfers[0].hops[0].end + t.hop_arrival_delay();
    let h = &mut s.transfers[0].hops[1];
    h.start = arrived - 1;
    h.end = h.start + t.hop_cycles(BYTES);
    let v = run(&s, &t);
    assert_eq!(kinds(&v), vec![FaultKind::TransferNotReady], "{:#?}", v.faults);
    assert_eq!((v.faults[0].cycle, v.faults[0].chip), (arrived - 1, Some(7)));
}

#[test]
fn a_hop_shorter_than_the_link_model() {
    let (mut s, t) = send(0, 9, 10);
    s.transfers[0].hops[2].end -= 1;
    let v = run(&s, &t);
    assert_eq!(kinds(&v), vec![FaultKind::TransferDuration], "{:#?}", v.faults);
    assert_eq!(v.faults[0].chip, Some(8));
    assert!(v.faults[0].message.contains("take 1054 cycles"));
}

#[test]
fn a_consumer_before_the_transfer_arrives() {
    let (mut s, t) = send(0, 9, 10);
    let arrival = s.transfers[0].arrival(t.hop_arrival_delay()).unwrap();
    s.instructions[1].start = arrival - 1;
    s.makespan_cycles -= 1;
    let v = run(&s, &t);
    assert_eq!(kinds(&v), vec![FaultKind::DependencyNotReady], "{:#?}", v.faults);
    let f = &v.faults[0];
    assert_eq!((f.cycle, f.chip), (arrival - 1, Some(9)));
    assert_eq!(
        (f.instructions.clone(), f.transfers.clone()),
        (vec![InstrId(1)], vec![TransferId(0)])
    );
}

#[test]
fn cross_chip_buffers_and_unlike_copies_are_malformed() {
    // An instruction on chip 1 reading chip 0's buffer directly.
    let (mut s, t) = send(0, 1, 2);
    s.instructions[1].reads = vec![BufferId(1)];
    let v = run(&s, &t);
    assert!(kinds(&v).contains(&FaultKind::Malformed));
    assert!(v.faults.iter().any(|f| f.message.contains("which is on chip 0")));

    // A copy into a buffer of another size.
    let (mut s, t) = send(0, 1, 2);
    s.buffers[2].shape = vec![64, 32];
    s.buffers[2].bytes = BYTES / 2;
    assert_eq!(kinds(&run(&s, &t)), vec![FaultKind::Malformed]);

    // A buffer written by both an instruction and a transfer.
    let (mut s, t) = send(0, 1, 2);
    s.instructions[1].writes.push(BufferId(2));
    assert!(kinds(&run(&s, &t)).contains(&FaultKind::Malformed));

    // A buffer on a chip beyond the schedule's chips, absurdly many chips, and the old format.
    let (mut s, t) = send(0, 1, 2);
    s.chips = 1;
    assert!(kinds(&run(&s, &t)).contains(&FaultKind::Malformed));
    let (mut s, t) = send(0, 1, 2);
    s.chips = u32::MAX;
    assert_eq!(kinds(&run(&s, &t)), vec![FaultKind::Malformed]);
    let (mut s, t) = send(0, 1, 2);
    s.format = 1;
    assert_eq!(kinds(&run(&s, &t)), vec![FaultKind::Malformed]);
}

#[test]
fn the_copy_is_reserved_while_in_flight_and_the_source_kept_until_sent() {
    // The copy (b2, chip 1) overlaps a buffer on chip 1 that lives until the first hop starts + 1.
    let (s, t) = send(0, 1, 2);
    let hop = s.transfers[0].hops[0];
    let mut b = Build { t: t.clone(), s };
    let z_in = b.buffer(BufferKind::Input, 1, 40960);
    let z = b.buffer(BufferKind::Activation, 1, 0); // where the copy will land
    let zo = b.buffer(BufferKind::Output, 1, 65536);
    let w = b.relu(1, 0, z_in, z);
    // z's reader finishes just after the hop starts: z is still live when the copy is reserved.
    let lat = b.s.instructions[w.0 as usize].latency;
    let occ = b.s.instructions[w.0 as usize].occupancy;
    let start = (hop.start + 1).saturating_sub(lat).max(occ);
    b.relu(1, start, z, zo);
    let (s, t) = b.finish();
    let v = run(&s, &t);
    let f = v
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::SramOverlap)
        .unwrap_or_else(|| panic!("{:#?}", v.faults));
    assert_eq!((f.cycle, f.chip), (hop.start, Some(1)));
    assert_eq!(f.transfers, vec![TransferId(0)]);

    // The source b1 on chip 0 must stay until the first hop ends: a buffer placed over it that
    // becomes live during the hop overlaps it.
    let (s, t) = send(0, 1, 2);
    let hop = s.transfers[0].hops[0];
    let mut b = Build { t: t.clone(), s };
    let q_in = b.buffer(BufferKind::Input, 0, 81920);
    let q = b.buffer(BufferKind::Output, 0, 16384); // b1's address
    b.s.instructions.push(Instruction {
        id: InstrId(2),
        start: hop.end - 1,
        ..b.s.instructions[0].clone()
    });
    b.s.instructions[2].reads = vec![q_in];
    b.s.instructions[2].writes = vec![q];
    let (s, t) = b.finish();
    let v = run(&s, &t);
    let f = v
        .faults
        .iter()
        .find(|f| f.kind == FaultKind::SramOverlap)
        .unwrap_or_else(|| panic!("{:#?}", v.faults));
    assert_eq!((f.cycle, f.chip), (hop.end - 1, Some(0)));
    assert_eq!(
        (f.instructions.clone(), f.transfers.clone()),
        (vec![InstrId(0), InstrId(2)], vec![])
    );
}

#[test]
fn sram_capacity_is_per_chip() {
    // Each chip holds two 16 KiB buffers: exactly a 32 KiB SRAM, on both chips.
    let (s, mut t) = send(0, 1, 2);
    t.sram.bytes = 2 * BYTES;
    let mut s = s;
    s.sram_capacity_bytes = t.sram.bytes;
    assert!(run(&s, &t).is_ok(), "{:#?}", run(&s, &t).faults);

    // A third buffer on chip 1 overflows chip 1 only (it cannot fit in range without overlapping,
    // so that is reported too).
    let mut b = Build { t: t.clone(), s };
    b.buffer(BufferKind::Weight, 1, 8192);
    let (s, t) = b.finish();
    let v = run(&s, &t);
    let over: Vec<Option<u32>> = v
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::SramOverCapacity)
        .map(|f| f.chip)
        .collect();
    assert_eq!(over, vec![Some(1)], "{:#?}", v.faults);
    assert!(kinds(&v).contains(&FaultKind::SramOverlap));
}

#[test]
fn the_makespan_includes_a_transfer_that_nothing_reads() {
    let mut b = Build::new(2);
    let x = b.buffer(BufferKind::Input, 0, 0);
    let y = b.buffer(BufferKind::Output, 1, 0);
    let t0 = b.transfer(x, y, 0);
    let arrival = b.arrival(t0);
    let (s, t) = b.finish();
    assert_eq!(s.makespan_cycles, arrival);
    let v = run(&s, &t);
    assert!(v.is_ok(), "{:#?}", v.faults);
    assert_eq!(v.stats.makespan, arrival);
    let mut wrong = s.clone();
    wrong.makespan_cycles = 0;
    assert_eq!(kinds(&run(&wrong, &t)), vec![FaultKind::MakespanMismatch]);
}

/// A long pipeline over 64 chips: 100,000 instructions and about as many transfers, replayed in
/// well under a few seconds (the test prints the time; the figure in release builds is in the
/// ARCHITECTURE notes).
#[test]
fn a_hundred_thousand_instructions_and_transfers() {
    let chips = 64u32;
    let mut b = Build::new(chips);
    let n = 100_000u32;
    let mut prev = b.buffer(BufferKind::Input, 0, 1 << 20);
    let mut ready = 0u64;
    let mut link_free = std::collections::BTreeMap::<(u32, u32), u64>::new();
    for k in 0..n {
        let chip = k % chips;
        let prev_chip = b.s.buffers[prev.0 as usize].chip;
        let mut input = prev;
        if prev_chip != chip {
            let copy = b.buffer(BufferKind::Activation, chip, 16384 * u64::from(k % 2));
            let route = b.t.route(prev_chip, chip);
            let mut at = ready;
            for w in route.windows(2) {
                at = at.max(*link_free.get(&(w[0], w[1])).unwrap_or(&0));
            }
            let t = b.transfer(prev, copy, at);
            for h in &b.s.transfers[t.0 as usize].hops {
                link_free.insert((h.from_chip, h.to_chip), h.end);
            }
            ready = b.arrival(t);
            input = copy;
        }
        let kind = if k + 1 == n {
            BufferKind::Output
        } else {
            BufferKind::Activation
        };
        let out = b.buffer(kind, chip, 65536 + 16384 * u64::from(k % 2));
        let i = b.relu(chip, ready, input, out);
        ready = b.done(i);
        prev = out;
    }
    let (s, t) = b.finish();
    let clock = std::time::Instant::now();
    let v = run(&s, &t);
    let took = clock.elapsed();
    assert!(v.is_ok(), "{:#?}", &v.faults[..v.faults.len().min(5)]);
    println!(
        "replayed {} instructions and {} transfers on {chips} chips in {took:?}",
        v.stats.instructions, v.stats.transfers
    );
}
