//! The capability table: what lpuc does with each ONNX op type.
//!
//! `Supported` ops are lowered to IR ops and scheduled; `Folded` ops are evaluated at compile time
//! (shapes, constants, identities); everything else is rejected with a category, a reason and a
//! hint. Either of the first two may require some inputs to be compile-time constants *after
//! folding* (a Reshape's shape computed by a shape subgraph qualifies); the lowering decides that and
//! reports a data-dependent shape when it is not so. The table is the single source of truth:
//! `lpuc check`, the lowering, `lpuc ops` and docs/ONNX_COVERAGE.md all read it.

use super::onnx_ops::{is_onnx_op, NEWER_ONNX_OPS, ONNX_OPS};
use super::violation::Category;
use serde::Serialize;

/// The default-domain opsets whose op definitions lpuc implements. Models importing a newer opset
/// are accepted: each op is lowered by its definition at the newest version lpuc knows, and an op
/// introduced later is supported only if the table says so (RMSNormalization) or rejected by name.
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=21;

/// What lpuc does with an op type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Lowered to IR ops and scheduled on the chip.
    Supported { rule: &'static Rule },
    /// Evaluated at compile time; never reaches the schedule.
    Folded { rule: &'static Rule },
    Rejected {
        category: Category,
        reason: &'static str,
        hint: &'static str,
    },
}

/// The conditions under which a supported or folded op is accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct Rule {
    pub op: &'static str,
    /// Inputs (by position) that must be compile-time constants after folding, because they
    /// decide the output's shape.
    pub constant_inputs: &'static [usize],
    /// Further conditions, in words, for `lpuc ops` and the coverage document.
    pub conditions: &'static str,
}

const fn rule(op: &'static str, constant_inputs: &'static [usize], conditions: &'static str) -> Rule {
    Rule {
        op,
        constant_inputs,
        conditions,
    }
}

