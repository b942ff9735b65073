//! Target descriptions and the LPU resource and cost model.
//!
//! A target is plain data (TOML) so a user can copy it and change a figure; the cost model derives
//! every op's occupancy and latency from it. The scheduler uses the cost model to build a schedule;
//! the emulator uses it to check the durations an artifact claims. Neither owns it.

pub mod cost;
pub mod desc;
pub mod topology;
pub mod units;

pub use cost::{Cost, Work};
pub use desc::{Target, TargetError};
pub use topology::{ChipLocation, Distance, LinkKind};
pub use units::{UnitId, UnitKind};
