//! Lowering a placed graph to a system program (layout changes in `exchange`, reductions in
//! `reduce`, tiled regions in `tiled`): every op as one instruction per chip of its
//! stage's group (its shard of the work), every weight as the slice each chip stores, and every
//! change of layout (inside a group, or from one stage's group to the next) as explicit cuts,
//! chip-to-chip sends and assemblies or sums. No timing yet: the tasks come out in an order in
//! which every buffer is written before it is read.
//!
//! A value lives on a group of chips in a [`Layout`]; each chip holds a box of it (all of it, or its
//! slice along the split axis). Changing layout gives every receiving chip the box it needs: the
//! pieces other chips hold that intersect it are cut out on their senders (one `Cut` instruction
//! per sender on its SXM), sent along the topology's route, and joined on the receiver (one
//! `Assemble` on its SXM); a piece that is a sender's whole buffer is sent as is, and a receiver
//! that already holds a superset of what it needs reads that. Partial sums are reduced first:
//! each chip cuts its partial into one piece per chip, sends piece k to chip k, and chip k sums
//! what it receives on its VXM (a reduce-scatter; an all-reduce follows as an exchange of the
//! reduced pieces when a consumer needs the whole value). Between stages a value moves in its
//! boundary layout (split along its first evenly dividing axis), as the placer priced it.

use super::tiles;
use crate::placer::sharding::layout::{Layout, LinkModel};
use crate::placer::sharding::problem::boundary_layout;
use crate::placer::sharding::strategies::{strategies_at, Strategy};
use crate::placer::StagePlan;
use lpuc_artifact::{BufferKind, Step};
use lpuc_ir::{DType, Graph, OpId, ValueId, ValueKind};
use lpuc_target::{Target, Work};
use std::collections::BTreeMap;

/// A buffer to be: where it lives and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufSpec {
    pub chip: u32,
    /// The value it holds a region of.
    pub value: ValueId,
    pub name: String,
    pub kind: BufferKind,
    pub dtype: DType,
    pub shape: Vec<u64>,
}

impl BufSpec {
    pub fn bytes(&self) -> u64 {
        self.shape
            .iter()
            .fold(1u64, |a, &d| a.saturating_mul(d))
            .saturating_mul(self.dtype.size_bytes())
    }
}

/// One step of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    Compute {
        chip: u32,
        work: Work,
        /// What it computes, for functional emulation.
        step: Step,
        op: String,
        node: String,
        onnx_op: String,
        reads: Vec<usize>,
        writes: Vec<usize>,
        /// Tasks it must not start before (done): a schedule constraint, not a data dependency
        /// (it bounds how many tiles of a region are in flight).
        after: Vec<usize>,
    },
    Send {
        from: usize,
        to: usize,
        purpose: &'static str,
        /// Tasks it must not start before (see `Compute::after`).
        after: Vec<usize>,
    },
}

/// Buffers and tasks, in an order where every buffer is written before it is read.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub buffers: Vec<BufSpec>,
    pub tasks: Vec<Task>,
    /// The region of its value each buffer holds (same order as `buffers`).
    pub regions: Vec<Region>,
}

/// Consecutive chips `first..first + n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Group {
    pub(super) first: u32,
    pub(super) n: u32,
}

/// Per axis, the half-open range of a value a chip holds.
pub type Region = Vec<(u64, u64)>;

/// The region chip `j` of `n` holds of a value of `dims` in `layout`.
pub(super) fn region(dims: &[u64], layout: Layout, j: u32, n: u32) -> Region {
    dims.iter()
        .enumerate()
        .map(|(a, &d)| match layout {
            Layout::Split(axis) if axis == a => {
                let (j, n) = (u64::from(j), u64::from(n));
                (j * d / n, (j + 1) * d / n)
            }
            _ => (0, d),
        })
        .collect()
}

pub(super) fn intersect(a: &Region, b: &Region) -> Option<Region> {
    let r: Region = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.0.max(y.0), x.1.min(y.1)))
        .collect();
    r.iter().all(|&(lo, hi)| lo < hi).then_some(r)
}

