//! Storage migrations as replicated state: reading their records, and the commands that
//! drive one, `StartMigration`, `MigrateBatch` (compare-and-set writes of converted values, and
//! the keys that failed) and `FinishMigration`.
//!
//! Owns: the `migration/` records of `sm_schema_meta` and the rule that a schema has at most
//! one running migration. Does not own: converting values or deciding what to convert (the
//! worker, `crate::migrate`), nor how a converted value is written (`configs.rs`).

use super::apply::{ApplyTx, By};
use super::configs::{NewValue, check};
use super::keys::{Ks, decode_json, migration_key};
use super::{
    CommandResult, FinishMigration, MAX_FAILURES_KEPT, MigrateBatch, MigrationFailure,
    MigrationRecord, MigrationStatus, Precondition, Rejection, StartMigration, StateStore,
    StoreError, WritePolicy,
};

impl StateStore {
    /// The migrations of schema `name` (every schema's if `None`), oldest first.
    pub fn migrations(&self, name: Option<&str>) -> Result<Vec<MigrationRecord>, StoreError> {
        let prefix = match name {
            Some(n) => format!("migration/{n}/"),
            None => "migration/".to_string(),
        };
        self.schema_meta
            .prefix(prefix)
            .map(|g| {
                let (_, v) = g.into_inner()?;
                decode_json("sm_schema_meta", &v)
            })
            .collect()
    }

    pub fn migration(&self, name: &str, id: u64) -> Result<Option<MigrationRecord>, StoreError> {
        self.schema_meta
            .get(migration_key(name, id))?
            .map(|b| decode_json("sm_schema_meta", &b))
            .transpose()
    }
}

