//! Binding symbolic dims to sizes: the shape bucket makes every shape static.
//!
//! `--input NAME=1x3x224x224` gives a whole input's shape (for unnamed `?` dims); `--dim NAME=VALUE`
//! binds any name; `--bucket N` binds sequence-like names (those containing `seq`, `context` or
//! `ctx`, as exporters name them: `sequence`, `seq_len`, `past_sequence_length`, ...); `--batch N`
//! binds batch-like names (containing `batch`), which default to 1. A dim written as an expression
//! (`past_sequence + 1`, `2*seq`) is evaluated over the bound names. Anything else stays unbound and
//! the checker names the flag that would bind it.

use super::model::{Dim, ValueInfo};
use std::collections::BTreeMap;

/// Largest value a dim may be bound to, by a flag or by an expression.
pub const MAX_DIM: u64 = 1 << 32;

/// Which rule bound a dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimSource {
    /// `--dim NAME=VALUE`.
    Explicit,
    /// `--bucket N` on a sequence-like name.
    Bucket,
    /// `--batch N` on a batch-like name, or 1 by default.
    BatchDefault,
    /// An expression over bound names.
    Expression,
}

/// The binding rules of one compile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DimBinder {
    pub bucket: Option<u64>,
    pub explicit: BTreeMap<String, u64>,
    /// `--batch N`: the size of batch-like dims (1 when not given).
    pub batch: Option<u64>,
    /// `--input NAME=DIMS`: whole shapes of graph inputs.
    pub inputs: BTreeMap<String, Vec<u64>>,
    /// `--phase decode`: one new token against a cache of `--bucket` positions.
    pub decode: bool,
}

/// How a decode step binds a dim name: cache positions (`past_sequence`, `cache_len`), cache plus
/// the new token (`total_sequence_length`), or neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DecodeRole {
    Cache,
    Total,
    Other,
}

fn decode_role(name: &str) -> DecodeRole {
    let n = name.to_ascii_lowercase();
    if n.contains("total") {
        DecodeRole::Total
    } else if n.contains("past") || n.contains("cache") {
        DecodeRole::Cache
    } else {
        DecodeRole::Other
    }
}

/// Whether a dim name looks like a sequence length.
pub fn is_sequence_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("seq") || n.contains("context") || n.contains("ctx")
}

/// Whether a dim name counts the tokens a step processes: sequence-like, and neither a cache
/// length (`past_...`) nor a total (`total_...`) nor an encoder's length.
pub fn is_new_tokens(name: &str) -> bool {
    is_sequence_like(name)
        && matches!(decode_role(name), DecodeRole::Other)
        && !name.to_ascii_lowercase().contains("encoder")
}

/// Whether a dim name looks like a batch size.
pub fn is_batch_like(name: &str) -> bool {
    name.to_ascii_lowercase().contains("batch")
}

impl DimBinder {
    /// The size of dim `name`, and which rule gave it.
    pub fn bind(&self, name: &str) -> Option<(u64, DimSource)> {
        let name = name.trim();
        if let Some(&v) = self.explicit.get(name) {
            return Some((v, DimSource::Explicit));
        }
        if is_identifier(name) {
            if self.decode {
                // One new token against a cache of `--bucket` positions; an encoder's length
                // (cross-attention) is not a decode dim and keeps the bucket.
                let encoder = name.to_ascii_lowercase().contains("encoder");
                match (decode_role(name), self.bucket) {
                    (DecodeRole::Cache, Some(b)) => return Some((b, DimSource::Bucket)),
                    (DecodeRole::Total, Some(b)) => return Some((b.saturating_add(1), DimSource::Bucket)),
                    (DecodeRole::Other, _) if is_sequence_like(name) && !encoder => {
                        return Some((1, DimSource::Bucket))
                    }
                    _ => {}
                }
            }
            if is_sequence_like(name) {
                if let Some(b) = self.bucket {
                    return Some((b, DimSource::Bucket));
                }
            }
            if is_batch_like(name) {
                return Some((self.batch.unwrap_or(1), DimSource::BatchDefault));
            }
            return None;
        }
        let v = super::dim_expr::evaluate(name, &|n| self.bind(n).map(|(v, _)| v))?;
        u64::try_from(v)
            .ok()
            .filter(|v| (1..=MAX_DIM).contains(v))
            .map(|v| (v, DimSource::Expression))
    }

