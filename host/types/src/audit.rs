//! `GET /v1/audit`: the audit trail, newest first.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record of the audit trail (the server's audit `View`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Its sequence number (the paging cursor: `?before=`).
    pub seq: u64,
    /// The Raft log index of the change.
    pub log_index: u64,
    /// RFC 3339; `null` for membership changes (Raft membership entries carry no time).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub at: Option<String>,
    /// The authenticated principal that made the change (`raft` for membership changes;
    /// with authentication off, `X-Scarab-Actor` or `anonymous`).
    pub actor: String,
    /// The name a principal with `auth:impersonate` acted for (`X-Scarab-Actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub on_behalf_of: Option<String>,
    /// `config.create|update|delete|rollback|migrate`, `schema.register|delete|policy`,
    /// `migration.start|finish`, `settings.history|audit`, `membership.change`,
    /// `auth.user|role|token.put|delete|create|revoke`, `auth.bootstrap`.
    pub action: String,
    /// A key, `schema/NAME/VERSION`, `migration/NAME/ID`, `settings/history`,
    /// `settings/audit`, `cluster`.
    pub object: String,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub revision_before: Option<u64>,
    /// The global revision of the change (`null`: the change has none, e.g. membership).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub revision_after: Option<u64>,
    /// `X-Scarab-Reason` of the change.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub reason: Option<String>,
    /// How a written value was validated.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub validation: Option<Provenance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub detail: Option<Value>,
}

/// How a written value was validated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Provenance {
    pub schema: String,
    pub schema_version: u32,
    #[cfg_attr(feature = "openapi", schema(required))]
    pub plugin_digest: Option<String>,
    /// Wall time of the JSON Schema and plugin checks on the proposing node (`null` when the
    /// write was validated elsewhere, e.g. converted by a migration).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub elapsed_us: Option<u64>,
}

/// A page of the audit trail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// The cursor of the next (older) page (`?before=`), or `None` on the last page.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub next_before: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_as_the_readme_shows_it() {
        let text = r#"{"items":[{"seq":17,"log_index":21,"at":"2026-11-26T05:19:08.555Z","actor":"alice","action":"config.update","object":"stores/orders","revision_before":12,"revision_after":16,"reason":"raise limits","validation":{"schema":"store","schema_version":1,"plugin_digest":"sha256:x","elapsed_us":41}},{"seq":3,"log_index":4,"at":null,"actor":"raft","action":"membership.change","object":"cluster","revision_before":null,"revision_after":null,"reason":null,"validation":null,"detail":{"voters":[1,2]}}],"next_before":3}"#;
        let page: AuditPage = serde_json::from_str(text).unwrap();
        assert_eq!(
            page.items[0].validation.as_ref().unwrap().elapsed_us,
            Some(41)
        );
        assert_eq!(page.items[1].at, None);
        assert_eq!(serde_json::to_string(&page).unwrap(), text);
    }
}
