//! Disk faults on real `scarab` processes: a node whose data directory was damaged while it
//! was down refuses to start, says which file and what is wrong, and changes nothing (a second
//! start refuses the same way); a derived file (a compiled plugin) is rebuilt instead; and an
//! fsync that fails is an error to the client and stops the node, never an acknowledgement.

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::json;
use sha2::{Digest, Sha256};

use harness::cluster::{Cluster, ClusterOptions};
use harness::{Node, NodeOptions, STORE, assert_status, wait_until};

const NOTE: &str = "note";
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A node with a schema and `n` configs written, then stopped cleanly.
async fn stopped_node_with_configs(n: usize, extra_args: &[&str]) -> Result<Node> {
    let mut node = Node::start(NodeOptions {
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await?;
    assert_status(
        &node
            .register_schema(NOTE, 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for i in 0..n {
        assert_status(
            &node
                .put_config(
                    &format!("n/{i:03}"),
                    NOTE,
                    1,
                    &json!({"i": i, "pad": "x".repeat(200)}),
                )
                .await?,
            201,
        );
    }
    node.stop().await?;
    Ok(node)
}

/// The journal files of the database `db` ("raft" or "state"), oldest first.
fn journals(node: &Node, db: &str) -> Result<Vec<PathBuf>> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(node.data_dir().join(db))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let id = p
                .extension()
                .filter(|e| *e == "jnl")
                .and_then(|_| p.file_stem()?.to_str()?.parse().ok())?;
            Some((id, p))
        })
        .collect();
    found.sort();
    ensure!(!found.is_empty(), "no journal in {db}");
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The active journal and the length of what was written to it (it is pre-allocated with
/// zeros).
fn active_journal(node: &Node, db: &str) -> Result<(PathBuf, Vec<u8>, usize)> {
    let path = journals(node, db)?.pop().expect("one journal");
    let bytes = std::fs::read(&path)?;
    let written = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    ensure!(
        written > 10_000,
        "{} holds only {written} bytes",
        path.display()
    );
    Ok((path, bytes, written))
}

fn sha256_of_dir(dir: &Path) -> Result<String> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.strip_prefix(dir)?.to_string_lossy().as_bytes());
        hash.update(std::fs::read(&f)?);
    }
    Ok(hex::encode(hash.finalize()))
}

/// Starts the node twice on its damaged directory: each start must fail with a message naming
/// `file_hint`, and the directory must be byte-for-byte unchanged. Returns the first message.
async fn assert_refuses_twice_and_changes_nothing(
    node: &mut Node,
    file_hint: &str,
) -> Result<String> {
    let before = sha256_of_dir(node.data_dir())?;
    let mut first = String::new();
    for attempt in 1..=2 {
        let (status, log) = node.restart_expecting_exit(EXIT_TIMEOUT).await?;
        ensure!(
            !status.success(),
            "start {attempt} exited with {status}:\n{log}"
        );
        ensure!(
            log.contains("the data directory is damaged") && log.contains(file_hint),
            "start {attempt}: no clear refusal naming {file_hint}:\n{log}"
        );
        ensure!(
            sha256_of_dir(node.data_dir())? == before,
            "start {attempt} changed the data directory"
        );
        if attempt == 1 {
            first = log;
        }
    }
    Ok(first)
}

