//! The web console (`/ui/`) in a real browser: Debian's `chromium`, headless, driven over the
//! DevTools protocol (chromiumoxide), against real nodes on loopback ports. Each test opens a
//! page, acts as a user would (typing, clicking) and reads what the page shows.
//!
//! `SCARAB_CHROMIUM` names the browser (default `chromium` on the PATH; `.ci/run` installs it).
//! `screenshots_of_the_main_views` writes the README's screenshots into
//! `target/console-screenshots/`, and into `host/ui/screenshots/` with
//! `SCARAB_UPDATE_SCREENSHOTS=1`.

mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use harness::auth::start_auth_node;
use harness::browser::{Browser, Page};
use harness::cluster::{Cluster, ClusterOptions};
use harness::dev::DevNode;
use harness::{Api, Node, NodeOptions, STORE, STORE_V2, WriteOpts, config_body, workspace_root};

/// How long a page may take to show what a test waits for (a debug build on a loaded
/// machine; the live-update test has its own, tighter, deadline).
const SHOWN_WITHIN: Duration = Duration::from_secs(15);

/// A browser and a tab at `base` + `/ui/` + `route` (`#/configs`, ...).
async fn open(base: &str, route: &str) -> Result<(Browser, Page)> {
    let browser = Browser::launch().await?;
    let page = browser.open(&format!("{base}/ui/{route}")).await?;
    Ok((browser, page))
}

/// A lone node with the `store` schema v1 and its plugin.
async fn store_node() -> Result<Node> {
    let node = Node::start(NodeOptions::default()).await?;
    let reply = node.register_kind(STORE).await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    Ok(node)
}

fn tour(name: &str) -> Value {
    let path = workspace_root().join("examples/tour").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Writes `examples/tour/{file}` as `key` by `actor`; answers the new revision.
async fn write(api: &Api, key: &str, file: &str, actor: &str) -> Result<u64> {
    let reply = api
        .put_config_with(key, &tour(file), &WriteOpts::new().actor(actor))
        .await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    Ok(reply.revision())
}

#[tokio::test]
async fn an_invalid_edit_shows_each_violation_at_its_field_marked_schema_or_plugin_and_save_stays_disabled()
-> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/edit/stores/orders").await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=valid]')",
        SHOWN_WITHIN,
    )
    .await?;

    let invalid =
        std::fs::read_to_string(workspace_root().join("examples/tour/store-invalid.json"))?;
    page.type_into("textarea.editor", &invalid).await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=invalid]')",
        SHOWN_WITHIN,
    )
    .await?;

    let listed = page.eval("Object.fromEntries([...document.querySelectorAll('ul.violations li')].map(li => [li.dataset.path, li.dataset.source]))",
    )
    .await?;
    assert_eq!(
        listed,
        json!({"/timeout_ms": "schema", "/data_dir": "plugin"})
    );
    // Beside the field itself in the document's outline.
    let marked = page.eval("Object.fromEntries([...document.querySelectorAll('.outline li.invalid')].map(li => [li.dataset.path, li.querySelector('.why .badge').textContent]))",
    )
    .await?;
    assert_eq!(
        marked,
        json!({"/timeout_ms": "schema", "/data_dir": "plugin"})
    );
    assert_eq!(
        page.eval("document.querySelector('form.edit button[type=submit]').disabled")
            .await?,
        json!(true)
    );
    Ok(())
}

#[tokio::test]
async fn text_that_is_not_json_is_reported_and_cannot_be_saved() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/edit/stores/orders").await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=valid]')",
        SHOWN_WITHIN,
    )
    .await?;
    page.type_into("textarea.editor", "{\"store_id\": ").await?;
    let badge = page
        .wait_for(
            "document.querySelector('.validation[data-state=invalid] .badge.json')?.textContent",
            SHOWN_WITHIN,
        )
        .await?;
    assert_eq!(badge, json!("json"));
    assert_eq!(
        page.eval("document.querySelector('form.edit button[type=submit]').disabled")
            .await?,
        json!(true)
    );
    Ok(())
}

