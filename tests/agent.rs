//! `scarab agent` against a real node: files kept as a mirror of the configs (written
//! atomically, removed on delete), `--exec` after changes and at start for the files written
//! (retried while it fails), the local endpoint with its stale flag while the cluster is
//! down, a restart from the cache with the cluster down, and no half-written file after a
//! `kill -9`.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use scarab_client::Client;
use scarab_client::types::PutConfig;
use serde_json::{Value, json};

use harness::cluster::{Cluster, ClusterOptions};
use harness::{Node, free_port, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// The agent process, killed when dropped.
struct Agent {
    child: Child,
    port: u16,
    /// Where its stderr goes (beside `--out`), to say what it did when a test fails.
    log: PathBuf,
}

impl Agent {
    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("the agent's stderr:\n{text}")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(node: &Node, out: &Path, exec: Option<&str>, port: u16) -> Result<Agent> {
    start_agent_with(node, out, exec, port, &[])
}

fn start_agent_with(
    node: &Node,
    out: &Path,
    exec: Option<&str>,
    port: u16,
    extra: &[&str],
) -> Result<Agent> {
    start_agent_at(node.base_url(), out, exec, port, extra)
}

fn start_agent_at(
    servers: &str,
    out: &Path,
    exec: Option<&str>,
    port: u16,
    extra: &[&str],
) -> Result<Agent> {
    let mut cmd = Command::new(harness::scarab_bin());
    cmd.args(["agent", "-s", servers, "--prefix", "app/", "--out"])
        .arg(out)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--stale-after",
            "600ms",
        ])
        .args(extra)
        .stdout(Stdio::null());
    let log = out.with_extension(format!("agent-{port}.log"));
    cmd.stderr(std::fs::File::create(&log)?);
    if let Some(exec) = exec {
        cmd.args(["--exec", exec]);
    }
    Ok(Agent {
        child: cmd.spawn().context("spawn scarab agent")?,
        port,
        log,
    })
}

/// A node with `note` registered, and its client.
async fn note_node() -> Result<(Node, Client)> {
    let node = harness::start_note_node(&[]).await?;
    let client = node.typed().clone();
    Ok((node, client))
}

