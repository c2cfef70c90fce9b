//! What the `scarab` command line says when something is wrong (README, "CLI"): a refused
//! connection, a URL without a scheme, a server that is not Scarab, a closed pipe, a data
//! directory in use, a config document pushed as a schema; exit codes 1 (refused by the
//! server), 2 (usage or input), 3 (no Scarab server answered); errors as JSON under `-o json`.

mod harness;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use anyhow::Result;
use serde_json::{Value, json};

use harness::{Node, NodeOptions, free_port, http_client, scarab_bin, start_note_node};

fn scarab(args: &[&str]) -> Result<Output> {
    Ok(Command::new(scarab_bin()).args(args).output()?)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command exited with `code` and its stderr says `text`.
fn fails_with(out: &Output, code: i32, text: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(text), "{err}");
}

#[test]
fn a_refused_connection_names_the_url_and_asks_whether_the_server_runs() -> Result<()> {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = scarab(&["config", "list", "-s", &url])?;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains(&format!("cannot reach {url}")), "{text}");
    assert!(
        text.contains("connection refused: is the server running?"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_server_url_without_a_scheme_is_a_usage_error_that_shows_the_fix() -> Result<()> {
    let out = scarab(&["config", "list", "-s", "127.0.0.1:7070"])?;
    fails_with(&out, 2, "it has no scheme: write http://127.0.0.1:7070");
    Ok(())
}

#[test]
fn a_server_that_is_not_scarab_is_named_as_such() -> Result<()> {
    // Any HTTP server: this one answers every request with an HTML 404.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = "<html>Not Found</html>";
            let _ = write!(
                conn,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = scarab(&["config", "list", "-s", &url])?;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("answered 404 Not Found without Scarab's error body"),
        "{text}"
    );
    assert!(text.contains("is it a Scarab API?"), "{text}");
    Ok(())
}

#[tokio::test]
async fn under_json_output_an_error_is_one_json_object() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let out = scarab(&[
        "config",
        "get",
        "missing/key",
        "-s",
        node.base_url(),
        "-o",
        "json",
    ])?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error: Value = serde_json::from_str(stderr(&out).trim())?;
    assert_eq!(error["error"]["code"], "not_found", "{error}");
    assert_eq!(error["error"]["status"], 404, "{error}");
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = scarab(&["config", "list", "-s", &url, "-o", "json"])?;
    assert_eq!(out.status.code(), Some(3));
    let error: Value = serde_json::from_str(stderr(&out).trim())?;
    assert_eq!(error["error"]["code"], "unreachable", "{error}");
    Ok(())
}

#[tokio::test]
async fn a_closed_pipe_ends_a_command_without_a_panic() -> Result<()> {
    let node = start_note_node(&[]).await?;
    for i in 0..50 {
        node.put_config(&format!("pipe/{i:02}"), "note", 1, &json!({"i": i}))
            .await?;
    }
    // The reader goes away at once: the command's writes meet a closed pipe.
    let mut child = Command::new(scarab_bin())
        .args(["config", "list", "-s", node.base_url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let out = child.wait_with_output()?;
    let text = stderr(&out);
    assert!(!text.contains("panicked"), "{text}");
    assert_ne!(out.status.code(), Some(101), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_data_directory_in_use_is_refused_at_once_naming_it() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let dir = node.data_dir().display().to_string();
    let started = std::time::Instant::now();
    let out = scarab(&[
        "serve",
        "--node-id",
        "1",
        "--data-dir",
        &dir,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ])?;
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains(&format!("another scarab process is using {dir}")),
        "{text}"
    );
    assert!(!text.contains("restore"), "{text}");
    // Refused at start, not after a wait (a bound generous for a loaded machine).
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    Ok(())
}

#[tokio::test]
async fn a_config_document_pushed_as_a_schema_is_warned_about_and_refused_with_strict() -> Result<()>
{
    let node = start_note_node(&[]).await?;
    let dir = tempfile::tempdir()?;
    let doc = dir.path().join("orders.json");
    std::fs::write(&doc, r#"{"store_id": "orders", "timeout_ms": 5000}"#)?;
    let doc = doc.display().to_string();
    let strict = scarab(&[
        "schema",
        "push",
        "oops",
        "1",
        "--schema",
        &doc,
        "--strict",
        "-s",
        node.base_url(),
    ])?;
    fails_with(&strict, 2, "has no JSON Schema keyword");
    let list = node.typed().schemas().await?;
    assert!(
        !list.schemas.iter().any(|s| s.name == "oops"),
        "nothing registered"
    );
    let warned = scarab(&[
        "schema",
        "push",
        "oops",
        "1",
        "--schema",
        &doc,
        "-s",
        node.base_url(),
    ])?;
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert!(stderr(&warned).contains("warning:"), "{}", stderr(&warned));
    Ok(())
}

#[tokio::test]
async fn a_failed_precondition_says_the_revision_in_words() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let put = node.put_config("pre/a", "note", 1, &json!({})).await?;
    let rev = put.revision();
    let resp = http_client()
        .put(node.url("/v1/configs/pre/a"))
        .header("if-match", format!("\"{}\"", rev + 100))
        .json(&json!({"schema": "note", "schema_version": 1, "value": {}}))
        .send()
        .await?;
    assert_eq!(resp.status(), 412);
    let body: Value = resp.json().await?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        message,
        format!("precondition failed for pre/a: its current revision is {rev}")
    );
    Ok(())
}

#[tokio::test]
async fn cors_is_off_unless_an_origin_is_allowed() -> Result<()> {
    let preflight = |node: &Node| {
        http_client()
            .request(reqwest::Method::OPTIONS, node.url("/v1/configs/a"))
            .header("origin", "https://console.example.com")
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type,if-match")
            .send()
    };
    let closed = Node::start(NodeOptions::default()).await?;
    let resp = preflight(&closed).await?;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let open = Node::start(NodeOptions {
        extra_args: vec!["--cors-origin".into(), "https://console.example.com".into()],
        ..NodeOptions::default()
    })
    .await?;
    let resp = preflight(&open).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://console.example.com"
    );
    // A real request from that origin sees the revision and the ETag.
    let resp = http_client()
        .get(open.url("/v1/status"))
        .header("origin", "https://console.example.com")
        .send()
        .await?;
    let exposed = resp.headers()["access-control-expose-headers"]
        .to_str()?
        .to_string();
    assert!(
        exposed.contains("etag") && exposed.contains("x-scarab-revision"),
        "{exposed}"
    );
    Ok(())
}

#[test]
fn a_completion_script_is_printed_for_each_shell() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let out = scarab(&["completion", shell])?;
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("scarab") && script.contains("config"),
            "{shell}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn config_put_defaults_to_the_keys_schema_or_the_latest_version() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let v2 = scarab_client::SchemaUpload::new(&json!({"type": "object", "title": "v2"}));
    node.typed().register_schema("note", 2, &v2).await?;
    let s = node.base_url();
    // A new key: the latest registered version of --schema.
    let out = scarab(&[
        "config", "put", "d/a", "--schema", "note", "--value", "{}", "-s", s,
    ])?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(node.typed().get("d/a").await?.meta.schema_version, 2);
    // An update without either: the key's own schema and version.
    let old = scarab(&[
        "config",
        "put",
        "d/b",
        "--schema",
        "note",
        "--schema-version",
        "1",
        "--value",
        "{}",
        "-s",
        s,
    ])?;
    assert!(old.status.success(), "{}", stderr(&old));
    let out = scarab(&["config", "put", "d/b", "--value", r#"{"x": 1}"#, "-s", s])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let entry = node.typed().get("d/b").await?;
    assert_eq!(
        (entry.meta.schema.as_str(), entry.meta.schema_version),
        ("note", 1)
    );
    assert_eq!(entry.value, json!({"x": 1}));
    // A new key without --schema: which schema is a question for the user.
    let out = scarab(&["config", "put", "d/new", "--value", "{}", "-s", s])?;
    fails_with(&out, 2, "give its schema with --schema");
    Ok(())
}

#[tokio::test]
async fn every_output_format_is_honoured() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let s = node.base_url();
    node.put_config("f/a", "note", 1, &json!({"n": 1})).await?;
    node.put_config("f/a", "note", 1, &json!({"n": 2})).await?;
    let yaml = scarab(&["config", "get", "f/a", "-o", "yaml", "-s", s])?;
    assert!(yaml.status.success(), "{}", stderr(&yaml));
    let text = String::from_utf8_lossy(&yaml.stdout);
    assert!(text.contains("key: f/a") && text.contains("n: 2"), "{text}");
    // History was JSON whatever -o said; now a table by default, JSON when asked.
    let table = scarab(&["config", "history", "f/a", "-s", s])?;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("revision") && text.contains("key_version"),
        "{text}"
    );
    assert!(!text.trim_start().starts_with('{'), "{text}");
    let json = scarab(&["config", "history", "f/a", "-o", "json", "-s", s])?;
    let page: Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    let show = scarab(&["schema", "show", "note", "-s", s])?;
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("registered_at") && !text.trim_start().starts_with('{'),
        "{text}"
    );
    Ok(())
}

