//! The audit trail: one record per change, written by apply in the same batch as the change.
//!
//! Records are keyed by a sequence number (`{seq:020}` in `sm_audit`) that apply assigns, so
//! every node holds the same trail in the same order and it travels in snapshots like the
//! data. Nothing but apply writes the keyspace, and no command rewrites a record: the API can
//! only read it. Retention (`SmMeta::audit`, a replicated setting changed by an audited
//! command) drops the oldest records beyond a count or older than an age, swept by apply
//! after each command with that command's clock, so every node drops the same records;
//! `SmMeta::audit_floor` is the newest sequence number dropped. What a record knows comes from the command (actor, the
//! proposer's clock, `X-Scarab-Reason`, the measured validation time) and from the state it
//! changed (revisions before and after), never from this node's clock.
//!
//! Owns: the `sm_audit` keyspace, the records apply writes (for a config change, for any
//! other change, for a membership change), their retention and reading them with a filter. Does not own: the
//! changes themselves (each concern's file calls `audit_config` or `audit_other`).

use serde::{Deserialize, Serialize};

use super::apply::{ApplyTx, By};
use super::keys::{Ks, decode_json};
use super::{
    AuditRetentionSet, CommandResult, ConfigMeta, SetAuditRetention, StateStore, StoreError,
};

/// How much of the audit trail is kept (replicated: every node applies the same rule).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditRetention {
    /// The newest this many records are kept (at least 1).
    pub max_records: u64,
    /// Records older than this are dropped too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
}

/// Records kept by default: about 45 MB (and as much in every snapshot), weeks at the write
/// rates most config stores see, and a bound under any steady load. A million made snapshots
/// of 600 MB for 1,000 live configs under a steady overwrite load (BENCHMARKS.md).
pub const DEFAULT_AUDIT_RECORDS: u64 = 100_000;

impl Default for AuditRetention {
    fn default() -> Self {
        Self {
            max_records: DEFAULT_AUDIT_RECORDS,
            max_age_seconds: None,
        }
    }
}

impl AuditRetention {
    pub(super) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Records one command's sweep removes at most, so that lowering the retention on a long
/// trail spreads the work over the following commands.
const SWEEP_BATCH: u64 = 256;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub seq: u64,
    /// The Raft log index of the entry that made the change.
    pub log_index: u64,
    /// The proposing node's clock (`None` for membership changes: Raft membership entries
    /// carry no clock).
    pub at_ms: Option<u64>,
    pub actor: String,
    /// The name an impersonating principal acted for (`Context::on_behalf_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// `config.create|update|delete|rollback|migrate`, `schema.register|delete|policy`,
    /// `migration.start|finish`, `settings.history|audit`, `membership.change`.
    pub action: String,
    /// The key, or `schema/{name}[/{version}]`, `migration/{name}/{id}`, `settings/history`,
    /// `settings/audit`, `cluster`.
    pub object: String,
    /// For configs: the key's revision before the change (`None`: it did not exist).
    pub revision_before: Option<u64>,
    /// The global revision of the change (`None`: the change has none, e.g. membership).
    pub revision_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How a written value was validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Provenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub schema: String,
    pub schema_version: u32,
    pub plugin_digest: Option<String>,
    /// Wall time of the JSON Schema and plugin checks on the proposing node (`None` when the
    /// write was validated elsewhere, e.g. converted by a migration).
    pub elapsed_us: Option<u64>,
}

