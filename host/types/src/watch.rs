//! `GET /v1/watch`: the changes under a prefix, as Server-Sent Events or as a long poll.
//!
//! SSE messages:
//!
//! | `event:` | `id:` | `data:` |
//! | --- | --- | --- |
//! | [`EVENT_CHANGE`] | the revision | a [`ChangeBatch`]: every change of one revision |
//! | [`EVENT_PROGRESS`] | the revision through which everything was delivered | a [`WatchProgress`] |
//! | [`EVENT_ERROR`] | none | a [`WatchError`]; the stream ends (e.g. `revision_compacted`) |
//!
//! A client that reconnects sends `Last-Event-ID` (the last `id:` it saw): the server
//! resumes after that revision, on any node.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::{ConfigMeta, required, take};
use crate::error::ErrorCode;

/// `event:` of a revision's changes.
pub const EVENT_CHANGE: &str = "change";
/// `event:` of a progress note after a quiet interval (`?progress=`, default 10s).
pub const EVENT_PROGRESS: &str = "progress";
/// `event:` of the error that ends a stream.
pub const EVENT_ERROR: &str = "error";

/// What happened to a key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChangeKind {
    Put,
    Delete,
    /// A kind this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    ChangeKind as "ChangeKind",
    [Put, Delete],
    catch_all Unknown,
    "What happened to a key."
);

/// One key's change: its metadata after the change, and its value (`null` for a delete, or
/// when a conversion asked for with `schema_version` failed: then `error` says why).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "Map<String, Value>")]
pub struct Change {
    /// `"type"` on the wire.
    pub kind: ChangeKind,
    pub meta: ConfigMeta,
    pub value: Value,
    pub error: Option<WatchError>,
}

impl TryFrom<Map<String, Value>> for Change {
    type Error = serde_json::Error;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        let kind = required(take(&mut map, "type")?, "type")?;
        let value = required(map.remove("value"), "value")?;
        let error = take(&mut map, "error")?;
        Ok(Self {
            kind,
            meta: serde_json::from_value(Value::Object(map))?,
            value,
            error,
        })
    }
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.meta.serialize_fields(&mut map)?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry("value", &self.value)?;
        if let Some(e) = &self.error {
            map.serialize_entry("error", e)?;
        }
        map.end()
    }
}

/// The fields of [`ConfigMeta`], `type`, `value` and `error` (only when set), in one flat
/// object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Change {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, any_value, described, reference};
        Flat::of::<ConfigMeta>(
            "One key's change: its metadata after the change (the fields of `ConfigMeta`), \
             what happened, and its value, in one object. The value is `null` for a delete, or \
             when a conversion asked for with `schema_version` failed: then `error` says why.",
        )
        .property(
            "type",
            described(
                reference::<ChangeKind>().into(),
                "What happened to the key.",
            ),
            true,
        )
        .property(
            "value",
            any_value(
                "The value after the change (any JSON value); `null` for a delete or a failed \
                 conversion.",
            ),
            true,
        )
        .property(
            "error",
            described(
                reference::<WatchError>().into(),
                "Why the value could not be converted (sent only then).",
            ),
            false,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Change {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Change")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <ConfigMeta as utoipa::ToSchema>::schemas(schemas);
        crate::openapi::collect::<ChangeKind>(schemas);
        crate::openapi::collect::<WatchError>(schemas);
    }
}

/// `{"code", "message"}`: why a change's value could not be converted, or why a stream
/// ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchError {
    pub code: ErrorCode,
    pub message: String,
}

/// Every change of one revision (a transaction's changes come together), in key order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeBatch {
    pub revision: u64,
    pub events: Vec<Change>,
}

/// Everything up to `revision` was delivered (or did not match the watch).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchProgress {
    pub revision: u64,
}

/// The answer to a long poll (`GET /v1/watch?wait=30s`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchPoll {
    pub changes: Vec<ChangeBatch>,
    /// Everything through this revision was delivered (or did not match).
    pub revision: u64,
    /// Ask again with `from_revision` = this.
    pub next_from_revision: u64,
}

