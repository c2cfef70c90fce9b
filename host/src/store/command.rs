//! What travels through the Raft log (commands) and what applying one returns (results), and
//! the records the state machine keeps.
//!
//! Every field that apply needs is in the command, including the proposer's clock reading and
//! the actor, so that every node applies a command to the same result.

use serde::{Deserialize, Serialize};

/// One state change, proposed after validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Command {
    /// Who asked: the authenticated principal (with authentication off, `X-Scarab-Actor`).
    pub actor: String,
    /// Milliseconds since the Unix epoch, read on the proposing node.
    pub at_ms: u64,
    pub op: Op,
    /// What the audit trail records besides the change itself.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
}

/// Why a command may not be proposed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{what} is not acceptable JSON: {source}")]
    Document {
        what: String,
        source: crate::json::JsonError,
    },
    #[error("the command does not survive the log encoding: {0}")]
    Encoding(String),
}

/// Which document of a command: named in an error only, so formatted only then (a write
/// passes the gate once per command).
pub(crate) enum Doc<'c> {
    Value(&'c str),
    Schema(&'c str, u32),
    Migrated(&'c str),
    Condition(usize),
    TxnValue(usize),
}

impl std::fmt::Display for Doc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Doc::Value(key) => write!(f, "the value of {key}"),
            Doc::Schema(name, version) => {
                write!(f, "the JSON Schema of {name} version {version}")
            }
            Doc::Migrated(key) => write!(f, "the migrated value of {key}"),
            Doc::Condition(i) => write!(f, "conditions[{i}].equals"),
            Doc::TxnValue(i) => write!(f, "ops[{i}].value"),
        }
    }
}

impl Command {
    /// Every JSON document the command carries, with what it is (for error messages).
    pub(crate) fn documents(&self) -> Vec<(Doc<'_>, &str)> {
        let mut docs = Vec::new();
        match &self.op {
            Op::PutConfig(PutConfig { key, value, .. }) => docs.push((Doc::Value(key), &**value)),
            Op::PutSchema(PutSchema {
                name,
                version,
                schema,
                ..
            }) => docs.push((Doc::Schema(name, *version), &**schema)),
            Op::MigrateBatch(MigrateBatch { writes, .. }) => {
                for w in writes {
                    docs.push((Doc::Migrated(&w.key), &*w.value));
                }
            }
            Op::Txn(Txn { conditions, ops }) => {
                for (i, c) in conditions.iter().enumerate() {
                    if let Test::ValueEquals { equals, .. } = &c.test {
                        docs.push((Doc::Condition(i), &**equals));
                    }
                }
                for (i, op) in ops.iter().enumerate() {
                    if let TxnOp::Put { value, .. } = op {
                        docs.push((Doc::TxnValue(i), &**value));
                    }
                }
            }
            Op::DeleteConfig(_)
            | Op::DeleteSchema(_)
            | Op::SetSchemaPolicy(_)
            | Op::SetHistoryRetention(_)
            | Op::SetAuditRetention(_)
            | Op::StartMigration(_)
            | Op::FinishMigration(_)
            | Op::AuthChange(_) => {}
        }
        docs
    }

