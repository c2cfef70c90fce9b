//! Applying committed log entries: one apply call is one atomic fjall batch, and each command
//! goes to the concern that owns its kind.
//!
//! Owns: [`ApplyTx`] (the writes of one apply call, an overlay that later commands of the same
//! call read through), `apply_batch` (log ids, membership entries, committing the batch with
//! the metadata) and the dispatch of a command by kind. Does not own: what a kind of command
//! does (`configs.rs`, `schemas.rs`, `migrations.rs`, `txn.rs`, and `history.rs` and
//! `audit.rs` for their retention settings) nor the audit records and history it leaves (`audit.rs`, `history.rs`).

use std::collections::HashMap;

use super::keys::Ks;
use super::{
    Command, CommandResult, Context, LogId, META_KEY, Membership, Op, SmMeta, StateStore,
    StoreError, StoredMembership, audit,
};

/// What one log entry asks of the state machine: openraft's entry payload, without the Raft
/// type configuration (the adapter in `crate::raft::state_machine` converts).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An entry without a change (a new leader's first entry).
    Blank,
    /// Commands proposed together (group commit); each is its own change, with its own
    /// revision and result.
    Commands(Vec<Command>),
    /// A new membership of the cluster.
    Membership(Membership),
}

/// The writes of one apply call, visible to the later commands of the same call.
pub(super) struct ApplyTx<'a> {
    pub(super) store: &'a StateStore,
    pub(super) meta: SmMeta,
    pub(super) overlay: HashMap<(Ks, Vec<u8>), Option<Vec<u8>>>,
    /// History revisions recorded by this apply call, per key: so that retention finds them
    /// without scanning the whole overlay for every write (a catch-up applies thousands of
    /// entries in one call).
    pub(super) history_added: HashMap<String, Vec<u64>>,
    /// Revision index entries put by this apply call, which the sweep merges with the stored
    /// ones: what it sweeps must not depend on how entries were grouped into apply calls.
    pub(super) index_added: std::collections::BTreeSet<Vec<u8>>,
    /// An auth record changed: the in-memory access state is rebuilt after the commit.
    pub(super) auth_changed: bool,
    /// `Context::on_behalf_of` of the command being applied (for its audit records).
    pub(super) on_behalf_of: Option<String>,
}

/// Who makes a change, when, at which revision, and what the audit trail should know.
pub(super) struct By<'c> {
    pub(super) actor: &'c str,
    pub(super) at_ms: u64,
    pub(super) revision: u64,
    pub(super) context: &'c Context,
}

impl StateStore {
    /// Applies the log entries of one apply call, each its log id and its [`Change`], as one
    /// atomic fjall batch (not fsynced: the log is the durable record, see
    /// `raft::log_store`). Returns one result per command of each entry.
    pub(crate) fn apply_batch(
        &self,
        entries: impl IntoIterator<Item = (LogId, Change)>,
    ) -> Result<Vec<Vec<CommandResult>>, StoreError> {
        let mut tx = ApplyTx {
            store: self,
            meta: self.applied(),
            overlay: HashMap::new(),
            history_added: HashMap::new(),
            index_added: Default::default(),
            auth_changed: false,
            on_behalf_of: None,
        };
        let mut results = Vec::new();
        for (log_id, change) in entries {
            tx.meta.last_applied = Some(log_id);
            results.push(match change {
                Change::Blank => Vec::new(),
                // Each command of a batch is its own change, with its own revision.
                Change::Commands(cmds) => cmds
                    .into_iter()
                    .map(|c| tx.execute(c))
                    .collect::<Result<_, _>>()?,
                Change::Membership(m) => {
                    let voters: Vec<_> = m.voter_ids().collect();
                    let learners: Vec<_> = m.learner_ids().collect();
                    tx.audit(audit::Entry {
                        actor: "raft".into(),
                        at_ms: None,
                        action: "membership.change",
                        object: "cluster".into(),
                        revision_before: None,
                        revision_after: None,
                        reason: None,
                        validation: None,
                        detail: Some(serde_json::json!({"voters": voters, "learners": learners})),
                    });
                    tx.meta.membership = StoredMembership::new(Some(log_id), m);
                    Vec::new()
                }
            });
        }
        let mut batch = self.db.batch();
        let _changing = tx
            .overlay
            .keys()
            .any(|(ks, _)| *ks == Ks::Schemas)
            .then(|| self.schemas_changing());
        for ((ks, key), value) in tx.overlay {
            let keyspace = self.keyspace(ks);
            match value {
                Some(v) => batch.insert(keyspace, key, v),
                None => batch.remove(keyspace, key),
            }
        }
        batch.insert(
            &self.meta,
            META_KEY,
            serde_json::to_vec(&tx.meta).expect("meta serialises"),
        );
        batch.commit()?;
        drop(_changing);
        *self.state.lock().expect("state lock") = tx.meta.clone();
        // Before the waiters learn of the apply: a revocation is in force once it answered.
        if tx.auth_changed {
            self.reload_auth()?;
        }
        self.applied.send_replace(tx.meta);
        Ok(results)
    }
}

