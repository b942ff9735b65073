//! Placement scaling benchmark: `cargo bench -p lpuc --bench placement`.
//!
//! Places the Llama-2-70B-shaped decoder (int8 weights, a decode step against a 4095-token cache,
//! racks allowed) with 2, 20 and 80 layers onto at most 8, 64 and 576 chips, and prints the time
//! (frontend included), the chips used and the bottleneck, or the minimum chip count when the
//! budget is too small. Figures go to docs/PERFORMANCE.md with this command.

use lpuc::driver::{place, CompileError, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc::placer::{PlaceError, PlaceOptions};
use lpuc_examples::catalog::{preset, Overrides};
use lpuc_examples::nn::Variant;
use lpuc_examples::standalone::{write_model, Weights};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch/placement");
    println!(
        "{:<8} {:>6} {:>10} {:>12} {:>16}",
        "layers", "chips", "time", "chips used", "bottleneck"
    );
    for layers in [2usize, 20, 80] {
        let mut config = preset("llama", "llama2-70b").expect("preset");
        config
            .apply(Overrides {
                layers: Some(layers),
                ..Default::default()
            })
            .expect("layers apply to llama");
        let name = format!("decode_{layers}.onnx");
        let written =
            write_model(&config, Variant::Decode, Weights::ExternalSparse, &dir, &name).expect("write");
        let opts = CompileOptions {
            model: written.model_path,
            binder: DimBinder {
                bucket: Some(4095),
                decode: true,
                ..Default::default()
            },
            target: "lpu-v1".into(),
            rewrite: true,
            embed_weights: false,
        };
        for chips in [8u32, 64, 576] {
            let place_opts = PlaceOptions {
                chips: Some(chips),
                weight_dtype: Some(lpuc_ir::DType::I8),
                allow_cross_rack: true,
                ..Default::default()
            };
            let t = Instant::now();
            let result = place(&opts, &place_opts);
            let secs = t.elapsed().as_secs_f64();
            let (used, neck) = match result {
                Ok((p, _)) => (
                    p.chips_used.to_string(),
                    format!("{} cycles", p.bottleneck_cycles),
                ),
                Err(CompileError::Placement(PlaceError::TooFewChips { min_chips, .. })) => {
                    ("-".to_string(), format!("needs {min_chips}"))
                }
                Err(e) => panic!("{e}"),
            };
            println!("{layers:<8} {chips:>6} {secs:>9.3}s {used:>12} {neck:>16}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
