//! Writes one model (and its external weights file) to a folder outside the repo, for models too
//! large to commit, such as the Llama-2-70B-shaped one with sparse weights.

use crate::builder::encode;
use crate::catalog::Config;
use crate::external::{create_sparse, ExternalData, Sink};
use crate::net::Layout;
use crate::nn::Variant;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Where the weights go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Inside the `.onnx` file.
    Inline,
    /// In `<file>.data` next to it, with the actual (deterministic) bytes.
    External,
    /// In `<file>.data`, created at full length with no bytes written (a sparse file).
    ExternalSparse,
}

impl Weights {
    /// Parses `inline`, `external` or `external-sparse`.
    pub fn parse(s: &str) -> Option<Weights> {
        match s {
            "inline" => Some(Weights::Inline),
            "external" => Some(Weights::External),
            "external-sparse" => Some(Weights::ExternalSparse),
            _ => None,
        }
    }
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub model_path: PathBuf,
    pub model_bytes: u64,
    /// The data file with its logical length, if the weights are external.
    pub data: Option<(PathBuf, u64)>,
    pub parameters: u64,
}

/// Builds `config` and writes `<dir>/<file_name>` (plus `<file_name>.data` for external weights).
pub fn write_model(
    config: &Config,
    variant: Variant,
    weights: Weights,
    dir: &Path,
    file_name: &str,
) -> Result<Written, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let location = format!("{file_name}.data");
    let data_path = dir.join(&location);
    let layout = match weights {
        Weights::Inline => Layout::Inline,
        Weights::External => {
            let file =
                File::create(&data_path).map_err(|e| format!("creating {}: {e}", data_path.display()))?;
            Layout::External(ExternalData::new(&location, Sink::File(BufWriter::new(file))))
        }
        Weights::ExternalSparse => Layout::External(ExternalData::new(&location, Sink::Sparse)),
    };
    let built = config.build(variant, layout)?;
    let data = match &built.data {
        Some(file) => {
            if file.sparse {
                create_sparse(&data_path, file.len)
                    .map_err(|e| format!("creating {}: {e}", data_path.display()))?;
            }
            Some((data_path, file.len))
        }
        None => None,
    };
    let bytes = encode(&built.model);
    let model_path = dir.join(file_name);
    std::fs::write(&model_path, &bytes).map_err(|e| format!("writing {}: {e}", model_path.display()))?;
    Ok(Written {
        model_path,
        model_bytes: bytes.len() as u64,
        data,
        parameters: built.parameter_count(),
    })
}
