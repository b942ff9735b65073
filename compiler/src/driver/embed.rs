//! The scheduled graph's weight values for the functional emulator: stored in the artifact's
//! `weights.bin` with `--embed-weights`, or read back from the model the manifest pins
//! (`lpuc emulate --model`), lowered again with the dims the manifest records.
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
use std::path::Path;

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

/// The weights of artifact `a` (compiled without `--embed-weights`) from `model`, which must be
/// the file its manifest pins: the model lowered again, with every value read, under the dims
/// the manifest records. Returns the dataflow with the weights' locations and `weights.bin`.
pub fn weights_from_model(
    a: &lpuc_artifact::Artifact,
    model: &Path,
) -> Result<(Dataflow, Vec<u8>), CompileError> {
    use crate::frontend::{load::load_model_with_values, lower::lower, DimBinder};
    let found = super::compile::sha256_file(model)?;
    if found != a.manifest.model_sha256 {
        return Err(CompileError::OtherModel {
            path: model.display().to_string(),
            found,
            expected: a.manifest.model_sha256.clone(),
        });
    }
    let options = &a.manifest.options;
    let number = |s: &str| s.parse::<u64>().ok();
    // Every plain dim name bound explicitly (a dim written as an expression follows from them).
    let explicit = a
        .manifest
        .bound_dims
        .iter()
        .filter(|(name, _)| name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .map(|(k, &v)| (k.clone(), v))
        .collect();
    let inputs = options
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("input.")?;
            let dims: Option<Vec<u64>> = v.split('x').map(number).collect();
            Some((name.to_string(), dims?))
        })
        .collect();
    let binder = DimBinder {
        bucket: a.manifest.bucket,
        explicit,
        batch: options.get("batch").and_then(|b| number(b)),
        inputs,
        decode: false,
    };
    let lowered = lower(&load_model_with_values(model)?, &binder);
    if lowered.graph.is_none() {
        return Err(CompileError::Rejected(lowered.violations));
    }
    let mut dataflow = a.dataflow.clone();
    let blob = embed_weights(&mut dataflow, &lowered.weight_values, &lowered.unknown_weights)?;
    Ok((dataflow, blob))
}
