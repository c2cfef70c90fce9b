//! Test only: a state store in a temporary directory, and applying commands to it one log
//! entry at a time.

use std::sync::Arc;

use fjall::Database;
use openraft::CommittedLeaderId;

use super::{
    Change, Command, CommandResult, ConfigMeta, ConfigWritten, HistoryRetention, LogId, Op,
    Precondition, PutConfig, PutSchema, SchemaRegistered, SetHistoryRetention, StateStore,
};

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) store: Arc<StateStore>,
    /// The log index of the last entry applied; the clock of a command is 1 s plus it.
    pub(super) index: u64,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path().join("db")).open().unwrap();
        let store = StateStore::open(&db, dir.path()).unwrap();
        Self {
            _dir: dir,
            store,
            index: 0,
        }
    }

    /// Applies `op` as the only command of the next log entry.
    pub(super) fn apply(&mut self, op: impl Into<Op>) -> CommandResult {
        self.index += 1;
        let entry = (
            LogId::new(CommittedLeaderId::new(1, 1), self.index),
            Change::Commands(vec![Command::new(
                "tester".into(),
                1_000 + self.index,
                op.into(),
            )]),
        );
        self.store.apply_batch([entry]).unwrap().remove(0).remove(0)
    }

    /// Registers schema `s` version 1 (no plugin, any document).
    pub(super) fn schema(&mut self) {
        let r = self.apply(PutSchema {
            name: "s".into(),
            version: 1,
            schema: "{}".into(),
            plugin_digest: None,
            plugin: None,
            plugin_contract: None,
            refs: vec![],
        });
        assert!(matches!(
            r,
            CommandResult::SchemaRegistered(SchemaRegistered { created: true, .. })
        ));
    }

    /// A store with schema `s` whose history keeps `keep` revisions a key.
    pub(super) fn keeping(keep: u32) -> Self {
        let mut f = Self::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep,
                max_age_seconds: None,
                ..Default::default()
            },
        }));
        f
    }

    /// Writes `key` at schema `s` version 1.
    pub(super) fn put(
        &mut self,
        key: &str,
        value: &str,
        precondition: Precondition,
    ) -> CommandResult {
        self.apply(PutConfig {
            key: key.into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: value.into(),
            precondition,
        })
    }
}

/// The metadata of a write, or a panic.
pub(super) fn written(r: CommandResult) -> ConfigMeta {
    match r {
        CommandResult::ConfigWritten(ConfigWritten { meta, .. }) => meta,
        other => panic!("expected a write, got {other:?}"),
    }
}