    /// The static dims of a graph input, recording every named dim bound into `bound`; `None` when
    /// some dim stays unbound (the checker reports it).
    pub fn input_dims(&self, input: &ValueInfo, bound: &mut BTreeMap<String, u64>) -> Option<Vec<u64>> {
        let declared = input.dims.as_ref();
        if let Some(given) = self.inputs.get(&input.name) {
            let fits = declared.is_none_or(|d| {
                d.len() == given.len()
                    && d.iter()
                        .zip(given)
                        .all(|(d, &g)| !matches!(d, Dim::Known(k) if *k != g))
            });
            return fits.then(|| given.clone());
        }
        let mut out = Vec::new();
        for d in declared? {
            match d {
                Dim::Known(v) if *v > 0 => out.push(*v),
                Dim::Named(name) => {
                    let (v, _) = self.bind(name)?;
                    bound.insert(name.clone(), v);
                    out.push(v);
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// The flag that would bind `name`, for a checker hint.
    pub fn hint(&self, name: &str) -> String {
        if !is_identifier(name.trim()) {
            format!("bind every name in '{name}' (e.g. --bucket N or --dim NAME=N), or pass --dim '{name}'=N")
        } else if is_sequence_like(name) {
            format!("pass --bucket N (binds sequence-like dims) or --dim {name}=N")
        } else {
            format!("pass --dim {name}=N")
        }
    }
}

/// Whether a dim name is a plain name rather than an expression.
/// The names `--dim` can bind in a declared dim: the dim itself when it is a name, else every name
/// its expression reads (as [`DimBinder::bind`] evaluates it).
pub fn names_in(dim: &str) -> Vec<String> {
    let dim = dim.trim();
    if is_identifier(dim) {
        return vec![dim.to_string()];
    }
    let seen = std::cell::RefCell::new(Vec::new());
    super::dim_expr::evaluate(dim, &|n| {
        seen.borrow_mut().push(n.to_string());
        Some(1)
    });
    seen.into_inner()
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && !name.contains(['+', '-', '*', '/', '(', ')', ' '])
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

    #[test]
    fn decode_binds_new_tokens_to_one_and_the_cache_to_the_bucket() {
        let b = DimBinder {
            bucket: Some(4096),
            decode: true,
            ..Default::default()
        };
        assert_eq!(b.bind("sequence"), Some((1, DimSource::Bucket)));
        assert_eq!(b.bind("past_sequence"), Some((4096, DimSource::Bucket)));
        assert_eq!(b.bind("past_sequence + sequence").map(|x| x.0), Some(4097));
        assert_eq!(b.bind("total_sequence_length"), Some((4097, DimSource::Bucket)));
        assert_eq!(b.bind("cache_len"), Some((4096, DimSource::Bucket)));
        assert_eq!(b.bind("encoder_sequence_length"), Some((4096, DimSource::Bucket)));
    }

    #[test]
    fn expressions_and_whole_inputs() {
        let mut b = DimBinder {
            bucket: Some(128),
            batch: Some(4),
            ..Default::default()
        };
        assert_eq!(b.bind("past_sequence + 1"), Some((129, DimSource::Expression)));
        assert_eq!(b.bind("2*sequence"), Some((256, DimSource::Expression)));
        assert_eq!(b.bind("batch"), Some((4, DimSource::BatchDefault)));
        assert_eq!(b.bind("n + 1"), None);
        assert_eq!(b.bind("sequence - sequence"), None, "a dim is at least 1");
        b.inputs.insert("image".into(), vec![1, 3, 224, 224]);
        let info = ValueInfo {
            name: "image".into(),
            elem_type: 1,
            dims: Some(vec![Dim::Unknown, Dim::Known(3), Dim::Unknown, Dim::Unknown]),
            is_tensor: true,
        };
        let mut bound = BTreeMap::new();
        assert_eq!(b.input_dims(&info, &mut bound), Some(vec![1, 3, 224, 224]));
        b.inputs.insert("image".into(), vec![1, 4, 224, 224]);
        assert_eq!(b.input_dims(&info, &mut bound), None);
    }
}
