//! Deterministic generator for the example ONNX models under `examples/`, so nobody needs Python.
//!
//! Two kinds of model live here: the original hand-written graphs (`mlp`, `transformer_block`,
//! `dynamic_ops`, each one fixed file) and the model families (`gpt2`, `bert`, `llama`, `resnet`),
//! which take a configuration so the same code writes a 2-layer committed example and a
//! Llama-2-70B-shaped model with sparse external weights (`catalog`, `standalone`).

pub mod bert;
pub mod builder;
pub mod catalog;
pub mod decoder;
pub mod dynamic_ops;
pub mod external;
pub mod gpt2;
pub mod llama;
pub mod mlp;
pub mod net;
pub mod nn;
pub mod resnet;
pub mod shapes;
pub mod standalone;
pub mod sync;
pub mod transformer_block;
pub mod weights;

#[cfg(test)]
mod testing;

use external::{ExternalData, Sink};
use net::{Built, Layout};
use nn::Variant;

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

/// The committed model that keeps its weights in an external file, and that file.
pub const EXTERNAL_MODEL_PATH: &str = "external/bert_external.onnx";
/// The data file of [`EXTERNAL_MODEL_PATH`], named by the model's `external_data` `location`.
pub const EXTERNAL_DATA_PATH: &str = "external/bert_external.onnx.data";

/// A committed family model: small, so building inline cannot fail.
fn small(built: Result<Built, String>) -> onnx_protobuf::ModelProto {
    built
        .expect("committed examples are far below the inline size limit")
        .model
}

/// Every committed family example with inline weights, as `(path, model)`.
pub fn family_examples() -> Vec<(&'static str, onnx_protobuf::ModelProto)> {
    let gpt2 = gpt2::Gpt2Config::tiny();
    let llama = llama::LlamaConfig::tiny();
    let resnet = resnet::ResNetConfig::tiny();
    let unnamed = resnet::ResNetConfig {
        input_dims: resnet::InputDims::Unnamed,
        ..resnet.clone()
    };
    vec![
        (
            "gpt2_prefill.onnx",
            small(gpt2::build(&gpt2, Variant::Prefill, Layout::Inline)),
        ),
        (
            "gpt2_decode.onnx",
            small(gpt2::build(&gpt2, Variant::Decode, Layout::Inline)),
        ),
        (
            "bert_encoder.onnx",
            small(bert::build(&bert::BertConfig::tiny(), Layout::Inline)),
        ),
        (
            "llama_prefill.onnx",
            small(llama::build(&llama, Variant::Prefill, Layout::Inline)),
        ),
        (
            "llama_decode.onnx",
            small(llama::build(&llama, Variant::Decode, Layout::Inline)),
        ),
        ("resnet_small.onnx", small(resnet::build(&resnet, Layout::Inline))),
        (
            "resnet_unnamed_dims.onnx",
            small(resnet::build(&unnamed, Layout::Inline)),
        ),
    ]
}

/// The tiny BERT with every large tensor in one external file, as `(model, data file bytes)`.
pub fn external_example() -> (onnx_protobuf::ModelProto, Vec<u8>) {
    let location = EXTERNAL_DATA_PATH
        .rsplit('/')
        .next()
        .unwrap_or(EXTERNAL_DATA_PATH);
    let layout = Layout::External(ExternalData::new(location, Sink::Memory(Vec::new())));
    let built = bert::build(&bert::BertConfig::tiny(), layout).expect("small model");
    let bytes = built
        .data
        .and_then(|d| d.bytes)
        .expect("a memory sink keeps its bytes");
    (built.model, bytes)
}

