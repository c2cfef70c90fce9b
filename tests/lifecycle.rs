//! Node lifecycle beyond single requests: the plugin compile cache across restarts, snapshots
//! and log purging, `scarab dev`, the offline `scarab plugin check`, and configuration checks.

mod harness;

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use scarab_client::types::Role;

use harness::{
    HTTP_SERVICE, KINDS, Node, NodeOptions, REQUEST_TIMEOUT, STORE, assert_status, free_port,
    http_client, node_client, plugin_wasm, scarab_bin, schema_file, wait_until, workspace_root,
};

#[tokio::test]
async fn a_restart_loads_plugins_from_the_disk_cache_without_recompiling() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let mut node = Node::start(NodeOptions {
        extra_args: vec![
            "--plugin-cache-dir".into(),
            cache.path().display().to_string(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    assert_status(&node.register_kind(STORE).await?, 201);
    let before = node.status().await?;
    assert_eq!(
        before.plugins.compiled, 1,
        "registration compiles: {before:?}"
    );

    node.stop().await?;
    node.restart().await?;
    let sample = STORE.valid_sample();
    assert_status(
        &node
            .put_config(&sample.key, "store", 1, &sample.value)
            .await?,
        201,
    );
    let after = node.status().await?;
    assert_eq!(
        after.plugins.compiled, 0,
        "nothing recompiled after restart: {after:?}"
    );
    assert_eq!(after.plugins.from_disk_cache, 1, "{after:?}");
    Ok(())
}

#[tokio::test]
async fn the_log_is_snapshotted_and_purged_past_the_threshold_and_survives_restart() -> Result<()> {
    let mut node = Node::start(NodeOptions {
        extra_args: vec![
            "--snapshot-threshold".into(),
            "20".into(),
            // The entries alone decide (the size rule has a test of its own).
            "--snapshot-log-ratio".into(),
            "0".into(),
            "--log-keep".into(),
            "5".into(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    assert_status(
        &node
            .register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for i in 0..60 {
        assert_status(
            &node
                .put_config(&format!("n/{i:03}"), "note", 1, &json!({"i": i}))
                .await?,
            201,
        );
    }
    wait_until(
        Duration::from_secs(20),
        "a snapshot and a purge",
        || async {
            node.status().await.is_ok_and(|s| {
                s.snapshot_index.unwrap_or(0) >= 40 && s.purged_index.unwrap_or(0) > 0
            })
        },
    )
    .await?;

    node.kill()?;
    node.restart().await?;
    let items = node.list_all(Some("n/"), Some(1000)).await?;
    assert_eq!(items.len(), 60);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.value, json!({"i": i}));
    }
    let s = node.status().await?;
    assert_eq!(s.configs, 60, "{s:?}");
    assert_status(
        &node.put_config("n/after", "note", 1, &json!({})).await?,
        201,
    );
    Ok(())
}

/// `scarab_snapshot_builds_total` and the snapshot index of the node.
async fn snapshots(node: &Node) -> Result<(f64, u64)> {
    let text = reqwest::get(node.url("/metrics")).await?.text().await?;
    let builds = text
        .lines()
        .find_map(|l| l.strip_prefix("scarab_snapshot_builds_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("no scarab_snapshot_builds_total")?;
    let index = node.status().await?.snapshot_index.unwrap_or(0);
    Ok((builds, index))
}

/// With `--snapshot-log-ratio 1` (the default), a snapshot of a large state is built again
/// only once as many bytes of log were written since: the entries alone no longer decide.
#[tokio::test]
async fn a_large_state_is_snapshotted_again_only_after_as_many_bytes_of_log() -> Result<()> {
    let node = Node::start(NodeOptions {
        extra_args: vec![
            "--snapshot-threshold".into(),
            "10".into(),
            "--log-keep".into(),
            "5".into(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    assert_status(
        &node
            .register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    // About 150 KB of state (the value, stored once in its history record), then the first
    // snapshot: there is none yet, so 10 entries are enough.
    // Letters that do not repeat: snapshots are LZ4-compressed (format 3 on), and a repeated
    // letter would make the state a few hundred bytes.
    let big = |n: usize, len: usize| json!({ "n": n, "pad": incompressible(len, n as u64) });
    assert_status(
        &node
            .put_config("big/0", "note", 1, &big(0, 150_000))
            .await?,
        201,
    );
    for i in 0..12 {
        let r = node
            .put_config(&format!("small/{i}"), "note", 1, &json!({ "i": i }))
            .await?;
        assert_status(&r, 201);
    }
    wait_until(Duration::from_secs(20), "the first snapshot", || async {
        snapshots(&node).await.is_ok_and(|(b, _)| b >= 1.0)
    })
    .await?;
    let (_, first) = snapshots(&node).await?;
    // 60 more small entries (well past the threshold, a few KB of log), then a big one
    // (about 300 KB of log, about twice what the snapshot holds).
    for i in 12..72 {
        let r = node
            .put_config(&format!("small/{i}"), "note", 1, &json!({ "i": i }))
            .await?;
        assert_status(&r, 201);
    }
    assert_status(
        &node
            .put_config("big/1", "note", 1, &big(1, 300_000))
            .await?,
        201,
    );
    // One more small write after the big one, so that an entry follows it.
    assert_status(
        &node.put_config("small/last", "note", 1, &json!({})).await?,
        201,
    );
    wait_until(Duration::from_secs(20), "a second snapshot", || async {
        snapshots(&node).await.is_ok_and(|(b, _)| b >= 2.0)
    })
    .await?;
    let (builds, second) = snapshots(&node).await?;
    // Exactly one more: none for the small entries (6 thresholds' worth of them).
    assert_eq!(builds, 2.0, "snapshots at {first} then {second}");
    assert!(second > first, "snapshots at {first} then {second}");
    Ok(())
}

/// `len` letters from a linear congruential generator: text LZ4 cannot shrink.
fn incompressible(len: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (b'a' + ((x >> 33) % 26) as u8) as char
        })
        .collect()
}

/// Kills the dev server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn dev_server_registers_every_example_schema_with_its_plugin() -> Result<()> {
    let dev = tokio::task::spawn_blocking(harness::dev::DevNode::start).await??;
    let client = node_client(&http_client(), &dev.base, REQUEST_TIMEOUT);
    wait_until(
        Duration::from_secs(30),
        "every example schema registered",
        || async {
            let Ok(list) = client.schemas().await else {
                return false;
            };
            KINDS
                .iter()
                .all(|k| list.schemas.iter().any(|s| s.name == k.schema))
        },
    )
    .await?;
    for kind in KINDS {
        let v = client.schema_version(kind.schema, 1).await?;
        assert!(
            v.plugin_digest
                .as_deref()
                .is_some_and(|d| d.starts_with("sha256:")),
            "{:?}",
            v.body
        );
    }
    Ok(())
}

/// A second `scarab dev` on a data directory in use says so at once (it used to wait 30 s
/// for a node that had already failed, then blame the network).
#[tokio::test]
async fn dev_on_a_directory_in_use_says_so_at_once() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let started = std::time::Instant::now();
    let out = Command::new(scarab_bin())
        .current_dir(workspace_root())
        .args([
            "dev",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(node.data_dir())
        .output()
        .context("run scarab dev")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("another scarab process is using"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    // At once, not after the 30 s readiness wait (a bound generous for a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(20));
    Ok(())
}

/// Without built plugins the examples cannot be registered as the README describes them:
/// `scarab dev` says how to build them and exits 2, instead of a node that registered nothing
/// and a curl example that fails.
#[test]
fn dev_without_built_plugins_says_how_to_build_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("no-plugins");
    std::fs::create_dir_all(&empty)?;
    let out = Command::new(scarab_bin())
        .current_dir(workspace_root())
        .args([
            "dev",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path().join("dev"))
        .arg("--plugins-dir")
        .arg(&empty)
        .output()
        .context("run scarab dev")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cargo plugins"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"));
    Ok(())
}

/// `scarab dev` on `schemas`/`plugins` directories of its own, on `data`.
fn spawn_dev(
    port: u16,
    data: &std::path::Path,
    schemas: &std::path::Path,
    plugins: &std::path::Path,
    watch: bool,
) -> Result<Child> {
    let mut cmd = Command::new(scarab_bin());
    cmd.args([
        "dev",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .arg("--schemas-dir")
    .arg(schemas)
    .arg("--plugins-dir")
    .arg(plugins)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if watch {
        cmd.arg("--watch");
    }
    Ok(Child(cmd.spawn().context("spawn scarab dev")?))
}

/// The `title` of a registered version's JSON Schema (`None` until it is registered).
async fn title(client: &scarab_client::Client, name: &str, version: u32) -> Option<String> {
    let v = client.schema_version(name, version).await.ok()?;
    v.schema.as_ref()?["title"].as_str().map(str::to_string)
}

/// Edits and rebuilt plugins reach the dev node: in place while nothing uses the version, as
/// the next version once a config does; on a restart as with `--watch`.
#[tokio::test]
async fn dev_registers_a_changed_schema_again_in_place_or_as_the_next_version() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (schemas, plugins, data) = (
        dir.path().join("schemas"),
        dir.path().join("plugins"),
        dir.path().join("data"),
    );
    std::fs::create_dir_all(schemas.join("note"))?;
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(plugin_wasm("hostile"), plugins.join("note_v1.wasm"))?;
    let write = |title: &str| {
        std::fs::write(
            schemas.join("note/v1.json"),
            serde_json::to_vec(&json!({"title": title, "type": "object"})).expect("json"),
        )
    };
    write("first")?;
    let port = free_port();
    let mut dev = spawn_dev(port, &data, &schemas, &plugins, true)?;
    let client = node_client(
        &http_client(),
        &format!("http://127.0.0.1:{port}"),
        REQUEST_TIMEOUT,
    );
    wait_until(Duration::from_secs(30), "note v1 registered", || async {
        title(&client, "note", 1).await.as_deref() == Some("first")
    })
    .await?;
    // Nothing uses v1: an edit replaces it.
    write("second")?;
    wait_until(Duration::from_secs(30), "note v1 replaced", || async {
        title(&client, "note", 1).await.as_deref() == Some("second")
    })
    .await?;
    // A config uses v1: the next edit becomes v2.
    client
        .put(
            "notes/a",
            &scarab_client::types::PutConfig::new("note", 1, &json!({})),
        )
        .await?;
    write("third")?;
    wait_until(Duration::from_secs(30), "note v2 registered", || async {
        title(&client, "note", 2).await.as_deref() == Some("third")
    })
    .await?;
    assert_eq!(title(&client, "note", 1).await.as_deref(), Some("second"));
    // A restart on the same data with another edit (no --watch) starts, and registers it.
    drop(dev);
    write("fourth")?;
    dev = spawn_dev(port, &data, &schemas, &plugins, false)?;
    wait_until(
        Duration::from_secs(30),
        "note v3 registered at start",
        || async { title(&client, "note", 3).await.as_deref() == Some("fourth") },
    )
    .await?;
    drop(dev);
    Ok(())
}

fn plugin_check(
    plugin: &str,
    doc: &Value,
    schema: Option<&std::path::Path>,
    key: &str,
) -> Result<(i32, String)> {
    let dir = tempfile::tempdir()?;
    let doc_path = dir.path().join("doc.json");
    std::fs::write(&doc_path, serde_json::to_vec(doc)?)?;
    let mut cmd = Command::new(scarab_bin());
    cmd.args(["plugin", "check", "--json", "--key", key])
        .arg(plugin_wasm(plugin))
        .arg(&doc_path);
    match schema {
        // The schema file's path names the schema and its version.
        Some(s) => cmd.arg("--schema").arg(s),
        None => cmd.args(["--name", "checked", "--schema-version", "1"]),
    };
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}\n---- stderr ----\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn plugin_check_accepts_a_valid_document_offline() -> Result<()> {
    let sample = HTTP_SERVICE.valid_sample();
    let (code, out) = plugin_check(
        "http_service_v1",
        &sample.value,
        Some(&schema_file("http-service", 1)),
        &sample.key,
    )?;
    assert_eq!(code, 0, "{out}");
    Ok(())
}

#[test]
fn plugin_check_reports_schema_and_plugin_violations_offline() -> Result<()> {
    let examples = STORE.examples();
    let bad = examples
        .invalid
        .iter()
        .find(|s| {
            s.violations.iter().any(|v| v.source == "schema")
                && s.violations.iter().any(|v| v.source == "plugin")
        })
        .expect("a sample failing both the schema and the plugin");
    let (code, out) = plugin_check(
        "store_v1",
        &bad.value,
        Some(&schema_file("store", 1)),
        &bad.key,
    )?;
    assert_eq!(code, 1, "{out}");
    // The verdict is stdout; logs go to stderr.
    let verdict: Value =
        serde_json::from_str(out.split("\n---- stderr ----\n").next().unwrap_or_default())?;
    let sources: Vec<&str> = verdict["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["source"].as_str())
        .collect();
    assert!(
        sources.contains(&"schema") && sources.contains(&"plugin"),
        "{verdict}"
    );
    Ok(())
}

#[test]
fn plugin_check_refuses_a_component_of_another_world() -> Result<()> {
    let (code, out) = plugin_check("wrong_world", &json!({}), None, "")?;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not implement"), "{out}");
    Ok(())
}

#[test]
fn an_invalid_configuration_is_refused_before_anything_binds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(scarab_bin())
        .args([
            "serve",
            "--plugin-timeout",
            "0ms",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plugin-timeout"));
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created for a refused configuration"
    );
    Ok(())
}

#[tokio::test]
async fn serve_reads_its_settings_from_a_toml_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let file = dir.path().join("scarab.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata-dir = \"{}\"\nmax_value_bytes = 100\n",
            dir.path().join("data").display()
        ),
    )?;
    let _node = Child(
        Command::new(scarab_bin())
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let client = node_client(&http_client(), &base, REQUEST_TIMEOUT);
    wait_until(Duration::from_secs(30), "the node to lead", || async {
        client.status().await.is_ok_and(|s| s.role == Role::Leader)
    })
    .await?;
    let form = reqwest::multipart::Form::new().part(
        "schema",
        reqwest::multipart::Part::bytes(b"{\"type\":\"object\"}".to_vec())
            .mime_str("application/json")?,
    );
    let r = http
        .put(format!("{base}/v1/schemas/note/versions/1"))
        .multipart(form)
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let big = json!({"schema": "note", "schema_version": 1, "value": {"text": "x".repeat(200)}});
    let r = http
        .put(format!("{base}/v1/configs/a"))
        .json(&big)
        .send()
        .await?;
    assert_eq!(r.status(), 413, "max_value_bytes from the file applies");
    assert!(dir.path().join("data").exists());
    Ok(())
}

/// `--log-format json`: one JSON object per line; a request's id (`X-Request-Id`, the
/// client's when sane, else made) comes back in the response and is in the request's log
/// lines, with the slow-request warning naming the route template and where the time went.
#[tokio::test]
async fn request_ids_are_echoed_and_logged_with_slow_requests_in_json() -> Result<()> {
    let node = Node::start(NodeOptions {
        extra_args: vec![
            "--log-format".into(),
            "json".into(),
            "--slow-request".into(),
            "0ms".into(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    let http = http_client();
    assert_status(
        &node
            .register_schema("note", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    let put = http
        .put(node.url("/v1/configs/app/a"))
        .header("x-request-id", "req-7f3a")
        .json(&json!({"schema": "note", "schema_version": 1, "value": {}}))
        .send()
        .await?;
    assert_eq!(put.status(), 201);
    assert_eq!(put.headers()["x-request-id"], "req-7f3a");
    for sent in [None, Some("has spaces in it"), Some(&*"x".repeat(200))] {
        let mut request = http.get(node.url("/v1/health"));
        if let Some(id) = sent {
            request = request.header("x-request-id", id);
        }
        let r = request.send().await?;
        let id = r.headers()["x-request-id"].to_str()?.to_string();
        assert!(
            id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{sent:?} gave {id:?}"
        );
    }
    wait_until(Duration::from_secs(10), "the slow-request line", || async {
        slow_line(&node, "req-7f3a").is_some()
    })
    .await?;
    let line = slow_line(&node, "req-7f3a").context("the slow-request line")?;
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["span"]["route"], "/v1/configs/{*key}", "{line}");
    assert_eq!(line["span"]["method"], "PUT", "{line}");
    for field in ["elapsed_ms", "validation_ms", "raft_ms", "other_ms"] {
        assert!(line["fields"][field].is_u64(), "{field} in {line}");
    }
    Ok(())
}

/// The JSON log line of the slow-request warning of request `id`.
fn slow_line(node: &Node, id: &str) -> Option<Value> {
    let log = std::fs::read_to_string(node.log_path()).ok()?;
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["span"]["id"] == id && v["fields"]["message"] == "slow request")
}
