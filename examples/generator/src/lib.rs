//! Deterministic generator for the example ONNX models under `examples/`, so nobody needs Python.

pub mod builder;
pub mod dynamic_ops;
pub mod mlp;
pub mod sync;
pub mod transformer_block;

/// One generated model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Path relative to the `examples/` folder, with `/` separators.
    pub relative_path: &'static str,
    /// The serialised `ModelProto`.
    pub bytes: Vec<u8>,
}

/// The `examples/` folder this crate lives in.
pub const DEFAULT_EXAMPLES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Every example model, in a fixed order.
pub fn all_examples() -> Vec<Example> {
    [
        (mlp::PATH, mlp::build()),
        (transformer_block::PATH, transformer_block::build()),
        (dynamic_ops::PATH, dynamic_ops::build()),
    ]
    .into_iter()
    .map(|(relative_path, model)| Example {
        relative_path,
        bytes: builder::encode(&model),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{Message, ModelProto};

    fn parsed(path: &str) -> ModelProto {
        let example = all_examples()
            .into_iter()
            .find(|e| e.relative_path == path)
            .unwrap_or_else(|| panic!("no example {path}"));
        ModelProto::parse_from_bytes(&example.bytes).expect("example parses")
    }

    fn op_types(model: &ModelProto) -> Vec<&str> {
        model.graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    fn count(ops: &[&str], op: &str) -> usize {
        ops.iter().filter(|&&o| o == op).count()
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(all_examples(), all_examples());
    }

    #[test]
    fn paths_are_unique() {
        let mut paths: Vec<_> = all_examples().iter().map(|e| e.relative_path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), 3);
    }

    #[test]
    fn every_model_has_header_and_unique_node_names() {
        for example in all_examples() {
            let m = ModelProto::parse_from_bytes(&example.bytes).expect("parses");
            assert_eq!(m.ir_version, 8);
            assert_eq!(m.opset_import.len(), 1);
            assert_eq!(m.opset_import[0].domain, "");
            assert_eq!(m.opset_import[0].version, 17);
            assert_eq!(m.producer_name, "lpuc-examples");
            let mut names: Vec<&str> = m.graph.node.iter().map(|n| n.name.as_str()).collect();
            assert!(names.iter().all(|n| !n.is_empty()));
            names.sort_unstable();
            let total = names.len();
            names.dedup();
            assert_eq!(names.len(), total, "{}", example.relative_path);
        }
    }

    /// Every node input is a graph input, an initializer, or an earlier node's output
    /// (nodes are topologically ordered).
    #[test]
    fn every_top_level_value_is_defined_before_use() {
        for example in all_examples() {
            let m = ModelProto::parse_from_bytes(&example.bytes).expect("parses");
            let g = &m.graph;
            let mut defined: Vec<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
            defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
            for n in &g.node {
                for i in &n.input {
                    assert!(
                        defined.contains(&i.as_str()),
                        "{}: {} uses undefined {i}",
                        example.relative_path,
                        n.name
                    );
                }
                defined.extend(n.output.iter().map(String::as_str));
            }
            for o in &g.output {
                assert!(defined.contains(&o.name.as_str()), "{}", o.name);
            }
        }
    }

    #[test]
    fn mlp_structure() {
        let m = parsed("mlp.onnx");
        assert_eq!(op_types(&m), ["Gemm", "Relu", "MatMul", "Add", "Softmax"]);
        assert_eq!(m.graph.initializer.len(), 4);
        assert_eq!(m.graph.input[0].name, "input");
        assert_eq!(m.graph.output[0].name, "probs");
    }

    #[test]
    fn transformer_block_structure() {
        let m = parsed("transformer_block.onnx");
        let ops = op_types(&m);
        assert_eq!(ops.len(), 33);
        assert_eq!(count(&ops, "MatMul"), 8);
        assert_eq!(count(&ops, "Add"), 9);
        assert_eq!(count(&ops, "Reshape"), 4);
        assert_eq!(count(&ops, "Transpose"), 4);
        assert_eq!(count(&ops, "Softmax"), 1);
        assert_eq!(count(&ops, "Div"), 2);
        assert_eq!(count(&ops, "Erf"), 1);
        assert_eq!(count(&ops, "Mul"), 2);
        assert_eq!(count(&ops, "LayerNormalization"), 2);
        assert_eq!(ops.last(), Some(&"LayerNormalization"));
        assert_eq!(m.graph.node.last().map(|n| n.output[0].as_str()), Some("output"));
        // Rank-0 scalars: attention scale and the three GELU constants.
        let scalars = m.graph.initializer.iter().filter(|t| t.dims.is_empty()).count();
        assert_eq!(scalars, 4);
    }

    #[test]
    fn dynamic_ops_structure() {
        let m = parsed("rejected/dynamic_ops.onnx");
        let ops = op_types(&m);
        assert_eq!(ops.len(), 5);
        for op in ["Relu", "NonZero", "Loop", "If", "RandomNormal"] {
            assert_eq!(count(&ops, op), 1, "{op}");
        }
        let graph_attrs: Vec<&str> = m
            .graph
            .node
            .iter()
            .flat_map(|n| n.attribute.iter())
            .filter(|a| a.g.is_some())
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(graph_attrs, ["body", "then_branch", "else_branch"]);
        let body = m
            .graph
            .node
            .iter()
            .find(|n| n.op_type == "Loop")
            .and_then(|n| n.attribute.first())
            .and_then(|a| a.g.as_ref())
            .expect("loop body");
        assert_eq!(body.input.len(), 3);
        assert_eq!(body.output.len(), 2);
    }

    #[test]
    fn committed_examples_are_up_to_date() {
        let problems = sync::check(DEFAULT_EXAMPLES_DIR.as_ref(), &all_examples());
        assert!(
            problems.is_empty(),
            "stale examples (run `cargo run -p lpuc-examples`): {problems:?}"
        );
    }
}
