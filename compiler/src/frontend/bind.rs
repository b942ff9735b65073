//! Binding symbolic dims to sizes: the shape bucket makes every shape static.
//!
//! `--dim NAME=VALUE` binds any name; `--bucket N` binds sequence-like names (those containing
//! `seq`, `context` or `ctx`, as exporters name them: `sequence`, `seq_len`, `past_sequence_length`,
//! `encoder_sequence_length`, ...); batch-like names (containing `batch`) default to 1. Anything else
//! stays unbound and the checker names the flag that would bind it.

use std::collections::BTreeMap;

/// Which rule bound a dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimSource {
    /// `--dim NAME=VALUE`.
    Explicit,
    /// `--bucket N` on a sequence-like name.
    Bucket,
    /// Batch-like names default to 1.
    BatchDefault,
}

/// The binding rules of one compile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DimBinder {
    pub bucket: Option<u64>,
    pub explicit: BTreeMap<String, u64>,
}

/// Whether a dim name looks like a sequence length.
pub fn is_sequence_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("seq") || n.contains("context") || n.contains("ctx")
}

/// Whether a dim name looks like a batch size.
pub fn is_batch_like(name: &str) -> bool {
    name.to_ascii_lowercase().contains("batch")
}

impl DimBinder {
    /// The size of dim `name`, and which rule gave it.
    pub fn bind(&self, name: &str) -> Option<(u64, DimSource)> {
        if let Some(&v) = self.explicit.get(name) {
            return Some((v, DimSource::Explicit));
        }
        if is_sequence_like(name) {
            if let Some(b) = self.bucket {
                return Some((b, DimSource::Bucket));
            }
        }
        if is_batch_like(name) {
            return Some((1, DimSource::BatchDefault));
        }
        None
    }

    /// The flag that would bind `name`, for a checker hint.
    pub fn hint(&self, name: &str) -> String {
        if is_sequence_like(name) {
            format!("pass --bucket N (binds sequence-like dims) or --dim {name}=N")
        } else {
            format!("pass --dim {name}=N")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_rules() {
        let mut b = DimBinder {
            bucket: Some(2048),
            ..Default::default()
        };
        b.explicit.insert("batch".into(), 4);
        assert_eq!(b.bind("sequence"), Some((2048, DimSource::Bucket)));
        assert_eq!(b.bind("past_sequence_length"), Some((2048, DimSource::Bucket)));
        assert_eq!(b.bind("batch"), Some((4, DimSource::Explicit)));
        assert_eq!(b.bind("batch_size"), Some((1, DimSource::BatchDefault)));
        assert_eq!(b.bind("unbound_len"), None);
        assert!(b.hint("unbound_len").contains("--dim unbound_len=N"));
        let no_bucket = DimBinder::default();
        assert_eq!(no_bucket.bind("seq_len"), None);
        assert!(no_bucket.hint("seq_len").contains("--bucket"));
    }
}
