//! The OpenAPI document (`GET /v1/openapi.json`) against the server that serves it: every
//! operation it lists reaches a handler, every error code is in it, and schemathesis, run
//! against a `scarab dev` node, finds no 5xx, no response the document does not describe
//! and no hang.

mod harness;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use harness::dev::DevNode;
use harness::{Node, NodeOptions, STORE, http_client, workspace_root};
use scarab_client::types::ErrorCode;

async fn document(node: &Node) -> Result<Value> {
    let resp = http_client()
        .get(node.url("/v1/openapi.json"))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"].to_str()?, "application/json");
    Ok(resp.json().await?)
}

/// Every `(method, path)` the document lists.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_every_route_of_v1() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let doc = document(&node).await?;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    let listed: BTreeSet<String> = ops.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    // The routes of the README's API table.
    for route in [
        "GET /v1/configs",
        "GET /v1/configs/{key}",
        "PUT /v1/configs/{key}",
        "DELETE /v1/configs/{key}",
        "GET /v1/configs/{key}/history",
        "POST /v1/configs/{key}/rollback",
        "POST /v1/txn",
        "GET /v1/watch",
        "GET /v1/audit",
        "PUT /v1/schemas/{name}/versions/{version}",
        "POST /v1/schemas/{name}/versions/{version}/validate",
        "POST /v1/schemas/{name}/migrations",
        "GET /v1/cluster",
        "POST /v1/auth/tokens",
        "GET /v1/backup",
        "PUT /v1/settings/history",
        "PUT /v1/settings/audit",
    ] {
        assert!(listed.contains(route), "{route} is not in {listed:#?}");
    }
    let ids: BTreeSet<&str> = ops
        .iter()
        .map(|(_, _, op)| op["operationId"].as_str().expect("operationId"))
        .collect();
    assert_eq!(ids.len(), ops.len(), "operation ids are unique");
    Ok(())
}

/// Every operation of the document reaches a handler of the router: none is answered by the
/// fallback of unknown routes or methods.
#[tokio::test]
async fn every_documented_operation_is_served() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let doc = document(&node).await?;
    let http = http_client();
    for (method, path, _) in operations(&doc) {
        let url = path
            .replace("{key}", "st/doc")
            .replace("{name}", "st-doc")
            .replace("{version}", "1")
            .replace("{role}", "st-doc")
            // A member or migration id that does not exist: 404 from the handler.
            .replace("{id}", "99");
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let resp = http
            .request(method.clone(), node.url(&url))
            .query(&[("wait", "1ms")])
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let Ok(resp) = resp else {
            continue; // a stream that did not end: served
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_ne!(status, 405, "{method} {url}: {body}");
        assert!(
            !message.contains("no such route"),
            "{method} {url} is documented but not routed: {body}"
        );
    }
    Ok(())
}

