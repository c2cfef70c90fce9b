//! `/v1/health`, `/v1/readyz`, `/v1/status`, `/v1/settings/history` and `/v1/settings/audit`.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`: `{"status": "ok"}` while the process serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// `GET /v1/readyz`: 200 `{"ready": true}` when the node can serve linearizable requests
/// right now (else 503 `not_ready`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    pub ready: bool,
}

/// A node's Raft role.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
    /// A role this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    Role as "NodeRole",
    [Leader, Follower, Candidate, Learner, Shutdown],
    catch_all Unknown,
    "A node's Raft role."
);

/// `GET /v1/status`: this node's Raft and store figures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    pub node_id: u64,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub leader: Option<u64>,
    pub term: u64,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub last_log_index: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub last_applied_index: Option<u64>,
    /// Index of the last log entry covered by this node's current snapshot.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub snapshot_index: Option<u64>,
    /// Entries up to this index have been purged from this node's log.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub purged_index: Option<u64>,
    /// This node's applied revision.
    pub revision: u64,
    /// Live configs.
    pub configs: u64,
    /// Registered schema versions.
    pub schemas: u64,
    pub plugins: PluginStats,
}

/// The plugin host's figures on one node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginStats {
    /// Plugins compiled and held in memory.
    pub loaded: u64,
    /// Compilations since this node started.
    pub compiled: u64,
    /// Loads served by the on-disk compile cache since this node started.
    pub from_disk_cache: u64,
    /// Warm instances waiting for a call.
    pub idle_instances: u64,
    /// Digests of plugins that misbehaved on this node (their calls run on the blocking
    /// pool).
    pub misbehaving: Vec<String>,
}

/// How much history is kept: `GET /v1/settings/history`, and the body of `PUT`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HistoryRetention {
    /// Revisions kept per key, the current one included (at least 1; default 100).
    pub keep: u32,
    /// Records older than this are dropped too (a key's live value never is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `null` is accepted as "none" (serde reads it so): the schema says so.
    pub max_age_seconds: Option<u64>,
    /// The revision index keeps at least the newest this many revisions, and a watch can
    /// resume from any of them (at least 1; default 100,000). With a maximum age, changes
    /// whose records are kept stay until they are that old. Always given by `GET`; a `PUT`
    /// without it sets the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub watch_window: Option<u64>,
}

/// The answer to `PUT /v1/settings/history`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryRetentionSet {
    pub keep: u32,
    /// Sent as `null` without a maximum age.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub max_age_seconds: Option<u64>,
    pub watch_window: u64,
    /// The revision of the change.
    pub revision: u64,
}

/// How much of the audit trail is kept: `GET /v1/settings/audit`, and the body of `PUT`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditRetention {
    /// The newest this many records are kept (at least 1; default 100,000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_records: u64,
    /// Records older than this are dropped too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `null` is accepted as "none" (serde reads it so): the schema says so.
    pub max_age_seconds: Option<u64>,
}

/// The answer to `PUT /v1/settings/audit`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRetentionSet {
    pub max_records: u64,
    /// Sent as `null` without a maximum age.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub max_age_seconds: Option<u64>,
    /// The revision of the change.
    pub revision: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_as_the_readme_shows_it() {
        let text = r#"{"node_id":1,"role":"leader","leader":1,"term":1,"last_log_index":7,"last_applied_index":7,"snapshot_index":null,"purged_index":null,"revision":5,"configs":3,"schemas":2,"plugins":{"loaded":2,"compiled":2,"from_disk_cache":0,"idle_instances":2,"misbehaving":[]}}"#;
        let s: Status = serde_json::from_str(text).unwrap();
        assert_eq!(s.role, Role::Leader);
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
    }

    #[test]
    fn retention() {
        let get = r#"{"keep":100,"watch_window":1000000}"#;
        let r: HistoryRetention = serde_json::from_str(get).unwrap();
        assert_eq!(r.max_age_seconds, None);
        assert_eq!(r.watch_window, Some(1_000_000));
        assert_eq!(serde_json::to_string(&r).unwrap(), get);
        assert!(serde_json::from_str::<HistoryRetention>(r#"{"keep":1,"x":2}"#).is_err());
        let set = r#"{"keep":5,"max_age_seconds":null,"watch_window":7,"revision":9}"#;
        let s: HistoryRetentionSet = serde_json::from_str(set).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), set);
        let audit = r#"{"max_records":10}"#;
        let a: AuditRetention = serde_json::from_str(audit).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), audit);
        assert!(serde_json::from_str::<AuditRetention>(r#"{"max_records":1,"keep":2}"#).is_err());
        let set = r#"{"max_records":10,"max_age_seconds":60,"revision":3}"#;
        let s: AuditRetentionSet = serde_json::from_str(set).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), set);
        let h: Health = serde_json::from_str(r#"{"status":"ok"}"#).unwrap();
        assert_eq!(h.status, "ok");
        assert!(
            serde_json::from_str::<Ready>(r#"{"ready":true}"#)
                .unwrap()
                .ready
        );
    }
}
