//! The capability table: what lpuc does with each ONNX op type.
//!
//! `Supported` ops are lowered to IR ops and scheduled; `Folded` ops disappear at compile time
//! (constants, identities); everything else is rejected with a category, a reason and a hint. The
//! table is the single source of truth: `lpuc check` and the lowering both consult it.

use super::onnx_ops::is_onnx_op;
use super::violation::Category;

/// What lpuc does with an op type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    Supported,
    Folded,
    /// Supported only when the listed inputs (by position) are compile-time constants; otherwise
    /// the output shape depends on run-time data.
    NeedsConstantInputs {
        inputs: &'static [usize],
        then: Box<Capability>,
    },
    Rejected {
        category: Category,
        reason: &'static str,
        hint: &'static str,
    },
}

/// Op types lowered to the IR.
pub const SUPPORTED: &[&str] = &[
    "Add",
    "Div",
    "Erf",
    "Gelu",
    "Gemm",
    "LayerNormalization",
    "MatMul",
    "Mul",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sub",
    "Tanh",
    "Transpose",
];

/// Op types removed at compile time.
pub const FOLDED: &[&str] = &["Constant", "Dropout", "Identity"];

const KNOWN_DOMAINS: &[&str] = &["", "ai.onnx.ml", "com.microsoft"];

fn rejected(category: Category, reason: &'static str, hint: &'static str) -> Capability {
    Capability::Rejected {
        category,
        reason,
        hint,
    }
}

/// The capability of `op_type` in `domain` ("" for the default ONNX domain).
pub fn capability(domain: &str, op_type: &str) -> Capability {
    use Category::*;
    if !KNOWN_DOMAINS.contains(&domain) {
        return rejected(
            UnknownDomain,
            "the op's domain is not one lpuc knows (ai.onnx, ai.onnx.ml, com.microsoft)",
            "export with standard ONNX ops only, or decompose the custom op before export",
        );
    }
    if !domain.is_empty() {
        return rejected(
            NotYetSupported,
            "ops outside the default ONNX domain are not lowered",
            "export without runtime-specific (contrib or ML) ops, e.g. without ORT graph optimizations",
        );
    }
    if SUPPORTED.contains(&op_type) {
        return Capability::Supported;
    }
    if FOLDED.contains(&op_type) {
        return Capability::Folded;
    }
    match op_type {
        "If" | "Loop" | "Scan" => rejected(
            ControlFlow,
            "control flow decides at run time which ops execute, so no static schedule exists",
            "export with the condition resolved (trace a fixed path), or unroll loops with a static trip count",
        ),
        "RandomNormal" | "RandomNormalLike" | "RandomUniform" | "RandomUniformLike" | "Multinomial"
        | "Bernoulli" => rejected(
            Random,
            "random ops have no deterministic result; a static artifact must compute the same thing every run",
            "export in inference mode (e.g. model.eval()) or feed the random values as an input",
        ),
        "NonZero" | "Unique" | "NonMaxSuppression" | "Compress" | "StringSplit" => rejected(
            DataDependentShape,
            "the output's size depends on the input's values, so buffers and cycles cannot be fixed at compile time",
            "replace it with a fixed-size form (e.g. a mask with Where, or TopK with a constant K) before export",
        ),
        "TopK" => Capability::NeedsConstantInputs {
            inputs: &[1],
            then: Box::new(not_yet()),
        },
        "Range" => Capability::NeedsConstantInputs {
            inputs: &[0, 1, 2],
            then: Box::new(not_yet()),
        },
        "ConstantOfShape" => Capability::NeedsConstantInputs {
            inputs: &[0],
            then: Box::new(not_yet()),
        },
        "Resize" | "Upsample" => Capability::NeedsConstantInputs {
            inputs: &[1, 2, 3],
            then: Box::new(not_yet()),
        },
        op if op.starts_with("Sequence") || op.starts_with("Optional") || op == "SplitToSequence"
            || op == "ConcatFromSequence" => rejected(
            DataDependentShape,
            "sequence and optional values have a run-time length",
            "export with plain tensors (fixed-length lists become separate tensors)",
        ),
        op if is_onnx_op(op) => not_yet(),
        _ => rejected(
            UnknownOp,
            "no ONNX opset defines this op type",
            "check the exporter's opset and op names; custom ops need a custom domain and are not supported",
        ),
    }
}

fn not_yet() -> Capability {
    rejected(
        Category::NotYetSupported,
        "a standard ONNX op that this version of lpuc does not lower yet",
        "see docs/ARCHITECTURE.md for the supported set; decompose it into supported ops before export",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_classifies_every_kind() {
        assert_eq!(capability("", "MatMul"), Capability::Supported);
        assert_eq!(capability("", "Identity"), Capability::Folded);
        let cat = |d: &str, op: &str| match capability(d, op) {
            Capability::Rejected { category, .. } => Some(category),
            _ => None,
        };
        assert_eq!(cat("", "Loop"), Some(Category::ControlFlow));
        assert_eq!(cat("", "RandomUniformLike"), Some(Category::Random));
        assert_eq!(cat("", "NonZero"), Some(Category::DataDependentShape));
        assert_eq!(cat("", "SequenceAt"), Some(Category::DataDependentShape));
        assert_eq!(cat("", "Conv"), Some(Category::NotYetSupported));
        assert_eq!(cat("", "FancyOp"), Some(Category::UnknownOp));
        assert_eq!(cat("org.example", "MatMul"), Some(Category::UnknownDomain));
        assert_eq!(
            cat("com.microsoft", "FusedMatMul"),
            Some(Category::NotYetSupported)
        );
        assert!(matches!(
            capability("", "TopK"),
            Capability::NeedsConstantInputs { .. }
        ));
    }

    #[test]
    fn supported_ops_are_onnx_ops() {
        for op in SUPPORTED.iter().chain(FOLDED) {
            assert!(is_onnx_op(op), "{op}");
        }
    }
}
