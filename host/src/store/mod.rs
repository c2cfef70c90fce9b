//! The replicated state machine on fjall: configs (with tombstones), schema versions, plugin
//! bytes, the global revision, every config's history and the audit trail.
//!
//! Owns: how a committed command changes state (deterministically: no clock, no plugin, no
//! randomness), how state is read, snapshotted and restored. Does not own: validation (done
//! before proposing, in [`crate::schema`] and [`crate::plugins`]) or the log ([`crate::raft`]).

mod audit;
pub mod command;
#[cfg(test)]
mod encoding_tests;
mod history;
mod result;
pub(crate) mod snapshot;
mod state_machine;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, Readable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use audit::{AuditFilter, AuditPage, AuditRecord, Provenance};
pub use command::{
    Command, Condition, ConfigMeta, Context, DeleteConfig, DeleteSchema, FinishMigration,
    MAX_FAILURES_KEPT, MigrateBatch, MigrationFailure, MigrationRecord, MigrationSpec,
    MigrationStatus, MigrationWrite, Op, PluginContract, Precondition, PutConfig, PutSchema,
    SchemaPolicy, SchemaRecord, SetHistoryRetention, SetSchemaPolicy, StartMigration, Test, Txn,
    TxnOp, Validation, WritePolicy,
};
pub use history::{AtRevision, Changes, HistoryPage, HistoryRetention};
pub use result::{
    CommandResult, ConfigDeleted, ConfigWritten, FailedCondition, HistoryRetentionSet, Proposal,
    Rejection, SchemaDeleted, SchemaPolicySet, SchemaRegistered, TxnApplied, WrongResult,
};
pub use snapshot::verify_current_snapshot;
pub use state_machine::StateMachine;

use crate::raft::{LogId, StoredMembership};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Fjall(#[from] fjall::Error),
    #[error("corrupt record in {keyspace}: {reason}")]
    Corrupt {
        keyspace: &'static str,
        reason: String,
    },
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What the state machine remembers besides the data itself; written with every apply batch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SmMeta {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Global revision: +1 per committed change of configs or schemas.
    pub revision: u64,
    pub live_configs: u64,
    pub schema_versions: u64,
    /// How much history is kept per key (a replicated setting).
    #[serde(default)]
    pub history: HistoryRetention,
    /// Audit records written so far (the last one's sequence number).
    #[serde(default)]
    pub audit_seq: u64,
    /// The newest revision the history's age retention swept: a watch must start after it.
    #[serde(default)]
    pub history_floor: u64,
}

const META_KEY: &[u8] = b"sm";

/// The state behind the state machine. Reads go straight to fjall; apply is serialised by
/// openraft (one apply task).
pub struct StateStore {
    db: Database,
    pub(crate) configs: Keyspace,
    pub(crate) schemas: Keyspace,
    pub(crate) plugins: Keyspace,
    pub(crate) usage: Keyspace,
    pub(crate) schema_meta: Keyspace,
    pub(crate) history: Keyspace,
    pub(crate) audit: Keyspace,
    pub(crate) meta: Keyspace,
    snapshot_dir: PathBuf,
    /// Held while a snapshot file is built or installed: openraft runs the two concurrently,
    /// and each replaces the snapshot directory's other files when it finishes.
    snapshot_files: Mutex<()>,
    /// Decoded schema records with the bytes they were decoded from (see `decode_schema`).
    schema_cache: Mutex<HashMap<(String, u32), SchemaCacheEntry>>,
    state: Mutex<SmMeta>,
    applied: watch::Sender<SmMeta>,
}

type SchemaCacheEntry = (Vec<u8>, Arc<SchemaRecord>);

/// Schema versions whose decoded records are kept at most (the cache starts over beyond).
const SCHEMA_CACHE_ENTRIES: usize = 1024;

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

pub(crate) fn schema_key(name: &str, version: u32) -> Vec<u8> {
    // Zero-padded so byte order is version order.
    format!("{name}/{version:010}").into_bytes()
}

/// The version in a [`schema_key`].
fn version_of(key: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(key).ok()?;
    text.rsplit_once('/')?.1.parse().ok()
}

/// Stored form of a config: metadata JSON, a newline, then the value's JSON text. Reads can
/// hand the value out without parsing it.
pub(crate) fn encode_config(meta: &ConfigMeta, value: &str) -> Vec<u8> {
    let mut out = serde_json::to_vec(meta).expect("config metadata serialises");
    out.push(b'\n');
    out.extend_from_slice(value.as_bytes());
    out
}

pub(crate) fn decode_config(bytes: &[u8]) -> Result<ConfigEntry, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        keyspace: "configs",
        reason,
    };
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("missing separator".into()))?;
    let meta: ConfigMeta =
        serde_json::from_slice(&bytes[..split]).map_err(|e| corrupt(e.to_string()))?;
    let value = std::str::from_utf8(&bytes[split + 1..])
        .map_err(|e| corrupt(e.to_string()))?
        .to_string();
    Ok(ConfigEntry { meta, value })
}

fn decode_json<T: serde::de::DeserializeOwned>(
    keyspace: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        keyspace,
        reason: e.to_string(),
    })
}

