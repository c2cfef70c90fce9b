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
