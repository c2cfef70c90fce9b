//! The audit trail: one record per change, written by apply in the same batch as the change.
//!
//! Records are keyed by a sequence number (`{seq:020}` in `sm_audit`) that apply assigns, so
//! every node holds the same trail in the same order and it travels in snapshots like the
//! data. Nothing but apply writes the keyspace, and no command removes or rewrites a record:
//! the API can only read it. What a record knows comes from the command (actor, the
//! proposer's clock, `X-Scarab-Reason`, the measured validation time) and from the state it
//! changed (revisions before and after), never from this node's clock.
//!
//! Owns: the `sm_audit` keyspace, the records apply writes (for a config change, for any
//! other change, for a membership change) and reading them with a filter. Does not own: the
//! changes themselves (each concern's file calls `audit_config` or `audit_other`).

use serde::{Deserialize, Serialize};

use super::apply::{ApplyTx, By};
use super::keys::{Ks, decode_json};
use super::{ConfigMeta, StateStore, StoreError};

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
    /// `migration.start|finish`, `settings.history`, `membership.change`.
    pub action: String,
    /// The key, or `schema/{name}[/{version}]`, `migration/{name}/{id}`, `settings/history`,
    /// `cluster`.
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
}
