//! Where a chip sits in the system, and the links between chips: the fabric every transfer uses.
//!
//! Chips are numbered densely from 0; chip `c` is in node `c / chips_per_node` and rack
//! `node / nodes_per_rack`. A chip's *index* in its node is `c % chips_per_node`, a node's index in
//! its rack `node % nodes_per_rack`, a chip's index in its rack `c % chips_per_rack`.
//!
//! # The link set
//!
//! Every link is bidirectional (one lane set per direction), and [`Target::link`] is symmetric.
//! - **Local**: inside a node every pair of distinct chips has a local link (a full mesh, 7 local
//!   links per chip on an 8-chip node).
//! - **Global, inside a rack**: every pair of distinct nodes `i`, `j` of one rack has exactly one
//!   global link. Its end in node `i` is the chip at index [`peer_slot`]`(i, j, chips_per_node)`
//!   (node indices within the rack), its end in node `j` the chip at `peer_slot(j, i,
//!   chips_per_node)`.
//! - **Global, between racks**: every pair of distinct racks `r`, `s` has exactly one global link,
//!   between rack `r`'s *gateway* towards `s`, the chip at rack index `peer_slot(r, s,
//!   chips_per_rack)`, and rack `s`'s gateway towards `r`, at `peer_slot(s, r, chips_per_rack)`.
//!
//! `peer_slot(me, peer, slots)` gives the nearest peers first: peers above `me` take the slots from
//! the top down, peers below it the slots from the bottom up:
//!
//! ```text
//! peer > me:  slots - 1 - (peer - me - 1) % slots
//! peer < me:  (me - peer - 1) % slots
//! ```
//!
//! So chip `c` and chip `c + 1` are always linked directly (local inside a node; the last chip of a
//! node or rack holds the global link to the first chip of the next one), which is what a pipeline
//! numbered in stage order wants. The peers of one node (or rack) take a contiguous, wrapping
//! run of slots (`-u ..= d - 1` modulo `slots`, with `u` peers above and `d` below), so the links
//! spread evenly: each chip has `ceil((nodes_per_rack - 1) / chips_per_node)` global links inside
//! its rack at most, exactly one on lpu-v1 (9 nodes of 8 chips), and `ceil((racks - 1) /
//! chips_per_rack)` between racks at most: on lpu-v1 at most 1 for up to 73 racks (so 2 global
//! links on any chip of an 8-rack, 576-chip system) and 2 for up to 145 racks, the largest
//! published system, within the 4 global links a chip has (`topology.global_links_per_chip`).
//!
//! # Routes
//!
//! [`Target::route`] is hierarchical and deterministic: inside a node, the direct link; across
//! nodes of a rack, a local hop to the source node's end of the global link (if the source is not
//! that chip), the global link, a local hop to the destination (if needed): at most 3 hops; across
//! racks, the in-rack route to the source rack's gateway, the inter-rack link, and the in-rack
//! route from the destination rack's gateway: at most 7 hops. It is the shortest route of this
//! local-global-local form, though not always a shortest path of the graph: a detour over a third
//! node's global links is sometimes shorter (on 576 chips, 13,670 of 331,776 ordered pairs, by at
//! most 2 hops; `routes_follow_links_and_are_short` measures it).

use crate::Target;
use serde::{Deserialize, Serialize};

/// A chip's place in the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChipLocation {
    pub chip: u32,
    pub node: u32,
    pub rack: u32,
}

/// How far apart two chips are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    SameChip,
    SameNode,
    SameRack,
    CrossRack,
}

/// What kind of link joins two chips.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// Between two chips of one node.
    Local,
    /// Between two nodes of a rack, or between two racks.
    Global,
}

/// Which of `slots` slots serves the link from `me` to `peer` (`me != peer`): peers nearest
/// first, those above `me` from the top slot down, those below it from the bottom slot up. See the
/// module documentation.
pub fn peer_slot(me: u32, peer: u32, slots: u32) -> u32 {
    debug_assert!(me != peer && slots > 0);
    if peer > me {
        slots - 1 - (peer - me - 1) % slots
    } else {
        (me - peer - 1) % slots
    }
}