/// Every example file, in a fixed order.
pub fn all_examples() -> Vec<Example> {
    let mut models = vec![
        (mlp::PATH, mlp::build()),
        (transformer_block::PATH, transformer_block::build()),
        (dynamic_ops::PATH, dynamic_ops::build()),
    ];
    models.extend(family_examples());
    let (external_model, external_bytes) = external_example();
    models.push((EXTERNAL_MODEL_PATH, external_model));
    let mut examples: Vec<Example> = models
        .into_iter()
        .map(|(relative_path, model)| Example {
            relative_path,
            bytes: builder::encode(&model),
        })
        .collect();
    examples.push(Example {
        relative_path: EXTERNAL_DATA_PATH,
        bytes: external_bytes,
    });
    examples
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_defined_before_use, count, named, op_set, op_types};
    use onnx_protobuf::{Message, ModelProto};

    fn parsed(path: &str) -> ModelProto {
        let example = all_examples()
            .into_iter()
            .find(|e| e.relative_path == path)
            .unwrap_or_else(|| panic!("no example {path}"));
        ModelProto::parse_from_bytes(&example.bytes).expect("example parses")
    }

    /// Every example that is a model (not a data file), parsed.
    fn models() -> Vec<(&'static str, ModelProto)> {
        all_examples()
            .into_iter()
            .filter(|e| e.relative_path.ends_with(".onnx"))
            .map(|e| {
                let m = ModelProto::parse_from_bytes(&e.bytes).expect("parses");
                (e.relative_path, m)
            })
            .collect()
    }

    fn expected_opset(path: &str) -> i64 {
        match path {
            p if p.starts_with("gpt2") => gpt2::OPSET,
            p if p.starts_with("llama") => llama::OPSET,
            p if p.starts_with("resnet") => resnet::OPSET,
            p if p.contains("bert") => bert::OPSET,
            _ => builder::OPSET_VERSION,
        }
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
        assert_eq!(paths.len(), 12);
    }

    #[test]
    fn committed_files_stay_small() {
        for e in all_examples() {
            assert!(
                e.bytes.len() < 2_000_000,
                "{} is {} bytes",
                e.relative_path,
                e.bytes.len()
            );
        }
    }

    #[test]
    fn every_model_has_header_and_unique_node_names() {
        for (path, m) in models() {
            assert_eq!(m.ir_version, 8);
            assert_eq!(m.opset_import.len(), 1);
            assert_eq!(m.opset_import[0].domain, "");
            assert_eq!(m.opset_import[0].version, expected_opset(path), "{path}");
            assert_eq!(m.producer_name, "lpuc-examples");
            let mut names: Vec<&str> = m.graph.node.iter().map(|n| n.name.as_str()).collect();
            assert!(names.iter().all(|n| !n.is_empty()));
            names.sort_unstable();
            let total = names.len();
            names.dedup();
            assert_eq!(names.len(), total, "{path}");
        }
    }

    /// Every node input is a graph input, an initializer, or an earlier node's output
    /// (nodes are topologically ordered).
    #[test]
    fn every_top_level_value_is_defined_before_use() {
        for (path, m) in models() {
            assert_defined_before_use(path, &m);
        }
    }

    /// The exact op types of each family example, so a change in what the compiler must accept is
    /// a reviewed change.
    #[test]
    fn family_op_sets() {
        let shared = "Add Cast Concat Div Gather MatMul Mul Reshape Shape Softmax Transpose Unsqueeze";
        let gpt2 = "Constant LessOrEqual Pow Range ReduceMean Split Sqrt Sub Tanh Where";
        let llama = "And Constant ConstantOfShape Expand Neg Pow Range Reciprocal ReduceMean Sigmoid \
                     Slice Sqrt Trilu Where";
        let bert = "Erf Gemm LayerNormalization Slice Sub Tanh";
        let resnet = "Add BatchNormalization Clip Conv Flatten Gemm GlobalAveragePool MaxPool Relu";
        let expected = |extra: &str, base: &str| -> Vec<String> {
            let mut v: Vec<String> = extra
                .split_whitespace()
                .chain(base.split_whitespace())
                .map(String::from)
                .collect();
            v.sort();
            v.dedup();
            v
        };
        for (path, ops) in [
            ("gpt2_prefill.onnx", expected(gpt2, shared)),
            ("gpt2_decode.onnx", expected(gpt2, shared)),
            ("llama_prefill.onnx", expected(llama, shared)),
            ("llama_decode.onnx", expected(llama, shared)),
            ("bert_encoder.onnx", expected(bert, shared)),
            (EXTERNAL_MODEL_PATH, expected(bert, shared)),
            ("resnet_small.onnx", expected(resnet, "")),
            ("resnet_unnamed_dims.onnx", expected(resnet, "")),
        ] {
            let m = parsed(path);
            let got: Vec<&str> = op_set(&m).into_iter().collect();
            assert_eq!(got, ops, "{path}");
        }
    }

    #[test]
    fn external_example_points_at_its_data_file() {
        let m = parsed(EXTERNAL_MODEL_PATH);
        let data = all_examples()
            .into_iter()
            .find(|e| e.relative_path == EXTERNAL_DATA_PATH)
            .expect("data file");
        let external: Vec<_> = m
            .graph
            .initializer
            .iter()
            .filter(|t| !t.external_data.is_empty())
            .collect();
        assert!(external.len() > 10);
        let mut end = 0;
        for t in &external {
            assert!(t.raw_data.is_empty());
            assert_eq!(t.external_data[0].key, "location");
            assert_eq!(t.external_data[0].value, "bert_external.onnx.data");
            let (offset, length) = external::extent(t).expect("offset and length");
            assert_eq!(offset % external::ALIGNMENT, 0);
            assert_eq!(length, 4 * t.dims.iter().product::<i64>() as u64);
            end = end.max(offset + length);
        }
        assert_eq!(end, data.bytes.len() as u64);
        // Same weights as the inline BERT: the bytes in the data file equal its raw_data.
        let inline = parsed("bert_encoder.onnx");
        let word = named(&inline.graph.initializer, "embeddings.word_embeddings.weight");
        let ext = external
            .iter()
            .find(|t| t.name == word.name)
            .expect("external embedding");
        let (offset, length) = external::extent(ext).expect("extent");
        assert_eq!(
            &data.bytes[offset as usize..(offset + length) as usize],
            word.raw_data.as_slice()
        );
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