    /// The command with every document [`Self::documents`] lists made empty: its shape, the
    /// part of its encoding that a type change could make undecodable (`raft::prove_encodes`).
    pub fn shape(&self) -> Command {
        let op = match &self.op {
            Op::PutConfig(p) => Op::PutConfig(PutConfig {
                key: p.key.clone(),
                schema: p.schema.clone(),
                schema_version: p.schema_version,
                plugin_digest: p.plugin_digest.clone(),
                value: String::new(),
                precondition: p.precondition,
            }),
            other => {
                let mut op = other.clone();
                match &mut op {
                    Op::PutSchema(p) => p.schema.clear(),
                    Op::MigrateBatch(b) => b.writes.iter_mut().for_each(|w| w.value.clear()),
                    Op::Txn(t) => {
                        for c in &mut t.conditions {
                            if let Test::ValueEquals { equals, .. } = &mut c.test {
                                equals.clear();
                            }
                        }
                        for op in &mut t.ops {
                            if let TxnOp::Put { value, .. } = op {
                                value.clear();
                            }
                        }
                    }
                    // No documents (an exhaustive list: a new kind of command must say).
                    Op::PutConfig(_)
                    | Op::DeleteConfig(_)
                    | Op::DeleteSchema(_)
                    | Op::SetSchemaPolicy(_)
                    | Op::SetHistoryRetention(_)
                    | Op::SetAuditRetention(_)
                    | Op::StartMigration(_)
                    | Op::FinishMigration(_)
                    | Op::AuthChange(_) => {}
                }
                op
            }
        };
        Command {
            actor: self.actor.clone(),
            at_ms: self.at_ms,
            op,
            context: self.context.clone(),
        }
    }

    /// The first half of the gate before the Raft log (the second is
    /// `raft::prove_encodes`): every JSON document the command carries is one well-formed
    /// document within `max_depth` (no duplicate keys, numbers in range).
    pub fn check_documents(&self, max_depth: usize) -> Result<(), CommandError> {
        if let Op::Txn(Txn { conditions, .. }) = &self.op
            && conditions
                .iter()
                .any(|c| matches!(c.test, Test::ValueAt { .. }))
        {
            return Err(CommandError::Encoding(
                "conditions must carry `equals` as text (ValueEquals)".into(),
            ));
        }
        for (what, text) in self.documents() {
            crate::json::check_text(text, max_depth).map_err(|source| CommandError::Document {
                what: what.to_string(),
                source,
            })?;
        }
        Ok(())
    }

    /// The bulk of the command's size in the log: the values, schemas and plugins it carries.
    pub fn value_bytes(&self) -> usize {
        match &self.op {
            Op::PutConfig(PutConfig { value, .. }) => value.len(),
            Op::PutSchema(PutSchema { schema, plugin, .. }) => {
                schema.len() + plugin.as_ref().map_or(0, Vec::len)
            }
            Op::MigrateBatch(MigrateBatch { writes, .. }) => {
                writes.iter().map(|w| w.value.len()).sum()
            }
            Op::Txn(Txn { ops, .. }) => ops
                .iter()
                .map(|op| match op {
                    TxnOp::Put { value, .. } => value.len(),
                    TxnOp::Delete { .. } => 0,
                })
                .sum(),
            Op::DeleteConfig(_)
            | Op::DeleteSchema(_)
            | Op::SetSchemaPolicy(_)
            | Op::SetHistoryRetention(_)
            | Op::SetAuditRetention(_)
            | Op::StartMigration(_)
            | Op::FinishMigration(_)
            | Op::AuthChange(_) => 0,
        }
    }

    #[cfg(test)]
    pub fn new(actor: String, at_ms: u64, op: Op) -> Self {
        Self {
            actor,
            at_ms,
            op,
            context: Context::default(),
        }
    }
}

/// Why and how a change was made, as the proposing node saw it (for the audit trail).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Context {
    /// `X-Scarab-Reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `X-Scarab-Actor` of a principal allowed to impersonate (`auth:impersonate`): the name
    /// it acted for; the command's actor is the principal itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// A rollback: the revision whose value this write restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// How long validating each written value took (JSON Schema and plugin), by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<Validation>,
}

