//! Lowering a placed graph to a system program: every op as one instruction per chip of its
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
use crate::placer::sharding::layout::Layout;
use crate::placer::sharding::problem::boundary_layout;
use crate::placer::sharding::strategies::{strategies, Strategy};
use crate::placer::StagePlan;
use lpuc_artifact::BufferKind;
use lpuc_ir::{DType, Graph, OpId, ValueId, ValueKind};
use lpuc_target::Work;
use std::collections::BTreeMap;

/// A buffer to be: where it lives and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufSpec {
    pub chip: u32,
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
}

/// Consecutive chips `first..first + n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    first: u32,
    n: u32,
}

/// Per axis, the half-open range of a value a chip holds.
type Region = Vec<(u64, u64)>;

/// The region chip `j` of `n` holds of a value of `dims` in `layout`.
fn region(dims: &[u64], layout: Layout, j: u32, n: u32) -> Region {
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

fn intersect(a: &Region, b: &Region) -> Option<Region> {
    let r: Region = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.0.max(y.0), x.1.min(y.1)))
        .collect();
    r.iter().all(|&(lo, hi)| lo < hi).then_some(r)
}

/// Tile `t` of `tiles` of region `r` along `axis`.
fn restrict(r: &Region, axis: usize, t: u64, tiles: u64) -> Region {
    let mut out = r.clone();
    let (lo, hi) = r[axis];
    out[axis] = (lo + t * (hi - lo) / tiles, lo + (t + 1) * (hi - lo) / tiles);
    out
}

fn contains(outer: &Region, inner: &Region) -> bool {
    outer.iter().zip(inner).all(|(o, i)| o.0 <= i.0 && i.1 <= o.1)
}

fn shape(r: &Region) -> Vec<u64> {
    r.iter().map(|&(lo, hi)| hi - lo).collect()
}

/// Builds the program stage by stage.
struct Lowering<'a> {
    g: &'a Graph,
    weight_dtype: Option<DType>,
    prog: Program,
    /// Every materialised version of a value: (group, layout) -> a buffer per chip.
    versions: BTreeMap<(ValueId, Group, Layout), Vec<usize>>,
    /// Where each computed value was produced, and in which layout.
    home: BTreeMap<ValueId, (Group, Layout)>,
    /// The region each buffer holds of its value.
    regions: Vec<Region>,
    node_chips: u32,
    /// Results above this (on one chip) run in tiles of at most `tile_budget`.
    tile_above: u64,
    tile_budget: u64,
}

impl<'a> Lowering<'a> {
    fn buffer(&mut self, chip: u32, name: String, kind: BufferKind, dtype: DType, region: Region) -> usize {
        self.prog.buffers.push(BufSpec {
            chip,
            name,
            kind,
            dtype,
            shape: shape(&region),
        });
        self.regions.push(region);
        self.prog.buffers.len() - 1
    }

