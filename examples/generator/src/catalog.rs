//! The model families and their presets by name, so the command line can build any of them at any
//! size (the committed `tiny` examples, or real shapes such as Llama-2-70B).

use crate::bert::{self, BertConfig};
use crate::gpt2::{self, Gpt2Config};
use crate::llama::{self, LlamaConfig};
use crate::net::{Built, Layout};
use crate::nn::Variant;
use crate::resnet::{self, InputDims, ResNetConfig};
use crate::weights::WeightDtype;

/// Every `(family, preset, description)`, in the order `presets` prints them.
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "gpt2",
        "tiny",
        "2 layers, d_model 64, 4 heads, vocab 512, 4096 positions (committed)",
    ),
    (
        "gpt2",
        "gpt2",
        "GPT-2 small: 12 layers, d_model 768, 12 heads, vocab 50257, mask buffer",
    ),
    (
        "bert",
        "tiny",
        "2 layers, d_model 64, 4 heads, vocab 1024, 2048 positions (committed)",
    ),
    (
        "bert",
        "bert-base",
        "12 layers, d_model 768, 12 heads, vocab 30522, 512 positions",
    ),
    (
        "llama",
        "tiny",
        "2 layers, d_model 128, 4 heads / 2 KV heads, f16 (committed)",
    ),
    (
        "llama",
        "llama2-7b",
        "32 layers, d_model 4096, 32 heads, FFN 11008, f16",
    ),
    (
        "llama",
        "llama2-70b",
        "80 layers, d_model 8192, 64 heads / 8 KV heads, FFN 28672, int8",
    ),
    (
        "resnet",
        "tiny",
        "widths 16/32/64 + a depthwise block, 224x224 (committed)",
    ),
    ("resnet", "resnet18", "torchvision resnet18 layout"),
];

/// A family's configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Config {
    Gpt2(Gpt2Config),
    Bert(BertConfig),
    Llama(LlamaConfig),
    ResNet(ResNetConfig),
}

/// Command-line changes to a preset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub layers: Option<usize>,
    pub dtype: Option<WeightDtype>,
    /// ResNet only: write the input dims unnamed (`?`).
    pub unnamed_dims: bool,
}

/// The preset `preset` of `family`, if both exist.
pub fn preset(family: &str, preset: &str) -> Option<Config> {
    Some(match (family, preset) {
        ("gpt2", "tiny") => Config::Gpt2(Gpt2Config::tiny()),
        ("gpt2", "gpt2") => Config::Gpt2(Gpt2Config::gpt2_small()),
        ("bert", "tiny") => Config::Bert(BertConfig::tiny()),
        ("bert", "bert-base") => Config::Bert(BertConfig::bert_base()),
        ("llama", "tiny") => Config::Llama(LlamaConfig::tiny()),
        ("llama", "llama2-7b") => Config::Llama(LlamaConfig::llama2_7b()),
        ("llama", "llama2-70b") => Config::Llama(LlamaConfig::llama2_70b()),
        ("resnet", "tiny") => Config::ResNet(ResNetConfig::tiny()),
        ("resnet", "resnet18") => Config::ResNet(ResNetConfig::resnet18()),
        _ => return None,
    })
}

impl Config {
    /// Applies command-line overrides, refusing those that mean nothing for this family.
    pub fn apply(&mut self, o: Overrides) -> Result<(), String> {
        if let Some(dtype) = o.dtype {
            match self {
                Config::Gpt2(c) => c.dtype = dtype,
                Config::Bert(c) => c.dtype = dtype,
                Config::Llama(c) => c.dtype = dtype,
                Config::ResNet(c) => c.dtype = dtype,
            }
        }
        if let Some(layers) = o.layers {
            match self {
                Config::Gpt2(c) => c.layers = layers,
                Config::Bert(c) => c.layers = layers,
                Config::Llama(c) => c.layers = layers,
                Config::ResNet(_) => return Err("--layers does not apply to resnet".to_string()),
            }
        }
        if o.unnamed_dims {
            match self {
                Config::ResNet(c) => c.input_dims = InputDims::Unnamed,
                _ => return Err("--unnamed-dims applies to resnet only".to_string()),
            }
        }
        Ok(())
    }

    /// Whether the family has a decode-with-KV-cache variant.
    pub fn has_decode(&self) -> bool {
        matches!(self, Config::Gpt2(_) | Config::Llama(_))
    }

    /// Trained parameters, from the configuration alone.
    pub fn parameter_count(&self) -> u64 {
        match self {
            Config::Gpt2(c) => c.parameter_count(),
            Config::Bert(c) => c.parameter_count(),
            Config::Llama(c) => c.parameter_count(),
            Config::ResNet(c) => c.parameter_count(),
        }
    }

    /// Builds the model (`variant` must be `Prefill` for encoders and CNNs).
    pub fn build(&self, variant: Variant, layout: Layout) -> Result<Built, String> {
        if variant == Variant::Decode && !self.has_decode() {
            return Err("only gpt2 and llama have a decode variant".to_string());
        }
        match self {
            Config::Gpt2(c) => gpt2::build(c, variant, layout),
            Config::Bert(c) => bert::build(c, layout),
            Config::Llama(c) => llama::build(c, variant, layout),
            Config::ResNet(c) => resnet::build(c, layout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_exists() {
        for (family, name, _) in PRESETS {
            assert!(preset(family, name).is_some(), "{family} {name}");
        }
        assert!(preset("llama", "llama3").is_none());
    }

    #[test]
    fn overrides_apply_or_are_refused() {
        let mut c = preset("llama", "llama2-70b").expect("preset");
        c.apply(Overrides {
            layers: Some(2),
            dtype: Some(WeightDtype::F16),
            unnamed_dims: false,
        })
        .expect("applies");
        match &c {
            Config::Llama(l) => assert_eq!((l.layers, l.dtype), (2, WeightDtype::F16)),
            other => panic!("{other:?}"),
        }
        let mut r = preset("resnet", "tiny").expect("preset");
        assert!(r
            .apply(Overrides {
                layers: Some(2),
                ..Default::default()
            })
            .is_err());
        assert!(c
            .apply(Overrides {
                unnamed_dims: true,
                ..Default::default()
            })
            .is_err());
        assert!(r.build(Variant::Decode, Layout::Inline).is_err());
    }
}
