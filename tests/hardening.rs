//! Hostile input on real `scarab serve` processes: every finding of the probe that could kill
//! or corrupt a node ("No request can kill a node"), each as the request an attacker sent and
//! what the node must do instead: answer a clear error, keep its data, keep serving, and start
//! again after a kill -9.

mod harness;

use std::time::Duration;

use anyhow::{Result, ensure};
use base64::Engine as _;
use serde_json::{Value, json};

use harness::{Api, Node, NodeOptions, Reply, assert_error, assert_status, start_note_node};

/// `levels` arrays inside each other: `[[[...]]]`.
fn nested(levels: usize) -> Value {
    serde_json::from_str(&("[".repeat(levels) + &"]".repeat(levels))).unwrap()
}

fn nested_text(levels: usize) -> String {
    "[".repeat(levels) + &"]".repeat(levels)
}

async fn put_note(api: &Api, key: &str, value: &Value) -> Result<Reply> {
    api.put_config(key, "note", 1, value).await
}

async fn post_raw(api: &Api, path: &str, body: impl Into<reqwest::Body>) -> Result<Reply> {
    api.send(
        api.client()
            .post(api.url(path))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

/// The node survives a kill -9 and a restart, and still holds `key` and takes writes.
async fn assert_survives_restart(node: &mut Node, key: &str) -> Result<()> {
    node.kill()?;
    node.restart().await?;
    assert_status(&node.get_config(key).await?, 200);
    assert_status(
        &put_note(node, "after/restart", &json!({"ok": true})).await?,
        201,
    );
    Ok(())
}

// Finding 1: a deep `equals` in a transaction condition was committed and made every node that
// applied it unbootable.

#[tokio::test]
async fn a_txn_condition_nested_past_the_limit_is_refused_and_nothing_is_proposed() -> Result<()> {
    let mut node = start_note_node(&[]).await?;
    assert_status(&put_note(&node, "a", &json!({})).await?, 201);
    let before = node.status().await?.revision;
    let body = json!({"conditions": [{"key": "a", "pointer": "", "equals": nested(120)}],
                      "ops": [{"op": "delete", "key": "b"}]});
    assert_error(
        &node.post_json("/v1/txn", &body).await?,
        400,
        "json_too_deep",
    );
    assert_eq!(node.status().await?.revision, before);
    assert_survives_restart(&mut node, "a").await
}

#[tokio::test]
async fn the_deepest_input_of_every_route_is_accepted_and_survives_a_restart() -> Result<()> {
    let mut node = start_note_node(&[]).await?;
    let deep = json!({"d": nested(63)}); // 64 levels
    assert_status(&put_note(&node, "deep/put", &deep).await?, 201);
    let txn = json!({
        "conditions": [{"key": "deep/put", "pointer": "/d", "equals": nested(63)}],
        "ops": [{"op": "put", "key": "deep/txn", "schema": "note", "schema_version": 1,
                 "value": deep}]});
    assert_status(&node.post_json("/v1/txn", &txn).await?, 200);
    // A JSON Schema 64 levels deep: `const` of 62 nested arrays inside `{"properties": {"d": {...}}}`.
    let schema = json!({"type": "object", "properties": {"d": {"const": nested(61)}}});
    assert_status(&node.register_schema("deep", 1, schema, None).await?, 201);
    let valid = node
        .post_json(
            "/v1/schemas/note/versions/1/validate",
            &json!({"d": nested(63)}),
        )
        .await?;
    assert_status(&valid, 200);
    let revision = node.get_config("deep/put").await?.body["revision"]
        .as_u64()
        .unwrap();
    assert_status(&put_note(&node, "deep/put", &json!({})).await?, 200);
    let rollback = node
        .post_json(
            "/v1/configs/deep/put/rollback",
            &json!({"revision": revision}),
        )
        .await?;
    assert_status(&rollback, 200);
    node.kill()?;
    node.restart().await?;
    for key in ["deep/put", "deep/txn"] {
        let got = node.get_config(key).await?;
        assert_status(&got, 200);
        assert_eq!(got.body["value"], deep, "{key}");
    }
    assert_status(&node.get_schema_version("deep", 1).await?, 200);
    Ok(())
}

#[tokio::test]
async fn one_level_past_the_limit_is_refused_on_every_route() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let too_deep = json!({"d": nested(64)}); // 65 levels
    assert_error(
        &put_note(&node, "x", &too_deep).await?,
        400,
        "json_too_deep",
    );
    let txn = json!({"ops": [{"op": "put", "key": "x", "schema": "note", "schema_version": 1,
                              "value": too_deep}]});
    assert_error(
        &node.post_json("/v1/txn", &txn).await?,
        400,
        "json_too_deep",
    );
    let cond = json!({"conditions": [{"key": "x", "pointer": "", "equals": too_deep}],
                      "ops": [{"op": "delete", "key": "x"}]});
    assert_error(
        &node.post_json("/v1/txn", &cond).await?,
        400,
        "json_too_deep",
    );
    let schema = json!({"type": "object", "properties": {"d": {"const": nested(62)}}});
    assert_error(
        &node.register_schema("deep", 1, schema, None).await?,
        400,
        "json_too_deep",
    );
    let validate = node
        .post_json("/v1/schemas/note/versions/1/validate", &too_deep)
        .await?;
    assert_error(&validate, 400, "json_too_deep");
    Ok(())
}

#[tokio::test]
async fn max_json_depth_is_a_flag() -> Result<()> {
    let node = start_note_node(&["--max-json-depth", "8"]).await?;
    assert_status(&put_note(&node, "at", &json!({"d": nested(7)})).await?, 201);
    assert_error(
        &put_note(&node, "past", &json!({"d": nested(8)})).await?,
        400,
        "json_too_deep",
    );
    Ok(())
}

#[tokio::test]
async fn half_a_million_levels_are_refused_in_one_pass() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let body = format!(
        r#"{{"schema":"note","schema_version":1,"value":{}}}"#,
        nested_text(500_000)
    );
    let reply = node
        .put_config_raw("huge/depth", "application/json", body)
        .await?;
    assert_error(&reply, 400, "json_too_deep");
    assert_status(&node.health().await?, 200);
    Ok(())
}

