//! `GET /v1/watch`: the changes under a prefix, in revision order, as Server-Sent Events or as
//! a long poll (`?wait=30s`).
//!
//! A watch reads this node's applied state (the history's revision index), never the leader's:
//! every node applies the same committed entries in the same order, so any node, a follower
//! included, gives the same changes at the same revisions, only maybe later. A client that
//! reconnects anywhere with `from_revision` = its last revision + 1 therefore misses nothing
//! and sees nothing twice, also across a leader change; a node that is behind just answers
//! once it has applied that far. Each SSE message is one revision (all the changes of a
//! transaction together), with the revision as its `id`, so `Last-Event-ID` resumes it.

use scarab_types::{
    ChangeBatch, ChangeKind, EVENT_CHANGE, EVENT_ERROR, EVENT_PROGRESS, ErrorCode, WatchError,
    WatchPoll, WatchProgress,
};
use std::convert::Infallible;
use std::time::Duration;

use super::extract::Query;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use scarab_types::auth::Action;

use super::authn::Principal;
use super::configs::{json_response, meta_view, meta_view_at, value_at};
use super::{ApiError, AppState, split_list};
use crate::store::{Changes, ConfigEntry, SmMeta};

/// Changes read at once (a revision is never split).
const MAX_BATCH: usize = 1000;
const MAX_WAIT: Duration = Duration::from_secs(300);
/// The shortest `progress` interval: below it, one idle watcher is a busy loop of events.
const MIN_PROGRESS: Duration = Duration::from_millis(100);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchParams {
    /// Only keys that start with this.
    #[serde(default)]
    prefix: String,
    /// The first revision to deliver (default: the next one).
    #[serde(default, deserialize_with = "super::strict::opt_u64")]
    #[param(value_type = Option<u64>)]
    from_revision: Option<u64>,
    /// Long poll: answer once there is a change, or after this long (at most 5m) without.
    wait: Option<String>,
    /// Only configs of this schema.
    schema: Option<String>,
    /// Values converted to this version of `schema` (which is then required).
    #[serde(default, deserialize_with = "super::strict::opt_u32")]
    #[param(value_type = Option<u32>, minimum = 1)]
    schema_version: Option<u32>,
    /// SSE: a progress event after this long without a change (default 10s).
    progress: Option<String>,
    /// Long poll: at most about this many changes per answer (default and max 1000).
    #[serde(default, deserialize_with = "super::strict::opt_usize")]
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

fn duration(name: &str, text: &str, min: Duration, max: Duration) -> Result<Duration, ApiError> {
    let d = humantime::parse_duration(text)
        .map_err(|e| ApiError::malformed(format!("{name} must be a duration such as 30s: {e}")))?;
    if d.is_zero() || d < min || d > max {
        return Err(ApiError::malformed(format!(
            "{name} must be at least {} and at most {}",
            humantime::format_duration(min.max(Duration::from_millis(1))),
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

/// One Server-Sent Event of a watch stream (described for the OpenAPI document; the stream is
/// written by [`sse`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// `change`, `progress` or `error`. A browser's `EventSource` delivers named events to
    /// listeners of that name (`addEventListener("change", ...)`), not to `onmessage`.
    #[schema(value_type = String, pattern = "^(change|progress|error)$")]
    event: String,
    /// The revision of the event (`change` and `progress`): what `Last-Event-ID` resumes
    /// after.
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    id: Option<String>,
    /// The event as JSON: a `ChangeBatch` (`change`), a `WatchProgress` (`progress`) or a
    /// `WatchError` (`error`).
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// One watcher's position and filters.
struct Watcher {
    state: AppState,
    prefix: String,
    schema: Option<String>,
    schema_version: Option<u32>,
    /// The next revision to deliver.
    cursor: u64,
    applied: tokio::sync::watch::Receiver<SmMeta>,
    /// This watch's place among the node's open watches (`--max-watches`), held until it ends.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// One revision's changes, rendered.
struct Revision {
    revision: u64,
    json: String,
}

impl Watcher {
    /// The changes from the cursor up to what this node has applied (at most about `max`),
    /// rendered, and the cursor moved past them. Empty when there are none (yet).
    async fn read(&mut self, max: usize) -> Result<Vec<Revision>, ApiError> {
        self.applied.borrow_and_update();
        let to = self.state.store.applied().revision;
        if self.cursor > to {
            return Ok(Vec::new());
        }
        let entries = match self.state.store.changes(
            &self.prefix,
            self.cursor,
            to,
            max,
            self.state.config.max_page_bytes,
        )? {
            Changes::Compacted { revision } => return Err(compacted(&self.prefix, revision)),
            Changes::Found { entries, through } => {
                self.cursor = through + 1;
                entries
            }
        };
        // Each revision's changes, rendered and separated by commas.
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for entry in entries {
            if self
                .schema
                .as_ref()
                .is_some_and(|s| *s != entry.meta.schema)
            {
                continue;
            }
            let events = match out.last_mut() {
                Some((r, events)) if *r == entry.meta.revision => {
                    events.push(b',');
                    events
                }
                _ => {
                    out.push((
                        entry.meta.revision,
                        Vec::with_capacity(entry.value.len() + 512),
                    ));
                    &mut out.last_mut().expect("just pushed").1
                }
            };
            self.event(events, &entry).await;
        }
        Ok(out
            .into_iter()
            .map(|(revision, events)| {
                let batch = ChangeBatch {
                    revision,
                    events: Vec::new(),
                };
                let (mut json, end) = split_list(&batch, "events", events.len());
                json.extend_from_slice(&events);
                json.extend_from_slice(&end);
                Revision {
                    revision,
                    json: String::from_utf8(json).expect("JSON text is UTF-8"),
                }
            })
            .collect())
    }

    /// A change as delivered ([`scarab_types::Change`]): the metadata, `type`, and the value
    /// (converted if asked; a conversion that fails gives `value: null` and the `error`, and
    /// the watch goes on).
    async fn event(&self, out: &mut Vec<u8>, entry: &ConfigEntry) {
        if entry.meta.deleted {
            return change_json(
                out,
                &meta_view(&entry.meta),
                ChangeKind::Delete,
                "null",
                None,
            );
        }
        match value_at(&self.state, entry, self.schema_version).await {
            Ok(converted) => change_json(
                out,
                &meta_view_at(&entry.meta, self.schema_version),
                ChangeKind::Put,
                converted.as_deref().unwrap_or(&entry.value),
                None,
            ),
            Err(e) => change_json(
                out,
                &meta_view(&entry.meta),
                ChangeKind::Put,
                "null",
                Some(&WatchError {
                    code: e.code,
                    message: e.message,
                }),
            ),
        }
    }

    /// Waits up to `timeout` for this node to apply something new; false on shutdown.
    async fn wait(&mut self, timeout: Duration) -> bool {
        tokio::select! {
            _ = self.state.stopping.cancelled() => false,
            changed = tokio::time::timeout(timeout, self.applied.changed()) => {
                !matches!(changed, Ok(Err(_)))
            }
        }
    }
}

/// A [`scarab_types::Change`] as JSON, with the value's JSON text spliced in as it is (as
/// `configs::splice_value` does).
fn change_json(
    out: &mut Vec<u8>,
    meta: &scarab_types::ConfigMeta,
    kind: ChangeKind,
    value: &str,
    error: Option<&WatchError>,
) {
    serde_json::to_writer(&mut *out, meta).expect("metadata serialises");
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"type\":");
    serde_json::to_writer(&mut *out, &kind).expect("a kind serialises");
    out.extend_from_slice(b",\"value\":");
    out.extend_from_slice(value.as_bytes());
    if let Some(e) = error {
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut *out, e).expect("an error serialises");
    }
    out.push(b'}');
}

fn compacted(prefix: &str, revision: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RevisionCompacted,
        format!(
            "the changes under prefix {prefix:?} from revision {revision} on were dropped by the history retention: read the current state (GET /v1/configs?prefix=..., which gives its revision) and watch from that revision + 1"
        ),
    )
}

#[utoipa::path(get, path = "/v1/watch", operation_id = "watch", tag = "watch",
    params(WatchParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "SSE: resume after this revision (EventSource sends it when it reconnects).")),
    responses((status = 200, description = "With `wait`: a long poll's answer (JSON). Otherwise a stream of Server-Sent Events: `change` (data: a `ChangeBatch`, id: its revision), `progress` (data: a `WatchProgress`) and `error` (data: a `WatchError`).",
        content(
            (scarab_types::WatchPoll = "application/json"),
            (SseEvent = "text/event-stream"),
        ))))]
pub async fn watch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<WatchParams>,
) -> Result<Response, ApiError> {
    // The whole prefix: a watch streams every change under it.
    principal.require(Action::ConfigRead, &params.prefix)?;
    if params.schema_version.is_some() && params.schema.is_none() {
        return Err(ApiError::malformed(
            "schema_version needs schema: the version of which schema?",
        ));
    }
    // EventSource resends the id of the last event it saw: one of ours, so a revision.
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| super::strict::canonical_u64(v.trim()))
                .filter(|seen| *seen < u64::MAX)
                .ok_or_else(|| {
                    ApiError::malformed(
                        "Last-Event-ID must be the revision of an event this API sent",
                    )
                })?,
        ),
    };
    // Checked whatever the mode, as every route checks its `limit` (a stream ignores it).
    let limit = params.limit.unwrap_or(MAX_BATCH);
    if limit == 0 || limit > MAX_BATCH {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {MAX_BATCH}"
        )));
    }
    let cursor = match (params.from_revision, last_event_id) {
        (_, Some(seen)) => seen + 1,
        (Some(from), None) => from.max(1),
        (None, None) => state.store.applied().revision + 1,
    };
    let slot = state.watches.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(ErrorCode::TooManyWatches,
            format!(
                "this node already serves {} watches (--max-watches); retry later or on another node",
                state.config.max_watches
            ),
        )
    })?;
    let mut watcher = Watcher {
        _slot: slot,
        applied: state.store.subscribe(),
        state,
        prefix: params.prefix,
        schema: params.schema,
        schema_version: params.schema_version,
        cursor,
    };
    match params.wait {
        Some(wait) => {
            let wait = duration("wait", &wait, Duration::ZERO, MAX_WAIT)?;
            long_poll(watcher, wait, limit).await
        }
        None => {
            let progress = match params.progress {
                Some(p) => duration("progress", &p, MIN_PROGRESS, MAX_WAIT)?,
                None => Duration::from_secs(10),
            };
            // The first read answers here, so that a start in compacted history is an HTTP
            // error and not an event.
            let first = watcher.read(MAX_BATCH).await?;
            Ok(sse(watcher, first, progress))
        }
    }
}

