//! How a tensor lies across a group of chips, and what it costs to change that.
//!
//! A value is either whole on every chip ([`Layout::Replicated`]), cut into equal contiguous
//! pieces along one axis ([`Layout::Split`]), or a sum of per-chip parts ([`Layout::Partial`], what
//! a matmul split along its contraction leaves). Changing layouts is a collective over the group:
//!
//! ```text
//! R -> Split(a)        free: each chip keeps its slice
//! Split(a) -> R        all-gather:      every chip sends its piece (bytes/g) to every peer
//! Split(a) -> Split(b) all-to-all:      every chip sends bytes/g^2 to every peer
//! Partial -> Split(a)  reduce-scatter:  bytes/g to every peer, then a sum of g pieces
//! Partial -> R         reduce-scatter, then all-gather
//! ```
//!
//! Inside a node every chip has a direct link to every other, so each step is one round of
//! transfers over disjoint links: ceil(piece / link bandwidth) plus one hop's latency and
//! synchronisation margin. A group larger than a node is joined by one global link per pair of
//! nodes (per pair of racks beyond a rack), so a round sends every piece between two nodes over
//! that one link, one after another (`chips_per_node^2` pieces), over three hops (local, global,
//! local); past a rack, `chips_per_rack^2` pieces over seven. This is what keeps tensor-parallel
//! groups inside a node unless memory forces them out.

use lpuc_ir::DType;
use lpuc_target::{Target, UnitKind, Work};
use serde::Serialize;
use std::fmt;

/// How one value lies across a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Layout {
    Replicated,
    Split(usize),
    Partial,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Replicated => write!(f, "R"),
            Layout::Split(a) => write!(f, "S{a}"),
            Layout::Partial => write!(f, "P"),
        }
    }
}

/// The collective that changes one layout into another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Collective {
    AllGather,
    AllToAll,
    ReduceScatter,
    AllReduce,
}

/// What turning one layout into another takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// No data moves: the same layout, or slicing a replicated value.
    Free,
    By(Collective),
    /// Not possible: nothing turns whole values into partial sums.
    Impossible,
}

impl Collective {
    /// What turns `from` into `to`.
    pub fn between(from: Layout, to: Layout) -> Change {
        use Layout::*;
        match (from, to) {
            (Replicated, Replicated) | (Partial, Partial) | (Replicated, Split(_)) => Change::Free,
            (Split(a), Split(b)) if a == b => Change::Free,
            (Split(_), Split(_)) => Change::By(Collective::AllToAll),
            (Split(_), Replicated) => Change::By(Collective::AllGather),
            (Partial, Split(_)) => Change::By(Collective::ReduceScatter),
            (Partial, Replicated) => Change::By(Collective::AllReduce),
            (_, Partial) => Change::Impossible,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Collective::AllGather => "all-gather",
            Collective::AllToAll => "all-to-all",
            Collective::ReduceScatter => "reduce-scatter",
            Collective::AllReduce => "all-reduce",
        }
    }
}

/// The link figures collectives are priced with.
#[derive(Clone, Debug)]
pub struct LinkModel {
    bytes_per_second: u64,
    clock_hz: u64,
    round_latency: u64,
    node_chips: u64,
    rack_chips: u64,
    target: Target,
}

impl LinkModel {
    pub fn new(target: &Target) -> Self {
        LinkModel {
            bytes_per_second: target.c2c.bytes_per_second_per_direction,
            clock_hz: target.clock_hz,
            round_latency: target
                .c2c
                .hop_latency_cycles
                .saturating_add(target.c2c.sync_margin_cycles),
            node_chips: u64::from(target.topology.chips_per_node),
            rack_chips: u64::from(target.chips_per_rack()),
            target: target.clone(),
        }
    }

    /// Cycles to send `bytes` over one link, latency excluded.
    pub fn send_cycles(&self, bytes: u64) -> u64 {
        let c = (u128::from(bytes) * u128::from(self.clock_hz)).div_ceil(u128::from(self.bytes_per_second));
        u64::try_from(c).unwrap_or(u64::MAX)
    }

    /// Cycles of one round in which every chip sends `piece` bytes to each peer.
    fn round(&self, piece: u64, ways: u64) -> u64 {
        let (serial, hops) = if ways > self.rack_chips {
            (self.rack_chips.saturating_mul(self.rack_chips), 7)
        } else if ways > self.node_chips {
            (self.node_chips * self.node_chips, 3)
        } else {
            (1, 1)
        };
        self.send_cycles(piece)
            .saturating_mul(serial)
            .saturating_add(self.round_latency.saturating_mul(hops))
    }

    /// Cycles the SXM needs to stream `bytes` (a cut or an assembly).
    fn stream_cycles(&self, bytes: u64) -> u64 {
        self.target
            .cost(&Work::Stream { bytes })
            .map_or(u64::MAX, |c| c.latency)
    }

    /// An all-gather of `piece` bytes a chip over `ways` chips of whole nodes of one rack, sent
    /// directly: every chip's piece goes to every other chip, so the one global link between two
    /// nodes carries `node * node` pieces, over routes of up to 3 hops.
    pub fn direct_gather_cycles(&self, piece: u64) -> u64 {
        self.send_cycles(piece)
            .saturating_mul(self.node_chips * self.node_chips)
            .saturating_add(self.round_latency.saturating_mul(3))
    }