// Findings 3-8: the peer port.

fn snapshot_header(node_id: u64, term: u64, snapshot_id: &str, last_index: Option<u64>) -> String {
    let last_log_id =
        last_index.map(|i| json!({"leader_id": {"term": term, "node_id": node_id}, "index": i}));
    let header = json!({
        "vote": {"leader_id": {"term": term, "node_id": node_id}, "committed": true},
        "meta": {"last_log_id": last_log_id,
                 "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
                 "snapshot_id": snapshot_id},
        "offset": 0,
        "done": true,
    });
    base64::engine::general_purpose::STANDARD.encode(header.to_string())
}

async fn post_snapshot(api: &Api, header: String, data: Vec<u8>) -> Result<Reply> {
    api.send(
        api.client()
            .post(api.url("/raft/snapshot"))
            .header("x-scarab-snapshot", header)
            .header("content-type", "application/octet-stream")
            .body(data),
    )
    .await
}

#[tokio::test]
async fn a_garbage_snapshot_is_refused_and_the_node_restarts() -> Result<()> {
    let mut node = start_note_node(&[]).await?;
    assert_status(&put_note(&node, "kept", &json!({"v": 1})).await?, 201);
    let header = snapshot_header(7, 99, "99-1000000-5", Some(1_000_000));
    let reply = post_snapshot(&node, header, b"garbage\n".to_vec()).await?;
    assert_error(&reply, 400, "peer_refused");
    assert_eq!(
        node.get_config("kept").await?.body["value"],
        json!({"v": 1})
    );
    assert_survives_restart(&mut node, "kept").await
}

