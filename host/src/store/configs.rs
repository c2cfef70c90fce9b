//! Configs: reading them (one key, a prefix page, every config of a schema) and the two
//! commands that change one key, `PutConfig` and `DeleteConfig`, with what every config write
//! shares (checking a write against its schema version, writing a value or a tombstone).
//!
//! Owns: the `sm_configs` and `sm_usage` records of a key as a write leaves them, and the
//! precondition check. Does not own: transactions and migrations, which write configs through
//! the functions here (`txn.rs`, `migrations.rs`), the key's history (`history.rs`) or its
//! audit record (`audit.rs`).

use super::apply::{ApplyTx, By};
use fjall::{Readable, Snapshot};

use super::history::record_key;
use super::keys::{
    Ks, decode_config_record, encode_config_meta, record_value, schema_key, with_value,
};
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
        let Some(bytes) = self.configs.get(key)? else {
            return Ok(None);
        };
        let (meta, inline) = decode_config_record(&bytes)?;
        if meta.deleted {
            return Ok(None);
        }
        if let Some(value) = inline {
            return Ok(Some(ConfigEntry { meta, value }));
        }
        // Two reads without a snapshot (a snapshot per read costs a lock): if the key was
        // overwritten in between and retention dropped the revision read first, read both
        // again at one point.
        match self.history.get(record_key(key, meta.revision))? {
            Some(record) => Ok(Some(ConfigEntry {
                value: record_value(&record)?,
                meta,
            })),
            None => self.config_in(&self.db.snapshot(), key),
        }
    }

    /// `key`'s live config as of `snap`.
    fn config_in(&self, snap: &Snapshot, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        match snap.get(&self.configs, key)? {
            Some(bytes) => self.entry_in(snap, &bytes),
            None => Ok(None),
        }
    }

    /// The live config a stored config record stands for as of `snap` (its value from the
    /// record itself or from its history record); `None` for a tombstone.
    fn entry_in(&self, snap: &Snapshot, bytes: &[u8]) -> Result<Option<ConfigEntry>, StoreError> {
        let (meta, inline) = decode_config_record(bytes)?;
        if meta.deleted {
            return Ok(None);
        }
        let value = match inline {
            Some(value) => value,
            None => match snap.get(&self.history, record_key(&meta.key, meta.revision))? {
                Some(record) => record_value(&record)?,
                None => return Err(missing_value(&meta)),
            },
        };
        Ok(Some(ConfigEntry { meta, value }))
    }

    /// Every live config of schema `name` whose version satisfies `version`, in key order. A
    /// full scan: used by the compatibility check of a new version and by storage migrations,
    /// not by requests.
    pub fn configs_of(
        &self,
        name: &str,
        version: impl Fn(u32) -> bool,
    ) -> Result<Vec<ConfigEntry>, StoreError> {
        let snap = self.db.snapshot();
        let mut out = Vec::new();
        for guard in snap.iter(&self.configs) {
            let (_, v) = guard.into_inner()?;
            let (meta, _) = decode_config_record(&v)?;
            if meta.deleted || meta.schema != name || !version(meta.schema_version) {
                continue;
            }
            out.extend(self.entry_in(&snap, &v)?);
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
        let snap = self.db.snapshot();
        let mut bytes = 0usize;
        let mut items = Vec::with_capacity(limit.min(1024));
        let iter = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                let start = std::ops::Bound::Excluded(after.as_bytes().to_vec());
                snap.range::<Vec<u8>, _>(&self.configs, (start, std::ops::Bound::Unbounded))
            }
            _ => snap.prefix(&self.configs, prefix),
        };
        for guard in iter {
            let (k, v) = guard.into_inner()?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let Some(entry) = self.entry_in(&snap, &v)? else {
                continue;
            };
            // At most `limit` items and about `max_bytes` of values (at least one item).
            if items.len() == limit || (!items.is_empty() && bytes >= max_bytes) {
                return Ok(ConfigPage { items, more: true });
            }
            // What the record took before values moved to history records.
            bytes += if v.contains(&b'\n') {
                v.len()
            } else {
                v.len() + 1 + entry.value.len()
            };
            items.push(entry);
        }
        Ok(ConfigPage { items, more: false })
    }
}

