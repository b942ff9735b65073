//! Reducing partial sums (a matmul split along its contraction) across a group: each chip cuts its
//! partial into one piece per chip, sends piece k to chip k, and chip k sums what it receives on
//! its VXM (a reduce-scatter); a group of whole nodes reduces across nodes first, then inside each
//! node, so chip k ends with piece k.

use super::lower::{region, shape, Group, Lowering, Region, Task};
use crate::placer::sharding::layout::Layout;
use lpuc_artifact::{BufferKind, Step};
use lpuc_ir::ValueId;
use lpuc_target::Work;

/// The axis partial sums of a value with `dims` are reduce-scattered along over `n` chips, never
/// `avoid` (a tiled region's own axis): the first that divides evenly (the boundary layout's
/// axis), else the longest at least `n` long, cut into slices that differ by at most one row
/// (a group of 7 chips reducing [1, 1024, 8192]: without it every chip received every other
/// chip's whole partial, seven times the value, where the placer counted a seventh). `None`
/// when no axis has `n` rows.
pub(super) fn scatter_axis(dims: &[u64], n: u32, avoid: Option<usize>) -> Option<usize> {
    let n = u64::from(n);
    let usable = |a: &usize| Some(*a) != avoid && dims[*a] >= n && dims[*a] > 1;
    (0..dims.len())
        .filter(usable)
        .find(|&a| dims[a].is_multiple_of(n))
        .or_else(|| {
            (0..dims.len())
                .filter(usable)
                .max_by_key(|&a| (dims[a], std::cmp::Reverse(a)))
        })
}

impl Lowering<'_> {
    /// Reduce the partial sums of `v` on `group` to a split along `prefer` (or the axis
    /// [`scatter_axis`] picks); only a value too small to give every chip a slice is summed
    /// whole on every chip (each receiving every partial). A
    /// group of whole nodes reduces in two levels: across nodes among chips in the same place
    /// (each gets the sum over nodes of its node's block), then inside each node (each chip its
    /// slice of that block), which leaves chip k with piece k and sends n * (nodes + node size)
    /// pieces instead of n^2.
    pub(super) fn reduce(&mut self, v: ValueId, group: Group, prefer: Option<usize>) -> (Layout, Vec<usize>) {
        let dims = self.dims(v);
        let n = group.n;
        let partials = self.versions[&(v, group, Layout::Partial)].clone();
        let axis = prefer
            .filter(|&a| dims[a].is_multiple_of(u64::from(n)) && dims[a] >= u64::from(n))
            .or_else(|| scatter_axis(&dims, n, None));
        let whole: Region = region(&dims, Layout::Replicated, 0, 1);
        let chips: Vec<u32> = (0..n).map(|j| group.first + j).collect();
        let Some(a) = axis else {
            let out = self.reduce_among(v, &chips, &partials, None, &whole);
            return (Layout::Replicated, out);
        };
        let node = self.node_chips;
        let even = dims[a].is_multiple_of(u64::from(n));
        if even && n > node && n.is_multiple_of(node) && group.first.is_multiple_of(node) {
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
    pub(super) fn reduce_among(
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
                        v,
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
                    step: Step::Copy,
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
                    v,
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
                v,
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
                step: Step::Sum,
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
}

#[cfg(test)]
mod tests {
    use super::scatter_axis;

    #[test]
    fn the_scatter_axis_divides_evenly_where_it_can_and_is_the_longest_where_not() {
        // The boundary layout's axis when one divides.
        assert_eq!(scatter_axis(&[1, 1024, 8192], 8, None), Some(1));
        // Seven chips: no axis divides; the longest gives the thinnest slices.
        assert_eq!(scatter_axis(&[1, 1024, 8192], 7, None), Some(2));
        // Never a tiled region's own axis.
        assert_eq!(scatter_axis(&[56, 64], 7, Some(0)), Some(1));
        // Too small to give every chip a row.
        assert_eq!(scatter_axis(&[3, 4], 7, None), None);
    }
}
