//! Configs: reading them (one key, a prefix page, every config of a schema) and the two
//! commands that change one key, `PutConfig` and `DeleteConfig`, with what every config write
//! shares (checking a write against its schema version, writing a value or a tombstone).
//!
//! Owns: the `sm_configs` and `sm_usage` records of a key as a write leaves them, and the
//! precondition check. Does not own: transactions and migrations, which write configs through
//! the functions here (`txn.rs`, `migrations.rs`), the key's history (`history.rs`) or its
//! audit record (`audit.rs`).

use super::apply::{ApplyTx, By};
use super::keys::{Ks, decode_config, encode_config, schema_key};
use super::{
    CommandResult, ConfigDeleted, ConfigMeta, ConfigWritten, DeleteConfig, Precondition, PutConfig,
    Rejection, StateStore, StoreError, WritePolicy,
};

/// A config as read: its metadata and its value as JSON text (absent for tombstones).
#[derive(Clone, Debug)]
pub struct ConfigEntry {
    pub meta: ConfigMeta,
    pub value: String,
}

/// One page of a prefix listing.
pub struct ConfigPage {
    pub items: Vec<ConfigEntry>,
    pub more: bool,
}

impl StateStore {
    pub fn get_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        match self.configs.get(key)? {
            None => Ok(None),
            Some(bytes) => {
                let entry = decode_config(&bytes)?;
                Ok((!entry.meta.deleted).then_some(entry))
            }
        }
    }

    /// Every live config of schema `name` whose version satisfies `version`, in key order. A
    /// full scan: used by the compatibility check of a new version and by storage migrations,
    /// not by requests.
    pub fn configs_of(
        &self,
        name: &str,
        version: impl Fn(u32) -> bool,
    ) -> Result<Vec<ConfigEntry>, StoreError> {
        let mut out = Vec::new();
        for guard in self.configs.iter() {
            let (_, v) = guard.into_inner()?;
            let entry = decode_config(&v)?;
            if !entry.meta.deleted
                && entry.meta.schema == name
                && version(entry.meta.schema_version)
            {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Live configs whose key starts with `prefix`, in byte order, strictly after `after`.
    pub fn list_configs(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ConfigPage, StoreError> {
        let mut bytes = 0usize;
        let mut items = Vec::with_capacity(limit.min(1024));
        let iter = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                let start = std::ops::Bound::Excluded(after.as_bytes().to_vec());
                Box::new(
                    self.configs
                        .range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)),
                ) as Box<dyn Iterator<Item = fjall::Guard>>
            }
            _ => Box::new(self.configs.prefix(prefix)),
        };
        for guard in iter {
            let (k, v) = guard.into_inner()?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let entry = decode_config(&v)?;
            if entry.meta.deleted {
                continue;
            }
            // At most `limit` items and about `max_bytes` of values (at least one item).
            if items.len() == limit || (!items.is_empty() && bytes >= max_bytes) {
                return Ok(ConfigPage { items, more: true });
            }
            bytes += v.len();
            items.push(entry);
        }
        Ok(ConfigPage { items, more: false })
    }
}

