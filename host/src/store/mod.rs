//! The replicated state machine on fjall: configs (with tombstones), schema versions, plugin
//! bytes, the global revision, every config's history and the audit trail.
//!
//! Owns: how a committed command changes state (deterministically: no clock, no plugin, no
//! randomness), how state is read, snapshotted and restored. Does not own: validation (done
//! before proposing, in [`crate::schema`] and [`crate::plugins`]) or the log ([`crate::raft`]).
//! It is the bottom layer: it imports nothing from `raft`, `cluster`, `schema`, `api` or
//! `migrate`; openraft's state machine adapter over it is `crate::raft::state_machine`.
//!
//! This file opens and checks the state and re-exports the public types. One concern per
//! file otherwise, each with its read side on [`StateStore`] and its write side on the apply
//! call's `ApplyTx`: `configs.rs`, `schemas.rs`, `migrations.rs`, `txn.rs`, `history.rs`,
//! `audit.rs`; `apply.rs` applies entries and hands each command to its concern; `keys.rs`
//! is the keyspace format, `cache.rs` the schema decode cache, `snapshot.rs` the snapshot
//! files; `command.rs` and `result.rs` are what travels through the log, `membership.rs` the
//! Raft ids and membership the state records.

mod apply;
mod audit;
mod auth;
mod backup;
mod cache;
pub mod command;
mod configs;
#[cfg(test)]
mod encoding_tests;
mod history;
mod keys;
mod membership;
mod migrations;
mod result;
mod schemas;
pub(crate) mod snapshot;

pub use backup::{BackupError, BackupSummary, verify_backup};
#[cfg(test)]
mod testing;
mod txn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, Readable};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use apply::Change;
pub use audit::{AuditFilter, AuditRecord, AuditRetention, Provenance};
pub use auth::{AuthView, ROOT_USER, UserRecord};
pub use command::{
    AuthChange, Command, Condition, ConfigMeta, Context, DeleteConfig, DeleteSchema,
    FinishMigration, MAX_FAILURES_KEPT, MigrateBatch, MigrationFailure, MigrationRecord,
    MigrationSpec, MigrationStatus, MigrationWrite, Op, PluginContract, Precondition, PutConfig,
    PutSchema, SchemaPolicy, SchemaRecord, SchemaRef, SetAuditRetention, SetHistoryRetention,
    SetSchemaPolicy, StartMigration, Test, TokenRecord, Txn, TxnOp, Validation, WritePolicy,
};
pub use configs::{ConfigEntry, ConfigPage};
pub use history::{AtRevision, Changes, DEFAULT_WATCH_WINDOW, HistoryRetention};
pub use membership::{LogId, Membership, NodeId, NodeInfo, SnapshotMeta, StoredMembership};
pub use result::{
    AuditRetentionSet, AuthChanged, CommandResult, ConfigDeleted, ConfigWritten, FailedCondition,
    HistoryRetentionSet, Proposal, Rejection, SchemaDeleted, SchemaPolicySet, SchemaRegistered,
    TxnApplied, WrongResult,
};
pub use snapshot::verify_current_snapshot;

use cache::SchemaCache;
use keys::decode_json;

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
    /// How much of the audit trail is kept (a replicated setting; not written while it is
    /// the default, so that the metadata of a store that never set it reads as before).
    #[serde(default, skip_serializing_if = "AuditRetention::is_default")]
    pub audit: AuditRetention,
    /// The newest audit sequence number retention dropped (records after it are kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audit_floor: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const META_KEY: &[u8] = b"sm";

/// Memtable size of every keyspace (the state machine's and the log's). fjall's default, 64
/// MiB, times a dozen keyspaces in two databases, is most of a node's memory however small its
/// state; 16 MiB keeps flushes large while a node with 1,000 configs under steady writes stays
/// around 200 MiB resident (BENCHMARKS.md, `scarab-bench --steady`). Applies to keyspaces
/// created from now on: fjall keeps an existing keyspace's setting.
pub const MEMTABLE_BYTES: u64 = 16 << 20;

/// How every keyspace is created (an existing keyspace keeps the settings it was created
/// with; fjall records them):
/// - LZ4 on every level: fjall's default compresses from the third level only, and a small
///   state never gets there. History and audit records repeat their field names and metadata
///   from one record to the next; at 256-byte configs this took the state keyspaces from 70
///   to 25 MiB and the log's from 42 to 12 (BENCHMARKS.md, `scarab-bench --disk`).
/// - Key-value separation (values of [`SEPARATE_FROM_BYTES`] or more in blob files):
///   compactions move large values' keys, not the values. At 64-KiB configs this took the
///   state from 2.1 GB to 1.5 GB for 1.3 GB of values, and writes from 455 to 844/s.
pub fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .max_memtable_size(MEMTABLE_BYTES)
        .data_block_compression_policy(fjall::config::CompressionPolicy::all(
            fjall::CompressionType::Lz4,
        ))
        .with_kv_separation(Some(
            fjall::KvSeparationOptions::default().separation_threshold(SEPARATE_FROM_BYTES),
        ))
}

/// Records of this many bytes or more are kept in blob files (fjall's default, 1 KiB): a read
/// of one takes a second lookup anyway, so a config record that would be this large holds
/// its metadata alone and leaves its value to its history record (`configs.rs`).
pub(crate) const SEPARATE_FROM_BYTES: u32 = 1024;

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
    /// Users, roles and tokens (see `auth.rs`).
    pub(crate) auth: Keyspace,
    pub(crate) meta: Keyspace,
    snapshot_dir: PathBuf,
    /// Held while a snapshot file is built or installed: openraft runs the two concurrently,
    /// and each replaces the snapshot directory's other files when it finishes.
    snapshot_files: Mutex<()>,
    /// The current snapshot's bytes of text, once this process built or installed it (0:
    /// not known; see `current_snapshot_text_bytes`).
    snapshot_text_bytes: std::sync::atomic::AtomicU64,
    /// Decoded schema records with the bytes they were decoded from (see `cache.rs`).
    schema_cache: SchemaCache,
    state: Mutex<SmMeta>,
    applied: watch::Sender<SmMeta>,
    /// The access state every request is checked against (see `auth.rs`).
    auth_view: std::sync::RwLock<Arc<AuthView>>,
}

impl StateStore {
    /// Opens the state machine's keyspaces in `db`; installs the newest snapshot file if it is
    /// ahead of the applied state (an install interrupted by a crash).
    pub fn open(db: &Database, data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        let ks = |name: &str| db.keyspace(name, keyspace_options);
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
            auth: ks("sm_auth")?,
            meta: meta_ks,
            snapshot_dir,
            snapshot_files: Mutex::new(()),
            snapshot_text_bytes: Default::default(),
            schema_cache: SchemaCache::default(),
            state: Mutex::new(meta),
            applied,
            auth_view: Default::default(),
        });
        store.recover_interrupted_install()?;
        store.reload_auth()?;
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
            &self.auth,
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
}

/// A read-only view used by snapshots (fjall snapshot = one consistent point in time).
pub(crate) fn read_meta(snap: &fjall::Snapshot, meta_ks: &Keyspace) -> Result<SmMeta, StoreError> {
    match snap.get(meta_ks, META_KEY)? {
        Some(b) => decode_json("sm_meta", &b),
        None => Ok(SmMeta::default()),
    }
}