/// `scarab settings` changes only the values asked for (the others keep theirs), and the
/// change is recorded with its reason.
#[tokio::test]
async fn settings_change_only_what_is_asked_and_are_audited() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let s = node.base_url();
    let json_of = |args: &[&str]| -> Result<Value> {
        let out = scarab(args)?;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    assert_eq!(
        json_of(&["settings", "audit", "-o", "json", "-s", s])?,
        json!({"max_records": 100_000})
    );
    assert_eq!(
        json_of(&[
            "settings",
            "audit",
            "--max-records",
            "7",
            "--reason",
            "small",
            "-o",
            "json",
            "-s",
            s
        ])?,
        json!({"max_records": 7})
    );
    assert_eq!(
        json_of(&[
            "settings",
            "history",
            "--watch-window",
            "50",
            "-o",
            "json",
            "-s",
            s
        ])?,
        json!({"keep": 100, "watch_window": 50})
    );
    assert_eq!(
        json_of(&[
            "settings",
            "history",
            "--max-age",
            "1h",
            "-o",
            "json",
            "-s",
            s
        ])?,
        json!({"keep": 100, "max_age_seconds": 3600, "watch_window": 50})
    );
    assert_eq!(
        json_of(&["settings", "history", "--no-max-age", "-o", "json", "-s", s])?,
        json!({"keep": 100, "watch_window": 50})
    );
    let trail = json_of(&["audit", "--action", "settings.audit", "-o", "json", "-s", s])?;
    assert_eq!(trail["items"][0]["reason"], "small", "{trail}");
    let zero = scarab(&["settings", "audit", "--max-records", "0", "-s", s])?;
    fails_with(&zero, 1, "max_records must be at least 1");
    Ok(())
}

/// Removing the only voter can never succeed: a refusal a retry would meet again (409), not a
/// retry code such as 503 `not_ready`.
#[tokio::test]
async fn removing_the_only_voter_is_refused_for_good() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let resp = http_client()
        .delete(node.url("/v1/cluster/members/1"))
        .send()
        .await?;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await?;
    let code = scarab_client::types::ErrorCode::parse(body["error"]["code"].as_str().unwrap_or(""));
    assert_eq!(
        code,
        scarab_client::types::ErrorCode::NodeConflict,
        "{body}"
    );
    assert!(!code.is_retry_safe());
    let out = scarab(&["cluster", "remove", "1", "-s", node.base_url()])?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("the only voter"), "{}", stderr(&out));
    Ok(())
}