#[tokio::test]
async fn a_valid_new_config_is_saved_and_listed_with_its_revision() -> Result<()> {
    let node = store_node().await?;
    let (_browser, page) = open(node.base_url(), "#/new?prefix=stores/").await?;
    page.wait_for("document.querySelector('textarea.editor')", SHOWN_WITHIN)
        .await?;
    page.type_into("input[name=key]", "stores/payments").await?;
    let mut value = tour("orders.json")["value"].clone();
    value["store_id"] = json!("payments");
    value["data_dir"] = json!("/var/lib/scarab/payments");
    page.type_into("textarea.editor", &serde_json::to_string_pretty(&value)?)
        .await?;
    page.type_into("input[name=reason]", "a new store").await?;
    page.wait_for(
        "!document.querySelector('form.edit button[type=submit]').disabled",
        SHOWN_WITHIN,
    )
    .await?;
    page.click("form.edit button[type=submit]").await?;
    page.wait_for(
        "location.hash === '#/config/stores/payments' && document.querySelector('pre.value')",
        SHOWN_WITHIN,
    )
    .await?;

    let stored = node.get_config("stores/payments").await?;
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(stored.body["value"], value);
    let revision = stored.body["revision"].as_u64().unwrap();
    let audit = node.get("/v1/audit?prefix=stores/payments").await?;
    assert_eq!(audit.body["items"][0]["reason"], json!("a new store"));

    page.goto(&format!("{}/ui/#/configs", node.base_url()))
        .await?;
    let listed = page
        .wait_for(
            "document.querySelector('tr[data-key=\"stores/payments\"] .revision')?.textContent",
            SHOWN_WITHIN,
        )
        .await?;
    assert_eq!(listed, json!(revision.to_string()));
    Ok(())
}

#[tokio::test]
async fn a_save_over_another_clients_change_says_who_changed_it() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/edit/stores/orders").await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=valid]')",
        SHOWN_WITHIN,
    )
    .await?;
    let theirs = write(&node, "stores/orders", "orders-bigger.json", "bob").await?;

    let mut mine = tour("orders.json")["value"].clone();
    mine["timeout_ms"] = json!(9000);
    page.type_into("textarea.editor", &serde_json::to_string_pretty(&mine)?)
        .await?;
    page.wait_for(
        "!document.querySelector('form.edit button[type=submit]').disabled",
        SHOWN_WITHIN,
    )
    .await?;
    page.click("form.edit button[type=submit]").await?;
    let said = page
        .wait_for(
            "document.querySelector('[data-conflict=true]')?.innerText",
            SHOWN_WITHIN,
        )
        .await?;
    let said = said.as_str().unwrap();
    assert!(
        said.contains("bob") && said.contains(&format!("revision {theirs}")),
        "{said}"
    );
    // Nothing was overwritten.
    let stored = node.get_config("stores/orders").await?;
    assert_eq!(stored.body["revision"], json!(theirs));
    Ok(())
}

#[tokio::test]
async fn the_diff_of_two_revisions_shows_the_changed_fields() -> Result<()> {
    let node = store_node().await?;
    let first = write(&node, "stores/orders", "orders.json", "alice").await?;
    let second = write(&node, "stores/orders", "orders-bigger.json", "alice").await?;
    let (_browser, page) = open(
        node.base_url(),
        &format!("#/history/stores/orders?a={first}&b={second}"),
    )
    .await?;
    let changed = page.wait_for("(rows => rows.length > 0 && rows)([...document.querySelectorAll('table.diff tr.changed')].map(tr => [tr.querySelector('td.a').textContent.trim(), tr.querySelector('td.b').textContent.trim()]))",
        SHOWN_WITHIN,
    )
    .await?;
    assert_eq!(
        changed,
        json!([
            ["\"max_memory_mb\": 512,", "\"max_memory_mb\": 1024,"],
            ["\"max_connections\": 100", "\"max_connections\": 2000"]
        ])
    );
    Ok(())
}

#[tokio::test]
async fn rollback_from_the_history_makes_a_new_revision_with_the_old_value_and_the_reason()
-> Result<()> {
    let node = store_node().await?;
    let first = write(&node, "stores/orders", "orders.json", "alice").await?;
    let second = write(&node, "stores/orders", "orders-bigger.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/history/stores/orders").await?;
    let row = format!("tr[data-revision=\"{first}\"]");
    page.wait_for(
        &format!("document.querySelector('{row} button.rollback')"),
        SHOWN_WITHIN,
    )
    .await?;
    page.type_into(&format!("{row} input[name=reason]"), "limits were too high")
        .await?;
    page.click(&format!("{row} button.rollback")).await?;
    let newest = page.wait_for(&format!("(r => r > {second} && r)(Number(document.querySelector('table.history tbody tr')?.dataset.revision))"),
        SHOWN_WITHIN,
    )
    .await?;

    let stored = node.get_config("stores/orders").await?;
    assert_eq!(stored.body["revision"], newest);
    assert_eq!(stored.body["value"], tour("orders.json")["value"]);
    let audit = node.get("/v1/audit?prefix=stores/orders&limit=1").await?;
    assert_eq!(
        audit.body["items"][0]["reason"],
        json!("limits were too high")
    );
    Ok(())
}

