//! The data directory: its layout, and the checks a node runs on it before it serves. It owns
//! deciding whether the files on disk can be trusted; it does not own the databases in them
//! (`raft`, `store`) nor repair anything but an interrupted last write.
//!
//! Two phases. Before fjall opens a database, [`DataDir::check_before_open`] scans its journal
//! files, because fjall's recovery would truncate at the first undecodable frame and so
//! destroy the evidence (and the acknowledged batches after it), and checks the snapshot
//! file's checksum. After opening, [`verify_opened`] reads everything once and cross-checks
//! the Raft log against the state machine and the snapshot. Either phase refuses to start with [`DataDirError`], naming the
//! file and what is wrong. See DESIGN.md beside this file.

mod journal;

use std::fs;
use std::path::{Path, PathBuf};

use crate::raft::LogId;
use crate::raft::log_store::LogStore;
use crate::store::StateStore;

pub use journal::Scan;

/// Where what is kept under `--data-dir`.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data directory is damaged: {file}: {what}. The node did not start and changed nothing. Restore this node's data directory from a backup or, in a cluster whose other nodes are healthy, move it aside and add the node again (README: Reliability)"
    )]
    Damaged { file: String, what: String },
    #[error(
        "the data directory is inconsistent: {what}. The node did not start. Restore this node's data directory from a backup or, in a cluster whose other nodes are healthy, move it aside and add the node again (README: Reliability)"
    )]
    Inconsistent { what: String },
    #[error("cannot check the data directory at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Present while `scarab restore` writes this directory: a node never starts on a
    /// half-restored one.
    pub fn restoring(&self) -> PathBuf {
        self.root.join("RESTORE-IN-PROGRESS")
    }

    /// The Raft log's database (log, vote, purge point); fsynced on every append.
    pub fn raft_db(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// The state machine's database; never fsynced (the log is).
    pub fn state_db(&self) -> PathBuf {
        self.root.join("state")
    }

    /// Snapshot files (see `store/snapshot.rs`).
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Where an interrupted last write cut from a journal is kept, for the record.
    pub fn torn_dir(&self) -> PathBuf {
        self.root.join("torn")
    }

    /// Everything that can be checked before the databases are opened (opening them may
    /// write): the current snapshot file's checksum, and the journals of both databases.
    /// Damage refuses the start with the files untouched. A torn tail (an interrupted last
    /// write, which no client was told succeeded) is copied to [`Self::torn_dir`] and cut,
    /// which is what fjall would do anyway, except that fjall also refuses a torn batch whose
    /// checksum does not match. Returns what the snapshot covers.
    pub fn check_before_open(&self) -> Result<Checked, DataDirError> {
        if self.restoring().exists() {
            return Err(DataDirError::Inconsistent {
                what: format!(
                    "a restore into it did not finish ({} is there): remove the directory and restore again",
                    self.restoring().display()
                ),
            });
        }
        let snapshot = crate::store::verify_current_snapshot(&self.snapshots()).map_err(|e| {
            DataDirError::Damaged {
                file: self.snapshots().display().to_string(),
                what: e.to_string(),
            }
        })?;
        self.check_journals()?;
        Ok(Checked { snapshot })
    }

    fn check_journals(&self) -> Result<(), DataDirError> {
        for db in [self.raft_db(), self.state_db()] {
            let journals = journals(&db).map_err(|source| io(&db, source))?;
            let count = journals.len();
            for (i, path) in journals.into_iter().enumerate() {
                let bytes = fs::read(&path).map_err(|source| io(&path, source))?;
                match journal::scan(&bytes) {
                    Scan::Clean { .. } => {}
                    Scan::Damaged { offset, what } => {
                        return Err(DataDirError::Damaged {
                            file: path.display().to_string(),
                            what: format!("at byte {offset}: {what}"),
                        });
                    }
                    Scan::TornTail { .. } if i + 1 < count => {
                        // Journals are fsynced before a newer one is started.
                        return Err(DataDirError::Damaged {
                            file: path.display().to_string(),
                            what:
                                "a sealed journal (a newer one exists) ends in an incomplete batch"
                                    .into(),
                        });
                    }
                    Scan::TornTail { valid_end, .. } => self
                        .cut_torn_tail(&db, &path, valid_end)
                        .map_err(|source| io(&path, source))?,
                }
            }
        }
        Ok(())
    }

    fn cut_torn_tail(&self, db: &Path, path: &Path, valid_end: u64) -> std::io::Result<()> {
        let dir = self.torn_dir();
        fs::create_dir_all(&dir)?;
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let name = format!(
            "{}-{}-{secs}",
            db.file_name().unwrap_or_default().to_string_lossy(),
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let copy = dir.join(name);
        fs::copy(path, &copy)?;
        fs::File::open(&copy)?.sync_all()?;
        let file = fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(valid_end)?;
        file.sync_all()?;
        tracing::warn!(
            journal = %path.display(),
            at = valid_end,
            copy = %copy.display(),
            "cut an interrupted last write from a journal (it was never acknowledged); the whole file is kept"
        );
        Ok(())
    }
}

/// What [`DataDir::check_before_open`] learnt.
#[derive(Debug)]
pub struct Checked {
    /// The last log id the current snapshot file covers.
    pub snapshot: Option<LogId>,
}

/// A database's journal files, oldest first (fjall names them `<id>.jnl`).
fn journals(db: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !db.exists() {
        return Ok(vec![]);
    }
    let mut found = vec![];
    for entry in fs::read_dir(db)? {
        let path = entry?.path();
        let id = path
            .extension()
            .filter(|e| *e == "jnl")
            .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
        if let Some(id) = id {
            found.push((id, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn io(path: &Path, source: std::io::Error) -> DataDirError {
    DataDirError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// After both databases are open and before Raft starts: reads the log and the state in
/// full, and checks that the log explains the state. The state machine is never ahead of
/// what the log (or the snapshot) holds, because an entry is fsynced in the log before it
/// is applied; if it is ahead, committed entries were lost from the log, and this node could
/// help elect a leader without them.
pub fn verify_opened(
    dir: &DataDir,
    checked: &Checked,
    log: &LogStore,
    store: &StateStore,
) -> Result<(), DataDirError> {
    let summary = log.verify().map_err(|e| DataDirError::Damaged {
        file: dir.raft_db().display().to_string(),
        what: e.to_string(),
    })?;
    store.verify().map_err(|e| DataDirError::Damaged {
        file: dir.state_db().display().to_string(),
        what: e.to_string(),
    })?;
    let snapshot = checked.snapshot;
    let applied = store.applied().last_applied.map(|l| l.index);
    let covered = [summary.last, summary.last_purged, snapshot]
        .into_iter()
        .flatten()
        .map(|l| l.index)
        .max();
    if let Some(applied) = applied
        && covered.is_none_or(|c| c < applied)
    {
        return Err(DataDirError::Inconsistent {
            what: format!(
                "the state machine has applied the Raft log up to index {applied}, but the log in {} ends at {} and no snapshot covers the rest: committed entries are missing from the log (a truncated or lost journal)",
                dir.raft_db().display(),
                covered.map_or("its start".to_string(), |c| format!("index {c}"))
            ),
        });
    }
    tracing::debug!(
        entries = summary.entries,
        ?applied,
        "data directory verified"
    );
    Ok(())
}
