//! The wire types of Scarab's HTTP API (`/v1`), Scarab being a Raft-replicated configuration
//! service: what the server sends and what its clients send, in one crate that both sides
//! compile against, so that they cannot drift. The typed client is `scarab-client`.
//!
//! - [`ErrorBody`] and [`ErrorCode`]: the one error shape of every failed request, and every
//!   code with its HTTP status and whether a retry is safe.
//! - Configs: [`ConfigMeta`], [`ConfigEntry`], [`ConfigPage`], [`HistoryPage`],
//!   [`PutConfig`], [`Deleted`], [`RolledBack`]; transactions: [`TxnRequest`],
//!   [`TxnResponse`].
//! - Schemas: [`SchemaVersion`], [`Registered`], [`CompatReport`], [`SchemaPolicy`],
//!   [`ValidateResult`]; migrations: [`Migration`], [`DryRun`].
//! - Watch: [`WatchEvent`] ([`ChangeBatch`], [`WatchProgress`]), [`WatchPoll`].
//! - Access: [`auth`] (permissions, roles, users, tokens, `whoami`).
//! - Audit: [`AuditRecord`], [`AuditPage`]; cluster: [`ClusterView`], [`SelfInfo`],
//!   [`JoinRequest`]; node: [`Status`], [`HistoryRetention`].
//!
//! Every type deserialises exactly what the server sends (field names, fields it omits or
//! sends as `null`) and serialises to the same text, so the server can answer with these
//! types too. Numbers are `u64` (`u32` for schema versions), times RFC 3339 strings, config
//! values [`serde_json::Value`] (with numbers kept as written when serde_json's
//! `arbitrary_precision` is enabled, as the server does).
//!
//! No type uses `#[serde(flatten)]`, untagged or internally tagged enums: serde buffers
//! those, and the buffer loses `arbitrary_precision` numbers. Responses made of a config's
//! metadata plus a few fields ([`ConfigEntry`], [`HistoryEntry`], [`RolledBack`],
//! [`TxnResult`], [`Change`], [`Registered`]) are flat objects on the wire and a struct
//! with a `meta` (or `version`) field in Rust.
//!
//! Enums the server may extend ([`ErrorCode`], roles, statuses, kinds) decode a value this
//! version does not know as `Other`/`Unknown` instead of failing.
//!
//! ```
//! use scarab_types::{ConfigEntry, ErrorBody, ErrorCode};
//!
//! let entry: ConfigEntry = serde_json::from_str(r#"{"key":"stores/orders","schema":"store",
//!     "schema_version":1,"revision":2,"key_version":1,"created_at":"2026-11-26T05:19:08.555Z",
//!     "created_by":"alice","updated_at":"2026-11-26T05:19:08.555Z","updated_by":"alice",
//!     "plugin_digest":null,"value":{"timeout_ms":5000}}"#).unwrap();
//! assert_eq!(entry.meta.revision, 2);
//! assert_eq!(entry.value["timeout_ms"], 5000);
//!
//! let body: ErrorBody = serde_json::from_str(
//!     r#"{"error":{"code":"no_leader","message":"no leader is known"}}"#).unwrap();
//! assert_eq!(body.error.code, ErrorCode::NoLeader);
//! assert!(body.error.code.is_retry_safe());
//! assert_eq!(body.error.code.http_status(), 503);
//! ```

pub mod audit;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod migration;
pub mod node;
pub mod schema;
pub mod txn;
pub mod watch;

pub use audit::{AuditPage, AuditRecord, Provenance};
pub use cluster::{ClusterView, JoinRequest, MemberRole, MemberView, SelfInfo};
pub use config::{
    ConfigEntry, ConfigMeta, ConfigPage, Consistency, Deleted, Entry, HistoryEntry, HistoryPage,
    InvalidKey, MAX_KEY_BYTES, MAX_KEY_SEGMENTS, PutConfig, RollbackRequest, RolledBack,
    validate_key,
};
pub use error::{
    ConditionFailedReport, ErrorBody, ErrorCode, ErrorDetail, FailedCondition, VIOLATIONS_LEFT_OUT,
    Violation, ViolationSource,
};
pub use migration::{
    DryRun, Migration, MigrationFailure, MigrationList, MigrationStatus, StartMigration,
};
pub use node::{
    AuditRetention, AuditRetentionSet, Health, HistoryRetention, HistoryRetentionSet, PluginStats,
    Ready, Role, Status,
};
pub use schema::{
    CompatFailure, CompatReport, CompatStep, CompatibilityCheck, InvalidSchemaName, MigrationSpec,
    PluginContract, PolicySet, PolicyView, Registered, SchemaList, SchemaPolicy, SchemaReference,
    SchemaSummary, SchemaVersion, SchemaVersions, ValidateResult, WritePolicy, parse_schema_uri,
    schema_uri, validate_schema_name,
};
pub use txn::{Condition, TxnOp, TxnOpKind, TxnRequest, TxnResponse, TxnResult};
pub use watch::{
    Change, ChangeBatch, ChangeKind, EVENT_CHANGE, EVENT_ERROR, EVENT_PROGRESS, WatchError,
    WatchEvent, WatchPoll, WatchProgress,
};