#[tokio::test]
async fn a_well_formed_snapshot_from_this_nodes_own_id_is_refused() -> Result<()> {
    let mut node = start_note_node(&[]).await?;
    assert_status(&put_note(&node, "kept", &json!({"v": 1})).await?, 201);
    // An empty but well-formed snapshot claiming to come from node 1 (this node).
    let header = snapshot_header(1, 50, "50-500-0", Some(500));
    let reply = post_snapshot(&node, header, Vec::new()).await?;
    assert_error(&reply, 400, "peer_refused");
    assert_eq!(
        node.get_config("kept").await?.body["value"],
        json!({"v": 1})
    );
    assert_survives_restart(&mut node, "kept").await
}

#[tokio::test]
async fn a_snapshot_id_is_never_a_path() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let outside = tempfile::tempdir()?;
    let target = outside.path().join("pwned");
    let id = target.display().to_string();
    // From an id that is no member, and then as if from a member with a path id: both refused.
    for sender in [7, 1] {
        let header = snapshot_header(sender, 2, &id, Some(10));
        assert_error(
            &post_snapshot(&node, header, b"x\n".to_vec()).await?,
            400,
            "peer_refused",
        );
    }
    ensure!(
        std::fs::read_dir(outside.path())?.next().is_none(),
        "a file was written outside the data directory"
    );
    Ok(())
}

fn append_body(node_id: u64, term: u64, prev: Option<u64>, entries: &[u64]) -> Value {
    let log_id = |i: u64| json!({"leader_id": {"term": term, "node_id": node_id}, "index": i});
    json!({
        "vote": {"leader_id": {"term": term, "node_id": node_id}, "committed": true},
        "prev_log_id": prev.map(log_id),
        "leader_commit": null,
        "entries": entries.iter().map(|i| json!({"log_id": log_id(*i), "payload": "Blank"})).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn forged_appends_are_refused_and_the_node_keeps_writing() -> Result<()> {
    let mut node = start_note_node(&[]).await?;
    assert_status(&put_note(&node, "kept", &json!({"v": 1})).await?, 201);
    for body in [
        // A leader that is no member.
        append_body(99, 100, Some(2), &[3]),
        // This node's own id with a later term.
        append_body(1, 100, Some(2), &[3]),
        // A gap in the indexes, a truncation of committed entries.
        append_body(99, 100, Some(2), &[7]),
        append_body(1, 100, Some(0), &[1, 2]),
    ] {
        let reply = node.post_json("/raft/append", &body).await?;
        assert_error(&reply, 400, "peer_refused");
    }
    let vote = json!({"vote": {"leader_id": {"term": u64::MAX, "node_id": 99}, "committed": false},
                      "last_log_id": null});
    assert_error(
        &node.post_json("/raft/vote", &vote).await?,
        400,
        "peer_refused",
    );
    // Still the leader, still writing: no zombie.
    assert_status(&put_note(&node, "after", &json!({"v": 2})).await?, 201);
    assert_survives_restart(&mut node, "kept").await
}

#[tokio::test]
async fn a_forwarded_proposal_with_a_value_that_is_not_json_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let cmd = json!({"actor": "mallory", "at_ms": 1,
        "op": {"PutConfig": {"key": "evil", "schema": "note", "schema_version": 1,
               "plugin_digest": null, "value": "not json {", "precondition": "None"}}});
    let reply = node.post_json("/internal/propose", &cmd).await?;
    assert_status(&reply, 200);
    ensure!(
        reply.body["Err"].get("InvalidCommand").is_some(),
        "expected Forwarded::Err(InvalidCommand), got {reply}"
    );
    assert_error(&node.get_config("evil").await?, 404, "not_found");
    let list = node.get("/v1/configs").await?;
    assert_status(&list, 200);
    ensure!(list.body.is_object(), "the list is JSON");
    Ok(())
}

#[tokio::test]
async fn a_peer_body_past_its_limit_is_refused_without_buffering_it() -> Result<()> {
    let node = start_note_node(&[
        "--max-value-bytes",
        "65536",
        "--max-plugin-bytes",
        "1048576",
        "--max-txn-bytes",
        "65536",
        "--max-peer-body-bytes",
        "12MiB",
    ])
    .await?;
    let body = vec![b' '; 13 << 20];
    for path in ["/raft/append", "/internal/propose", "/internal/add-member"] {
        // The node answers 413 once the limit is passed; a client still sending may see the
        // connection closed before it reads the answer. Either way nothing was buffered past
        // the limit, and the node is up.
        // A client of its own: the node closes that connection, which must not be pooled for
        // the health check after it.
        let once = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let sent = once
            .post(node.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) => assert_eq!(r.status().as_u16(), 413, "{path}"),
            Err(e) => {
                eprintln!("{path}: the node closed the connection while the body was sent: {e:#}")
            }
        }
        assert_status(&node.health().await?, 200);
    }
    assert_status(&node.health().await?, 200);
    Ok(())
}

#[tokio::test]
async fn a_peer_body_limit_below_what_replication_needs_is_a_configuration_error() -> Result<()> {
    let started = Node::start(NodeOptions {
        extra_args: vec!["--max-peer-body-bytes".into(), "1MiB".into()],
        ..NodeOptions::default()
    })
    .await;
    ensure!(started.is_err(), "the node started with a 1 MiB peer limit");
    Ok(())
}

// Finding 10: bodies without bounds.

#[tokio::test]
async fn a_membership_request_past_64_kib_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let big = format!(
        r#"{{"node_id":2,"api":"{}","peer":"x"}}"#,
        "a".repeat(70_000)
    );
    let reply = post_raw(&node, "/v1/cluster/members", big).await?;
    assert_error(&reply, 413, "payload_too_large");
    Ok(())
}

