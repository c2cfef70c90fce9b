//! `/v1/schemas/{name}/migrations`: storage migrations and their dry runs.

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/schemas/{name}/migrations`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StartMigration {
    pub target_version: u32,
    /// Only convert and report ([`DryRun`]); write nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Whether a migration is still converting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MigrationStatus {
    Running,
    /// Nothing is left to convert but the failed keys.
    Done,
    /// A status this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    MigrationStatus as "MigrationStatus",
    [Running, Done],
    catch_all Unknown,
    "Whether a migration is still converting (`done`: nothing is left to convert but the \
     failed keys)."
);

/// A storage migration and its progress (the server's migration `View`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Migration {
    pub id: u64,
    pub schema: String,
    pub target_version: u32,
    pub status: MigrationStatus,
    /// Configs not at the target version when it started.
    pub total: u64,
    /// Configs rewritten.
    pub done: u64,
    /// Conversions not written because the config changed meanwhile (tried again).
    pub skipped: u64,
    /// How many keys cannot be converted; `failed` lists at most 1,000.
    pub failed_count: u64,
    pub failed: Vec<MigrationFailure>,
    pub started_at: String,
    pub started_by: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub finished_at: Option<String>,
}

/// A config a migration could not convert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationFailure {
    pub key: String,
    /// The revision that failed: the key is tried again once it changes.
    pub revision: u64,
    pub reason: String,
}

/// `GET /v1/schemas/{name}/migrations`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationList {
    pub migrations: Vec<Migration>,
}

/// What a dry run found (the answer to a start with `dry_run: true`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    pub name: String,
    pub target_version: u32,
    /// Configs not at the target version.
    pub total: u64,
    pub convertible: u64,
    pub failed: Vec<MigrationFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_as_the_server_shows_it() {
        let running = r#"{"id":9,"schema":"store","target_version":2,"status":"running","total":3,"done":0,"skipped":0,"failed_count":0,"failed":[],"started_at":"t","started_by":"alice","updated_at":"t"}"#;
        let m: Migration = serde_json::from_str(running).unwrap();
        assert_eq!(m.status, MigrationStatus::Running);
        assert_eq!(serde_json::to_string(&m).unwrap(), running);
        let list = format!(r#"{{"migrations":[{running}]}}"#);
        let l: MigrationList = serde_json::from_str(&list).unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), list);
        let done = r#"{"id":9,"schema":"store","target_version":2,"status":"done","total":3,"done":2,"skipped":1,"failed_count":1,"failed":[{"key":"k","revision":3,"reason":"r"}],"started_at":"t","started_by":"alice","updated_at":"t","finished_at":"u"}"#;
        let m: Migration = serde_json::from_str(done).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), done);
        let later: Migration =
            serde_json::from_str(&running.replace("\"running\"", "\"paused\"")).unwrap();
        assert_eq!(later.status, MigrationStatus::Unknown);
    }

    #[test]
    fn start_and_dry_run() {
        let start = StartMigration {
            target_version: 2,
            dry_run: false,
        };
        assert_eq!(
            serde_json::to_string(&start).unwrap(),
            r#"{"target_version":2}"#
        );
        let dry = r#"{"target_version":2,"dry_run":true}"#;
        assert!(serde_json::from_str::<StartMigration>(dry).unwrap().dry_run);
        let report = r#"{"name":"store","target_version":2,"total":3,"convertible":2,"failed":[{"key":"k","revision":3,"reason":"r"}]}"#;
        let r: DryRun = serde_json::from_str(report).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), report);
    }
}