impl ApplyTx<'_> {
    /// `PutConfig`: writes a value if its precondition holds and [`Self::check_put`] passes.
    pub(super) fn put_config(
        &mut self,
        op: PutConfig,
        by: &mut By,
    ) -> Result<CommandResult, StoreError> {
        let PutConfig {
            key,
            schema,
            schema_version,
            plugin_digest,
            value,
            precondition,
        } = op;
        let previous = self.raw_config(&key)?.map(|e| e.meta);
        let before = previous.as_ref().filter(|p| !p.deleted).map(|p| p.revision);
        if let Err(r) = check(&key, precondition, before) {
            return Ok(CommandResult::Rejected(r));
        }
        if let Err(r) = self.check_put(&schema, schema_version, &plugin_digest)? {
            return Ok(CommandResult::Rejected(r));
        }
        self.meta.revision += 1;
        by.revision = self.meta.revision;
        let v = NewValue {
            key,
            schema,
            schema_version,
            plugin_digest,
            value,
        };
        let meta = self.write_config(v, by, previous)?;
        let (action, detail) = match (by.context.rollback_of, before) {
            (Some(r), _) => ("config.rollback", Some(serde_json::json!({"to": r}))),
            (None, Some(_)) => ("config.update", None),
            (None, None) => ("config.create", None),
        };
        self.audit_config(action, &meta, before, by, detail);
        Ok(CommandResult::ConfigWritten(ConfigWritten {
            meta,
            created: before.is_none(),
        }))
    }

    /// `DeleteConfig`: replaces a live config with a tombstone if its precondition holds.
    pub(super) fn delete_config(
        &mut self,
        op: DeleteConfig,
        by: &mut By,
    ) -> Result<CommandResult, StoreError> {
        let DeleteConfig { key, precondition } = op;
        let Some(current) = self.live_config(&key)? else {
            return Ok(CommandResult::Rejected(Rejection::NotFound(format!(
                "config {key}"
            ))));
        };
        if let Err(r) = check(&key, precondition, Some(current.meta.revision)) {
            return Ok(CommandResult::Rejected(r));
        }
        self.meta.revision += 1;
        by.revision = self.meta.revision;
        let before = Some(current.meta.revision);
        let tombstone = self.write_tombstone(current.meta, by)?;
        self.audit_config("config.delete", &tombstone, before, by, None);
        Ok(CommandResult::ConfigDeleted(ConfigDeleted {
            meta: tombstone,
        }))
    }

    pub(super) fn live_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        Ok(match self.get(Ks::Configs, key.as_bytes())? {
            Some(bytes) => Some(decode_config(&bytes)?).filter(|e| !e.meta.deleted),
            None => None,
        })
    }

    /// The key's record, tombstone included.
    pub(super) fn raw_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        self.get(Ks::Configs, key.as_bytes())?
            .map(|b| decode_config(&b))
            .transpose()
    }

    /// Whether a value validated at `schema`/`version` by `plugin_digest` may be written now
    /// (its precondition aside): the version is registered, the schema's policy allows it,
    /// and the registered plugin is the one that validated it.
    pub(super) fn check_put(
        &self,
        schema: &str,
        version: u32,
        plugin_digest: &Option<String>,
    ) -> Result<Result<(), Rejection>, StoreError> {
        let registered = match self.get(Ks::Schemas, &schema_key(schema, version))? {
            Some(b) => Some(self.store.schema_cache.decode(schema, version, &b)?),
            None => None,
        };
        let Some(registered) = registered else {
            return Ok(Err(Rejection::UnknownSchema {
                name: schema.to_string(),
                version,
            }));
        };
        if self.policy(schema)?.writes == WritePolicy::Latest {
            let latest = self.latest_version(schema)?.unwrap_or(version);
            if latest != version {
                return Ok(Err(Rejection::NotLatest {
                    name: schema.to_string(),
                    version,
                    latest,
                }));
            }
        }
        if registered.plugin_digest != *plugin_digest {
            return Ok(Err(Rejection::PluginMismatch {
                name: schema.to_string(),
                version,
                registered: registered.plugin_digest.clone(),
                validated: plugin_digest.clone(),
            }));
        }
        Ok(Ok(()))
    }

    /// Writes a checked value at `by.revision`; `previous` is the key's record (tombstone
    /// included) before it.
    pub(super) fn write_config(
        &mut self,
        v: NewValue,
        by: &By,
        previous: Option<ConfigMeta>,
    ) -> Result<ConfigMeta, StoreError> {
        let live = previous.as_ref().filter(|p| !p.deleted);
        // An overwrite at the same schema version leaves its count as it is: no read, no
        // write (most writes are such overwrites).
        let same_version =
            live.is_some_and(|p| p.schema == v.schema && p.schema_version == v.schema_version);
        let meta = match live {
            Some(cur) => {
                if !same_version {
                    self.add_usage(&cur.schema, cur.schema_version, -1)?;
                }
                ConfigMeta {
                    key: v.key,
                    schema: v.schema,
                    schema_version: v.schema_version,
                    revision: by.revision,
                    key_version: cur.key_version + 1,
                    created_at: cur.created_at,
                    created_by: cur.created_by.clone(),
                    updated_at: by.at_ms,
                    updated_by: by.actor.to_string(),
                    plugin_digest: v.plugin_digest,
                    deleted: false,
                }
            }
            None => {
                self.meta.live_configs += 1;
                ConfigMeta {
                    key: v.key,
                    schema: v.schema,
                    schema_version: v.schema_version,
                    revision: by.revision,
                    key_version: 1,
                    created_at: by.at_ms,
                    created_by: by.actor.to_string(),
                    updated_at: by.at_ms,
                    updated_by: by.actor.to_string(),
                    plugin_digest: v.plugin_digest,
                    deleted: false,
                }
            }
        };
        if !same_version {
            self.add_usage(&meta.schema, meta.schema_version, 1)?;
        }
        self.put(
            Ks::Configs,
            meta.key.clone().into_bytes(),
            encode_config(&meta, &v.value),
        );
        self.record_history(&meta, &v.value, previous.as_ref())?;
        Ok(meta)
    }

    /// Replaces the live config `current` with a tombstone at `by.revision`.
    pub(super) fn write_tombstone(
        &mut self,
        current: ConfigMeta,
        by: &By,
    ) -> Result<ConfigMeta, StoreError> {
        self.meta.live_configs = self.meta.live_configs.saturating_sub(1);
        self.add_usage(&current.schema, current.schema_version, -1)?;
        let tombstone = ConfigMeta {
            revision: by.revision,
            key_version: current.key_version + 1,
            updated_at: by.at_ms,
            updated_by: by.actor.to_string(),
            deleted: true,
            ..current.clone()
        };
        self.put(
            Ks::Configs,
            tombstone.key.clone().into_bytes(),
            encode_config(&tombstone, ""),
        );
        self.record_history(&tombstone, "", Some(&current))?;
        Ok(tombstone)
    }
}

