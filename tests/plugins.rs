//! What a plugin author meets, against a real `scarab serve` process: the deterministic WASI
//! subset a plugin may import (a clock standing at the epoch, the same random bytes on every
//! call, no files, no network, no timers), registration trying the plugin before accepting it,
//! and the plugin limits with the flags that raise them.
//!
//! Needs the plugins: `cargo plugins` before `cargo test`.

mod harness;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use harness::{Node, NodeOptions, Reply, assert_status, plugin_wasm};

/// Upper bound for a request served by a misbehaving plugin: catches hangs, not a performance
/// assertion.
const HANG_BOUND: Duration = Duration::from_secs(10);

async fn start_with(args: &[&str]) -> Result<Node> {
    Node::start(NodeOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await
}

/// A node with the `hostile` test plugin registered as `hostile` v1.
async fn hostile_node() -> Result<Node> {
    let node = start_with(&[]).await?;
    let r = node
        .register_schema("hostile", 1, json!({}), Some(&plugin_wasm("hostile")))
        .await?;
    assert_status(&r, 201);
    Ok(node)
}

/// The message of the one violation the hostile plugin answers `mode` with.
async fn answer(node: &Node, mode: &str) -> Result<Reply> {
    node.validate("hostile", 1, None, &json!({ "mode": mode }))
        .await
}

fn only_message(r: &Reply) -> Result<String> {
    let found = r.body["violations"].as_array().context("no violations")?;
    ensure!(found.len() == 1, "{r}");
    Ok(found[0]["message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_plugins_clock_stands_at_the_unix_epoch() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "clock").await?;
    assert_status(&r, 200);
    assert_eq!(only_message(&r)?, "wall 0 s; monotonic moved 0ns", "{r}");
    Ok(())
}

/// The host's random source starts from the same seed for every call and every new instance,
/// so a runtime seeding itself as it starts (hash keys) is seeded the same on every node. (What
/// a plugin keeps between calls on one instance is its own state: std's `RandomState` moves
/// its keys on for each new hasher.)
#[tokio::test]
async fn a_plugin_draws_the_same_random_bytes_on_every_node_and_every_start() -> Result<()> {
    let mut node = hostile_node().await?;
    let other = hostile_node().await?;
    let first = only_message(&answer(&node, "random").await?)?;
    ensure!(first.len() == 64, "{first}");
    assert_eq!(only_message(&answer(&other, "random").await?)?, first);
    node.stop().await?;
    node.restart().await?;
    assert_eq!(only_message(&answer(&node, "random").await?)?, first);
    Ok(())
}

#[tokio::test]
async fn a_plugin_can_open_no_file() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "file").await?;
    assert_status(&r, 200);
    let message = only_message(&r)?;
    ensure!(message.starts_with("Err("), "read a file: {message}");
    Ok(())
}

/// Standard output goes nowhere and standard error is kept for a panic message: writing to
/// them is no failure, on the async runtime (a small document) or off it (a large one).
#[tokio::test]
async fn a_plugin_that_prints_is_answered() -> Result<()> {
    let node = hostile_node().await?;
    for _ in 0..3 {
        let r = answer(&node, "print").await?;
        assert_status(&r, 200);
        assert_eq!(r.body["valid"], true, "{r}");
    }
    let large = json!({"mode": "print", "padding": "x".repeat(64 << 10)});
    let r = node.validate("hostile", 1, None, &large).await?;
    assert_status(&r, 200);
    assert_eq!(r.body["valid"], true, "{r}");
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_opens_a_socket_fails_its_own_call() -> Result<()> {
    let node = hostile_node().await?;
    let r = answer(&node, "net").await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("plugin_failed"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("no access to `wasi:sockets/"), "{message}");
    // The node still validates.
    assert_status(&answer(&node, "ok").await?, 200);
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_sleeps_is_refused_at_once_not_blocked() -> Result<()> {
    let node = hostile_node().await?;
    let started = Instant::now();
    let r = answer(&node, "sleep").await?;
    ensure!(
        started.elapsed() < HANG_BOUND,
        "took {:?}",
        started.elapsed()
    );
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("plugin_failed"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains("no access to `wasi:clocks/monotonic-clock"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn registration_refuses_a_plugin_that_cannot_validate_its_schemas_examples() -> Result<()> {
    let node = start_with(&[]).await?;
    let hostile = plugin_wasm("hostile");
    let r = node
        .register_schema(
            "hostile",
            1,
            json!({"examples": [{"mode": "ok"}, {"mode": "trap"}]}),
            Some(&hostile),
        )
        .await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("invalid_plugin"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains(r#"{"mode":"trap"}"#) && message.contains("trapped on purpose"),
        "{message}"
    );
    // Nothing was registered; examples it answers (even with violations) register.
    assert_status(&node.get_schema_version("hostile", 1).await?, 404);
    let r = node
        .register_schema(
            "hostile",
            1,
            json!({"examples": [{"mode": "ok"}, {"mode": "violation"}]}),
            Some(&hostile),
        )
        .await?;
    assert_status(&r, 201);
    Ok(())
}

/// `--max-plugin-bytes` takes a size with a suffix; a plugin of exactly that size registers,
/// one byte more is 413 naming the flag.
#[tokio::test]
async fn a_plugin_at_max_plugin_bytes_registers_and_one_byte_more_is_413_naming_the_flag()
-> Result<()> {
    let plugin = plugin_wasm("hostile");
    let size = std::fs::metadata(&plugin)?.len();
    let at = start_with(&["--max-plugin-bytes", &size.to_string()]).await?;
    assert_status(
        &at.register_schema("hostile", 1, json!({}), Some(&plugin))
            .await?,
        201,
    );
    let past = start_with(&["--max-plugin-bytes", &(size - 1).to_string()]).await?;
    let r = past
        .register_schema("hostile", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 413);
    assert_eq!(r.error_code(), Some("payload_too_large"));
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        message.contains(&format!("the plugin is {size} bytes"))
            && message.contains("--max-plugin-bytes"),
        "{message}"
    );
    let kib = start_with(&["--max-plugin-bytes", "64KiB"]).await?;
    let r = kib
        .register_schema("hostile", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 413);
    Ok(())
}

/// The core module instances of a component, from the refusal of a node allowing one.
fn core_instances_of(refusal: &Value) -> Result<u32> {
    let message = refusal["error"]["message"].as_str().unwrap_or_default();
    let count = message
        .split("contains ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no count in {message:?}"))?;
    Ok(count)
}

#[tokio::test]
async fn a_component_at_plugin_core_instances_registers_and_past_it_is_refused_naming_the_flag()
-> Result<()> {
    let plugin = plugin_wasm("store_v1");
    let one = start_with(&["--plugin-core-instances", "1"]).await?;
    let r = one
        .register_schema("store", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 422);
    assert_eq!(r.error_code(), Some("invalid_plugin"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("--plugin-core-instances"), "{message}");
    let needed = core_instances_of(&r.body)?;
    ensure!(needed > 1, "{message}");
    let at = start_with(&["--plugin-core-instances", &needed.to_string()]).await?;
    assert_status(
        &at.register_schema("store", 1, json!({}), Some(&plugin))
            .await?,
        201,
    );
    let past = start_with(&["--plugin-core-instances", &(needed - 1).to_string()]).await?;
    let r = past
        .register_schema("store", 1, json!({}), Some(&plugin))
        .await?;
    assert_status(&r, 422);
    Ok(())
}

// --- the feature-flag plugins, in Rust, Python and JavaScript ---

/// One language's `feature-flag` plugins registered as versions 1 and 2 on a node: a valid
/// flag is stored, an invalid one refused with the plugin's violations, version 2's migrator
/// upgrades the stored flag at registration (the compatibility check) and on a read at
/// version 2, and a non-sticky rollout refuses to go back to version 1.
async fn feature_flag_lifecycle(plugin_prefix: &str) -> Result<()> {
    let node = start_with(&[]).await?;
    let schema = |v: u32| harness::schema_file("feature-flag", v);
    let plugin = |v: u32| plugin_wasm(&format!("{plugin_prefix}_v{v}"));
    let r = node
        .register_schema("feature-flag", 1, schema(1), Some(&plugin(1)))
        .await?;
    assert_status(&r, 201);
    let good = json!({"enabled": true, "rollout_percent": 30, "allow": ["ann"], "deny": ["bob"]});
    assert_status(
        &node
            .put_config("flags/checkout", "feature-flag", 1, &good)
            .await?,
        201,
    );
    let bad = json!({"enabled": false, "rollout_percent": 30, "allow": ["ann"], "deny": ["ann"]});
    let r = node
        .put_config("flags/legacy", "feature-flag", 1, &bad)
        .await?;
    assert_status(&r, 422);
    let mut found: Vec<(String, String, String)> = r
        .violations()
        .iter()
        .map(|v| {
            let text = |f: &str| v[f].as_str().unwrap_or_default().to_string();
            (text("source"), text("path"), text("code"))
        })
        .collect();
    found.sort();
    let plugin_found =
        |path: &str, code: &str| ("plugin".to_string(), path.to_string(), code.to_string());
    assert_eq!(
        found,
        [
            plugin_found("/deny/0", "allow-deny-overlap"),
            plugin_found("/rollout_percent", "rollout-while-disabled"),
        ],
        "{r}"
    );
    let r = node
        .register_schema("feature-flag", 2, schema(2), Some(&plugin(2)))
        .await?;
    assert_status(&r, 201);
    assert_eq!(r.body["compatibility"]["checked"], 1, "{r}");
    assert_eq!(r.body["compatibility"]["compatible"], true, "{r}");
    let read = node
        .get("/v1/configs/flags/checkout?schema_version=2")
        .await?;
    assert_status(&read, 200);
    assert_eq!(
        read.body["value"]["rollout"],
        json!({"percent": 30, "sticky": true}),
        "{read}"
    );
    // Written at version 2 without stickiness, it cannot be read at version 1.
    let loose = json!({"enabled": true, "rollout": {"percent": 5, "sticky": false}});
    assert_status(
        &node
            .put_config("flags/search", "feature-flag", 2, &loose)
            .await?,
        201,
    );
    let down = node
        .get("/v1/configs/flags/search?schema_version=1")
        .await?;
    assert_status(&down, 422);
    assert_eq!(down.error_code(), Some("conversion_failed"), "{down}");
    let message = down.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("non-sticky"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_rust_feature_flag_plugin_validates_and_migrates() -> Result<()> {
    feature_flag_lifecycle("feature_flag").await
}

/// Built by componentize-py (`plugins/build-polyglot.sh`).
#[tokio::test]
async fn a_python_feature_flag_plugin_validates_and_migrates() -> Result<()> {
    feature_flag_lifecycle("feature_flag_py").await
}

/// Built by componentize-js (`plugins/build-polyglot.sh`).
#[tokio::test]
async fn a_javascript_feature_flag_plugin_validates_and_migrates() -> Result<()> {
    feature_flag_lifecycle("feature_flag_js").await
}

// --- scarab plugin new: a project of its own, from nothing to a registered plugin ---

/// Runs `program args` in `dir`; an error with its output if it fails.
fn run_in(dir: &std::path::Path, program: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    Ok(text)
}

/// `scarab plugin new` in a directory outside this repository, `scarab plugin test` over the
/// project's own examples, then both versions registered on a node and a write refused by the
/// plugin.
async fn new_project_registers(dir: &std::path::Path, wasm: &str, name: &str) -> Result<()> {
    let scarab = harness::scarab_bin();
    let out = run_in(
        dir,
        &scarab,
        &["plugin", "test", wasm, "--schema", "schema/v2.json"],
    )?;
    ensure!(out.contains("0 failed"), "{out}");
    let node = start_with(&[]).await?;
    let r = node
        .register_schema(name, 1, dir.join("schema/v1.json"), None)
        .await?;
    assert_status(&r, 201);
    let r = node
        .register_schema(name, 2, dir.join("schema/v2.json"), Some(&dir.join(wasm)))
        .await?;
    assert_status(&r, 201);
    let doc = json!({"name": "orders", "instances": 12, "max_replicas": 10});
    let r = node.put_config("services/orders", name, 2, &doc).await?;
    assert_status(&r, 422);
    assert_eq!(r.violations()[0]["code"], "replicas-above-max", "{r}");
    Ok(())
}

/// The Rust project builds with its own profile and the SDK by path, outside any workspace
/// (the documented build once failed there with "profile `plugin` is not defined").
#[tokio::test]
async fn a_new_rust_plugin_project_builds_outside_the_repository_and_registers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let scarab = harness::scarab_bin();
    run_in(
        dir.path(),
        &scarab,
        &["plugin", "new", "payments", "--migrator"],
    )?;
    let project = dir.path().join("payments-plugin");
    let cargo = std::env::var_os("CARGO").map_or("cargo".into(), std::path::PathBuf::from);
    // Its own target directory, kept between runs (the first build compiles the SDK's deps).
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-new-target");
    let target = target.to_str().context("target path")?;
    run_in(
        &project,
        &cargo,
        &["test", "--quiet", "--target-dir", target],
    )?;
    run_in(
        &project,
        &cargo,
        &[
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
            target,
        ],
    )?;
    let wasm = format!("{target}/wasm32-wasip2/release/payments_v2.wasm");
    std::fs::copy(&wasm, project.join("payments_v2.wasm"))?;
    new_project_registers(&project, "payments_v2.wasm", "payments").await
}

/// The Python and JavaScript projects build with their own `build.sh`; here with the tools
/// `plugins/build-polyglot.sh` installed (pinned), so that nothing is downloaded.
#[tokio::test]
async fn new_python_and_javascript_plugin_projects_build_and_register() -> Result<()> {
    let root = harness::workspace_root();
    let scarab = harness::scarab_bin();
    for (lang, name) in [("python", "pyflags"), ("js", "jsflags")] {
        let dir = tempfile::tempdir()?;
        run_in(
            dir.path(),
            &scarab,
            &["plugin", "new", name, "--lang", lang, "--migrator"],
        )?;
        let project = dir.path().join(format!("{name}-plugin"));
        if lang == "python" {
            std::fs::create_dir_all(project.join(".venv/bin"))?;
            std::os::unix::fs::symlink(
                root.join("target/polyglot-venv/bin/componentize-py"),
                project.join(".venv/bin/componentize-py"),
            )?;
        } else {
            std::os::unix::fs::symlink(
                root.join("plugins/js/node_modules"),
                project.join("node_modules"),
            )?;
        }
        run_in(&project, std::path::Path::new("bash"), &["build.sh"])?;
        new_project_registers(&project, &format!("{name}_v2.wasm"), name).await?;
    }
    Ok(())
}

// --- the CLI around a plugin ---

/// `scarab ARGS` against `base`: exit code, stdout, stderr.
fn scarab_cli(base: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let out = std::process::Command::new(harness::scarab_bin())
        .args(args)
        .args(["-s", base])
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// An incompatible version: `--check` prints the report and exits 1; a push prints the
/// report (in every output mode) and names `--force`; `--force` registers it.
#[tokio::test]
async fn schema_push_shows_the_compatibility_report_and_check_fails_when_incompatible() -> Result<()>
{
    let node = start_with(&[]).await?;
    let base = node.base_url().to_string();
    assert_status(
        &node
            .register_schema("wild", 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    assert_status(
        &node
            .put_config("w/trap", "wild", 1, &json!({"mode": "trap"}))
            .await?,
        201,
    );
    let dir = tempfile::tempdir()?;
    let schema = dir.path().join("v2.json");
    std::fs::write(&schema, br#"{"type": "object"}"#)?;
    let plugin = plugin_wasm("hostile_migrator");
    let (schema, plugin) = (
        schema.to_str().context("path")?,
        plugin.to_str().context("path")?,
    );
    let push = [
        "schema", "push", "wild", "2", "--schema", schema, "--plugin", plugin,
    ];
    let (code, out, err) = scarab_cli(&base, &[&push[..], &["--check", "-o", "json"]].concat())?;
    assert_eq!(code, 1, "{out}\n{err}");
    ensure!(
        out.contains("\"compatible\": false") && out.contains("w/trap"),
        "{out}"
    );
    // As a table by default, with the same failures.
    let (code, out, err) = scarab_cli(&base, &[&push[..], &["--check"]].concat())?;
    assert_eq!(code, 1, "{out}\n{err}");
    ensure!(
        out.contains("compatible") && out.contains("false") && out.contains("w/trap"),
        "{out}"
    );
    ensure!(
        err.contains("--force") && !err.contains("force=true\""),
        "{err}"
    );
    let (code, out, err) = scarab_cli(&base, &[&push[..], &["-o", "table"]].concat())?;
    assert_eq!(code, 1, "{out}\n{err}");
    ensure!(
        out.contains("\"failures\"") && out.contains("w/trap"),
        "{out}"
    );
    ensure!(
        err.contains("incompatible_schema_version") && err.contains("--force"),
        "{err}"
    );
    // Under -o json the error is one JSON object on stderr, with the server's report.
    let (code, out, err) = scarab_cli(&base, &[&push[..], &["-o", "json"]].concat())?;
    assert_eq!(code, 1, "{out}\n{err}");
    let error: serde_json::Value = serde_json::from_str(err.trim())?;
    ensure!(
        error["error"]["code"] == "incompatible_schema_version",
        "{err}"
    );
    ensure!(
        error["error"]["report"].to_string().contains("w/trap"),
        "{err}"
    );
    let (code, out, err) = scarab_cli(&base, &[&push[..], &["--force"]].concat())?;
    assert_eq!(code, 0, "{out}\n{err}");
    Ok(())
}

/// `plugin check` no longer plays key "" and version 1 silently.
#[test]
fn plugin_check_requires_the_key_and_which_version_it_checks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let doc = dir.path().join("doc.json");
    std::fs::write(&doc, b"{}")?;
    let plugin = plugin_wasm("hostile");
    let run = |args: &[&str]| -> Result<(i32, String)> {
        let out = std::process::Command::new(harness::scarab_bin())
            .args(["plugin", "check"])
            .arg(&plugin)
            .arg(&doc)
            .args(args)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, err) = run(&["--name", "h", "--schema-version", "1"])?;
    ensure!(code == 2 && err.contains("--key"), "{code}: {err}");
    let (code, err) = run(&["--no-key"])?;
    ensure!(
        code == 2 && err.contains("--schema-version"),
        "{code}: {err}"
    );
    let schema = harness::schema_file("store", 2);
    let (code, err) = run(&["--no-key", "--schema", schema.to_str().context("path")?])?;
    // store v2 refuses `{}`: the version came from the path.
    ensure!(code == 1, "{code}: {err}");
    let (code, err) = run(&["--key", "h/1", "--name", "h", "--schema-version", "1"])?;
    ensure!(code == 0, "{code}: {err}");
    Ok(())
}