impl StateStore {
    /// A config record as written before format 4 (metadata, newline, value), for files older
    /// versions read (backups): the value comes from its history record as of `snap`.
    pub(super) fn config_with_value(
        &self,
        snap: &Snapshot,
        bytes: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if bytes.contains(&b'\n') {
            return Ok(bytes.to_vec());
        }
        let value = match self.entry_in(snap, bytes)? {
            Some(entry) => entry.value,
            None => String::new(),
        };
        Ok(with_value(bytes, &value))
    }
}

/// A config record whose history record is gone: retention never drops a key's newest
/// record, so the state is damaged.
fn missing_value(meta: &ConfigMeta) -> StoreError {
    StoreError::Corrupt {
        keyspace: "sm_history",
        reason: format!(
            "no history record for {} at its live revision {}",
            meta.key, meta.revision
        ),
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
        let previous = self.raw_config(&key)?;
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
        let Some(current) = self.live_meta(&key)? else {
            return Ok(CommandResult::Rejected(Rejection::NotFound(format!(
                "config {key}"
            ))));
        };
        if let Err(r) = check(&key, precondition, Some(current.revision)) {
            return Ok(CommandResult::Rejected(r));
        }
        self.meta.revision += 1;
        by.revision = self.meta.revision;
        let before = Some(current.revision);
        let tombstone = self.write_tombstone(current, by)?;
        self.audit_config("config.delete", &tombstone, before, by, None);
        Ok(CommandResult::ConfigDeleted(ConfigDeleted {
            meta: tombstone,
        }))
    }

    /// The key's live config with its value (a transaction's value conditions read it).
    pub(super) fn live_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        let Some(bytes) = self.get(Ks::Configs, key.as_bytes())? else {
            return Ok(None);
        };
        let (meta, inline) = decode_config_record(&bytes)?;
        if meta.deleted {
            return Ok(None);
        }
        let value = match inline {
            Some(value) => value,
            None => match self.get(Ks::History, &record_key(key, meta.revision))? {
                Some(record) => record_value(&record)?,
                None => return Err(missing_value(&meta)),
            },
        };
        Ok(Some(ConfigEntry { meta, value }))
    }

    /// The metadata of the key's live config.
    pub(super) fn live_meta(&self, key: &str) -> Result<Option<ConfigMeta>, StoreError> {
        Ok(self.raw_config(key)?.filter(|m| !m.deleted))
    }

    /// The metadata of the key's record, tombstone included.
    pub(super) fn raw_config(&self, key: &str) -> Result<Option<ConfigMeta>, StoreError> {
        self.get(Ks::Configs, key.as_bytes())?
            .map(|b| decode_config_record(&b).map(|(meta, _)| meta))
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
        // This apply call's own schema records first; otherwise the committed one, which
        // the cache holds unless the schemas changed since it was read.
        let registered = match self
            .overlay
            .get(&(Ks::Schemas, schema_key(schema, version)))
        {
            Some(Some(b)) => Some(
                self.store
                    .schema_cache
                    .decode_uncommitted(schema, version, b)?,
            ),
            Some(None) => None,
            None => self.store.schema_record(schema, version)?,
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
        // The history record holds the value. A config record small enough to stay in the
        // tree's data blocks holds it too (a read is then one lookup); a larger one would be
        // a blob, read with a second lookup anyway, and holds the metadata alone, so a large
        // value is stored once.
        let meta_json = encode_config_meta(&meta);
        let record = with_value(&meta_json, &v.value);
        let config = config_record(meta_json, &record);
        self.record_history(&meta, record, previous.as_ref())?;
        self.put(Ks::Configs, meta.key.clone().into_bytes(), config);
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
        let meta_json = encode_config_meta(&tombstone);
        self.record_history(&tombstone, with_value(&meta_json, ""), Some(&current))?;
        self.put(Ks::Configs, tombstone.key.clone().into_bytes(), meta_json);
        Ok(tombstone)
    }
}

