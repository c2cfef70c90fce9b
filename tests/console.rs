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

/// Polls `expr` in `page` until it is truthy, within [`SHOWN_WITHIN`].
async fn until(page: &Page, expr: &str) -> Result<Value> {
    page.wait_for(expr, SHOWN_WITHIN).await
}

const SAVE_ENABLED: &str = "!document.querySelector('form.edit button[type=submit]').disabled";

async fn save_is_disabled(page: &Page) -> Result<bool> {
    Ok(page.eval(&format!("!({SAVE_ENABLED})")).await? == json!(true))
}

/// Waits until the page has an element matching `selector`.
async fn shown(page: &Page, selector: &str) -> Result<Value> {
    until(page, &format!("document.querySelector({selector:?})")).await
}

/// On the edit page of a valid `store` config: replaces its value with the tour's invalid
/// one (a schema and a plugin violation) and waits for the check.
async fn enter_the_invalid_store_value(page: &Page) -> Result<()> {
    shown(page, ".validation[data-state=valid]").await?;
    let invalid =
        std::fs::read_to_string(workspace_root().join("examples/tour/store-invalid.json"))?;
    page.type_into("textarea.editor", &invalid).await?;
    shown(page, ".validation[data-state=invalid]").await?;
    Ok(())
}

/// A lone node with the `store` schema v1 and its plugin.
async fn store_node() -> Result<Node> {
    let node = Node::start(NodeOptions::default()).await?;
    let reply = node.register_kind(STORE).await?;
    anyhow::ensure!(reply.status.is_success(), "{}", reply.text());
    Ok(node)
}

/// A `store` node holding `stores/orders` (the tour's, written by alice) and a browser on
/// `route` of its console.
async fn with_orders(route: &str) -> Result<(Node, Browser, Page)> {
    let node = store_node().await?;
    write(&node, "stores/orders", "orders.json", "alice").await?;
    let (browser, page) = open(node.base_url(), route).await?;
    Ok((node, browser, page))
}

/// The tour's `stores/orders` value made into `stores/payments`.
fn payments() -> Value {
    let mut value = tour("orders.json")["value"].clone();
    value["store_id"] = json!("payments");
    value["data_dir"] = json!("/var/lib/scarab/payments");
    value
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
    let (_node, _browser, page) = with_orders("#/edit/stores/orders").await?;
    enter_the_invalid_store_value(&page).await?;

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
    assert!(save_is_disabled(&page).await?);
    Ok(())
}

#[tokio::test]
async fn text_that_is_not_json_is_reported_and_cannot_be_saved() -> Result<()> {
    let (_node, _browser, page) = with_orders("#/edit/stores/orders").await?;
    shown(&page, ".validation[data-state=valid]").await?;
    page.type_into("textarea.editor", "{\"store_id\": ").await?;
    let badge = until(
        &page,
        "document.querySelector('.validation[data-state=invalid] .badge.json')?.textContent",
    )
    .await?;
    assert_eq!(badge, json!("json"));
    assert!(save_is_disabled(&page).await?);
    Ok(())
}

