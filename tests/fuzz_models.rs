//! Hostile bytes: random corruptions of real exporter-style models are loaded, checked and (when
//! still valid) compiled. Every outcome must be a result or a clear error, never a panic or a hang.

use lpuc::driver::{check, compile};
use lpuc_tests::{example, scratch};
use proptest::prelude::*;

/// The smallest exporter-style example with a shape subgraph, folding and external-style patterns.
fn seed() -> Vec<u8> {
    std::fs::read(example("external/bert_external.onnx")).expect("example exists")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn corrupted_models_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = seed();
        for (at, value) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()).max(1));
        }
        let dir = scratch("fuzz");
        // The external weights file sits next to the seed; copy its name so locations resolve.
        let data = example("external/bert_external.onnx.data");
        let _ = std::fs::copy(&data, dir.join("bert_external.onnx.data"));
        let path = dir.join("model.onnx");
        std::fs::write(&path, &bytes).unwrap();
        let opts = lpuc_tests::options(path, Some(64));
        match check(&opts) {
            Ok(outcome) if outcome.violations.is_empty() => {
                // Still a valid model: it must compile or fail with a typed error.
                let _ = compile(&opts);
            }
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e.exit_code(), 1 | 2), "{e}"),
        }
    }
}
