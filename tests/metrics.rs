//! `GET /metrics` of a real node: the Prometheus text format, the families an operator
//! alerts on, bounded labels (route templates, never keys), open without a token.
//!
//! Needs the plugins: `cargo plugins` before `cargo test`.

mod harness;

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use harness::{Node, NodeOptions, STORE, assert_status};

/// The value of the sample `name{labels}` (exactly as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(node: &Node) -> Result<String> {
    let r = reqwest::get(node.url("/metrics")).await?;
    ensure!(r.status() == 200, "GET /metrics: {}", r.status());
    Ok(r.text().await?)
}

#[tokio::test]
async fn metrics_count_requests_raft_plugins_and_refusals_with_bounded_labels() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    assert_status(&node.register_kind(STORE).await?, 201);
    let sample_doc = STORE.valid_sample();
    for i in 0..20 {
        let r = node
            .put_config(&format!("stores/s{i}"), "store", 1, &{
                let mut v = sample_doc.value.clone();
                v["store_id"] = json!(format!("s{i}"));
                v
            })
            .await?;
        assert_status(&r, 201);
    }
    let mut bad = sample_doc.value.clone();
    bad["timeout_ms"] = json!(0);
    bad["data_dir"] = json!("relative");
    assert_status(&node.put_config("stores/bad", "store", 1, &bad).await?, 422);
    let text = scrape(&node).await?;
    let put = r#"scarab_http_requests_total{route="/v1/configs/{*key}",method="PUT",status="201"}"#;
    assert_eq!(sample(&text, put), Some(20.0), "{text}");
    ensure!(!text.contains("stores/s1"), "a key in a label");
    for (series, at_least) in [
        ("scarab_raft_is_leader", 1.0),
        ("scarab_raft_term", 1.0),
        // 20 puts and a registration, each its own entry (besides the first ones).
        ("scarab_raft_commit_index", 21.0),
        ("scarab_revision", 21.0),
        ("scarab_configs", 20.0),
        ("scarab_schema_versions", 1.0),
        ("scarab_raft_proposals_total", 1.0),
        ("scarab_raft_log_fsync_seconds_count", 1.0),
        (r#"scarab_storage_bytes{db="raft"}"#, 1.0),
        (r#"scarab_storage_bytes{db="state"}"#, 1.0),
        (
            r#"scarab_plugin_calls_total{schema="store",version="1",outcome="ok"}"#,
            21.0,
        ),
        (
            r#"scarab_plugin_call_seconds_count{schema="store",version="1"}"#,
            21.0,
        ),
        (
            r#"scarab_validations_refused_total{schema="store",source="schema"}"#,
            1.0,
        ),
        (
            r#"scarab_validations_refused_total{schema="store",source="plugin"}"#,
            1.0,
        ),
        ("scarab_plugin_instantiations_total", 1.0),
    ] {
        let value = sample(&text, series).with_context(|| format!("{series} missing:\n{text}"))?;
        ensure!(
            value >= at_least,
            "{series} = {value}, expected at least {at_least}"
        );
    }
    ensure!(text.trim_end().ends_with("# EOF"), "not the text format");
    Ok(())
}

#[tokio::test]
async fn metrics_are_open_with_authentication_on() -> Result<()> {
    let (node, _root) = harness::auth::start_auth_node(&[]).await?;
    let r = harness::client_builder()
        .build()?
        .get(node.url("/metrics"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

/// Every metric the Grafana dashboard (`deploy/grafana/scarab-dashboard.json`) queries is one
/// the node serves.
#[tokio::test]
async fn the_dashboard_queries_only_metrics_the_node_serves() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let text = scrape(&node).await?;
    let mut families: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    // A family with no sample yet (no peers on one node, no plugin called) is not written:
    // those registered in the source count too.
    let source = std::fs::read_to_string(harness::workspace_root().join("host/src/metrics.rs"))?;
    for line in source.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("\"").or_else(|| line.strip_prefix("(\""))
            && let Some((name, _)) = rest.split_once("\",")
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            families.insert(format!("scarab_{name}"));
        }
    }
    let path = harness::workspace_root().join("deploy/grafana/scarab-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("scarab_"))
            {
                let family = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                ensure!(
                    families.contains(family),
                    "{name} (in {expr:?}) is not served"
                );
                queried += 1;
            }
        }
    }
    ensure!(queried > 20, "only {queried} metric names in the dashboard");
    Ok(())
}

/// Any token is a valid HTTP method, and metrics are counted before authentication: a
/// method Scarab does not know is counted as `other`, never as a new label value.
#[tokio::test]
async fn an_invented_method_does_not_make_a_label() -> Result<()> {
    let node = Node::start(NodeOptions::default()).await?;
    let http = reqwest::Client::new();
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes())?;
        let _ = http.request(method, node.url("/v1/health")).send().await?;
    }
    let text = scrape(&node).await?;
    ensure!(!text.contains("INVENTED"), "{text}");
    ensure!(text.contains(r#"method="other""#), "{text}");
    Ok(())
}
