//! Single-node behaviour of a real `scarab serve` process, against the HTTP contract
//! (the README's API tour). Each test starts its own node.
//!
//! Needs the plugins: `cargo plugins` before `cargo test`.

mod harness;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use scarab_client::types::{ConfigEntry, Role};
use serde_json::{Value, json};

use harness::{
    ExpectedViolation, KINDS, Node, NodeOptions, Reply, STORE, WriteOpts, assert_digest,
    assert_error, assert_has_violation, assert_status, assert_timestamp, assert_violation_shapes,
    config_body, plugin_wasm, wait_until,
};

/// A plugin-free schema accepting any object, for tests of storage rather than validation.
const NOTE: &str = "note";

/// Upper bound for a request served by a misbehaving plugin: catches hangs, not a performance
/// assertion.
const HANG_BOUND: Duration = Duration::from_secs(10);

async fn start() -> Result<Node> {
    Node::start(NodeOptions::default()).await
}

/// Registers `note` v1 = {"type":"object"} without plugin.
async fn register_note(node: &Node) -> Result<()> {
    let reply = node
        .register_schema(NOTE, 1, json!({"type": "object"}), None)
        .await?;
    assert_status(&reply, 201);
    Ok(())
}

/// Registers the `store` kind (schema file + plugin) and returns its plugin digest.
async fn register_store(node: &Node) -> Result<String> {
    let reply = node.register_kind(STORE).await?;
    assert_status(&reply, 201);
    Ok(assert_digest(&reply.body["plugin_digest"]))
}

/// Registers the hostile plugin under `name` v1 with `schema` and returns its digest.
async fn register_hostile(node: &Node, name: &str, schema: Value) -> Result<String> {
    let reply = node
        .register_schema(name, 1, schema, Some(&plugin_wasm("hostile")))
        .await?;
    assert_status(&reply, 201);
    Ok(assert_digest(&reply.body["plugin_digest"]))
}

async fn put_note(node: &Node, key: &str, value: Value) -> Result<harness::Reply> {
    node.put_config(key, NOTE, 1, &value).await
}

/// The keys of listed configs, in order.
fn keys(items: &[ConfigEntry]) -> Vec<&str> {
    items.iter().map(|item| item.meta.key.as_str()).collect()
}

/// The keys of the items of a list page, in order.
fn keys_of(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            item["key"]
                .as_str()
                .unwrap_or_else(|| panic!("list item without key: {item}"))
                .to_string()
        })
        .collect()
}

/// Nothing at all is stored under any key.
async fn assert_no_configs(node: &Node) -> Result<()> {
    let items = node.list_all(None, None).await?;
    assert!(
        items.is_empty(),
        "expected no configs, found {:?}",
        keys(&items)
    );
    Ok(())
}

