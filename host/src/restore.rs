//! Restoring a backup into a new data directory: the first node of a new cluster (as
//! `etcdctl snapshot restore`), which others then join.
//!
//! The directory is made as if the new node had applied the backup's whole state as the
//! first entry of a new log: the state machine holds it, applied up to log id (term 1,
//! index 1) with a membership of this node alone; the current snapshot is of that state; the
//! log is purged through that entry and the node has voted for itself in term 1. So the node
//! starts as an initialised one-voter cluster (it never runs a formation), and a node that
//! joins it gets the state by snapshot (the entries before it are gone), not by replaying a
//! log that does not hold it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::RaftLogStorage as _;

use crate::datadir::DataDir;
use crate::raft::log_store::LogStore;
pub use crate::store::{BackupError, BackupSummary, verify_backup};
use crate::store::{LogId, Membership, NodeId, NodeInfo, StateStore, StoreError, StoredMembership};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "{0} is not empty: a backup is restored into a new data directory (move the old one away first)"
    )]
    NotEmpty(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening a database in {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: fjall::Error,
    },
    #[error("writing the new node's Raft state: {0}")]
    Raft(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who the restored node will be: its id and the URLs it will be started with
/// (`--advertise`, and `--peer-advertise` when peers use another listener).
#[derive(Clone, Debug)]
pub struct NewNode {
    pub node_id: NodeId,
    pub api: String,
    pub peer: String,
}

/// Verifies `backup` in full, then makes `data_dir` (missing or empty) the data directory of
/// `node`, the only voter of a new cluster holding the backup's state. Nothing is left in
/// `data_dir` if anything fails.
pub async fn restore_backup(
    backup: &Path,
    data_dir: &Path,
    node: &NewNode,
) -> Result<BackupSummary, RestoreError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RestoreError::Io { path, source }
    };
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map_err(io(data_dir))?
            .next()
            .is_some()
    {
        return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
    }
    // Refuse a bad backup before anything is created.
    verify_backup(backup)?;
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    // Removed last: a restore cut short (kill -9) leaves it, and the node refuses the
    // directory instead of starting on part of a state.
    let marker = DataDir::new(data_dir).restoring();
    std::fs::write(&marker, b"").map_err(io(&marker))?;
    let result = write(backup, data_dir, node).await;
    let result = result.and_then(|summary| {
        std::fs::remove_file(&marker).map_err(io(&marker))?;
        Ok(summary)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(data_dir);
    }
    result
}

async fn write(
    backup: &Path,
    data_dir: &Path,
    node: &NewNode,
) -> Result<BackupSummary, RestoreError> {
    let dir = DataDir::new(data_dir);
    let open = |path: std::path::PathBuf| {
        fjall::Database::builder(&path)
            .open()
            .map_err(|source| RestoreError::Open {
                path: path.display().to_string(),
                source,
            })
    };
    let entry = LogId::new(openraft::CommittedLeaderId::new(1, node.node_id), 1);
    let info = NodeInfo {
        api: node.api.clone(),
        peer: node.peer.clone(),
    };
    let membership = StoredMembership::new(
        Some(entry),
        Membership::new(
            vec![BTreeSet::from([node.node_id])],
            BTreeMap::from([(node.node_id, info)]),
        ),
    );
    let state_db = open(dir.state_db())?;
    let store = StateStore::open(&state_db, data_dir)?;
    let summary = store.restore_backup(backup, entry, membership)?;
    // The current snapshot: what a joining node is sent.
    store.build_snapshot_file()?;
    drop(store);
    state_db
        .persist(fjall::PersistMode::SyncAll)
        .map_err(|e| RestoreError::Store(e.into()))?;
    let log_db = open(dir.raft_db())?;
    let mut log = LogStore::open(&log_db).map_err(|source| RestoreError::Open {
        path: dir.raft_db().display().to_string(),
        source,
    })?;
    log.save_vote(&openraft::Vote::new_committed(1, node.node_id))
        .await
        .map_err(|e| RestoreError::Raft(e.to_string()))?;
    log.purge(entry)
        .await
        .map_err(|e| RestoreError::Raft(e.to_string()))?;
    log_db
        .persist(fjall::PersistMode::SyncAll)
        .map_err(|e| RestoreError::Store(e.into()))?;
    Ok(summary)
}