/// Tile `t` of `tiles` of region `r` along `axis`.
pub(super) fn restrict(r: &Region, axis: usize, t: u64, tiles: u64) -> Region {
    let mut out = r.clone();
    let (lo, hi) = r[axis];
    out[axis] = (lo + t * (hi - lo) / tiles, lo + (t + 1) * (hi - lo) / tiles);
    out
}

pub(super) fn contains(outer: &Region, inner: &Region) -> bool {
    outer.iter().zip(inner).all(|(o, i)| o.0 <= i.0 && i.1 <= o.1)
}

/// Elements in region `r`.
fn volume(r: &Region) -> u64 {
    r.iter().map(|&(lo, hi)| hi - lo).product()
}

/// Whether `pieces` tile `target` exactly: every element of it in exactly one piece (parts of a
/// piece outside it are ignored). What every assembly must read.
pub(super) fn tiles_exactly(target: &Region, pieces: &[Region]) -> bool {
    let parts: Vec<Region> = pieces.iter().filter_map(|p| intersect(p, target)).collect();
    let disjoint = parts
        .iter()
        .enumerate()
        .all(|(i, a)| parts[i + 1..].iter().all(|b| intersect(a, b).is_none()));
    disjoint && parts.iter().map(volume).sum::<u64>() == volume(target)
}

pub(super) fn shape(r: &Region) -> Vec<u64> {
    r.iter().map(|&(lo, hi)| hi - lo).collect()
}

/// Builds the program stage by stage.
pub(super) struct Lowering<'a> {
    pub(super) g: &'a Graph,
    pub(super) weight_dtype: Option<DType>,
    /// The ops reading each value, by value index.
    pub(super) readers: Vec<Vec<OpId>>,
    pub(super) prog: Program,
    /// Every materialised version of a value: (group, layout) -> a buffer per chip.
    pub(super) versions: BTreeMap<(ValueId, Group, Layout), Vec<usize>>,
    /// Where each computed value was produced, and in which layout.
    pub(super) home: BTreeMap<ValueId, (Group, Layout)>,
    /// The region each buffer holds of its value.
    pub(super) regions: Vec<Region>,
    pub(super) node_chips: u32,
    pub(super) target: &'a Target,
    /// The link figures collectives are priced with (how a gather crosses nodes is chosen by
    /// them).
    pub(super) links: LinkModel,
    /// Results above this (on one chip) run in tiles of at most `tile_budget`.
    pub(super) tile_above: u64,
    pub(super) tile_budget: u64,
}

/// Most instructions and transfers one program may hold. A placement that splits large values
/// over many chips and many tiles can ask for tens of millions (a per-tile exchange among 64
/// chips is 4,032 transfers); building them would exhaust memory, so lowering stops with an error
/// instead. The 70B-shaped decode step needs about 49,000, the 7B prefill at 512 tokens about
/// 100,000, the 70B prefill at 4096 tokens on 576 chips 2.43 million (2.8 GB at the compile's
/// peak, a 3 GB `schedule.json`); the limit keeps a compile under 4 GiB (the placer keeps each
/// block's share of it, see `placer::blocks`).
pub const MAX_TASKS: u64 = 2_600_000;

impl<'a> Lowering<'a> {
    /// Whether the program has outgrown [`MAX_TASKS`].
    pub(super) fn too_large(&self) -> bool {
        self.prog.tasks.len() as u64 > MAX_TASKS
    }

    pub(super) fn buffer(
        &mut self,
        value: ValueId,
        chip: u32,
        name: String,
        kind: BufferKind,
        dtype: DType,
        region: Region,
    ) -> usize {
        self.prog.buffers.push(BufSpec {
            chip,
            value,
            name,
            kind,
            dtype,
            shape: shape(&region),
        });
        self.regions.push(region);
        self.prog.buffers.len() - 1
    }

    /// A buffer on `chip` holding `region` of `v`, joined on its SXM from the buffers `reads`
    /// (pieces of `v` already on that chip); `purpose` names why, for the schedule text.
    pub(super) fn assemble_on(
        &mut self,
        v: ValueId,
        chip: u32,
        region: Region,
        reads: Vec<usize>,
        purpose: &'static str,
    ) -> usize {
        self.stream_on("Assemble", v, chip, region, reads, purpose)
    }