impl Target {
    /// Chips in one rack.
    pub fn chips_per_rack(&self) -> u32 {
        self.topology.chips_per_node * self.topology.nodes_per_rack
    }

    /// Where chip `chip` sits.
    pub fn locate(&self, chip: u32) -> ChipLocation {
        let node = chip / self.topology.chips_per_node;
        ChipLocation {
            chip,
            node,
            rack: node / self.topology.nodes_per_rack,
        }
    }

    /// How far apart chips `a` and `b` are.
    pub fn distance(&self, a: u32, b: u32) -> Distance {
        let (la, lb) = (self.locate(a), self.locate(b));
        if a == b {
            Distance::SameChip
        } else if la.node == lb.node {
            Distance::SameNode
        } else if la.rack == lb.rack {
            Distance::SameRack
        } else {
            Distance::CrossRack
        }
    }

    /// Racks that `chips` consecutive chips span.
    pub fn racks_for(&self, chips: u32) -> u32 {
        chips.div_ceil(self.chips_per_rack())
    }

    /// One link's bandwidth, in bytes per cycle.
    pub fn link_bytes_per_cycle(&self) -> f64 {
        self.c2c.bytes_per_second_per_direction as f64 / self.clock_hz as f64
    }

    /// Cycles one hop of `bytes` occupies a link: `ceil(bytes * clock_hz /
    /// bytes_per_second_per_direction)`, exact in integers (saturating at `u64::MAX`).
    pub fn hop_cycles(&self, bytes: u64) -> u64 {
        let num = u128::from(bytes) * u128::from(self.clock_hz);
        let rate = u128::from(self.c2c.bytes_per_second_per_direction);
        u64::try_from(num.div_ceil(rate)).unwrap_or(u64::MAX)
    }

    /// Cycles from a hop's end until its data may be used at the receiving chip: the hop latency
    /// plus the synchronisation margin.
    pub fn hop_arrival_delay(&self) -> u64 {
        self.c2c.hop_latency_cycles + self.c2c.sync_margin_cycles
    }

    /// The link between chips `a` and `b`, if there is one (symmetric; none from a chip to itself).
    pub fn link(&self, a: u32, b: u32) -> Option<LinkKind> {
        let (la, lb) = (self.locate(a), self.locate(b));
        let per_node = self.topology.chips_per_node;
        let per_rack = self.chips_per_rack();
        let nodes_per_rack = self.topology.nodes_per_rack;
        if a == b {
            None
        } else if la.node == lb.node {
            Some(LinkKind::Local)
        } else if la.rack == lb.rack {
            let (na, nb) = (la.node % nodes_per_rack, lb.node % nodes_per_rack);
            (a % per_node == peer_slot(na, nb, per_node) && b % per_node == peer_slot(nb, na, per_node))
                .then_some(LinkKind::Global)
        } else {
            (a % per_rack == peer_slot(la.rack, lb.rack, per_rack)
                && b % per_rack == peer_slot(lb.rack, la.rack, per_rack))
            .then_some(LinkKind::Global)
        }
    }

    /// Node `from`'s chip holding the global link to node `to`, when both are distinct nodes of
    /// one rack (their one link inside the rack); `None` otherwise.
    pub fn node_gateway(&self, from: u32, to: u32) -> Option<u32> {
        let per_node = self.topology.chips_per_node;
        let nodes_per_rack = self.topology.nodes_per_rack;
        let same_rack = from / nodes_per_rack == to / nodes_per_rack;
        (from != to && same_rack)
            .then(|| from * per_node + peer_slot(from % nodes_per_rack, to % nodes_per_rack, per_node))
    }

    /// Rack `from`'s gateway chip towards rack `to` (`from != to`): its end of their global link.
    pub fn rack_gateway(&self, from: u32, to: u32) -> u32 {
        let per_rack = self.chips_per_rack();
        from * per_rack + peer_slot(from, to, per_rack)
    }

    /// The chips a transfer from `a` to `b` visits, `a` first and `b` last (`[a]` when `a == b`);
    /// every consecutive pair is a link. See the module documentation for the route's shape.
    pub fn route(&self, a: u32, b: u32) -> Vec<u32> {
        let (ra, rb) = (self.locate(a).rack, self.locate(b).rack);
        let mut path = vec![a];
        if ra == rb {
            self.extend_in_rack(&mut path, b);
        } else {
            self.extend_in_rack(&mut path, self.rack_gateway(ra, rb));
            path.push(self.rack_gateway(rb, ra));
            self.extend_in_rack(&mut path, b);
        }
        path
    }