#[tokio::test]
async fn a_node_refuses_to_start_when_a_batch_in_the_middle_of_its_raft_journal_was_changed()
-> Result<()> {
    let mut node = stopped_node_with_configs(60, &[]).await?;
    let (path, mut bytes, written) = active_journal(&node, "raft")?;
    bytes[written / 2] ^= 0x5a;
    std::fs::write(&path, &bytes)?;
    let log = assert_refuses_twice_and_changes_nothing(&mut node, "raft/").await?;
    ensure!(
        log.contains("checksum"),
        "the reason is the checksum:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_a_frame_in_its_raft_journal_is_broken() -> Result<()> {
    // fjall alone would cut the journal at this frame, and every batch after it with it.
    let mut node = stopped_node_with_configs(60, &[]).await?;
    let (path, mut bytes, written) = active_journal(&node, "raft")?;
    let magic = b"FJL\x03";
    let batch_start = bytes[written / 2..written]
        .windows(magic.len())
        .position(|w| w == magic)
        .map(|p| written / 2 + p + magic.len())
        .context("a batch end in the second half")?;
    ensure!(bytes[batch_start] == 1, "a batch starts after a batch end");
    bytes[batch_start] = 0x07;
    std::fs::write(&path, &bytes)?;
    let log = assert_refuses_twice_and_changes_nothing(&mut node, "raft/").await?;
    ensure!(
        log.contains(&format!("at byte {batch_start}")),
        "names the offset:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_its_state_journal_was_changed() -> Result<()> {
    let mut node = stopped_node_with_configs(60, &[]).await?;
    let (path, mut bytes, written) = active_journal(&node, "state")?;
    bytes[written / 2] ^= 0x5a;
    std::fs::write(&path, &bytes)?;
    assert_refuses_twice_and_changes_nothing(&mut node, "state/").await?;
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_its_raft_journal_was_cut_short() -> Result<()> {
    let mut node = stopped_node_with_configs(60, &[]).await?;
    let (path, bytes, written) = active_journal(&node, "raft")?;
    // Cut inside a batch: it looks like an interrupted last write, so it is kept aside and cut,
    // and then the state machine is found ahead of what the log still holds.
    std::fs::write(&path, &bytes[..written * 6 / 10])?;
    for attempt in 1..=2 {
        let (status, log) = node.restart_expecting_exit(EXIT_TIMEOUT).await?;
        ensure!(
            !status.success(),
            "start {attempt} exited with {status}:\n{log}"
        );
        ensure!(
            log.contains("the data directory is") && log.contains("missing from the log")
                || log.contains("the vote was lost"),
            "start {attempt}: no clear refusal:\n{log}"
        );
    }
    let torn: Vec<PathBuf> = std::fs::read_dir(node.data_dir().join("torn"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    ensure!(torn.len() == 1, "one copy of the cut journal: {torn:?}");
    ensure!(
        std::fs::read(&torn[0])? == bytes[..written * 6 / 10],
        "the copy holds the journal as it was found"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_start_when_its_snapshot_file_was_changed() -> Result<()> {
    let mut node = stopped_node_with_configs(
        60,
        &[
            "--snapshot-threshold",
            "20",
            "--snapshot-log-ratio",
            "0",
            "--log-keep",
            "5",
        ],
    )
    .await?;
    let snapshots = node.data_dir().join("snapshots");
    let snap = std::fs::read_dir(&snapshots)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .context("a snapshot file")?;
    let mut bytes = std::fs::read(&snap)?;
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&snap, &bytes)?;
    let log = assert_refuses_twice_and_changes_nothing(&mut node, "snapshots/").await?;
    // The file is in LZ4 blocks (format 3 on): a changed byte shows as a block or a record that
    // no longer decodes, or else as a checksum that no longer matches.
    ensure!(
        ["checksum", "does not decode", "does not decompress"]
            .iter()
            .any(|why| log.contains(why)),
        "the reason is the damage found:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn a_node_restarts_after_an_interrupted_last_write() -> Result<()> {
    // A torn tail is what a power cut leaves: not damage. The half-written batch was never
    // acknowledged, so it is cut (and kept aside) and the node starts with everything else.
    let mut node = stopped_node_with_configs(20, &[]).await?;
    let (path, mut bytes, written) = active_journal(&node, "state")?;
    let garbage = [1u8, 5, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 2, 0];
    bytes[written..written + garbage.len()].copy_from_slice(&garbage);
    std::fs::write(&path, &bytes)?;
    node.restart().await?;
    for i in 0..20 {
        assert_status(&node.get_config(&format!("n/{i:03}")).await?, 200);
    }
    ensure!(
        node.data_dir().join("torn").read_dir()?.count() == 1,
        "the cut bytes are kept"
    );
    Ok(())
}

#[tokio::test]
async fn a_damaged_compiled_plugin_in_the_cache_is_compiled_again() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let mut node = Node::start(NodeOptions {
        extra_args: vec![
            "--plugin-cache-dir".into(),
            cache.path().display().to_string(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    assert_status(&node.register_kind(STORE).await?, 201);
    node.stop().await?;
    let cwasm = std::fs::read_dir(cache.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .context("a compiled component in the cache")?;
    let mut bytes = std::fs::read(&cwasm)?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&cwasm, &bytes)?;

    node.restart().await?;
    let sample = STORE.valid_sample();
    assert_status(
        &node
            .put_config(&sample.key, "store", 1, &sample.value)
            .await?,
        201,
    );
    let status = node.status().await?;
    ensure!(
        status.plugins.compiled == 1 && status.plugins.from_disk_cache == 0,
        "the damaged artifact was not used but compiled again: {status:?}"
    );
    Ok(())
}

/// Makes `fsync` fail in the node(s) whose failpoint directory is `dir`, while the guard lives.
struct FsyncFault(PathBuf);

impl FsyncFault {
    fn trigger(dir: &Path) -> Result<FsyncFault> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("fsync");
        std::fs::write(&file, b"")?;
        Ok(FsyncFault(file))
    }
}

impl Drop for FsyncFault {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn an_fsync_error_fails_the_write_and_stops_the_node_and_nothing_acknowledged_is_lost()
-> Result<()> {
    let failpoints = tempfile::tempdir()?;
    let mut node = Node::start(NodeOptions {
        env: vec![(
            "SCARAB_FAILPOINTS_DIR".into(),
            failpoints.path().display().to_string(),
        )],
        ..NodeOptions::default()
    })
    .await?;
    assert_status(
        &node
            .register_schema(NOTE, 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for i in 0..10 {
        assert_status(
            &node
                .put_config(&format!("before/{i}"), NOTE, 1, &json!({"i": i}))
                .await?,
            201,
        );
    }

    let fault = FsyncFault::trigger(failpoints.path())?;
    // Several writes at once, so that some queue behind the failing fsync.
    let api = node.api().clone();
    let writes = (0..8).map(|i| {
        let api = api.clone();
        async move {
            api.put_config(&format!("during/{i}"), NOTE, 1, &json!({"i": i}))
                .await
        }
    });
    for (i, outcome) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        match outcome {
            Ok(reply) if reply.status.is_success() => {
                bail!("write {i} was acknowledged although its fsync failed: {reply}")
            }
            Ok(reply) => ensure!(
                reply.status.is_server_error() && reply.error_code().is_some(),
                "write {i}: expected a 5xx with an error code, got {reply}"
            ),
            Err(_) => {} // the node stopped while the request was in flight: not acknowledged
        }
    }
    let status = node.wait_exit(EXIT_TIMEOUT).await?;
    ensure!(!status.success(), "the node exits with an error: {status}");
    ensure!(
        std::fs::read_to_string(node.log_path())?.contains("fsync of the raft log failed"),
        "the log says why:\n{}",
        node.log_tail(20)
    );

    drop(fault);
    node.restart().await?;
    for i in 0..10 {
        assert_status(&node.get_config(&format!("before/{i}")).await?, 200);
    }
    // Writes work again after the disk recovered.
    assert_status(
        &node
            .put_config("after/0", NOTE, 1, &json!({"i": 0}))
            .await?,
        201,
    );
    Ok(())
}

#[tokio::test]
async fn a_leader_whose_fsync_fails_stops_and_the_cluster_goes_on_with_every_acknowledged_write()
-> Result<()> {
    let failpoints = tempfile::tempdir()?;
    let template = failpoints.path().join("n{id}").display().to_string();
    let mut cluster =
        Cluster::start(ClusterOptions::new(3).env("SCARAB_FAILPOINTS_DIR", &template)).await?;
    let leader = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    let api = cluster.api(leader);
    assert_status(
        &api.register_schema(NOTE, 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for i in 0..10 {
        assert_status(
            &api.put_config(&format!("before/{i}"), NOTE, 1, &json!({"i": i}))
                .await?,
            201,
        );
    }
    let _fault = FsyncFault::trigger(&failpoints.path().join(format!("n{leader}")))?;
    // The next write on the leader fails its fsync; whatever the client hears, the node stops.
    let _ = api.put_config("during/0", NOTE, 1, &json!({"i": 0})).await;
    let status = cluster.node_mut(leader).wait_exit(EXIT_TIMEOUT).await?;
    ensure!(
        !status.success(),
        "the leader exits with an error: {status}"
    );

    let others: Vec<_> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster
        .wait_leader(&others, Duration::from_secs(30))
        .await?;
    let api = cluster.api(new_leader);
    wait_until(Duration::from_secs(30), "a write on the new leader", || {
        let api = api.clone();
        async move {
            api.put_config("after/0", NOTE, 1, &json!({"i": 0}))
                .await
                .is_ok_and(|r| r.status.is_success())
        }
    })
    .await?;
    for i in 0..10 {
        assert_status(&api.get_config(&format!("before/{i}")).await?, 200);
    }
    cluster.pass();
    Ok(())
}

#[tokio::test]
async fn a_voter_that_lost_its_data_directory_is_refused_until_removed_and_then_rejoins()
-> Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::new(3)).await?;
    let leader = cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    let api = cluster.api(leader);
    assert_status(
        &api.register_schema(NOTE, 1, json!({"type": "object"}), None)
            .await?,
        201,
    );
    for i in 0..10 {
        assert_status(
            &api.put_config(&format!("before/{i}"), NOTE, 1, &json!({"i": i}))
                .await?,
            201,
        );
    }
    let lost = if leader == 3 { 2 } else { 3 };
    cluster
        .wait_converged(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    cluster.stop(lost).await?;
    let data = cluster.node(lost).data_dir().to_path_buf();
    std::fs::rename(&data, data.with_extension("lost"))?;

    // Same id, same addresses, no state: it would vote as if it remembered.
    let (status, log) = cluster
        .node_mut(lost)
        .restart_expecting_exit(EXIT_TIMEOUT)
        .await?;
    ensure!(!status.success(), "the node exits with an error: {status}");
    ensure!(
        log.contains("came back without its Raft state"),
        "the refusal says why:\n{log}"
    );

    assert_status(&api.remove_member(lost).await?, 200);
    std::fs::remove_dir_all(&data)?;
    cluster.restart(lost).await?;
    cluster
        .wait_formed(&[1, 2, 3], Duration::from_secs(60))
        .await?;
    cluster
        .wait_converged(&[1, 2, 3], Duration::from_secs(30))
        .await?;
    for i in 0..10 {
        assert_status(
            &cluster
                .api(lost)
                .get_config_stale(&format!("before/{i}"))
                .await?,
            200,
        );
    }
    cluster.pass();
    Ok(())
}
