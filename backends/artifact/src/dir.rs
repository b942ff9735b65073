//! Reading and writing an artifact directory.

use crate::text::{report_text, write_schedule_text};
use crate::trace::write_chrome_trace;
use crate::{Dataflow, Manifest, Report, Schedule};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Files larger than this are refused rather than read: the largest program lowering allows
/// (1.2 million instructions and transfers) writes a `schedule.json` of about a gigabyte.
const MAX_FILE_BYTES: u64 = 4 << 30;

/// Every file an artifact directory holds, in the order they are written (and `weights.bin` after
/// them when the weights are embedded).
pub const ARTIFACT_FILES: [&str; 8] = [
    "manifest.json",
    "schedule.json",
    "dataflow.json",
    "schedule.txt",
    "report.json",
    "report.txt",
    "trace.json",
    "target.toml",
];

/// A whole artifact in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub manifest: Manifest,
    pub schedule: Schedule,
    /// What each buffer holds and each instruction computes (`dataflow.json`).
    pub dataflow: Dataflow,
    /// The weights' values (`weights.bin`), when compiled with `--embed-weights`.
    pub weights: Option<Vec<u8>>,
    pub report: Report,
    /// The exact target description text the schedule was made for.
    pub target_toml: String,
}

/// Why an artifact could not be read or written.
#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid lpuc artifact file: {message}")]
    Malformed { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `v` as JSON and a newline (pretty for people, compact for a file only tools read),
/// streamed: a large schedule is never held as text.
fn write_json<T: serde::Serialize>(path: &Path, v: &T, pretty: bool) -> Result<(), ArtifactError> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut out = std::io::BufWriter::new(file);
    let written = if pretty {
        serde_json::to_writer_pretty(&mut out, v)
    } else {
        serde_json::to_writer(&mut out, v)
    };
    written.map_err(|e| ArtifactError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    out.write_all(b"\n").map_err(io(path))?;
    out.flush().map_err(io(path))
}

/// Write every file of the artifact into `dir`, creating it if needed. Files are written in
/// parallel, each streamed where it can be large (a 70B prefill's `schedule.json` is gigabytes),
/// so memory holds no file's whole text; each file's bytes do not depend on the others', and the
/// first failing file in [`ARTIFACT_FILES`] order is the error reported.
pub fn write_artifact(dir: &Path, a: &Artifact) -> Result<(), ArtifactError> {
    use rayon::prelude::*;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let written: Vec<Result<(), ArtifactError>> = ARTIFACT_FILES
        .par_iter()
        .map(|name| write_file(&dir.join(name), name, a))
        .collect();
    written.into_iter().collect::<Result<(), _>>()?;
    let weights = dir.join("weights.bin");
    match &a.weights {
        Some(bytes) => std::fs::write(&weights, bytes).map_err(io(&weights))?,
        // A stale file from an earlier compile must not pass for this one's weights.
        None if weights.exists() => std::fs::remove_file(&weights).map_err(io(&weights))?,
        None => {}
    }
    Ok(())
}

/// One file of the artifact, `name` of [`ARTIFACT_FILES`], at `path`.
fn write_file(path: &Path, name: &str, a: &Artifact) -> Result<(), ArtifactError> {
    match name {
        "manifest.json" => write_json(path, &a.manifest, true),
        "schedule.json" => write_json(path, &a.schedule, true),
        "dataflow.json" => write_json(path, &a.dataflow, false),
        "report.json" => write_json(path, &a.report, true),
        "schedule.txt" | "trace.json" => {
            let file = std::fs::File::create(path).map_err(io(path))?;
            let mut out = std::io::BufWriter::new(file);
            match name {
                "schedule.txt" => write_schedule_text(&mut out, &a.schedule),
                _ => write_chrome_trace(&mut out, &a.schedule, &a.report),
            }
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(io(path))
        }
        "report.txt" => std::fs::write(path, report_text(&a.report)).map_err(io(path)),
        _ => std::fs::write(path, &a.target_toml).map_err(io(path)),
    }
}

fn read_text(dir: &Path, name: &str) -> Result<String, ArtifactError> {
    let path = dir.join(name);
    let meta = std::fs::metadata(&path).map_err(io(&path))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ArtifactError::Malformed {
            path,
            message: format!("{} bytes is larger than any artifact file", meta.len()),
        });
    }
    std::fs::read_to_string(&path).map_err(io(&path))
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, ArtifactError> {
    let path = dir.join(name);
    let file = std::fs::File::open(&path).map_err(io(&path))?;
    let len = file.metadata().map_err(io(&path))?.len();
    if len > MAX_FILE_BYTES {
        return Err(ArtifactError::Malformed {
            path,
            message: format!("{len} bytes is larger than any artifact file"),
        });
    }
    // Parsed as it is read: a schedule of most of a gigabyte is never held as text too.
    serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| ArtifactError::Malformed {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// Read the artifact in `dir`. The text files are derived and not read back.
pub fn read_artifact(dir: &Path) -> Result<Artifact, ArtifactError> {
    Ok(Artifact {
        manifest: read_json(dir, "manifest.json")?,
        schedule: read_json(dir, "schedule.json")?,
        dataflow: read_json(dir, "dataflow.json")?,
        weights: read_weights(dir)?,
        report: read_json(dir, "report.json")?,
        target_toml: read_text(dir, "target.toml")?,
    })
}

/// `weights.bin`, when the artifact has one.
fn read_weights(dir: &Path) -> Result<Option<Vec<u8>>, ArtifactError> {
    let path = dir.join("weights.bin");
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    if len > MAX_FILE_BYTES {
        return Err(ArtifactError::Malformed {
            path,
            message: format!("{len} bytes is larger than any artifact file"),
        });
    }
    std::fs::read(&path).map(Some).map_err(io(&path))
}