/// Headers of the API.
pub mod headers {
    /// Who makes a change (default `anonymous`); kept in the audit trail. 1 to 128 visible
    /// ASCII characters.
    pub const ACTOR: &str = "x-scarab-actor";
    /// Why; kept in the audit trail. 1 to 1024 visible ASCII characters.
    pub const REASON: &str = "x-scarab-reason";
    /// On every read: the answering node's applied revision.
    pub const REVISION: &str = "x-scarab-revision";
    /// `stale` on a read served from local state (`?consistency=stale`).
    pub const CONSISTENCY: &str = "x-scarab-consistency";
}

#[cfg(test)]
mod readme {
    //! The README's error table (`| status | codes |`) and [`ErrorCode::ALL`] must agree.

    use std::collections::BTreeMap;

    use super::ErrorCode;

    /// `code -> status` of the README's error table, or `None` if the README is not there
    /// (a packaged crate).
    fn table() -> Option<BTreeMap<String, u16>> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text
            .lines()
            .skip_while(|l| l.trim() != "| status | codes |");
        assert!(
            lines.next().is_some(),
            "README has no `| status | codes |` table"
        );
        let mut out = BTreeMap::new();
        for line in lines.skip(1).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status: u16 = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("README error row without a status: {line}"));
            for code in codes_outside_parentheses(cells[2]) {
                let previous = out.insert(code.clone(), status);
                assert!(previous.is_none(), "README lists `{code}` twice");
            }
        }
        assert!(!out.is_empty(), "README's error table is empty");
        Some(out)
    }

    /// The `code`s of a cell, without those in notes: "`a`, `b` (with the `report`)".
    fn codes_outside_parentheses(cell: &str) -> Vec<String> {
        let (mut depth, mut code, mut out) = (0usize, None::<String>, Vec::new());
        for c in cell.chars() {
            match (c, code.as_mut()) {
                ('`', Some(_)) => out.extend(code.take().filter(|_| depth == 0)),
                ('`', None) => code = Some(String::new()),
                (c, Some(s)) => s.push(c),
                ('(', None) => depth += 1,
                (')', None) => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        out
    }

    fn all() -> BTreeMap<String, u16> {
        ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.http_status()))
            .collect()
    }

    /// Every code the README lists is a code of [`ErrorCode::ALL`], with the same status.
    #[test]
    fn the_readme_lists_only_known_codes_with_their_status() {
        let Some(readme) = table() else { return };
        let all = all();
        let wrong: Vec<String> = readme
            .iter()
            .filter(|(code, status)| all.get(*code) != Some(status))
            .map(|(code, status)| match all.get(code) {
                Some(s) => format!("`{code}`: README says {status}, ErrorCode says {s}"),
                None => format!("`{code}` ({status}) is not an ErrorCode"),
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "README error table:\n{}",
            wrong.join("\n")
        );
    }

    /// ...and every code of [`ErrorCode::ALL`] is in the README.
    #[test]
    fn the_readme_lists_every_code() {
        let Some(readme) = table() else { return };
        let missing: Vec<String> = all()
            .into_iter()
            .filter(|(code, _)| !readme.contains_key(code))
            .map(|(code, status)| format!("{status} `{code}`"))
            .collect();
        assert!(
            missing.is_empty(),
            "codes missing from the README's error table:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn notes_are_not_codes() {
        assert_eq!(
            codes_outside_parentheses(
                "`incompatible_schema_version` (with the compatibility `report`), `quorum_at_risk`"
            ),
            ["incompatible_schema_version", "quorum_at_risk"]
        );
    }
}

#[cfg(feature = "openapi")]
mod openapi;
