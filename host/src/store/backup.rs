//! Backups: a consistent copy of the whole applied state in one file, and a restore of one
//! into an empty node's state, which then starts a new cluster with it (as `etcdctl snapshot
//! restore`).
//!
//! A backup is a snapshot file (`snapshot.rs`: header, one line per record, a trailer with
//! the record count and the SHA-256 of everything before it), written from one fjall snapshot
//! while applies go on: exactly the changes up to its revision, whatever was written during
//! it. Verify and restore read it whole and check the trailer before anything is changed, so
//! a truncated or altered backup is refused with what is wrong.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use fjall::PersistMode;

use super::snapshot::{check_snapshot_file, err, record_lines};
use super::{LogId, META_KEY, StateStore, StoreError, StoredMembership};

/// What a (verified) backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The revision it was taken at: every change up to it, none after.
    pub revision: u64,
    pub configs: u64,
    pub schema_versions: u64,
    /// Stored records (configs, schemas, plugins, history, audit, auth, settings).
    pub records: u64,
    /// The SHA-256 its trailer carries (of every byte before the trailer).
    pub sha256: String,
}

/// Why a backup was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: not a valid backup: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "the state is not empty (revision {revision}): a backup is restored into a new data directory only"
    )]
    NotEmpty { revision: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StateStore {
    /// Writes a backup of the applied state to `out` (see the module docs); the summary is
    /// of what was written (the state at the storage snapshot it was read from).
    pub fn write_backup<W: Write>(&self, out: W) -> Result<(BackupSummary, W), StoreError> {
        let (_, sm, _, out) = self.write_state(out, super::snapshot::BACKUP_FORMAT)?;
        let summary = BackupSummary {
            revision: sm.revision,
            configs: sm.live_configs,
            schema_versions: sm.schema_versions,
            records: 0,
            sha256: String::new(),
        };
        Ok((summary, out))
    }

    /// Replaces this empty state with the backup at `path`, durably: its revision, configs,
    /// schemas, plugins, history, audit trail, settings and auth data, as applied up to
    /// `at` with `membership` (a new cluster's: see `crate::restore`).
    pub fn restore_backup(
        &self,
        path: &Path,
        at: LogId,
        membership: StoredMembership,
    ) -> Result<BackupSummary, BackupError> {
        let applied = self.applied();
        if applied.revision > 0 || applied.last_applied.is_some() {
            return Err(BackupError::NotEmpty {
                revision: applied.revision,
            });
        }
        let summary = verify_backup(path)?;
        let mut reader = BufReader::new(File::open(path).map_err(StoreError::from)?);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(StoreError::from)?;
        let header: super::snapshot::Header = serde_json::from_str(&line).map_err(err)?;
        let changing = self.schemas_changing();
        let (mut batch, _) = self.load_records(record_lines(reader, header.format))?;
        let mut sm = header.sm;
        sm.last_applied = Some(at);
        sm.membership = membership;
        batch.insert(&self.meta, META_KEY, serde_json::to_vec(&sm).map_err(err)?);
        batch
            .durability(Some(PersistMode::SyncData))
            .commit()
            .map_err(StoreError::from)?;
        drop(changing);
        *self.state.lock().expect("state lock") = sm.clone();
        self.reload_auth()?;
        self.applied.send_replace(sm);
        Ok(summary)
    }
}

/// Reads a backup whole: its trailer's record count and checksum must match, and it must have
/// one (a format-1 snapshot has none and is not accepted as a backup).
pub fn verify_backup(path: &Path) -> Result<BackupSummary, BackupError> {
    let invalid = |reason: String| BackupError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let checked = check_snapshot_file(path).map_err(|e| invalid(e.to_string()))?;
    if checked.format < 2 {
        return Err(invalid(
            "it has no checksum (a snapshot of format 1)".into(),
        ));
    }
    let mut file = File::open(path).map_err(|e| invalid(e.to_string()))?;
    let header = super::snapshot::read_header(&mut file).map_err(|e| invalid(e.to_string()))?;
    Ok(BackupSummary {
        revision: header.sm.revision,
        configs: header.sm.live_configs,
        schema_versions: header.sm.schema_versions,
        records: checked.records,
        sha256: checked.sha256,
    })
}