// Finding 11: pages bounded in bytes.

#[tokio::test]
async fn list_history_and_watch_pages_are_bounded_in_bytes() -> Result<()> {
    let node = start_note_node(&["--max-page-bytes", "64KiB"]).await?;
    let from = node.status().await?.revision + 1;
    let blob = "x".repeat(20_000);
    for i in 0..10 {
        assert_status(
            &put_note(&node, &format!("big/{i}"), &json!({"blob": blob})).await?,
            201,
        );
    }
    let list = node.get("/v1/configs?prefix=big/&limit=100").await?;
    assert_status(&list, 200);
    let items = list.body["items"].as_array().unwrap().len();
    ensure!(
        (1..10).contains(&items),
        "one page held {items} items of 20 KB"
    );
    ensure!(
        !list.body["next"].is_null(),
        "a cut page has a cursor: {list}"
    );
    let poll = node
        .get(&format!(
            "/v1/watch?prefix=big/&from_revision={from}&wait=1s"
        ))
        .await?;
    assert_status(&poll, 200);
    let changes = poll.body["changes"].as_array().unwrap().len();
    ensure!(
        (1..10).contains(&changes),
        "one long poll held {changes} changes"
    );
    for _ in 0..5 {
        assert_status(
            &put_note(&node, "big/0", &json!({"blob": blob})).await?,
            200,
        );
    }
    let history = node.get("/v1/configs/big/0/history?limit=100").await?;
    let records = history.body["items"].as_array().unwrap().len();
    ensure!(
        (1..6).contains(&records),
        "one history page held {records} records"
    );
    Ok(())
}

// Finding 13 and the watch limit.

