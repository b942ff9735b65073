//! Small ResNet-style CNN at opset 12, as torchvision's ResNet exports without Conv-BN folding:
//! a 7x7 stride-2 stem, BasicBlocks with 1x1 stride-2 downsample convs, one MobileNet-style
//! depthwise block (group = channels, ReLU6 as Clip with min/max inputs), GlobalAveragePool,
//! Flatten and a Gemm classifier.
//!
//! At opset 12 Clip takes its bounds as inputs (since 11) and BatchNormalization is version 9
//! (inference form, one output). The input's dims are either named (`batch`) or all left unnamed
//! except channels, so a compiler must be told the input shape.

use crate::builder::{attr_float, attr_int, attr_ints, Dim};
use crate::net::{Built, ConstStyle, Layout, Net};
use crate::nn::linear_gemm;
use crate::weights::{Values, WeightDtype};
use onnx_protobuf::tensor_proto::DataType;

/// Default-domain opset of every ResNet model.
pub const OPSET: i64 = 12;

/// One stage of BasicBlocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub channels: i64,
    pub blocks: usize,
    /// Stride of the stage's first block (2 halves the resolution and adds a downsample conv).
    pub stride: i64,
}

/// How the image input's dims are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputDims {
    /// `[batch, 3, size, size]`.
    Named,
    /// `[?, 3, ?, ?]`: no dim_value, no dim_param.
    Unnamed,
}

/// The shape of a ResNet model.
#[derive(Clone, Debug, PartialEq)]
pub struct ResNetConfig {
    pub stem_channels: i64,
    pub stages: Vec<Stage>,
    /// Adds a depthwise-separable block after the last stage.
    pub depthwise: bool,
    pub classes: i64,
    pub image_size: i64,
    pub input_dims: InputDims,
    pub dtype: WeightDtype,
}

impl ResNetConfig {
    /// The committed examples: widths 16/32/64, one block per stage, plus the depthwise block.
    pub fn tiny() -> Self {
        ResNetConfig {
            stem_channels: 16,
            stages: vec![
                Stage {
                    channels: 16,
                    blocks: 1,
                    stride: 1,
                },
                Stage {
                    channels: 32,
                    blocks: 1,
                    stride: 2,
                },
                Stage {
                    channels: 64,
                    blocks: 1,
                    stride: 2,
                },
            ],
            depthwise: true,
            classes: 1000,
            image_size: 224,
            input_dims: InputDims::Named,
            dtype: WeightDtype::F32,
        }
    }

    /// torchvision's resnet18 layout (no depthwise block).
    pub fn resnet18() -> Self {
        let stage = |channels, stride| Stage {
            channels,
            blocks: 2,
            stride,
        };
        ResNetConfig {
            stem_channels: 64,
            stages: vec![stage(64, 1), stage(128, 2), stage(256, 2), stage(512, 2)],
            depthwise: false,
            ..Self::tiny()
        }
    }

    /// Trained parameters (conv weights, BN scale and shift, classifier); BN running statistics are
    /// buffers and not counted.
    pub fn parameter_count(&self) -> u64 {
        let conv = |cin: i64, cout: i64, k: i64, group: i64| (cout * (cin / group) * k * k) as u64;
        let bn = |c: i64| 2 * c as u64;
        let mut total = conv(3, self.stem_channels, 7, 1) + bn(self.stem_channels);
        let mut c = self.stem_channels;
        for s in &self.stages {
            for b in 0..s.blocks {
                let stride = if b == 0 { s.stride } else { 1 };
                total += conv(c, s.channels, 3, 1) + bn(s.channels) + conv(s.channels, s.channels, 3, 1);
                total += bn(s.channels);
                if stride != 1 || c != s.channels {
                    total += conv(c, s.channels, 1, 1) + bn(s.channels);
                }
                c = s.channels;
            }
        }
        if self.depthwise {
            total += conv(c, c, 3, c) + bn(c) + conv(c, c, 1, 1) + bn(c);
        }
        total + (c * self.classes + self.classes) as u64
    }
}