impl Context {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The validation time measured for `key`, if any.
    pub fn validation_us(&self, key: &str) -> Option<u64> {
        self.validations
            .iter()
            .find(|v| v.key == key)
            .map(|v| v.elapsed_us)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub key: String,
    /// Wall time of the JSON Schema and plugin checks, in microseconds.
    pub elapsed_us: u64,
}

/// What a command does. Each kind is a struct of its own, so that a kind can be proposed on
/// its own and say what applying it returns ([`super::Proposal`]). In the log an `Op` is
/// `{"Kind": {fields}}`, as it was when the variants held their fields directly.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Op {
    PutConfig(PutConfig),
    DeleteConfig(DeleteConfig),
    PutSchema(PutSchema),
    SetSchemaPolicy(SetSchemaPolicy),
    SetHistoryRetention(SetHistoryRetention),
    SetAuditRetention(SetAuditRetention),
    StartMigration(StartMigration),
    MigrateBatch(MigrateBatch),
    FinishMigration(FinishMigration),
    DeleteSchema(DeleteSchema),
    Txn(Txn),
    /// Users, roles and tokens (see `auth.rs`).
    AuthChange(AuthChange),
}

/// A change of who may do what. Tokens travel as their hash only: the secret never enters
/// the log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum AuthChange {
    /// Creates or replaces a user with these roles (each must exist).
    PutUser {
        name: String,
        roles: Vec<String>,
    },
    /// Deletes a user and every token of theirs.
    DeleteUser {
        name: String,
    },
    GrantRole {
        user: String,
        role: String,
    },
    RevokeRole {
        user: String,
        role: String,
    },
    /// Creates or replaces a role (not the built-in `admin`).
    PutRole {
        name: String,
        permissions: Vec<scarab_types::auth::Permission>,
    },
    /// Deletes a role no user holds.
    DeleteRole {
        name: String,
    },
    CreateToken(TokenRecord),
    RevokeToken {
        id: String,
    },
    /// The first principal of a cluster with authentication on: user `root` with role
    /// `admin` and this token, only if the cluster has no user yet.
    Bootstrap(TokenRecord),
}

/// A token as the state keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public: names the token in lists and revocations; the first part of the token.
    pub id: String,
    /// SHA-256 of the token's secret part, hex.
    pub hash: String,
    pub principal: String,
    pub created_ms: u64,
    pub created_by: String,
    /// `None`: until revoked.
    pub expires_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PutConfig {
    pub key: String,
    pub schema: String,
    pub schema_version: u32,
    /// The digest of the plugin that validated `value`; apply refuses the write if the
    /// registered version's plugin is not this one.
    pub plugin_digest: Option<String>,
    /// Compact JSON text.
    pub value: String,
    pub precondition: Precondition,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeleteConfig {
    pub key: String,
    pub precondition: Precondition,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PutSchema {
    pub name: String,
    pub version: u32,
    /// Canonical JSON text of the JSON Schema (keys sorted, compact).
    pub schema: String,
    pub plugin_digest: Option<String>,
    #[serde(with = "b64_opt")]
    pub plugin: Option<Vec<u8>>,
    /// What the plugin declared at registration (read by the proposing node, so that
    /// apply never runs a plugin).
    #[serde(default)]
    pub plugin_contract: Option<PluginContract>,
    /// The registered versions its `$ref`s resolved to when it was checked: apply refuses
    /// the registration if one of them is gone or was registered again since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<SchemaRef>,
}

/// A registered schema version another one refers to (see `crate::schema::references`): the
/// URI the reference named (no fragment), and the version it resolved to, pinned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SchemaRef {
    pub uri: String,
    pub name: String,
    pub version: u32,
    /// The target's registration revision (a version deleted and registered again has
    /// another).
    pub revision: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SetSchemaPolicy {
    pub name: String,
    pub policy: SchemaPolicy,
}

/// How many revisions of each key the history keeps (applies from the next write of a
/// key on).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SetHistoryRetention {
    pub retention: super::HistoryRetention,
}

/// How much of the audit trail is kept (applies from this command on).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SetAuditRetention {
    pub retention: super::AuditRetention,
}

/// Starts rewriting every config of `name` to `target_version`; its id is the revision
/// this command gets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StartMigration {
    pub name: String,
    pub target_version: u32,
    /// Configs not at the target when the migration started (for progress).
    pub total: u64,
}