    /// Extend `path` from its last chip to `to`, in the same rack.
    fn extend_in_rack(&self, path: &mut Vec<u32>, to: u32) {
        let from = *path.last().expect("a route starts with its source");
        let (lf, lt) = (self.locate(from), self.locate(to));
        let mut push = |c: u32| {
            if *path.last().expect("non-empty") != c {
                path.push(c);
            }
        };
        if lf.node != lt.node {
            let per_node = self.topology.chips_per_node;
            let nodes_per_rack = self.topology.nodes_per_rack;
            let (nf, nt) = (lf.node % nodes_per_rack, lt.node % nodes_per_rack);
            push(lf.node * per_node + peer_slot(nf, nt, per_node));
            push(lt.node * per_node + peer_slot(nt, nf, per_node));
        }
        push(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_gateways_hold_the_global_link_between_their_nodes() {
        let t = Target::lpu_v1();
        for a in 0..9 {
            for b in 0..9 {
                match (t.node_gateway(a, b), t.node_gateway(b, a)) {
                    (Some(ga), Some(gb)) => {
                        assert_eq!((t.locate(ga).node, t.locate(gb).node), (a, b));
                        assert_eq!(t.link(ga, gb), Some(LinkKind::Global));
                    }
                    (None, None) => assert_eq!(a, b),
                    other => panic!("{a} {b}: {other:?}"),
                }
            }
        }
        // Nodes of different racks have no link of their own.
        assert_eq!(t.node_gateway(0, 9), None);
    }

    #[test]
    fn chips_nodes_and_racks() {
        let t = Target::lpu_v1();
        assert_eq!(t.chips_per_rack(), 72);
        assert_eq!(
            t.locate(0),
            ChipLocation {
                chip: 0,
                node: 0,
                rack: 0
            }
        );
        assert_eq!(
            t.locate(71),
            ChipLocation {
                chip: 71,
                node: 8,
                rack: 0
            }
        );
        assert_eq!(
            t.locate(72),
            ChipLocation {
                chip: 72,
                node: 9,
                rack: 1
            }
        );
        assert_eq!(t.distance(3, 3), Distance::SameChip);
        assert_eq!(t.distance(0, 7), Distance::SameNode);
        assert_eq!(t.distance(7, 8), Distance::SameRack);
        assert_eq!(t.distance(71, 72), Distance::CrossRack);
        assert_eq!(t.racks_for(576), 8);
        assert_eq!(t.racks_for(73), 2);
    }

    /// Every pair of chips among the first `n`, with its link.
    fn links(t: &Target, n: u32) -> Vec<(u32, u32, LinkKind)> {
        let mut out = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if let Some(k) = t.link(a, b) {
                    out.push((a, b, k));
                }
            }
        }
        out
    }

    #[test]
    fn links_are_symmetric_and_local_exactly_inside_a_node() {
        let t = Target::lpu_v1();
        for a in 0..216 {
            assert_eq!(t.link(a, a), None);
            for b in 0..216 {
                assert_eq!(t.link(a, b), t.link(b, a), "{a} {b}");
                let same_node = a != b && t.locate(a).node == t.locate(b).node;
                assert_eq!(t.link(a, b) == Some(LinkKind::Local), same_node, "{a} {b}");
            }
        }
        // Neighbours in numbering are always one hop apart: local, node-crossing, rack-crossing.
        for c in 0..575 {
            assert!(t.link(c, c + 1).is_some(), "{c}");
        }
        assert_eq!(t.link(7, 8), Some(LinkKind::Global));
        assert_eq!(t.link(71, 72), Some(LinkKind::Global));
    }