/// An SSE message of a watch, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// One revision's changes.
    Change(ChangeBatch),
    /// Nothing happened up to this revision.
    Progress(WatchProgress),
}

/// The `data:` of a watch's SSE message: either of [`ChangeBatch`] (`event: change`) and
/// [`WatchProgress`] (`event: progress`). `anyOf`, not `oneOf`: a change batch has a
/// `revision` too, so it matches both.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for WatchEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::reference;
        crate::openapi::any_of(
            "The `data:` of an SSE message of a watch, by its `event:`: `change`, a \
             `ChangeBatch` (`id:` is its revision); `progress`, a `WatchProgress` (`id:` is \
             its revision). The message that ends a stream is `event: error` with a \
             `WatchError` (no `id:`).",
            [reference::<ChangeBatch>(), reference::<WatchProgress>()],
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for WatchEvent {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("WatchEvent")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        crate::openapi::collect::<ChangeBatch>(schemas);
        crate::openapi::collect::<WatchProgress>(schemas);
    }
}

impl WatchEvent {
    /// The revision: the SSE `id:`, which `Last-Event-ID` sends back to resume after it.
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Change(c) => c.revision,
            WatchEvent::Progress(p) => p.revision,
        }
    }

    /// Its SSE `event:` name.
    pub fn event_name(&self) -> &'static str {
        match self {
            WatchEvent::Change(_) => EVENT_CHANGE,
            WatchEvent::Progress(_) => EVENT_PROGRESS,
        }
    }

    /// Decodes a message's `data:` by its `event:` name: `None` for a name that is not a
    /// change or progress (the error event is decoded as a [`WatchError`]).
    pub fn decode(event: &str, data: &str) -> Result<Option<WatchEvent>, serde_json::Error> {
        Ok(match event {
            EVENT_CHANGE => Some(WatchEvent::Change(serde_json::from_str(data)?)),
            EVENT_PROGRESS => Some(WatchEvent::Progress(serde_json::from_str(data)?)),
            _ => None,
        })
    }

    /// The `data:` of the message.
    pub fn data(&self) -> String {
        match self {
            WatchEvent::Change(c) => serde_json::to_string(c),
            WatchEvent::Progress(p) => serde_json::to_string(p),
        }
        .expect("watch events serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#""key":"stores/orders","schema":"store","schema_version":2,"revision":42,"key_version":3,"created_at":"t","created_by":"a","updated_at":"t","updated_by":"a","plugin_digest":null,"converted_from":1"#;

    #[test]
    fn a_change_message() {
        let data = format!(
            r#"{{"revision":42,"events":[{{{META},"type":"put","value":{{"n":1.50}}}},{{{META},"type":"delete","value":null}},{{{META},"type":"put","value":null,"error":{{"code":"conversion_failed","message":"m"}}}}]}}"#
        );
        let Some(WatchEvent::Change(batch)) = WatchEvent::decode("change", &data).unwrap() else {
            panic!("not a change")
        };
        assert_eq!(batch.revision, 42);
        assert_eq!(batch.events[0].kind, ChangeKind::Put);
        assert_eq!(batch.events[0].meta.converted_from, Some(1));
        assert_eq!(batch.events[1].kind, ChangeKind::Delete);
        assert_eq!(
            batch.events[2].error.as_ref().unwrap().code,
            ErrorCode::ConversionFailed
        );
        let event = WatchEvent::Change(batch);
        assert_eq!(event.revision(), 42);
        assert_eq!(event.data(), data);
    }

    #[test]
    fn progress_errors_and_polls() {
        let p = WatchEvent::decode("progress", r#"{"revision":57}"#)
            .unwrap()
            .unwrap();
        assert_eq!(p, WatchEvent::Progress(WatchProgress { revision: 57 }));
        assert_eq!(p.event_name(), "progress");
        assert_eq!(WatchEvent::decode("something", "{}").unwrap(), None);
        let e: WatchError =
            serde_json::from_str(r#"{"code":"revision_compacted","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::RevisionCompacted);
        let poll =
            r#"{"changes":[{"revision":42,"events":[]}],"revision":57,"next_from_revision":58}"#;
        let w: WatchPoll = serde_json::from_str(poll).unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), poll);
    }
}