/// The metadata fields of a config (write reply or read without "value").
fn metadata(body: &Value) -> Value {
    let mut m = body.clone();
    if let Some(obj) = m.as_object_mut() {
        obj.remove("value");
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Writes and reads.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn created_config_reads_back_with_full_metadata() -> Result<()> {
    let node = start().await?;
    let digest = register_store(&node).await?;
    let sample = STORE.valid_sample();

    let body = config_body("store", 1, &sample.value);
    let created = node
        .put_config_with(&sample.key, &body, &WriteOpts::new().actor("alice"))
        .await?;
    assert_status(&created, 201);
    let m = &created.body;
    assert_eq!(m["key"], json!(sample.key), "{created}");
    assert_eq!(m["schema"], json!("store"), "{created}");
    assert_eq!(m["schema_version"], json!(1), "{created}");
    assert_eq!(m["key_version"], json!(1), "{created}");
    let revision = created.revision();
    assert!(revision >= 1);
    assert_timestamp(&m["created_at"]);
    assert_timestamp(&m["updated_at"]);
    assert_eq!(m["created_at"], m["updated_at"], "a new key: {created}");
    assert_eq!(m["created_by"], json!("alice"), "{created}");
    assert_eq!(m["updated_by"], json!("alice"), "{created}");
    assert_eq!(m["plugin_digest"], json!(digest), "{created}");
    assert_eq!(
        created.etag(),
        Some(format!("\"{revision}\"").as_str()),
        "{created}"
    );

    let read = node.get_config(&sample.key).await?;
    assert_status(&read, 200);
    assert_eq!(read.body["value"], sample.value, "{read}");
    assert_eq!(metadata(&read.body), metadata(&created.body), "{read}");
    assert_eq!(
        read.etag(),
        Some(format!("\"{revision}\"").as_str()),
        "{read}"
    );
    let applied = read
        .applied_revision()
        .ok_or_else(|| anyhow!("no X-Scarab-Revision header: {read:?}"))?;
    assert!(
        applied >= revision,
        "X-Scarab-Revision {applied} < {revision}"
    );
    Ok(())
}

#[tokio::test]
async fn update_bumps_key_version_and_revision_and_keeps_creation_metadata() -> Result<()> {
    let node = start().await?;
    let digest = register_store(&node).await?;
    let examples = STORE.examples();
    let first = &examples.valid[0];
    // Another valid sample for the same key if there is one (the store plugin ties the value
    // to its key), else the same value again: still an update.
    let second = examples.valid[1..]
        .iter()
        .find(|s| s.key == first.key)
        .unwrap_or(first);

    let created = node
        .put_config_with(
            &first.key,
            &config_body("store", 1, &first.value),
            &WriteOpts::new().actor("alice"),
        )
        .await?;
    assert_status(&created, 201);
    let updated = node
        .put_config_with(
            &first.key,
            &config_body("store", 1, &second.value),
            &WriteOpts::new().actor("bob"),
        )
        .await?;
    assert_status(&updated, 200);
    let (c, u) = (&created.body, &updated.body);
    assert_eq!(u["key_version"], json!(2), "{updated}");
    assert!(
        updated.revision() > created.revision(),
        "{created} then {updated}"
    );
    assert_eq!(u["created_at"], c["created_at"], "{updated}");
    assert_eq!(u["created_by"], json!("alice"), "{updated}");
    assert_eq!(u["updated_by"], json!("bob"), "{updated}");
    assert_timestamp(&u["updated_at"]);
    assert!(
        u["updated_at"].as_str() >= c["updated_at"].as_str(),
        "updated_at went back: {created} then {updated}"
    );
    assert_eq!(u["plugin_digest"], json!(digest), "{updated}");
    assert_eq!(
        updated.etag(),
        Some(format!("\"{}\"", updated.revision()).as_str())
    );

    let read = node.get_config(&first.key).await?;
    assert_status(&read, 200);
    assert_eq!(read.body["value"], second.value, "{read}");
    assert_eq!(metadata(&read.body), metadata(u), "{read}");
    Ok(())
}

#[tokio::test]
async fn default_actor_is_anonymous() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let created = put_note(&node, "who/me", json!({})).await?;
    assert_status(&created, 201);
    assert_eq!(created.body["created_by"], json!("anonymous"), "{created}");
    assert_eq!(created.body["updated_by"], json!("anonymous"), "{created}");
    assert_eq!(created.body["plugin_digest"], Value::Null, "{created}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Validation against the shipped samples.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_valid_sample_is_accepted() -> Result<()> {
    let node = start().await?;
    let mut written = HashSet::new();
    for kind in KINDS {
        let registered = node.register_kind(*kind).await?;
        assert_status(&registered, 201);
        for sample in kind.examples().valid {
            let reply = node
                .put_config(&sample.key, kind.schema, kind.version, &sample.value)
                .await?;
            // Two samples may share a key: the second write is then an update.
            let expected = if written.insert(sample.key.clone()) {
                201
            } else {
                200
            };
            assert_eq!(
                reply.status.as_u16(),
                expected,
                "{} sample {:?}: {reply}",
                kind.schema,
                sample.name
            );
            let read = node.get_config(&sample.key).await?;
            assert_status(&read, 200);
            assert_eq!(read.body["value"], sample.value, "sample {:?}", sample.name);
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_invalid_sample_is_refused_with_its_violations_and_not_stored() -> Result<()> {
    let node = start().await?;
    for kind in KINDS {
        let registered = node.register_kind(*kind).await?;
        assert_status(&registered, 201);
        for sample in kind.examples().invalid {
            let context = format!("{} sample {:?}", kind.schema, sample.name);
            let reply = node
                .put_config(&sample.key, kind.schema, kind.version, &sample.value)
                .await?;
            assert_error(&reply, 422, "validation_failed");
            let violations = reply.violations();
            assert_violation_shapes(&violations);
            for expected in &sample.violations {
                assert_has_violation(&violations, expected, &context);
            }
            let read = node.get_config(&sample.key).await?;
            assert_error(&read, 404, "not_found");
        }
    }
    assert_no_configs(&node).await
}

#[tokio::test]
async fn schema_and_plugin_violations_are_reported_together() -> Result<()> {
    let node = start().await?;
    let schema = json!({
        "type": "object",
        "properties": {"mode": {"type": "string"}, "count": {"type": "integer"}}
    });
    register_hostile(&node, "checked", schema).await?;

    // The schema refuses /count, the plugin (mode "violation") reports /mode.
    let doc = json!({"mode": "violation", "count": "many"});
    let reply = node.put_config("both/sources", "checked", 1, &doc).await?;
    assert_error(&reply, 422, "validation_failed");
    let violations = reply.violations();
    assert_violation_shapes(&violations);
    let context = "document failing schema and plugin";
    assert_has_violation(
        &violations,
        &ExpectedViolation::new("/count", "schema", None),
        context,
    );
    assert_has_violation(
        &violations,
        &ExpectedViolation::new("/mode", "plugin", Some("hostile")),
        context,
    );
    assert_error(&node.get_config("both/sources").await?, 404, "not_found");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Preconditions.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn if_match_with_the_current_revision_updates() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let created = put_note(&node, "cas/key", json!({"n": 1})).await?;
    assert_status(&created, 201);

    let body = config_body(NOTE, 1, &json!({"n": 2}));
    let opts = WriteOpts::new().if_match(created.revision());
    let updated = node.put_config_with("cas/key", &body, &opts).await?;
    assert_status(&updated, 200);
    assert!(updated.revision() > created.revision());
    assert_eq!(updated.body["key_version"], json!(2), "{updated}");
    let read = node.get_config("cas/key").await?;
    assert_eq!(read.body["value"], json!({"n": 2}), "{read}");
    Ok(())
}

#[tokio::test]
async fn if_match_with_a_stale_revision_is_refused_and_changes_nothing() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let created = put_note(&node, "cas/key", json!({"n": 1})).await?;
    assert_status(&created, 201);
    let updated = put_note(&node, "cas/key", json!({"n": 2})).await?;
    assert_status(&updated, 200);
    let before = node.get_config("cas/key").await?;

    let body = config_body(NOTE, 1, &json!({"n": 3}));
    let stale = WriteOpts::new().if_match(created.revision());
    let refused = node.put_config_with("cas/key", &body, &stale).await?;
    assert_error(&refused, 412, "precondition_failed");

    let after = node.get_config("cas/key").await?;
    assert_status(&after, 200);
    assert_eq!(
        after.body, before.body,
        "the refused write changed the config"
    );
    Ok(())
}

#[tokio::test]
async fn if_match_on_a_missing_key_is_refused() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let body = config_body(NOTE, 1, &json!({}));
    let reply = node
        .put_config_with("cas/absent", &body, &WriteOpts::new().if_match(1))
        .await?;
    assert_error(&reply, 412, "precondition_failed");
    assert_error(&node.get_config("cas/absent").await?, 404, "not_found");
    Ok(())
}

#[tokio::test]
async fn if_none_match_star_creates_only_once() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let create_only = WriteOpts::new().if_none_match_any();

    let first = node
        .put_config_with(
            "once/key",
            &config_body(NOTE, 1, &json!({"n": 1})),
            &create_only,
        )
        .await?;
    assert_status(&first, 201);
    let second = node
        .put_config_with(
            "once/key",
            &config_body(NOTE, 1, &json!({"n": 2})),
            &create_only,
        )
        .await?;
    assert_error(&second, 412, "precondition_failed");

    let read = node.get_config("once/key").await?;
    assert_eq!(read.body["value"], json!({"n": 1}), "{read}");
    assert_eq!(read.body["revision"], first.body["revision"], "{read}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Listing.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_by_prefix_pages_through_exactly_its_keys_in_byte_order() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    // 23 keys under "teams/", chosen so that byte order differs from insertion order and from
    // case-insensitive or numeric order.
    let names = [
        "zz", "z", "y", "x", "m2", "m10", "m1", "b/a", "ab", "a_b", "a-b", "a.b", "a/b/c", "a/b",
        "a", "_x", ".x", "-x", "Z", "A", "9", "0", "b",
    ];
    let team_keys: Vec<String> = names.iter().map(|n| format!("teams/{n}")).collect();
    // Keys the prefix must not include.
    let others = [
        "tenants/a",
        "tenants/b",
        "teams",
        "teamsx/a",
        "team/a",
        "a/teams/x",
    ];
    for key in team_keys.iter().map(String::as_str).chain(others) {
        let reply = put_note(&node, key, json!({"key": key})).await?;
        assert_status(&reply, 201);
    }
    let mut expected = team_keys.clone();
    expected.sort(); // byte order
    assert_eq!(expected.len(), 23);

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let reply = node
            .list_configs(Some("teams/"), Some(10), after.as_deref())
            .await?;
        assert_status(&reply, 200);
        assert!(reply.body["revision"].is_u64(), "no revision in {reply}");
        let items = reply.body["items"]
            .as_array()
            .ok_or_else(|| anyhow!("no items: {reply}"))?
            .clone();
        for item in &items {
            assert_eq!(item["value"], json!({"key": item["key"]}), "{item}");
            assert_eq!(item["key_version"], json!(1), "{item}");
        }
        let keys = keys_of(&items);
        match &reply.body["next"] {
            Value::Null => {
                pages.push(keys);
                break;
            }
            Value::String(next) => {
                assert_eq!(
                    Some(next),
                    keys.last(),
                    "next is not the last key of the page"
                );
                after = Some(next.clone());
                pages.push(keys);
            }
            other => bail!("bad next {other} in {reply}"),
        }
        if pages.len() > 5 {
            bail!("more pages than expected: {pages:?}");
        }
    }
    let expected_pages: Vec<Vec<String>> = expected.chunks(10).map(<[String]>::to_vec).collect();
    assert_eq!(pages, expected_pages);

    let tenants = node.list_all(Some("tenants/"), None).await?;
    assert_eq!(keys(&tenants), ["tenants/a", "tenants/b"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deletes.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_removes_the_key_from_reads_and_lists() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let created = put_note(&node, "del/gone", json!({})).await?;
    assert_status(&created, 201);
    assert_status(&put_note(&node, "del/kept", json!({})).await?, 201);

    let deleted = node
        .delete_config("del/gone", &WriteOpts::new().actor("carol"))
        .await?;
    assert_status(&deleted, 200);
    assert_eq!(deleted.body["key"], json!("del/gone"), "{deleted}");
    assert!(deleted.revision() > created.revision(), "{deleted}");
    assert_timestamp(&deleted.body["deleted_at"]);
    assert_eq!(deleted.body["deleted_by"], json!("carol"), "{deleted}");

    assert_error(&node.get_config("del/gone").await?, 404, "not_found");
    let listed = node.list_all(Some("del/"), None).await?;
    assert_eq!(keys(&listed), ["del/kept"]);
    Ok(())
}

#[tokio::test]
async fn deleting_an_absent_key_is_not_found() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    assert_error(
        &node.delete_config("del/never", &WriteOpts::new()).await?,
        404,
        "not_found",
    );
    assert_status(&put_note(&node, "del/twice", json!({})).await?, 201);
    assert_status(
        &node.delete_config("del/twice", &WriteOpts::new()).await?,
        200,
    );
    assert_error(
        &node.delete_config("del/twice", &WriteOpts::new()).await?,
        404,
        "not_found",
    );
    Ok(())
}

#[tokio::test]
async fn deleted_key_is_created_again_from_key_version_1() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    assert_status(&put_note(&node, "del/again", json!({"n": 1})).await?, 201);
    assert_status(&put_note(&node, "del/again", json!({"n": 2})).await?, 200);
    let deleted = node.delete_config("del/again", &WriteOpts::new()).await?;
    assert_status(&deleted, 200);

    let recreated = node
        .put_config_with(
            "del/again",
            &config_body(NOTE, 1, &json!({"n": 3})),
            &WriteOpts::new().actor("dave"),
        )
        .await?;
    assert_status(&recreated, 201);
    assert_eq!(recreated.body["key_version"], json!(1), "{recreated}");
    assert!(recreated.revision() > deleted.revision(), "{recreated}");
    assert_eq!(recreated.body["created_by"], json!("dave"), "{recreated}");
    let read = node.get_config("del/again").await?;
    assert_eq!(read.body["value"], json!({"n": 3}), "{read}");
    Ok(())
}

#[tokio::test]
async fn delete_with_a_stale_if_match_is_refused() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let created = put_note(&node, "del/cas", json!({"n": 1})).await?;
    assert_status(&created, 201);
    assert_status(&put_note(&node, "del/cas", json!({"n": 2})).await?, 200);
    let before = node.get_config("del/cas").await?;

    let refused = node
        .delete_config("del/cas", &WriteOpts::new().if_match(created.revision()))
        .await?;
    assert_error(&refused, 412, "precondition_failed");
    let after = node.get_config("del/cas").await?;
    assert_status(&after, 200);
    assert_eq!(after.body, before.body);

    let current = WriteOpts::new().if_match(before.revision());
    assert_status(&node.delete_config("del/cas", &current).await?, 200);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Schemas.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn identical_schema_reregistration_is_a_no_op() -> Result<()> {
    let node = start().await?;
    let first = node.register_kind(STORE).await?;
    assert_status(&first, 201);
    let again = node.register_kind(STORE).await?;
    assert_status(&again, 200);
    assert_eq!(
        again.body, first.body,
        "re-registration changed the registration"
    );
    assert_eq!(node.status().await?.revision, first.revision());
    Ok(())
}

#[tokio::test]
async fn different_content_under_an_existing_schema_version_conflicts() -> Result<()> {
    let node = start().await?;
    let plain = json!({"type": "object"});
    assert_status(&node.register_schema("doc", 1, &plain, None).await?, 201);
    let original = node.get_schema_version("doc", 1).await?;

    let other_schema = json!({"type": "object", "required": ["name"]});
    let conflict = node.register_schema("doc", 1, &other_schema, None).await?;
    assert_error(&conflict, 409, "schema_version_conflict");
    // Adding a plugin is different content too.
    let with_plugin = node
        .register_schema("doc", 1, &plain, Some(&STORE.plugin_wasm()))
        .await?;
    assert_error(&with_plugin, 409, "schema_version_conflict");

    let after = node.get_schema_version("doc", 1).await?;
    assert_eq!(
        after.body, original.body,
        "a refused registration changed the version"
    );
    // Another version under the same name is fine.
    assert_status(
        &node.register_schema("doc", 2, &other_schema, None).await?,
        201,
    );
    Ok(())
}

#[tokio::test]
async fn registered_schemas_can_be_listed_and_read_back() -> Result<()> {
    let node = start().await?;
    let registered = node
        .register_schema("store", 1, STORE.schema_file(), Some(&STORE.plugin_wasm()))
        .await?;
    assert_status(&registered, 201);
    let r = &registered.body;
    assert_eq!(r["name"], json!("store"));
    assert_eq!(r["version"], json!(1));
    assert_digest(&r["plugin_digest"]);
    assert!(
        r["revision"].as_u64().is_some_and(|n| n >= 1),
        "{registered}"
    );
    assert_timestamp(&r["registered_at"]);
    assert_eq!(r["registered_by"], json!("anonymous"));
    let v2_schema = json!({"type": "object"});
    let v2 = node.register_schema("store", 2, &v2_schema, None).await?;
    assert_status(&v2, 201);
    assert_eq!(v2.body["plugin_digest"], Value::Null, "{v2}");

    let all = node.get("/v1/schemas").await?;
    assert_status(&all, 200);
    let listed: Vec<(Value, Value)> = all.body["schemas"]
        .as_array()
        .ok_or_else(|| anyhow!("no schemas array: {all}"))?
        .iter()
        .map(|s| (s["name"].clone(), s["versions"].clone()))
        .collect();
    assert_eq!(listed, [(json!("store"), json!([1, 2]))], "{all}");

    // The registration answer is the version plus its compatibility report.
    let version_of = |reply: &Reply| {
        let mut v = reply.body.clone();
        let report = v.as_object_mut().and_then(|o| o.remove("compatibility"));
        assert!(report.is_some(), "{reply}");
        v
    };
    let named = node.get("/v1/schemas/store").await?;
    assert_status(&named, 200);
    assert_eq!(named.body["name"], json!("store"));
    assert_eq!(
        named.body["versions"],
        json!([version_of(&registered), version_of(&v2)])
    );

    let version = node.get_schema_version("store", 1).await?;
    assert_status(&version, 200);
    let mut expected = version_of(&registered);
    expected["schema"] = harness::read_json(&STORE.schema_file());
    assert_eq!(version.body, expected);

    let plugin = node.get_plugin("store", 1).await?;
    assert_status(&plugin, 200);
    assert_eq!(plugin.header("content-type"), Some("application/wasm"));
    let file = std::fs::read(STORE.plugin_wasm())?;
    assert!(
        plugin.bytes[..] == file[..],
        "plugin bytes differ from the file"
    );
    Ok(())
}

#[tokio::test]
async fn absent_schemas_versions_and_plugins_are_not_found() -> Result<()> {
    let node = start().await?;
    assert_status(&node.register_schema("doc", 1, json!({}), None).await?, 201);
    assert_error(&node.get("/v1/schemas/nothing").await?, 404, "not_found");
    assert_error(&node.get_schema_version("doc", 2).await?, 404, "not_found");
    assert_error(&node.get_plugin("doc", 1).await?, 404, "not_found");
    assert_error(
        &node.delete_schema_version("doc", 2).await?,
        404,
        "not_found",
    );
    Ok(())
}

#[tokio::test]
async fn schema_version_in_use_is_deleted_only_after_its_configs() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    assert_status(&put_note(&node, "uses/a", json!({})).await?, 201);
    assert_status(&put_note(&node, "uses/b", json!({})).await?, 201);

    let refused = node.delete_schema_version(NOTE, 1).await?;
    assert_error(&refused, 409, "schema_in_use");
    assert_status(&node.get_schema_version(NOTE, 1).await?, 200);

    assert_status(&node.delete_config("uses/a", &WriteOpts::new()).await?, 200);
    let still = node.delete_schema_version(NOTE, 1).await?;
    assert_error(&still, 409, "schema_in_use");
    assert_status(&node.delete_config("uses/b", &WriteOpts::new()).await?, 200);

    let deleted = node.delete_schema_version(NOTE, 1).await?;
    assert_status(&deleted, 200);
    assert_eq!(deleted.body["name"], json!(NOTE), "{deleted}");
    assert_eq!(deleted.body["version"], json!(1), "{deleted}");
    assert_error(&node.get_schema_version(NOTE, 1).await?, 404, "not_found");
    // Writes naming it are now refused.
    let orphan = put_note(&node, "uses/c", json!({})).await?;
    assert_error(&orphan, 422, "unknown_schema");
    Ok(())
}

#[tokio::test]
async fn validate_reports_violations_without_storing() -> Result<()> {
    let node = start().await?;
    register_store(&node).await?;
    let examples = STORE.examples();

    for sample in &examples.invalid {
        let reply = node
            .validate("store", 1, Some(&sample.key), &sample.value)
            .await?;
        assert_status(&reply, 200);
        assert_eq!(
            reply.body["valid"],
            json!(false),
            "sample {:?}: {reply}",
            sample.name
        );
        let violations = reply.body["violations"]
            .as_array()
            .ok_or_else(|| anyhow!("no violations: {reply}"))?;
        assert_violation_shapes(violations);
        for expected in &sample.violations {
            assert_has_violation(violations, expected, &format!("sample {:?}", sample.name));
        }
    }
    for sample in &examples.valid {
        let reply = node
            .validate("store", 1, Some(&sample.key), &sample.value)
            .await?;
        assert_status(&reply, 200);
        assert_eq!(
            reply.body["valid"],
            json!(true),
            "sample {:?}: {reply}",
            sample.name
        );
        assert_eq!(
            reply.body["violations"],
            json!([]),
            "sample {:?}: {reply}",
            sample.name
        );
    }
    assert_no_configs(&node).await
}

// ---------------------------------------------------------------------------------------------
// Durability.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn restart_after_sigterm_keeps_configs_schemas_and_revisions() -> Result<()> {
    let mut node = start().await?;
    register_store(&node).await?;
    register_note(&node).await?;
    let sample = STORE.valid_sample();
    assert_status(
        &node
            .put_config(&sample.key, "store", 1, &sample.value)
            .await?,
        201,
    );
    for i in 0..10 {
        assert_status(
            &put_note(&node, &format!("keep/{i}"), json!({"i": i})).await?,
            201,
        );
    }
    assert_status(
        &put_note(&node, "keep/3", json!({"i": "three"})).await?,
        200,
    );
    assert_status(&node.delete_config("keep/7", &WriteOpts::new()).await?, 200);

    let configs_before = node.list_all(None, None).await?;
    let schemas_before = (
        node.get("/v1/schemas/store").await?.body,
        node.get("/v1/schemas/note").await?.body,
    );
    let status_before = node.status().await?;
    let revision_before = status_before.revision;

    node.stop().await?;
    node.restart().await?;

    assert_eq!(node.list_all(None, None).await?, configs_before);
    for item in &configs_before {
        let key = &item.meta.key;
        let read = node.typed().get(key).await?;
        assert_eq!(&read.body, item, "{key} changed across the restart");
    }
    assert_error(&node.get_config("keep/7").await?, 404, "not_found");
    let schemas_after = (
        node.get("/v1/schemas/store").await?.body,
        node.get("/v1/schemas/note").await?.body,
    );
    assert_eq!(schemas_after, schemas_before);
    let status_after = node.status().await?;
    assert_eq!(status_after.revision, revision_before);
    assert_eq!(status_after.configs, status_before.configs);

    // The revision keeps growing, and the plugin still validates.
    let next = put_note(&node, "keep/new", json!({})).await?;
    assert_status(&next, 201);
    assert!(
        next.revision() > revision_before,
        "{next} after {revision_before}"
    );
    let again = node
        .put_config(&sample.key, "store", 1, &sample.value)
        .await?;
    assert_status(&again, 200);
    assert_eq!(again.body["key_version"], json!(2), "{again}");
    let invalid = &STORE.examples().invalid[0];
    let refused = node
        .put_config(&invalid.key, "store", 1, &invalid.value)
        .await?;
    assert_error(&refused, 422, "validation_failed");
    Ok(())
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() -> Result<()> {
    const WRITERS: usize = 4;
    const TARGET_ACKS: usize = 1000;
    const STREAM_FOR: Duration = Duration::from_millis(1500);

    let mut node = start().await?;
    register_note(&node).await?;

    // (key, value, acknowledged revision) of every write that got a 2xx.
    let acked: Arc<Mutex<Vec<(String, Value, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let api = node.api().clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                let key = format!("stream/w{w}/{i:06}");
                let value = json!({"writer": w, "seq": i});
                match api.put_config(&key, NOTE, 1, &value).await {
                    Ok(reply) if reply.status.is_success() => {
                        let revision = reply.revision();
                        acked.lock().unwrap().push((key, value, revision));
                    }
                    // The node answered but refused: a bug, whether or not it is being killed.
                    Ok(reply) => return Err(anyhow!("writer {w}: {key}: {reply}")),
                    // No answer: the node is gone.
                    Err(_) => return Ok::<u64, anyhow::Error>(i),
                }
                i += 1;
            }
        }));
    }

    // Let the stream run, then kill the node under it.
    let started = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the first acknowledged writes",
        || {
            let acked = acked.clone();
            async move {
                let n = acked.lock().unwrap().len();
                n >= TARGET_ACKS || (n > 0 && started.elapsed() >= STREAM_FOR)
            }
        },
    )
    .await?;
    node.kill()?;

    for writer in writers {
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .context("a writer did not stop after the kill")???;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(!acked.is_empty());

    node.restart().await?;
    let mut max_revision = 0;
    for (key, value, revision) in &acked {
        let read = node.get_config(key).await?;
        assert_eq!(read.status.as_u16(), 200, "acknowledged {key} lost: {read}");
        assert_eq!(&read.body["value"], value, "{key}");
        // Each key was written once: it keeps the revision of its acknowledged write.
        assert_eq!(read.revision(), *revision, "{key}: {read}");
        max_revision = max_revision.max(*revision);
    }
    let stored = node.list_all(Some("stream/"), Some(1000)).await?;
    assert!(stored.len() >= acked.len());

    let next = put_note(&node, "stream/after", json!({})).await?;
    assert_status(&next, 201);
    assert!(
        next.revision() > max_revision,
        "{next} after {max_revision}"
    );
    eprintln!("{} acknowledged writes survived the kill", acked.len());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Misbehaving plugins.
// ---------------------------------------------------------------------------------------------

/// A write whose plugin misbehaves in `mode` fails alone and fast with plugin_failed, and the
/// node keeps serving: health, a write of a store sample, and a good write to the same plugin.
async fn misbehaving_plugin_fails_only_its_own_request(mode: &str) -> Result<()> {
    let node = start().await?;
    let digest = register_hostile(&node, "misbehaving", json!({"type": "object"})).await?;
    register_store(&node).await?;
    let key = format!("docs/{mode}");

    let started = Instant::now();
    let reply = tokio::time::timeout(
        HANG_BOUND,
        node.put_config(&key, "misbehaving", 1, &json!({"mode": mode})),
    )
    .await
    .map_err(|_| anyhow!("mode {mode}: no answer within {HANG_BOUND:?}"))??;
    let elapsed = started.elapsed();
    assert!(elapsed < HANG_BOUND, "mode {mode} took {elapsed:?}");
    assert_error(&reply, 422, "plugin_failed");
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&digest),
        "mode {mode}: no digest in {reply}"
    );
    assert!(
        message.contains("misbehaving"),
        "mode {mode}: no schema name in {reply}"
    );
    assert_error(&node.get_config(&key).await?, 404, "not_found");
    // A plugin that ran out of time or memory, trapped or flooded runs off the async runtime
    // from now on; one that merely answered badly does not. (A flood may end within its
    // budget, as a malformed answer of too many violations, or not: misbehaving either way.)
    let status = node.status().await?;
    let quarantined = mode != "error" && mode != "garbage";
    let why = ["exceeded its", "trapped:", "violations (at most"];
    assert_eq!(
        why.iter().any(|m| message.contains(m)),
        quarantined,
        "mode {mode}: {message}"
    );
    assert_eq!(
        status.plugins.misbehaving,
        if quarantined {
            vec![digest.clone()]
        } else {
            vec![]
        },
        "mode {mode}: {status:?}"
    );

    assert_status(&node.health().await?, 200);
    let sample = STORE.valid_sample();
    let store = node
        .put_config(&sample.key, "store", 1, &sample.value)
        .await?;
    assert_status(&store, 201);
    let fine = node
        .put_config("docs/ok", "misbehaving", 1, &json!({"mode": "ok"}))
        .await?;
    assert_status(&fine, 201);
    Ok(())
}

