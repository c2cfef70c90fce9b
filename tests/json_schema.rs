//! JSON Schema as a real `scarab serve` node evaluates it, through the HTTP API: references
//! between registered schemas, the bounds and wording of violations, and the official
//! JSON-Schema-Test-Suite for draft 2020-12 (`tests/fixtures/json-schema-test-suite`).

mod harness;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, ensure};
use futures::StreamExt as _;
use serde_json::{Value, json};

use harness::{Node, NodeOptions, Reply, assert_status};

async fn start() -> Result<Node> {
    Node::start(NodeOptions::default()).await
}

/// `schemas/common` v1, the README's example of shared definitions.
fn common() -> Value {
    harness::read_json(&harness::workspace_root().join("schemas/common/v1.json"))
}

/// A schema whose `timeout` is the shared `duration` and whose `upstream` the shared
/// `endpoint`, named both ways a reference can name a registered version.
fn service() -> Value {
    json!({
        "type": "object",
        "properties": {
            "timeout": {"$ref": "scarab:schemas/common/versions/1#/$defs/duration"},
            "upstream": {"$ref": "https://schemas.example.com/common.json#/$defs/endpoint"}
        },
        "required": ["timeout"]
    })
}

async fn register(node: &Node, name: &str, version: u32, schema: &Value) -> Result<Reply> {
    node.register_schema(name, version, schema.clone(), None)
        .await
}