async fn put(client: &Client, key: &str, value: Value) -> Result<()> {
    client.put(key, &PutConfig::new("note", 1, &value)).await?;
    Ok(())
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

async fn wait_file(path: &Path, want: Option<Value>) -> Result<()> {
    wait_until(
        DEADLINE,
        &format!("{} to be {want:?}", path.display()),
        || {
            let want = want.clone();
            async move { read(path) == want }
        },
    )
    .await
}

/// `GET http://127.0.0.1:{port}{path}`: status, the stale header, the body.
async fn local(port: u16, path: &str) -> Result<(u16, Option<String>, Value)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await?;
    let status = r.status().as_u16();
    let stale = r
        .headers()
        .get("x-scarab-stale")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, stale, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn the_agent_keeps_the_files_and_runs_exec_after_changes() -> Result<()> {
    let (_node, client) = note_node().await?;
    put(&client, "app/a", json!({"n": 1})).await?;
    put(&client, "app/sub/b", json!({"n": 2})).await?;
    let dir = tempfile::tempdir()?;
    let (out, log) = (dir.path().join("out"), dir.path().join("exec.log"));
    let exec = format!(
        "printf '%s\\n' \"$SCARAB_CHANGED_KEYS\" >> {}",
        log.display()
    );
    let agent = start_agent(&_node, &out, Some(&exec), free_port())?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 1}))).await?;
    wait_file(&out.join("app/sub/b.json"), Some(json!({"n": 2}))).await?;
    put(&client, "app/a", json!({"n": 5})).await?;
    client.delete("app/sub/b").await?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 5}))).await?;
    wait_file(&out.join("app/sub/b.json"), None).await?;
    wait_until(DEADLINE, "--exec told of the changes", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("app/a") && text.contains("app/sub/b")
    })
    .await?;
    wait_until(DEADLINE, "the agent's endpoint", || async {
        matches!(
            local(agent.port, "/v1/configs/app/a").await,
            Ok((200, None, _))
        )
    })
    .await?;
    let (status, stale, body) = local(agent.port, "/v1/configs/app/a").await?;
    ensure!(
        status == 200 && stale.is_none() && body["value"] == json!({"n": 5}),
        "{body}"
    );
    let (status, _, body) = local(agent.port, "/v1/configs?prefix=app/").await?;
    ensure!(
        status == 200 && body["items"].as_array().map(Vec::len) == Some(1),
        "{body}"
    );
    assert_eq!(local(agent.port, "/healthz").await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn the_agent_serves_its_last_good_values_while_the_cluster_is_down_and_after_its_restart()
-> Result<()> {
    let (mut node, client) = note_node().await?;
    put(&client, "app/a", json!({"n": 1})).await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let port = free_port();
    let agent = start_agent(&node, &out, None, port)?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 1}))).await?;
    wait_until(DEADLINE, "current", || async {
        matches!(local(port, "/healthz").await, Ok((200, _, _)))
    })
    .await?;
    node.kill()?;
    wait_until(DEADLINE, "stale", || async {
        matches!(local(port, "/healthz").await, Ok((503, _, _)))
    })
    .await?;
    let (status, stale, body) = local(port, "/v1/configs/app/a").await?;
    ensure!(
        status == 200 && stale.as_deref() == Some("true"),
        "{status} {stale:?}"
    );
    assert_eq!(body["value"], json!({"n": 1}));
    drop(agent);
    // Restarted with the cluster still down: it serves its cache at once.
    std::fs::remove_file(out.join("app/a.json"))?;
    let port = free_port();
    let _agent = start_agent(&node, &out, None, port)?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 1}))).await?;
    wait_until(DEADLINE, "the restarted agent's endpoint", || async {
        matches!(
            local(port, "/v1/configs/app/a").await,
            Ok((200, Some(_), _))
        )
    })
    .await?;
    // The cluster returns: the agent catches up.
    node.restart().await?;
    put(&client, "app/c", json!({"n": 3})).await?;
    wait_file(&out.join("app/c.json"), Some(json!({"n": 3}))).await?;
    wait_until(DEADLINE, "current again", || async {
        matches!(local(port, "/healthz").await, Ok((200, _, _)))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_exec_is_retried_with_every_changed_key() -> Result<()> {
    let (node, client) = note_node().await?;
    let dir = tempfile::tempdir()?;
    let (out, log, flag) = (
        dir.path().join("out"),
        dir.path().join("exec.log"),
        dir.path().join("ready"),
    );
    let exec = format!(
        "test -f {} && printf '%s\\n' \"$SCARAB_CHANGED_KEYS\" >> {}",
        flag.display(),
        log.display()
    );
    let agent = start_agent(&node, &out, Some(&exec), free_port())?;
    put(&client, "app/x", json!({"n": 1})).await?;
    wait_file(&out.join("app/x.json"), Some(json!({"n": 1}))).await?;
    put(&client, "app/y", json!({"n": 2})).await?;
    wait_file(&out.join("app/y.json"), Some(json!({"n": 2}))).await?;
    ensure!(!log.exists());
    std::fs::write(&flag, b"")?;
    // The retries back off up to 30 s (cli/agent.rs): on a loaded machine the failures before
    // the flag may have reached that step, so the next try can be 30 s away.
    wait_until(Duration::from_secs(75), "the retried --exec", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("app/x") && text.contains("app/y")
    })
    .await
    .with_context(|| agent.stderr())?;
    Ok(())
}

/// At start the agent runs `--exec` for the files it created or changed, from its cache
/// alone if need be, and not for a file that already held its config: a restart with
/// nothing changed does not reload the service.
#[tokio::test]
async fn exec_runs_at_start_for_the_files_written_and_not_for_files_already_current() -> Result<()>
{
    let (mut node, client) = note_node().await?;
    put(&client, "app/a", json!({"n": 1})).await?;
    let dir = tempfile::tempdir()?;
    let (out, log) = (dir.path().join("out"), dir.path().join("exec.log"));
    let exec = format!(
        "printf '%s\\n' \"$SCARAB_CHANGED_KEYS\" >> {}",
        log.display()
    );
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    // A first agent, without --exec, leaves the file and its cache.
    let agent = start_agent(&node, &out, None, free_port())?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 1}))).await?;
    wait_until(DEADLINE, "the agent's cache", || async {
        out.join(".scarab-agent.cache").exists()
    })
    .await?;
    drop(agent);
    // With the cluster down and the file gone, the agent writes it from its cache: a change
    // the service must hear of, though no change came from the cluster.
    node.kill()?;
    std::fs::remove_file(out.join("app/a.json"))?;
    let agent = start_agent(&node, &out, Some(&exec), free_port())?;
    wait_until(DEADLINE, "--exec for the file written at start", || async {
        logged().contains("app/a")
    })
    .await
    .with_context(|| agent.stderr())?;
    drop(agent);
    std::fs::remove_file(&log)?;
    // Started again with its file current: --exec runs first for what is pending at start,
    // so once a later change has reached it, app/a would be in the log had it been passed.
    node.restart().await?;
    let agent = start_agent(&node, &out, Some(&exec), free_port())?;
    put(node.typed(), "app/b", json!({"n": 2})).await?;
    wait_until(DEADLINE, "--exec for the new config", || async {
        logged().contains("app/b")
    })
    .await
    .with_context(|| agent.stderr())?;
    ensure!(!logged().contains("app/a"), "{}", logged());
    Ok(())
}