#[tokio::test]
async fn endless_loop_in_a_plugin_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("loop").await
}

#[tokio::test]
async fn memory_exhaustion_in_a_plugin_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("memory").await
}

#[tokio::test]
async fn trap_in_a_plugin_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("trap").await
}

#[tokio::test]
async fn plugin_returning_an_error_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("error").await
}

#[tokio::test]
async fn plugin_returning_a_non_pointer_path_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("garbage").await
}

/// More than 1000 violations is treated as a misbehaving plugin, not as a verdict.
#[tokio::test]
async fn plugin_flooding_violations_fails_only_its_own_request() -> Result<()> {
    misbehaving_plugin_fails_only_its_own_request("flood").await
}

#[tokio::test]
async fn validate_with_a_trapping_plugin_is_plugin_failed() -> Result<()> {
    let node = start().await?;
    let digest = register_hostile(&node, "misbehaving", json!({"type": "object"})).await?;
    let reply = node
        .validate("misbehaving", 1, Some("docs/x"), &json!({"mode": "trap"}))
        .await?;
    assert_error(&reply, 422, "plugin_failed");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&digest)
    );
    Ok(())
}

#[tokio::test]
async fn component_exporting_another_world_is_refused_as_invalid_plugin() -> Result<()> {
    let node = start().await?;
    let reply = node
        .register_schema(
            "wrong",
            1,
            json!({"type": "object"}),
            Some(&plugin_wasm("wrong_world")),
        )
        .await?;
    assert_error(&reply, 422, "invalid_plugin");
    assert_error(
        &node.get_schema_version("wrong", 1).await?,
        404,
        "not_found",
    );
    assert_error(&node.get("/v1/schemas/wrong").await?, 404, "not_found");
    Ok(())
}