/// What `GET /v1/audit` asks for. Every field narrows.
#[derive(Default, Debug, Clone)]
pub struct AuditFilter {
    /// The object starts with this.
    pub prefix: String,
    pub actor: Option<String>,
    /// An action (`config.update`) or a family (`config`).
    pub action: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl AuditFilter {
    fn matches(&self, r: &AuditRecord) -> bool {
        r.object.starts_with(&self.prefix)
            && self.actor.as_ref().is_none_or(|a| *a == r.actor)
            && self.action.as_ref().is_none_or(|a| {
                r.action == *a
                    || r.action
                        .strip_prefix(a.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            && self
                .since_ms
                .is_none_or(|s| r.at_ms.is_some_and(|t| t >= s))
            && self.until_ms.is_none_or(|u| r.at_ms.is_some_and(|t| t < u))
    }
}

pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Ask again with `before` = this to go on (older records may match).
    pub next_before: Option<u64>,
}

/// At most this many records are read for one page, so that a filter that matches little
/// answers in bounded time (with a cursor to go on).
const MAX_SCANNED: usize = 100_000;

fn audit_key(seq: u64) -> Vec<u8> {
    format!("{seq:020}").into_bytes()
}

impl StateStore {
    /// Matching records, newest first, with `seq` < `before`.
    pub fn audit(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let end = audit_key(before.unwrap_or(u64::MAX));
        let mut items = Vec::new();
        let mut last_seq = None;
        for (scanned, guard) in self.audit.range(..end).rev().enumerate() {
            if scanned == MAX_SCANNED || items.len() == limit {
                return Ok(AuditPage {
                    items,
                    next_before: last_seq,
                });
            }
            let (_, v) = guard.into_inner()?;
            let record: AuditRecord = decode_json("sm_audit", &v)?;
            last_seq = Some(record.seq);
            if filter.matches(&record) {
                items.push(record);
            }
        }
        Ok(AuditPage {
            items,
            next_before: None,
        })
    }
}

/// A record before apply numbers it.
pub(super) struct Entry {
    pub actor: String,
    pub at_ms: Option<u64>,
    pub action: &'static str,
    pub object: String,
    pub revision_before: Option<u64>,
    pub revision_after: Option<u64>,
    pub reason: Option<String>,
    pub validation: Option<Provenance>,
    pub detail: Option<serde_json::Value>,
}

impl ApplyTx<'_> {
    pub(super) fn audit(&mut self, e: Entry) {
        self.meta.audit_seq += 1;
        let record = AuditRecord {
            seq: self.meta.audit_seq,
            log_index: self.meta.last_applied.map(|l| l.index).unwrap_or(0),
            at_ms: e.at_ms,
            actor: e.actor,
            on_behalf_of: self.on_behalf_of.clone(),
            action: e.action.to_string(),
            object: e.object,
            revision_before: e.revision_before,
            revision_after: e.revision_after,
            reason: e.reason,
            validation: e.validation,
            detail: e.detail,
        };
        self.put(
            Ks::Audit,
            audit_key(record.seq),
            serde_json::to_vec(&record).expect("audit record serialises"),
        );
    }

    /// `SetAuditRetention`: the retention every node applies from now on.
    pub(super) fn set_audit_retention(
        &mut self,
        op: SetAuditRetention,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let SetAuditRetention { retention } = op;
        self.meta.revision += 1;
        self.meta.audit = AuditRetention {
            max_records: retention.max_records.max(1),
            max_age_seconds: retention.max_age_seconds,
        };
        let detail = serde_json::to_value(self.meta.audit).expect("serialises");
        // Recorded under the new rule, which must keep at least this record.
        self.audit_other("settings.audit", "settings/audit".into(), by, detail);
        Ok(CommandResult::AuditRetentionSet(AuditRetentionSet {
            retention: self.meta.audit,
            revision: self.meta.revision,
        }))
    }

    /// Drops the oldest records beyond the count, or older than the maximum age by the
    /// clock of the command just applied (at most [`SWEEP_BATCH`] per command). A record
    /// without a clock reading (a membership change) goes with the next older-than-the-age
    /// record after it, never on its own.
    pub(super) fn sweep_audit(&mut self, now_ms: u64) -> Result<(), StoreError> {
        let retention = self.meta.audit;
        let kept = self.meta.audit_seq.saturating_sub(self.meta.audit_floor);
        let over = kept.saturating_sub(retention.max_records.max(1));
        let mut floor = self.meta.audit_floor;
        // Records past the count are removed by key, without reading them.
        if over > 0 {
            let through = floor + over.min(SWEEP_BATCH);
            for seq in floor + 1..=through {
                self.remove(Ks::Audit, audit_key(seq));
            }
            floor = through;
        }
        if let Some(max_age) = retention.max_age_seconds {
            let cutoff = now_ms.saturating_sub(max_age.saturating_mul(1000));
            let limit = SWEEP_BATCH.saturating_sub(floor - self.meta.audit_floor);
            let first = floor + 1;
            let mut seq = first;
            while seq <= self.meta.audit_seq && seq - first < limit {
                let Some(bytes) = self.get(Ks::Audit, &audit_key(seq))? else {
                    break;
                };
                let record: AuditRecord = decode_json("sm_audit", &bytes)?;
                match record.at_ms {
                    Some(at) if at < cutoff => {
                        for s in floor + 1..=seq {
                            self.remove(Ks::Audit, audit_key(s));
                        }
                        floor = seq;
                    }
                    Some(_) => break,
                    None => {}
                }
                seq += 1;
            }
        }
        self.meta.audit_floor = floor;
        Ok(())
    }

    /// The audit record of a config change.
    pub(super) fn audit_config(
        &mut self,
        action: &'static str,
        meta: &ConfigMeta,
        revision_before: Option<u64>,
        by: &By,
        detail: Option<serde_json::Value>,
    ) {
        let validation = (!meta.deleted).then(|| Provenance {
            schema: meta.schema.clone(),
            schema_version: meta.schema_version,
            plugin_digest: meta.plugin_digest.clone(),
            elapsed_us: by.context.validation_us(&meta.key),
        });
        self.audit(Entry {
            actor: by.actor.to_string(),
            at_ms: Some(by.at_ms),
            action,
            object: meta.key.clone(),
            revision_before,
            revision_after: Some(meta.revision),
            reason: by.context.reason.clone(),
            validation,
            detail,
        });
    }

    /// The audit record of a change that is not a config's.
    pub(super) fn audit_other(
        &mut self,
        action: &'static str,
        object: String,
        by: &By,
        detail: serde_json::Value,
    ) {
        self.audit(Entry {
            actor: by.actor.to_string(),
            at_ms: Some(by.at_ms),
            action,
            object,
            revision_before: None,
            revision_after: Some(self.meta.revision),
            reason: by.context.reason.clone(),
            validation: None,
            detail: Some(detail),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    #[test]
    fn every_change_gets_an_audit_record_with_its_revisions() {
        let mut f = Fixture::new();
        f.schema();
        let a1 = written(f.put("a", "1", Precondition::None));
        let a2 = written(f.put("a", "2", Precondition::None));
        // Refused: no record.
        f.put("a", "3", Precondition::Absent);
        f.apply(Op::DeleteConfig(DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        }));
        let page = f.store.audit(&AuditFilter::default(), None, 100).unwrap();
        let actions: Vec<_> = page.items.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "config.delete",
                "config.update",
                "config.create",
                "schema.register"
            ]
        );
        let update = &page.items[1];
        assert_eq!(update.revision_before, Some(a1.revision));
        assert_eq!(update.revision_after, Some(a2.revision));
        assert_eq!(update.actor, "tester");
        let only_configs = AuditFilter {
            action: Some("config".into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            f.store.audit(&only_configs, None, 100).unwrap().items.len(),
            3
        );
    }

    fn seqs(f: &Fixture) -> Vec<u64> {
        let page = f
            .store
            .audit(&AuditFilter::default(), None, 10_000)
            .unwrap();
        page.items.iter().rev().map(|r| r.seq).collect()
    }

    #[test]
    fn the_audit_retention_keeps_the_newest_records_at_the_limit_and_one_past() {
        let mut f = Fixture::new();
        f.schema();
        let set = f.apply(Op::SetAuditRetention(SetAuditRetention {
            retention: AuditRetention {
                max_records: 5,
                max_age_seconds: None,
            },
        }));
        assert!(matches!(set, CommandResult::AuditRetentionSet(_)));
        // Two records so far (the schema, the setting): below the limit, nothing goes.
        assert_eq!(seqs(&f), [1, 2]);
        for i in 0..3 {
            written(f.put("a", &i.to_string(), Precondition::None));
        }
        // At the limit.
        assert_eq!(seqs(&f), [1, 2, 3, 4, 5]);
        // One past it: the oldest goes.
        written(f.put("a", "x", Precondition::None));
        assert_eq!(seqs(&f), [2, 3, 4, 5, 6]);
        assert_eq!(f.store.applied().audit_floor, 1);
        for i in 0..100 {
            written(f.put("a", &i.to_string(), Precondition::None));
        }
        assert_eq!(seqs(&f), [102, 103, 104, 105, 106]);
        // Lowering the limit on a long trail drops at most 256 records per command.
        f.apply(Op::SetAuditRetention(SetAuditRetention {
            retention: AuditRetention {
                max_records: 1,
                max_age_seconds: None,
            },
        }));
        assert_eq!(seqs(&f), [107]);
        assert_eq!(
            f.store
                .audit(&AuditFilter::default(), None, 1)
                .unwrap()
                .items[0]
                .action,
            "settings.audit"
        );
    }

    #[test]
    fn the_audit_retention_drops_records_older_than_its_age_by_the_commands_clock() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetAuditRetention(SetAuditRetention {
            retention: AuditRetention {
                max_records: 1_000,
                max_age_seconds: Some(60),
            },
        }));
        for i in 0..10 {
            written(f.put("a", &i.to_string(), Precondition::None));
        }
        assert_eq!(seqs(&f).len(), 12);
        // The fixture's clock is 1 s plus the log index: 59 s later nothing is too old yet.
        f.index += 59_000 - 12;
        written(f.put("a", "x", Precondition::None));
        assert_eq!(seqs(&f).len(), 13);
        f.index += 2_000;
        written(f.put("a", "y", Precondition::None));
        assert_eq!(seqs(&f), [13, 14]);
    }
}
