//! What travels through the Raft log (commands) and what applying one returns (results), and
//! the records the state machine keeps.
//!
//! Every field that apply needs is in the command, including the proposer's clock reading and
//! the actor, so that every node applies a command to the same result.

use serde::{Deserialize, Serialize};

/// One state change, proposed after validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Command {
    /// Who asked (`X-Scarab-Actor`).
    pub actor: String,
    /// Milliseconds since the Unix epoch, read on the proposing node.
    pub at_ms: u64,
    pub op: Op,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Op {
    PutConfig {
        key: String,
        schema: String,
        schema_version: u32,
        /// The digest of the plugin that validated `value`; apply refuses the write if the
        /// registered version's plugin is not this one.
        plugin_digest: Option<String>,
        /// Compact JSON text.
        value: String,
        precondition: Precondition,
    },
    DeleteConfig {
        key: String,
        precondition: Precondition,
    },
    PutSchema {
        name: String,
        version: u32,
        /// Canonical JSON text of the JSON Schema (keys sorted, compact).
        schema: String,
        plugin_digest: Option<String>,
        #[serde(with = "b64_opt")]
        plugin: Option<Vec<u8>>,
    },
    DeleteSchema {
        name: String,
        version: u32,
    },
}

/// A write's condition on the key's current state, checked at apply time.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// `If-Match`: the key exists and its revision is this one.
    Revision(u64),
    /// `If-None-Match: *`: the key does not exist.
    Absent,
}

/// Metadata of a config (or, with `deleted`, of its tombstone).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConfigMeta {
    pub key: String,
    pub schema: String,
    pub schema_version: u32,
    /// The global revision of the change that wrote this entry.
    pub revision: u64,
    /// 1 on create, +1 per update (and for the delete).
    pub key_version: u64,
    pub created_at: u64,
    pub created_by: String,
    pub updated_at: u64,
    pub updated_by: String,
    pub plugin_digest: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// A registered schema version (its JSON Schema text included; the plugin bytes are stored
/// separately, by digest).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SchemaRecord {
    pub name: String,
    pub version: u32,
    pub schema: String,
    pub plugin_digest: Option<String>,
    pub revision: u64,
    pub registered_at: u64,
    pub registered_by: String,
}

/// The outcome of applying one log entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum CommandResult {
    ConfigWritten {
        meta: ConfigMeta,
        created: bool,
    },
    ConfigDeleted {
        meta: ConfigMeta,
    },
    SchemaRegistered {
        record: SchemaRecord,
        created: bool,
    },
    SchemaDeleted {
        record: SchemaRecord,
    },
    /// Refused deterministically by the state machine; nothing changed.
    Rejected(Rejection),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("precondition failed for {key}: its current revision is {current:?}")]
    PreconditionFailed { key: String, current: Option<u64> },
    #[error("{0} not found")]
    NotFound(String),
    #[error("schema {name} version {version} is not registered")]
    UnknownSchema { name: String, version: u32 },
    #[error(
        "schema {name} version {version} changed while the write was validated (plugin {registered:?}, validated with {validated:?})"
    )]
    PluginMismatch {
        name: String,
        version: u32,
        registered: Option<String>,
        validated: Option<String>,
    },
    #[error("schema {name} version {version} is already registered with different content")]
    SchemaConflict { name: String, version: u32 },
    #[error("schema {name} version {version} is used by {configs} config(s)")]
    SchemaInUse {
        name: String,
        version: u32,
        configs: u64,
    },
}

mod b64_opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