#[tokio::test]
async fn core_module_is_refused_as_invalid_plugin() -> Result<()> {
    let node = start().await?;
    let schema = serde_json::to_vec(&json!({"type": "object"}))?;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let reply = node
        .register_schema_bytes("core", 1, schema, Some(core_module))
        .await?;
    assert_error(&reply, 422, "invalid_plugin");
    assert_error(&node.get_schema_version("core", 1).await?, 404, "not_found");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bad requests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_json_body_is_a_malformed_request() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let reply = node
        .put_config_raw("bad/body", "application/json", r#"{"schema": "note", "#)
        .await?;
    assert_error(&reply, 400, "malformed_request");
    assert_no_configs(&node).await
}

#[tokio::test]
async fn content_type_other_than_json_is_unsupported() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let body = serde_json::to_vec(&config_body(NOTE, 1, &json!({})))?;
    let reply = node.put_config_raw("bad/type", "text/plain", body).await?;
    assert_error(&reply, 415, "unsupported_media_type");
    assert_no_configs(&node).await
}

#[tokio::test]
async fn value_over_max_value_bytes_is_payload_too_large() -> Result<()> {
    let node = Node::start(NodeOptions {
        max_value_bytes: Some(1024),
        ..NodeOptions::default()
    })
    .await?;
    register_note(&node).await?;
    let small = put_note(&node, "size/small", json!({"blob": "x".repeat(500)})).await?;
    assert_status(&small, 201);

    let big = put_note(&node, "size/big", json!({"blob": "x".repeat(2048)})).await?;
    assert_error(&big, 413, "payload_too_large");
    assert_error(&node.get_config("size/big").await?, 404, "not_found");
    assert_eq!(keys(&node.list_all(None, None).await?), ["size/small"]);
    Ok(())
}