    fn dims(&self, v: ValueId) -> Vec<u64> {
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
                self.buffer(group.first + j, label, kind, dtype, r)
            })
            .collect();
        self.versions.insert((v, group, layout), bufs.clone());
        bufs
    }

    /// `v` in `layout` on `group`, moving and reducing it as needed.
    fn get(&mut self, v: ValueId, group: Group, layout: Layout) -> Vec<usize> {
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

    /// Give every chip of `to` the region of `v` that `layout` assigns it, from the buffers `src`
    /// (one per chip of `from`). A group larger than a node gathers in two levels: first each
    /// node assembles its node's block, then chips exchange whole node blocks with their
    /// counterparts in the other nodes, so the number of transfers grows as n * (nodes + node
    /// size) instead of n^2, and each node pair's one global link carries node blocks.
    fn exchange(
        &mut self,
        v: ValueId,
        from: Group,
        src: &[usize],
        to: Group,
        layout: Layout,
        purpose: &'static str,
    ) -> Vec<usize> {
        let dims = self.dims(v);
        let node = self.node_chips;
        let hierarchical =
            from == to && to.n > node && to.n.is_multiple_of(node) && to.first.is_multiple_of(node);
        if hierarchical && layout == Layout::Replicated {
            // Which axis the sources are split along (a node block is 1/nodes of it).
            let axis = src.first().and_then(|&b| {
                self.regions[b]
                    .iter()
                    .zip(&dims)
                    .position(|(r, &d)| r.1 - r.0 != d)
            });
            if let Some(a) = axis {
                let nodes = to.n / node;
                let blocks: Vec<Region> = (0..to.n)
                    .map(|k| region(&dims, Layout::Split(a), k / node, nodes))
                    .collect();
                let mid = self.exchange_regions(v, from, src, to, blocks, purpose);
                let whole: Vec<Region> = (0..to.n)
                    .map(|k| region(&dims, Layout::Replicated, k, to.n))
                    .collect();
                return self.exchange_regions(v, to, &mid, to, whole, purpose);
            }
        }
        if hierarchical
            && matches!(layout, Layout::Split(_))
            && src.iter().any(|&b| {
                let r = &self.regions[b];
                !r.iter().zip(&dims).all(|(x, &d)| x.1 - x.0 == d)
            })
        {
            // Split to another split across nodes: gather whole in two levels, then each chip
            // reads its slice of the whole.
            return self.exchange(v, from, src, to, Layout::Replicated, purpose);
        }
        let needs: Vec<Region> = (0..to.n).map(|k| region(&dims, layout, k, to.n)).collect();
        self.exchange_regions(v, from, src, to, needs, purpose)
    }

    /// Give chip `to.first + k` the region `needs[k]` of `v` from the buffers `src` of `from`:
    /// each distinct piece once, from a holder on the receiver itself, else in the same position
    /// of its node, else spread; pieces that are not a sender's whole buffer are cut on the
    /// sender; a receiver with several pieces (or part of one) assembles them.
    fn exchange_regions(
        &mut self,
        v: ValueId,
        from: Group,
        src: &[usize],
        to: Group,
        needs: Vec<Region>,
        purpose: &'static str,
    ) -> Vec<usize> {
        let dtype = self.g.value(v).ty.dtype;
        let name = self.g.value(v).name.clone();
        let node = self.node_chips;
        // For each receiver: the pieces it gets, as (sender index, region).
        let mut wanted: Vec<(Region, Vec<(usize, Region)>)> = Vec::new();
        for (k, need) in needs.into_iter().enumerate() {
            let chip = to.first + k as u32;
            // A chip that already holds a superset reads it.
            if let Some(i) = (0..from.n as usize)
                .find(|&i| from.first + i as u32 == chip && contains(&self.regions[src[i]], &need))
            {
                wanted.push((need, vec![(i, self.regions[src[i]].clone())]));
                continue;
            }
            // Every distinct piece once: the receiver's own, else the holder in the same place
            // of its node, else the k-th holder round robin.
            let mut by_piece: BTreeMap<Region, Vec<usize>> = BTreeMap::new();
            for (i, &b) in src.iter().enumerate().take(from.n as usize) {
                if let Some(r) = intersect(&self.regions[b], &need) {
                    by_piece.entry(r).or_default().push(i);
                }
            }
            let pieces: Vec<(usize, Region)> = by_piece
                .into_iter()
                .map(|(r, holders)| {
                    let pick = holders
                        .iter()
                        .copied()
                        .find(|&i| from.first + i as u32 == chip)
                        .or_else(|| {
                            holders
                                .iter()
                                .copied()
                                .find(|&i| (from.first + i as u32) % node == chip % node)
                        })
                        .unwrap_or(holders[k % holders.len()]);
                    (pick, r)
                })
                .collect();
            wanted.push((need, pieces));
        }
        // Cut on each sender the pieces that are not its whole buffer and leave its chip (one
        // buffer per distinct piece, sent to every receiver that wants it).
        let mut cut_pieces: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for (i, &source) in src.iter().enumerate().take(from.n as usize) {
            let chip = from.first + i as u32;
            let mut writes = Vec::new();
            let mut made: BTreeMap<Region, usize> = BTreeMap::new();
            for (k, (_, pieces)) in wanted.iter().enumerate() {
                let receiver = to.first + k as u32;
                for (s, r) in pieces {
                    if *s == i && receiver != chip && *r != self.regions[source] {
                        let b = match made.get(r) {
                            Some(&b) => b,
                            None => {
                                let label = format!("{name}~cut{chip}#{}", made.len());
                                let b = self.buffer(chip, label, BufferKind::Activation, dtype, r.clone());
                                made.insert(r.clone(), b);
                                writes.push(b);
                                b
                            }
                        };
                        cut_pieces.insert((i, k), b);
                    }
                }
            }
            if !writes.is_empty() {
                let bytes = writes.iter().map(|&b| self.prog.buffers[b].bytes()).sum();
                self.prog.tasks.push(Task::Compute {
                    chip,
                    work: Work::Stream { bytes },
                    op: "Cut".into(),
                    node: name.clone(),
                    onnx_op: purpose.into(),
                    reads: vec![source],
                    writes,
                    after: Vec::new(),
                });
            }
        }
        // Send, then assemble where a receiver has more than one piece or only part of one.
        let mut out = Vec::with_capacity(wanted.len());
        for (k, (need, pieces)) in wanted.into_iter().enumerate() {
            let receiver = to.first + k as u32;
            let mut local: Vec<usize> = Vec::new();
            for (s, r) in &pieces {
                let sender = from.first + *s as u32;
                if sender == receiver {
                    local.push(src[*s]);
                    continue;
                }
                let from_buf = cut_pieces.get(&(*s, k)).copied().unwrap_or(src[*s]);
                let label = format!("{name}@{receiver}<{sender}");
                let to_buf = self.buffer(receiver, label, BufferKind::Activation, dtype, r.clone());
                self.prog.tasks.push(Task::Send {
                    from: from_buf,
                    to: to_buf,
                    purpose,
                    after: Vec::new(),
                });
                local.push(to_buf);
            }
            if local.len() == 1 && contains(&self.regions[local[0]], &need) {
                out.push(local[0]);
                continue;
            }
            let label = format!("{name}@{receiver}");
            let b = self.buffer(receiver, label, BufferKind::Activation, dtype, need);
            let bytes = self.prog.buffers[b].bytes();
            self.prog.tasks.push(Task::Compute {
                chip: receiver,
                work: Work::Stream { bytes },
                op: "Assemble".into(),
                node: name.clone(),
                onnx_op: purpose.into(),
                reads: local,
                writes: vec![b],
                after: Vec::new(),
            });
            out.push(b);
        }
        out
    }

    /// Reduce the partial sums of `v` on `group` to a split along `prefer` (or the first evenly
    /// dividing axis); when no axis divides, every chip sums every partial (a whole value). A
    /// group of whole nodes reduces in two levels: across nodes among chips in the same place
    /// (each gets the sum over nodes of its node's block), then inside each node (each chip its
    /// slice of that block), which leaves chip k with piece k and sends n * (nodes + node size)
    /// pieces instead of n^2.
    fn reduce(&mut self, v: ValueId, group: Group, prefer: Option<usize>) -> (Layout, Vec<usize>) {
        let dims = self.dims(v);
        let n = group.n;
        let partials = self.versions[&(v, group, Layout::Partial)].clone();
        let axis = prefer
            .filter(|&a| dims[a].is_multiple_of(u64::from(n)) && dims[a] >= u64::from(n))
            .or(match boundary_layout(&dims, u64::from(n)) {
                Layout::Split(a) => Some(a),
                _ => None,
            });
        let whole: Region = region(&dims, Layout::Replicated, 0, 1);
        let chips: Vec<u32> = (0..n).map(|j| group.first + j).collect();
        let Some(a) = axis else {
            let out = self.reduce_among(v, &chips, &partials, None, &whole);
            return (Layout::Replicated, out);
        };
        let node = self.node_chips;
        if n > node && n.is_multiple_of(node) && group.first.is_multiple_of(node) {
            let nodes = n / node;
            // Across nodes: chips in place i of every node reduce-scatter the whole value into
            // node blocks.
            let mut mid = vec![0usize; n as usize];
            for i in 0..node {
                let members: Vec<usize> = (0..nodes).map(|q| (q * node + i) as usize).collect();
                let member_chips: Vec<u32> = members.iter().map(|&m| chips[m]).collect();
                let bufs: Vec<usize> = members.iter().map(|&m| partials[m]).collect();
                let got = self.reduce_among(v, &member_chips, &bufs, Some(a), &whole);
                for (&m, b) in members.iter().zip(got) {
                    mid[m] = b;
                }
            }
            // Inside each node: the node's chips reduce-scatter their block.
            let mut out = vec![0usize; n as usize];
            for p in 0..nodes {
                let members: Vec<usize> = (0..node).map(|i| (p * node + i) as usize).collect();
                let member_chips: Vec<u32> = members.iter().map(|&m| chips[m]).collect();
                let bufs: Vec<usize> = members.iter().map(|&m| mid[m]).collect();
                let block = region(&dims, Layout::Split(a), p, nodes);
                let got = self.reduce_among(v, &member_chips, &bufs, Some(a), &block);
                for (&m, b) in members.iter().zip(got) {
                    out[m] = b;
                }
            }
            return (Layout::Split(a), out);
        }
        let out = self.reduce_among(v, &chips, &partials, Some(a), &whole);
        (Layout::Split(a), out)
    }

    /// `chips[k]` holds `bufs[k]`, a partial sum of `base` (a region of `v`); each ends with the
    /// full sum of its slice k of `base` along `axis` (of all of `base` when `None`).
    fn reduce_among(
        &mut self,
        v: ValueId,
        chips: &[u32],
        bufs: &[usize],
        axis: Option<usize>,
        base: &Region,
    ) -> Vec<usize> {
        let n = chips.len();
        let dtype = self.g.value(v).ty.dtype;
        let name = self.g.value(v).name.clone();
        let slice = |k: usize| -> Region {
            match axis {
                Some(a) => {
                    let mut r = base.clone();
                    let (lo, hi) = base[a];
                    let len = hi - lo;
                    r[a] = (
                        lo + k as u64 * len / n as u64,
                        lo + (k as u64 + 1) * len / n as u64,
                    );
                    r
                }
                None => base.clone(),
            }
        };
        if n == 1 {
            return bufs.to_vec();
        }
        // Piece k of member i's partial, sent to member k.
        let mut received: Vec<Vec<(u32, usize)>> = vec![Vec::new(); n];
        for i in 0..n {
            let mut writes = Vec::new();
            for (k, got) in received.iter_mut().enumerate() {
                if k == i {
                    continue;
                }
                let piece = if axis.is_some() {
                    let b = self.buffer(
                        chips[i],
                        format!("{name}~part{}>{}", chips[i], chips[k]),
                        BufferKind::Activation,
                        dtype,
                        slice(k),
                    );
                    writes.push(b);
                    b
                } else {
                    bufs[i]
                };
                got.push((chips[i], piece));
            }
            if !writes.is_empty() {
                let bytes = writes.iter().map(|&b| self.prog.buffers[b].bytes()).sum();
                self.prog.tasks.push(Task::Compute {
                    chip: chips[i],
                    work: Work::Stream { bytes },
                    op: "Cut".into(),
                    node: name.clone(),
                    onnx_op: "reduce".into(),
                    reads: vec![bufs[i]],
                    writes,
                    after: Vec::new(),
                });
            }
        }
        let mut out = Vec::with_capacity(n);
        for (k, got) in received.into_iter().enumerate() {
            let chip = chips[k];
            let mut reads = vec![bufs[k]];
            for (sender, piece) in got {
                let r = self.regions[piece].clone();
                let to_buf = self.buffer(
                    chip,
                    format!("{name}~part{sender}@{chip}"),
                    BufferKind::Activation,
                    dtype,
                    r,
                );
                self.prog.tasks.push(Task::Send {
                    from: piece,
                    to: to_buf,
                    purpose: if axis.is_some() {
                        "reduce-scatter"
                    } else {
                        "all-reduce"
                    },
                    after: Vec::new(),
                });
                reads.push(to_buf);
            }
            let r = slice(k);
            let elements: u64 = shape(&r).iter().product();
            let b = self.buffer(
                chip,
                format!("{name}~sum@{chip}"),
                BufferKind::Activation,
                dtype,
                r,
            );
            self.prog.tasks.push(Task::Compute {
                chip,
                work: Work::Vector {
                    op: "Add".into(),
                    elements: elements.saturating_mul(n as u64 - 1),
                    dtype,
                },
                op: if axis.is_some() {
                    "ReduceScatter"
                } else {
                    "AllReduce"
                }
                .into(),
                node: name.clone(),
                onnx_op: "reduce".into(),
                reads,
                writes: vec![b],
                after: Vec::new(),
            });
            out.push(b);
        }
        out
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
                let list = strategies(g, o, u64::from(group.n));
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
                    let later = g
                        .op_ids()
                        .filter(|r| !stage.ops[begin..end].contains(r))
                        .any(|r| g.op(r).inputs.contains(&v));
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
                        let dtype = g.value(v).ty.dtype;
                        let name = g.value(v).name.clone();
                        let bufs: Vec<usize> = held
                            .iter()
                            .enumerate()
                            .map(|(j, &b)| {
                                let need = region(&dims, boundary, j as u32, group.n);
                                if self.regions[b] == need {
                                    return b;
                                }
                                let chip = group.first + j as u32;
                                let cut = self.buffer(
                                    chip,
                                    format!("{name}@{chip}"),
                                    BufferKind::Activation,
                                    dtype,
                                    need,
                                );
                                let bytes = self.prog.buffers[cut].bytes();
                                self.prog.tasks.push(Task::Compute {
                                    chip,
                                    work: Work::Stream { bytes },
                                    op: "Cut".into(),
                                    node: name.clone(),
                                    onnx_op: "boundary".into(),
                                    reads: vec![b],
                                    writes: vec![cut],
                                    after: Vec::new(),
                                });
                                cut
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

    /// Emit a region tile by tile: every member's share of tile t, in program order, then every
    /// result read outside the region assembled from its tiles.
    fn tiled_region(&mut self, stage: &StagePlan, group: Group, chosen: &[Strategy], run: &tiles::Region) {
        let g = self.g;
        let n = group.n;
        let members: BTreeMap<usize, usize> = run.members.iter().enumerate().map(|(i, &m)| (m, i)).collect();
        let producer_member = |v: ValueId| match g.value(v).kind {
            ValueKind::Computed { producer } => stage
                .ops
                .iter()
                .position(|&o| o == producer)
                .filter(|k| members.contains_key(k)),
            _ => None,
        };
        // Inputs from outside the region: whole on each chip, except results of this stage that a
        // member reads along its tile axis, which each tile fetches only its slice of (so a large
        // operand is never gathered whole).
        let mut outside: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        let mut sliced: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for (mi, &k) in run.members.iter().enumerate() {
            let along = tiles::split_along(g, stage.ops[k], run.axis[mi]);
            for (i, &v) in g.op(stage.ops[k]).inputs.iter().enumerate() {
                if producer_member(v).is_some() {
                    continue;
                }
                let home = self.home.get(&v).copied();
                let tile_axis = match along.as_ref().map(|s| s.inputs[i]) {
                    Some(Layout::Split(x)) => Some(x),
                    _ => None,
                };
                match (home, tile_axis) {
                    (Some((h, l)), Some(x)) if h == group && l != Layout::Partial => {
                        sliced.insert((k, i), x);
                    }
                    _ => {
                        let bufs = self.get(v, group, chosen[k].inputs[i]);
                        outside.insert((k, i), bufs);
                    }
                }
            }
        }
        // tiles_of[member index][t][chip] = the tile's result buffer; last_task[t][chip] = the
        // task of tile t's last member on that chip.
        let mut tiles_of: Vec<Vec<Vec<usize>>> = vec![Vec::new(); run.members.len()];
        let mut last_task: Vec<Vec<usize>> = vec![vec![0; n as usize]; run.tiles as usize];
        // Which members' results leave the region, and for partial sums the axis each tile's
        // reduction scatters along (not the tiles' own).
        let leaves: Vec<bool> = run
            .members
            .iter()
            .map(|&k| {
                let v = g.op(stage.ops[k]).outputs[0];
                g.outputs().contains(&v)
                    || g.op_ids().any(|r| {
                        g.op(r).inputs.contains(&v)
                            && stage
                                .ops
                                .iter()
                                .position(|&x| x == r)
                                .is_none_or(|p| !members.contains_key(&p))
                    })
            })
            .collect();
        let reduce_axis: Vec<Option<usize>> = run
            .members
            .iter()
            .enumerate()
            .map(|(mi, &k)| {
                let dims = self.dims(g.op(stage.ops[k]).outputs[0]);
                (leaves[mi] && chosen[k].output == Layout::Partial && n > 1)
                    .then(|| {
                        (0..dims.len()).find(|&a| {
                            a != run.axis[mi]
                                && dims[a].is_multiple_of(u64::from(n))
                                && dims[a] >= u64::from(n)
                        })
                    })
                    .flatten()
            })
            .collect();
        // reduced[member index][chip] = that chip's reduced pieces, one per tile.
        let mut reduced: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); n as usize]; run.members.len()];
        let chips: Vec<u32> = (0..n).map(|j| group.first + j).collect();
        for t in 0..run.tiles {
            for (mi, &k) in run.members.iter().enumerate() {
                let o = stage.ops[k];
                let op = g.op(o);
                let v = op.outputs[0];
                let dims = self.dims(v);
                let value = g.value(v);
                let work = tiles::tile_work(g, o, &chosen[k].work, run.axis[mi], run.tiles)
                    .expect("regions are only formed when every tile's work divides exactly");
                let mut outs = Vec::with_capacity(n as usize);
                for j in 0..n {
                    let r = restrict(&region(&dims, chosen[k].output, j, n), run.axis[mi], t, run.tiles);
                    let label = format!("{}@{}#{t}", value.name, group.first + j);
                    outs.push(self.buffer(group.first + j, label, BufferKind::Activation, value.ty.dtype, r));
                }
                let prov = g.provenance(o);
                // This tile's slices of the operands fetched tile by tile.
                let mut fetched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for (i, &x) in op.inputs.iter().enumerate() {
                    if let Some(&axis) = sliced.get(&(k, i)) {
                        let (h, l) = self.home[&x];
                        let src = self.versions[&(x, h, l)].clone();
                        let dims = self.dims(x);
                        let needs: Vec<Region> = (0..n)
                            .map(|j| restrict(&region(&dims, chosen[k].inputs[i], j, n), axis, t, run.tiles))
                            .collect();
                        let first_task = self.prog.tasks.len();
                        fetched.insert(i, self.exchange_regions(x, h, &src, group, needs, "tile"));
                        // The fetch of tile t waits for tile t-2 too, or it would fill SRAM early.
                        if t >= 2 {
                            for task in first_task..self.prog.tasks.len() {
                                let chip = match &self.prog.tasks[task] {
                                    Task::Compute { chip, .. } => *chip,
                                    Task::Send { from, .. } => self.prog.buffers[*from].chip,
                                };
                                if let Some(j) = chip.checked_sub(group.first).filter(|&j| j < n) {
                                    let before = last_task[(t - 2) as usize][j as usize];
                                    match &mut self.prog.tasks[task] {
                                        Task::Compute { after, .. } | Task::Send { after, .. } => {
                                            after.push(before)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                for j in 0..n as usize {
                    let reads: Vec<usize> = op
                        .inputs
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| match producer_member(x) {
                            Some(p) => tiles_of[members[&p]][t as usize][j],
                            None => fetched.get(&i).map_or_else(|| outside[&(k, i)][j], |b| b[j]),
                        })
                        .collect();
                    // At most two tiles in flight on a chip: tile t waits for tile t-2's end.
                    let after = (t >= 2)
                        .then(|| last_task[(t - 2) as usize][j])
                        .into_iter()
                        .collect();
                    self.prog.tasks.push(Task::Compute {
                        chip: group.first + j as u32,
                        work: work.clone(),
                        op: op.kind.name().to_string(),
                        node: prov.node.clone(),
                        onnx_op: prov.op_type.clone(),
                        reads,
                        writes: vec![outs[j]],
                        after,
                    });
                    if mi + 1 == run.members.len() {
                        last_task[t as usize][j] = self.prog.tasks.len() - 1;
                    }
                }
                // A partial sum leaving the region is reduced tile by tile, right away, so no
                // chip holds more than a tile of it.
                if let Some(a) = reduce_axis[mi] {
                    let base = self.regions[outs[0]].clone();
                    let got = self.reduce_among(g.op(o).outputs[0], &chips, &outs, Some(a), &base);
                    for (j, b) in got.into_iter().enumerate() {
                        reduced[mi][j].push(b);
                    }
                }
                tiles_of[mi].push(outs);
            }
        }
        // Results read outside the region: assembled on each chip from its tiles.
        for (mi, &k) in run.members.iter().enumerate() {
            let o = stage.ops[k];
            let v = g.op(o).outputs[0];
            if !leaves[mi] {
                continue;
            }
            let dims = self.dims(v);
            let layout = chosen[k].output;
            let value = g.value(v);
            if let Some(a) = reduce_axis[mi] {
                // Each chip assembles its slice from its reduced pieces.
                let out = Layout::Split(a);
                let bufs: Vec<usize> = (0..n)
                    .map(|j| {
                        let r = region(&dims, out, j, n);
                        let b = self.buffer(
                            group.first + j,
                            format!("{}@{}", value.name, group.first + j),
                            BufferKind::Activation,
                            value.ty.dtype,
                            r,
                        );
                        let bytes = self.prog.buffers[b].bytes();
                        self.prog.tasks.push(Task::Compute {
                            chip: group.first + j,
                            work: Work::Stream { bytes },
                            op: "Assemble".into(),
                            node: value.name.clone(),
                            onnx_op: "tiles".into(),
                            reads: reduced[mi][j as usize].clone(),
                            writes: vec![b],
                            after: Vec::new(),
                        });
                        b
                    })
                    .collect();
                self.versions.insert((v, group, out), bufs);
                self.home.insert(v, (group, out));
                continue;
            }
            let bufs: Vec<usize> = (0..n)
                .map(|j| {
                    let r = region(&dims, layout, j, n);
                    let b = self.buffer(
                        group.first + j,
                        format!("{}@{}", value.name, group.first + j),
                        BufferKind::Activation,
                        value.ty.dtype,
                        r,
                    );
                    let bytes = self.prog.buffers[b].bytes();
                    self.prog.tasks.push(Task::Compute {
                        chip: group.first + j,
                        work: Work::Stream { bytes },
                        op: "Assemble".into(),
                        node: value.name.clone(),
                        onnx_op: "tiles".into(),
                        reads: (0..run.tiles as usize)
                            .map(|t| tiles_of[mi][t][j as usize])
                            .collect(),
                        writes: vec![b],
                        after: Vec::new(),
                    });
                    b
                })
                .collect();
            self.versions.insert((v, group, layout), bufs);
            self.home.insert(v, (group, layout));
        }
    }

    /// Emit op `o` on `group` with strategy `s`.
    fn op(&mut self, o: OpId, group: Group, st: &Strategy) {
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
    node_chips: u32,
    tile_above: u64,
    tile_budget: u64,
) -> Program {
    let mut l = Lowering {
        node_chips: node_chips.max(1),
        tile_above,
        tile_budget: tile_budget.max(1),
        g,
        weight_dtype,
        prog: Program::default(),
        versions: BTreeMap::new(),
        home: BTreeMap::new(),
        regions: Vec::new(),
    };
    for stage in plan {
        l.stage(stage);
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
    l.prog
}
