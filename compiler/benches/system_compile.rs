//! Multi-chip compile benchmark: `cargo bench -p lpuc --bench system_compile`.
//!
//! Writes the Llama-2-70B-shaped decoder (int8 weights in a sparse external-data file) and
//! compiles one decode step against a 4095-token cache onto 576 chips (racks allowed), its prefill
//! of 1024 and of 4096 tokens onto 576 chips and of 4096 tokens onto the fewest chips that hold
//! it, and the Llama-2-7B-shaped model's prefill at 512 tokens with fp16 weights onto the fewest
//! chips (one rack): placement, sharding, the system schedule and the artifact in memory, then the
//! emulator's replay of it. Issue 4's targets are under 60 s and 4 GiB; the peak resident set
//! (VmHWM, whole process, writing the models included) is an upper bound. Exits 1 if a compile
//! fails, the emulator finds a fault, or a target is missed.

use lpuc::driver::{compile_placed, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc::placer::PlaceOptions;
use lpuc_examples::catalog::preset;
use lpuc_examples::nn::Variant;
use lpuc_examples::standalone::{write_model, Weights};
use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// int8 weights, racks allowed, on at most `chips` chips (`None`: the fewest that fit).
fn int8(chips: Option<u32>) -> PlaceOptions {
    PlaceOptions {
        chips,
        weight_dtype: Some(lpuc_ir::DType::I8),
        allow_cross_rack: true,
        ..Default::default()
    }
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch/system");
    let mut ok = true;
    let cases = [
        ("llama2-70b", Variant::Decode, 4095, true, int8(Some(576))),
        ("llama2-70b", Variant::Prefill, 1024, false, int8(Some(576))),
        ("llama2-70b", Variant::Prefill, 4096, false, int8(Some(576))),
        ("llama2-70b", Variant::Prefill, 4096, false, int8(None)),
        (
            "llama2-7b",
            Variant::Prefill,
            512,
            false,
            PlaceOptions {
                weight_dtype: Some(lpuc_ir::DType::F16),
                ..Default::default()
            },
        ),
    ];
    for (name, variant, bucket, decode, place) in cases {
        let config = preset("llama", name).expect("the preset exists");
        let file = format!("{name}.onnx");
        let written =
            write_model(&config, variant, Weights::ExternalSparse, &dir, &file).expect("write the model");
        let opts = CompileOptions {
            model: written.model_path.clone(),
            binder: DimBinder {
                bucket: Some(bucket),
                decode,
                ..Default::default()
            },
            target: "lpu-v1".into(),
            rewrite: true,
            embed_weights: false,
        };
        let t = Instant::now();
        let artifact = match compile_placed(&opts, Some(&place)) {
            Ok(a) => a,
            Err(e) => {
                println!("{name}: compile failed: {e}");
                ok = false;
                continue;
            }
        };
        let compile_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let verdict = lpuc_emulator::emulate_artifact(&artifact);
        let emulate_secs = t.elapsed().as_secs_f64();
        let s = &artifact.schedule;
        println!(
            "{name} {variant:?} bucket {bucket} on {}: {} chips, {} instructions, {} transfers, makespan {} cycles; compile {compile_secs:.2} s, emulate {emulate_secs:.2} s ({}); peak resident set so far {:.1} MiB",
            place.chips.map_or("the fewest chips".to_string(), |n| format!("{n} chips")),
            s.chips,
            s.instructions.len(),
            s.transfers.len(),
            s.makespan_cycles,
            if verdict.is_ok() { "ok" } else { "FAULTS" },
            peak_rss_kib().unwrap_or(0) as f64 / 1024.0
        );
        ok &= verdict.is_ok() && compile_secs < 60.0;
    }
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "peak resident set of this process: {:.1} MiB",
        peak as f64 / 1024.0
    );
    ok &= peak < 4 * 1024 * 1024;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "targets (< 60 s each, < 4 GiB): {}",
        if ok { "met" } else { "NOT MET" }
    );
    if !ok {
        std::process::exit(1);
    }
}
