//! openraft's `RaftStateMachine` over [`StateStore`]. Blocking fjall work runs on the blocking
//! pool so that a large apply or snapshot never stalls the async runtime; a small apply runs
//! in place (see [`is_small`]).
//!
//! Owns: the adapter between openraft's types (entries, snapshots as files, storage errors)
//! and the store's (a log id and a [`Change`] per entry, `StoreError`). Does not own: what
//! applying means, nor the snapshot file format ([`crate::store`]).

use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder};

use super::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig, io_err};
use crate::store::{Change, CommandResult, StateStore, StoreError};

/// The handle openraft owns; clones share one [`StateStore`].
#[derive(Clone)]
pub struct StateMachine {
    store: Arc<StateStore>,
}

impl StateMachine {
    pub fn new(store: Arc<StateStore>) -> Self {
        Self { store }
    }
}

async fn blocking<T: Send + 'static>(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io_err(subject, verb, e)),
        Err(e) => Err(io_err(subject, verb, e)),
    }
}

/// Commands, and bytes of values, applied in place on the async runtime at most (see
/// [`is_small`]). 64 rather than 8: under writes at c=64 most applies held more than 8
/// commands (two thirds of apply's samples were on the blocking pool), and the two hand-offs
/// per apply cost more than the apply's 1 to 2 ms holding one of the runtime's threads
/// (`scarab-bench --steady 40s --window 20s --concurrency 64`, three alternating pairs, node
/// CPU per write in the second window 245/253/272 µs before, 231/232/239 after; BENCHMARKS.md).
const INLINE_COMMANDS: usize = 64;
const INLINE_BYTES: usize = 64 << 10;

/// Whether applying `entries` is cheap enough to run in place: a batch of commands without
/// large values costs tens of microseconds to a millisecond or two, less than the hand-off to
/// the blocking pool and back, which a lone write would pay twice over. Catch-up batches and
/// migrations go to the pool.
fn is_small(entries: &[Entry]) -> bool {
    let (mut commands, mut bytes) = (0, 0);
    for e in entries {
        match &e.payload {
            openraft::EntryPayload::Blank => {}
            openraft::EntryPayload::Membership(_) => return false,
            openraft::EntryPayload::Normal(cmds) => {
                for c in cmds {
                    commands += 1;
                    bytes += c.value_bytes();
                    if commands > INLINE_COMMANDS || bytes > INLINE_BYTES {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// An entry as the store applies it.
fn change(entry: Entry) -> (LogId, Change) {
    let change = match entry.payload {
        openraft::EntryPayload::Blank => Change::Blank,
        openraft::EntryPayload::Normal(cmds) => Change::Commands(cmds),
        openraft::EntryPayload::Membership(m) => Change::Membership(m),
    };
    (entry.log_id, change)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let store = self.store.clone();
        let (meta, file) = blocking(ErrorSubject::None, ErrorVerb::Write, move || {
            store.build_snapshot_file()
        })
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let meta = self.store.applied();
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<CommandResult>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let small = is_small(&entries);
        let entries: Vec<(LogId, Change)> = entries.into_iter().map(change).collect();
        if small {
            return self
                .store
                .apply_batch(entries)
                .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e));
        }
        let store = self.store.clone();
        blocking(ErrorSubject::StateMachine, ErrorVerb::Write, move || {
            store.apply_batch(entries)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = self
            .store
            .incoming_snapshot_file()
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Write, e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let file = snapshot.into_std().await;
        let store = self.store.clone();
        let meta = meta.clone();
        blocking(ErrorSubject::None, ErrorVerb::Write, move || {
            store.install_snapshot_file(&meta, file)
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self
            .store
            .current_snapshot_file()
            .map_err(|e| io_err(ErrorSubject::None, ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, EntryPayload, Membership};

    use super::*;
    use crate::raft::NodeInfo;
    use crate::store::{Command, DeleteConfig, Precondition};

    /// A membership entry as the versions before `NodeInfo` moved to the store wrote it.
    const MEMBERSHIP_ENTRY: &str = r#"{"log_id":{"leader_id":{"term":3,"node_id":1},"index":17},"payload":{"Membership":{"configs":[[1]],"nodes":{"1":{"api":"http://a","peer":"http://p"},"2":{"api":"http://b","peer":"http://q"}}}}}"#;

    fn membership() -> Membership<u64, NodeInfo> {
        let nodes = BTreeMap::from([
            (
                1,
                NodeInfo {
                    api: "http://a".into(),
                    peer: "http://p".into(),
                },
            ),
            (
                2,
                NodeInfo {
                    api: "http://b".into(),
                    peer: "http://q".into(),
                },
            ),
        ]);
        Membership::new(vec![BTreeSet::from([1])], nodes)
    }

    #[test]
    fn a_membership_entry_encodes_as_it_always_did() {
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 1), 17),
            payload: EntryPayload::Membership(membership()),
        };
        assert_eq!(serde_json::to_string(&entry).unwrap(), MEMBERSHIP_ENTRY);
        let back: Entry = serde_json::from_str(MEMBERSHIP_ENTRY).unwrap();
        assert_eq!(back.log_id, entry.log_id);
    }

    #[test]
    fn every_payload_reaches_the_store_unchanged() {
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), 5);
        let cmd = Command::new(
            "a".into(),
            1,
            DeleteConfig {
                key: "k".into(),
                precondition: Precondition::None,
            }
            .into(),
        );
        let entry = |payload| Entry { log_id, payload };
        assert_eq!(change(entry(EntryPayload::Blank)), (log_id, Change::Blank));
        assert_eq!(
            change(entry(EntryPayload::Normal(vec![cmd.clone()]))),
            (log_id, Change::Commands(vec![cmd]))
        );
        assert_eq!(
            change(entry(EntryPayload::Membership(membership()))),
            (log_id, Change::Membership(membership()))
        );
    }
}
