//! Transactions (`POST /v1/txn`) on real `scarab serve` processes: conditions, validation of
//! every put, one revision for all operations or none, and atomicity under concurrent
//! writers.

mod harness;

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use scarab_client::HistoryOptions;
use scarab_client::types::{Condition, PutConfig, TxnOp, TxnRequest};
use serde_json::{Value, json};

use harness::{Api, Node, NodeOptions, Reply, assert_error, assert_status};

const NOTE_SCHEMA: &str = "note";

async fn note_node(args: &[&str]) -> Result<Node> {
    let node = Node::start(NodeOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await?;
    let schema = json!({"type": "object", "required": ["n"],
                        "properties": {"n": {"type": "integer", "minimum": 0}}});
    assert_status(
        &node.register_schema(NOTE_SCHEMA, 1, schema, None).await?,
        201,
    );
    Ok(node)
}

async fn txn(api: &Api, body: Value) -> Result<Reply> {
    api.post_json("/v1/txn", &body).await
}

fn put_op(key: &str, n: i64) -> Value {
    json!({"op": "put", "key": key, "schema": NOTE_SCHEMA, "schema_version": 1, "value": {"n": n}})
}

async fn put(api: &Api, key: &str, n: i64) -> Result<u64> {
    let put = PutConfig::new(NOTE_SCHEMA, 1, json!({ "n": n }));
    Ok(api.typed().put(key, &put).await?.revision)
}

#[tokio::test]
async fn a_transaction_applies_every_put_and_delete_at_one_revision() -> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let old = put(api, "t/old", 1).await?;
    let reply = txn(
        api,
        json!({
            "conditions": [{"key": "t/old", "revision": old}, {"key": "t/new", "exists": false}],
            "ops": [put_op("t/new", 1), put_op("t/other", 2), {"op": "delete", "key": "t/old"}]
        }),
    )
    .await?;
    assert_status(&reply, 200);
    let revision = reply.body["revision"].as_u64().context("revision")?;
    let results = reply.body["results"].as_array().context("results")?;
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["revision"] == revision), "{reply}");
    assert_eq!(results[2]["op"], "delete");
    assert_eq!(
        api.get_config("t/new").await?.body["value"],
        json!({"n": 1})
    );
    assert_error(&api.get_config("t/old").await?, 404, "not_found");
    assert_eq!(node.status().await?.revision, revision);
    Ok(())
}

#[tokio::test]
async fn a_transaction_whose_condition_fails_changes_nothing_and_names_the_condition() -> Result<()>
{
    let node = note_node(&[]).await?;
    let api = node.api();
    put(api, "t/a", 5).await?;
    let before = node.status().await?.revision;
    let reply = txn(
        api,
        json!({
            "conditions": [
                {"key": "t/a", "pointer": "/n", "equals": 5},
                {"key": "t/a", "pointer": "/n", "equals": 6}
            ],
            "ops": [put_op("t/a", 7), put_op("t/b", 1)]
        }),
    )
    .await?;
    assert_error(&reply, 412, "condition_failed");
    let failed = reply.body["error"]["report"]["failed"]
        .as_array()
        .context("failed conditions")?;
    assert_eq!(failed.len(), 1, "{reply}");
    assert_eq!(failed[0]["index"], 1);
    assert_eq!(api.get_config("t/a").await?.body["value"], json!({"n": 5}));
    assert_error(&api.get_config("t/b").await?, 404, "not_found");
    assert_eq!(node.status().await?.revision, before);
    Ok(())
}

#[tokio::test]
async fn a_transaction_with_an_invalid_put_is_refused_with_violations_under_its_operation()
-> Result<()> {
    let node = note_node(&[]).await?;
    let api = node.api();
    let reply = txn(
        api,
        json!({"ops": [put_op("t/ok", 1), put_op("t/bad", -1)]}),
    )
    .await?;
    assert_error(&reply, 422, "validation_failed");
    let paths: Vec<_> = reply
        .violations()
        .iter()
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .collect();
    assert_eq!(paths, ["/ops/1/value/n"], "{reply}");
    assert_error(&api.get_config("t/ok").await?, 404, "not_found");
    Ok(())
}

#[tokio::test]
async fn malformed_and_oversized_transactions_are_refused() -> Result<()> {
    let node = note_node(&["--max-txn-ops", "2"]).await?;
    let api = node.api();
    let three = json!({"ops": [put_op("a", 1), put_op("b", 1), put_op("c", 1)]});
    assert_error(&txn(api, three).await?, 400, "txn_too_large");
    let dup = json!({"ops": [put_op("a", 1), {"op": "delete", "key": "a"}]});
    assert_error(&txn(api, dup).await?, 400, "malformed_request");
    let empty = json!({"ops": []});
    assert_error(&txn(api, empty).await?, 400, "txn_too_large");
    let two_tests = json!({"conditions": [{"key": "a", "revision": 1, "exists": true}],
                           "ops": [put_op("a", 1)]});
    assert_error(&txn(api, two_tests).await?, 400, "malformed_request");
    let missing = json!({"ops": [{"op": "delete", "key": "nope"}]});
    assert_error(&txn(api, missing).await?, 404, "not_found");
    Ok(())
}

/// Concurrent transfers between two accounts, each a transaction conditioned on both
/// revisions: the total never changes, and both accounts always change together.
#[tokio::test]
async fn transactions_are_atomic_under_concurrent_writers() -> Result<()> {
    let node = note_node(&[]).await?;
    let client = node.typed().clone();
    put(node.api(), "acct/a", 1000).await?;
    put(node.api(), "acct/b", 0).await?;
    let n = |value: &Value| value["n"].as_i64().context("n");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut refused = 0;
            while done < 10 {
                let a = client.get("acct/a").await?;
                let b = client.get("acct/b").await?;
                let transfer = TxnRequest::new()
                    .when(Condition::revision("acct/a", a.meta.revision))
                    .when(Condition::revision("acct/b", b.meta.revision))
                    .op(TxnOp::put(
                        "acct/a",
                        NOTE_SCHEMA,
                        1,
                        json!({"n": n(&a.value)? - 1}),
                    ))
                    .op(TxnOp::put(
                        "acct/b",
                        NOTE_SCHEMA,
                        1,
                        json!({"n": n(&b.value)? + 1}),
                    ));
                match client.txn(&transfer).await {
                    Ok(_) => done += 1,
                    Err(e) if e.api().is_some_and(|e| e.status == 412) => refused += 1,
                    Err(e) => anyhow::bail!("unexpected {e}"),
                }
            }
            anyhow::Ok(refused)
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await??;
    }
    let a = client.get("acct/a").await?.value["n"].clone();
    let b = client.get("acct/b").await?.value["n"].clone();
    assert_eq!(
        (a, b),
        (json!(920), json!(80)),
        "{refused} refused attempts"
    );
    // Every revision of one account is a revision of the other: they moved together.
    let revs = |key: &'static str| {
        let history = client.history_all(key, HistoryOptions::new().limit(1000));
        async move {
            let items: Vec<_> = history.try_collect().await?;
            anyhow::Ok(
                items
                    .iter()
                    .map(|i| i.meta.revision)
                    .collect::<BTreeSet<_>>(),
            )
        }
    };
    let (ra, rb) = (revs("acct/a").await?, revs("acct/b").await?);
    let together: Vec<_> = ra.intersection(&rb).collect();
    assert_eq!(together.len(), 80, "a: {ra:?} b: {rb:?}");
    assert_eq!(ra.len(), 81);
    assert_eq!(rb.len(), 81);
    Ok(())
}