#[tokio::test]
async fn progress_below_100ms_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    assert_error(
        &node.get("/v1/watch?progress=1ns").await?,
        400,
        "malformed_request",
    );
    assert_error(
        &node.get("/v1/watch?progress=99ms").await?,
        400,
        "malformed_request",
    );
    let ok = node
        .client()
        .get(node.url("/v1/watch?progress=100ms"))
        .send()
        .await?;
    assert_eq!(ok.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn watches_past_the_limit_are_refused_with_503() -> Result<()> {
    let node = start_note_node(&["--max-watches", "2"]).await?;
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = node
            .client()
            .get(node.url("/v1/watch?progress=100ms"))
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    assert_error(
        &node.get("/v1/watch?wait=1s").await?,
        503,
        "too_many_watches",
    );
    drop(open);
    // The slots come back when the streams close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = node.get("/v1/watch?wait=100ms").await?;
        if r.status.as_u16() == 200 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no slot came back: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

// Finding 14.

#[tokio::test]
async fn a_last_event_id_at_the_top_of_u64_is_refused_not_wrapped() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let reply = node
        .send(
            node.client()
                .get(node.url("/v1/watch"))
                .header("last-event-id", u64::MAX.to_string()),
        )
        .await?;
    assert_error(&reply, 400, "malformed_request");
    let reply = node
        .send(
            node.client()
                .get(node.url("/v1/watch?wait=100ms"))
                .header("last-event-id", "+1"),
        )
        .await?;
    assert_error(&reply, 400, "malformed_request");
    assert_status(&node.health().await?, 200);
    Ok(())
}

// Finding 15: values come back as they were accepted, or are refused.

#[tokio::test]
async fn numbers_come_back_as_written() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let body = r#"{"schema":"note","schema_version":1,"value":{"big":18446744073709551617,"e":1e2,"f":1.50,"neg":-0}}"#;
    assert_status(
        &node
            .put_config_raw("nums", "application/json", body)
            .await?,
        201,
    );
    let got = node.get_config("nums").await?;
    ensure!(
        got.text()
            .contains(r#""value":{"big":18446744073709551617,"e":1e+2,"f":1.50,"neg":-0}"#),
        "{got}"
    );
    Ok(())
}

#[tokio::test]
async fn a_number_beyond_a_double_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let body = r#"{"schema":"note","schema_version":1,"value":{"n":1e400}}"#;
    let reply = node.put_config_raw("n", "application/json", body).await?;
    assert_error(&reply, 400, "number_out_of_range");
    Ok(())
}

#[tokio::test]
async fn duplicate_object_keys_are_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let body = r#"{"schema":"note","schema_version":1,"value":{"a":1,"a":2}}"#;
    let reply = node.put_config_raw("dup", "application/json", body).await?;
    assert_error(&reply, 400, "duplicate_key");
    let body = r#"{"schema":"note","schema":"other","schema_version":1,"value":{}}"#;
    let reply = node.put_config_raw("dup", "application/json", body).await?;
    assert_error(&reply, 400, "duplicate_key");
    let txn = r#"{"ops":[{"op":"delete","key":"x","key":"y"}]}"#;
    assert_error(
        &post_raw(&node, "/v1/txn", txn).await?,
        400,
        "duplicate_key",
    );
    assert_error(&node.get_config("dup").await?, 404, "not_found");
    Ok(())
}

// Finding 16.

