//! The replicated state machine on fjall: configs (with tombstones), schema versions, plugin
//! bytes, and the global revision.
//!
//! Owns: how a committed command changes state (deterministically: no clock, no plugin, no
//! randomness), how state is read, snapshotted and restored. Does not own: validation (done
//! before proposing, in [`crate::schema`] and [`crate::plugins`]) or the log ([`crate::raft`]).

pub mod command;
mod history;
mod snapshot;
mod state_machine;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, Readable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use command::{
    Command, CommandResult, ConfigMeta, MAX_FAILURES_KEPT, MigrationFailure, MigrationRecord,
    MigrationSpec, MigrationStatus, MigrationWrite, Op, PluginContract, Precondition, Rejection,
    SchemaPolicy, SchemaRecord, WritePolicy,
};
pub use history::{AtRevision, HistoryPage, HistoryRetention};
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
    pub(crate) meta: Keyspace,
    snapshot_dir: PathBuf,
    state: Mutex<SmMeta>,
    applied: watch::Sender<SmMeta>,
}

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
            meta: meta_ks,
            snapshot_dir,
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
    ) -> Result<ConfigPage, StoreError> {
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
            if items.len() == limit {
                return Ok(ConfigPage { items, more: true });
            }
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

    fn execute(&mut self, cmd: Command) -> Result<CommandResult, StoreError> {
        let Command { actor, at_ms, op } = cmd;
        Ok(match op {
            Op::PutConfig {
                key,
                schema,
                schema_version,
                plugin_digest,
                value,
                precondition,
            } => {
                let current = self.live_config(&key)?;
                if let Err(r) = check(&key, precondition, current.as_ref()) {
                    return Ok(CommandResult::Rejected(r));
                }
                let Some(registered) = self.schema(&schema, schema_version)? else {
                    return Ok(CommandResult::Rejected(Rejection::UnknownSchema {
                        name: schema,
                        version: schema_version,
                    }));
                };
                if self.policy(&schema)?.writes == WritePolicy::Latest {
                    let latest = self.latest_version(&schema)?.unwrap_or(schema_version);
                    if latest != schema_version {
                        return Ok(CommandResult::Rejected(Rejection::NotLatest {
                            name: schema,
                            version: schema_version,
                            latest,
                        }));
                    }
                }
                if registered.plugin_digest != plugin_digest {
                    return Ok(CommandResult::Rejected(Rejection::PluginMismatch {
                        name: schema,
                        version: schema_version,
                        registered: registered.plugin_digest,
                        validated: plugin_digest,
                    }));
                }
                self.meta.revision += 1;
                let created = current.is_none();
                let meta = match current {
                    Some(cur) => {
                        self.add_usage(&cur.meta.schema, cur.meta.schema_version, -1)?;
                        ConfigMeta {
                            key: key.clone(),
                            schema: schema.clone(),
                            schema_version,
                            revision: self.meta.revision,
                            key_version: cur.meta.key_version + 1,
                            created_at: cur.meta.created_at,
                            created_by: cur.meta.created_by,
                            updated_at: at_ms,
                            updated_by: actor,
                            plugin_digest,
                            deleted: false,
                        }
                    }
                    None => {
                        self.meta.live_configs += 1;
                        ConfigMeta {
                            key: key.clone(),
                            schema: schema.clone(),
                            schema_version,
                            revision: self.meta.revision,
                            key_version: 1,
                            created_at: at_ms,
                            created_by: actor.clone(),
                            updated_at: at_ms,
                            updated_by: actor,
                            plugin_digest,
                            deleted: false,
                        }
                    }
                };
                self.add_usage(&schema, schema_version, 1)?;
                self.put(Ks::Configs, key.into_bytes(), encode_config(&meta, &value));
                self.record_history(&meta, &value)?;
                CommandResult::ConfigWritten { meta, created }
            }
            Op::DeleteConfig { key, precondition } => {
                let Some(current) = self.live_config(&key)? else {
                    return Ok(CommandResult::Rejected(Rejection::NotFound(format!(
                        "config {key}"
                    ))));
                };
                if let Err(r) = check(&key, precondition, Some(&current)) {
                    return Ok(CommandResult::Rejected(r));
                }
                self.meta.revision += 1;
                self.meta.live_configs = self.meta.live_configs.saturating_sub(1);
                self.add_usage(&current.meta.schema, current.meta.schema_version, -1)?;
                let tombstone = ConfigMeta {
                    revision: self.meta.revision,
                    key_version: current.meta.key_version + 1,
                    updated_at: at_ms,
                    updated_by: actor,
                    deleted: true,
                    ..current.meta
                };
                self.put(Ks::Configs, key.into_bytes(), encode_config(&tombstone, ""));
                self.record_history(&tombstone, "")?;
                CommandResult::ConfigDeleted { meta: tombstone }
            }
            Op::PutSchema {
                name,
                version,
                schema,
                plugin_digest,
                plugin,
                plugin_contract,
            } => {
                if let Some(existing) = self.schema(&name, version)? {
                    return Ok(
                        if existing.schema == schema && existing.plugin_digest == plugin_digest {
                            CommandResult::SchemaRegistered {
                                record: existing,
                                created: false,
                            }
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
                    registered_by: actor,
                    plugin_contract,
                };
                self.put(
                    Ks::Schemas,
                    schema_key(&record.name, version),
                    serde_json::to_vec(&record).expect("schema record serialises"),
                );
                CommandResult::SchemaRegistered {
                    record,
                    created: true,
                }
            }
            Op::SetHistoryRetention { retention } => {
                self.meta.revision += 1;
                self.meta.history = HistoryRetention {
                    keep: retention.keep.max(1),
                };
                CommandResult::HistoryRetentionSet {
                    retention: self.meta.history,
                    revision: self.meta.revision,
                }
            }
            Op::SetSchemaPolicy { name, policy } => {
                if self.latest_version(&name)?.is_none() {
                    return Ok(CommandResult::Rejected(Rejection::NoVersions(name)));
                }
                self.meta.revision += 1;
                self.put(
                    Ks::SchemaMeta,
                    policy_key(&name),
                    serde_json::to_vec(&policy).expect("policy serialises"),
                );
                CommandResult::SchemaPolicySet {
                    name,
                    policy,
                    revision: self.meta.revision,
                }
            }
            Op::StartMigration {
                name,
                target_version,
                total,
            } => {
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
                    started_by: actor,
                    updated_at: at_ms,
                    finished_at: None,
                };
                self.put_migration(&record);
                CommandResult::Migration(record)
            }
            Op::MigrateBatch {
                name,
                id,
                writes,
                failures,
            } => {
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
                for w in writes {
                    // Exactly a client's compare-and-set write at the target version.
                    let result = self.execute(Command {
                        actor: record.started_by.clone(),
                        at_ms,
                        op: Op::PutConfig {
                            key: w.key.clone(),
                            schema: name.clone(),
                            schema_version: record.target_version,
                            plugin_digest: w.plugin_digest,
                            value: w.value,
                            precondition: Precondition::Revision(w.expected_revision),
                        },
                    })?;
                    match result {
                        CommandResult::ConfigWritten { .. } => {
                            record.done += 1;
                            record.failed.retain(|f| f.key != w.key);
                        }
                        CommandResult::Rejected(Rejection::PreconditionFailed { .. }) => {
                            record.skipped += 1;
                        }
                        CommandResult::Rejected(other) => failures.push(MigrationFailure {
                            key: w.key,
                            revision: w.expected_revision,
                            reason: other.to_string(),
                        }),
                        other => {
                            return Err(StoreError::Corrupt {
                                keyspace: "sm_configs",
                                reason: format!(
                                    "unexpected result of a migration write: {other:?}"
                                ),
                            });
                        }
                    }
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
            Op::FinishMigration { name, id } => {
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
                CommandResult::Migration(record)
            }
            Op::DeleteSchema { name, version } => {
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
                CommandResult::SchemaDeleted { record }
            }
        })
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

fn check(key: &str, pre: Precondition, current: Option<&ConfigEntry>) -> Result<(), Rejection> {
    let current_rev = current.map(|c| c.meta.revision);
    let ok = match pre {
        Precondition::None => true,
        Precondition::Revision(r) => current_rev == Some(r),
        Precondition::Absent => current.is_none(),
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
                payload: EntryPayload::Normal(vec![Command {
                    actor: "tester".into(),
                    at_ms: 1_000 + self.index,
                    op,
                }]),
            };
            self.store.apply_batch([entry]).unwrap().remove(0).remove(0)
        }

        fn schema(&mut self) {
            let r = self.apply(Op::PutSchema {
                name: "s".into(),
                version: 1,
                schema: "{}".into(),
                plugin_digest: None,
                plugin: None,
                plugin_contract: None,
            });
            assert!(matches!(
                r,
                CommandResult::SchemaRegistered { created: true, .. }
            ));
        }

        fn put(&mut self, key: &str, value: &str, precondition: Precondition) -> CommandResult {
            self.apply(Op::PutConfig {
                key: key.into(),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: None,
                value: value.into(),
                precondition,
            })
        }
    }

    fn written(r: CommandResult) -> ConfigMeta {
        match r {
            CommandResult::ConfigWritten { meta, .. } => meta,
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
        let CommandResult::ConfigDeleted { meta } = f.apply(Op::DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        }) else {
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
        let del = || Op::DeleteSchema {
            name: "s".into(),
            version: 1,
        };
        assert!(matches!(
            f.apply(del()),
            CommandResult::Rejected(Rejection::SchemaInUse { configs: 1, .. })
        ));
        f.apply(Op::DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        });
        assert!(matches!(
            f.apply(del()),
            CommandResult::SchemaDeleted { .. }
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
        a.apply(Op::DeleteConfig {
            key: "k/07".into(),
            precondition: Precondition::None,
        });
        let (meta, path) = a.store.build_snapshot_file().unwrap();
        let b = Fixture::new();
        b.store
            .install_snapshot_file(&meta, std::fs::File::open(path).unwrap())
            .unwrap();
        assert_eq!(b.store.applied(), a.store.applied());
        let page = |s: &StateStore| {
            s.list_configs("k/", None, 1000)
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
        let put = |key: &str, value: &str, precondition| Command {
            actor: "a".into(),
            at_ms: 5,
            op: Op::PutConfig {
                key: key.into(),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: None,
                value: value.into(),
                precondition,
            },
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
        let first = f.store.list_configs("a/", None, 2).unwrap();
        assert!(first.more);
        assert_eq!(keys(first), ["a/1", "a/2"]);
        let rest = f.store.list_configs("a/", Some("a/2"), 2).unwrap();
        assert!(!rest.more);
        assert_eq!(keys(rest), ["a/3"]);
    }
}
