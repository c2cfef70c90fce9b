//! Backup and restore against real processes: a backup taken during a write load holds
//! exactly the changes up to its revision; restored as the first node of a new 3-node
//! cluster, it gives the same configs, schemas, history and audit trail on every node; a
//! truncated or altered backup is refused by `verify` and `restore`; `restore` refuses a data
//! directory in use.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures::StreamExt as _;
use scarab_client::types::PutConfig;
use scarab_client::{Client, ListOptions};
use serde_json::{Value, json};

use harness::{Formation, Node, NodeOptions, Ready, wait_until};

const DEADLINE: Duration = Duration::from_secs(30);

/// `scarab ARGS`: exit code, stdout, stderr.
fn scarab(args: &[&str]) -> Result<(i32, String, String)> {
    let out = std::process::Command::new(harness::scarab_bin())
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A node with `note` registered, and its client.
async fn note_node() -> Result<(Node, Client)> {
    let node = harness::start_note_node(&[]).await?;
    let client = node.typed().clone();
    Ok((node, client))
}

/// Every config: key → (value, revision, key version).
async fn configs(client: &Client) -> Result<BTreeMap<String, (Value, u64, u64)>> {
    let mut out = BTreeMap::new();
    let mut list = std::pin::pin!(client.list(ListOptions::prefix("")));
    while let Some(e) = list.next().await {
        let e = e?;
        out.insert(e.meta.key, (e.value, e.meta.revision, e.meta.key_version));
    }
    Ok(out)
}

fn create_backup(node: &Node, file: &Path) -> Result<String> {
    let (code, out, err) = scarab(&[
        "backup",
        "create",
        file.to_str().context("path")?,
        "-s",
        node.base_url(),
    ])?;
    ensure!(code == 0, "{out}\n{err}");
    Ok(out)
}

/// Stops `node`, empties its data directory and restores `file` into it as node `id`.
async fn restore_into(node: &mut Node, file: &Path) -> Result<()> {
    node.stop().await?;
    let dir = node.data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir)?;
    let (code, out, err) = scarab(&[
        "restore",
        file.to_str().context("path")?,
        "--data-dir",
        dir.to_str().context("path")?,
        "--node-id",
        &node.opts.node_id.to_string(),
        "--advertise",
        node.base_url(),
    ])?;
    ensure!(code == 0, "{out}\n{err}");
    node.restart().await
}

