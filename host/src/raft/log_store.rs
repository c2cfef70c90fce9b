//! The Raft log and vote on fjall, with group commit.
//!
//! Entries are written to fjall's journal without an fsync; the `LogFlushed` callbacks go to one
//! flusher thread that fsyncs once for every callback queued while the previous fsync ran. So a
//! write is acknowledged only once its entry is durable, and concurrent writers share fsyncs.
//! The state machine lives in the same fjall database (other keyspaces) and never fsyncs: the
//! journal is one sequential file, so the next log fsync also makes every earlier state write
//! durable, and anything lost in a crash is re-applied from the log.

#![allow(clippy::result_large_err)] // openraft's StorageError is large by design; it is what the traits return.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::thread;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};

use super::{Entry, LogId, StorageError, TypeConfig, Vote, io_err};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Log storage handle. Cloning is cheap; clones share the keyspaces and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl LogStore {
    /// Opens (or creates) the log keyspaces in `db` and starts the flusher thread. The thread
    /// ends when the last clone of the store is dropped.
    pub fn open(db: &Database) -> Result<Self, fjall::Error> {
        let log = db.keyspace("raft_log", KeyspaceCreateOptions::default)?;
        let meta = db.keyspace("raft_meta", KeyspaceCreateOptions::default)?;
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let flush_db = db.clone();
        thread::Builder::new()
            .name("scarab-log-flush".into())
            .spawn(move || group_commit(flush_db, rx))
            .expect("spawn log flusher");
        Ok(Self {
            db: db.clone(),
            log,
            meta,
            flusher: tx,
        })
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let Some(bytes) = self
            .meta
            .get(key)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    fn put_json<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.log.last_key_value() {
            None => Ok(None),
            Some(guard) => {
                let (_, v) = guard
                    .into_inner()
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                let entry: Entry = serde_json::from_slice(&v)
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

/// Index keys are big-endian so that fjall's byte order is log order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// One fsync for every callback that queued up while the previous fsync ran.
fn group_commit(db: Database, rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        let result = db.persist(PersistMode::SyncData);
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync of the raft log failed; the node cannot acknowledge writes");
        }
        for callback in waiting {
            callback.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            });
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for guard in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, v) = guard
                .into_inner()
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            entries.push(
                serde_json::from_slice(&v)
                    .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?,
            );
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_json(LAST_PURGED)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_json(VOTE, vote)?;
        // A vote must survive a crash before it is answered, or a node could vote twice in a term.
        self.db
            .persist(PersistMode::SyncData)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_json(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: it is only a hint that lets a restarted node re-apply without waiting
        // for a leader; the next log fsync makes it durable anyway.
        self.put_json(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_json::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.db.batch();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            batch.insert(&self.log, index_key(entry.log_id.index), bytes);
        }
        batch
            .commit()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // Durability is the flusher's job; openraft may send more entries meanwhile.
        self.flusher
            .send(callback)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = self.db.batch();
        for guard in self.log.range(index_key(log_id.index)..) {
            let key = guard
                .key()
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            batch.remove(&self.log, key);
        }
        batch
            .commit()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point first: a crash in between leaves entries below it, which
        // get_log_state ignores, never a gap that it cannot explain.
        self.put_json(LAST_PURGED, &log_id)?;
        let mut batch = self.db.batch();
        for guard in self.log.range(..=index_key(log_id.index)) {
            let key = guard
                .key()
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
            batch.remove(&self.log, key);
        }
        batch
            .commit()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::*;
    use crate::store::{StateMachine, StateStore};

    struct FjallBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for FjallBuilder {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let db = Database::builder(dir.path().join("db"))
                .open()
                .expect("open fjall");
            let log = LogStore::open(&db).expect("open log store");
            let store = StateStore::open(&db, dir.path()).expect("open state store");
            Ok((dir, log, StateMachine::new(store)))
        }
    }

    #[test]
    fn log_store_and_state_machine_pass_openraft_storage_suite() {
        Suite::test_all(FjallBuilder).expect("storage suite");
    }
}
