//! How the state machine's records are keyed and encoded in fjall: the keyspaces apply writes,
//! the keys of schema versions, policies and migrations, the stored form of a config, and the
//! decoding of JSON records.
//!
//! Owns: the byte layout of those keys and values (the on-disk format: it must not change
//! without a migration of the data). Does not own: what is read or written when (each concern's
//! file), nor the keys of the history and audit keyspaces (`history.rs`, `audit.rs`).

use fjall::Keyspace;

use super::{ConfigEntry, ConfigMeta, StateStore, StoreError};

/// The keyspaces apply writes (the metadata keyspace is written by `apply_batch` itself).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Ks {
    Configs,
    Schemas,
    Plugins,
    Usage,
    /// Per-schema records besides versions: `policy/{name}`, `migration/{name}/{id}`.
    SchemaMeta,
    /// Every revision of every config (see `history.rs`).
    History,
    /// The audit trail (see `audit.rs`).
    Audit,
    /// Users, roles and tokens (see `auth.rs`).
    Auth,
}

impl StateStore {
    pub(super) fn keyspace(&self, ks: Ks) -> &Keyspace {
        match ks {
            Ks::Configs => &self.configs,
            Ks::Schemas => &self.schemas,
            Ks::Plugins => &self.plugins,
            Ks::Usage => &self.usage,
            Ks::SchemaMeta => &self.schema_meta,
            Ks::History => &self.history,
            Ks::Audit => &self.audit,
            Ks::Auth => &self.auth,
        }
    }
}

/// The key of a schema version (in `sm_schemas` and `sm_usage`).
pub(super) fn schema_key(name: &str, version: u32) -> Vec<u8> {
    // Zero-padded so byte order is version order.
    format!("{name}/{version:010}").into_bytes()
}

/// The version in a [`schema_key`].
pub(super) fn version_of(key: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(key).ok()?;
    text.rsplit_once('/')?.1.parse().ok()
}

pub(super) fn policy_key(name: &str) -> Vec<u8> {
    format!("policy/{name}").into_bytes()
}

/// Zero-padded so that byte order is id order.
pub(super) fn migration_key(name: &str, id: u64) -> Vec<u8> {
    format!("migration/{name}/{id:020}").into_bytes()
}

/// A config record of a large value as stored since snapshot format 4: its metadata JSON
/// alone (compact JSON has no raw newline). Its value is in the key's history record at the
/// same revision, so the value is stored once (`history.rs` never drops a key's newest
/// record); see `configs.rs` for which records hold their value.
pub(super) fn encode_config_meta(meta: &ConfigMeta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("config metadata serialises")
}

/// A history record (and a config record of a small value, or of any value before format 4):
/// the metadata JSON as
/// [`encode_config_meta`] wrote it, a newline, then the value's JSON text. Reads can hand the
/// value out without parsing it.
pub(super) fn with_value(meta_json: &[u8], value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(meta_json.len() + 1 + value.len());
    out.extend_from_slice(meta_json);
    out.push(b'\n');
    out.extend_from_slice(value.as_bytes());
    out
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        keyspace: "configs",
        reason,
    }
}

/// A config record: its metadata, and its value when the record holds it (a small value, any
/// value before format 4, a backup's); `None` when the value is in the history record.
pub(super) fn decode_config_record(
    bytes: &[u8],
) -> Result<(ConfigMeta, Option<String>), StoreError> {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(_) => {
            let entry = decode_config(bytes)?;
            Ok((entry.meta, Some(entry.value)))
        }
        None => Ok((
            serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?,
            None,
        )),
    }
}

/// A history record (metadata, newline, value).
pub(super) fn decode_config(bytes: &[u8]) -> Result<ConfigEntry, StoreError> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("missing separator".into()))?;
    let meta: ConfigMeta =
        serde_json::from_slice(&bytes[..split]).map_err(|e| corrupt(e.to_string()))?;
    Ok(ConfigEntry {
        meta,
        value: value_of(&bytes[split + 1..])?,
    })
}

/// The value of a history record, without decoding its metadata.
pub(super) fn record_value(bytes: &[u8]) -> Result<String, StoreError> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("missing separator".into()))?;
    value_of(&bytes[split + 1..])
}

fn value_of(bytes: &[u8]) -> Result<String, StoreError> {
    Ok(std::str::from_utf8(bytes)
        .map_err(|e| corrupt(e.to_string()))?
        .to_string())
}

pub(super) fn decode_json<T: serde::de::DeserializeOwned>(
    keyspace: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        keyspace,
        reason: e.to_string(),
    })
}
