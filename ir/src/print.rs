//! Stable text form of a graph: the snapshot format for IR tests and `--stop-after` dumps.
//!
//! One line per value or op, in arena order, so the text changes only when the graph does.

use crate::{Graph, ValueKind};
use std::fmt::Write;

/// Render `g` as text.
pub fn print(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", g.name);
    for v in g.value_ids() {
        let value = g.value(v);
        match &value.kind {
            ValueKind::Input => {
                let _ = writeln!(s, "  input  {v}: {} \"{}\"", value.ty, value.name);
            }
            ValueKind::Weight { source } => {
                let _ = writeln!(s, "  weight {v}: {} \"{source}\"", value.ty);
            }
            ValueKind::Computed { .. } => {}
        }
    }
    for o in g.op_ids() {
        let op = g.op(o);
        let outs: Vec<String> = op
            .outputs
            .iter()
            .map(|&v| format!("{v}: {}", g.value(v).ty))
            .collect();
        let ins: Vec<String> = op.inputs.iter().map(|v| v.to_string()).collect();
        let p = g.provenance(o);
        let _ = writeln!(
            s,
            "  {} = {}({})  # {} ({})",
            outs.join(", "),
            op.kind,
            ins.join(", "),
            p.node,
            p.op_type
        );
    }
    let outs: Vec<String> = g
        .outputs()
        .iter()
        .map(|&v| format!("{v} \"{}\"", g.value(v).name))
        .collect();
    let _ = writeln!(s, "  output {}", outs.join(", "));
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, OpKind, Provenance, TensorType, UnaryOp};

    #[test]
    fn prints_one_line_per_value_and_op() {
        let mut g = Graph::new("tiny");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![1, 4]));
        let y = g
            .add_op(
                OpKind::Unary(UnaryOp::Relu),
                vec![x],
                "y",
                Provenance {
                    node: "act".into(),
                    op_type: "Relu".into(),
                },
            )
            .unwrap();
        g.add_output(y);
        insta::assert_snapshot!(print(&g), @r###"
        graph tiny {
          input  %0: f32[1,4] "x"
          %1: f32[1,4] = Relu(%0)  # act (Relu)
          output %1 "y"
        }
        "###);
    }
}
