//! Version history, time travel, retention and rollback, on real `scarab serve` processes.

mod harness;

use anyhow::{Context as _, Result, ensure};
use scarab_client::HistoryOptions;
use scarab_client::types::{HistoryPage, PutConfig};
use serde_json::{Value, json};

use harness::{Api, Node, NodeOptions, WriteOpts, assert_status, plugin_wasm};

async fn note_node() -> Result<Node> {
    harness::start_note_node(&[]).await
}

async fn put(api: &Api, key: &str, value: Value) -> Result<u64> {
    let written = api
        .typed()
        .put(key, &PutConfig::new("note", 1, value))
        .await?;
    Ok(written.revision)
}

/// One page of the key's history.
async fn history(api: &Api, key: &str, opts: HistoryOptions) -> Result<HistoryPage> {
    Ok(api.typed().history(key, &opts).await?.into_inner())
}

fn revisions(page: &HistoryPage) -> Vec<u64> {
    page.items.iter().map(|i| i.meta.revision).collect()
}

#[tokio::test]
async fn every_revision_of_a_key_is_kept_newest_first_deletes_included() -> Result<()> {
    let node = note_node().await?;
    let r1 = put(node.api(), "h/a", json!({"n": 1})).await?;
    let r2 = put(node.api(), "h/a", json!({"n": 2})).await?;
    let deleted = node.delete_config("h/a", &WriteOpts::new()).await?;
    assert_status(&deleted, 200);
    let r3 = deleted.body["revision"].as_u64().context("revision")?;
    let r4 = put(node.api(), "h/a", json!({"n": 4})).await?;
    // Another key's changes are not in this one's history.
    put(node.api(), "h/ab", json!({"n": 0})).await?;

    let page = history(node.api(), "h/a", HistoryOptions::new()).await?;
    assert_eq!(revisions(&page), [r4, r3, r2, r1], "{page:?}");
    let items = &page.items;
    assert_eq!(items[0].value, json!({"n": 4}));
    assert!(items[1].deleted, "{page:?}");
    assert_eq!(items[1].value, Value::Null);
    assert_eq!(items[2].value, json!({"n": 2}));
    assert_eq!(items[3].meta.key_version, 1);
    assert_eq!(page.compacted_through, None);
    Ok(())
}

#[tokio::test]
async fn history_pages_go_back_with_next_before() -> Result<()> {
    let node = note_node().await?;
    let mut written = Vec::new();
    for n in 0..5 {
        written.push(put(node.api(), "h/p", json!({ "n": n })).await?);
    }
    written.reverse();
    let pages = HistoryOptions::new().limit(2);
    let first = history(node.api(), "h/p", pages.clone()).await?;
    assert_eq!(revisions(&first), written[..2]);
    let before = first.next_before.context("next_before")?;
    let second = history(node.api(), "h/p", pages.clone().before(before)).await?;
    assert_eq!(revisions(&second), written[2..4]);
    let before = second.next_before.context("next_before")?;
    let last = history(node.api(), "h/p", pages.before(before)).await?;
    assert_eq!(revisions(&last), written[4..]);
    assert_eq!(last.next_before, None);
    Ok(())
}

#[tokio::test]
async fn a_read_at_a_revision_returns_the_key_as_it_was_then() -> Result<()> {
    let node = note_node().await?;
    let before_creation = put(node.api(), "h/other", json!({})).await?;
    let r1 = put(node.api(), "h/t", json!({"n": 1})).await?;
    let between = put(node.api(), "h/other", json!({"x": 1})).await?;
    let r2 = put(node.api(), "h/t", json!({"n": 2})).await?;
    let deleted = node.delete_config("h/t", &WriteOpts::new()).await?;
    let r3 = deleted.body["revision"].as_u64().context("revision")?;

    let at = |rev: u64| {
        let api = node.api().clone();
        async move { api.get(&format!("/v1/configs/h/t?revision={rev}")).await }
    };
    let first = at(r1).await?;
    assert_status(&first, 200);
    assert_eq!(first.body["value"], json!({"n": 1}));
    assert_eq!(first.body["revision"], r1);
    assert_eq!(at(between).await?.body["value"], json!({"n": 1}));
    assert_eq!(at(r2).await?.body["value"], json!({"n": 2}));
    assert_status(&at(before_creation).await?, 404);
    assert_status(&at(r3).await?, 404);
    let future = at(r3 + 100).await?;
    assert_status(&future, 400);
    Ok(())
}