impl ApplyTx<'_> {
    /// `StartMigration`: a new running migration of a schema, to a registered version (the
    /// latest if the schema's policy says so), if none is running; its id is its revision.
    pub(super) fn start_migration(
        &mut self,
        op: StartMigration,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let StartMigration {
            name,
            target_version,
            total,
        } = op;
        if self.schema(&name, target_version)?.is_none() {
            return Ok(CommandResult::Rejected(Rejection::UnknownSchema {
                name,
                version: target_version,
            }));
        }
        if let Some(running) = self.running_migration(&name)? {
            return Ok(CommandResult::Rejected(Rejection::MigrationRunning {
                name,
                id: running.id,
            }));
        }
        if self.policy(&name)?.writes == WritePolicy::Latest {
            let latest = self.latest_version(&name)?.unwrap_or(target_version);
            if latest != target_version {
                return Ok(CommandResult::Rejected(Rejection::NotLatest {
                    name,
                    version: target_version,
                    latest,
                }));
            }
        }
        self.meta.revision += 1;
        let record = MigrationRecord {
            id: self.meta.revision,
            name,
            target_version,
            status: MigrationStatus::Running,
            total,
            done: 0,
            skipped: 0,
            failed: Vec::new(),
            failed_count: 0,
            started_at: by.at_ms,
            started_by: by.actor.to_string(),
            updated_at: by.at_ms,
            finished_at: None,
        };
        self.put_migration(&record);
        self.audit_other(
            "migration.start",
            format!("migration/{}/{}", record.name, record.id),
            by,
            serde_json::json!({"target_version": target_version, "total": total}),
        );
        Ok(CommandResult::Migration(record))
    }

    /// `MigrateBatch`: each converted value is written if its key is still at the revision it
    /// was converted from (else skipped, and tried again by a later pass); failures are kept.
    pub(super) fn migrate_batch(
        &mut self,
        op: MigrateBatch,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let MigrateBatch {
            name,
            id,
            writes,
            failures,
        } = op;
        let mut record = match self.migration(&name, id)? {
            Some(r) if r.status == MigrationStatus::Running => r,
            _ => {
                return Ok(CommandResult::Rejected(Rejection::MigrationNotRunning {
                    name,
                    id,
                }));
            }
        };
        let mut failures = failures;
        // Migration writes are the starter's, each a compare-and-set at the target
        // version with its own revision, exactly like a client's.
        let started_by = record.started_by.clone();
        let migration = serde_json::json!({"migration": id});
        for w in writes {
            let previous = self.raw_config(&w.key)?;
            let before = previous.as_ref().filter(|p| !p.deleted).map(|p| p.revision);
            let pre = Precondition::Revision(w.expected_revision);
            if check(&w.key, pre, before).is_err() {
                record.skipped += 1;
                continue;
            }
            if let Err(r) = self.check_put(&name, record.target_version, &w.plugin_digest)? {
                failures.push(MigrationFailure {
                    key: w.key,
                    revision: w.expected_revision,
                    reason: r.to_string(),
                });
                continue;
            }
            self.meta.revision += 1;
            let starter = By {
                actor: &started_by,
                at_ms: by.at_ms,
                revision: self.meta.revision,
                context: by.context,
            };
            let v = NewValue {
                key: w.key,
                schema: name.clone(),
                schema_version: record.target_version,
                plugin_digest: w.plugin_digest,
                value: w.value,
            };
            let meta = self.write_config(v, &starter, previous)?;
            self.audit_config(
                "config.migrate",
                &meta,
                before,
                &starter,
                Some(migration.clone()),
            );
            record.done += 1;
            record.failed.retain(|f| f.key != meta.key);
        }
        for f in failures {
            record.failed.retain(|old| old.key != f.key);
            record.failed_count += 1;
            if record.failed.len() < MAX_FAILURES_KEPT {
                record.failed.push(f);
            }
        }
        record.updated_at = by.at_ms;
        self.put_migration(&record);
        Ok(CommandResult::Migration(record))
    }

    /// `FinishMigration`: a running migration is done.
    pub(super) fn finish_migration(
        &mut self,
        op: FinishMigration,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let FinishMigration { name, id } = op;
        let mut record = match self.migration(&name, id)? {
            Some(r) if r.status == MigrationStatus::Running => r,
            _ => {
                return Ok(CommandResult::Rejected(Rejection::MigrationNotRunning {
                    name,
                    id,
                }));
            }
        };
        record.status = MigrationStatus::Done;
        record.updated_at = by.at_ms;
        record.finished_at = Some(by.at_ms);
        self.put_migration(&record);
        self.audit_other(
            "migration.finish",
            format!("migration/{name}/{id}"),
            by,
            serde_json::json!({
                "done": record.done,
                "skipped": record.skipped,
                "failed": record.failed_count,
            }),
        );
        Ok(CommandResult::Migration(record))
    }

    fn migration(&self, name: &str, id: u64) -> Result<Option<MigrationRecord>, StoreError> {
        self.get(Ks::SchemaMeta, &migration_key(name, id))?
            .map(|b| decode_json("sm_schema_meta", &b))
            .transpose()
    }

    fn put_migration(&mut self, record: &MigrationRecord) {
        self.put(
            Ks::SchemaMeta,
            migration_key(&record.name, record.id),
            serde_json::to_vec(record).expect("migration record serialises"),
        );
    }

    /// The running migration of `name`, if any (this apply call's changes included).
    fn running_migration(&self, name: &str) -> Result<Option<MigrationRecord>, StoreError> {
        let prefix = format!("migration/{name}/");
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for g in self.store.schema_meta.prefix(&prefix) {
            keys.push(g.key()?.to_vec());
        }
        for (ks, k) in self.overlay.keys() {
            if *ks == Ks::SchemaMeta && k.starts_with(prefix.as_bytes()) {
                keys.push(k.clone());
            }
        }
        for k in keys {
            if let Some(b) = self.get(Ks::SchemaMeta, &k)? {
                let r: MigrationRecord = decode_json("sm_schema_meta", &b)?;
                if r.status == MigrationStatus::Running {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }
}