/// A value a write puts (checked).
pub(super) struct NewValue {
    pub(super) key: String,
    pub(super) schema: String,
    pub(super) schema_version: u32,
    pub(super) plugin_digest: Option<String>,
    pub(super) value: String,
}

/// Whether `pre` holds for a key whose live revision is `current_rev` (`None`: absent).
pub(super) fn check(
    key: &str,
    pre: Precondition,
    current_rev: Option<u64>,
) -> Result<(), Rejection> {
    let ok = match pre {
        Precondition::None => true,
        Precondition::Revision(r) => current_rev == Some(r),
        Precondition::Absent => current_rev.is_none(),
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::PreconditionFailed {
            key: key.to_string(),
            current: current_rev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ConfigPage;
    use crate::store::keys::decode_config;
    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    #[test]
    fn updates_keep_creation_metadata_and_bump_versions() {
        let mut f = Fixture::new();
        f.schema();
        let first = written(f.put("a", "1", Precondition::None));
        let second = written(f.put("a", "2", Precondition::None));
        assert_eq!((first.key_version, second.key_version), (1, 2));
        assert!(second.revision > first.revision);
        assert_eq!(second.created_at, first.created_at);
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "2");
    }

    #[test]
    fn stale_compare_and_set_is_rejected_without_change() {
        let mut f = Fixture::new();
        f.schema();
        let meta = written(f.put("a", "1", Precondition::None));
        let r = f.put("a", "2", Precondition::Revision(meta.revision - 1));
        assert!(matches!(
            r,
            CommandResult::Rejected(Rejection::PreconditionFailed { .. })
        ));
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "1");
        assert_eq!(f.store.applied().revision, meta.revision);
    }

    #[test]
    fn delete_leaves_a_tombstone_and_recreate_starts_over() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("a", "1", Precondition::None));
        let CommandResult::ConfigDeleted(ConfigDeleted { meta }) =
            f.apply(Op::DeleteConfig(DeleteConfig {
                key: "a".into(),
                precondition: Precondition::None,
            }))
        else {
            panic!("expected a delete")
        };
        assert!(meta.deleted);
        assert!(f.store.get_config("a").unwrap().is_none());
        let raw = f.store.configs.get("a").unwrap().expect("tombstone kept");
        assert!(decode_config(&raw).unwrap().meta.deleted);
        assert_eq!(
            written(f.put("a", "3", Precondition::Absent)).key_version,
            1
        );
    }

    #[test]
    fn writes_for_an_unregistered_version_are_rejected() {
        let mut f = Fixture::new();
        assert!(matches!(
            f.put("a", "1", Precondition::None),
            CommandResult::Rejected(Rejection::UnknownSchema { .. })
        ));
        assert_eq!(f.store.applied().revision, 0);
    }

    #[test]
    fn listing_pages_by_prefix_after_a_key() {
        let mut f = Fixture::new();
        f.schema();
        for k in ["a/1", "a/2", "a/3", "b/1"] {
            written(f.put(k, "0", Precondition::None));
        }
        let keys = |p: ConfigPage| p.items.into_iter().map(|e| e.meta.key).collect::<Vec<_>>();
        let first = f.store.list_configs("a/", None, 2, usize::MAX).unwrap();
        assert!(first.more);
        assert_eq!(keys(first), ["a/1", "a/2"]);
        let rest = f
            .store
            .list_configs("a/", Some("a/2"), 2, usize::MAX)
            .unwrap();
        assert!(!rest.more);
        assert_eq!(keys(rest), ["a/3"]);
    }
}
