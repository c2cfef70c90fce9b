//! The Raft log and vote on fjall, with group commit.
//!
//! `append` only puts the entries in an in-memory tail (readable at once, as openraft requires)
//! and queues its `LogFlushed` callback. One writer thread takes everything queued while its
//! previous fsync ran, writes it to fjall in one batch, fsyncs once, and then fires all those
//! callbacks. So a write is acknowledged only once its entry is durable, concurrent writers
//! share one fsync, and Raft never waits for the disk while it accepts more entries (fjall
//! holds its journal lock during an fsync; only the writer thread ever waits on it).
//!
//! The log has its own fjall database; the state machine's never fsyncs (see DESIGN.md).
//!
//! A failed write or fsync poisons the store for good: after a failed fsync the kernel may
//! have dropped the dirty pages and a later fsync can "succeed" without them (PostgreSQL's
//! fsyncgate), so nothing is acknowledged after the first failure. openraft treats the error
//! as fatal, and the node stops (see `node.rs`); a restart recovers from what is on disk.

#![allow(clippy::result_large_err)] // openraft's StorageError is large by design; it is what the traits return.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use fjall::{Database, Keyspace, PersistMode};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader};

use super::{Entry, LogId, StorageError, TypeConfig, Vote, io_err};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// What the writer thread is asked to do, in order.
enum Job {
    /// Make everything appended so far durable, then call back.
    Flush(LogFlushed<TypeConfig>),
    /// Make everything appended so far durable, then signal (before a truncate).
    Barrier(mpsc::Sender<Result<(), LogFailure>>),
}

/// Entries appended but not yet written to fjall: index → (log id, encoded entry).
type Tail = Arc<Mutex<BTreeMap<u64, (LogId, Arc<[u8]>)>>>;

/// The entries this process appended most recently, as openraft handed them over (at most
/// [`RECENT_BYTES`] of them, encoded), for the readers that follow right behind an append:
/// the state machine applying them and, on a leader, each follower's replication. Without it
/// each of them read the entry back from fjall and decoded its JSON again: on a leader of
/// three, three decodes of every entry (BENCHMARKS.md). Always a contiguous run of the log's
/// newest entries (appends come in order, eviction takes the oldest, truncation the newest,
/// a purge the oldest), so a range it covers needs nothing else.
#[derive(Default)]
struct Recent {
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

/// Encoded bytes of the entries [`Recent`] holds at most: at 256-byte values, about 15,000
/// writes, far more than apply and replication lag behind an append while they keep up. A
/// follower further behind is sent entries read from fjall, as before.
const RECENT_BYTES: usize = 8 << 20;

impl Recent {
    fn insert(&mut self, entry: Entry, bytes: usize) {
        // openraft truncates before it appends over a conflict; should an append ever replace
        // entries or skip some, the run restarts rather than holding a stale or broken one.
        let index = entry.log_id.index;
        match self.entries.last_key_value() {
            Some((&last, _)) if index <= last => self.remove(index..),
            Some((&last, _)) if index > last + 1 => self.remove(..),
            _ => {}
        }
        self.entries.insert(index, (entry, bytes));
        self.bytes += bytes;
        while self.bytes > RECENT_BYTES {
            let Some((_, (_, b))) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= b;
        }
    }

    /// Removes the entries in `range`.
    fn remove(&mut self, range: impl RangeBounds<u64>) {
        let gone: Vec<u64> = self.entries.range(range).map(|(i, _)| *i).collect();
        for i in gone {
            if let Some((_, b)) = self.entries.remove(&i) {
                self.bytes -= b;
            }
        }
    }

    /// The entries of `range`, if this holds every one of them that the log holds.
    fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<Entry>> {
        let (&first, _) = self.entries.first_key_value()?;
        let (&last, _) = self.entries.last_key_value()?;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        // Exclusive; nothing in the log is past `last`.
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        }
        .min(last + 1);
        if start < first || start > end {
            return None;
        }
        let entries: Vec<Entry> = self
            .entries
            .range(start..end)
            .map(|(_, (e, _))| e.clone())
            .collect();
        (entries.len() as u64 == end - start).then_some(entries)
    }
}

/// The latest committed log id reported by openraft, written by the writer with its next batch.
type Committed = Arc<Mutex<Option<Option<LogId>>>>;

/// The first storage failure, if any: once set, every later write fails with it.
type Poison = Arc<Mutex<Option<LogFailure>>>;

/// Why the log accepts no more writes (every later write fails with the first failure).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogFailure {
    #[error("writing the raft log failed: {0}")]
    Write(Arc<fjall::Error>),
    #[error("fsync of the raft log failed: {0}")]
    Fsync(Arc<fjall::Error>),
    #[error("the raft log failed earlier and accepts no more writes: {0}")]
    Poisoned(Box<LogFailure>),
}