#[tokio::test]
async fn malformed_keys_are_invalid_key() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let too_many_segments = vec!["s"; 33].join("/");
    let too_long = "k".repeat(513);
    // As they appear in the URL path (percent-encoded where the raw form would not reach the
    // server as one key).
    let bad_keys = [
        "a%2F%2Fb",  // a//b
        "a//b",      // the same, unencoded
        "%2Fa",      // /a
        "a%2F",      // a/
        "a%20b",     // a b
        "a@b",       // @ is not allowed
        "a%2Fb%3Fc", // a/b?c
        "caf%C3%A9", // café
        &too_many_segments,
        &too_long,
    ];
    let body = config_body(NOTE, 1, &json!({}));
    for key in bad_keys {
        let reply = node.put_config_with(key, &body, &WriteOpts::new()).await?;
        assert_eq!(
            reply.error_code(),
            Some("invalid_key"),
            "key {key:?}: {reply}"
        );
        assert_error(&reply, 400, "invalid_key");
    }
    assert_no_configs(&node).await
}

#[tokio::test]
async fn keys_at_the_size_limits_are_accepted() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let deepest = vec!["s"; 32].join("/");
    let longest = format!("{}/{}", "A-z_0.9", "k".repeat(512 - 8));
    assert_eq!(longest.len(), 512);
    for key in [deepest.as_str(), longest.as_str(), "a", "A-Z_a.z-0.9"] {
        let reply = put_note(&node, key, json!({})).await?;
        assert_eq!(reply.status.as_u16(), 201, "key {key:?}: {reply}");
        let read = node.get_config(key).await?;
        assert_status(&read, 200);
        assert_eq!(read.body["key"], json!(key));
    }
    Ok(())
}

