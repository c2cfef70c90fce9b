//! The warm cost of one validation, in this process through the server library: the `store`
//! plugin on a warm instance, and the `store` JSON Schema, on one document of the run's size.

use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use scarab::plugins::{CallContext, PluginHost, PluginLimits, digest};
use scarab::schema::{compile_json_schema, schema_violations};

use crate::Setup;
use crate::workload::document;

/// Calls measured (after 1,000 to warm up).
const CALLS: u32 = 20_000;

/// Two lines: µs per plugin call and per JSON Schema validation.
pub fn measure(setup: &Setup) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("scarab-bench-cache-{}", std::process::id()));
    let result = measure_in(setup, &dir);
    let _ = std::fs::remove_dir_all(dir);
    result
}

fn measure_in(setup: &Setup, cache_dir: &std::path::Path) -> Result<String> {
    let value_bytes = setup.args.value_bytes;
    let host = PluginHost::new(PluginLimits::default(), cache_dir.to_path_buf())
        .context("starting the plugin host")?;
    let plugin = host
        .load(&digest(&setup.wasm), &setup.wasm)
        .context("loading the store plugin")?;
    let doc = document(7, value_bytes);
    let text = doc.to_string();
    let ctx = CallContext {
        key: "bench/k7",
        schema_name: "store",
        schema_version: 1,
    };
    for _ in 0..1000 {
        host.validate(&plugin, &ctx, &text)
            .context("the store plugin")?;
    }
    let started = Instant::now();
    for _ in 0..CALLS {
        host.validate(&plugin, &ctx, &text)
            .context("the store plugin")?;
    }
    let per_call = started.elapsed() / CALLS;
    let validator = compile_json_schema(&setup.schema).context("the store JSON Schema")?;
    let started = Instant::now();
    for _ in 0..CALLS {
        ensure!(
            schema_violations(&validator, &doc, 100).is_empty(),
            "the benchmark document violates the store JSON Schema"
        );
    }
    let per_schema = started.elapsed() / CALLS;
    Ok(format!(
        "plugin validation (warm instance, {value_bytes}-byte store document): {:.2} µs/call\n\
         JSON Schema validation (same document): {:.2} µs/call",
        per_call.as_nanos() as f64 / 1000.0,
        per_schema.as_nanos() as f64 / 1000.0
    ))
}

/// `--plugin-languages`: the `feature-flag` v1 plugin built from Rust, Python
/// (componentize-py) and JavaScript (componentize-js), each compiled in a fresh cache: its
/// size, compile time, first call on a new instance, and warm calls (p50, p99), on one flag.
pub fn languages(store_plugin: &std::path::Path) -> Result<()> {
    let dir = store_plugin
        .parent()
        .context("the plugin directory (--plugin's)")?
        .to_path_buf();
    let doc = serde_json::json!({
        "description": "new checkout", "enabled": true, "rollout_percent": 30,
        "allow": ["ann", "bo"], "deny": ["cy"]
    })
    .to_string();
    let ctx = CallContext {
        key: "flags/checkout",
        schema_name: "feature-flag",
        schema_version: 1,
    };
    println!("language    size      compile   first call   warm p50   warm p99");
    for (language, file) in [
        ("Rust", "feature_flag_v1.wasm"),
        ("Python", "feature_flag_py_v1.wasm"),
        ("JavaScript", "feature_flag_js_v1.wasm"),
    ] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        let cache =
            std::env::temp_dir().join(format!("scarab-bench-lang-{}-{file}", std::process::id()));
        let host = PluginHost::new(PluginLimits::default(), cache.clone())?;
        let started = Instant::now();
        let plugin = host.load(&digest(&bytes), &bytes)?;
        let compile = started.elapsed();
        let started = Instant::now();
        let first = host.validate(&plugin, &ctx, &doc)?;
        let first_call = started.elapsed();
        ensure!(
            first.is_empty(),
            "{language}: the flag is refused: {first:?}"
        );
        let mut calls = Vec::with_capacity(CALLS as usize / 4);
        for _ in 0..CALLS / 4 {
            let started = Instant::now();
            host.validate(&plugin, &ctx, &doc)?;
            calls.push(started.elapsed());
        }
        calls.sort();
        let at = |q: f64| calls[((calls.len() - 1) as f64 * q) as usize].as_nanos() as f64 / 1000.0;
        println!(
            "{language:<11} {:>5.1} MB  {:>6.2} s  {:>8.1} ms  {:>7.1} µs  {:>7.1} µs",
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64(),
            first_call.as_secs_f64() * 1000.0,
            at(0.5),
            at(0.99),
        );
        drop(host);
        let _ = std::fs::remove_dir_all(cache);
    }
    Ok(())
}