/// Killed at any moment, the agent leaves each file whole: the old value or the new one.
#[tokio::test]
async fn a_killed_agent_never_leaves_a_half_written_file() -> Result<()> {
    let (node, client) = note_node().await?;
    let dir = tempfile::tempdir()?;
    let out: PathBuf = dir.path().join("out");
    let path = out.join("app/big.json");
    for round in 0..8u64 {
        let mut agent = start_agent(&node, &out, None, free_port())?;
        let blob = "x".repeat(200_000 + round as usize);
        put(&client, "app/big", json!({"round": round, "blob": blob})).await?;
        wait_until(DEADLINE, "the agent to start writing", || async {
            path.exists() || out.join(".scarab-agent.cache").exists()
        })
        .await?;
        agent.child.kill()?;
        agent.child.wait()?;
        if path.exists() {
            let value = read(&path).context("a half-written file")?;
            ensure!(
                value["round"].as_u64().is_some_and(|r| r <= round),
                "{}",
                value["round"]
            );
        }
        // No temporary file is left where a reader could take it for a config.
        let Ok(entries) = std::fs::read_dir(out.join("app")) else {
            continue;
        };
        for entry in entries {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            ensure!(name == "big.json" || name.starts_with('.'), "{name}");
        }
    }
    Ok(())
}

/// Pinned to a version, a config whose change does not convert keeps its last good file, and
/// the agent says why.
#[tokio::test]
async fn a_change_that_does_not_convert_keeps_the_last_good_file() -> Result<()> {
    let (node, client) = note_node().await?;
    let schema = json!({"type": "object"});
    client
        .register_schema("wild", 1, &scarab_client::SchemaUpload::new(&schema))
        .await?;
    let plugin = std::fs::read(harness::plugin_wasm("hostile_migrator"))?;
    client
        .register_schema(
            "wild",
            2,
            &scarab_client::SchemaUpload::new(&schema).plugin(plugin),
        )
        .await?;
    let (fine, failing) = (json!({"mode": "fine"}), json!({"mode": "error"}));
    client
        .put("app/w", &PutConfig::new("wild", 1, &fine))
        .await?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let port = free_port();
    let _agent = start_agent_with(
        &node,
        &out,
        None,
        port,
        &["--schema", "wild", "--schema-version", "2"],
    )?;
    wait_file(&out.join("app/w.json"), Some(json!({"mode": "fine"}))).await?;
    client
        .put("app/w", &PutConfig::new("wild", 1, &failing))
        .await?;
    wait_until(DEADLINE, "the conversion error reported", || async {
        match local(port, "/healthz").await {
            Ok((_, _, body)) => body["conversion_errors"]["app/w"].is_string(),
            Err(_) => false,
        }
    })
    .await?;
    assert_eq!(read(&out.join("app/w.json")), Some(json!({"mode": "fine"})));
    Ok(())
}

/// Following a 3-node cluster: through a leader `kill -9`, then a stop of every node (the
/// files and the endpoint keep the last good values, flagged stale), then the cluster's
/// return (the agent resumes its watch: one full read in all).
#[tokio::test]
async fn the_agent_follows_a_cluster_through_a_failover_and_an_outage() -> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let client = cluster.client();
    client
        .register_schema(
            "note",
            1,
            &scarab_client::SchemaUpload::new(&json!({"type": "object"})),
        )
        .await?;
    put(&client, "app/a", json!({"n": 1})).await?;
    let servers = cluster
        .ids()
        .iter()
        .map(|id| cluster.node(*id).base_url().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("out");
    let port = free_port();
    let _agent = start_agent_at(&servers, &out, None, port, &[])?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 1}))).await?;
    let leader = cluster.wait_leader(&cluster.ids(), DEADLINE).await?;
    cluster.kill(leader).await?;
    put(&client, "app/a", json!({"n": 2})).await?;
    put(&client, "app/b", json!({"n": 3})).await?;
    wait_file(&out.join("app/a.json"), Some(json!({"n": 2}))).await?;
    wait_file(&out.join("app/b.json"), Some(json!({"n": 3}))).await?;
    for id in cluster.running() {
        cluster.kill(id).await?;
    }
    wait_until(DEADLINE, "stale", || async {
        matches!(local(port, "/healthz").await, Ok((503, _, _)))
    })
    .await?;
    let (status, stale, body) = local(port, "/v1/configs/app/b").await?;
    ensure!(
        status == 200 && stale.as_deref() == Some("true"),
        "{status} {stale:?}"
    );
    assert_eq!(body["value"], json!({"n": 3}));
    assert_eq!(read(&out.join("app/a.json")), Some(json!({"n": 2})));
    for id in cluster.ids() {
        cluster.restart(id).await?;
    }
    cluster.wait_leader(&cluster.ids(), DEADLINE).await?;
    put(&client, "app/c", json!({"n": 4})).await?;
    wait_file(&out.join("app/c.json"), Some(json!({"n": 4}))).await?;
    wait_until(DEADLINE, "current again", || async {
        matches!(local(port, "/healthz").await, Ok((200, _, _)))
    })
    .await?;
    let (_, _, health) = local(port, "/healthz").await?;
    assert_eq!(health["relists"], 1, "{health}");
    Ok(())
}