#[tokio::test]
async fn a_revision_dropped_by_retention_is_a_clear_error_naming_the_oldest_kept() -> Result<()> {
    let node = note_node().await?;
    let set = node
        .send(
            node.client()
                .put(node.url("/v1/settings/history"))
                .json(&json!({"keep": 3})),
        )
        .await?;
    assert_status(&set, 200);
    let mut revs = Vec::new();
    for n in 0..6 {
        revs.push(put(node.api(), "h/r", json!({ "n": n })).await?);
    }
    let page = history(node.api(), "h/r", HistoryOptions::new()).await?;
    assert_eq!(revisions(&page), [revs[5], revs[4], revs[3]], "{page:?}");
    assert_eq!(page.compacted_through, Some(revs[2]));
    let gone = node
        .get(&format!("/v1/configs/h/r?revision={}", revs[1]))
        .await?;
    assert_status(&gone, 410);
    ensure!(gone.error_code() == Some("revision_compacted"), "{gone}");
    ensure!(
        gone.text()
            .contains(&format!("oldest revision kept is {}", revs[3])),
        "{gone}"
    );
    let kept = node
        .get(&format!("/v1/configs/h/r?revision={}", revs[3]))
        .await?;
    assert_eq!(kept.body["value"], json!({"n": 3}));
    let settings = node.get("/v1/settings/history").await?;
    assert_eq!(settings.body, json!({"keep": 3, "watch_window": 100_000}));
    Ok(())
}

#[tokio::test]
async fn revisions_older_than_the_maximum_age_are_dropped_but_live_values_stay() -> Result<()> {
    let node = note_node().await?;
    let old = put(node.api(), "age/a", json!({"n": 1})).await?;
    put(node.api(), "age/a", json!({"n": 2})).await?;
    let live = put(node.api(), "age/b", json!({"n": 1})).await?;
    let set = node
        .send(
            node.client()
                .put(node.url("/v1/settings/history"))
                .json(&json!({"keep": 100, "max_age_seconds": 1})),
        )
        .await?;
    assert_status(&set, 200);
    // Retention runs with the clock of each new change: keep changing something else until
    // the old revision is gone.
    let mut n = 0;
    harness::wait_until(
        std::time::Duration::from_secs(30),
        "the old revision to age out",
        || {
            n += 1;
            let api = node.api().clone();
            async move {
                let _ = api
                    .put_config("age/tick", "note", 1, &json!({ "n": n }))
                    .await;
                api.get(&format!("/v1/configs/age/a?revision={old}"))
                    .await
                    .is_ok_and(|r| r.status.as_u16() == 410)
            }
        },
    )
    .await?;
    // The live value of a key is kept however old it is, but a watch cannot start at or
    // before a revision the age retention swept.
    let b = node
        .get(&format!("/v1/configs/age/b?revision={live}"))
        .await?;
    assert_eq!(b.body["value"], json!({"n": 1}), "{b}");
    let watch = node
        .get(&format!("/v1/watch?from_revision={old}&wait=1s"))
        .await?;
    harness::assert_error(&watch, 410, "revision_compacted");
    let settings = node.get("/v1/settings/history").await?;
    assert_eq!(
        settings.body,
        json!({"keep": 100, "max_age_seconds": 1, "watch_window": 100_000})
    );
    Ok(())
}

