//! The manifest: provenance of an artifact, pinned to a compiler version and a hardware target.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What was built, from what, with which options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of the artifact layout.
    pub format_version: u32,
    pub compiler: String,
    pub compiler_version: String,
    /// Target name (e.g. `lpu-v1`) and the sha256 of the exact description used (`target.toml`).
    pub target: String,
    pub target_sha256: String,
    /// The model's file name (not its path, which differs between machines) and content hash.
    pub model_file: String,
    pub model_sha256: String,
    /// The shape bucket, if one was given.
    pub bucket: Option<u64>,
    /// Every symbolic dim of the model and the value it was bound to.
    pub bound_dims: BTreeMap<String, u64>,
    /// The compile options that influence the artifact, by flag name.
    pub options: BTreeMap<String, String>,
}