/// The config record of a write whose history record is `record`: the record itself while it
/// is below fjall's separation threshold, else the metadata alone.
fn config_record(meta_json: Vec<u8>, record: &[u8]) -> Vec<u8> {
    if record.len() < super::SEPARATE_FROM_BYTES as usize {
        record.to_vec()
    } else {
        meta_json
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
    use crate::store::history::record_key;
    use crate::store::keys::{decode_config, decode_config_record, encode_config_meta, with_value};
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
        assert!(decode_config_record(&raw).unwrap().0.deleted);
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

    /// A JSON string value of exactly `bytes` bytes.
    fn string_of(bytes: usize, seed: usize) -> String {
        let digits = seed.to_string();
        format!("\"{digits}{}\"", "x".repeat(bytes - 2 - digits.len()))
    }

    #[test]
    fn a_large_value_is_stored_once_in_its_history_record() {
        let mut f = Fixture::new();
        f.schema();
        let value = string_of(2000, 1);
        let meta = written(f.put("a", &value, Precondition::None));
        let raw = f.store.configs.get("a").unwrap().unwrap();
        let (stored, inline) = decode_config_record(&raw).unwrap();
        assert_eq!((stored.revision, inline), (meta.revision, None));
        let record = f
            .store
            .history
            .get(record_key("a", meta.revision))
            .unwrap()
            .unwrap();
        assert_eq!(decode_config(&record).unwrap().value, value);
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, value);
    }

    #[test]
    fn a_small_value_is_in_its_config_record_too() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("a", r#"{"x":1}"#, Precondition::None));
        let raw = f.store.configs.get("a").unwrap().unwrap();
        assert_eq!(
            decode_config_record(&raw).unwrap().1.as_deref(),
            Some(r#"{"x":1}"#)
        );
    }

    #[test]
    fn a_config_record_holds_its_value_below_the_separation_threshold_only() {
        let meta = b"{}".to_vec();
        let at = |len: usize| super::config_record(meta.clone(), &vec![b'x'; len]);
        let limit = crate::store::SEPARATE_FROM_BYTES as usize;
        assert_eq!(at(limit - 1).len(), limit - 1);
        assert_eq!(at(limit), meta);
    }

    #[test]
    fn a_config_record_holding_its_value_is_read_from_it() {
        // As versions before snapshot format 4 wrote config records, and backups still do.
        let mut f = Fixture::new();
        f.schema();
        let meta = written(f.put("a", "1", Precondition::None));
        f.store
            .configs
            .insert("a", with_value(&encode_config_meta(&meta), "2"))
            .unwrap();
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "2");
        let page = f.store.list_configs("", None, 10, usize::MAX).unwrap();
        assert_eq!(page.items[0].value, "2");
        assert_eq!(f.store.configs_of("s", |_| true).unwrap()[0].value, "2");
        // The next write of a large value stores it once.
        let large = string_of(2000, 3);
        written(f.put("a", &large, Precondition::None));
        let raw = f.store.configs.get("a").unwrap().unwrap();
        assert!(decode_config_record(&raw).unwrap().1.is_none());
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, large);
    }

    #[test]
    fn a_read_racing_overwrites_that_drop_its_revision_gets_a_value() {
        // With one revision kept, each overwrite of a large value drops the history record the
        // config record pointed at a moment before; a read between its two point reads must
        // read again.
        let mut f = Fixture::keeping(1);
        written(f.put("a", &string_of(2000, 0), Precondition::None));
        let store = f.store.clone();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..3000 {
                    written(f.put("a", &string_of(2000, i), Precondition::None));
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let entry = store.get_config("a").unwrap().unwrap();
                assert_eq!(entry.value.len(), 2000);
            }
        });
    }
}
