//! `--embed-weights`: the scheduled graph's weight values, stored in the artifact's `weights.bin`
//! so the functional emulator can execute the schedule without the model.
//!
//! Values are stored in each weight value's own dtype, little-endian, in value order; the
//! dataflow records where each one is. A placement that stores weights narrower
//! (`--weight-dtype`) is modelled by the emulator from these values, as the hardware would
//! quantize them when loading.

use super::CompileError;
use crate::frontend::consts::Values;
use lpuc_artifact::dataflow::{encode, Role, Stored};
use lpuc_artifact::{Dataflow, WeightSource};
use std::collections::BTreeMap;

/// Fill `dataflow`'s weight locations and return `weights.bin`; an error names every weight
/// whose values are unknown.
pub fn embed_weights(
    dataflow: &mut Dataflow,
    values: &BTreeMap<String, Values>,
    unknown: &[(String, String)],
) -> Result<Vec<u8>, CompileError> {
    let mut bytes = Vec::new();
    let mut missing = Vec::new();
    for v in dataflow.values.iter_mut().filter(|v| v.role == Role::Weight) {
        let Some(known) = values.get(&v.name) else {
            let recipe = unknown
                .iter()
                .find(|(n, _)| *n == v.name)
                .map_or(String::new(), |(_, r)| format!(" ({r})"));
            missing.push(format!("'{}'{recipe}", v.name));
            continue;
        };
        let floats = known.to_floats();
        let elements: u64 = v.shape.iter().product();
        if floats.len() as u64 != elements {
            missing.push(format!(
                "'{}' ({} values for {elements} elements)",
                v.name,
                floats.len()
            ));
            continue;
        }
        let data = encode(v.dtype, &floats);
        v.stored = Some(Stored {
            offset: bytes.len() as u64,
            bytes: data.len() as u64,
        });
        bytes.extend(data);
    }
    if !missing.is_empty() {
        return Err(CompileError::WeightsUnknown {
            count: missing.len(),
            names: missing.join(", "),
        });
    }
    dataflow.weights = WeightSource::Embedded;
    Ok(bytes)
}