/// Each code of the README's table is an error response of some operation, under its status,
/// and every `$ref` of the document resolves.
#[tokio::test]
async fn every_error_code_is_documented_under_its_status() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let doc = document(&node).await?;
    let text = doc.to_string();
    let ops = operations(&doc);
    for code in ErrorCode::ALL {
        if matches!(
            code,
            // The answer to a method the document does not list for a path, and a refusal
            // of the migration driver's own proposals, which no route makes: in the
            // `ErrorCode` enum only (checked below).
            ErrorCode::MethodNotAllowed | ErrorCode::MigrationNotRunning
        ) {
            continue;
        }
        let status = code.http_status().to_string();
        let documented = ops.iter().any(|(_, _, op)| {
            op["responses"][&status]["description"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{}`", code.as_str())))
        });
        assert!(
            documented,
            "{} ({status}) is the error of no operation",
            code.as_str()
        );
    }
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .context("ErrorCode enum")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
    assert_eq!(codes, all);
    // Every reference names a component that exists.
    let schemas = doc["components"]["schemas"]
        .as_object()
        .context("schemas")?;
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    Ok(())
}

/// schemathesis (installed by `tests/tools/install.sh`) against a `scarab dev` node: the
/// coverage and fuzzing phases, a bounded number of cases per operation, with a fixed seed.
/// It fails on any 5xx, any status, content type, header or body the document does not
/// describe, and any request that does not answer within its timeout; the node must still
/// serve reads and writes afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure_against_a_dev_node() -> Result<()> {
    let root = workspace_root();
    let st = root.join("target/test-tools/venv/bin/st");
    if !st.exists() {
        bail!(
            "{} is missing: run `bash tests/tools/install.sh` (the README's test command does)",
            st.display()
        );
    }
    let dev = tokio::task::spawn_blocking(DevNode::start).await??;
    let base = dev.base.clone();
    // The config the cases read, roll back and delete (tests/tools/schemathesis.toml); the
    // store plugin wants the key's last segment to be the value's `store_id`.
    let sample = STORE.valid_sample();
    let put = http_client()
        .put(format!("{base}/v1/configs/orders"))
        .json(&json!({"schema": STORE.schema, "schema_version": 1, "value": sample.value}))
        .send()
        .await?;
    assert_eq!(put.status(), 201, "{}", put.text().await?);

    // The checks (no 5xx, every answer as documented) and three of HTTP's rules: a
    // request the document says is invalid is refused, and an undocumented method is 405
    // with an `Allow` listing the documented ones.
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance,\
                  negative_data_rejection,unsupported_method,allow_header_conformance";
    // A watch answers a case after its first event, which may be a progress event seconds
    // away: it gets fewer cases than the rest.
    for (filter, examples) in [("--exclude-path", "25"), ("--include-path", "5")] {
        let run = || {
            let (st, root, base) = (st.clone(), root.clone(), base.clone());
            move || {
                Command::new("timeout")
                    .arg("600")
                    .arg(st)
                    .current_dir(root.join("target"))
                    .arg("--config-file")
                    .arg(root.join("tests/tools/schemathesis.toml"))
                    .args(["run", &format!("{base}/v1/openapi.json")])
                    .args(["--checks", checks])
                    .args(["--phases", "coverage,fuzzing"])
                    .args(["--max-examples", examples])
                    .args([filter, "/v1/watch"])
                    .args(["--seed", "20261201", "--no-shrink", "--workers", "2"])
                    .args(["--request-timeout", "30"])
                    .args(["--report-dir", "schemathesis-report"])
                    .output()
            }
        };
        let mut out = tokio::task::spawn_blocking(run()).await??;
        // schemathesis' own generator (Hypothesis) can give up on drawing a case under load
        // ("Inconsistent results", a Runtime Error before any request): no answer of ours is
        // involved, so that alone is run again, once. A failed check never is.
        let generator_error = |out: &std::process::Output| {
            let text = String::from_utf8_lossy(&out.stdout);
            !out.status.success()
                && text.contains("Inconsistent results")
                && !text.contains("FAILURES")
        };
        if generator_error(&out) {
            println!("schemathesis ({filter} /v1/watch): its generator failed; running it again");
            out = tokio::task::spawn_blocking(run()).await??;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis ({filter} /v1/watch) failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = stdout.lines().rev().take(8).collect::<Vec<_>>();
        println!("schemathesis {filter} /v1/watch: {summary:?}");
    }
    // No zombie: the node still commits writes (the cases may have deleted every schema).
    let put = http_client()
        .put(format!("{base}/v1/settings/history"))
        .json(&json!({"keep": 10}))
        .send()
        .await?;
    assert_eq!(put.status(), 200, "{}", put.text().await?);
    Ok(())
}

/// A query string or path parameter the route does not take is refused in the one error
/// shape (axum's own rejections are plain text).
#[tokio::test]
async fn query_and_path_rejections_are_json_errors() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    for path in [
        "/v1/configs?limit=abc",
        "/v1/configs/a/history?before=R",
        "/v1/configs/a?revision=-1",
        "/v1/watch?from_revision=abc&wait=1s",
        "/v1/audit?unknown=1",
        "/v1/schemas/store/versions/1?consistency=sometimes",
        // Found by schemathesis: a stream took (and a long poll clamped) any limit.
        "/v1/watch?limit=0",
        "/v1/watch?limit=1001&wait=1s",
    ] {
        let resp = http_client().get(node.url(path)).send().await?;
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(
            resp.headers()["content-type"].to_str()?,
            "application/json",
            "{path}"
        );
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "malformed_request", "{path}: {body}");
    }
    Ok(())
}

/// The config wildcard serves three resources; each answers a method it does not take with
/// 405 and its own `Allow`.
#[tokio::test]
async fn a_config_sub_resource_says_which_methods_it_takes() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    for (method, path, allow) in [
        ("PUT", "/v1/configs/a/rollback", "POST"),
        ("GET", "/v1/configs/a/rollback", "POST"),
        ("DELETE", "/v1/configs/a/history", "GET,HEAD"),
        ("POST", "/v1/configs/a/history", "GET,HEAD"),
        ("POST", "/v1/configs/a", "GET,HEAD,PUT,DELETE"),
        ("OPTIONS", "/v1/configs/a", "GET,HEAD,PUT,DELETE"),
        ("PATCH", "/v1/configs/a/rollback", "POST"),
    ] {
        let resp = http_client()
            .request(
                reqwest::Method::from_bytes(method.as_bytes())?,
                node.url(path),
            )
            .send()
            .await?;
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    }
    // `history` alone is a key like any other.
    let resp = http_client()
        .get(node.url("/v1/configs/history"))
        .send()
        .await?;
    assert_eq!(resp.status(), 404);
    Ok(())
}
