//! Per-call options: what the API takes as query parameters and headers.

use std::time::Duration;

use bytes::Bytes;
use scarab_types::Consistency;

/// Options of [`Client::get_with`](crate::Client::get_with).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `None`: the client's default ([`ClientBuilder::consistency`](crate::ClientBuilder::consistency)).
    pub consistency: Option<Consistency>,
    /// The key as it was at this revision (time travel): 404 if it did not exist then, 410
    /// `revision_compacted` if the retention dropped it.
    pub revision: Option<u64>,
    /// The value converted to this version of its schema (`converted_from` then says the
    /// stored version).
    pub schema_version: Option<u32>,
}

impl ReadOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }

    /// From the answering node's local state, without a read-index round.
    pub fn stale(self) -> Self {
        self.consistency(Consistency::Stale)
    }

    pub fn revision(mut self, revision: u64) -> Self {
        self.revision = Some(revision);
        self
    }

    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = Some(version);
        self
    }
}

/// Options of a config write ([`Client::put_with`](crate::Client::put_with),
/// [`Client::delete_with`](crate::Client::delete_with), and — `actor`, `reason` and
/// `retry_unknown_outcome` only — [`Client::txn_with`](crate::Client::txn_with)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Compare-and-set: only if the key's revision is this one (`If-Match`), else 412
    /// `precondition_failed`.
    pub if_match: Option<u64>,
    /// Create only: only if the key does not exist (`If-None-Match: *`).
    pub if_none_match_any: bool,
    /// `X-Scarab-Actor` for this call (else the client's).
    pub actor: Option<String>,
    /// `X-Scarab-Reason` for this call (else the client's).
    pub reason: Option<String>,
    /// Send the write again (to the next node) when its outcome is unknown (`timeout`,
    /// `leader_unreachable`, no answer). Allowed only with a condition (`if_match`,
    /// `if_none_match_any`; for a transaction, its conditions), so that a repeat of a write
    /// that did apply fails its condition (412) instead of applying twice. A 412 after such
    /// a retry may therefore mean "applied by the first attempt": read the key to know.
    pub retry_unknown_outcome: bool,
}

impl WriteOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn if_match(mut self, revision: u64) -> Self {
        self.if_match = Some(revision);
        self
    }

    pub fn if_none_match_any(mut self) -> Self {
        self.if_none_match_any = true;
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn retry_unknown_outcome(mut self) -> Self {
        self.retry_unknown_outcome = true;
        self
    }

    pub(crate) fn conditional(&self) -> bool {
        self.if_match.is_some() || self.if_none_match_any
    }
}

/// Options of [`Client::list`](crate::Client::list) and
/// [`Client::list_page`](crate::Client::list_page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Keys starting with this (`""`: every key).
    pub prefix: String,
    /// Start after this key (the previous page's `next`).
    pub after: Option<String>,
    /// At most this many items per page (1 to 1000; the server's default is 100).
    pub limit: Option<u32>,
    pub consistency: Option<Consistency>,
    /// Only configs of this schema.
    pub schema: Option<String>,
    /// Values converted to this version of `schema` (which is then required).
    pub schema_version: Option<u32>,
}

impl ListOptions {
    /// Keys under `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.after = Some(key.into());
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }

    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = Some(version);
        self
    }
}

/// Options of [`Client::history`](crate::Client::history).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryOptions {
    /// At most this many revisions per page (1 to 1000; the server's default is 100).
    pub limit: Option<u32>,
    /// Only revisions older than this one (the previous page's `next_before`).
    pub before: Option<u64>,
    pub consistency: Option<Consistency>,
}

impl HistoryOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn before(mut self, revision: u64) -> Self {
        self.before = Some(revision);
        self
    }

    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }
}

/// A query of the audit trail ([`Client::audit`](crate::Client::audit)). Every field narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Records whose object (a key, `schema/…`, `migration/…`, `settings/…`, `cluster`)
    /// starts with this.
    pub prefix: String,
    pub actor: Option<String>,
    /// An action (`config.update`) or its family (`config`).
    pub action: Option<String>,
    /// From this time on: RFC 3339 (`2026-11-26T15:00:00Z`) or milliseconds since the epoch.
    pub since: Option<String>,
    /// Before this time (same forms).
    pub until: Option<String>,
    /// Records with a sequence number below this (the previous page's `next_before`).
    pub before: Option<u64>,
    /// At most this many records per page (1 to 1000; the server's default is 100).
    pub limit: Option<u32>,
    pub consistency: Option<Consistency>,
}

impl AuditQuery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    pub fn since(mut self, time: impl Into<String>) -> Self {
        self.since = Some(time.into());
        self
    }

    pub fn until(mut self, time: impl Into<String>) -> Self {
        self.until = Some(time.into());
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Records with a sequence number below `seq` (the previous page's `next_before`).
    pub fn before(mut self, seq: u64) -> Self {
        self.before = Some(seq);
        self
    }

    /// From the answering node's local state, which may be behind.
    pub fn stale(mut self) -> Self {
        self.consistency = Some(Consistency::Stale);
        self
    }
}

/// What to watch ([`Client::watch`](crate::Client::watch),
/// [`Client::watch_poll`](crate::Client::watch_poll)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Keys starting with this (`""`: every key).
    pub prefix: String,
    /// The first revision to deliver. `None`: the changes after the revision a node has
    /// applied when the watch starts (the client asks it first, so that a reconnect before
    /// the first event still misses nothing).
    pub from_revision: Option<u64>,
    /// Only configs of this schema.
    pub schema: Option<String>,
    /// Values converted to this version of `schema` (which is then required).
    pub schema_version: Option<u32>,
    /// SSE: a progress event after this long without a change (at least 100 ms; the
    /// server's default is 10 s). A connection silent for three times this long is taken
    /// as broken and replaced.
    pub progress: Option<Duration>,
    /// SSE: give up after this many failed connection attempts in a row (each endpoint
    /// tried counts one), with the last error as the stream's last item. `None`: keep
    /// trying, with a backoff of up to 5 s.
    pub max_reconnect_attempts: Option<u32>,
}

impl WatchOptions {
    /// Changes under `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub fn from_revision(mut self, revision: u64) -> Self {
        self.from_revision = Some(revision);
        self
    }

    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = Some(version);
        self
    }

    pub fn progress(mut self, every: Duration) -> Self {
        self.progress = Some(every);
        self
    }

    pub fn max_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.max_reconnect_attempts = Some(attempts);
        self
    }
}

/// A schema version to register or check: its JSON Schema and, optionally, its plugin
/// component (sent as `multipart/form-data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaUpload {
    /// The JSON Schema's text.
    pub schema: Bytes,
    /// The plugin component (`.wasm`).
    pub plugin: Option<Bytes>,
    /// Register even if configs stored at the previous version would not survive the
    /// upgrade (`?force=true`). Ignored by the compatibility check.
    pub force: bool,
}

impl SchemaUpload {
    /// A JSON Schema given as a document.
    pub fn new(schema: &serde_json::Value) -> Self {
        Self::from_bytes(serde_json::to_vec(schema).expect("a JSON value serialises"))
    }

    /// A JSON Schema given as its text (a file's bytes), sent as it is.
    pub fn from_bytes(schema: impl Into<Bytes>) -> Self {
        Self {
            schema: schema.into(),
            plugin: None,
            force: false,
        }
    }

    /// With a plugin component.
    pub fn plugin(mut self, wasm: impl Into<Bytes>) -> Self {
        self.plugin = Some(wasm.into());
        self
    }

    /// Register despite an incompatible compatibility report.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }
}