    /// An SXM pass (`op`: `Assemble` or `Cut`) on `chip` writing `region` of `v` from the buffers
    /// `reads`, which must hold each of its elements exactly once.
    fn stream_on(
        &mut self,
        op: &'static str,
        v: ValueId,
        chip: u32,
        region: Region,
        reads: Vec<usize>,
        purpose: &'static str,
    ) -> usize {
        debug_assert!(
            tiles_exactly(
                &region,
                &reads.iter().map(|&b| self.regions[b].clone()).collect::<Vec<_>>()
            ),
            "a {op} of {} on chip {chip} does not read its region exactly once",
            self.g.value(v).name
        );
        let value = self.g.value(v);
        let (name, dtype) = (value.name.clone(), value.ty.dtype);
        let b = self.buffer(
            v,
            chip,
            format!("{name}@{chip}"),
            BufferKind::Activation,
            dtype,
            region,
        );
        let bytes = self.prog.buffers[b].bytes();
        self.prog.tasks.push(Task::Compute {
            chip,
            work: Work::Stream { bytes },
            step: Step::Copy,
            op: op.into(),
            node: name,
            onnx_op: purpose.into(),
            reads,
            writes: vec![b],
            after: Vec::new(),
        });
        b
    }

    pub(super) fn dims(&self, v: ValueId) -> Vec<u64> {
        self.g.value(v).ty.shape.dims().to_vec()
    }

    /// A weight's or input's buffers in `layout` on `group`: each chip stores the region it
    /// reads, at the placement's weight dtype.
    fn resident(&mut self, v: ValueId, group: Group, layout: Layout) -> Vec<usize> {
        if let Some(b) = self.versions.get(&(v, group, layout)) {
            return b.clone();
        }
        let value = self.g.value(v);
        let (kind, dtype) = match value.kind {
            ValueKind::Weight { .. } => (
                BufferKind::Weight,
                match self.weight_dtype {
                    Some(d) if value.ty.dtype.is_float() => d,
                    _ => value.ty.dtype,
                },
            ),
            _ => (BufferKind::Input, value.ty.dtype),
        };
        let dims = self.dims(v);
        let name = value.name.clone();
        let bufs: Vec<usize> = (0..group.n)
            .map(|j| {
                let r = region(&dims, layout, j, group.n);
                let label = if group.n > 1 && layout != Layout::Replicated {
                    format!("{name}[{layout} {j}/{}]", group.n)
                } else {
                    name.clone()
                };
                self.buffer(v, group.first + j, label, kind, dtype, r)
            })
            .collect();
        self.versions.insert((v, group, layout), bufs.clone());
        bufs
    }

    /// `v` in `layout` on `group`, moving and reducing it as needed.
    pub(super) fn get(&mut self, v: ValueId, group: Group, layout: Layout) -> Vec<usize> {
        if !matches!(self.g.value(v).kind, ValueKind::Computed { .. }) {
            return self.resident(v, group, layout);
        }
        if let Some(b) = self.versions.get(&(v, group, layout)) {
            return b.clone();
        }
        let (home, home_layout) = self.home[&v];
        if home_layout == Layout::Partial {
            let prefer = match layout {
                Layout::Split(a) if group == home => Some(a),
                _ => None,
            };
            let (reduced, bufs) = self.reduce(v, home, prefer);
            self.versions.insert((v, home, reduced), bufs);
            self.home.insert(v, (home, reduced));
            return self.get(v, group, layout);
        }
        let bufs = if group == home {
            let src = self.versions[&(v, home, home_layout)].clone();
            self.exchange(v, home, &src, group, layout, "reshard")
        } else {
            // Between stages: in the boundary layout of the receiving group first.
            let boundary = boundary_layout(&self.dims(v), u64::from(group.n));
            let arrived = match self.versions.get(&(v, group, boundary)) {
                Some(b) => b.clone(),
                None => {
                    // From the nearest earlier stage holding it (a value many stages read, such
                    // as an attention mask, is relayed stage to stage rather than sent by its
                    // producer to every stage).
                    let (from, from_layout) = self
                        .versions
                        .range((v, Group { first: 0, n: 0 }, Layout::Replicated)..)
                        .take_while(|((x, _, _), _)| *x == v)
                        .map(|((_, gr, l), _)| (*gr, *l))
                        .filter(|(gr, l)| *l != Layout::Partial && gr.first < group.first)
                        .max_by_key(|(gr, l)| (gr.first, *l == home_layout))
                        .unwrap_or((home, home_layout));
                    let src = self.versions[&(v, from, from_layout)].clone();
                    let b = self.exchange(v, from, &src, group, boundary, "stage");
                    self.versions.insert((v, group, boundary), b.clone());
                    b
                }
            };
            if boundary == layout {
                arrived
            } else {
                self.exchange(v, group, &arrived, group, layout, "reshard")
            }
        };
        self.versions.insert((v, group, layout), bufs.clone());
        bufs
    }

