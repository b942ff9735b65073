//! Reading and writing an artifact directory.

use crate::text::{report_text, schedule_text};
use crate::trace::chrome_trace;
use crate::{Manifest, Report, Schedule};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Files larger than this are refused rather than read: no real artifact comes near it.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Every file an artifact directory holds, in the order they are written.
pub const ARTIFACT_FILES: [&str; 7] = [
    "manifest.json",
    "schedule.json",
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

fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("artifact types always serialize");
    s.push('\n');
    s
}

/// Write every file of the artifact into `dir`, creating it if needed.
pub fn write_artifact(dir: &Path, a: &Artifact) -> Result<(), ArtifactError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let contents = [
        to_json(&a.manifest),
        to_json(&a.schedule),
        schedule_text(&a.schedule),
        to_json(&a.report),
        report_text(&a.report),
        chrome_trace(&a.schedule, &a.report),
        a.target_toml.clone(),
    ];
    for (name, text) in ARTIFACT_FILES.into_iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
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
    let text = read_text(dir, name)?;
    serde_json::from_str(&text).map_err(|e| ArtifactError::Malformed {
        path: dir.join(name),
        message: e.to_string(),
    })
}

/// Read the artifact in `dir`. The text files are derived and not read back.
pub fn read_artifact(dir: &Path) -> Result<Artifact, ArtifactError> {
    Ok(Artifact {
        manifest: read_json(dir, "manifest.json")?,
        schedule: read_json(dir, "schedule.json")?,
        report: read_json(dir, "report.json")?,
        target_toml: read_text(dir, "target.toml")?,
    })
}
