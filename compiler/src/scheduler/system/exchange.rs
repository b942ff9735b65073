//! Changing a value's layout between chips: every receiving chip gets the region it needs, from
//! the chips holding pieces of it. Pieces that are not a sender's whole buffer are cut out on the
//! sender (one `Cut` per sender on its SXM), sent along the topology's route, and joined on the
//! receiver (one `Assemble`); a receiver already holding a superset reads it. A group of whole
//! nodes gathers in two levels (inside nodes, then between counterparts in other nodes).

use super::lower::{contains, intersect, region, Group, Lowering, Region, Task};
use crate::placer::sharding::layout::Layout;
use lpuc_artifact::BufferKind;
use lpuc_ir::ValueId;
use lpuc_target::Work;
use std::collections::BTreeMap;

impl Lowering<'_> {
    /// Give every chip of `to` the region of `v` that `layout` assigns it, from the buffers `src`
    /// (one per chip of `from`). A group larger than a node gathers in two levels: first each
    /// node assembles its node's block, then chips exchange whole node blocks with their
    /// counterparts in the other nodes, so the number of transfers grows as n * (nodes + node
    /// size) instead of n^2, and each node pair's one global link carries node blocks.
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
}