/// Builds the model; `layout` decides where weights go.
pub fn build(cfg: &ResNetConfig, layout: Layout) -> Result<Built, String> {
    let name = match cfg.input_dims {
        InputDims::Named => "resnet_small",
        InputDims::Unnamed => "resnet_unnamed_dims",
    };
    let mut net = Net::new(name, OPSET, cfg.dtype, ConstStyle::Initializer, layout);
    let (batch, spatial) = match cfg.input_dims {
        InputDims::Named => (Dim::Named("batch"), Dim::Fixed(cfg.image_size)),
        InputDims::Unnamed => (Dim::Unknown, Dim::Unknown),
    };
    net.input(
        "input",
        DataType::FLOAT,
        &[batch, Dim::Fixed(3), spatial, spatial],
    );

    let mut c = cfg.stem_channels;
    let x = conv(&mut net, "/conv1", "input", "conv1", 3, c, 7, 2, 1);
    let x = batch_norm(&mut net, "/bn1", &x, "bn1", c);
    let x = net.op("/relu", "Relu", &[&x], vec![]);
    let mut x = net.op(
        "/maxpool",
        "MaxPool",
        &[&x],
        vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[2, 2]),
        ],
    );

    for (s, stage) in cfg.stages.iter().enumerate() {
        for b in 0..stage.blocks {
            let stride = if b == 0 { stage.stride } else { 1 };
            let path = format!("layer{}.{b}", s + 1);
            x = basic_block(&mut net, &path, &x, c, stage.channels, stride);
            c = stage.channels;
        }
    }
    if cfg.depthwise {
        x = depthwise_block(&mut net, "dw", &x, c);
    }

    let x = net.op("/avgpool", "GlobalAveragePool", &[&x], vec![]);
    let x = net.op("/Flatten", "Flatten", &[&x], vec![attr_int("axis", 1)]);
    linear_gemm(&mut net, "/fc", &x, "fc", c, cfg.classes, Some("logits"));
    net.output("logits", DataType::FLOAT, &[batch, Dim::Fixed(cfg.classes)]);
    net.finish()
}

/// A bias-free square conv with "same" padding (`k / 2`), weight `<param>.weight [cout, cin/group, k, k]`.
#[allow(clippy::too_many_arguments)]
fn conv(
    net: &mut Net,
    scope: &str,
    x: &str,
    param: &str,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    group: i64,
) -> String {
    let w = net.param(
        &format!("{param}.weight"),
        &[cout, cin / group, k, k],
        Values::fan_in(cin / group * k * k),
    );
    let p = k / 2;
    net.op(
        scope,
        "Conv",
        &[x, &w],
        vec![
            attr_ints("dilations", &[1, 1]),
            attr_int("group", group),
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("pads", &[p, p, p, p]),
            attr_ints("strides", &[stride, stride]),
        ],
    )
}

/// Inference BatchNormalization with `<param>.{weight,bias,running_mean,running_var}`.
fn batch_norm(net: &mut Net, scope: &str, x: &str, param: &str, c: i64) -> String {
    let scale = net.param(&format!("{param}.weight"), &[c], Values::norm_scale());
    let shift = net.param(&format!("{param}.bias"), &[c], Values::norm_bias());
    let mean = net.buffer(&format!("{param}.running_mean"), &[c], Values::norm_bias());
    // Variances must be positive: 1 ± 0.05.
    let var = net.buffer(&format!("{param}.running_var"), &[c], Values::norm_scale());
    net.op(
        scope,
        "BatchNormalization",
        &[x, &scale, &shift, &mean, &var],
        vec![attr_float("epsilon", 1e-5), attr_float("momentum", 0.9)],
    )
}

/// torchvision's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the (downsampled) input, ReLU.
fn basic_block(net: &mut Net, path: &str, x: &str, cin: i64, cout: i64, stride: i64) -> String {
    let scope = format!("/{path}");
    let y = conv(
        net,
        &format!("{scope}/conv1"),
        x,
        &format!("{path}.conv1"),
        cin,
        cout,
        3,
        stride,
        1,
    );
    let y = batch_norm(net, &format!("{scope}/bn1"), &y, &format!("{path}.bn1"), cout);
    let y = net.op(&format!("{scope}/relu"), "Relu", &[&y], vec![]);
    let y = conv(
        net,
        &format!("{scope}/conv2"),
        &y,
        &format!("{path}.conv2"),
        cout,
        cout,
        3,
        1,
        1,
    );
    let y = batch_norm(net, &format!("{scope}/bn2"), &y, &format!("{path}.bn2"), cout);
    let identity = if stride != 1 || cin != cout {
        let ds = format!("{scope}/downsample");
        let d = conv(
            net,
            &format!("{ds}/0"),
            x,
            &format!("{path}.downsample.0"),
            cin,
            cout,
            1,
            stride,
            1,
        );
        batch_norm(net, &format!("{ds}/1"), &d, &format!("{path}.downsample.1"), cout)
    } else {
        x.to_string()
    };
    let y = net.op(&scope, "Add", &[&y, &identity], vec![]);
    net.op(&format!("{scope}/relu"), "Relu", &[&y], vec![])
}

