//! Typed ids into the graph's arenas, so an index always says what it indexes.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u32);

        impl $name {
            /// The arena index this id stands for.
            pub fn index(self) -> usize {
                self.0 as usize
            }

            /// The id of arena slot `index`.
            ///
            /// # Panics
            /// If `index` does not fit in 32 bits; arenas are bounded well below that by the frontend.
            pub fn from_index(index: usize) -> Self {
                Self(u32::try_from(index).expect("arena index exceeds u32"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity_id!(
    /// An operation in a [`crate::Graph`].
    OpId,
    "op"
);
entity_id!(
    /// A value (tensor) in a [`crate::Graph`].
    ValueId,
    "%"
);