#[tokio::test]
async fn config_naming_an_unregistered_schema_is_unknown_schema() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    let unknown_name = node
        .put_config("unknown/name", "nothing", 1, &json!({}))
        .await?;
    assert_error(&unknown_name, 422, "unknown_schema");
    let unknown_version = node
        .put_config("unknown/version", NOTE, 2, &json!({}))
        .await?;
    assert_error(&unknown_version, 422, "unknown_schema");
    assert_no_configs(&node).await
}

// ---------------------------------------------------------------------------------------------
// Node.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn status_describes_a_coherent_single_node_leader() -> Result<()> {
    let node = start().await?;
    register_note(&node).await?;
    assert_status(&put_note(&node, "status/a", json!({})).await?, 201);
    let last = put_note(&node, "status/b", json!({})).await?;
    assert_status(&last, 201);

    let status = node.status().await?;
    assert_eq!(status.node_id, 1, "{status:?}");
    assert_eq!(status.role, Role::Leader, "{status:?}");
    assert_eq!(status.leader, Some(1), "{status:?}");
    assert!(status.term >= 1, "{status:?}");
    let (log, applied) = (
        status.last_log_index.context("no last_log_index")?,
        status.last_applied_index.context("no last_applied_index")?,
    );
    assert!((1..=log).contains(&applied), "{status:?}");
    assert_eq!(status.revision, last.revision(), "{status:?}");
    assert_eq!(status.configs, 2, "{status:?}");
    assert_eq!(status.schemas, 1, "{status:?}");

    let health = node.health().await?;
    assert_status(&health, 200);
    assert_eq!(health.body["status"], json!("ok"), "{health}");
    Ok(())
}

