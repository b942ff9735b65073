//! Where a chip sits in the system: its node and rack, from the target's topology section.
//!
//! Chips are numbered densely; chip `c` is in node `c / chips_per_node` and rack
//! `node / nodes_per_rack`. Inside a node every pair of chips has a local link; nodes and racks are
//! joined by global links (a Dragonfly), so a transfer's cost depends on whether it stays in the
//! node, leaves it, or leaves the rack.

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
