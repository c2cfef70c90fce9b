//! What applying a command returns: one result per kind of command, a [`Rejection`] when the
//! state machine refused it, and the [`Proposal`] trait that ties each kind of command to its
//! result, so that whoever proposes a command gets that command's result and no other.
//!
//! Owns: the result types (they travel between nodes, as openraft's `R`, inside
//! `CommandResult`) and which result each kind of command has. Does not own: how a result is
//! computed (apply, in `apply.rs` and the files of each concern) nor how a command reaches the
//! log (`crate::propose`).

use serde::{Deserialize, Serialize};

use super::command::{
    AuthChange, ConfigMeta, DeleteConfig, DeleteSchema, FinishMigration, MigrateBatch,
    MigrationRecord, Op, PutConfig, PutSchema, SchemaPolicy, SchemaRecord, SetAuditRetention,
    SetHistoryRetention, SetSchemaPolicy, StartMigration, Txn,
};

/// The outcome of applying one command. On the wire each variant is `{"Kind": {fields}}`, as
/// it was when the variants held their fields directly.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum CommandResult {
    ConfigWritten(ConfigWritten),
    ConfigDeleted(ConfigDeleted),
    SchemaRegistered(SchemaRegistered),
    SchemaDeleted(SchemaDeleted),
    SchemaPolicySet(SchemaPolicySet),
    Migration(MigrationRecord),
    HistoryRetentionSet(HistoryRetentionSet),
    AuditRetentionSet(AuditRetentionSet),
    TxnApplied(TxnApplied),
    AuthChanged(AuthChanged),
    /// Refused deterministically by the state machine; nothing changed.
    Rejected(Rejection),
}

/// A config written ([`PutConfig`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConfigWritten {
    pub meta: ConfigMeta,
    /// The key did not exist (or was a tombstone) before.
    pub created: bool,
}

/// A config deleted ([`DeleteConfig`]): its tombstone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ConfigDeleted {
    pub meta: ConfigMeta,
}

/// A schema version registered ([`PutSchema`]), or found registered with the same content.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SchemaRegistered {
    pub record: SchemaRecord,
    pub created: bool,
}

/// A schema version deleted ([`DeleteSchema`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SchemaDeleted {
    pub record: SchemaRecord,
}

/// A schema's policy set ([`SetSchemaPolicy`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SchemaPolicySet {
    pub name: String,
    pub policy: SchemaPolicy,
    pub revision: u64,
}

/// The history retention set ([`SetHistoryRetention`]), as apply keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HistoryRetentionSet {
    pub retention: super::HistoryRetention,
    pub revision: u64,
}

/// The audit retention set ([`SetAuditRetention`]), as apply keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuditRetentionSet {
    pub retention: super::AuditRetention,
    pub revision: u64,
}

/// A change of users, roles or tokens applied ([`super::AuthChange`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuthChanged {
    /// `false`: nothing to do (a bootstrap of a cluster that has users already).
    pub changed: bool,
}

/// A transaction applied ([`Txn`]): every operation, in request order (deletes as
/// tombstones), all at `revision`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TxnApplied {
    pub revision: u64,
    pub results: Vec<ConfigMeta>,
}

/// A kind of command, and the result applying it gives. Proposing goes through this trait
/// (`crate::propose`), so the caller of a [`PutConfig`] gets a [`ConfigWritten`] and can
/// never be handed another kind's result; a mismatch is found in that one place.
pub trait Proposal: Into<Op> {
    type Output;

    /// This kind's result out of `result`, or [`WrongResult`] if it is another kind's (a
    /// rejection included: the proposer looks for those first).
    fn output(result: CommandResult) -> Result<Self::Output, WrongResult>;
}

/// An applied result of another kind than the command proposed (a bug, never a client's
/// error), with what it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected apply result {0}")]
pub struct WrongResult(pub String);

/// `impl Proposal` and `From<Kind> for Op` for each kind of command.
macro_rules! proposal {
    ($($kind:ident => $variant:ident($output:ty);)*) => {$(
        impl From<$kind> for Op {
            fn from(op: $kind) -> Op {
                Op::$kind(op)
            }
        }

        impl Proposal for $kind {
            type Output = $output;

            fn output(result: CommandResult) -> Result<$output, WrongResult> {
                match result {
                    CommandResult::$variant(output) => Ok(output),
                    other => Err(WrongResult(format!("{other:?}"))),
                }
            }
        }
    )*};
}

proposal! {
    PutConfig => ConfigWritten(ConfigWritten);
    DeleteConfig => ConfigDeleted(ConfigDeleted);
    PutSchema => SchemaRegistered(SchemaRegistered);
    DeleteSchema => SchemaDeleted(SchemaDeleted);
    SetSchemaPolicy => SchemaPolicySet(SchemaPolicySet);
    SetHistoryRetention => HistoryRetentionSet(HistoryRetentionSet);
    SetAuditRetention => AuditRetentionSet(AuditRetentionSet);
    StartMigration => Migration(MigrationRecord);
    MigrateBatch => Migration(MigrationRecord);
    FinishMigration => Migration(MigrationRecord);
    Txn => TxnApplied(TxnApplied);
    AuthChange => AuthChanged(AuthChanged);
}

/// A transaction condition that did not hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailedCondition {
    /// Its position in the request's `conditions`.
    pub index: usize,
    pub key: String,
    /// The key's revision when the transaction was applied (`None`: absent).
    pub current_revision: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("precondition failed for {key}: {}", match current {
        Some(r) => format!("its current revision is {r}"),
        None => "it does not exist".to_string(),
    })]
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
    #[error(
        "schema {name} version {version} is referenced by {}: delete those versions first",
        users.join(", ")
    )]
    SchemaReferenced {
        name: String,
        version: u32,
        users: Vec<String>,
    },
    #[error(
        "schema {name} version {version}, which {uri} resolved to, was deleted or registered again while the new version was checked; register it again"
    )]
    ReferenceChanged {
        uri: String,
        name: String,
        version: u32,
    },
    #[error(
        "schema {name} accepts writes only at its latest version, {latest}, not at version {version}"
    )]
    NotLatest {
        name: String,
        version: u32,
        latest: u32,
    },
    #[error("schema {0} has no registered version")]
    NoVersions(String),
    #[error("schema {name} already has a running migration, {id}")]
    MigrationRunning { name: String, id: u64 },
    #[error("migration {id} of schema {name} is not running")]
    MigrationNotRunning { name: String, id: u64 },
    #[error("{} transaction condition(s) failed", failed.len())]
    ConditionFailed { failed: Vec<FailedCondition> },
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),
    #[error("role {role} is granted to {}; revoke it from them first", users.join(", "))]
    RoleInUse { role: String, users: Vec<String> },
    #[error("{0}")]
    AuthRefused(String),
}