/// Answers with the changes as soon as there are any, or with none after `wait`; either way
/// with `next_from_revision` to ask again with.
async fn long_poll(mut w: Watcher, wait: Duration, limit: usize) -> Result<Response, ApiError> {
    let deadline = Instant::now() + wait;
    let changes = loop {
        let changes = w.read(limit).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !changes.is_empty() || left.is_zero() || !w.wait(left).await {
            break changes;
        }
    };
    // Everything before `next_from_revision` was delivered (or did not match).
    let poll = WatchPoll {
        changes: Vec::new(),
        revision: w.cursor - 1,
        next_from_revision: w.cursor,
    };
    let size = changes.iter().map(|c| c.json.len() + 1).sum();
    let (mut body, end) = split_list(&poll, "changes", size);
    for (i, c) in changes.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(c.json.as_bytes());
    }
    body.extend_from_slice(&end);
    Ok(w.state.with_revision(json_response(StatusCode::OK, body)))
}

/// `change` events (one per revision, `id` = the revision), `progress` events (`id` = the
/// revision everything up to which was delivered) after `progress` without a change, and a
/// final `error` event if the watcher falls behind the retention.
fn sse(watcher: Watcher, first: Vec<Revision>, progress: Duration) -> Response {
    let change = |r: Revision| {
        Event::default()
            .event(EVENT_CHANGE)
            .id(r.revision.to_string())
            .data(r.json)
    };
    let initial = futures::stream::iter(first.into_iter().map(change));
    let rest = futures::stream::unfold(Some((watcher, Instant::now())), move |st| async move {
        let (mut w, mut last_sent) = st?;
        loop {
            match w.read(MAX_BATCH).await {
                Err(e) => {
                    let data = WatchError {
                        code: e.code,
                        message: e.message,
                    };
                    let data = serde_json::to_string(&data).expect("an error serialises");
                    return Some((vec![Event::default().event(EVENT_ERROR).data(data)], None));
                }
                Ok(changes) if !changes.is_empty() => {
                    let events = changes.into_iter().map(change).collect();
                    return Some((events, Some((w, Instant::now()))));
                }
                Ok(_) => {}
            }
            let idle = last_sent.elapsed();
            if idle >= progress {
                last_sent = Instant::now();
                let through = w.cursor - 1;
                let event = Event::default()
                    .event(EVENT_PROGRESS)
                    .id(through.to_string())
                    .data(
                        serde_json::to_string(&WatchProgress { revision: through })
                            .expect("progress serialises"),
                    );
                return Some((vec![event], Some((w, last_sent))));
            }
            if !w.wait(progress - idle).await {
                return None;
            }
        }
    })
    .flat_map(futures::stream::iter);
    Sse::new(initial.chain(rest).map(Ok::<_, Infallible>)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::configs::tests::{stored_meta, stored_value};
    use scarab_types::Change;

    /// A change as [`change_json`] writes it: the wire type, the value spliced in.
    #[test]
    fn changes_are_the_wire_type_with_their_value_spliced() {
        let value = stored_value();
        let put = stored_meta(false);
        let error = WatchError {
            code: ErrorCode::ConversionFailed,
            message: "cannot convert \"it\"".into(),
        };
        let cases = [
            (
                meta_view_at(&put, Some(2)),
                ChangeKind::Put,
                value.as_str(),
                None,
            ),
            (meta_view(&put), ChangeKind::Put, value.as_str(), None),
            (
                meta_view(&stored_meta(true)),
                ChangeKind::Delete,
                "null",
                None,
            ),
            (meta_view(&put), ChangeKind::Put, "null", Some(&error)),
        ];
        let (mut batch, end) = split_list(
            &ChangeBatch {
                revision: 7,
                events: Vec::new(),
            },
            "events",
            0,
        );
        let mut events = Vec::new();
        for (i, (meta, kind, value, error)) in cases.into_iter().enumerate() {
            let mut out = Vec::new();
            change_json(&mut out, &meta, kind, value, error);
            let change = Change {
                kind,
                meta,
                value: serde_json::from_str(value).unwrap(),
                error: error.cloned(),
            };
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                serde_json::to_string(&change).unwrap()
            );
            if i > 0 {
                batch.push(b',');
            }
            batch.extend_from_slice(&out);
            events.push(change);
        }
        batch.extend_from_slice(&end);
        let batch_json = String::from_utf8(batch).unwrap();
        let wire = ChangeBatch {
            revision: 7,
            events,
        };
        assert_eq!(batch_json, serde_json::to_string(&wire).unwrap());

        let (mut poll, end) = split_list(
            &WatchPoll {
                changes: Vec::new(),
                revision: 9,
                next_from_revision: 10,
            },
            "changes",
            0,
        );
        poll.extend_from_slice(batch_json.as_bytes());
        poll.extend_from_slice(&end);
        let wire = WatchPoll {
            changes: vec![wire],
            revision: 9,
            next_from_revision: 10,
        };
        assert_eq!(
            String::from_utf8(poll).unwrap(),
            serde_json::to_string(&wire).unwrap()
        );
    }
}