#[tokio::test]
async fn a_valid_new_config_is_saved_and_listed_with_its_revision() -> Result<()> {
    let node = store_node().await?;
    let (_browser, page) = open(node.base_url(), "#/new?prefix=stores/").await?;
    shown(&page, "textarea.editor").await?;
    page.type_into("input[name=key]", "stores/payments").await?;
    let value = payments();
    page.type_into("textarea.editor", &serde_json::to_string_pretty(&value)?)
        .await?;
    page.type_into("input[name=reason]", "a new store").await?;
    until(&page, SAVE_ENABLED).await?;
    page.click("form.edit button[type=submit]").await?;
    until(
        &page,
        "location.hash === '#/config/stores/payments' && document.querySelector('pre.value')",
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
    let listed = until(
        &page,
        "document.querySelector('tr[data-key=\"stores/payments\"] .revision')?.textContent",
    )
    .await?;
    assert_eq!(listed, json!(revision.to_string()));
    Ok(())
}

#[tokio::test]
async fn a_save_over_another_clients_change_says_who_changed_it() -> Result<()> {
    let (node, _browser, page) = with_orders("#/edit/stores/orders").await?;
    shown(&page, ".validation[data-state=valid]").await?;
    let theirs = write(&node, "stores/orders", "orders-bigger.json", "bob").await?;

    let mut mine = tour("orders.json")["value"].clone();
    mine["timeout_ms"] = json!(9000);
    page.type_into("textarea.editor", &serde_json::to_string_pretty(&mine)?)
        .await?;
    until(&page, SAVE_ENABLED).await?;
    page.click("form.edit button[type=submit]").await?;
    let said = until(
        &page,
        "document.querySelector('[data-conflict=true]')?.innerText",
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
    let changed = until(&page, "(rows => rows.length > 0 && rows)([...document.querySelectorAll('table.diff tr.changed')].map(tr => [tr.querySelector('td.a').textContent.trim(), tr.querySelector('td.b').textContent.trim()]))").await?;
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
    until(
        &page,
        &format!("document.querySelector('{row} button.rollback')"),
    )
    .await?;
    page.type_into(&format!("{row} input[name=reason]"), "limits were too high")
        .await?;
    page.click(&format!("{row} button.rollback")).await?;
    let newest = until(&page, &format!("(r => r > {second} && r)(Number(document.querySelector('table.history tbody tr')?.dataset.revision))")).await?;

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
    let (node, _browser, page) = with_orders("#/register/store").await?;
    until(
        &page,
        "document.querySelector('input[name=version]')?.value === '2'",
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
    let report = until(&page, "document.querySelector('.report')?.innerText").await?;
    let report = report.as_str().unwrap();
    assert!(
        report.contains("Compatible: 1 stored config(s) of v1 checked, 0 failed"),
        "{report}"
    );
    // The check registered nothing.
    assert_eq!(node.get_schema_version("store", 2).await?.status, 404);
    until(&page, "!document.querySelector('button.register').disabled").await?;
    page.click("button.register").await?;
    until(
        &page,
        "location.hash === '#/schema/store/2' && document.querySelector('pre.schema')",
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
    shown(&page, "select[name=schema]").await?;
    page.eval("(s => { s.value = 'store'; s.dispatchEvent(new Event('change')); })(document.querySelector('select[name=schema]'))").await?;
    page.type_into("input[name=target_version]", "2").await?;
    page.click("form.start button[type=submit]").await?;
    let said = until(&page, "document.querySelector('.notice')?.innerText").await?;
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
    shown(&page, "tr[data-status=done]").await?;
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
    let all = until(&page, actors).await?;
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
    let (node, _browser, page) = with_orders("#/config/stores/orders").await?;
    shown(&page, "pre.value").await?;
    page.click("button.delete").await?;
    page.type_into("input[name=delete-reason]", "store retired")
        .await?;
    page.click("button.confirm-delete").await?;
    until(&page, "location.hash.startsWith('#/configs')").await?;
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
        until(&page, "document.body.innerText.includes('<img src=x')").await?;
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
    let (node, _browser, page) = with_orders("#/config/stores/orders").await?;
    until(
        &page,
        "document.getElementById('connection').dataset.state === 'live'",
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
    let (node, _browser, page) = with_orders("#/configs?prefix=stores/").await?;
    until(
        &page,
        "document.getElementById('connection').dataset.state === 'live'",
    )
    .await?;
    let value = payments();
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
    until(
        &page,
        "document.getElementById('connection').dataset.state === 'live'",
    )
    .await?;
    node.kill()?;
    until(
        &page,
        "document.getElementById('connection').dataset.state === 'lost'",
    )
    .await?;
    node.restart().await?;
    until(
        &page,
        "document.getElementById('connection').dataset.state === 'resumed'",
    )
    .await?;
    // And it is live again: a change after the restart reaches the page.
    let revision = write(&node, "stores/orders", "orders-bigger.json", "bob").await?;
    until(
        &page,
        &format!("document.querySelector('pre.value[data-revision=\"{revision}\"]')"),
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
    until(&page, &format!("(s => Object.values(s).length === 3 && Object.values(s).every(x => x === 'reachable') && s)({states})")).await?;
    cluster.kill(victim).await?;
    let shown = until(
        &page,
        &format!("(s => s['{victim}'] === 'unreachable' && s)({states})"),
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
    shown(&page, "form.login").await?;
    page.type_into("form.login input[name=token]", &token)
        .await?;
    page.click("form.login button[type=submit]").await?;
    shown(&page, "table.schemas").await?;
    let who = until(&page, "document.getElementById('who').innerText").await?;
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
    shown(&page, "tr[data-key=\"stores/payments\"]").await?;
    shoot(&page, "configs").await?;

    page.goto(&format!("{}/ui/#/edit/stores/orders", dev.base))
        .await?;
    enter_the_invalid_store_value(&page).await?;
    shoot(&page, "edit").await?;

    page.goto(&format!(
        "{}/ui/#/history/stores/orders?a={first}&b={second}",
        dev.base
    ))
    .await?;
    shown(&page, "table.diff tr.changed").await?;
    shoot(&page, "history").await?;

    page.goto(&format!("{}/ui/#/schema/store/2", dev.base))
        .await?;
    shown(&page, "pre.schema").await?;
    shoot(&page, "schema").await?;

    page.goto(&format!("{}/ui/#/audit", dev.base)).await?;
    shown(&page, "table.audit tbody tr").await?;
    shoot(&page, "audit").await?;

    Ok(())
}
