//! The functional units of one chip that instructions are scheduled onto.

use crate::Target;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A kind of functional slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// Matrix unit: matmuls.
    Mxm,
    /// Vector unit: elementwise math, reductions, normalisation.
    Vxm,
    /// Switch unit: transposes, permutes, reshapes.
    Sxm,
}

impl UnitKind {
    pub fn prefix(self) -> &'static str {
        match self {
            UnitKind::Mxm => "MXM",
            UnitKind::Vxm => "VXM",
            UnitKind::Sxm => "SXM",
        }
    }
}

/// One concrete unit of a chip, e.g. `MXM2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId {
    pub kind: UnitKind,
    pub index: u32,
}

impl fmt::Display for UnitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.index)
    }
}

impl FromStr for UnitId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        for kind in [UnitKind::Mxm, UnitKind::Vxm, UnitKind::Sxm] {
            if let Some(rest) = s.strip_prefix(kind.prefix()) {
                if let Ok(index) = rest.parse::<u32>() {
                    return Ok(UnitId { kind, index });
                }
            }
        }
        Err(format!("'{s}' is not a unit name (MXMn, VXMn or SXMn)"))
    }
}

impl Serialize for UnitId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UnitId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Target {
    /// How many units of `kind` one chip has.
    pub fn unit_count(&self, kind: UnitKind) -> u32 {
        match kind {
            UnitKind::Mxm => self.mxm.count,
            UnitKind::Vxm => self.vxm.count,
            UnitKind::Sxm => self.sxm.count,
        }
    }

    /// Every unit of one chip, in a fixed order.
    pub fn units(&self) -> Vec<UnitId> {
        [UnitKind::Mxm, UnitKind::Vxm, UnitKind::Sxm]
            .into_iter()
            .flat_map(|kind| (0..self.unit_count(kind)).map(move |index| UnitId { kind, index }))
            .collect()
    }

    /// Whether `unit` exists on a chip of this target.
    pub fn has_unit(&self, unit: UnitId) -> bool {
        unit.index < self.unit_count(unit.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_round_trip() {
        let t = Target::lpu_v1();
        let names: Vec<String> = t.units().iter().map(|u| u.to_string()).collect();
        assert_eq!(names, ["MXM0", "MXM1", "MXM2", "MXM3", "VXM0", "SXM0", "SXM1"]);
        for u in t.units() {
            assert_eq!(u.to_string().parse::<UnitId>().unwrap(), u);
        }
        assert!("MEM3".parse::<UnitId>().is_err());
        assert!(!t.has_unit("MXM4".parse().unwrap()));
    }
}