#[tokio::test]
async fn a_new_schema_version_is_checked_against_the_stored_configs_before_it_is_registered()
-> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/register/store").await?;
    page.wait_for(
        "document.querySelector('input[name=version]')?.value === '2'",
        SHOWN_WITHIN,
    )
    .await?;
    page.set_files("input[name=schema]", &[&STORE_V2.schema_file()])
        .await?;
    page.set_files("input[name=plugin]", &[&STORE_V2.plugin_wasm()])
        .await?;
    assert_eq!(
        page.eval("document.querySelector('button.register').disabled")
            .await?,
        json!(true),
        "Register is offered only after the check"
    );
    page.click("button.check").await?;
    let report = page
        .wait_for("document.querySelector('.report')?.innerText", SHOWN_WITHIN)
        .await?;
    let report = report.as_str().unwrap();
    assert!(
        report.contains("Compatible: 1 stored config(s) of v1 checked, 0 failed"),
        "{report}"
    );
    // The check registered nothing.
    assert_eq!(node.get_schema_version("store", 2).await?.status, 404);
    page.wait_for(
        "!document.querySelector('button.register').disabled",
        SHOWN_WITHIN,
    )
    .await?;
    page.click("button.register").await?;
    page.wait_for(
        "location.hash === '#/schema/store/2' && document.querySelector('pre.schema')",
        SHOWN_WITHIN,
    )
    .await?;
    let registered = node.get_schema_version("store", 2).await?;
    assert_eq!(registered.status, 200, "{}", registered.text());
    Ok(())
}

#[tokio::test]
async fn a_migration_is_dry_run_then_run_to_done_from_the_migrations_page() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let reply = node.register_kind(STORE_V2).await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    let (_browser, page) = open(node.base_url(), "#/migrations").await?;
    page.wait_for(
        "document.querySelector('select[name=schema]')",
        SHOWN_WITHIN,
    )
    .await?;
    page.eval("(s => { s.value = 'store'; s.dispatchEvent(new Event('change')); })(document.querySelector('select[name=schema]'))").await?;
    page.type_into("input[name=target_version]", "2").await?;
    page.click("form.start button[type=submit]").await?;
    let said = page
        .wait_for("document.querySelector('.notice')?.innerText", SHOWN_WITHIN)
        .await?;
    assert!(
        said.as_str()
            .unwrap()
            .contains("Dry run: 1 of 1 config(s) convert to v2"),
        "{said}"
    );
    assert_eq!(
        node.get_config("stores/orders").await?.body["schema_version"],
        json!(1)
    );

    page.click("input[name=dry_run]").await?;
    page.click("form.start button[type=submit]").await?;
    page.wait_for(
        "document.querySelector('tr[data-status=done]')",
        SHOWN_WITHIN,
    )
    .await?;
    assert_eq!(
        node.get_config("stores/orders").await?.body["schema_version"],
        json!(2)
    );
    Ok(())
}

#[tokio::test]
async fn the_audit_trail_is_filtered_by_actor_and_action() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    write(&node, "stores/orders", "orders-bigger.json", "bob").await?;
    let (_browser, page) = open(node.base_url(), "#/audit").await?;
    let actors = "(rows => rows.length > 0 && rows)([...document.querySelectorAll('table.audit tbody tr')].map(tr => tr.dataset.actor + ' ' + tr.dataset.action))";
    let all = page.wait_for(actors, SHOWN_WITHIN).await?;
    assert!(all.as_array().unwrap().len() >= 3, "{all}"); // the registration too
    page.type_into("input[name=actor]", "bob").await?;
    page.type_into("input[name=action]", "config").await?;
    page.click("form.filters button[type=submit]").await?;
    let shown = page
        .wait_for(
            &format!(
                "(r => r.length === 1 && r)({})",
                actors.replace("(rows => rows.length > 0 && rows)", "")
            ),
            SHOWN_WITHIN,
        )
        .await?;
    assert_eq!(shown, json!(["bob config.update"]));
    Ok(())
}

