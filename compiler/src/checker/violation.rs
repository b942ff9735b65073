//! A violation: one reason a model cannot be scheduled statically, pinned to an ONNX node.

use serde::Serialize;
use std::fmt;

/// Which rule a node breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    DataDependentShape,
    ControlFlow,
    Random,
    UnsupportedDtype,
    UnboundDim,
    UnknownOp,
    UnknownDomain,
    NotYetSupported,
    InvalidModel,
}

impl Category {
    pub fn label(self) -> &'static str {
        match self {
            Category::DataDependentShape => "data-dependent shape",
            Category::ControlFlow => "control flow",
            Category::Random => "random op",
            Category::UnsupportedDtype => "unsupported dtype",
            Category::UnboundDim => "unbound dim",
            Category::UnknownOp => "unknown op",
            Category::UnknownDomain => "unknown domain",
            Category::NotYetSupported => "not supported yet",
            Category::InvalidModel => "invalid model",
        }
    }
}

/// One violation. Serialised with exactly the keys `node`, `op`, `reason`, `hint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// ONNX node name, or the graph input's name for an input's dims or dtype.
    pub node: String,
    /// ONNX op type (with its domain when not the default), or `graph-input`.
    pub op: String,
    /// What is wrong, starting with the category label.
    pub reason: String,
    /// What the user can do about it.
    pub hint: String,
    #[serde(skip)]
    pub category: Category,
}

impl Violation {
    pub fn new(
        category: Category,
        node: &str,
        op: &str,
        detail: impl fmt::Display,
        hint: impl Into<String>,
    ) -> Self {
        Violation {
            node: node.to_string(),
            op: op.to_string(),
            reason: format!("{}: {detail}", category.label()),
            hint: hint.into(),
            category,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}\n    hint: {}",
            self.node, self.op, self.reason, self.hint
        )
    }
}
