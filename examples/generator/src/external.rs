//! ONNX external data: large tensors moved out of the protobuf into one shared file next to the model.
//!
//! Protobuf caps a message at 2 GiB, so real large models keep their weights outside it. Each moved
//! tensor gets `data_location = EXTERNAL` and `external_data` entries `location`, `offset`, `length`
//! (decimal strings, as the ONNX spec has them). Offsets are aligned to [`ALIGNMENT`] so a reader can
//! map tensors page by page. The sparse mode only reserves the space (`File::set_len`), so a
//! 70B-shaped model costs a few kilobytes of disk.

use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{StringStringEntryProto, TensorProto};
use protobuf::EnumOrUnknown;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Every external tensor starts at a multiple of this many bytes.
pub const ALIGNMENT: u64 = 4096;

/// Where the bytes of external tensors go while the model is built.
#[derive(Debug)]
pub enum Sink {
    /// Collected in memory (committed examples, tests).
    Memory(Vec<u8>),
    /// Streamed into a file (large models written from the command line).
    File(BufWriter<File>),
    /// Not written at all: the file is created later at its full length with no data (sparse).
    Sparse,
}

/// The shared data file as tensors are appended to it.
#[derive(Debug)]
pub struct ExternalData {
    location: String,
    end: u64,
    sink: Sink,
    error: Option<io::Error>,
}

/// The data file once every tensor has been placed.
#[derive(Debug)]
pub struct DataFile {
    /// File name relative to the model's folder.
    pub location: String,
    /// Logical length in bytes (the end of the last tensor).
    pub len: u64,
    /// The bytes, when they were collected in memory.
    pub bytes: Option<Vec<u8>>,
    /// Whether the file still has to be created sparse with `len` bytes.
    pub sparse: bool,
}

impl ExternalData {
    /// Starts an empty data file called `location` (relative to the model) that writes into `sink`.
    pub fn new(location: &str, sink: Sink) -> Self {
        ExternalData {
            location: location.to_string(),
            end: 0,
            sink,
            error: None,
        }
    }

    /// Whether the bytes of placed tensors are needed at all.
    pub fn wants_bytes(&self) -> bool {
        !matches!(self.sink, Sink::Sparse)
    }

    /// Moves `tensor`'s data (`length` bytes, given as `bytes` unless the sink is sparse) to the file.
    pub fn place(&mut self, tensor: &mut TensorProto, length: u64, bytes: Option<&[u8]>) {
        let offset = self.end.div_ceil(ALIGNMENT) * ALIGNMENT;
        let padding = (offset - self.end) as usize;
        match (&mut self.sink, bytes) {
            (Sink::Memory(buf), Some(b)) => {
                buf.resize(buf.len() + padding, 0);
                buf.extend_from_slice(b);
            }
            (Sink::File(w), Some(b)) => {
                if self.error.is_none() {
                    let result = w.write_all(&vec![0; padding]).and_then(|()| w.write_all(b));
                    self.error = result.err();
                }
            }
            (Sink::Sparse, _) => {}
            (_, None) => unreachable!("a non-sparse sink was given no bytes for {}", tensor.name),
        }
        debug_assert!(bytes.is_none_or(|b| b.len() as u64 == length));
        self.end = offset + length;
        tensor.raw_data.clear();
        tensor.data_location = EnumOrUnknown::new(DataLocation::EXTERNAL);
        tensor.external_data = [
            ("location", self.location.clone()),
            ("offset", offset.to_string()),
            ("length", length.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.to_string(),
            value,
            ..Default::default()
        })
        .collect();
    }

    /// Flushes a file sink and reports the file; the first write error, if any, is returned here.
    pub fn finish(self) -> io::Result<DataFile> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let (bytes, sparse) = match self.sink {
            Sink::Memory(b) => (Some(b), false),
            Sink::File(mut w) => {
                w.flush()?;
                (None, false)
            }
            Sink::Sparse => (None, true),
        };
        Ok(DataFile {
            location: self.location,
            len: self.end,
            bytes,
            sparse,
        })
    }
}

/// Creates `path` with logical length `len` and no data written, so the file system leaves it sparse.
pub fn create_sparse(path: &Path, len: u64) -> io::Result<()> {
    let file = File::create(path)?;
    file.set_len(len)
}

/// The `(offset, length)` of an external tensor, parsed back from its entries.
pub fn extent(tensor: &TensorProto) -> Option<(u64, u64)> {
    let get = |key: &str| {
        tensor
            .external_data
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.parse::<u64>().ok())
    };
    Some((get("offset")?, get("length")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str) -> TensorProto {
        TensorProto {
            name: name.to_string(),
            raw_data: vec![7; 3],
            ..Default::default()
        }
    }

    #[test]
    fn offsets_are_aligned_and_bytes_padded() {
        let mut ext = ExternalData::new("m.onnx.data", Sink::Memory(Vec::new()));
        let mut a = tensor("a");
        let mut b = tensor("b");
        ext.place(&mut a, 3, Some(&[1, 2, 3]));
        ext.place(&mut b, 2, Some(&[4, 5]));
        assert_eq!(extent(&a), Some((0, 3)));
        assert_eq!(extent(&b), Some((4096, 2)));
        assert!(a.raw_data.is_empty());
        assert_eq!(a.data_location.enum_value(), Ok(DataLocation::EXTERNAL));
        assert_eq!(a.external_data[0].key, "location");
        assert_eq!(a.external_data[0].value, "m.onnx.data");
        let file = ext.finish().expect("memory sink");
        assert_eq!(file.len, 4098);
        let bytes = file.bytes.expect("bytes");
        assert_eq!(bytes.len(), 4098);
        assert_eq!(&bytes[..3], &[1, 2, 3]);
        assert!(bytes[3..4096].iter().all(|&x| x == 0));
        assert_eq!(&bytes[4096..], &[4, 5]);
    }

    #[test]
    fn sparse_sink_only_counts() {
        let mut ext = ExternalData::new("w", Sink::Sparse);
        assert!(!ext.wants_bytes());
        let mut a = tensor("a");
        ext.place(&mut a, 10_000, None);
        let file = ext.finish().expect("sparse");
        assert!(file.sparse && file.bytes.is_none());
        assert_eq!(file.len, 10_000);
    }
}