/// Op types lowered to the IR, with their conditions.
pub static SUPPORTED: &[Rule] = &[
    rule("Abs", &[], ""),
    rule("Acos", &[], ""),
    rule("Acosh", &[], ""),
    rule("Add", &[], ""),
    rule("And", &[], ""),
    rule("ArgMax", &[], "the Index output is int64"),
    rule("ArgMin", &[], "the Index output is int64"),
    rule("Asin", &[], ""),
    rule("Asinh", &[], ""),
    rule("Atan", &[], ""),
    rule("Atanh", &[], ""),
    rule(
        "Attention",
        &[],
        "opset 23 op: 3-D or 4-D, grouped-query, past key/value, bool or additive mask, causal; no sliding window or nonpad_kv_seqlen",
    ),
    rule(
        "AveragePool",
        &[],
        "static kernel, strides and pads (auto_pad resolved at compile time)",
    ),
    rule("BatchNormalization", &[], "inference form (one output)"),
    rule("Cast", &[], "to a dtype the LPU supports"),
    rule("CastLike", &[], "to a dtype the LPU supports"),
    rule("Ceil", &[], ""),
    rule("Celu", &[], ""),
    rule("Clip", &[1, 2], "min and max fold to constants"),
    rule("Concat", &[], ""),
    rule("Conv", &[], "2-D or 1-D; grouped and depthwise included"),
    rule("ConvInteger", &[], "int8/uint8 operands, int32 result"),
    rule(
        "ConvTranspose",
        &[],
        "2-D or 1-D; output_shape or pads resolved at compile time",
    ),
    rule("Cos", &[], ""),
    rule("Cosh", &[], ""),
    rule("CumSum", &[1], "axis folds to a constant"),
    rule("DepthToSpace", &[], "DCR or CRD mode, lowered to reshape, transpose, reshape"),
    rule("DequantizeLinear", &[], "per-tensor or per-axis scales"),
    rule("Div", &[], ""),
    rule("DynamicQuantizeLinear", &[], ""),
    rule(
        "Einsum",
        &[],
        "explicit or implicit output; no repeated index within one operand",
    ),
    rule("Elu", &[], ""),
    rule("Equal", &[], ""),
    rule("Erf", &[], ""),
    rule("Exp", &[], ""),
    rule("Expand", &[1], "target shape folds to a constant"),
    rule("Flatten", &[], ""),
    rule("Floor", &[], ""),
    rule(
        "Gather",
        &[],
        "indices may be run-time values (embedding lookups); their shape is static",
    ),
    rule("GatherElements", &[], ""),
    rule("GatherND", &[], ""),
    rule("Gelu", &[], ""),
    rule("Gemm", &[], ""),
    rule("GlobalAveragePool", &[], ""),
    rule("GlobalMaxPool", &[], ""),
    rule("Greater", &[], ""),
    rule("GreaterOrEqual", &[], ""),
    rule("GroupNormalization", &[], "scale and bias per channel (opset 21) or per group (opset 18)"),
    rule("HardSigmoid", &[], ""),
    rule("HardSwish", &[], ""),
    rule("Hardmax", &[], ""),
    rule("InstanceNormalization", &[], ""),
    rule("IsInf", &[], ""),
    rule("IsNaN", &[], ""),
    rule(
        "LayerNormalization",
        &[],
        "the optional Mean and InvStdDev results are float32",
    ),
    rule("LeakyRelu", &[], ""),
    rule("Less", &[], ""),
    rule("LessOrEqual", &[], ""),
    rule("Log", &[], ""),
    rule("LogSoftmax", &[], ""),
    rule("LpNormalization", &[], "p is 1 or 2"),
    rule("MatMul", &[], ""),
    rule("MatMulInteger", &[], "int8/uint8 operands, int32 result"),
    rule("Max", &[], ""),
    rule(
        "MaxPool",
        &[],
        "static kernel, strides and pads; the optional Indices result is int64",
    ),
    rule("Mean", &[], ""),
    rule("Min", &[], ""),
    rule("Mish", &[], ""),
    rule("Mod", &[], ""),
    rule("Mul", &[], ""),
    rule("Neg", &[], ""),
    rule("Not", &[], ""),
    rule("OneHot", &[1], "depth folds to a constant"),
    rule("Or", &[], ""),
    rule("PRelu", &[], ""),
    rule("Pad", &[1, 2, 3], "pads, value and axes fold to constants"),
    rule("Pow", &[], ""),
    rule("QLinearConv", &[], "int8/uint8 operands, per-tensor or per-channel scales"),
    rule("QLinearMatMul", &[], "int8/uint8 operands"),
    rule(
        "QuantizeLinear",
        &[],
        "per-tensor or per-axis scales; int8/uint8 results",
    ),
    rule("RMSNormalization", &[], "opset 23 op, accepted in any model"),
    rule("Reciprocal", &[], ""),
    rule("ReduceL1", &[1], "axes fold to a constant"),
    rule("ReduceL2", &[1], "axes fold to a constant"),
    rule("ReduceLogSum", &[1], "axes fold to a constant"),
    rule("ReduceLogSumExp", &[1], "axes fold to a constant"),
    rule("ReduceMax", &[1], "axes fold to a constant"),
    rule("ReduceMean", &[1], "axes fold to a constant"),
    rule("ReduceMin", &[1], "axes fold to a constant"),
    rule("ReduceProd", &[1], "axes fold to a constant"),
    rule("ReduceSum", &[1], "axes fold to a constant"),
    rule("ReduceSumSquare", &[1], "axes fold to a constant"),
    rule("Relu", &[], ""),
    rule("Reshape", &[1], "target shape folds to a constant"),
    rule(
        "Resize",
        &[1, 2, 3],
        "scales or sizes fold to constants; no roi crop (tf_crop_and_resize)",
    ),
    rule("RotaryEmbedding", &[], "opset 23 op: halves or interleaved, partial rotary dim, optional position_ids"),
    rule("Round", &[], ""),
    rule("ScatterElements", &[], ""),
    rule("ScatterND", &[], ""),
    rule("Selu", &[], ""),
    rule("Shrink", &[], ""),
    rule("Sigmoid", &[], ""),
    rule("Sign", &[], ""),
    rule("Sin", &[], ""),
    rule("Sinh", &[], ""),
    rule(
        "Slice",
        &[1, 2, 3, 4],
        "starts, ends, axes and steps fold to constants",
    ),
    rule("Softmax", &[], ""),
    rule("Softplus", &[], ""),
    rule("Softsign", &[], ""),
    rule("SpaceToDepth", &[], "lowered to reshape, transpose, reshape"),
    rule("Split", &[1], "split sizes fold to constants"),
    rule("Sqrt", &[], ""),
    rule("Squeeze", &[1], "axes fold to a constant"),
    rule("Sub", &[], ""),
    rule("Sum", &[], ""),
    rule("Tan", &[], ""),
    rule("Tanh", &[], ""),
    rule("ThresholdedRelu", &[], ""),
    rule("Tile", &[1], "repeats fold to a constant"),
    rule("TopK", &[1], "K folds to a constant; sorted output"),
    rule("Transpose", &[], ""),
    rule("Trilu", &[1], "k folds to a constant"),
    rule("Unsqueeze", &[1], "axes fold to a constant"),
    rule("Where", &[], ""),
    rule("Xor", &[], ""),
];

/// Op types evaluated at compile time.
pub static FOLDED: &[Rule] = &[
    rule(
        "Constant",
        &[],
        "sparse_value and string values are not supported",
    ),
    rule("ConstantOfShape", &[0], "shape folds to a constant"),
    rule(
        "Dropout",
        &[2],
        "inference (training_mode folds to false; the mask output is all true)",
    ),
    rule("EyeLike", &[], "2-D"),
    rule("Identity", &[], ""),
    rule("Range", &[0, 1, 2], "start, limit and delta fold to constants"),
    rule("Shape", &[], "every shape is static once dims are bound"),
    rule("Size", &[], "every shape is static once dims are bound"),
];

const KNOWN_DOMAINS: &[&str] = &[
    "",
    "ai.onnx.ml",
    "ai.onnx.preview",
    "ai.onnx.preview.training",
    "com.microsoft",
];