    /// Emit one stage: its ops in program order, with each region of large results run tile by
    /// tile where its first (or last) member stands.
    fn stage(&mut self, stage: &StagePlan) {
        let g = self.g;
        let group = Group {
            first: stage.first_chip,
            n: stage.chips,
        };
        let chosen: Vec<Strategy> = stage
            .ops
            .iter()
            .zip(&stage.choice)
            .map(|(&o, &s)| {
                let list = strategies_at(g, o, u64::from(group.n), self.weight_dtype);
                list[s.min(list.len() - 1)].clone()
            })
            .collect();
        // Regions within each block, exactly as the placer estimated the block's memory.
        let mut regions = Vec::new();
        let mut offset = 0usize;
        // A graph without layer names has one block per op: its regions span the stage.
        let layered = stage.blocks.iter().any(|&b| b > 1);
        let parts: Vec<usize> = if layered && stage.blocks.iter().sum::<usize>() == stage.ops.len() {
            stage.blocks.clone()
        } else {
            vec![stage.ops.len()]
        };
        for &len in &parts {
            let range = offset..offset + len;
            for mut r in tiles::regions(
                g,
                &stage.ops[range.clone()],
                &chosen[range],
                u64::from(group.n),
                self.tile_above,
                self.tile_budget,
            ) {
                r.members.iter_mut().for_each(|m| *m += offset);
                r.at += offset;
                regions.push(r);
            }
            offset += len;
        }
        let mut member_of: BTreeMap<usize, usize> = BTreeMap::new();
        for (r, region) in regions.iter().enumerate() {
            for &m in &region.members {
                member_of.insert(m, r);
            }
        }
        let mut end = 0usize;
        for &len in &parts {
            let begin = end;
            end += len;
            for k in begin..end {
                if self.too_large() {
                    return;
                }
                match member_of.get(&k) {
                    Some(&r) if regions[r].at == k => {
                        self.tiled_region(stage, group, &chosen, &regions[r]);
                    }
                    Some(_) => {}
                    None => self.op(stage.ops[k], group, &chosen[k]),
                }
            }
            // Results read after the block leave it in the boundary layout, as the placer priced
            // and sized them; the block's own copies die with their last reader inside it.
            for &o in &stage.ops[begin..end] {
                for &v in &g.op(o).outputs {
                    let later = self.readers[v.index()]
                        .iter()
                        .any(|r| !stage.ops[begin..end].contains(r));
                    if !later || g.outputs().contains(&v) {
                        continue;
                    }
                    let Some(&(home, layout)) = self.home.get(&v) else {
                        continue;
                    };
                    let boundary = boundary_layout(&self.dims(v), u64::from(group.n));
                    if home == group && layout != boundary {
                        let held = self.get(v, group, boundary);
                        // A chip holding more than its slice (a whole copy) cuts the slice out,
                        // so the whole copy can die.
                        let dims = self.dims(v);
                        let bufs: Vec<usize> = held
                            .iter()
                            .enumerate()
                            .map(|(j, &b)| {
                                let need = region(&dims, boundary, j as u32, group.n);
                                if self.regions[b] == need {
                                    return b;
                                }
                                let chip = group.first + j as u32;
                                self.stream_on("Cut", v, chip, need, vec![b], "boundary")
                            })
                            .collect();
                        // Later readers start from the boundary copy, never the block's own.
                        self.versions.retain(|(x, gr, _), _| *x != v || *gr != group);
                        self.versions.insert((v, group, boundary), bufs);
                        self.home.insert(v, (group, boundary));
                    }
                }
            }
        }
    }