#[tokio::test]
async fn a_rollback_writes_a_new_revision_with_the_old_value() -> Result<()> {
    let node = note_node().await?;
    let r1 = put(node.api(), "h/b", json!({"n": 1})).await?;
    let r2 = put(node.api(), "h/b", json!({"n": 2})).await?;
    let rolled = node
        .post_json("/v1/configs/h/b/rollback", &json!({ "revision": r1 }))
        .await?;
    assert_status(&rolled, 200);
    assert_eq!(rolled.body["rolled_back_to"], r1);
    let r3 = rolled.body["revision"].as_u64().context("revision")?;
    ensure!(r3 > r2, "a new revision: {rolled}");
    let now = node.get_config("h/b").await?;
    assert_eq!(now.body["value"], json!({"n": 1}));
    assert_eq!(now.body["key_version"], 3);
    assert_eq!(
        revisions(&history(node.api(), "h/b", HistoryOptions::new()).await?),
        [r3, r2, r1]
    );
    Ok(())
}

#[tokio::test]
async fn a_rollback_to_a_value_that_no_longer_validates_is_refused_with_its_violations()
-> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let schema = |field: &str| json!({"type": "object", "required": [field]});
    assert_status(
        &node.register_schema("chain", 1, schema("a"), None).await?,
        201,
    );
    assert_status(
        &node
            .register_schema("chain", 2, schema("b"), Some(&plugin_wasm("chain_v2")))
            .await?,
        201,
    );
    // Valid at v1; at v2 (where the key is now) it would be b = -1, which v2 refuses.
    let old = node
        .put_config("h/c", "chain", 1, &json!({"a": -1}))
        .await?;
    assert_status(&old, 201);
    assert_status(
        &node.put_config("h/c", "chain", 2, &json!({"b": 5})).await?,
        200,
    );
    let refused = node
        .post_json(
            "/v1/configs/h/c/rollback",
            &json!({ "revision": old.revision() }),
        )
        .await?;
    assert_status(&refused, 422);
    ensure!(
        refused.error_code() == Some("conversion_failed"),
        "{refused}"
    );
    assert_eq!(
        refused.violations()[0]["code"],
        "chain-negative",
        "{refused}"
    );
    assert_eq!(node.get_config("h/c").await?.body["value"], json!({"b": 5}));

    // A value that converts and validates comes back at the key's current version.
    let good = node.put_config("h/c", "chain", 1, &json!({"a": 7})).await?;
    assert_status(
        &node.put_config("h/c", "chain", 2, &json!({"b": 8})).await?,
        200,
    );
    let rolled = node
        .post_json(
            "/v1/configs/h/c/rollback",
            &json!({ "revision": good.revision() }),
        )
        .await?;
    assert_status(&rolled, 200);
    let now = node.get_config("h/c").await?;
    assert_eq!(now.body["schema_version"], 2);
    assert_eq!(now.body["value"], json!({"b": 7}));
    Ok(())
}

#[tokio::test]
async fn keys_ending_in_a_sub_resource_name_are_refused() -> Result<()> {
    let node = note_node().await?;
    // The path names the key's history or rollback, which take no PUT: 405, saying why.
    for key in ["h/history", "h/rollback"] {
        let reply = node.put_config(key, "note", 1, &json!({})).await?;
        assert_status(&reply, 405);
        ensure!(reply.error_code() == Some("method_not_allowed"), "{reply}");
        ensure!(
            reply.text().contains("cannot be `history` or `rollback`"),
            "{reply}"
        );
    }
    // In a transaction, where no path is involved, the key itself is refused.
    let txn = node
        .post_json(
            "/v1/txn",
            &json!({"ops": [{"op": "put", "key": "h/history", "schema": "note",
                             "schema_version": 1, "value": {}}]}),
        )
        .await?;
    assert_status(&txn, 400);
    ensure!(txn.error_code() == Some("invalid_key"), "{txn}");
    Ok(())
}