/// Depthwise 3x3 (group = channels)-BN-ReLU6, pointwise 1x1-BN, residual Add, ReLU.
fn depthwise_block(net: &mut Net, path: &str, x: &str, c: i64) -> String {
    let scope = format!("/{path}");
    let y = conv(
        net,
        &format!("{scope}/depthwise"),
        x,
        &format!("{path}.depthwise"),
        c,
        c,
        3,
        1,
        c,
    );
    let y = batch_norm(net, &format!("{scope}/bn1"), &y, &format!("{path}.bn1"), c);
    let lo = net.float(&format!("{scope}/relu6"), 0.0);
    let hi = net.float(&format!("{scope}/relu6"), 6.0);
    let y = net.op(&format!("{scope}/relu6"), "Clip", &[&y, &lo, &hi], vec![]);
    let y = conv(
        net,
        &format!("{scope}/pointwise"),
        &y,
        &format!("{path}.pointwise"),
        c,
        c,
        1,
        1,
        1,
    );
    let y = batch_norm(net, &format!("{scope}/bn2"), &y, &format!("{path}.bn2"), c);
    let y = net.op(&scope, "Add", &[&y, x], vec![]);
    net.op(&format!("{scope}/relu"), "Relu", &[&y], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{count, named, op_types, round_trip, signature};

    fn built(cfg: &ResNetConfig) -> onnx_protobuf::ModelProto {
        round_trip(&build(cfg, Layout::Inline).expect("small").model)
    }

    #[test]
    fn tiny_structure() {
        let m = built(&ResNetConfig::tiny());
        assert_eq!(m.opset_import[0].version, 12);
        let ops = op_types(&m);
        // Stem + 2 per block + 2 downsamples + depthwise and pointwise.
        assert_eq!(count(&ops, "Conv"), 1 + 2 * 3 + 2 + 2);
        assert_eq!(count(&ops, "BatchNormalization"), count(&ops, "Conv"));
        assert_eq!(count(&ops, "MaxPool"), 1);
        assert_eq!(count(&ops, "GlobalAveragePool"), 1);
        assert_eq!(count(&ops, "Flatten"), 1);
        assert_eq!(count(&ops, "Gemm"), 1);
        let depthwise = named(&m.graph.node, "/dw/depthwise/Conv");
        let group = depthwise
            .attribute
            .iter()
            .find(|a| a.name == "group")
            .expect("group");
        assert_eq!(group.i, 64);
        let clip = m.graph.node.iter().find(|n| n.op_type == "Clip").expect("relu6");
        assert_eq!(clip.input.len(), 3, "opset 11+: min and max are inputs");
        let stem = &m.graph.node[0];
        let ints = |name: &str| {
            stem.attribute
                .iter()
                .find(|a| a.name == name)
                .map(|a| a.ints.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            (ints("kernel_shape"), ints("strides"), ints("pads")),
            (vec![7, 7], vec![2, 2], vec![3; 4])
        );
        assert_eq!(signature(&m.graph.input[0]).1, ["batch", "3", "224", "224"]);
    }

    #[test]
    fn unnamed_dims_are_unknown() {
        let cfg = ResNetConfig {
            input_dims: InputDims::Unnamed,
            ..ResNetConfig::tiny()
        };
        let m = built(&cfg);
        assert_eq!(signature(&m.graph.input[0]).1, ["?", "3", "?", "?"]);
        assert_eq!(signature(&m.graph.output[0]).1, ["?", "1000"]);
    }

    #[test]
    fn parameter_counts() {
        // torchvision reports 11,689,512 parameters for resnet18.
        assert_eq!(ResNetConfig::resnet18().parameter_count(), 11_689_512);
        let b = build(&ResNetConfig::tiny(), Layout::Inline).expect("small");
        assert_eq!(b.parameter_count(), ResNetConfig::tiny().parameter_count());
    }
}