    /// Emit op `o` on `group` with strategy `s`.
    pub(super) fn op(&mut self, o: OpId, group: Group, st: &Strategy) {
        let g = self.g;
        let op = g.op(o);
        let inputs: Vec<Vec<usize>> = op
            .inputs
            .iter()
            .zip(&st.inputs)
            .map(|(&v, &l)| self.get(v, group, l))
            .collect();
        let outputs: Vec<Vec<usize>> = op
            .outputs
            .iter()
            .enumerate()
            .map(|(r, &v)| {
                let layout = if r == 0 { st.output } else { Layout::Replicated };
                let dims = self.dims(v);
                let value = g.value(v);
                let bufs: Vec<usize> = (0..group.n)
                    .map(|j| {
                        let label = if group.n > 1 {
                            format!("{}@{}", value.name, group.first + j)
                        } else {
                            value.name.clone()
                        };
                        let region = region(&dims, layout, j, group.n);
                        self.buffer(
                            v,
                            group.first + j,
                            label,
                            BufferKind::Activation,
                            value.ty.dtype,
                            region,
                        )
                    })
                    .collect();
                self.versions.insert((v, group, layout), bufs.clone());
                self.home.insert(v, (group, layout));
                bufs
            })
            .collect();
        let prov = g.provenance(o);
        for j in 0..group.n as usize {
            self.prog.tasks.push(Task::Compute {
                chip: group.first + j as u32,
                work: st.work.clone(),
                step: Step::Op { op: o.index() as u32 },
                op: op.kind.name().to_string(),
                node: prov.node.clone(),
                onnx_op: prov.op_type.clone(),
                reads: inputs.iter().map(|b| b[j]).collect(),
                writes: outputs.iter().map(|b| b[j]).collect(),
                after: Vec::new(),
            });
        }
    }
}

/// The program of `g` placed as `plan` says, with weights stored at `weight_dtype`.
pub fn lower_placed(
    g: &Graph,
    plan: &[StagePlan],
    weight_dtype: Option<DType>,
    target: &Target,
    tile_above: u64,
    tile_budget: u64,
) -> Result<Program, super::super::ScheduleError> {
    let mut readers: Vec<Vec<OpId>> = vec![Vec::new(); g.num_values()];
    for o in g.op_ids() {
        for &v in &g.op(o).inputs {
            readers[v.index()].push(o);
        }
    }
    let mut l = Lowering {
        readers,
        node_chips: target.topology.chips_per_node.max(1),
        target,
        links: LinkModel::new(target),
        tile_above,
        tile_budget: tile_budget.max(1),
        g,
        weight_dtype,
        prog: Program::default(),
        versions: BTreeMap::new(),
        home: BTreeMap::new(),
        regions: Vec::new(),
    };
    for (k, stage) in plan.iter().enumerate() {
        l.stage(stage);
        if l.too_large() {
            return Err(super::super::ScheduleError::ProgramTooLarge {
                limit: MAX_TASKS,
                stage: k,
                stages: plan.len(),
            });
        }
    }
    // Graph outputs: reduced if partial, then marked as outputs wherever they are.
    for &v in g.outputs() {
        let bufs = match l.home.get(&v).copied() {
            Some((group, layout)) => {
                if layout == Layout::Partial {
                    let (reduced, bufs) = l.reduce(v, group, None);
                    l.versions.insert((v, group, reduced), bufs.clone());
                    l.home.insert(v, (group, reduced));
                    bufs
                } else {
                    l.versions[&(v, group, layout)].clone()
                }
            }
            None => continue,
        };
        for b in bufs {
            l.prog.buffers[b].kind = BufferKind::Output;
        }
    }
    l.prog.regions = std::mem::take(&mut l.regions);
    Ok(l.prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembly_must_read_each_element_once() {
        let whole: Region = vec![(0, 4), (0, 6)];
        let halves = [vec![(0, 2), (0, 6)], vec![(2, 4), (0, 6)]];
        assert!(tiles_exactly(&whole, &halves));
        // A superset counts for the part inside the target.
        assert!(tiles_exactly(&vec![(0, 2), (0, 6)], std::slice::from_ref(&whole)));
        // A gap, and an overlap, are both wrong.
        assert!(!tiles_exactly(&whole, &halves[..1]));
        assert!(!tiles_exactly(&whole, &[halves[0].clone(), whole.clone()]));
    }
}