#[tokio::test]
async fn a_backup_taken_during_writes_holds_exactly_the_changes_up_to_its_revision() -> Result<()> {
    let (node, client) = note_node().await?;
    // Writers: each acknowledged write's revision, by key.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("load/{w}/{i}");
                    if let Ok(r) = client
                        .put(&key, &PutConfig::new("note", 1, &json!({"i": i})))
                        .await
                    {
                        acked.lock().expect("acked").insert(key, r.body.revision);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    wait_until(DEADLINE, "a write load", || async {
        acked.lock().expect("acked").len() > 50
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("load.snap");
    create_backup(&node, &file)?;
    wait_until(DEADLINE, "writes after the backup", || async {
        acked.lock().expect("acked").len() > 200
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await?;
    }
    let (code, out, err) = scarab(&["backup", "verify", file.to_str().context("path")?])?;
    ensure!(code == 0, "{out}\n{err}");
    let revision: u64 = out
        .split("at revision ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("no revision in {out:?}"))?;
    let (mut restored, restored_client) = note_node().await?;
    restore_into(&mut restored, &file).await?;
    let have = configs(&restored_client).await?;
    let want: Vec<String> = acked
        .lock()
        .expect("acked")
        .iter()
        .filter(|(_, r)| **r <= revision)
        .map(|(k, _)| k.clone())
        .collect();
    let have_keys: Vec<String> = have.keys().cloned().collect();
    assert_eq!(have_keys, want, "the backup at revision {revision}");
    ensure!(
        want.len() < acked.lock().expect("acked").len(),
        "no write came after the backup"
    );
    Ok(())
}

#[tokio::test]
async fn a_restored_cluster_has_the_same_configs_schemas_history_and_audit() -> Result<()> {
    let (source, client) = note_node().await?;
    for i in 0..5 {
        client
            .put(
                &format!("app/{i}"),
                &PutConfig::new("note", 1, &json!({"v": 1})),
            )
            .await?;
        client
            .put(
                &format!("app/{i}"),
                &PutConfig::new("note", 1, &json!({"v": 2})),
            )
            .await?;
    }
    client.delete("app/4").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.snap");
    create_backup(&source, &file)?;
    let source_configs = configs(&client).await?;
    let source_history = client.history("app/0", &Default::default()).await?.body;
    let source_audit = client.audit_page(&Default::default()).await?.body;
    let source_schemas = client.schemas().await?.body;

    // Node 1 of the new cluster from the backup; nodes 2 and 3 join it.
    let (mut first, _) = note_node().await?;
    restore_into(&mut first, &file).await?;
    let mut others = Vec::new();
    for id in [2, 3] {
        others.push(
            Node::start(NodeOptions {
                node_id: id,
                formation: Formation::Join(vec![first.base_url().to_string()]),
                ready: Ready::Serving,
                ..NodeOptions::default()
            })
            .await?,
        );
    }
    for node in std::iter::once(&first).chain(&others) {
        let c = node.typed().clone();
        wait_until(DEADLINE, "the restored state on every node", || async {
            configs(&c).await.is_ok_and(|have| have == source_configs)
        })
        .await?;
        assert_eq!(c.schemas().await?.body, source_schemas);
        assert_eq!(
            c.history("app/0", &Default::default()).await?.body,
            source_history
        );
        let audit = c.audit_page(&Default::default()).await?.body;
        // The new cluster's own membership changes come on top; the restored trail is there.
        for record in &source_audit.items {
            ensure!(audit.items.contains(record), "{record:?} missing");
        }
    }
    // And it takes writes.
    first
        .typed()
        .put("app/new", &PutConfig::new("note", 1, &json!({"v": 3})))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_truncated_or_altered_backup_is_refused_by_verify_and_restore() -> Result<()> {
    let (node, client) = note_node().await?;
    client
        .put("app/a", &PutConfig::new("note", 1, &json!({"v": 1})))
        .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("good.snap");
    create_backup(&node, &file)?;
    let bytes = std::fs::read(&file)?;
    let truncated = dir.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() - 40])?;
    let altered = dir.path().join("altered.snap");
    let mut changed = bytes.clone();
    let at = changed
        .windows(4)
        .position(|w| w == b"app/")
        .context("a key in the backup")?;
    changed[at] = b'b';
    std::fs::write(&altered, &changed)?;
    for (bad, why) in [(&truncated, "cut short"), (&altered, "")] {
        let path = bad.to_str().context("path")?;
        let (code, out, err) = scarab(&["backup", "verify", path])?;
        ensure!(
            code == 1 && err.contains("not a valid backup") && err.contains(why),
            "{out}\n{err}"
        );
        let target = dir.path().join("restored");
        let (code, _, err) = scarab(&[
            "restore",
            path,
            "--data-dir",
            target.to_str().context("path")?,
            "--node-id",
            "1",
            "--advertise",
            "http://127.0.0.1:1",
        ])?;
        ensure!(code == 1 && err.contains("not a valid backup"), "{err}");
        ensure!(
            !target.exists(),
            "a refused restore left {}",
            target.display()
        );
    }
    Ok(())
}

#[tokio::test]
async fn restore_refuses_a_data_directory_that_is_not_empty() -> Result<()> {
    let (node, _) = note_node().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("b.snap");
    create_backup(&node, &file)?;
    let (code, _, err) = scarab(&[
        "restore",
        file.to_str().context("path")?,
        "--data-dir",
        node.data_dir().to_str().context("path")?,
        "--node-id",
        "1",
        "--advertise",
        "http://127.0.0.1:1",
    ])?;
    ensure!(code == 1 && err.contains("is not empty"), "{err}");
    Ok(())
}

/// A restore cut short leaves its marker, and a node refuses to start on the directory.
#[tokio::test]
async fn a_node_refuses_a_data_directory_whose_restore_did_not_finish() -> Result<()> {
    let (node, client) = note_node().await?;
    client
        .put("app/a", &PutConfig::new("note", 1, &json!({"v": 1})))
        .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("b.snap");
    create_backup(&node, &file)?;
    let (mut target, _) = note_node().await?;
    restore_into(&mut target, &file).await?;
    target.stop().await?;
    // As a kill -9 in the middle of `scarab restore` leaves it.
    std::fs::write(target.data_dir().join("RESTORE-IN-PROGRESS"), b"")?;
    let (status, log) = target.restart_expecting_exit(DEADLINE).await?;
    ensure!(!status.success(), "{log}");
    ensure!(log.contains("a restore into it did not finish"), "{log}");
    Ok(())
}
