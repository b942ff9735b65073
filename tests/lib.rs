//! Shared helpers for the end-to-end tests: paths to the examples, scratch directories, and a tiny
//! ONNX model builder so each test states the model it needs in a few lines.

use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::Dimension, type_proto,
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use std::path::PathBuf;

/// Compile options for `model` with the built-in target and an optional bucket.
pub fn options(model: PathBuf, bucket: Option<u64>) -> lpuc::driver::CompileOptions {
    lpuc::driver::CompileOptions {
        model,
        binder: lpuc::frontend::DimBinder {
            bucket,
            ..Default::default()
        },
        target: "lpu-v1".into(),
        rewrite: true,
        embed_weights: false,
    }
}

/// Run the CLI in-process with `args` (without the program name); returns the exit code.
pub fn lpuc(args: &[&str]) -> i32 {
    use clap::Parser;
    let mut argv = vec!["lpuc"];
    argv.extend_from_slice(args);
    lpuc::cli::run(lpuc::cli::Cli::try_parse_from(argv).expect("valid command line"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An example model's path.
pub fn example(name: &str) -> PathBuf {
    repo_root().join("examples").join(name)
}

/// A fresh, empty scratch directory under the target dir, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo_root().join("target").join("test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// ONNX element type codes used by tests.
pub const F32: i32 = DataType::FLOAT as i32;
pub const F64: i32 = DataType::DOUBLE as i32;
pub const I64: i32 = DataType::INT64 as i32;
pub const STRING: i32 = DataType::STRING as i32;
pub const I8: i32 = DataType::INT8 as i32;
pub const COMPLEX64: i32 = DataType::COMPLEX64 as i32;

/// A dim of a declared input or output.
pub enum D {
    N(i64),
    P(&'static str),
    Unknown,
}

/// A small ONNX graph under construction.
pub struct ModelBuilder {
    graph: GraphProto,
    opset: i64,
}

impl ModelBuilder {
    pub fn new(opset: i64) -> Self {
        ModelBuilder {
            graph: GraphProto {
                name: "test".into(),
                ..Default::default()
            },
            opset,
        }
    }

    fn value_info(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for d in dims {
            let mut dim = Dimension::new();
            match d {
                D::N(n) => dim.set_dim_value(*n),
                D::P(p) => dim.set_dim_param(p.to_string()),
                D::Unknown => {}
            }
            shape.dim.push(dim);
        }
        let tensor = type_proto::Tensor {
            elem_type: elem,
            shape: protobuf::MessageField::some(shape),
            ..Default::default()
        };
        ValueInfoProto {
            name: name.into(),
            type_: protobuf::MessageField::some(TypeProto {
                value: Some(type_proto::Value::TensorType(tensor)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn input(mut self, name: &str, elem: i32, dims: &[D]) -> Self {
        self.graph.input.push(Self::value_info(name, elem, dims));
        self
    }

    pub fn output(mut self, name: &str, elem: i32, dims: &[D]) -> Self {
        self.graph.output.push(Self::value_info(name, elem, dims));
        self
    }

    /// An initializer with zero-filled raw data (or an external location when given).
    pub fn initializer(mut self, name: &str, elem: i32, dims: &[i64], external: Option<&str>) -> Self {
        let mut t = TensorProto {
            name: name.into(),
            data_type: elem,
            dims: dims.to_vec(),
            ..Default::default()
        };
        match external {
            Some(loc) => {
                t.data_location =
                    protobuf::EnumOrUnknown::new(onnx_protobuf::tensor_proto::DataLocation::EXTERNAL);
                t.external_data.push(onnx_protobuf::StringStringEntryProto {
                    key: "location".into(),
                    value: loc.into(),
                    ..Default::default()
                });
            }
            None => {
                let n: i64 = dims.iter().product();
                let width = if elem == I64 || elem == F64 { 8 } else { 4 };
                t.raw_data = vec![0u8; (n * width) as usize];
            }
        }
        self.graph.initializer.push(t);
        self
    }

    /// An initializer with the given little-endian bytes.
    pub fn raw(mut self, name: &str, elem: i32, dims: &[i64], bytes: Vec<u8>) -> Self {
        self.graph.initializer.push(TensorProto {
            name: name.into(),
            data_type: elem,
            dims: dims.to_vec(),
            raw_data: bytes,
            ..Default::default()
        });
        self
    }

    /// An int64 initializer stored in the typed `int64_data` field rather than `raw_data`.
    pub fn typed_int64s(mut self, name: &str, values: &[i64]) -> Self {
        self.graph.initializer.push(TensorProto {
            name: name.into(),
            data_type: I64,
            dims: vec![values.len() as i64],
            int64_data: values.to_vec(),
            ..Default::default()
        });
        self
    }

    /// A float32 scalar initializer.
    pub fn scalar(self, name: &str, v: f32) -> Self {
        self.raw(name, F32, &[], v.to_le_bytes().to_vec())
    }

    /// An int64 initializer holding `values`.
    pub fn int64s(self, name: &str, values: &[i64]) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw(name, I64, &[values.len() as i64], bytes)
    }

    pub fn node(self, name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> Self {
        self.node_in("", name, op, inputs, outputs, vec![])
    }

    pub fn node_with(
        self,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Self {
        self.node_in("", name, op, inputs, outputs, attrs)
    }

    pub fn node_in(
        mut self,
        domain: &str,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Self {
        self.graph.node.push(NodeProto {
            name: name.into(),
            op_type: op.into(),
            domain: domain.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self
    }

    pub fn bytes(self) -> Vec<u8> {
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
                ..Default::default()
            }],
            graph: protobuf::MessageField::some(self.graph),
            ..Default::default()
        };
        model.write_to_bytes().expect("test models serialize")
    }

    /// Write the model into a scratch dir and return its path.
    pub fn write(self, test: &str) -> PathBuf {
        let path = scratch(test).join("model.onnx");
        std::fs::write(&path, self.bytes()).expect("write model");
        path
    }
}

/// An INTS attribute.
pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: protobuf::EnumOrUnknown::new(AttributeType::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An INT attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: protobuf::EnumOrUnknown::new(AttributeType::INT),
        i: v,
        ..Default::default()
    }
}

/// A STRING attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: protobuf::EnumOrUnknown::new(AttributeType::STRING),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}
