//! One block's sharding problem: its ops' strategies, the resharding cost on every edge, and the
//! SRAM each choice keeps resident. Both solvers read it, and [`Problem::evaluate`] is the single
//! judge of a choice (the ILP's answer is re-evaluated here, never taken from the solver).
//!
//! Cost of a choice = sum over ops of the strategy's compute (occupancy over the units of its
//! kind) + sum over edges inside the block of the collective that turns the producer's layout into
//! the one the consumer needs + for every value crossing the block's edge, the collective between
//! the boundary layout ([`boundary_layout`]: split along the first evenly dividing axis) and the
//! layout its producer gives or its consumer needs. Weights and graph inputs are stored in the layout their
//! readers need (split: 1/g a chip); a value read in two layouts is stored twice.

use super::layout::{kind_index, Change, Collective, Layout, LinkModel};
use super::strategies::{strategies_at, Strategy};
use lpuc_ir::{DType, Graph, OpId, ValueId, ValueKind};
use lpuc_target::Target;
use std::collections::BTreeMap;

/// An edge inside the block: op `consumer`'s input `input` is op `producer`'s result.
#[derive(Clone, Debug)]
pub struct Edge {
    pub producer: usize,
    pub consumer: usize,
    pub input: usize,
    pub bytes: u64,
    pub elements: u64,
    pub dtype: DType,
}

/// The whole copies gathered under a choice: per op, the bytes it fetches a slice at a time for
/// its own moment; per value gathered whole, (first reader, last reader, bytes).
struct Gathers {
    moments: Vec<u64>,
    held: BTreeMap<ValueId, (usize, usize, u64)>,
}

/// A value computed before the block, read by op `consumer` at input `input`; it arrives in
/// `layout`.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub consumer: usize,
    pub input: usize,
    pub layout: Layout,
    pub bytes: u64,
    pub elements: u64,
    pub dtype: DType,
}

/// How blocks hand values to each other on a group of `ways`: split along the first axis that
/// divides evenly (the sequence of a prefill, the hidden size of a decode step), or whole when
/// none does. Splitting keeps a chip's share of the incoming activations at 1/ways.
pub fn boundary_layout(dims: &[u64], ways: u64) -> Layout {
    if ways <= 1 {
        return Layout::Replicated;
    }
    dims.iter()
        .position(|&d| d > 1 && d >= ways && d % ways == 0)
        .map_or(Layout::Replicated, Layout::Split)
}

/// A weight or graph input read by the block.
#[derive(Clone, Debug)]
pub struct Resident {
    pub value: ValueId,
    pub bytes: u64,
    /// (op index, input index) of every read in the block.
    pub reads: Vec<(usize, usize)>,
    /// Whether its bytes count against this block (a value several blocks share is counted by
    /// the placer once per stage instead).
    pub counted: bool,
}

/// What a block's problem needs to know of the rest of the graph and the placement.
#[derive(Clone, Copy)]
pub struct BlockContext<'a> {
    /// Whether a weight's or input's bytes belong to this block (a value several blocks share is
    /// counted by the placer once per stage instead).
    pub counted: &'a dyn Fn(ValueId) -> bool,
    /// Whether a result is read after the block (or is a graph output).
    pub read_outside: &'a dyn Fn(ValueId) -> bool,
    /// A weight's or input's size as stored.
    pub stored_bytes: &'a dyn Fn(ValueId) -> u64,
    /// The placement's weight storage dtype, which also sets the MXM rate of matmuls reading
    /// float weights.
    pub weight_dtype: Option<DType>,
}

/// A block's problem on a group of `ways` chips.
#[derive(Clone)]
pub struct Problem {
    pub ways: u64,
    pub ops: Vec<OpId>,
    pub strategies: Vec<Vec<Strategy>>,
    /// Compute cycles per op per strategy (`u64::MAX` when the target cannot run it).
    pub compute: Vec<Vec<u64>>,
    pub edges: Vec<Edge>,
    pub arrivals: Vec<Arrival>,
    pub residents: Vec<Resident>,
    /// Per op, per strategy: the collectives at the block's edges: its result leaving in the
    /// boundary layout (when a later block reads it) and its inputs from earlier blocks arriving
    /// in theirs.
    pub leaving: Vec<Vec<u64>>,
    /// Per op: the layout its result leaves the block in, when a later block reads it.
    pub leaves: Vec<Option<Layout>>,
    links: LinkModel,
}

/// What a choice costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub cycles: u64,
    /// Resident bytes a chip holds (counted residents only).
    pub bytes_per_chip: u64,
}

fn value_bytes(g: &Graph, v: ValueId) -> u64 {
    g.value(v).ty.size_bytes().unwrap_or(u64::MAX)
}

