//! Static shapes and tensor types, with overflow-checked sizes.

use crate::DType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest element count a single tensor may have. Far above anything one chip or one cluster holds,
/// but small enough that byte sizes, tiles and cycle counts derived from it never overflow `u64`.
pub const MAX_ELEMENTS: u64 = 1 << 48;

/// A static shape: every dimension is a known size.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shape(pub Vec<u64>);

impl Shape {
    pub fn new(dims: Vec<u64>) -> Self {
        Shape(dims)
    }

    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[u64] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements, or `None` when it exceeds [`MAX_ELEMENTS`].
    pub fn num_elements(&self) -> Option<u64> {
        self.0
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_ELEMENTS)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The static type of a value: element type and shape.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, dims: Vec<u64>) -> Self {
        TensorType {
            dtype,
            shape: Shape(dims),
        }
    }

    /// Size in bytes, or `None` when the tensor is larger than [`MAX_ELEMENTS`] elements.
    pub fn size_bytes(&self) -> Option<u64> {
        self.shape.num_elements().map(|n| n * self.dtype.size_bytes())
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        let t = TensorType::new(DType::F16, vec![2, 3, 4]);
        assert_eq!(t.size_bytes(), Some(48));
        let huge = TensorType::new(DType::F32, vec![1 << 30, 1 << 30]);
        assert_eq!(huge.size_bytes(), None);
        let overflow = Shape(vec![u64::MAX, 2]);
        assert_eq!(overflow.num_elements(), None);
        assert_eq!(Shape::scalar().num_elements(), Some(1));
    }

    #[test]
    fn display_is_compact() {
        assert_eq!(TensorType::new(DType::Bf16, vec![1, 8]).to_string(), "bf16[1,8]");
    }
}
