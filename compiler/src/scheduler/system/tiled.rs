//! Emitting a region of large results tile by tile (see `tiles` for how regions are found): every
//! member's share of tile t in program order, operands fetched a slice at a time, partial sums
//! reduced per tile, at most two tiles in flight per chip, and results that leave the region
//! assembled from their tiles.

use super::lower::{region, restrict, Group, Lowering, Region, Task};
use super::reduce::scatter_axis;
use super::tiles;
use crate::placer::sharding::layout::Layout;
use crate::placer::sharding::problem::boundary_layout;
use crate::placer::sharding::strategies::Strategy;
use crate::placer::StagePlan;
use lpuc_artifact::{BufferKind, Step};
use lpuc_ir::{ValueId, ValueKind};
use std::collections::BTreeMap;

impl Lowering<'_> {
    /// Emit a region tile by tile: every member's share of tile t, in program order, then every
    /// result read outside the region assembled from its tiles.
    pub(super) fn tiled_region(
        &mut self,
        stage: &StagePlan,
        group: Group,
        chosen: &[Strategy],
        run: &tiles::Region,
    ) {
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
        // Inputs from outside the region: whole on each chip, except computed values a member
        // reads along its tile axis, which each tile fetches only its slice of (so a large
        // operand is never gathered whole): from where this stage made them, or, made by an
        // earlier stage, from the copy that arrived in this group's boundary layout.
        let mut outside: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        let mut sliced: BTreeMap<(usize, usize), (usize, Group, Layout)> = BTreeMap::new();
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
                        sliced.insert((k, i), (x, h, l));
                    }
                    (Some((h, _)), Some(x)) if h != group => {
                        let boundary = boundary_layout(&self.dims(v), u64::from(n));
                        self.get(v, group, boundary);
                        sliced.insert((k, i), (x, group, boundary));
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
                    || self.readers[v.index()].iter().any(|&r| {
                        stage
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
                    .then(|| scatter_axis(&dims, n, Some(run.axis[mi])))
                    .flatten()
            })
            .collect();
        // reduced[member index][chip] = that chip's reduced pieces, one per tile.
        let mut reduced: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); n as usize]; run.members.len()];
        let chips: Vec<u32> = (0..n).map(|j| group.first + j).collect();
        for t in 0..run.tiles {
            if self.too_large() {
                return;
            }
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
                    outs.push(self.buffer(
                        v,
                        group.first + j,
                        label,
                        BufferKind::Activation,
                        value.ty.dtype,
                        r,
                    ));
                }
                let prov = g.provenance(o);
                // This tile's slices of the operands fetched tile by tile.
                let mut fetched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for (i, &x) in op.inputs.iter().enumerate() {
                    if let Some(&(axis, h, l)) = sliced.get(&(k, i)) {
                        let src = self.versions[&(x, h, l)].clone();
                        let dims = self.dims(x);
                        let needs: Vec<Region> = (0..n)
                            .map(|j| restrict(&region(&dims, chosen[k].inputs[i], j, n), axis, t, run.tiles))
                            .collect();
                        let first_task = self.prog.tasks.len();
                        fetched.insert(i, self.exchange_regions(x, h, &src, group, needs, "tile"));
                        // The fetch of tile t waits for tile t-2 too, on the chips it leaves and
                        // reaches, or the slices would arrive early and fill SRAM.
                        if t >= 2 {
                            for task in first_task..self.prog.tasks.len() {
                                let ends: Vec<u32> = match &self.prog.tasks[task] {
                                    Task::Compute { chip, .. } => vec![*chip],
                                    Task::Send { from, to, .. } => {
                                        vec![self.prog.buffers[*from].chip, self.prog.buffers[*to].chip]
                                    }
                                };
                                let before: Vec<usize> = ends
                                    .into_iter()
                                    .filter_map(|chip| chip.checked_sub(group.first).filter(|&j| j < n))
                                    .map(|j| last_task[(t - 2) as usize][j as usize])
                                    .collect();
                                match &mut self.prog.tasks[task] {
                                    Task::Compute { after, .. } | Task::Send { after, .. } => {
                                        after.extend(before)
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
                        step: Step::Op { op: o.index() as u32 },
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
            // Each chip assembles its part: its reduced pieces of a partial sum (now split along
            // the reduction's axis), or its tiles.
            let (layout, pieces): (Layout, Vec<Vec<usize>>) = match reduce_axis[mi] {
                Some(a) => (Layout::Split(a), reduced[mi].clone()),
                None => (
                    chosen[k].output,
                    (0..n as usize)
                        .map(|j| (0..run.tiles as usize).map(|t| tiles_of[mi][t][j]).collect())
                        .collect(),
                ),
            };
            let bufs = self.assemble(v, group, layout, pieces);
            self.versions.insert((v, group, layout), bufs);
            self.home.insert(v, (group, layout));
        }
    }

    /// On each chip of `group`, one `Assemble` joining `pieces[j]` into the chip's region of `v`
    /// in `layout`.
    fn assemble(&mut self, v: ValueId, group: Group, layout: Layout, pieces: Vec<Vec<usize>>) -> Vec<usize> {
        let dims = self.dims(v);
        pieces
            .into_iter()
            .enumerate()
            .map(|(j, reads)| {
                let chip = group.first + j as u32;
                let r = region(&dims, layout, j as u32, group.n);
                self.assemble_on(v, chip, r, reads, "tiles")
            })
            .collect()
    }
}