#[tokio::test]
async fn a_config_is_deleted_with_a_reason_from_its_page() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/config/stores/orders").await?;
    page.wait_for("document.querySelector('pre.value')", SHOWN_WITHIN)
        .await?;
    page.click("button.delete").await?;
    page.type_into("input[name=delete-reason]", "store retired")
        .await?;
    page.click("button.confirm-delete").await?;
    page.wait_for("location.hash.startsWith('#/configs')", SHOWN_WITHIN)
        .await?;
    assert_eq!(node.get_config("stores/orders").await?.status, 404);
    let audit = node.get("/v1/audit?prefix=stores/orders&limit=1").await?;
    assert_eq!(audit.body["items"][0]["action"], json!("config.delete"));
    assert_eq!(audit.body["items"][0]["reason"], json!("store retired"));
    Ok(())
}

#[tokio::test]
async fn a_value_that_looks_like_html_is_shown_as_text_and_never_run() -> Result<()> {
    let node = store_node().await?;
    let reply = node
        .register_schema("note", 1, json!({"type": "object"}), None)
        .await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    let markup = "<img src=x onerror=\"window.__ran=1\"><script>window.__ran=2</script>";
    let reply = node
        .put_config_with(
            "notes/html",
            &config_body("note", 1, &json!({ "title": markup })),
            &WriteOpts::new().actor(markup),
        )
        .await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    for route in [
        "#/config/notes/html",
        "#/configs",
        "#/history/notes/html",
        "#/audit",
    ] {
        let (_browser, page) = open(node.base_url(), route).await?;
        page.wait_for(
            "document.body.innerText.includes('<img src=x')",
            SHOWN_WITHIN,
        )
        .await?;
        assert_eq!(
            page.eval(
                "[document.querySelectorAll('main img, main script').length, window.__ran ?? 0]"
            )
            .await?,
            json!([0, 0]),
            "{route}"
        );
    }
    Ok(())
}