#[tokio::test]
async fn a_second_schema_part_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    use reqwest::multipart::{Form, Part};
    let form = Form::new()
        .part("schema", Part::bytes(br#"{"type":"object"}"#.to_vec()))
        .part("schema", Part::bytes(br#"{"type":"string"}"#.to_vec()));
    let reply = node
        .send(
            node.client()
                .put(node.url("/v1/schemas/twice/versions/1"))
                .multipart(form),
        )
        .await?;
    assert_error(&reply, 400, "malformed_request");
    assert_error(
        &node.get_schema_version("twice", 1).await?,
        404,
        "not_found",
    );
    Ok(())
}

#[tokio::test]
async fn versions_and_ids_have_one_spelling() -> Result<()> {
    let node = start_note_node(&[]).await?;
    for version in ["+1", "01", "1.0", "1e0"] {
        let reply = node
            .get(&format!("/v1/schemas/note/versions/{version}"))
            .await?;
        assert_error(&reply, 400, "invalid_schema_version");
    }
    assert_error(
        &node.get("/v1/schemas/note/versions/%31").await?,
        400,
        "invalid_path",
    );
    assert_status(&node.get("/v1/schemas/note/versions/1").await?, 200);
    let reply = node.get("/v1/configs/x?revision=01").await?;
    assert_status(&reply, 400);
    let reply = node
        .send(node.client().delete(node.url("/v1/cluster/members/+2")))
        .await?;
    assert_error(&reply, 400, "malformed_request");
    let reply = node.get("/v1/schemas/note/migrations/01").await?;
    assert_error(&reply, 400, "malformed_request");
    Ok(())
}

// Finding 12: JSON Schema evaluation with a budget.

/// `$defs` a0..a{doublings}, each but the last applying the next one twice: about
/// 2^doublings evaluations per value.
fn doubling_schema(doublings: usize) -> Value {
    let mut defs = serde_json::Map::new();
    for i in 0..doublings {
        let r = json!({"$ref": format!("#/$defs/a{}", i + 1)});
        defs.insert(format!("a{i}"), json!({"allOf": [r.clone(), r]}));
    }
    defs.insert(format!("a{doublings}"), json!({"type": "string"}));
    json!({"$defs": defs, "$ref": "#/$defs/a0"})
}

#[tokio::test]
async fn an_exploding_schema_is_refused_at_registration() -> Result<()> {
    let node = start_note_node(&[]).await?;
    for levels in [28, 20, 8] {
        let reply = node
            .register_schema("boom", 1, doubling_schema(levels), None)
            .await?;
        assert_error(&reply, 400, "schema_too_complex");
    }
    // Seven doublings are within the bound.
    assert_status(
        &node
            .register_schema("boom", 1, doubling_schema(7), None)
            .await?,
        201,
    );
    Ok(())
}

#[tokio::test]
async fn a_document_failing_everywhere_gets_a_bounded_answer_and_the_node_stays_responsive()
-> Result<()> {
    let node = start_note_node(&[]).await?;
    assert_status(
        &node
            .register_schema("costly", 1, doubling_schema(7), None)
            .await?,
        201,
    );
    // 100,000 numbers where strings are expected: 100,000 × 510 failing evaluations.
    let doc = Value::Array((0..100_000u64).map(Value::from).collect());
    let writes: Vec<_> = (0..2)
        .map(|i| {
            let api = node.api().clone();
            let doc = doc.clone();
            tokio::spawn(async move { api.put_config(&format!("c/{i}"), "costly", 1, &doc).await })
        })
        .collect();
    // Meanwhile the node answers at once (a probe stalled /v1/health for 17 s).
    let health = tokio::time::timeout(Duration::from_secs(5), node.health()).await;
    ensure!(
        matches!(health, Ok(Ok(ref r)) if r.status.as_u16() == 200),
        "health: {health:?}"
    );
    for w in writes {
        let reply = w.await??;
        assert_error(&reply, 422, "validation_failed");
        ensure!(
            reply.bytes.len() < 64 << 10,
            "a {} byte answer",
            reply.bytes.len()
        );
        ensure!(!reply.violations().is_empty() && reply.violations().len() <= 101);
    }
    // A small failing document against a cheap schema still lists every violation (up to 100),
    // then how many more there were.
    let strings = json!({"type": "array", "items": {"type": "string"}});
    assert_status(
        &node.register_schema("strings", 1, strings, None).await?,
        201,
    );
    let small = Value::Array((0..150u64).map(Value::from).collect());
    let reply = node.put_config("c/small", "strings", 1, &small).await?;
    assert_error(&reply, 422, "validation_failed");
    let violations = reply.violations();
    assert_eq!(violations.len(), 101);
    assert_eq!(violations[100]["code"], "violations_left_out");
    ensure!(
        violations[100]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("50 more")),
        "{}",
        violations[100]
    );
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("more than 100"), "{message}");
    Ok(())
}

// The largest input of each route, at the limit and one past it.

/// A value whose compact JSON is exactly `bytes` long.
fn value_of_size(bytes: usize) -> Value {
    json!({"s": "x".repeat(bytes - r#"{"s":""}"#.len())})
}

#[tokio::test]
async fn the_largest_input_of_every_route_is_accepted_and_survives_a_restart() -> Result<()> {
    let mut node = start_note_node(&[
        "--max-value-bytes",
        "65536",
        "--max-txn-ops",
        "4",
        "--max-txn-bytes",
        "131072",
    ])
    .await?;
    let largest = value_of_size(65536);
    assert_status(&put_note(&node, "big/put", &largest).await?, 201);
    assert_error(
        &put_note(&node, "big/past", &value_of_size(65537)).await?,
        413,
        "payload_too_large",
    );
    let put = |key: &str, value: &Value| json!({"op": "put", "key": key, "schema": "note", "schema_version": 1, "value": value});
    let at_limit = json!({"ops": [put("big/t1", &largest), put("big/t2", &largest)]});
    assert_status(&node.post_json("/v1/txn", &at_limit).await?, 200);
    let past = json!({"ops": [put("big/t3", &largest), put("big/t4", &largest),
                              put("big/t5", &json!({}))]});
    assert_error(
        &node.post_json("/v1/txn", &past).await?,
        413,
        "payload_too_large",
    );
    let ops: Vec<Value> = (0..5)
        .map(|i| json!({"op": "delete", "key": format!("d/{i}")}))
        .collect();
    assert_error(
        &node.post_json("/v1/txn", &json!({"ops": ops})).await?,
        400,
        "txn_too_large",
    );
    node.kill()?;
    node.restart().await?;
    for key in ["big/put", "big/t1", "big/t2"] {
        assert_eq!(node.get_config(key).await?.body["value"], largest, "{key}");
    }
    assert_error(&node.get_config("big/t3").await?, 404, "not_found");
    Ok(())
}

// The proposal queue (issue 15): bounded, refused at once when full.

#[tokio::test]
async fn writes_within_the_pending_proposal_limit_all_succeed() -> Result<()> {
    let node = start_note_node(&["--max-pending-proposals", "1"]).await?;
    // One write at a time never finds the queue full.
    for i in 0..20 {
        let r = node
            .put_config(&format!("queue/seq-{i}"), "note", 1, &json!({"i": i}))
            .await?;
        assert_status(&r, 201);
    }
    Ok(())
}

#[tokio::test]
async fn writes_past_the_pending_proposal_limit_get_503_overloaded_and_are_not_applied()
-> Result<()> {
    let node = start_note_node(&["--max-pending-proposals", "1"]).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut applied, mut refused) = (Vec::new(), Vec::new());
    // Bursts of concurrent writes until the queue has overflowed at least once (one queued
    // write and two batches in flight are all a limit of 1 lets through).
    for round in 0.. {
        let writes = (0..200).map(|i| {
            let key = format!("queue/r{round}-{i}");
            let node = &node;
            async move {
                let r = node.put_config(&key, "note", 1, &json!({"i": i})).await?;
                anyhow::Ok((key, r))
            }
        });
        for result in futures::future::join_all(writes).await {
            let (key, r) = result?;
            match r.status.as_u16() {
                201 => applied.push(key),
                _ => {
                    assert_error(&r, 503, "overloaded");
                    refused.push(key);
                }
            }
        }
        if !refused.is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{} writes and none overloaded",
            applied.len()
        );
    }
    // Nothing of a refused write was applied; every accepted one was.
    for key in &refused {
        assert_error(&node.get_config(key).await?, 404, "not_found");
    }
    for key in &applied {
        assert_status(&node.get_config(key).await?, 200);
    }
    Ok(())
}

// Request bodies are JSON objects: serde would also read a struct from an array of its
// fields, a second spelling that no client should come to rely on.

#[tokio::test]
async fn a_request_body_that_is_an_array_of_the_fields_is_refused() -> Result<()> {
    let node = start_note_node(&[]).await?;
    let reply = node
        .put_config_raw("arr", "application/json", r#"["note", 1, {"a": 1}]"#)
        .await?;
    assert_error(&reply, 400, "malformed_request");
    assert_error(&node.get_config("arr").await?, 404, "not_found");
    let reply = node
        .post_json("/v1/cluster/members", &json!([9, "http://a", "http://b"]))
        .await?;
    assert_error(&reply, 400, "malformed_request");
    // The object spelling of the same write is accepted.
    let reply = node
        .put_config_raw(
            "arr",
            "application/json",
            r#"{"schema": "note", "schema_version": 1, "value": {"a": 1}}"#,
        )
        .await?;
    assert_status(&reply, 201);
    Ok(())
}