#[tokio::test]
async fn a_schema_naming_another_metaschema_or_an_outside_document_is_refused_clearly() -> Result<()>
{
    let node = start().await?;
    let refused = |schema: Value| {
        let client = node.typed().clone();
        async move {
            let e = client
                .register_schema("s", 1, &scarab_client::SchemaUpload::new(&schema))
                .await
                .err()
                .ok_or_else(|| anyhow!("registered: {schema}"))?;
            let api = e.api().cloned().ok_or_else(|| anyhow!("{e}"))?;
            anyhow::Ok((api.status, api.code.to_string(), api.message))
        }
    };
    let (status, code, message) =
        refused(json!({"$schema": "http://example.com/no-such-metaschema"})).await?;
    assert_eq!((status, code.as_str()), (400, "invalid_schema"));
    assert!(
        message.contains("http://example.com/no-such-metaschema")
            && message.contains("https://json-schema.org/draft/2020-12/schema"),
        "{message}"
    );
    let (status, code, message) = refused(json!({
        "properties": {"timeout": {"$ref": "https://example.com/common.json#/$defs/duration"}}
    }))
    .await?;
    assert_eq!((status, code.as_str()), (400, "invalid_schema"));
    assert!(
        message.contains("https://example.com/common.json") && message.contains("never fetches"),
        "{message}"
    );
    assert!(!message.contains("resolve-http"), "{message}");
    Ok(())
}