#[tokio::test]
async fn a_schema_refers_to_a_registered_version_by_scarab_uri_or_by_its_id() -> Result<()> {
    let node = start().await?;
    assert_status(&register(&node, "common", 1, &common()).await?, 201);
    let r = register(&node, "service", 1, &service()).await?;
    assert_status(&r, 201);
    let mut references = r.body["references"]
        .as_array()
        .cloned()
        .context("no references")?;
    references.sort_by_key(|r| r["uri"].as_str().map(str::to_string));
    assert_eq!(
        references,
        [
            json!({"uri": "https://schemas.example.com/common.json", "name": "common", "version": 1}),
            json!({"uri": "scarab:schemas/common/versions/1", "name": "common", "version": 1}),
        ],
        "{r}"
    );
    let good = json!({"timeout": "250ms", "upstream": "https://orders.internal:8443"});
    let v = node.validate("service", 1, None, &good).await?;
    assert_status(&v, 200);
    assert_eq!(v.body["valid"], true, "{v}");
    let bad = json!({"timeout": "soon", "upstream": "orders"});
    let v = node.validate("service", 1, None, &bad).await?;
    assert_eq!(v.body["valid"], false, "{v}");
    let found = v.body["violations"].as_array().context("violations")?;
    let paths: Vec<&str> = found.iter().filter_map(|v| v["path"].as_str()).collect();
    assert_eq!(paths, ["/timeout", "/upstream"], "{v}");
    // The schema location goes through the reference into the shared document.
    assert_eq!(
        found[0]["schema_path"], "/properties/timeout/$ref/pattern",
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn references_resolve_to_the_pinned_version_after_a_restart() -> Result<()> {
    let mut node = start().await?;
    assert_status(&register(&node, "common", 1, &common()).await?, 201);
    assert_status(&register(&node, "service", 1, &service()).await?, 201);
    // A second version with the same $id registers: the reference by $id stays pinned to v1.
    let mut v2 = common();
    v2["$defs"]["duration"] = json!({"type": "integer"});
    assert_status(&register(&node, "common", 2, &v2).await?, 201);
    node.stop().await?;
    node.restart().await?;
    let v = node
        .validate("service", 1, None, &json!({"timeout": "5s"}))
        .await?;
    assert_eq!(v.body["valid"], true, "{v}");
    // A new schema naming that $id now names two versions: refused, saying how to choose.
    let r = register(
        &node,
        "other",
        1,
        &json!({"$ref": "https://schemas.example.com/common.json"}),
    )
    .await?;
    assert_status(&r, 400);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("common v1") && message.contains("common v2"),
        "{message}"
    );
    assert!(
        message.contains("scarab:schemas/NAME/versions/N"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_reference_to_a_version_that_is_not_registered_is_refused_naming_it() -> Result<()> {
    let node = start().await?;
    let r = register(
        &node,
        "service",
        1,
        &json!({"properties": {"t": {"$ref": "scarab:schemas/common/versions/3#/$defs/duration"}}}),
    )
    .await?;
    assert_status(&r, 400);
    assert_eq!(r.error_code(), Some("invalid_schema"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("scarab:schemas/common/versions/3")
            && message.contains("schema common version 3 is not registered"),
        "{message}"
    );
    // An $id no registered schema has, http or not: never fetched.
    for uri in [
        "https://schemas.example.com/missing.json",
        "file:///etc/common.json",
        "urn:example:common",
    ] {
        let r = register(&node, "service", 1, &json!({"$ref": uri})).await?;
        assert_status(&r, 400);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(uri) && message.contains("never fetches"),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_referenced_version_cannot_be_deleted_while_a_schema_uses_it() -> Result<()> {
    let node = start().await?;
    assert_status(&register(&node, "common", 1, &common()).await?, 201);
    assert_status(&register(&node, "service", 1, &service()).await?, 201);
    assert_status(&register(&node, "service", 2, &service()).await?, 201);
    let r = node.delete_schema_version("common", 1).await?;
    assert_status(&r, 409);
    assert_eq!(r.error_code(), Some("schema_in_use"), "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("service v1") && message.contains("service v2"),
        "{message}"
    );
    assert_status(&node.delete_schema_version("service", 1).await?, 200);
    assert_status(&node.delete_schema_version("service", 2).await?, 200);
    assert_status(&node.delete_schema_version("common", 1).await?, 200);
    Ok(())
}

/// A node started with `--max-violations n`.
async fn start_with_max_violations(n: usize) -> Result<Node> {
    Node::start(NodeOptions {
        extra_args: vec!["--max-violations".into(), n.to_string()],
        ..NodeOptions::default()
    })
    .await
}

#[tokio::test]
async fn at_max_violations_every_violation_is_listed() -> Result<()> {
    let node = start_with_max_violations(5).await?;
    let schema = json!({"items": {"type": "string"}});
    assert_status(&register(&node, "list", 1, &schema).await?, 201);
    let v = node
        .validate("list", 1, None, &json!([1, 2, 3, 4, 5]))
        .await?;
    let found = v.body["violations"].as_array().context("violations")?;
    assert_eq!(found.len(), 5, "{v}");
    assert!(found.iter().all(|v| v["code"] == "type"), "{v}");
    Ok(())
}

#[tokio::test]
async fn past_max_violations_one_entry_says_how_many_were_left_out() -> Result<()> {
    let node = start_with_max_violations(5).await?;
    let schema = json!({"items": {"type": "string"}});
    assert_status(&register(&node, "list", 1, &schema).await?, 201);
    let doc = json!([1, 2, 3, 4, 5, 6]);
    let v = node.validate("list", 1, None, &doc).await?;
    let found = v.body["violations"].as_array().context("violations")?;
    assert_eq!(found.len(), 6, "{v}");
    assert_eq!(found[5]["code"], "violations_left_out", "{v}");
    assert!(
        found[5]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("1 more violation(s) left out")),
        "{v}"
    );
    // A write gets the same list, and its message says it was cut.
    let r = node.put_config("lists/a", "list", 1, &doc).await?;
    assert_status(&r, 422);
    assert_eq!(r.violations().len(), 6, "{r}");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("more than 5"), "{message}");
    Ok(())
}

#[tokio::test]
async fn max_violations_is_refused_at_zero_and_past_its_ceiling() -> Result<()> {
    for bad in ["0", "1001"] {
        let out = std::process::Command::new(harness::scarab_bin())
            .args(["serve", "--max-violations", bad, "--insecure-no-auth"])
            .args(["--data-dir", "/nonexistent/never-created"])
            .output()?;
        ensure!(!out.status.success(), "--max-violations {bad} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            stderr.contains("--max-violations must be between 1 and 1000"),
            "{stderr}"
        );
    }
    Ok(())
}

/// The response to a refused document stays small whatever the document: the two
/// probes, a 150,000-item array of the wrong type and a 1 MB `anyOf` failure.
#[tokio::test]
async fn a_refused_documents_answer_is_bounded_whatever_its_size() -> Result<()> {
    let node = start().await?;
    let items = json!({"type": "array", "items": {"type": "string"}});
    assert_status(&register(&node, "items", 1, &items).await?, 201);
    let any_of = json!({"anyOf": [{"type": "array"}, {"type": "string"}]});
    assert_status(&register(&node, "either", 1, &any_of).await?, 201);
    let long = Value::Array((0..150_000).map(Value::from).collect());
    let blob = json!({"blob": "x".repeat(950_000)});
    for (schema, doc) in [("items", &long), ("either", &blob)] {
        let v = node.validate(schema, 1, None, doc).await?;
        assert_status(&v, 200);
        assert_eq!(v.body["valid"], false);
        assert!(v.bytes.len() < 4096, "{schema}: {} bytes", v.bytes.len());
        let w = node
            .put_config(&format!("big/{schema}"), schema, 1, doc)
            .await?;
        assert_status(&w, 422);
        assert!(w.bytes.len() < 4096, "{schema}: {} bytes", w.bytes.len());
        for v in w.violations() {
            let message = v["message"].as_str().unwrap_or_default();
            assert!(message.len() <= 256, "{message}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn violations_say_what_max_contains_and_dependent_required_ask() -> Result<()> {
    let node = start().await?;
    let schema = json!({
        "properties": {
            "replicas": {"contains": {"const": "primary"}, "maxContains": 1},
            "tls": {"dependentRequired": {"cert": ["key"]}}
        }
    });
    assert_status(&register(&node, "db", 1, &schema).await?, 201);
    let doc = json!({"replicas": ["primary", "primary"], "tls": {"cert": "c.pem"}});
    let v = node.validate("db", 1, None, &doc).await?;
    let found = v.body["violations"].as_array().context("violations")?;
    let seen: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|v| {
            (
                v["path"].as_str().unwrap_or_default(),
                v["code"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "/replicas",
                "maxContains",
                "more than 1 items match the contains schema (maxContains is 1)"
            ),
            (
                "/tls/key",
                "dependentRequired",
                "property \"key\" is required when \"cert\" is present (dependentRequired)"
            ),
        ],
        "{v}"
    );
    Ok(())
}

// --- the official test suite ---

fn suite_dir() -> PathBuf {
    harness::workspace_root().join("tests/fixtures/json-schema-test-suite/draft2020-12")
}

/// Every `.json` file under `dir`, recursively, sorted.
fn suite_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One group of the suite: a schema and the documents it must accept or refuse.
struct Group {
    name: String,
    schema: Value,
    tests: Vec<(String, Value, bool)>,
}

/// Every test of the suite passes through the HTTP API, with format assertion on for the
/// `optional/format` tests (as the suite asks of an implementation that asserts formats),
/// except those whose schema needs the suite's remote documents served at `localhost:1234`
/// (a network). Each group's schema is registered as a version, and each document validated
/// against it.
#[tokio::test]
async fn the_json_schema_test_suite_for_draft_2020_12_passes() -> Result<()> {
    let root = suite_dir();
    let mut groups = Vec::new();
    let mut network = 0;
    for file in suite_files(&root)? {
        let relative = file.strip_prefix(&root)?.display().to_string();
        let asserts_formats = relative.starts_with("optional/format/");
        let listed: Vec<Value> =
            serde_json::from_slice(&std::fs::read(&file)?).with_context(|| relative.clone())?;
        for (i, group) in listed.into_iter().enumerate() {
            let mut schema = group["schema"].clone();
            let tests: Vec<(String, Value, bool)> = group["tests"]
                .as_array()
                .context("tests")?
                .iter()
                .map(|t| {
                    (
                        t["description"].as_str().unwrap_or_default().to_string(),
                        t["data"].clone(),
                        t["valid"].as_bool().unwrap_or_default(),
                    )
                })
                .collect();
            if schema.to_string().contains("localhost:1234") {
                network += tests.len();
                continue;
            }
            if asserts_formats && let Some(map) = schema.as_object_mut() {
                map.insert(
                    "$schema".into(),
                    json!("urn:scarab:draft-2020-12:format-assertion"),
                );
            }
            groups.push(Group {
                name: format!(
                    "{relative} #{i} {}",
                    group["description"].as_str().unwrap_or_default()
                ),
                schema,
                tests,
            });
        }
    }
    let node = start().await?;
    let client = node.typed().clone();
    let results: Vec<Result<(usize, Vec<String>)>> =
        futures::stream::iter(groups.into_iter().enumerate().map(|(i, group)| {
            let client = client.clone();
            async move {
                let name = format!("suite-{i}");
                client
                    .register_schema(&name, 1, &scarab_client::SchemaUpload::new(&group.schema))
                    .await
                    .map_err(|e| anyhow!("{}: registration refused: {e}", group.name))?;
                let mut failed = Vec::new();
                for (description, data, valid) in &group.tests {
                    let verdict = client
                        .validate(&name, 1, data, None)
                        .await
                        .map_err(|e| anyhow!("{} / {description}: {e}", group.name))?;
                    if verdict.valid != *valid {
                        failed.push(format!(
                            "{} / {description}: expected valid={valid}, got {:?}",
                            group.name, verdict.violations
                        ));
                    }
                }
                Ok((group.tests.len(), failed))
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut passed = 0;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((n, failed)) => {
                passed += n - failed.len();
                failures.extend(failed);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    eprintln!(
        "JSON-Schema-Test-Suite draft 2020-12: {passed} passed, {} failed, {network} need a network",
        failures.len()
    );
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    // The suite is all there (a vanished fixture must not pass as success).
    ensure!(passed > 1800, "only {passed} tests ran");
    Ok(())
}