/// What `LogStore::verify` found wrong with the log on disk.
#[derive(Debug, thiserror::Error)]
pub enum LogDamage {
    #[error("reading the log: {0}")]
    Read(#[from] fjall::Error),
    #[error("reading the log's metadata: {0}")]
    Meta(#[from] StorageError),
    #[error("a log key of {0} bytes")]
    KeyLength(usize),
    #[error(
        "log entry {index} does not decode: {error}. The node cannot apply it; see README, Reliability: \"An entry no node can apply\""
    )]
    Undecodable {
        index: u64,
        error: serde_json::Error,
    },
    #[error("the log entry stored at index {index} is entry {found}")]
    Misplaced { index: u64, found: u64 },
    #[error("the log has a gap: entry {index} where entry {expected} should be")]
    Gap { index: u64, expected: u64 },
    #[error(
        "the saved vote ({}) is older than the log's last entry (term {term}): the vote was lost",
        voted.map_or("none".to_string(), |t| format!("term {t}"))
    )]
    VoteLost { voted: Option<u64>, term: u64 },
}

/// Log storage handle. Cloning is cheap; clones share the keyspaces, the tail and the writer.
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    tail: Tail,
    recent: Arc<Mutex<Recent>>,
    committed: Committed,
    poison: Poison,
    writer: mpsc::Sender<Job>,
    /// Bytes of encoded entries appended by this process (for the snapshot policy).
    appended: Arc<std::sync::atomic::AtomicU64>,
}

/// Makes everything written to `db` durable, unless the store is poisoned; poisons it if that
/// fails.
fn sync(db: &Database, poison: &Poison) -> Result<(), LogFailure> {
    let mut failed = poison.lock().expect("log poison");
    if let Some(first) = failed.as_ref() {
        return Err(LogFailure::Poisoned(Box::new(first.clone())));
    }
    let started = std::time::Instant::now();
    let result = crate::failpoint::io_error("fsync")
        .map_err(fjall::Error::from)
        .and_then(|()| db.persist(PersistMode::SyncData));
    crate::metrics::get()
        .log_fsync
        .observe(started.elapsed().as_secs_f64());
    result.map_err(|e| {
        let failure = LogFailure::Fsync(Arc::new(e));
        *failed = Some(failure.clone());
        failure
    })
}

impl LogStore {
    /// Opens (or creates) the log keyspaces in `db` and starts the writer thread. The thread
    /// ends when the last clone of the store is dropped.
    pub fn open(db: &Database) -> Result<Self, fjall::Error> {
        let log = db.keyspace("raft_log", crate::store::keyspace_options)?;
        let meta = db.keyspace("raft_meta", crate::store::keyspace_options)?;
        let tail: Tail = Arc::default();
        let committed: Committed = Arc::default();
        let poison: Poison = Arc::default();
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = Writer {
            db: db.clone(),
            log: log.clone(),
            meta: meta.clone(),
            tail: tail.clone(),
            committed: committed.clone(),
            poison: poison.clone(),
        };
        thread::Builder::new()
            .name("scarab-log-writer".into())
            .spawn(move || writer.run(rx))
            .expect("spawn log writer");
        Ok(Self {
            db: db.clone(),
            log,
            meta,
            tail,
            recent: Arc::default(),
            committed,
            poison,
            writer: tx,
            appended: Default::default(),
        })
    }

    /// The count of bytes of encoded entries this process appended (see
    /// `raft::snapshot_policy`).
    pub fn appended_bytes(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.appended.clone()
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

    fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        if let Some((_, (id, _))) = self.tail.lock().expect("log tail").last_key_value() {
            return Ok(Some(*id));
        }
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

    /// Waits until the writer has made every appended entry durable (and left the tail).
    fn barrier(&self) -> Result<(), StorageError> {
        let (tx, rx) = mpsc::channel();
        self.writer
            .send(Job::Barrier(tx))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        rx.recv()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }
}

/// Decodes the entry stored at `index`. One that does not decode stops the node (openraft
/// treats a storage error as fatal) with a message naming the entry and where recovery is
/// described: no node may apply around it.
fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| {
        tracing::error!(index, error = %e, "a log entry does not decode; see README, Reliability: \"An entry no node can apply\"");
        io_err(
            ErrorSubject::Logs,
            ErrorVerb::Read,
            format!("log entry {index} does not decode: {e}"),
        )
    })
}

/// What the log holds on disk, read in full by [`LogStore::verify`].
#[derive(Debug)]
pub struct LogSummary {
    pub last_purged: Option<LogId>,
    pub last: Option<LogId>,
    pub entries: u64,
}