impl ApplyTx<'_> {
    pub(super) fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(ks, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.store.keyspace(ks).get(key)?.map(|s| s.to_vec()))
    }

    pub(super) fn put(&mut self, ks: Ks, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert((ks, key), Some(value));
    }

    pub(super) fn remove(&mut self, ks: Ks, key: Vec<u8>) {
        self.overlay.insert((ks, key), None);
    }

    /// Applies one command, then lets the age retention catch up with its clock.
    fn execute(&mut self, cmd: Command) -> Result<CommandResult, StoreError> {
        let at_ms = cmd.at_ms;
        let result = self.execute_op(cmd);
        self.on_behalf_of = None;
        let result = result?;
        self.sweep_history(at_ms)?;
        self.sweep_audit(at_ms)?;
        Ok(result)
    }

    /// Hands the command to the concern of its kind. A refusal is a result
    /// (`CommandResult::Rejected`) that changes nothing; an error stops the apply call.
    fn execute_op(&mut self, cmd: Command) -> Result<CommandResult, StoreError> {
        let Command {
            actor,
            at_ms,
            op,
            context,
        } = cmd;
        self.on_behalf_of = context.on_behalf_of.clone();
        let mut by = By {
            actor: &actor,
            at_ms,
            revision: 0,
            context: &context,
        };
        match op {
            Op::PutConfig(op) => self.put_config(op, &mut by),
            Op::DeleteConfig(op) => self.delete_config(op, &mut by),
            Op::Txn(op) => self.txn(op, &mut by),
            Op::PutSchema(op) => self.put_schema(op, &by),
            Op::SetHistoryRetention(op) => self.set_history_retention(op, &by),
            Op::SetAuditRetention(op) => self.set_audit_retention(op, &by),
            Op::SetSchemaPolicy(op) => self.set_schema_policy(op, &by),
            Op::StartMigration(op) => self.start_migration(op, &by),
            Op::MigrateBatch(op) => self.migrate_batch(op, &by),
            Op::FinishMigration(op) => self.finish_migration(op, &by),
            Op::DeleteSchema(op) => self.delete_schema(op, &by),
            Op::AuthChange(op) => self.auth_change(op, &by),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    #[test]
    fn commands_batched_in_one_entry_apply_in_order_each_with_its_own_revision() {
        let mut f = Fixture::new();
        f.schema();
        let put = |key: &str, value: &str, precondition| {
            Command::new(
                "a".into(),
                5,
                Op::PutConfig(PutConfig {
                    key: key.into(),
                    schema: "s".into(),
                    schema_version: 1,
                    plugin_digest: None,
                    value: value.into(),
                    precondition,
                }),
            )
        };
        let base = f.store.applied().revision;
        let entry = (
            LogId::new(CommittedLeaderId::new(1, 1), 100),
            Change::Commands(vec![
                put("a", "1", Precondition::Absent),
                // Sees the first command of the same entry.
                put("a", "2", Precondition::Revision(base + 1)),
                put("a", "3", Precondition::Absent),
            ]),
        );
        let results = f.store.apply_batch([entry]).unwrap().remove(0);
        assert_eq!(written(results[0].clone()).revision, base + 1);
        assert_eq!(written(results[1].clone()).revision, base + 2);
        assert!(matches!(
            results[2],
            CommandResult::Rejected(Rejection::PreconditionFailed { .. })
        ));
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "2");
        assert_eq!(f.store.applied().revision, base + 2);
    }

    /// A write sees its version registered, or deleted, earlier in the same apply call: the
    /// call's own schema records come before the committed one the cache holds.
    #[test]
    fn a_write_sees_a_schema_registered_or_deleted_earlier_in_the_same_apply_call() {
        let mut f = Fixture::new();
        let cmd = |op: Op| Command::new("a".into(), 5, op);
        let register = |version| {
            cmd(Op::PutSchema(PutSchema {
                name: "s".into(),
                version,
                schema: "{}".into(),
                plugin_digest: None,
                plugin: None,
                plugin_contract: None,
                refs: vec![],
            }))
        };
        let put = |version| {
            cmd(Op::PutConfig(PutConfig {
                key: format!("k{version}"),
                schema: "s".into(),
                schema_version: version,
                plugin_digest: None,
                value: "1".into(),
                precondition: Precondition::None,
            }))
        };
        let apply = |f: &mut Fixture, cmds: Vec<Command>| {
            f.index += 1;
            let entry = (
                LogId::new(CommittedLeaderId::new(1, 1), f.index),
                Change::Commands(cmds),
            );
            f.store.apply_batch([entry]).unwrap().remove(0)
        };
        let results = apply(&mut f, vec![register(1), put(1)]);
        assert!(matches!(results[1], CommandResult::ConfigWritten(_)));
        // v2 registered and read (so the cache holds it as current), then deleted and
        // written in one call.
        apply(&mut f, vec![register(2)]);
        assert!(f.store.has_schema("s", 2).unwrap());
        let delete = cmd(Op::DeleteSchema(DeleteSchema {
            name: "s".into(),
            version: 2,
        }));
        let results = apply(&mut f, vec![delete, put(2)]);
        assert!(matches!(results[0], CommandResult::SchemaDeleted(_)));
        assert!(matches!(
            results[1],
            CommandResult::Rejected(Rejection::UnknownSchema { .. })
        ));
        assert!(!f.store.has_schema("s", 2).unwrap());
    }
}