const fn rejected(category: Category, reason: &'static str, hint: &'static str) -> Capability {
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
    if let Some(rule) = SUPPORTED.iter().find(|r| r.op == op_type) {
        return Capability::Supported { rule };
    }
    if let Some(rule) = FOLDED.iter().find(|r| r.op == op_type) {
        return Capability::Folded { rule };
    }
    match op_type {
        "If" | "Loop" | "Scan" => rejected(
            ControlFlow,
            "control flow decides at run time which ops execute, so no static schedule exists",
            "export with the condition resolved (trace a fixed path), or unroll loops with a static trip count",
        ),
        "LSTM" | "GRU" | "RNN" => rejected(
            ControlFlow,
            "a recurrent op is a loop over time steps; lpuc does not unroll it (each step would serialize the chip on one small matmul)",
            "export the recurrence unrolled (trace the cell per time step with a fixed sequence length), or replace it with attention or convolution",
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

const fn not_yet() -> Capability {
    rejected(
        Category::NotYetSupported,
        "a standard ONNX op that this version of lpuc does not lower yet",
        "run `lpuc ops` for the supported set; decompose it into supported ops before export",
    )
}

/// One row of the published policy (`lpuc ops`, docs/ONNX_COVERAGE.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpPolicy {
    pub op: &'static str,
    /// `supported`, `folded` or `rejected`.
    pub status: &'static str,
    /// The opset range the status holds for.
    pub opsets: String,
    /// Conditions for supported and folded ops, the reason for rejected ones.
    pub conditions: String,
    /// The rejection category, for rejected ops.
    pub category: Option<&'static str>,
    pub hint: String,
}

/// The policy for every op of the default ONNX domain, sorted by op name.
pub fn policy_table() -> Vec<OpPolicy> {
    let mut ops: Vec<&'static str> = ONNX_OPS.iter().chain(NEWER_ONNX_OPS).copied().collect();
    ops.sort_unstable();
    ops.dedup();
    let opsets = format!("{}+", OPSETS.start());
    ops.into_iter()
        .map(|op| {
            let describe = |r: &Rule| {
                let mut parts = Vec::new();
                if !r.conditions.is_empty() {
                    parts.push(r.conditions.to_string());
                }
                if parts.is_empty() {
                    "always".to_string()
                } else {
                    parts.join("; ")
                }
            };
            match capability("", op) {
                Capability::Supported { rule } => OpPolicy {
                    op,
                    status: "supported",
                    opsets: opsets.clone(),
                    conditions: describe(rule),
                    category: None,
                    hint: String::new(),
                },
                Capability::Folded { rule } => OpPolicy {
                    op,
                    status: "folded",
                    opsets: opsets.clone(),
                    conditions: describe(rule),
                    category: None,
                    hint: String::new(),
                },
                Capability::Rejected {
                    category,
                    reason,
                    hint,
                } => OpPolicy {
                    op,
                    status: "rejected",
                    opsets: "all".into(),
                    conditions: reason.to_string(),
                    category: Some(category.label()),
                    hint: hint.to_string(),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_classifies_every_kind() {
        assert!(matches!(capability("", "MatMul"), Capability::Supported { .. }));
        assert!(matches!(capability("", "Identity"), Capability::Folded { .. }));
        let cat = |d: &str, op: &str| match capability(d, op) {
            Capability::Rejected { category, .. } => Some(category),
            _ => None,
        };
        assert_eq!(cat("", "Loop"), Some(Category::ControlFlow));
        assert_eq!(cat("", "LSTM"), Some(Category::ControlFlow));
        assert_eq!(cat("", "RandomUniformLike"), Some(Category::Random));
        assert_eq!(cat("", "NonZero"), Some(Category::DataDependentShape));
        assert_eq!(cat("", "SequenceAt"), Some(Category::DataDependentShape));
        assert_eq!(cat("", "Col2Im"), Some(Category::NotYetSupported));
        assert_eq!(cat("", "FancyOp"), Some(Category::UnknownOp));
        assert_eq!(cat("org.example", "MatMul"), Some(Category::UnknownDomain));
        assert_eq!(
            cat("com.microsoft", "FusedMatMul"),
            Some(Category::NotYetSupported)
        );
    }

    #[test]
    fn supported_ops_are_onnx_ops_and_sorted() {
        for table in [SUPPORTED, FOLDED] {
            for r in table {
                assert!(is_onnx_op(r.op), "{}", r.op);
            }
            assert!(
                table.windows(2).all(|w| w[0].op < w[1].op),
                "keep the table sorted"
            );
        }
    }

    #[test]
    fn policy_covers_every_onnx_op_once() {
        let table = policy_table();
        assert!(table.windows(2).all(|w| w[0].op < w[1].op));
        assert!(table.iter().any(|p| p.op == "Conv" && p.status == "supported"));
        assert!(table.iter().any(|p| p.op == "Shape" && p.status == "folded"));
        assert!(table.iter().any(|p| p.op == "Loop" && p.status == "rejected"));
    }
}
