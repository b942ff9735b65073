//! Changing a value's layout between chips: every receiving chip gets the region it needs, from
//! the chips holding pieces of it. Pieces that are not a sender's whole buffer are cut out on the
//! sender (one `Cut` per sender on its SXM), sent along the topology's route, and joined on the
//! receiver (one `Assemble`); a receiver already holding a superset reads it.
//!
//! A group of whole nodes gathers a value whole in one of three ways. Inside one rack, by cost
//! (`LinkModel::gather_by_gateways`): *directly* (every piece to every
//! chip: the one global link between two nodes carries `node * node` pieces), or *by gateways*, a
//! tree (each node gathers its block, the gateway chips of each node pair send their blocks over
//! their global link once, and each gateway spreads what it received inside its node: `node`
//! times fewer bytes on each global link for two more assemblies). A group spanning racks gathers
//! in two levels (inside nodes, then whole node blocks between counterparts in other nodes), which
//! keeps the number of transfers at n * (nodes + node size) instead of n^2. A change from one
//! split to another across nodes gathers a value no larger than a tile whole and slices it (few
//! transfers); a larger one goes directly, each chip receiving only its own region.

use super::lower::{contains, intersect, region, Group, Lowering, Region, Task};
use crate::placer::sharding::layout::Layout;
use lpuc_artifact::{BufferKind, Step};
use lpuc_ir::ValueId;
use lpuc_target::Work;
use std::collections::BTreeMap;

impl Lowering<'_> {
    /// Give every chip of `to` the region of `v` that `layout` assigns it, from the buffers `src`
    /// (one per chip of `from`), by the scheme the module documentation describes for the group.
    pub(super) fn exchange(
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
        let whole_bytes = self.g.value(v).ty.size_bytes().unwrap_or(u64::MAX);
        let whole = || -> Vec<Region> {
            (0..to.n)
                .map(|k| region(&dims, Layout::Replicated, k, to.n))
                .collect()
        };
        // The axis a buffer holds only part of (a node block is 1/nodes of it along it).
        let split_axis = |b: usize| {
            self.regions[b]
                .iter()
                .zip(&dims)
                .position(|(r, &d)| r.1 - r.0 != d)
        };
        if hierarchical && layout == Layout::Replicated {
            let piece = whole_bytes.div_ceil(u64::from(to.n));
            let in_rack = self.target.locate(to.first).rack == self.target.locate(to.first + to.n - 1).rack;
            if in_rack && !self.links.gather_by_gateways(piece, u64::from(to.n)) {
                return self.exchange_regions(v, from, src, to, whole(), purpose);
            }
            if let Some(a) = src.first().and_then(|&b| split_axis(b)) {
                let nodes = to.n / node;
                let blocks: Vec<Region> = (0..to.n)
                    .map(|k| region(&dims, Layout::Split(a), k / node, nodes))
                    .collect();
                let mid = self.exchange_regions(v, from, src, to, blocks, purpose);
                if in_rack {
                    return self.gather_by_gateways(v, to, &mid, purpose);
                }
                return self.exchange_regions(v, to, &mid, to, whole(), purpose);
            }
        }
        // One split to another across nodes: a small value is gathered whole (in two levels or
        // by gateways, n * (nodes + node) transfers) and sliced; a large one goes directly, each
        // chip receiving only the pieces of its own region (n^2 transfers), so no chip holds it
        // whole (the placer sizes it so).
        if hierarchical
            && whole_bytes <= self.tile_budget
            && matches!(layout, Layout::Split(_))
            && src.iter().any(|&b| split_axis(b).is_some())
        {
            return self.exchange(v, from, src, to, Layout::Replicated, purpose);
        }
        let needs: Vec<Region> = (0..to.n).map(|k| region(&dims, layout, k, to.n)).collect();
        self.exchange_regions(v, from, src, to, needs, purpose)
    }

    /// Give chip `to.first + k` the region `needs[k]` of `v` from the buffers `src` of `from`:
    /// each distinct piece once, from a holder on the receiver itself, else in the same position
    /// of its node, else spread; pieces that are not a sender's whole buffer are cut on the
    /// sender; a receiver with several pieces (or part of one) assembles them.
    pub(super) fn exchange_regions(
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
                                let b = self.buffer(v, chip, label, BufferKind::Activation, dtype, r.clone());
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
                    step: Step::Copy,
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
                let to_buf = self.buffer(v, receiver, label, BufferKind::Activation, dtype, r.clone());
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
            out.push(self.assemble_on(v, receiver, need, local, purpose));
        }
        out
    }

    /// The tree of an all-gather by node gateways over `group` (whole nodes of one rack), from
    /// `mid`: chip k's buffer holding its node's whole block. The gateway of node a towards node
    /// b receives b's block from b's gateway towards a over their global link; then every chip
    /// assembles the whole from its own block and, per other node, the block its node's gateway
    /// towards that node received (sent over a local link unless the chip is that gateway).
    fn gather_by_gateways(
        &mut self,
        v: ValueId,
        group: Group,
        mid: &[usize],
        purpose: &'static str,
    ) -> Vec<usize> {
        let dims = self.dims(v);
        let dtype = self.g.value(v).ty.dtype;
        let name = self.g.value(v).name.clone();
        let node = self.node_chips;
        let nodes = group.n / node;
        let first_node = group.first / node;
        let gateway = |t: &lpuc_target::Target, a: u32, b: u32| {
            t.node_gateway(first_node + a, first_node + b)
                .expect("a group of nodes of one rack has a gateway per node pair")
        };
        // (receiving node, sending node) -> the block on the receiving node's gateway.
        let mut held: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        for a in 0..nodes {
            for b in (0..nodes).filter(|&b| b != a) {
                let (ga, gb) = (gateway(self.target, a, b), gateway(self.target, b, a));
                let from = mid[(gb - group.first) as usize];
                let block = self.regions[from].clone();
                let to = self.buffer(
                    v,
                    ga,
                    format!("{name}@{ga}<{gb}"),
                    BufferKind::Activation,
                    dtype,
                    block,
                );
                self.prog.tasks.push(Task::Send {
                    from,
                    to,
                    purpose,
                    after: Vec::new(),
                });
                held.insert((a, b), to);
            }
        }
        let mut out = Vec::with_capacity(group.n as usize);
        for k in 0..group.n {
            let chip = group.first + k;
            let a = k / node;
            let mut local = vec![mid[k as usize]];
            for b in (0..nodes).filter(|&b| b != a) {
                let at_gateway = held[&(a, b)];
                let holder = self.prog.buffers[at_gateway].chip;
                if holder == chip {
                    local.push(at_gateway);
                    continue;
                }
                let block = self.regions[at_gateway].clone();
                let to = self.buffer(
                    v,
                    chip,
                    format!("{name}@{chip}<{holder}"),
                    BufferKind::Activation,
                    dtype,
                    block,
                );
                self.prog.tasks.push(Task::Send {
                    from: at_gateway,
                    to,
                    purpose,
                    after: Vec::new(),
                });
                local.push(to);
            }
            let whole = region(&dims, Layout::Replicated, k, group.n);
            out.push(self.assemble_on(v, chip, whole, local, purpose));
        }
        out
    }
}
