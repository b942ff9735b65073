//! Large-model load benchmark: `cargo bench -p lpuc --bench large_model`.
//!
//! Writes the Llama-2-70B-shaped model (80 layers, d 8192, 64 heads, 8 KV heads, FFN 28672, int8
//! weights in a sparse external-data file of about 64 GiB; again with f32 weights, about 257 GiB)
//! and times `lpuc check` on it, prefill at bucket 4096 and a decode step against a 4096-token
//! cache. The targets of issue 3 are under 10 s
//! and under 1 GiB of memory; the peak resident set (VmHWM) is read from /proc and covers the
//! whole process, including writing the model, so it is an upper bound for the check alone.
//! Exits 1 if a target is missed.

use lpuc::driver::{check, CompileOptions};
use lpuc::frontend::DimBinder;
use lpuc_examples::catalog::{preset, Overrides};
use lpuc_examples::nn::Variant;
use lpuc_examples::standalone::{write_model, Weights};
use lpuc_examples::weights::WeightDtype;
use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch/llama70b");
    let int8 = preset("llama", "llama2-70b").expect("the llama2-70b preset exists");
    let mut f32 = int8.clone();
    f32.apply(Overrides {
        dtype: Some(WeightDtype::F32),
        ..Default::default()
    })
    .expect("dtype applies to llama");
    let mut ok = true;
    for (config, variant, name) in [
        (&int8, Variant::Prefill, "prefill.onnx"),
        (&int8, Variant::Decode, "decode.onnx"),
        (&f32, Variant::Prefill, "prefill_f32.onnx"),
    ] {
        let written =
            write_model(config, variant, Weights::ExternalSparse, &dir, name).expect("write the model");
        let opts = CompileOptions {
            model: written.model_path.clone(),
            binder: DimBinder {
                bucket: Some(4096),
                ..Default::default()
            },
            target: "lpu-v1".into(),
            rewrite: true,
            embed_weights: false,
        };
        let t = Instant::now();
        let outcome = check(&opts).expect("the 70B-shaped model loads");
        let secs = t.elapsed().as_secs_f64();
        assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
        let ops = outcome.graph.map_or(0, |g| g.num_ops());
        let weights = written.data.as_ref().map_or(0, |(_, n)| *n);
        println!(
            "check llama2-70b {name:<17} {ops} IR ops, {:.1} GiB external weights (sparse), {secs:.3} s",
            weights as f64 / (1u64 << 30) as f64
        );
        ok &= secs < 10.0;
    }
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "peak resident set of this process: {:.1} MiB",
        peak as f64 / 1024.0
    );
    ok &= peak < 1024 * 1024;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "targets (< 10 s each, < 1 GiB): {}",
        if ok { "met" } else { "NOT MET" }
    );
    if !ok {
        std::process::exit(1);
    }
}
