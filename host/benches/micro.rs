//! Micro-benchmarks (criterion): the per-request costs that sit in front of Raft.
//!
//! ```text
//! rustup target add wasm32-wasip2 && cargo plugins
//! cargo bench -p scarab --bench micro
//! ```
//!
//! Plugin validation of a 1 KiB and a 64 KiB `store` document on a warm instance, creating an
//! instance, JSON Schema validation of the 1 KiB document, and the core of a read converted
//! from v1 to v2 (the v2 plugin's upgrade, then validation at v2 by JSON Schema and plugin).
//! Prints figures; asserts nothing.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use scarab::plugins::{CallContext, Direction, LoadedPlugin, PluginHost, PluginLimits, digest};
use scarab::schema::{compile_json_schema, schema_violations};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> Vec<u8> {
    let p = workspace().join(path);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (build the plugins first: cargo plugins)",
            p.display()
        )
    })
}

/// A `store` v1 document of `size` bytes of compact JSON (the data_dir padded).
fn document(size: usize) -> Value {
    let mut doc = json!({
        "store_id": "orders",
        "data_dir": "/var/lib/scarab/",
        "timeout_ms": 5000,
        "auto_start": true,
        "priority": "normal",
        "resource_limits": {"max_memory_mb": 512, "max_connections": 100}
    });
    let len = doc.to_string().len();
    doc["data_dir"] = Value::String(format!(
        "/var/lib/scarab/{}",
        "d".repeat(size.saturating_sub(len))
    ));
    doc
}

fn load(host: &PluginHost, path: &str) -> Arc<LoadedPlugin> {
    let wasm = read(path);
    host.load(&digest(&wasm), &wasm).expect("the plugin loads")
}

fn benches(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("a temporary directory");
    let host = PluginHost::new(PluginLimits::default(), cache.path().to_path_buf())
        .expect("a plugin host");
    let v1 = load(&host, "target/wasm32-wasip2/plugin/store_v1.wasm");
    let v2 = load(&host, "target/wasm32-wasip2/plugin/store_v2.wasm");
    let ctx = CallContext {
        key: "stores/orders",
        schema_name: "store",
        schema_version: 1,
    };
    for (name, size) in [("1 KiB", 1024), ("64 KiB", 64 * 1024)] {
        let text = document(size).to_string();
        assert_eq!(text.len(), size);
        c.bench_function(&format!("plugin validation, warm, {name}"), |b| {
            b.iter(|| host.validate(&v1, &ctx, &text).expect("validates"))
        });
    }
    c.bench_function("plugin instantiation", |b| {
        b.iter(|| host.instantiate(&v1).expect("instantiates"))
    });

    let schema_v1: Value = serde_json::from_slice(&read("schemas/store/v1.json")).expect("JSON");
    let schema_v2: Value = serde_json::from_slice(&read("schemas/store/v2.json")).expect("JSON");
    let (at_v1, at_v2) = (
        compile_json_schema(&schema_v1).expect("a valid schema"),
        compile_json_schema(&schema_v2).expect("a valid schema"),
    );
    let doc = document(1024);
    assert!(schema_violations(&at_v1, &doc, 100).is_empty());
    c.bench_function("JSON Schema validation, 1 KiB", |b| {
        b.iter(|| schema_violations(&at_v1, &doc, 100))
    });

    let text = document(256).to_string();
    let ctx2 = CallContext {
        schema_version: 2,
        ..ctx
    };
    c.bench_function("converted read core, v1 to v2, 256 B", |b| {
        b.iter(|| {
            let up = host
                .migrate(&v2, Direction::Upgrade, &ctx2, &text)
                .expect("upgrades");
            let value: Value = serde_json::from_str(&up).expect("JSON");
            assert!(schema_violations(&at_v2, &value, 100).is_empty());
            host.validate(&v2, &ctx2, &up).expect("validates")
        })
    });
}

criterion_group!(micro, benches);
criterion_main!(micro);