/// One batch of a migration: converted values, each written only if its key is still at
/// the revision it was converted from, and the keys that could not be converted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MigrateBatch {
    pub name: String,
    pub id: u64,
    pub writes: Vec<MigrationWrite>,
    pub failures: Vec<MigrationFailure>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FinishMigration {
    pub name: String,
    pub id: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DeleteSchema {
    pub name: String,
    pub version: u32,
}

/// Operations applied together, as one revision, if every condition holds (else nothing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Txn {
    pub conditions: Vec<Condition>,
    pub ops: Vec<TxnOp>,
}

/// A transaction's condition on one key, checked at apply time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Condition {
    pub key: String,
    pub test: Test,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Test {
    /// The key exists at exactly this revision.
    Revision(u64),
    /// The key exists (`true`) or does not (`false`).
    Exists(bool),
    /// Written by versions before 0.1.1 and still applied as they did; never proposed now:
    /// a value nested inside the command made the entry deeper than the log could decode.
    ValueAt {
        pointer: String,
        equals: serde_json::Value,
    },
    /// The key exists and the value at this JSON pointer equals `equals`, compact JSON text
    /// (numbers compare by value; a missing pointer equals nothing). Carried as text, like
    /// every JSON document in a command, so that a command's nesting never depends on its
    /// documents'.
    ValueEquals { pointer: String, equals: String },
}

/// One write of a transaction (validated before proposing, like a single write).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum TxnOp {
    Put {
        key: String,
        schema: String,
        schema_version: u32,
        plugin_digest: Option<String>,
        /// Compact JSON text.
        value: String,
    },
    Delete {
        key: String,
    },
}

impl TxnOp {
    pub fn key(&self) -> &str {
        match self {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key,
        }
    }
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

/// One config rewritten by a migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MigrationWrite {
    pub key: String,
    /// The revision the value was converted from: the write is a compare-and-set on it.
    pub expected_revision: u64,
    /// The digest of the target version's plugin, which validated the value.
    pub plugin_digest: Option<String>,
    /// Compact JSON text at the target version.
    pub value: String,
}

/// A config a migration could not convert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MigrationFailure {
    pub key: String,
    /// The revision that failed: the key is tried again once it changes.
    pub revision: u64,
    pub reason: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MigrationStatus {
    Running,
    /// Nothing is left to convert but the failed keys.
    Done,
}

/// A storage migration and its progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MigrationRecord {
    pub id: u64,
    pub name: String,
    pub target_version: u32,
    pub status: MigrationStatus,
    /// Configs not at the target version when it started.
    pub total: u64,
    /// Configs rewritten.
    pub done: u64,
    /// Conversions not written because the config changed meanwhile (tried again).
    pub skipped: u64,
    /// Keys that cannot be converted, with why (at most [`MAX_FAILURES_KEPT`]).
    pub failed: Vec<MigrationFailure>,
    pub failed_count: u64,
    pub started_at: u64,
    pub started_by: String,
    pub updated_at: u64,
    pub finished_at: Option<u64>,
}

/// Failures a migration record lists (the count goes on).
pub const MAX_FAILURES_KEPT: usize = 1000;

/// What a registered plugin implements, as it declared it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PluginContract {
    /// The WIT package version it was built against (`0.1.0`, `0.2.0`).
    pub wit: String,
    /// Its migrator, if it has one.
    pub migration: Option<MigrationSpec>,
}

/// A migrator's declaration: it upgrades from `from_version` (the previous version), and
/// downgrades back if `downgrade`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MigrationSpec {
    pub from_version: u32,
    pub downgrade: bool,
}

/// Per-schema rules, set with `PUT /v1/schemas/{name}/policy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaPolicy {
    /// Which versions a config may be written at.
    pub writes: WritePolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WritePolicy {
    /// Any registered version (the default).
    #[default]
    Any,
    /// Only the highest registered version.
    Latest,
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
    #[serde(default)]
    pub plugin_contract: Option<PluginContract>,
    /// The versions its `$ref`s resolve to, every document its validation needs besides its
    /// own (transitively): while it exists, none of them can be deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<SchemaRef>,
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
