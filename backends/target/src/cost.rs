//! The cost model: how long an op keeps its unit busy (occupancy) and when its result is ready
//! (latency), from the work it does and the target's figures.
//!
//! ```text
//! occupancy(MXM) = ceil(batch*m*k*n / macs_per_cycle[dtype])
//!                  + batch * ceil(k / weight_tile) * ceil(n / weight_tile) * weight_tile_load_cycles
//! occupancy(VXM) = ceil(elements / elements_per_cycle[dtype]) * passes[op]
//! occupancy(SXM) = ceil(bytes / bytes_per_cycle)
//! latency        = sram.read_latency + fill + vector.superlane_skew + occupancy + sram.write_latency
//!   where fill   = mxm.pipeline | vxm.pipeline * passes[op] | sxm.pipeline
//! ```
//!
//! Occupancy is what throughput-bound (prefill) schedules feel; latency is what dependent chains
//! (decode steps) feel, so both are modelled and both are named parameters of the target.

use crate::{Target, UnitKind};
use lpuc_ir::DType;
use serde::{Deserialize, Serialize};

/// The work of one instruction, in the terms the cost model needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Work {
    /// `batch` independent `[m,k] x [k,n]` products.
    Matmul {
        batch: u64,
        m: u64,
        k: u64,
        n: u64,
        dtype: DType,
    },
    /// An elementwise or reduction op streaming `elements` values through the VXM.
    Vector { op: String, elements: u64, dtype: DType },
    /// A data movement op streaming `bytes` through the SXM.
    Stream { bytes: u64 },
}

/// Cycles an instruction costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Cycles the unit is busy and cannot issue another instruction.
    pub occupancy: u64,
    /// Cycles from issue until the result is in SRAM and can be read.
    pub latency: u64,
}

impl Work {
    /// The kind of unit that executes this work.
    pub fn unit_kind(&self) -> UnitKind {
        match self {
            Work::Matmul { .. } => UnitKind::Mxm,
            Work::Vector { .. } => UnitKind::Vxm,
            Work::Stream { .. } => UnitKind::Sxm,
        }
    }
}

impl Target {
    /// The cost of `work` on this target, or why the target cannot execute it.
    pub fn cost(&self, work: &Work) -> Result<Cost, String> {
        let (occupancy, fill) = match work {
            Work::Matmul {
                batch,
                m,
                k,
                n,
                dtype,
            } => {
                let rate = *self
                    .mxm
                    .macs_per_cycle
                    .get(dtype)
                    .ok_or_else(|| format!("the MXM has no {dtype} mode"))?;
                let macs = mul_all(&[*batch, *m, *k, *n])?;
                let tiles = mul_all(&[
                    *batch,
                    k.div_ceil(self.mxm.weight_tile),
                    n.div_ceil(self.mxm.weight_tile),
                ])?;
                let load = tiles
                    .checked_mul(self.mxm.weight_tile_load_cycles)
                    .ok_or_else(overflow)?;
                (
                    macs.div_ceil(rate).checked_add(load).ok_or_else(overflow)?,
                    self.mxm.pipeline_cycles,
                )
            }
            Work::Vector { op, elements, dtype } => {
                let rate = *self
                    .vxm
                    .elements_per_cycle
                    .get(dtype)
                    .ok_or_else(|| format!("the VXM has no {dtype} mode"))?;
                let passes = self.vxm_passes(op);
                let occ = elements.div_ceil(rate).checked_mul(passes).ok_or_else(overflow)?;
                (occ, self.vxm.pipeline_cycles * passes)
            }
            Work::Stream { bytes } => (bytes.div_ceil(self.sxm.bytes_per_cycle), self.sxm.pipeline_cycles),
        };
        let latency = [
            self.sram.read_latency_cycles,
            fill,
            self.vector.superlane_skew_cycles,
            occupancy,
            self.sram.write_latency_cycles,
        ]
        .iter()
        .try_fold(0u64, |acc, &c| acc.checked_add(c))
        .ok_or_else(overflow)?;
        Ok(Cost { occupancy, latency })
    }

    /// Passes over the data that the VXM needs for `op`.
    pub fn vxm_passes(&self, op: &str) -> u64 {
        self.vxm
            .passes
            .get(op)
            .or_else(|| self.vxm.passes.get("default"))
            .copied()
            .unwrap_or(1)
    }
}

fn overflow() -> String {
    "cycle count overflows 64 bits".to_string()
}

fn mul_all(xs: &[u64]) -> Result<u64, String> {
    xs.iter()
        .try_fold(1u64, |acc, &x| acc.checked_mul(x))
        .ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_cost_has_throughput_and_latency_parts() {
        let t = Target::lpu_v1();
        let w = Work::Matmul {
            batch: 1,
            m: 2048,
            k: 320,
            n: 320,
            dtype: DType::I8,
        };
        let c = t.cost(&w).unwrap();
        // 2048*320*320 MACs at 102,400/cycle = 2048 cycles, plus one 40-cycle weight tile load.
        assert_eq!(c.occupancy, 2048 + 40);
        assert_eq!(c.latency, 5 + 324 + 20 + c.occupancy + 5);
        let f16 = Work::Matmul {
            batch: 1,
            m: 2048,
            k: 320,
            n: 320,
            dtype: DType::F16,
        };
        let f16 = t.cost(&f16).unwrap();
        assert_eq!(f16.occupancy, 4 * 2048 + 40);
    }

    #[test]
    fn a_decode_step_is_latency_bound() {
        // One token: a [1,4096] x [4096,4096] int8 matmul is mostly weight loads and pipeline fill.
        let t = Target::lpu_v1();
        let c = t
            .cost(&Work::Matmul {
                batch: 1,
                m: 1,
                k: 4096,
                n: 4096,
                dtype: DType::I8,
            })
            .unwrap();
        let peak_only = (4096u64 * 4096).div_ceil(102_400);
        assert!(c.latency > 10 * peak_only, "{c:?} vs {peak_only}");
    }

    #[test]
    fn vector_and_stream_costs() {
        let t = Target::lpu_v1();
        let softmax = t
            .cost(&Work::Vector {
                op: "Softmax".into(),
                elements: 800,
                dtype: DType::F32,
            })
            .unwrap();
        assert_eq!(softmax.occupancy, 10 * 3);
        assert_eq!(softmax.latency, 5 + 16 * 3 + 20 + 30 + 5);
        let add = t
            .cost(&Work::Vector {
                op: "Add".into(),
                elements: 800,
                dtype: DType::F32,
            })
            .unwrap();
        assert_eq!(add.occupancy, 10);
        assert_eq!(t.cost(&Work::Stream { bytes: 641 }).unwrap().occupancy, 3);
        assert!(t
            .cost(&Work::Matmul {
                batch: 1,
                m: 1,
                k: 1,
                n: 1,
                dtype: DType::I64
            })
            .is_err());
        assert!(t
            .cost(&Work::Matmul {
                batch: u64::MAX,
                m: 2,
                k: 1,
                n: 1,
                dtype: DType::I8
            })
            .is_err());
    }
}