impl Problem {
    /// This problem without the strategies that leave a result larger than `above` bytes whole
    /// (replicated, or partial sums) on every chip, where the op has a split strategy it can run;
    /// `None` when no strategy is left out.
    pub fn without_large_copies(&self, g: &Graph, above: u64) -> Option<Problem> {
        let mut lean = self.clone();
        let mut changed = false;
        for (k, &o) in self.ops.iter().enumerate() {
            let Some(&v) = g.op(o).outputs.first() else {
                continue;
            };
            if value_bytes(g, v) <= above {
                continue;
            }
            let whole = |s: usize| !matches!(self.strategies[k][s].output, Layout::Split(_));
            let runnable = |s: usize| self.compute[k][s] != u64::MAX && self.leaving[k][s] != u64::MAX;
            let n = self.strategies[k].len();
            if !(0..n).any(|s| !whole(s) && runnable(s)) {
                continue;
            }
            for s in (0..n).filter(|&s| whole(s) && runnable(s)) {
                lean.compute[k][s] = u64::MAX;
                changed = true;
            }
        }
        changed.then_some(lean)
    }

    /// The problem of ops `ops` (in program order) on `ways` chips, in `ctx`.
    pub fn new(g: &Graph, ops: &[OpId], ways: u64, target: &Target, ctx: &BlockContext) -> Problem {
        let BlockContext {
            counted,
            read_outside,
            stored_bytes,
            weight_dtype,
        } = *ctx;
        let links = LinkModel::new(target);
        let index: BTreeMap<OpId, usize> = ops.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        let units = [target.mxm.count, target.vxm.count, target.sxm.count].map(|c| u64::from(c).max(1));
        let strategies: Vec<Vec<Strategy>> = ops
            .iter()
            .map(|&o| strategies_at(g, o, ways, weight_dtype))
            .collect();
        let compute = strategies
            .iter()
            .map(|list| {
                list.iter()
                    .map(|s| {
                        let per = units[kind_index(s.work.unit_kind())];
                        target
                            .cost(&s.work)
                            .map_or(u64::MAX, |c| c.occupancy.div_ceil(per))
                    })
                    .collect()
            })
            .collect();
        let mut edges = Vec::new();
        let mut arrivals = Vec::new();
        let mut residents: Vec<Resident> = Vec::new();
        let mut resident_of: BTreeMap<ValueId, usize> = BTreeMap::new();
        for (c, &o) in ops.iter().enumerate() {
            for (i, &v) in g.op(o).inputs.iter().enumerate() {
                let value = g.value(v);
                match value.kind {
                    ValueKind::Computed { producer } => {
                        let bytes = value_bytes(g, v);
                        let elements = value.ty.shape.num_elements().unwrap_or(u64::MAX);
                        let dtype = value.ty.dtype;
                        match index.get(&producer) {
                            Some(&p) => edges.push(Edge {
                                producer: p,
                                consumer: c,
                                input: i,
                                bytes,
                                elements,
                                dtype,
                            }),
                            None => arrivals.push(Arrival {
                                consumer: c,
                                input: i,
                                layout: boundary_layout(value.ty.shape.dims(), ways),
                                bytes,
                                elements,
                                dtype,
                            }),
                        }
                    }
                    ValueKind::Weight { .. } | ValueKind::Input => {
                        let r = *resident_of.entry(v).or_insert_with(|| {
                            residents.push(Resident {
                                value: v,
                                bytes: stored_bytes(v),
                                reads: vec![],
                                counted: counted(v),
                            });
                            residents.len() - 1
                        });
                        residents[r].reads.push((c, i));
                    }
                }
            }
        }
        let leaves: Vec<Option<Layout>> = ops
            .iter()
            .map(|&o| {
                let op = g.op(o);
                op.outputs
                    .iter()
                    .any(|&v| read_outside(v))
                    .then(|| boundary_layout(g.value(op.outputs[0]).ty.shape.dims(), ways))
            })
            .collect();
        // Per op: the cost of its result leaving the block in the boundary layout, and of its
        // inputs arriving from earlier blocks, per strategy.
        let mut leaving: Vec<Vec<u64>> = ops
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let op = g.op(o);
                let out = op.outputs[0];
                let escapes = leaves[k].is_some();
                strategies[k]
                    .iter()
                    .map(|s| {
                        if !escapes {
                            return 0;
                        }
                        let ty = &g.value(out).ty;
                        links.reshard(
                            s.output,
                            boundary_layout(ty.shape.dims(), ways),
                            value_bytes(g, out),
                            ty.shape.num_elements().unwrap_or(u64::MAX),
                            ty.dtype,
                            ways,
                        )
                    })
                    .collect()
            })
            .collect();
        for a in &arrivals {
            for (s, cost) in leaving[a.consumer].iter_mut().enumerate() {
                let need = strategies[a.consumer][s].inputs[a.input];
                *cost =
                    cost.saturating_add(links.reshard(a.layout, need, a.bytes, a.elements, a.dtype, ways));
            }
        }
        Problem {
            ways,
            ops: ops.to_vec(),
            strategies,
            compute,
            edges,
            arrivals,
            residents,
            leaving,
            leaves,
            links,
        }
    }

    /// A lower bound on the cycles of any choice: each op at its cheapest strategy, and no
    /// collective at all.
    pub fn lower_bound(&self) -> u64 {
        self.compute
            .iter()
            .map(|row| row.iter().copied().min().unwrap_or(0))
            .fold(0u64, u64::saturating_add)
    }

    /// The link figures collectives are priced with.
    pub fn links(&self) -> &LinkModel {
        &self.links
    }

    /// Cycles of edge `e` when its producer runs strategy `sp` and its consumer `sc`.
    pub fn edge_cost(&self, e: &Edge, sp: usize, sc: usize) -> u64 {
        let from = self.strategies[e.producer][sp].output;
        let to = self.strategies[e.consumer][sc].inputs[e.input];
        self.links
            .reshard(from, to, e.bytes, e.elements, e.dtype, self.ways)
    }

    /// Bytes a chip holds of resident `r` in `layout`.
    pub fn resident_bytes(&self, r: &Resident, layout: Layout) -> u64 {
        match layout {
            Layout::Split(_) => r.bytes.div_ceil(self.ways),
            _ => r.bytes,
        }
    }

    /// The cost and resident bytes of `choice` (a strategy index per op).
    pub fn evaluate(&self, choice: &[usize]) -> Evaluation {
        let mut cycles = 0u64;
        for (k, &s) in choice.iter().enumerate() {
            cycles = cycles
                .saturating_add(self.compute[k][s])
                .saturating_add(self.leaving[k][s]);
        }
        for e in &self.edges {
            cycles = cycles.saturating_add(self.edge_cost(e, choice[e.producer], choice[e.consumer]));
        }
        Evaluation {
            cycles,
            bytes_per_chip: self.bytes_of(choice),
        }
    }

    /// Resident bytes a chip holds under `choice`: each counted resident once per layout read.
    pub fn bytes_of(&self, choice: &[usize]) -> u64 {
        let mut total = 0u64;
        for r in self.residents.iter().filter(|r| r.counted) {
            let mut layouts: Vec<Layout> = r
                .reads
                .iter()
                .map(|&(op, input)| self.strategies[op][choice[op]].inputs[input])
                .collect();
            layouts.sort();
            layouts.dedup();
            for l in layouts {
                total = total.saturating_add(self.resident_bytes(r, l));
            }
        }
        total
    }

    /// Activation bytes one chip holds at once under `choice`, in program order: each result in
    /// its layout (a split one at 1/ways) from its op to its last reader in the block (to the
    /// end when a later block reads it), plus the whole copies readers gather. A value read whole
    /// in another layout than it has (made in the block, or arriving from an earlier one) is
    /// gathered once, at its first such reader, and held to its last (the scheduler keeps a
    /// version of a value until its last reader). The results of ops in `tiled` (members of
    /// regions the scheduler runs tile by tile whose results stay inside) count as two of their
    /// region's tiles (double buffering; `in_region` gives every member its region's tile
    /// count); so do the whole copies gathered for the inputs in `sliced` (a tiled region's
    /// member reading them along its tile axis fetches them a slice at a time, for its own
    /// moment only), and the partial sums of a member of a region leaving it count at their
    /// reduced share plus two tiles.
    pub fn activation_peak(
        &self,
        g: &Graph,
        choice: &[usize],
        tiled: &std::collections::BTreeSet<usize>,
        in_region: &BTreeMap<usize, u64>,
        sliced: &std::collections::BTreeSet<(usize, usize)>,
    ) -> u64 {
        let on_chip = |bytes: u64, layout: Layout| match layout {
            Layout::Split(_) => bytes.div_ceil(self.ways),
            _ => bytes,
        };
        // Last reader in the block of each op's result (none: only read later, or never).
        let mut last: Vec<Option<usize>> = vec![None; self.ops.len()];
        for e in &self.edges {
            last[e.producer] = Some(last[e.producer].map_or(e.consumer, |l: usize| l.max(e.consumer)));
        }
        // Two tiles of a value `tiles` tiles make (one being made, one being read).
        let two_tiles = |bytes: u64, tiles: u64| bytes.min(bytes.div_ceil(tiles.max(1)).saturating_mul(2));
        let gathers = self.gathers(g, choice, in_region, sliced, two_tiles);
        let mut live = 0u64;
        let mut peak = 0u64;
        let mut ends: Vec<Vec<u64>> = vec![Vec::new(); self.ops.len()];
        for (k, &o) in self.ops.iter().enumerate() {
            let st = &self.strategies[k][choice[k]];
            let size = |bytes: u64| match in_region.get(&k) {
                Some(&t) if tiled.contains(&k) => two_tiles(bytes, t),
                _ => bytes,
            };
            let mut made = 0u64;
            for (r, &v) in g.op(o).outputs.iter().enumerate() {
                let layout = if r == 0 { st.output } else { Layout::Replicated };
                let bytes = value_bytes(g, v);
                made = made.saturating_add(
                    if let (Layout::Partial, Some(&t), false) =
                        (layout, in_region.get(&k), tiled.contains(&k))
                    {
                        // Partial sums leaving a tiled region are reduced tile by tile: a chip keeps
                        // its reduced share of each tile, and two tiles of partials at a time.
                        bytes.div_ceil(self.ways).saturating_add(two_tiles(bytes, t))
                    } else {
                        size(on_chip(bytes, layout))
                    },
                );
            }
            // Whole copies held while this op runs.
            let gathered = gathers.moments[k].saturating_add(
                gathers
                    .held
                    .values()
                    .filter(|&&(first, last, _)| first <= k && k <= last)
                    .fold(0u64, |a, &(_, _, bytes)| a.saturating_add(bytes)),
            );
            live = live.saturating_add(made);
            peak = peak.max(live.saturating_add(gathered));
            // Read by a later block, or by nothing: kept to the block's end.
            if let (Some(l), None) = (last[k], self.leaves[k]) {
                ends[l].push(made);
            }
            for freed in std::mem::take(&mut ends[k]) {
                live = live.saturating_sub(freed);
            }
        }
        peak
    }

    /// The whole copies of values that readers under `choice` gather (see
    /// [`Problem::activation_peak`]).
    fn gathers(
        &self,
        g: &Graph,
        choice: &[usize],
        in_region: &BTreeMap<usize, u64>,
        sliced: &std::collections::BTreeSet<(usize, usize)>,
        two_tiles: impl Fn(u64, u64) -> u64,
    ) -> Gathers {
        // Every input read in another layout than the value has: (reader, input, from, bytes).
        let reads = self
            .edges
            .iter()
            .map(|e| {
                let from = self.strategies[e.producer][choice[e.producer]].output;
                (e.consumer, e.input, from, e.bytes)
            })
            .chain(
                self.arrivals
                    .iter()
                    .map(|a| (a.consumer, a.input, a.layout, a.bytes)),
            );
        let mut out = Gathers {
            moments: vec![0; self.ops.len()],
            held: BTreeMap::new(),
        };
        for (k, input, from, bytes) in reads {
            let to = self.strategies[k][choice[k]].inputs[input];
            if from == to || to != Layout::Replicated {
                continue;
            }
            match in_region.get(&k).filter(|_| sliced.contains(&(k, input))) {
                Some(&tiles) => out.moments[k] = out.moments[k].saturating_add(two_tiles(bytes, tiles)),
                None => {
                    let v = g.op(self.ops[k]).inputs[input];
                    let span = out.held.entry(v).or_insert((k, k, bytes));
                    span.0 = span.0.min(k);
                    span.1 = span.1.max(k);
                }
            }
        }
        out
    }

    /// The collectives `choice` needs, by kind, with how many of each.
    pub fn collectives(&self, choice: &[usize]) -> BTreeMap<Collective, u64> {
        let mut out = BTreeMap::new();
        let mut note = |from: Layout, to: Layout| {
            if let Change::By(c) = Collective::between(from, to) {
                *out.entry(c).or_insert(0) += 1;
            }
        };
        for e in &self.edges {
            note(
                self.strategies[e.producer][choice[e.producer]].output,
                self.strategies[e.consumer][choice[e.consumer]].inputs[e.input],
            );
        }
        for a in &self.arrivals {
            note(
                a.layout,
                self.strategies[a.consumer][choice[a.consumer]].inputs[a.input],
            );
        }
        for (k, &s) in choice.iter().enumerate() {
            if let Some(layout) = self.leaves[k] {
                note(self.strategies[k][s].output, layout);
            }
        }
        out
    }
}

impl LinkModel {
    /// Cycles to turn `from` into `to` for a tensor of `bytes`; `u64::MAX` when impossible.
    pub fn reshard(
        &self,
        from: Layout,
        to: Layout,
        bytes: u64,
        elements: u64,
        dtype: DType,
        ways: u64,
    ) -> u64 {
        match Collective::between(from, to) {
            Change::Free => 0,
            Change::By(c) => self.cycles(c, bytes, elements, dtype, ways),
            Change::Impossible => u64::MAX,
        }
    }
}
