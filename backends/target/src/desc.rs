//! The target description: parsed from TOML, validated, with the built-in targets embedded.

use lpuc_ir::DType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// The text of the built-in `lpu-v1` target.
pub const LPU_V1_TOML: &str = include_str!("../../targets/lpu-v1.toml");

/// Why a target description could not be used.
#[derive(Debug, Error)]
pub enum TargetError {
    #[error("unknown built-in target '{0}' (built in: lpu-v1; or give a path to a .toml file)")]
    UnknownBuiltin(String),
    #[error("cannot read target file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("target description is not valid TOML for lpuc: {0}")]
    Parse(String),
    #[error("target description is inconsistent: {0}")]
    Invalid(String),
}

/// A complete description of one chip generation and the systems built from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    pub description: String,
    pub clock_hz: u64,
    pub sram: Sram,
    pub vector: Vector,
    pub mxm: Mxm,
    pub vxm: Vxm,
    pub sxm: Sxm,
    pub mem: Mem,
    pub c2c: C2c,
    pub topology: Topology,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sram {
    pub bytes: u64,
    pub slices: u32,
    pub slice_bytes: u64,
    pub read_latency_cycles: u64,
    pub write_latency_cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    pub bytes: u64,
    pub superlanes: u32,
    pub lanes_per_superlane: u32,
    pub superlane_skew_cycles: u64,
    pub streams_per_direction: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mxm {
    pub count: u32,
    pub macs_per_cycle: BTreeMap<DType, u64>,
    pub weight_tile: u64,
    pub weight_tile_load_cycles: u64,
    pub pipeline_cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vxm {
    pub count: u32,
    pub elements_per_cycle: BTreeMap<DType, u64>,
    pub pipeline_cycles: u64,
    /// Passes over the data per op name; `default` for any op not listed.
    pub passes: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sxm {
    pub count: u32,
    pub bytes_per_cycle: u64,
    pub pipeline_cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mem {
    pub slices: u32,
    pub bytes_per_cycle_per_slice: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct C2c {
    pub links_per_chip: u32,
    pub bytes_per_second_per_direction: u64,
    pub hop_latency_cycles: u64,
    pub sync_margin_cycles: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub chips_per_node: u32,
    pub local_links_per_chip: u32,
    pub global_links_per_chip: u32,
    pub nodes_per_rack: u32,
}

impl Target {
    /// Parse and validate a target from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, TargetError> {
        let t: Target = toml::from_str(text).map_err(|e| TargetError::Parse(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// A built-in target by name, or a TOML file when `spec` ends in `.toml`.
    pub fn load(spec: &str) -> Result<(Self, String), TargetError> {
        if spec.ends_with(".toml") {
            let text = std::fs::read_to_string(Path::new(spec)).map_err(|source| TargetError::Read {
                path: spec.to_string(),
                source,
            })?;
            Ok((Self::from_toml(&text)?, text))
        } else {
            match spec {
                "lpu-v1" => Ok((Self::from_toml(LPU_V1_TOML)?, LPU_V1_TOML.to_string())),
                other => Err(TargetError::UnknownBuiltin(other.to_string())),
            }
        }
    }

    /// The built-in `lpu-v1` target.
    pub fn lpu_v1() -> Self {
        Self::from_toml(LPU_V1_TOML).expect("the built-in lpu-v1 target is valid")
    }

    fn validate(&self) -> Result<(), TargetError> {
        let bad = |what: &str| Err(TargetError::Invalid(what.to_string()));
        if self.clock_hz == 0 {
            return bad("clock_hz must be positive");
        }
        if self.sram.bytes == 0 {
            return bad("sram.bytes must be positive");
        }
        if u64::from(self.sram.slices).checked_mul(self.sram.slice_bytes) != Some(self.sram.bytes) {
            return bad("sram.bytes must equal sram.slices x sram.slice_bytes");
        }
        if self.vector.bytes == 0 {
            return bad("vector.bytes must be positive");
        }
        if self.mxm.count == 0 || self.vxm.count == 0 || self.sxm.count == 0 {
            return bad("every unit kind (mxm, vxm, sxm) needs count >= 1");
        }
        if self.mxm.weight_tile == 0 || self.sxm.bytes_per_cycle == 0 {
            return bad("mxm.weight_tile and sxm.bytes_per_cycle must be positive");
        }
        if self.mxm.macs_per_cycle.values().any(|&r| r == 0)
            || self.vxm.elements_per_cycle.values().any(|&r| r == 0)
        {
            return bad("throughputs must be positive");
        }
        let per_rack = self
            .topology
            .chips_per_node
            .checked_mul(self.topology.nodes_per_rack);
        if self.topology.chips_per_node == 0
            || self.topology.nodes_per_rack == 0
            || self.c2c.bytes_per_second_per_direction == 0
            || per_rack.is_none_or(|c| c > 1 << 16)
        {
            return bad(
                "topology.chips_per_node and nodes_per_rack must be positive with at most 65,536 chips a rack, and c2c bandwidth positive",
            );
        }
        if !self.vxm.passes.contains_key("default") || self.vxm.passes.values().any(|&p| p == 0) {
            return bad("vxm.passes needs a positive 'default' entry and no zero entries");
        }
        // Caps keep every derived cycle count far from u64 overflow whatever a user writes.
        let latency_params = [
            self.sram.read_latency_cycles,
            self.sram.write_latency_cycles,
            self.vector.superlane_skew_cycles,
            self.mxm.pipeline_cycles,
            self.mxm.weight_tile_load_cycles,
            self.vxm.pipeline_cycles,
            self.sxm.pipeline_cycles,
            self.c2c.hop_latency_cycles,
            self.c2c.sync_margin_cycles,
        ];
        if latency_params.iter().any(|&c| c > 1_000_000) || self.vxm.passes.values().any(|&p| p > 1000) {
            return bad("latency parameters above 1,000,000 cycles (or passes above 1000) are not plausible");
        }
        Ok(())
    }

    /// `cycles` in microseconds at this target's clock, for reports.
    pub fn cycles_to_us(&self, cycles: u64) -> f64 {
        cycles as f64 * 1e6 / self.clock_hz as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_matches_published_figures() {
        let t = Target::lpu_v1();
        assert_eq!(t.clock_hz, 900_000_000);
        assert_eq!(t.sram.bytes, 220 * 1024 * 1024);
        let chip_int8: u64 = t.mxm.macs_per_cycle[&DType::I8] * u64::from(t.mxm.count);
        assert_eq!(chip_int8, 409_600);
        // 750 TOPS int8 at 900 MHz (2 ops per MAC), within 2%.
        let tops = chip_int8 as f64 * 2.0 * t.clock_hz as f64 / 1e12;
        assert!((tops - 750.0).abs() / 750.0 < 0.02, "{tops}");
        assert_eq!(t.topology.chips_per_node * t.topology.nodes_per_rack, 72);
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        let broken = LPU_V1_TOML.replace("slices = 88\nslice_bytes", "slices = 87\nslice_bytes");
        assert!(matches!(Target::from_toml(&broken), Err(TargetError::Invalid(_))));
        let unknown_key = format!("{LPU_V1_TOML}\nfrobnicate = 1\n");
        assert!(matches!(
            Target::from_toml(&unknown_key),
            Err(TargetError::Parse(_))
        ));
        assert!(matches!(
            Target::load("lpu-v9"),
            Err(TargetError::UnknownBuiltin(_))
        ));
        assert!(matches!(
            Target::load("/nonexistent/x.toml"),
            Err(TargetError::Read { .. })
        ));
    }
}