impl StateStore {
    /// Opens the state machine's keyspaces in `db`; installs the newest snapshot file if it is
    /// ahead of the applied state (an install interrupted by a crash).
    pub fn open(db: &Database, data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let meta_ks = ks("sm_meta")?;
        let meta: SmMeta = match meta_ks.get(META_KEY)? {
            Some(bytes) => decode_json("sm_meta", &bytes)?,
            None => SmMeta::default(),
        };
        let snapshot_dir = data_dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        let (applied, _) = watch::channel(meta.clone());
        let store = Arc::new(Self {
            db: db.clone(),
            configs: ks("sm_configs")?,
            schemas: ks("sm_schemas")?,
            plugins: ks("sm_plugins")?,
            usage: ks("sm_usage")?,
            schema_meta: ks("sm_schema_meta")?,
            history: ks("sm_history")?,
            audit: ks("sm_audit")?,
            meta: meta_ks,
            snapshot_dir,
            snapshot_files: Mutex::new(()),
            schema_cache: Mutex::default(),
            state: Mutex::new(meta),
            applied,
        });
        store.recover_interrupted_install()?;
        Ok(store)
    }

    /// Reads every record of the state (fjall checks each block's checksum as it loads it).
    /// Run once at start-up, so that damage surfaces then and not in the middle of serving.
    pub fn verify(&self) -> Result<(), StoreError> {
        for ks in [
            &self.configs,
            &self.schemas,
            &self.plugins,
            &self.usage,
            &self.schema_meta,
            &self.history,
            &self.audit,
            &self.meta,
        ] {
            for guard in ks.iter() {
                guard.into_inner()?;
            }
        }
        Ok(())
    }

    /// The applied state, as of the last apply.
    pub fn applied(&self) -> SmMeta {
        self.state.lock().expect("state lock").clone()
    }

    /// Changes whenever an apply batch commits (for waiting on a revision).
    pub fn subscribe(&self) -> watch::Receiver<SmMeta> {
        self.applied.subscribe()
    }

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

    pub fn get_schema(&self, name: &str, version: u32) -> Result<Option<SchemaRecord>, StoreError> {
        self.schemas
            .get(schema_key(name, version))?
            .map(|b| decode_json("sm_schemas", &b))
            .transpose()
    }

    /// Whether `name` v`version` is registered (without decoding its record).
    pub fn has_schema(&self, name: &str, version: u32) -> Result<bool, StoreError> {
        Ok(self.schemas.contains_key(schema_key(name, version))?)
    }

    /// [`Self::get_schema`] for the write path: decoded once per stored record, shared.
    pub fn schema_record(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<Arc<SchemaRecord>>, StoreError> {
        self.schemas
            .get(schema_key(name, version))?
            .map(|b| self.decode_schema(name, version, &b))
            .transpose()
    }

    /// Decodes a stored schema record, or returns the one decoded earlier from the same bytes.
    /// A record holds its whole JSON Schema, and decoding it on every write cost more than the
    /// write's JSON Schema validation; comparing the bytes keeps the cache right without any
    /// invalidation.
    fn decode_schema(
        &self,
        name: &str,
        version: u32,
        bytes: &[u8],
    ) -> Result<Arc<SchemaRecord>, StoreError> {
        let key = (name.to_string(), version);
        let mut cache = self.schema_cache.lock().expect("schema record cache");
        if let Some((raw, record)) = cache.get(&key)
            && raw.as_slice() == bytes
        {
            return Ok(record.clone());
        }
        let record: Arc<SchemaRecord> = Arc::new(decode_json("sm_schemas", bytes)?);
        if cache.len() >= SCHEMA_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (bytes.to_vec(), record.clone()));
        Ok(record)
    }

    /// All registered versions, ordered by name then version.
    pub fn list_schemas(&self, name: Option<&str>) -> Result<Vec<SchemaRecord>, StoreError> {
        let prefix = name.map(|n| format!("{n}/")).unwrap_or_default();
        self.schemas
            .prefix(prefix)
            .map(|g| {
                let (_, v) = g.into_inner()?;
                decode_json("sm_schemas", &v)
            })
            .collect()
    }

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

    /// The schema's policy (the default if none was set).
    pub fn schema_policy(&self, name: &str) -> Result<SchemaPolicy, StoreError> {
        Ok(match self.schema_meta.get(policy_key(name))? {
            Some(b) => decode_json("sm_schema_meta", &b)?,
            None => SchemaPolicy::default(),
        })
    }