/// The deadline the issue sets: a change by another client is on an open page within a second
/// of being acknowledged.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_write_by_another_client_appears_on_an_open_config_within_a_second() -> Result<()> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/config/stores/orders").await?;
    page.wait_for(
        "document.getElementById('connection').dataset.state === 'live'",
        SHOWN_WITHIN,
    )
    .await?;
    let revision = write(&node, "stores/orders", "orders-bigger.json", "bob").await?;
    let acknowledged = Instant::now();
    page.wait_for(&format!("document.querySelector('pre.value[data-revision=\"{revision}\"]')?.textContent.includes('2000')"),
        LIVE_WITHIN,
    )
    .await?;
    eprintln!(
        "shown {:?} after the write was acknowledged",
        acknowledged.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_config_created_by_another_client_appears_in_an_open_list_within_a_second() -> Result<()>
{
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/configs?prefix=stores/").await?;
    page.wait_for(
        "document.getElementById('connection').dataset.state === 'live'",
        SHOWN_WITHIN,
    )
    .await?;
    let mut value = tour("orders.json")["value"].clone();
    value["store_id"] = json!("payments");
    let reply = node
        .put_config_with(
            "stores/payments",
            &config_body("store", 1, &value),
            &WriteOpts::new(),
        )
        .await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    page.wait_for(
        "document.querySelector('tr[data-key=\"stores/payments\"]')",
        LIVE_WITHIN,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_page_says_when_it_lost_the_node_and_when_it_reconnected() -> Result<()> {
    let mut node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (_browser, page) = open(node.base_url(), "#/config/stores/orders").await?;
    page.wait_for(
        "document.getElementById('connection').dataset.state === 'live'",
        SHOWN_WITHIN,
    )
    .await?;
    node.kill()?;
    page.wait_for(
        "document.getElementById('connection').dataset.state === 'lost'",
        SHOWN_WITHIN,
    )
    .await?;
    node.restart().await?;
    page.wait_for(
        "document.getElementById('connection').dataset.state === 'resumed'",
        SHOWN_WITHIN,
    )
    .await?;
    // And it is live again: a change after the restart reaches the page.
    let revision = write(&node, "stores/orders", "orders-bigger.json", "bob").await?;
    page.wait_for(
        &format!("document.querySelector('pre.value[data-revision=\"{revision}\"]')"),
        SHOWN_WITHIN,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_cluster_view_shows_a_killed_member_as_unreachable() -> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let leader = cluster
        .wait_formed(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    let victim = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let viewer = cluster.ids().into_iter().find(|id| *id != victim).unwrap();
    let (_browser, page) = open(cluster.api(viewer).base_url(), "#/cluster").await?;
    let states = "Object.fromEntries([...document.querySelectorAll('tr[data-node]')].map(tr => [tr.dataset.node, tr.dataset.state]))";
    page.wait_for(&format!("(s => Object.values(s).length === 3 && Object.values(s).every(x => x === 'reachable') && s)({states})"),
        SHOWN_WITHIN,
    )
    .await?;
    cluster.kill(victim).await?;
    let shown = page
        .wait_for(
            &format!("(s => s['{victim}'] === 'unreachable' && s)({states})"),
            SHOWN_WITHIN,
        )
        .await?;
    for id in cluster.ids().into_iter().filter(|id| *id != victim) {
        assert_eq!(shown[id.to_string()], json!("reachable"), "{shown}");
    }
    shoot(&page, "cluster").await?;
    cluster.pass();
    Ok(())
}

#[tokio::test]
async fn with_authentication_on_the_console_asks_for_a_token_and_acts_with_it() -> Result<()> {
    let (node, token) = start_auth_node(&[]).await?;
    let (_browser, page) = open(node.base_url(), "#/schemas").await?;
    page.wait_for("document.querySelector('form.login')", SHOWN_WITHIN)
        .await?;
    page.type_into("form.login input[name=token]", &token)
        .await?;
    page.click("form.login button[type=submit]").await?;
    page.wait_for("document.querySelector('table.schemas')", SHOWN_WITHIN)
        .await?;
    let who = page
        .wait_for("document.getElementById('who').innerText", SHOWN_WITHIN)
        .await?;
    assert!(who.as_str().unwrap().contains("signed in as root"), "{who}");
    // The token is in this tab's session storage, not in a cookie or local storage.
    assert_eq!(
        page.eval("localStorage.length + document.cookie.length")
            .await?,
        json!(0)
    );
    Ok(())
}

// ------------------------------------------------------------------ screenshots

async fn shoot(page: &Page, name: &str) -> Result<()> {
    let png = page.screenshot().await?;
    let out = workspace_root().join("target/console-screenshots");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join(format!("{name}.png")), &png)?;
    if std::env::var_os("SCARAB_UPDATE_SCREENSHOTS").is_some() {
        let dir: &Path = &workspace_root().join("host/ui/screenshots");
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.png")), &png)?;
    }
    Ok(())
}

#[tokio::test]
async fn screenshots_of_the_main_views() -> Result<()> {
    let dev = DevNode::start()?;
    let api = Api::new(dev.base.trim_start_matches("http://").parse()?);
    let first = write(&api, "stores/orders", "orders.json", "alice").await?;
    let second = write(&api, "stores/orders", "orders-bigger.json", "bob").await?;
    let mut payments = tour("orders.json");
    payments["value"]["store_id"] = json!("payments");
    payments["value"]["data_dir"] = json!("/var/lib/scarab/payments");
    api.put_config_with(
        "stores/payments",
        &payments,
        &WriteOpts::new().actor("alice"),
    )
    .await?;
    let (_browser, page) = open(&dev.base, "#/configs").await?;
    page.wait_for(
        "document.querySelector('tr[data-key=\"stores/payments\"]')",
        SHOWN_WITHIN,
    )
    .await?;
    shoot(&page, "configs").await?;

    page.goto(&format!("{}/ui/#/edit/stores/orders", dev.base))
        .await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=valid]')",
        SHOWN_WITHIN,
    )
    .await?;
    let invalid =
        std::fs::read_to_string(workspace_root().join("examples/tour/store-invalid.json"))?;
    page.type_into("textarea.editor", &invalid).await?;
    page.wait_for(
        "document.querySelector('.validation[data-state=invalid]')",
        SHOWN_WITHIN,
    )
    .await?;
    shoot(&page, "edit").await?;

    page.goto(&format!(
        "{}/ui/#/history/stores/orders?a={first}&b={second}",
        dev.base
    ))
    .await?;
    page.wait_for(
        "document.querySelector('table.diff tr.changed')",
        SHOWN_WITHIN,
    )
    .await?;
    shoot(&page, "history").await?;

    page.goto(&format!("{}/ui/#/schema/store/2", dev.base))
        .await?;
    page.wait_for("document.querySelector('pre.schema')", SHOWN_WITHIN)
        .await?;
    shoot(&page, "schema").await?;

    page.goto(&format!("{}/ui/#/audit", dev.base)).await?;
    page.wait_for(
        "document.querySelector('table.audit tbody tr')",
        SHOWN_WITHIN,
    )
    .await?;
    shoot(&page, "audit").await?;

    Ok(())
}