    #[test]
    fn one_global_link_per_node_pair_and_rack_pair() {
        let t = Target::lpu_v1();
        let links = links(&t, 576);
        let mut node_pairs = std::collections::BTreeMap::new();
        let mut rack_pairs = std::collections::BTreeMap::new();
        let mut per_chip = vec![0u32; 576];
        for &(a, b, k) in &links {
            if k == LinkKind::Global {
                per_chip[a as usize] += 1;
                per_chip[b as usize] += 1;
                let (la, lb) = (t.locate(a), t.locate(b));
                if la.rack == lb.rack {
                    *node_pairs.entry((la.node, lb.node)).or_insert(0) += 1;
                } else {
                    *rack_pairs.entry((la.rack, lb.rack)).or_insert(0) += 1;
                }
            }
        }
        // 8 racks x C(9, 2) node pairs, C(8, 2) rack pairs, each exactly once.
        assert_eq!(node_pairs.len(), 8 * 36);
        assert!(node_pairs.values().all(|&n| n == 1));
        assert_eq!(rack_pairs.len(), 28);
        assert!(rack_pairs.values().all(|&n| n == 1));
        let local = links.iter().filter(|l| l.2 == LinkKind::Local).count();
        assert_eq!(local, 72 * 28);
        // 576 chips (8 racks): every chip has one in-rack global link, the 7 top and 7 bottom
        // chips of each rack one inter-rack link more.
        let max = *per_chip.iter().max().unwrap();
        println!("576 chips: at most {max} global links on a chip");
        assert_eq!(max, 2);
        assert!(per_chip.iter().all(|&n| n >= 1));
    }

    #[test]
    fn the_largest_system_fits_four_global_links_per_chip() {
        let t = Target::lpu_v1();
        let racks = 145u32;
        let mut per_chip = vec![1u32; (racks * t.chips_per_rack()) as usize]; // one in-rack link each
        for r in 0..racks {
            for s in 0..racks {
                if r != s {
                    let (g, h) = (t.rack_gateway(r, s), t.rack_gateway(s, r));
                    assert_eq!(t.link(g, h), Some(LinkKind::Global));
                    per_chip[g as usize] += 1;
                }
            }
        }
        // 1 in-rack + ceil(144 / 72) inter-rack links.
        let max = *per_chip.iter().max().unwrap();
        assert!(max <= t.topology.global_links_per_chip, "{max}");
        assert_eq!(max, 3);
    }

    #[test]
    fn routes_follow_links_and_are_short() {
        let t = Target::lpu_v1();
        let n = 576u32;
        // Shortest paths by breadth-first search over the link set, to compare with.
        let mut adj = vec![Vec::new(); n as usize];
        for (a, b, _) in links(&t, n) {
            adj[a as usize].push(b);
            adj[b as usize].push(a);
        }
        let (mut longest, mut longer, mut extra) = (0usize, 0u64, 0usize);
        for a in 0..n {
            let mut dist = vec![usize::MAX; n as usize];
            dist[a as usize] = 0;
            let mut queue = std::collections::VecDeque::from([a]);
            while let Some(c) = queue.pop_front() {
                for &d in &adj[c as usize] {
                    if dist[d as usize] == usize::MAX {
                        dist[d as usize] = dist[c as usize] + 1;
                        queue.push_back(d);
                    }
                }
            }
            for b in 0..n {
                let r = t.route(a, b);
                assert_eq!((r[0], *r.last().unwrap()), (a, b));
                assert!(r.windows(2).all(|w| t.link(w[0], w[1]).is_some()), "{r:?}");
                let hops = r.len() - 1;
                let bound = match t.distance(a, b) {
                    Distance::SameChip => 0,
                    Distance::SameNode => 1,
                    Distance::SameRack => 3,
                    Distance::CrossRack => 7,
                };
                assert!(hops <= bound, "{a} -> {b}: {r:?}");
                longest = longest.max(hops);
                let shortest = dist[b as usize];
                assert!(hops >= shortest);
                if hops > shortest {
                    longer += 1;
                    extra = extra.max(hops - shortest);
                }
            }
        }
        println!(
            "576 chips: routes at most {longest} hops; {longer} of {} ordered pairs longer than a shortest path, by at most {extra}",
            n * n
        );
        assert_eq!(longest, 7);
        assert_eq!(t.route(5, 5), vec![5]);
        assert_eq!(t.route(71, 72), vec![71, 72]);
    }
}