impl LogStore {
    /// Reads the whole log and checks what must hold on disk: every entry decodes and sits
    /// at its own index, the entries after the purge point have no gap, and the saved vote is
    /// no older than the last entry's term (or the node could vote twice in a term). Run at
    /// start-up, before Raft uses the store.
    pub fn verify(&self) -> Result<LogSummary, LogDamage> {
        let last_purged: Option<LogId> = self.get_json(LAST_PURGED)?;
        let vote: Option<Vote> = self.get_json(VOTE)?;
        let purged = last_purged.map(|l| l.index);
        let mut prev: Option<u64> = None;
        let mut last: Option<LogId> = None;
        let mut entries = 0u64;
        for guard in self.log.iter() {
            let (k, v) = guard.into_inner()?;
            let index = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| LogDamage::KeyLength(k.len()))?,
            );
            let entry: Entry = serde_json::from_slice(&v)
                .map_err(|error| LogDamage::Undecodable { index, error })?;
            if entry.log_id.index != index {
                return Err(LogDamage::Misplaced {
                    index,
                    found: entry.log_id.index,
                });
            }
            // Entries at or below the purge point may survive a crash during a purge.
            if purged.is_some_and(|p| index <= p) {
                continue;
            }
            let expected = prev.map(|p| p + 1).or(purged.map(|p| p + 1));
            if let Some(expected) = expected.filter(|e| *e != index) {
                return Err(LogDamage::Gap { index, expected });
            }
            prev = Some(index);
            last = Some(entry.log_id);
            entries += 1;
        }
        if let Some(l) = last {
            let voted = vote.map(|v| v.leader_id().get_term());
            if voted.is_none_or(|t| t < l.leader_id.term) {
                return Err(LogDamage::VoteLost {
                    voted,
                    term: l.leader_id.term,
                });
            }
        }
        Ok(LogSummary {
            last_purged,
            last: last.or(last_purged),
            entries,
        })
    }
}

/// Index keys are big-endian so that fjall's byte order is log order.
fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The only thread that writes the log keyspaces during normal operation: fjall holds its
/// journal lock for a whole fsync, so any other writer would wait for it.
struct Writer {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
    tail: Tail,
    committed: Committed,
    poison: Poison,
}