    pub fn plugin_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.plugins.get(digest)?.map(|s| s.to_vec()))
    }

    /// Applies commands of one apply call as one atomic fjall batch (not fsynced: the log
    /// is the durable record, see `raft::log_store`).
    pub(crate) fn apply_batch(
        &self,
        entries: impl IntoIterator<Item = crate::raft::Entry>,
    ) -> Result<Vec<Vec<CommandResult>>, StoreError> {
        let mut tx = ApplyTx {
            store: self,
            meta: self.applied(),
            overlay: HashMap::new(),
            history_added: HashMap::new(),
        };
        let mut results = Vec::new();
        for entry in entries {
            tx.meta.last_applied = Some(entry.log_id);
            results.push(match entry.payload {
                openraft::EntryPayload::Blank => Vec::new(),
                // Each command of a batch is its own change, with its own revision.
                openraft::EntryPayload::Normal(cmds) => cmds
                    .into_iter()
                    .map(|c| tx.execute(c))
                    .collect::<Result<_, _>>()?,
                openraft::EntryPayload::Membership(m) => {
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
                    tx.meta.membership = StoredMembership::new(Some(entry.log_id), m);
                    Vec::new()
                }
            });
        }
        let mut batch = self.db.batch();
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
        *self.state.lock().expect("state lock") = tx.meta.clone();
        self.applied.send_replace(tx.meta);
        Ok(results)
    }

    fn keyspace(&self, ks: Ks) -> &Keyspace {
        match ks {
            Ks::Configs => &self.configs,
            Ks::Schemas => &self.schemas,
            Ks::Plugins => &self.plugins,
            Ks::Usage => &self.usage,
            Ks::SchemaMeta => &self.schema_meta,
            Ks::History => &self.history,
            Ks::Audit => &self.audit,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Ks {
    Configs,
    Schemas,
    Plugins,
    Usage,
    /// Per-schema records besides versions: `policy/{name}`.
    SchemaMeta,
    /// Every revision of every config (see `history.rs`).
    History,
    /// The audit trail (see `audit.rs`).
    Audit,
}

fn policy_key(name: &str) -> Vec<u8> {
    format!("policy/{name}").into_bytes()
}

/// Zero-padded so that byte order is id order.
fn migration_key(name: &str, id: u64) -> Vec<u8> {
    format!("migration/{name}/{id:020}").into_bytes()
}

/// The writes of one apply call, visible to the later commands of the same call.
struct ApplyTx<'a> {
    store: &'a StateStore,
    meta: SmMeta,
    overlay: HashMap<(Ks, Vec<u8>), Option<Vec<u8>>>,
    /// History revisions recorded by this apply call, per key: so that retention finds them
    /// without scanning the whole overlay for every write (a catch-up applies thousands of
    /// entries in one call).
    history_added: HashMap<String, Vec<u64>>,
}

impl ApplyTx<'_> {
    fn get(&self, ks: Ks, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(ks, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.store.keyspace(ks).get(key)?.map(|s| s.to_vec()))
    }

    fn put(&mut self, ks: Ks, key: Vec<u8>, value: Vec<u8>) {
        self.overlay.insert((ks, key), Some(value));
    }

    fn remove(&mut self, ks: Ks, key: Vec<u8>) {
        self.overlay.insert((ks, key), None);
    }

    fn live_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        Ok(match self.get(Ks::Configs, key.as_bytes())? {
            Some(bytes) => Some(decode_config(&bytes)?).filter(|e| !e.meta.deleted),
            None => None,
        })
    }

    fn schema(&self, name: &str, version: u32) -> Result<Option<SchemaRecord>, StoreError> {
        self.get(Ks::Schemas, &schema_key(name, version))?
            .map(|b| decode_json("sm_schemas", &b))
            .transpose()
    }

    /// The highest registered version of `name`, this apply call's changes included.
    fn latest_version(&self, name: &str) -> Result<Option<u32>, StoreError> {
        let prefix = format!("{name}/");
        let mut latest = None;
        for g in self.store.schemas.prefix(&prefix) {
            let k = g.key()?;
            if self.overlay.get(&(Ks::Schemas, k.to_vec())) == Some(&None) {
                continue;
            }
            latest = latest.max(version_of(&k));
        }
        for ((ks, k), v) in &self.overlay {
            if *ks == Ks::Schemas && v.is_some() && k.starts_with(prefix.as_bytes()) {
                latest = latest.max(version_of(k));
            }
        }
        Ok(latest)
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

    fn policy(&self, name: &str) -> Result<SchemaPolicy, StoreError> {
        Ok(match self.get(Ks::SchemaMeta, &policy_key(name))? {
            Some(b) => decode_json("sm_schema_meta", &b)?,
            None => SchemaPolicy::default(),
        })
    }

    fn usage(&self, name: &str, version: u32) -> Result<u64, StoreError> {
        Ok(match self.get(Ks::Usage, &schema_key(name, version))? {
            Some(b) => decode_json("sm_usage", &b)?,
            None => 0,
        })
    }

    fn add_usage(&mut self, name: &str, version: u32, delta: i64) -> Result<(), StoreError> {
        let n = self.usage(name, version)?.saturating_add_signed(delta);
        let key = schema_key(name, version);
        if n == 0 {
            self.remove(Ks::Usage, key);
        } else {
            self.put(Ks::Usage, key, n.to_string().into_bytes());
        }
        Ok(())
    }

    /// The key's record, tombstone included.
    fn raw_config(&self, key: &str) -> Result<Option<ConfigEntry>, StoreError> {
        self.get(Ks::Configs, key.as_bytes())?
            .map(|b| decode_config(&b))
            .transpose()
    }

    /// Whether a value validated at `schema`/`version` by `plugin_digest` may be written now
    /// (its precondition aside): the version is registered, the schema's policy allows it,
    /// and the registered plugin is the one that validated it.
    fn check_put(
        &self,
        schema: &str,
        version: u32,
        plugin_digest: &Option<String>,
    ) -> Result<Result<(), Rejection>, StoreError> {
        let registered = match self.get(Ks::Schemas, &schema_key(schema, version))? {
            Some(b) => Some(self.store.decode_schema(schema, version, &b)?),
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
    fn write_config(
        &mut self,
        v: NewValue,
        by: &By,
        previous: Option<ConfigMeta>,
    ) -> Result<ConfigMeta, StoreError> {
        let meta = match previous.as_ref().filter(|p| !p.deleted) {
            Some(cur) => {
                self.add_usage(&cur.schema, cur.schema_version, -1)?;
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
        self.add_usage(&meta.schema, meta.schema_version, 1)?;
        self.put(
            Ks::Configs,
            meta.key.clone().into_bytes(),
            encode_config(&meta, &v.value),
        );
        self.record_history(&meta, &v.value, previous.as_ref())?;
        Ok(meta)
    }

    /// Replaces the live config `current` with a tombstone at `by.revision`.
    fn delete_config(&mut self, current: ConfigMeta, by: &By) -> Result<ConfigMeta, StoreError> {
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

    /// The audit record of a config change.
    fn audit_config(
        &mut self,
        action: &'static str,
        meta: &ConfigMeta,
        revision_before: Option<u64>,
        by: &By,
        detail: Option<serde_json::Value>,
    ) {
        let validation = (!meta.deleted).then(|| audit::Provenance {
            schema: meta.schema.clone(),
            schema_version: meta.schema_version,
            plugin_digest: meta.plugin_digest.clone(),
            elapsed_us: by.context.validation_us(&meta.key),
        });
        self.audit(audit::Entry {
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
    fn audit_other(
        &mut self,
        action: &'static str,
        object: String,
        by: &By,
        detail: serde_json::Value,
    ) {
        self.audit(audit::Entry {
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

    /// Applies one command, then lets the age retention catch up with its clock.
    fn execute(&mut self, cmd: Command) -> Result<CommandResult, StoreError> {
        let at_ms = cmd.at_ms;
        let result = self.execute_op(cmd)?;
        self.sweep_history(at_ms)?;
        Ok(result)
    }

    fn execute_op(&mut self, cmd: Command) -> Result<CommandResult, StoreError> {
        let Command {
            actor,
            at_ms,
            op,
            context,
        } = cmd;
        let mut by = By {
            actor: &actor,
            at_ms,
            revision: 0,
            context: &context,
        };
        Ok(match op {
            Op::PutConfig(PutConfig {
                key,
                schema,
                schema_version,
                plugin_digest,
                value,
                precondition,
            }) => {
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
                let meta = self.write_config(v, &by, previous)?;
                let (action, detail) = match (context.rollback_of, before) {
                    (Some(r), _) => ("config.rollback", Some(serde_json::json!({"to": r}))),
                    (None, Some(_)) => ("config.update", None),
                    (None, None) => ("config.create", None),
                };
                self.audit_config(action, &meta, before, &by, detail);
                CommandResult::ConfigWritten(ConfigWritten {
                    meta,
                    created: before.is_none(),
                })
            }
            Op::DeleteConfig(DeleteConfig { key, precondition }) => {
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
                let tombstone = self.delete_config(current.meta, &by)?;
                self.audit_config("config.delete", &tombstone, before, &by, None);
                CommandResult::ConfigDeleted(ConfigDeleted { meta: tombstone })
            }
            Op::Txn(Txn { conditions, ops }) => self.txn(conditions, ops, &mut by)?,
            Op::PutSchema(PutSchema {
                name,
                version,
                schema,
                plugin_digest,
                plugin,
                plugin_contract,
            }) => {
                if let Some(existing) = self.schema(&name, version)? {
                    return Ok(
                        if existing.schema == schema && existing.plugin_digest == plugin_digest {
                            CommandResult::SchemaRegistered(SchemaRegistered {
                                record: existing,
                                created: false,
                            })
                        } else {
                            CommandResult::Rejected(Rejection::SchemaConflict { name, version })
                        },
                    );
                }
                self.meta.revision += 1;
                self.meta.schema_versions += 1;
                if let (Some(digest), Some(bytes)) = (&plugin_digest, plugin) {
                    self.put(Ks::Plugins, digest.clone().into_bytes(), bytes);
                }
                let record = SchemaRecord {
                    name,
                    version,
                    schema,
                    plugin_digest,
                    revision: self.meta.revision,
                    registered_at: at_ms,
                    registered_by: actor.clone(),
                    plugin_contract,
                };
                self.put(
                    Ks::Schemas,
                    schema_key(&record.name, version),
                    serde_json::to_vec(&record).expect("schema record serialises"),
                );
                self.audit_other(
                    "schema.register",
                    format!("schema/{}/{version}", record.name),
                    &by,
                    serde_json::json!({
                        "plugin_digest": record.plugin_digest,
                        "plugin_contract": record.plugin_contract,
                    }),
                );
                CommandResult::SchemaRegistered(SchemaRegistered {
                    record,
                    created: true,
                })
            }
            Op::SetHistoryRetention(SetHistoryRetention { retention }) => {
                self.meta.revision += 1;
                self.meta.history = HistoryRetention {
                    keep: retention.keep.max(1),
                    max_age_seconds: retention.max_age_seconds,
                };
                let detail = serde_json::to_value(self.meta.history).expect("serialises");
                self.audit_other("settings.history", "settings/history".into(), &by, detail);
                CommandResult::HistoryRetentionSet(HistoryRetentionSet {
                    retention: self.meta.history,
                    revision: self.meta.revision,
                })
            }
            Op::SetSchemaPolicy(SetSchemaPolicy { name, policy }) => {
                if self.latest_version(&name)?.is_none() {
                    return Ok(CommandResult::Rejected(Rejection::NoVersions(name)));
                }
                self.meta.revision += 1;
                self.put(
                    Ks::SchemaMeta,
                    policy_key(&name),
                    serde_json::to_vec(&policy).expect("policy serialises"),
                );
                let detail = serde_json::to_value(&policy).expect("serialises");
                self.audit_other("schema.policy", format!("schema/{name}"), &by, detail);
                CommandResult::SchemaPolicySet(SchemaPolicySet {
                    name,
                    policy,
                    revision: self.meta.revision,
                })
            }
            Op::StartMigration(StartMigration {
                name,
                target_version,
                total,
            }) => {
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
                    started_at: at_ms,
                    started_by: actor.clone(),
                    updated_at: at_ms,
                    finished_at: None,
                };
                self.put_migration(&record);
                self.audit_other(
                    "migration.start",
                    format!("migration/{}/{}", record.name, record.id),
                    &by,
                    serde_json::json!({"target_version": target_version, "total": total}),
                );
                CommandResult::Migration(record)
            }
            Op::MigrateBatch(MigrateBatch {
                name,
                id,
                writes,
                failures,
            }) => {
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
                    let previous = self.raw_config(&w.key)?.map(|e| e.meta);
                    let before = previous.as_ref().filter(|p| !p.deleted).map(|p| p.revision);
                    let pre = Precondition::Revision(w.expected_revision);
                    if check(&w.key, pre, before).is_err() {
                        record.skipped += 1;
                        continue;
                    }
                    if let Err(r) =
                        self.check_put(&name, record.target_version, &w.plugin_digest)?
                    {
                        failures.push(MigrationFailure {
                            key: w.key,
                            revision: w.expected_revision,
                            reason: r.to_string(),
                        });
                        continue;
                    }
                    self.meta.revision += 1;
                    let by = By {
                        actor: &started_by,
                        at_ms,
                        revision: self.meta.revision,
                        context: &context,
                    };
                    let v = NewValue {
                        key: w.key,
                        schema: name.clone(),
                        schema_version: record.target_version,
                        plugin_digest: w.plugin_digest,
                        value: w.value,
                    };
                    let meta = self.write_config(v, &by, previous)?;
                    self.audit_config(
                        "config.migrate",
                        &meta,
                        before,
                        &by,
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
                record.updated_at = at_ms;
                self.put_migration(&record);
                CommandResult::Migration(record)
            }
            Op::FinishMigration(FinishMigration { name, id }) => {
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
                record.updated_at = at_ms;
                record.finished_at = Some(at_ms);
                self.put_migration(&record);
                self.audit_other(
                    "migration.finish",
                    format!("migration/{name}/{id}"),
                    &by,
                    serde_json::json!({
                        "done": record.done,
                        "skipped": record.skipped,
                        "failed": record.failed_count,
                    }),
                );
                CommandResult::Migration(record)
            }
            Op::DeleteSchema(DeleteSchema { name, version }) => {
                let Some(record) = self.schema(&name, version)? else {
                    return Ok(CommandResult::Rejected(Rejection::NotFound(format!(
                        "schema {name} version {version}"
                    ))));
                };
                let configs = self.usage(&name, version)?;
                if configs > 0 {
                    return Ok(CommandResult::Rejected(Rejection::SchemaInUse {
                        name,
                        version,
                        configs,
                    }));
                }
                self.meta.revision += 1;
                self.meta.schema_versions = self.meta.schema_versions.saturating_sub(1);
                self.remove(Ks::Schemas, schema_key(&name, version));
                if let Some(digest) = &record.plugin_digest
                    && !self.digest_used_elsewhere(digest, &name, version)?
                {
                    self.remove(Ks::Plugins, digest.clone().into_bytes());
                }
                self.audit_other(
                    "schema.delete",
                    format!("schema/{name}/{version}"),
                    &by,
                    serde_json::json!({"plugin_digest": record.plugin_digest}),
                );
                CommandResult::SchemaDeleted(SchemaDeleted { record })
            }
        })
    }

    /// A transaction: every condition and every operation is checked before anything is
    /// written, then all operations are written at one new revision.
    fn txn(
        &mut self,
        conditions: Vec<Condition>,
        ops: Vec<TxnOp>,
        by: &mut By,
    ) -> Result<CommandResult, StoreError> {
        let mut keys = std::collections::HashSet::new();
        if let Some(dup) = ops.iter().find(|op| !keys.insert(op.key())) {
            return Ok(CommandResult::Rejected(Rejection::InvalidTxn(format!(
                "key {} appears in more than one operation",
                dup.key()
            ))));
        }
        if ops.is_empty() {
            return Ok(CommandResult::Rejected(Rejection::InvalidTxn(
                "a transaction needs at least one operation".into(),
            )));
        }
        let mut failed = Vec::new();
        for (index, c) in conditions.iter().enumerate() {
            let current = self.live_config(&c.key)?;
            let holds = match &c.test {
                Test::Revision(r) => current.as_ref().is_some_and(|e| e.meta.revision == *r),
                Test::Exists(exists) => current.is_some() == *exists,
                Test::ValueAt { pointer, equals } => current.as_ref().is_some_and(|e| {
                    serde_json::from_str::<serde_json::Value>(&e.value)
                        .ok()
                        .is_some_and(|v| v.pointer(pointer) == Some(equals))
                }),
                Test::ValueEquals { pointer, equals } => current.as_ref().is_some_and(|e| {
                    match (
                        serde_json::from_str::<serde_json::Value>(&e.value),
                        serde_json::from_str::<serde_json::Value>(equals),
                    ) {
                        (Ok(v), Ok(equals)) => v
                            .pointer(pointer)
                            .is_some_and(|at| crate::json::equal(at, &equals)),
                        _ => false,
                    }
                }),
            };
            if !holds {
                failed.push(FailedCondition {
                    index,
                    key: c.key.clone(),
                    current_revision: current.map(|e| e.meta.revision),
                });
            }
        }
        if !failed.is_empty() {
            return Ok(CommandResult::Rejected(Rejection::ConditionFailed {
                failed,
            }));
        }
        let mut previous = Vec::with_capacity(ops.len());
        for op in &ops {
            let prev = self.raw_config(op.key())?.map(|e| e.meta);
            let rejected = match op {
                TxnOp::Put {
                    schema,
                    schema_version,
                    plugin_digest,
                    ..
                } => self
                    .check_put(schema, *schema_version, plugin_digest)?
                    .err(),
                TxnOp::Delete { key } => prev
                    .as_ref()
                    .is_none_or(|p| p.deleted)
                    .then(|| Rejection::NotFound(format!("config {key}"))),
            };
            if let Some(r) = rejected {
                return Ok(CommandResult::Rejected(r));
            }
            previous.push(prev);
        }
        self.meta.revision += 1;
        by.revision = self.meta.revision;
        let detail = serde_json::json!({"txn": {"operations": ops.len()}});
        let mut results = Vec::with_capacity(ops.len());
        for (op, prev) in ops.into_iter().zip(previous) {
            let before = prev.as_ref().filter(|p| !p.deleted).map(|p| p.revision);
            let (meta, action) = match op {
                TxnOp::Put {
                    key,
                    schema,
                    schema_version,
                    plugin_digest,
                    value,
                } => {
                    let v = NewValue {
                        key,
                        schema,
                        schema_version,
                        plugin_digest,
                        value,
                    };
                    let action = if before.is_some() {
                        "config.update"
                    } else {
                        "config.create"
                    };
                    (self.write_config(v, by, prev)?, action)
                }
                TxnOp::Delete { .. } => {
                    let current = prev.expect("checked above");
                    (self.delete_config(current, by)?, "config.delete")
                }
            };
            self.audit_config(action, &meta, before, by, Some(detail.clone()));
            results.push(meta);
        }
        Ok(CommandResult::TxnApplied(TxnApplied {
            revision: by.revision,
            results,
        }))
    }

    fn digest_used_elsewhere(
        &self,
        digest: &str,
        name: &str,
        version: u32,
    ) -> Result<bool, StoreError> {
        // Schema versions are few (hundreds at most), so a scan is cheaper than a refcount.
        for g in self.store.schemas.iter() {
            let (k, v) = g.into_inner()?;
            if k.as_ref() == schema_key(name, version).as_slice() {
                continue;
            }
            if self.overlay.get(&(Ks::Schemas, k.to_vec())) == Some(&None) {
                continue;
            }
            let rec: SchemaRecord = decode_json("sm_schemas", &v)?;
            if rec.plugin_digest.as_deref() == Some(digest) {
                return Ok(true);
            }
        }
        Ok(self.overlay.iter().any(|((ks, _), v)| {
            *ks == Ks::Schemas
                && v.as_ref()
                    .and_then(|b| serde_json::from_slice::<SchemaRecord>(b).ok())
                    .is_some_and(|r| {
                        r.plugin_digest.as_deref() == Some(digest)
                            && (r.name != name || r.version != version)
                    })
        }))
    }
}

/// A value a write puts (checked).
struct NewValue {
    key: String,
    schema: String,
    schema_version: u32,
    plugin_digest: Option<String>,
    value: String,
}

/// Who makes a change, when, at which revision, and what the audit trail should know.
struct By<'c> {
    actor: &'c str,
    at_ms: u64,
    revision: u64,
    context: &'c Context,
}

/// Whether `pre` holds for a key whose live revision is `current_rev` (`None`: absent).
fn check(key: &str, pre: Precondition, current_rev: Option<u64>) -> Result<(), Rejection> {
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

/// A read-only view used by snapshots (fjall snapshot = one consistent point in time).
pub(crate) fn read_meta(snap: &fjall::Snapshot, meta_ks: &Keyspace) -> Result<SmMeta, StoreError> {
    match snap.get(meta_ks, META_KEY)? {
        Some(b) => decode_json("sm_meta", &b),
        None => Ok(SmMeta::default()),
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::raft::Entry;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<StateStore>,
        index: u64,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let db = Database::builder(dir.path().join("db")).open().unwrap();
            let store = StateStore::open(&db, dir.path()).unwrap();
            Self {
                _dir: dir,
                store,
                index: 0,
            }
        }

        fn apply(&mut self, op: Op) -> CommandResult {
            self.index += 1;
            let entry = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
                payload: EntryPayload::Normal(vec![Command::new(
                    "tester".into(),
                    1_000 + self.index,
                    op,
                )]),
            };
            self.store.apply_batch([entry]).unwrap().remove(0).remove(0)
        }

        fn schema(&mut self) {
            let r = self.apply(Op::PutSchema(PutSchema {
                name: "s".into(),
                version: 1,
                schema: "{}".into(),
                plugin_digest: None,
                plugin: None,
                plugin_contract: None,
            }));
            assert!(matches!(
                r,
                CommandResult::SchemaRegistered(SchemaRegistered { created: true, .. })
            ));
        }

        fn put(&mut self, key: &str, value: &str, precondition: Precondition) -> CommandResult {
            self.apply(Op::PutConfig(PutConfig {
                key: key.into(),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: None,
                value: value.into(),
                precondition,
            }))
        }
    }

    fn written(r: CommandResult) -> ConfigMeta {
        match r {
            CommandResult::ConfigWritten(ConfigWritten { meta, .. }) => meta,
            other => panic!("expected a write, got {other:?}"),
        }
    }

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
    fn a_schema_version_in_use_cannot_be_deleted() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("a", "1", Precondition::None));
        let del = || {
            Op::DeleteSchema(DeleteSchema {
                name: "s".into(),
                version: 1,
            })
        };
        assert!(matches!(
            f.apply(del()),
            CommandResult::Rejected(Rejection::SchemaInUse { configs: 1, .. })
        ));
        f.apply(Op::DeleteConfig(DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        }));
        assert!(matches!(
            f.apply(del()),
            CommandResult::SchemaDeleted(SchemaDeleted { .. })
        ));
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
    fn a_snapshot_restores_the_same_state_elsewhere() {
        let mut a = Fixture::new();
        a.schema();
        for i in 0..50 {
            written(a.put(&format!("k/{i:02}"), &i.to_string(), Precondition::None));
        }
        a.apply(Op::DeleteConfig(DeleteConfig {
            key: "k/07".into(),
            precondition: Precondition::None,
        }));
        let (meta, file) = a.store.build_snapshot_file().unwrap();
        let b = Fixture::new();
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(b.store.applied(), a.store.applied());
        let page = |s: &StateStore| {
            s.list_configs("k/", None, 1000, usize::MAX)
                .unwrap()
                .items
                .into_iter()
                .map(|e| (e.meta, e.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(page(&b.store), page(&a.store));
        assert_eq!(page(&b.store).len(), 49);
    }

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
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 100),
            payload: EntryPayload::Normal(vec![
                put("a", "1", Precondition::Absent),
                // Sees the first command of the same entry.
                put("a", "2", Precondition::Revision(base + 1)),
                put("a", "3", Precondition::Absent),
            ]),
        };
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

    fn txn(f: &mut Fixture, conditions: Vec<Condition>, ops: Vec<TxnOp>) -> CommandResult {
        f.apply(Op::Txn(Txn { conditions, ops }))
    }

    fn tput(key: &str, value: &str) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: value.into(),
        }
    }

    #[test]
    fn a_transaction_writes_every_operation_at_one_revision() {
        let mut f = Fixture::new();
        f.schema();
        written(f.put("gone", "0", Precondition::None));
        let base = f.store.applied().revision;
        let CommandResult::TxnApplied(TxnApplied { revision, results }) = txn(
            &mut f,
            vec![Condition {
                key: "gone".into(),
                test: Test::ValueEquals {
                    pointer: "".into(),
                    equals: "0".into(),
                },
            }],
            vec![
                tput("a", "1"),
                tput("b", "2"),
                TxnOp::Delete { key: "gone".into() },
            ],
        ) else {
            panic!("expected the transaction to apply")
        };
        assert_eq!(revision, base + 1);
        assert!(results.iter().all(|m| m.revision == revision));
        assert!(results[2].deleted);
        assert_eq!(f.store.applied().revision, base + 1);
        assert_eq!(f.store.get_config("b").unwrap().unwrap().value, "2");
        assert!(f.store.get_config("gone").unwrap().is_none());
    }

    #[test]
    fn a_transaction_with_a_failed_condition_writes_nothing() {
        let mut f = Fixture::new();
        f.schema();
        let a = written(f.put("a", "1", Precondition::None));
        let before = f.store.applied();
        let r = txn(
            &mut f,
            vec![
                Condition {
                    key: "a".into(),
                    test: Test::Revision(a.revision),
                },
                Condition {
                    key: "b".into(),
                    test: Test::Exists(true),
                },
            ],
            vec![tput("a", "2"), tput("c", "3")],
        );
        let CommandResult::Rejected(Rejection::ConditionFailed { failed }) = r else {
            panic!("expected a failed condition, got {r:?}")
        };
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].index, failed[0].key.as_str()), (1, "b"));
        assert_eq!(f.store.get_config("a").unwrap().unwrap().value, "1");
        assert!(f.store.get_config("c").unwrap().is_none());
        assert_eq!(f.store.applied().revision, before.revision);
        assert_eq!(f.store.applied().audit_seq, before.audit_seq);
    }

    #[test]
    fn a_transaction_with_one_impossible_operation_writes_nothing() {
        let mut f = Fixture::new();
        f.schema();
        let r = txn(
            &mut f,
            vec![],
            vec![tput("a", "1"), TxnOp::Delete { key: "nope".into() }],
        );
        assert!(matches!(r, CommandResult::Rejected(Rejection::NotFound(_))));
        assert!(f.store.get_config("a").unwrap().is_none());
    }

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

    #[test]
    fn changes_come_in_revision_order_and_a_dropped_one_is_reported() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 2,
                max_age_seconds: None,
            },
        }));
        let first = written(f.put("w/a", "1", Precondition::None)).revision;
        written(f.put("other", "1", Precondition::None));
        written(f.put("w/b", "1", Precondition::None));
        let Changes::Found { entries, .. } = f
            .store
            .changes("w/", first, u64::MAX, 100, usize::MAX)
            .unwrap()
        else {
            panic!("nothing is compacted yet")
        };
        let keys: Vec<_> = entries.iter().map(|e| e.meta.key.as_str()).collect();
        assert_eq!(keys, ["w/a", "w/b"]);
        written(f.put("w/a", "2", Precondition::None));
        written(f.put("w/a", "3", Precondition::None));
        assert!(matches!(
            f.store.changes("w/", first, u64::MAX, 100, usize::MAX).unwrap(),
            Changes::Compacted { revision } if revision == first
        ));
        // Another prefix does not care.
        assert!(matches!(
            f.store
                .changes("other", first, u64::MAX, 100, usize::MAX)
                .unwrap(),
            Changes::Found { .. }
        ));
    }

    #[test]
    fn age_retention_drops_old_records_but_keeps_live_values() {
        let mut f = Fixture::new();
        f.schema();
        let old = written(f.put("a", "1", Precondition::None));
        written(f.put("a", "2", Precondition::None));
        let live_b = written(f.put("b", "1", Precondition::None));
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 100,
                max_age_seconds: Some(60),
            },
        }));
        // The fixture's clock is 1 s plus the log index: jump it past the maximum age.
        f.index += 120_000;
        written(f.put("c", "1", Precondition::None));
        assert!(matches!(
            f.store.config_at("a", old.revision).unwrap(),
            AtRevision::Compacted { .. }
        ));
        assert!(matches!(
            f.store.config_at("b", live_b.revision).unwrap(),
            AtRevision::Found(_)
        ));
        assert!(f.store.applied().history_floor >= live_b.revision);
        assert!(matches!(
            f.store
                .changes("", old.revision, u64::MAX, 100, usize::MAX)
                .unwrap(),
            Changes::Compacted { .. }
        ));
        // Once overwritten, the old live value goes too.
        written(f.put("b", "2", Precondition::None));
        assert!(matches!(
            f.store.config_at("b", live_b.revision).unwrap(),
            AtRevision::Compacted { .. }
        ));
    }

    #[test]
    fn count_retention_keeps_the_newest_revisions_within_a_batch_and_without_a_window() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 3,
                max_age_seconds: None,
            },
        }));
        let revisions = |f: &Fixture| -> Vec<u64> {
            let page = f.store.history("a", None, 100, usize::MAX).unwrap();
            page.items.iter().rev().map(|e| e.meta.revision).collect()
        };
        let mut written_revs = Vec::new();
        for i in 0..5 {
            written_revs.push(written(f.put("a", &i.to_string(), Precondition::None)).revision);
        }
        assert_eq!(revisions(&f), written_revs[2..]);
        // Five writes of the key in one entry: retention sees its own batch's records.
        f.index += 1;
        let cmds = (0..5)
            .map(|i| {
                Command::new(
                    "tester".into(),
                    1_000 + f.index,
                    Op::PutConfig(PutConfig {
                        key: "a".into(),
                        schema: "s".into(),
                        schema_version: 1,
                        plugin_digest: None,
                        value: format!("{}", 10 + i),
                        precondition: Precondition::None,
                    }),
                )
            })
            .collect();
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), f.index),
            payload: EntryPayload::Normal(cmds),
        };
        let batch: Vec<u64> = f
            .store
            .apply_batch([entry])
            .unwrap()
            .remove(0)
            .into_iter()
            .map(|r| written(r).revision)
            .collect();
        assert_eq!(revisions(&f), batch[2..]);
        // A store written before the window record existed is counted once, then trimmed.
        f.store.history.remove(b"n\0a").unwrap();
        let last = written(f.put("a", "99", Precondition::None)).revision;
        assert_eq!(revisions(&f), vec![batch[3], batch[4], last]);
        let deleted = match f.apply(Op::DeleteConfig(DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        })) {
            CommandResult::ConfigDeleted(ConfigDeleted { meta }) => meta.revision,
            other => panic!("expected a delete, got {other:?}"),
        };
        assert_eq!(revisions(&f), vec![batch[4], last, deleted]);
    }

    #[test]
    fn snapshots_built_and_installed_at_once_never_remove_each_others_files() {
        let mut a = Fixture::new();
        a.schema();
        let mut src = Fixture::new();
        src.schema();
        for i in 0..200 {
            written(a.put(&format!("a/{i}"), "1", Precondition::None));
            written(src.put(&format!("s/{i}"), "2", Precondition::None));
        }
        src.store.build_snapshot_file().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..20 {
                    a.store.build_snapshot_file().unwrap();
                }
            });
            s.spawn(|| {
                for _ in 0..20 {
                    let (meta, file) = src.store.current_snapshot_file().unwrap().unwrap();
                    a.store.install_snapshot_file(&meta, file).unwrap();
                }
            });
        });
        assert!(a.store.current_snapshot_file().unwrap().is_some());
        assert_eq!(a.store.applied(), src.store.applied());
    }
}
