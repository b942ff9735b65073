//! The IR verifier: run after every stage in debug builds and tests. A failure is a compiler bug,
//! never the model's fault, because the frontend reports model errors before building the IR.

use crate::infer::infer;
use crate::{Graph, OpId, TensorType, ValueId, ValueKind};
use thiserror::Error;

/// An invariant of the IR that does not hold.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{op}: reads {value}, which does not exist")]
    DanglingInput { op: OpId, value: ValueId },
    #[error("{op}: reads {value} before it is defined (ops must be in topological order)")]
    ForwardReference { op: OpId, value: ValueId },
    #[error("{op}: result {value} does not name {op} as its producer")]
    WrongProducer { op: OpId, value: ValueId },
    #[error("{op}: {kind} result type is {found}, but its operands give {expected}")]
    TypeMismatch {
        op: OpId,
        kind: String,
        found: String,
        expected: String,
    },
    #[error("{op}: {kind} is ill-typed: {reason}")]
    IllTyped { op: OpId, kind: String, reason: String },
    #[error("graph output {0} does not exist")]
    DanglingOutput(ValueId),
    #[error("value {0} is larger than 2^48 elements")]
    TooLarge(ValueId),
}

/// Check every invariant; return all violations found.
pub fn verify(g: &Graph) -> Result<(), Vec<VerifyError>> {
    let mut errors = Vec::new();
    for v in g.value_ids() {
        if g.value(v).ty.size_bytes().is_none() {
            errors.push(VerifyError::TooLarge(v));
        }
    }
    for o in g.op_ids() {
        let op = g.op(o);
        let mut ok = true;
        for &v in &op.inputs {
            if v.index() >= g.num_values() {
                errors.push(VerifyError::DanglingInput { op: o, value: v });
                ok = false;
            } else if let ValueKind::Computed { producer } = g.value(v).kind {
                if producer >= o {
                    errors.push(VerifyError::ForwardReference { op: o, value: v });
                    ok = false;
                }
            }
        }
        for &v in &op.outputs {
            if v.index() >= g.num_values() || g.value(v).kind != (ValueKind::Computed { producer: o }) {
                errors.push(VerifyError::WrongProducer { op: o, value: v });
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        let types: Vec<_> = op.inputs.iter().map(|&v| &g.value(v).ty).collect();
        let found: Vec<TensorType> = op.outputs.iter().map(|&v| g.value(v).ty.clone()).collect();
        let show = |ts: &[TensorType]| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        match infer(&op.kind, &types) {
            Ok(expected) if expected == found => {}
            Ok(expected) => errors.push(VerifyError::TypeMismatch {
                op: o,
                kind: op.kind.to_string(),
                found: show(&found),
                expected: show(&expected),
            }),
            Err(e) => errors.push(VerifyError::IllTyped {
                op: o,
                kind: op.kind.to_string(),
                reason: e.to_string(),
            }),
        }
    }
    for &v in g.outputs() {
        if v.index() >= g.num_values() {
            errors.push(VerifyError::DanglingOutput(v));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType, OpKind, Provenance, TensorType};

    fn prov() -> Provenance {
        Provenance {
            node: "n".into(),
            op_type: "Add".into(),
        }
    }

    #[test]
    fn well_formed_graph_passes() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![2, 3]));
        let w = g.add_weight("w", TensorType::new(DType::F32, vec![3]), "w");
        let y = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![x, w], "y", prov())
            .unwrap();
        g.add_output(y);
        assert_eq!(verify(&g), Ok(()));
    }

    #[test]
    fn forward_reference_and_bad_types_are_caught() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![2, 3]));
        let a = g
            .add_op(OpKind::Binary(BinaryOp::Add), vec![x, x], "a", prov())
            .unwrap();
        let b = g
            .add_op(OpKind::Binary(BinaryOp::Mul), vec![a, x], "b", prov())
            .unwrap();
        g.add_output(b);
        // Make op0 read op1's result: a forward reference.
        g.ops_mut()[0].inputs[0] = b;
        // Make op1 a transpose whose declared result type no longer matches.
        g.ops_mut()[1].kind = OpKind::Transpose { perm: vec![1, 0] };
        g.ops_mut()[1].inputs = vec![a];
        let errs = verify(&g).unwrap_err();
        assert!(errs.contains(&VerifyError::ForwardReference {
            op: OpId(0),
            value: b
        }));
        assert!(errs
            .iter()
            .any(|e| matches!(e, VerifyError::TypeMismatch { op: OpId(1), .. })));
    }
}