#[tokio::test]
async fn validate_and_a_write_share_one_size_rule_the_compact_value() -> Result<()> {
    let node = Node::start(NodeOptions {
        max_value_bytes: Some(1024),
        ..NodeOptions::default()
    })
    .await?;
    register_note(&node).await?;
    let http = harness::http_client();
    let send = |method: reqwest::Method, path: &str, body: String| {
        http.request(method, node.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // 900 bytes compact, about 1,900 as sent (pretty-printed with deep indentation): within
    // the limit for both.
    let doc = json!({"blob": "x".repeat(880)});
    let padded = format!(
        "{{\n{}\"blob\": \"{}\"\n}}",
        " ".repeat(1000),
        "x".repeat(880)
    );
    assert!(padded.len() > 1024 && serde_json::to_string(&doc)?.len() < 1024);
    let r = send(
        reqwest::Method::POST,
        "/v1/schemas/note/versions/1/validate",
        padded.clone(),
    )
    .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    let put = format!("{{\"schema\": \"note\", \"schema_version\": 1, \"value\": {padded}}}");
    let r = send(reqwest::Method::PUT, "/v1/configs/size/padded", put).await?;
    assert_eq!(r.status(), 201, "{}", r.text().await?);
    // 1,100 bytes compact: over the limit for both, with the same code and measure.
    let big = json!({"blob": "x".repeat(1100)}).to_string();
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/v1/schemas/note/versions/1/validate",
            big.clone(),
        ),
        (
            reqwest::Method::PUT,
            "/v1/configs/size/big",
            format!("{{\"schema\": \"note\", \"schema_version\": 1, \"value\": {big}}}"),
        ),
    ] {
        let r = send(method, path, body).await?;
        assert_eq!(r.status(), 413, "{path}");
        let body: Value = r.json().await?;
        assert_eq!(body["error"]["code"], "payload_too_large");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("compact JSON") && message.contains("--max-value-bytes"),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_schema_naming_the_format_assertion_metaschema_has_its_formats_checked() -> Result<()> {
    let node = start().await?;
    let client = node.typed();
    let schema = |assert: bool| {
        let mut s = json!({"properties": {"contact": {"type": "string", "format": "email"}}});
        if assert {
            s["$schema"] = json!("urn:scarab:draft-2020-12:format-assertion");
        }
        s
    };
    client
        .register_schema(
            "plain",
            1,
            &scarab_client::SchemaUpload::new(&schema(false)),
        )
        .await?;
    client
        .register_schema(
            "strict",
            1,
            &scarab_client::SchemaUpload::new(&schema(true)),
        )
        .await?;
    let bad = json!({"contact": "not-an-email"});
    // The default: format is an annotation.
    client
        .put(
            "a/plain",
            &scarab_client::types::PutConfig::new("plain", 1, &bad),
        )
        .await?;
    let e = client
        .put(
            "a/strict",
            &scarab_client::types::PutConfig::new("strict", 1, &bad),
        )
        .await
        .err()
        .ok_or_else(|| anyhow!("an invalid email was accepted"))?;
    let api = e.api().ok_or_else(|| anyhow!("{e}"))?;
    assert_eq!(api.code.to_string(), "validation_failed");
    assert_eq!(api.violations[0].path, "/contact", "{api:?}");
    client
        .put(
            "a/strict",
            &scarab_client::types::PutConfig::new(
                "strict",
                1,
                &json!({"contact": "ops@example.com"}),
            ),
        )
        .await?;
    Ok(())
}