    /// The same all-gather by node gateways (a tree): each node first gathers its block on every
    /// chip (one local round), the gateway of each node pair sends its node's block over their
    /// global link once, and each gateway spreads the block it received to its node (one local
    /// round); two more assemblies of a block on the way.
    pub fn gateway_gather_cycles(&self, piece: u64) -> u64 {
        let block = piece.saturating_mul(self.node_chips);
        self.send_cycles(piece)
            .saturating_add(self.send_cycles(block).saturating_mul(2))
            .saturating_add(self.round_latency.saturating_mul(3))
            .saturating_add(self.stream_cycles(block).saturating_mul(2))
    }

    /// Whether an all-gather of `piece` bytes a chip over `ways` chips (whole nodes of one rack)
    /// goes by node gateways rather than directly: whichever costs fewer cycles. Direct wins only
    /// when a piece is so small that the gateways' extra assemblies outweigh sending `node` times
    /// fewer bytes over each global link.
    pub fn gather_by_gateways(&self, piece: u64, ways: u64) -> bool {
        ways > self.node_chips
            && ways <= self.rack_chips
            && self.gateway_gather_cycles(piece) < self.direct_gather_cycles(piece)
    }

    /// Cycles the VXM needs to sum `ways` pieces of `elements` each.
    fn sum_cycles(&self, elements: u64, ways: u64, dtype: DType) -> u64 {
        let work = Work::Vector {
            op: "Add".into(),
            elements: elements.saturating_mul(ways - 1),
            dtype,
        };
        let units = u64::from(self.target.vxm.count).max(1);
        self.target
            .cost(&work)
            .map_or(u64::MAX, |c| c.occupancy.div_ceil(units))
    }

    /// Cycles of `collective` over a group of `ways` chips on a tensor of `bytes` bytes and
    /// `elements` elements. A gather across nodes is priced as sent directly, an upper bound: the
    /// scheduler sends it by node gateways when that is cheaper (`gather_by_gateways`). Pricing
    /// gathers lower here makes the activation-blind sharding ILP trade reductions for gathers
    /// of wide values, which then exist whole on every chip.
    pub fn cycles(&self, collective: Collective, bytes: u64, elements: u64, dtype: DType, ways: u64) -> u64 {
        if ways <= 1 {
            return 0;
        }
        let piece = bytes.div_ceil(ways);
        let scatter = || {
            self.round(piece, ways)
                .saturating_add(self.sum_cycles(elements.div_ceil(ways), ways, dtype))
        };
        match collective {
            Collective::AllGather => self.round(piece, ways),
            Collective::AllToAll => self.round(piece.div_ceil(ways), ways),
            Collective::ReduceScatter => scatter(),
            Collective::AllReduce => scatter().saturating_add(self.round(piece, ways)),
        }
    }
}

/// The unit kind index used for per-kind sums: MXM, VXM, SXM.
pub fn kind_index(kind: UnitKind) -> usize {
    match kind {
        UnitKind::Mxm => 0,
        UnitKind::Vxm => 1,
        UnitKind::Sxm => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectives_between_layouts() {
        use Layout::*;
        assert_eq!(Collective::between(Replicated, Split(2)), Change::Free);
        assert_eq!(Collective::between(Split(1), Split(1)), Change::Free);
        assert_eq!(
            Collective::between(Split(1), Replicated),
            Change::By(Collective::AllGather)
        );
        assert_eq!(
            Collective::between(Split(1), Split(0)),
            Change::By(Collective::AllToAll)
        );
        assert_eq!(
            Collective::between(Partial, Replicated),
            Change::By(Collective::AllReduce)
        );
        assert_eq!(
            Collective::between(Partial, Split(0)),
            Change::By(Collective::ReduceScatter)
        );
        assert_eq!(Collective::between(Replicated, Partial), Change::Impossible);
    }

    #[test]
    fn a_gather_across_nodes_goes_by_gateways_unless_pieces_are_tiny() {
        let t = Target::lpu_v1();
        let links = LinkModel::new(&t);
        // Inside one node there is nothing to choose.
        assert!(!links.gather_by_gateways(1 << 20, 8));
        // A few bytes a chip: the gateways' two extra assemblies cost more than the bytes saved.
        assert!(!links.gather_by_gateways(4, 16));
        // Real pieces: each global link carries one node block instead of 8 x 8 pieces.
        assert!(links.gather_by_gateways(4096, 16));
        assert!(links.gateway_gather_cycles(1 << 20) * 3 < links.direct_gather_cycles(1 << 20));
        // Beyond a rack the scheduler gathers in two levels; no gateway choice.
        assert!(!links.gather_by_gateways(1 << 20, 144));
    }

    #[test]
    fn an_all_reduce_costs_more_than_an_all_gather() {
        let t = Target::lpu_v1();
        let links = LinkModel::new(&t);
        let bytes = 8 << 20;
        let gather = links.cycles(Collective::AllGather, bytes, bytes / 2, DType::F16, 8);
        let reduce = links.cycles(Collective::AllReduce, bytes, bytes / 2, DType::F16, 8);
        assert!(gather > links.send_cycles(bytes / 8));
        assert!(reduce > 2 * links.send_cycles(bytes / 8));
        assert_eq!(
            links.cycles(Collective::AllReduce, bytes, bytes / 2, DType::F16, 1),
            0
        );
    }
}