impl Writer {
    /// One fjall batch and one fsync for everything queued meanwhile.
    fn run(self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            jobs.extend(rx.try_iter());
            let pending: Vec<(u64, LogId, Arc<[u8]>)> = self
                .tail
                .lock()
                .expect("log tail")
                .iter()
                .map(|(i, (id, bytes))| (*i, *id, bytes.clone()))
                .collect();
            let committed = self.committed.lock().expect("committed").take();
            let result = (|| {
                let mut batch = self.db.batch();
                for (index, _, bytes) in &pending {
                    batch.insert(&self.log, index_key(*index), bytes.as_ref());
                }
                if let Some(c) = committed {
                    batch.insert(
                        &self.meta,
                        COMMITTED,
                        serde_json::to_vec(&c).expect("log id serialises"),
                    );
                }
                if !batch.is_empty() && self.poison.lock().expect("log poison").is_none() {
                    batch.commit().map_err(|e| {
                        let failure = LogFailure::Write(Arc::new(e));
                        *self.poison.lock().expect("log poison") = Some(failure.clone());
                        failure
                    })?;
                }
                sync(&self.db, &self.poison)
            })();
            match &result {
                Ok(()) => {
                    // Drop what is now on disk from the tail, unless it was replaced meanwhile.
                    let mut t = self.tail.lock().expect("log tail");
                    for (index, id, _) in &pending {
                        if t.get(index).is_some_and(|(cur, _)| cur == id) {
                            t.remove(index);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing or fsyncing the raft log failed; the node cannot acknowledge writes");
                }
            }
            for job in jobs {
                let outcome = result.clone();
                match job {
                    Job::Flush(cb) => cb.log_io_completed(outcome.map_err(std::io::Error::other)),
                    Job::Barrier(tx) => {
                        let _ = tx.send(outcome);
                    }
                }
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        if let Some(entries) = self.recent.lock().expect("recent entries").get(&range) {
            return Ok(entries);
        }
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
        // Copy the tail first: an entry leaves it only after it is in fjall, so reading fjall
        // second can never miss one.
        let tail: Vec<(u64, Arc<[u8]>)> = self
            .tail
            .lock()
            .expect("log tail")
            .range(range.clone())
            .map(|(i, (_, b))| (*i, b.clone()))
            .collect();
        let mut by_index: BTreeMap<u64, Entry> = BTreeMap::new();
        for guard in self.log.range::<[u8; 8], _>((start, end)) {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or_default());
            by_index.insert(index, decode_entry(index, &v)?);
        }
        for (index, bytes) in tail {
            by_index.insert(index, decode_entry(index, &bytes)?);
        }
        Ok(by_index.into_values().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_json(LAST_PURGED)?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        if let Some(first) = self.poison.lock().expect("log poison").as_ref() {
            return Err(io_err(ErrorSubject::Vote, ErrorVerb::Write, first));
        }
        self.put_json(VOTE, vote)?;
        // A vote must survive a crash before it is answered, or a node could vote twice in a term.
        sync(&self.db, &self.poison).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_json(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Called on every commit: only noted here, and written by the writer with its next
        // batch. It is a hint that lets a restarted node re-apply without waiting for a
        // leader, so losing the latest one in a crash costs nothing but that wait.
        *self.committed.lock().expect("committed") = Some(committed);
        if let Some(c) = committed {
            crate::metrics::get().raft_commit_index.set(c.index as i64);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(c) = *self.committed.lock().expect("committed") {
            return Ok(c);
        }
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
        let mut encoded = Vec::new();
        let mut total = 0;
        let mut recent = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
            total += bytes.len() as u64;
            encoded.push((entry.log_id, Arc::<[u8]>::from(bytes)));
            recent.push(entry);
        }
        self.appended
            .fetch_add(total, std::sync::atomic::Ordering::Relaxed);
        {
            let mut tail = self.tail.lock().expect("log tail");
            let mut cache = self.recent.lock().expect("recent entries");
            for ((id, bytes), entry) in encoded.into_iter().zip(recent) {
                cache.insert(entry, bytes.len());
                tail.insert(id.index, (id, bytes));
            }
        }
        // Durability is the writer's job; openraft goes on meanwhile.
        self.writer
            .send(Job::Flush(callback))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Rare (a follower whose log conflicts with the leader's): let the writer drain the
        // tail first, so that no queued entry lands after the truncation.
        self.barrier()?;
        self.recent
            .lock()
            .expect("recent entries")
            .remove(log_id.index..);
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
        // get_log_state ignores, never a gap that it cannot explain. Purged entries are
        // applied, hence long flushed: the tail is not involved.
        self.put_json(LAST_PURGED, &log_id)?;
        self.recent
            .lock()
            .expect("recent entries")
            .remove(..=log_id.index);
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
    use crate::raft::StateMachine;
    use crate::store::StateStore;

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

    fn blank(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|es| es.iter().map(|e| e.log_id.index).collect())
    }

    fn recent(range: std::ops::RangeInclusive<u64>) -> Recent {
        let mut r = Recent::default();
        for i in range {
            r.insert(blank(i), 100);
        }
        r
    }

    #[test]
    fn recent_entries_answer_a_range_only_when_they_hold_all_of_it() {
        let r = recent(5..=10);
        assert_eq!(indexes(r.get(&(5..=10))), Some((5..=10).collect()));
        assert_eq!(indexes(r.get(&(8..))), Some(vec![8, 9, 10]));
        assert_eq!(indexes(r.get(&(9..20))), Some(vec![9, 10]));
        // Nothing in the log is past the newest entry appended.
        assert_eq!(indexes(r.get(&(11..))), Some(vec![]));
        // Older entries are on disk only: the reader goes there.
        assert_eq!(indexes(r.get(&(4..=6))), None);
        assert_eq!(indexes(r.get(&(..7))), None);
        assert_eq!(indexes(Recent::default().get(&(1..))), None);
    }

    #[test]
    fn recent_entries_keep_to_their_bound_by_dropping_the_oldest() {
        let mut r = Recent::default();
        let each = RECENT_BYTES / 4;
        for i in 1..=6 {
            r.insert(blank(i), each);
        }
        assert_eq!(r.bytes, 4 * each);
        assert_eq!(indexes(r.get(&(3..))), Some(vec![3, 4, 5, 6]));
        assert_eq!(indexes(r.get(&(2..))), None);
    }

    #[test]
    fn recent_entries_stay_one_run_across_truncation_purge_and_gaps() {
        let mut r = recent(5..=10);
        // An append over a conflict replaces the entries from its index on.
        r.insert(blank(8), 100);
        assert_eq!(indexes(r.get(&(5..))), Some(vec![5, 6, 7, 8]));
        assert_eq!(r.bytes, 400);
        r.remove(7..);
        assert_eq!(indexes(r.get(&(5..))), Some(vec![5, 6]));
        r.remove(..=5);
        assert_eq!(indexes(r.get(&(5..))), None);
        assert_eq!(indexes(r.get(&(6..))), Some(vec![6]));
        // An append past a gap starts a new run.
        r.insert(blank(20), 100);
        assert_eq!(indexes(r.get(&(6..))), None);
        assert_eq!(indexes(r.get(&(20..))), Some(vec![20]));
        assert_eq!(r.bytes, 100);
    }
}
