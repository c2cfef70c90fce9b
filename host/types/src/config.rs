//! `/v1/configs`: configs, their metadata, pages, history and rollback.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// `?consistency=` of reads.
#[derive(Serialize, Deserialize, Default, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// After a read index round with the leader: sees every acknowledged write (the default).
    #[default]
    Linearizable,
    /// From the answering node's local state, which may be behind (the response then carries
    /// `X-Scarab-Consistency: stale`).
    Stale,
}

impl Consistency {
    /// The text of the query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Stale => "stale",
        }
    }
}

/// A config's metadata as the API shows it (the server's `MetaView`), in every config
/// response: a read, a write's answer, a list or history item, a watch change, a transaction
/// result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigMeta {
    pub key: String,
    pub schema: String,
    /// The schema version of the value as shown (after a conversion: the version asked for).
    pub schema_version: u32,
    /// The global revision of the key's last change.
    pub revision: u64,
    /// 1 on create, +1 per update.
    pub key_version: u64,
    /// RFC 3339 with milliseconds.
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// The digest of the plugin that validated the value (`sha256:…`). Sent as `null` when
    /// the schema version has no plugin.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub plugin_digest: Option<String>,
    /// Set on a read at another version (`?schema_version=N`): the version it is stored at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub converted_from: Option<u32>,
}

impl ConfigMeta {
    /// Writes the fields into a map being serialised, so that responses made of the metadata
    /// and a few more fields are one flat object (without `#[serde(flatten)]`, which the
    /// server's `arbitrary_precision` numbers do not survive).
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("key", &self.key)?;
        map.serialize_entry("schema", &self.schema)?;
        map.serialize_entry("schema_version", &self.schema_version)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("key_version", &self.key_version)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.serialize_entry("created_by", &self.created_by)?;
        map.serialize_entry("updated_at", &self.updated_at)?;
        map.serialize_entry("updated_by", &self.updated_by)?;
        map.serialize_entry("plugin_digest", &self.plugin_digest)?;
        if let Some(from) = &self.converted_from {
            map.serialize_entry("converted_from", from)?;
        }
        Ok(())
    }

    /// The metadata in `map`, whose other fields the caller has taken out (or that are
    /// ignored).
    fn from_map(map: Map<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(Value::Object(map))
    }
}

/// Takes `field` out of `map` and decodes it; absent is `None`.
pub(crate) fn take<T: serde::de::DeserializeOwned>(
    map: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<T>, serde_json::Error> {
    map.remove(field)
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| serde::de::Error::custom(format_args!("field `{field}`: {e}")))
}

pub(crate) fn required<T>(v: Option<T>, field: &'static str) -> Result<T, serde_json::Error> {
    v.ok_or_else(|| serde::de::Error::missing_field(field))
}

/// A config: its metadata and its value (`GET /v1/configs/{key}`, list items), the value
/// decoded as `T`: a [`Value`] by default ([`ConfigEntry`]), or a service's own type
/// (`Entry<MyConfig>`), decoded straight from the response without an intermediate `Value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<T = Value> {
    pub meta: ConfigMeta,
    /// The document (as a [`Value`]: numbers as written).
    pub value: T,
}

/// A config with its value as JSON.
pub type ConfigEntry = Entry<Value>;

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entry<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor(std::marker::PhantomData))
    }
}

/// Reads the metadata fields and `value` in one pass: no intermediate map, and the value is
/// decoded by `T` itself.
struct EntryVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for EntryVisitor<T> {
    type Value = Entry<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a config: its metadata and its value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Entry<T>, A::Error> {
        use serde::de::Error as _;
        let mut key = None;
        let mut schema = None;
        let mut schema_version = None;
        let mut revision = None;
        let mut key_version = None;
        let mut created_at = None;
        let mut created_by = None;
        let mut updated_at = None;
        let mut updated_by = None;
        let mut plugin_digest = None;
        let mut converted_from = None;
        let mut value = None;
        while let Some(field) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*field {
                "key" => key = Some(map.next_value()?),
                "schema" => schema = Some(map.next_value()?),
                "schema_version" => schema_version = Some(map.next_value()?),
                "revision" => revision = Some(map.next_value()?),
                "key_version" => key_version = Some(map.next_value()?),
                "created_at" => created_at = Some(map.next_value()?),
                "created_by" => created_by = Some(map.next_value()?),
                "updated_at" => updated_at = Some(map.next_value()?),
                "updated_by" => updated_by = Some(map.next_value()?),
                "plugin_digest" => plugin_digest = map.next_value()?,
                "converted_from" => converted_from = map.next_value()?,
                "value" => value = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = A::Error::missing_field;
        Ok(Entry {
            meta: ConfigMeta {
                key: key.ok_or_else(|| missing("key"))?,
                schema: schema.ok_or_else(|| missing("schema"))?,
                schema_version: schema_version.ok_or_else(|| missing("schema_version"))?,
                revision: revision.ok_or_else(|| missing("revision"))?,
                key_version: key_version.ok_or_else(|| missing("key_version"))?,
                created_at: created_at.ok_or_else(|| missing("created_at"))?,
                created_by: created_by.ok_or_else(|| missing("created_by"))?,
                updated_at: updated_at.ok_or_else(|| missing("updated_at"))?,
                updated_by: updated_by.ok_or_else(|| missing("updated_by"))?,
                plugin_digest,
                converted_from,
            },
            value: value.ok_or_else(|| missing("value"))?,
        })
    }
}

impl<T: Serialize> Serialize for Entry<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.meta.serialize_fields(&mut map)?;
        map.serialize_entry("value", &self.value)?;
        map.end()
    }
}

/// `ConfigEntry`: the fields of [`ConfigMeta`] and `value`, in one flat object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Entry<Value> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, any_value};
        Flat::of::<ConfigMeta>(
            "A config: its metadata (the fields of `ConfigMeta`) and its value, in one object \
             (`GET /v1/configs/{key}`, list items).",
        )
        .property(
            "value",
            any_value("The document: any JSON value (numbers as written)."),
            true,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Entry<Value> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ConfigEntry")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <ConfigMeta as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The body of `PUT /v1/configs/{key}`: the value as a [`Value`] by default, or any type that
/// serialises to the document (a service's own config struct, or a `&RawValue` encoded once).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutConfig<T = Value> {
    pub schema: String,
    pub schema_version: u32,
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub value: T,
}

impl<T> PutConfig<T> {
    pub fn new(schema: impl Into<String>, schema_version: u32, value: T) -> Self {
        Self {
            schema: schema.into(),
            schema_version,
            value,
        }
    }
}

/// The answer to `DELETE /v1/configs/{key}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    pub key: String,
    /// The revision of the delete (its tombstone).
    pub revision: u64,
    pub deleted_at: String,
    pub deleted_by: String,
}

/// `GET /v1/configs?prefix=…`: a page of configs in key order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigPage {
    pub items: Vec<ConfigEntry>,
    /// The cursor of the next page (`?after=`), or `None` on the last page.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub next: Option<String>,
    /// The revision the page was read at (this node's applied revision).
    pub revision: u64,
}

/// One revision of a key in its history: a write (`deleted: false`, the value) or a delete
/// (`deleted: true`, `value: null`).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "Map<String, Value>")]
pub struct HistoryEntry {
    pub meta: ConfigMeta,
    /// Sent (as `true`) only for a delete.
    pub deleted: bool,
    pub value: Value,
}

impl TryFrom<Map<String, Value>> for HistoryEntry {
    type Error = serde_json::Error;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        let deleted = take::<bool>(&mut map, "deleted")?.unwrap_or(false);
        let value = required(map.remove("value"), "value")?;
        Ok(Self {
            meta: ConfigMeta::from_map(map)?,
            deleted,
            value,
        })
    }
}

impl Serialize for HistoryEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.meta.serialize_fields(&mut map)?;
        if self.deleted {
            map.serialize_entry("deleted", &true)?;
        }
        map.serialize_entry("value", &self.value)?;
        map.end()
    }
}

/// The fields of [`ConfigMeta`], `deleted` (only `true`, for a delete) and `value`, in one
/// flat object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for HistoryEntry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, any_value, described};
        Flat::of::<ConfigMeta>(
            "One revision of a key in its history: its metadata (the fields of `ConfigMeta`) \
             and its value, in one object. A write has no `deleted` and its value; a delete has \
             `deleted: true` and `value: null`.",
        )
        .property(
            "deleted",
            described(
                <bool as utoipa::PartialSchema>::schema(),
                "Sent (as `true`) only for a delete.",
            ),
            false,
        )
        .property(
            "value",
            any_value("The value written at this revision (any JSON value); `null` for a delete."),
            true,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for HistoryEntry {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("HistoryEntry")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <ConfigMeta as utoipa::ToSchema>::schemas(schemas);
    }
}

/// `GET /v1/configs/{key}/history`: a page of a key's revisions, newest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    pub items: Vec<HistoryEntry>,
    /// The cursor of the next (older) page (`?before=`), or `None` on the last page.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub next_before: Option<u64>,
    /// Revisions up to this one were dropped by the retention, if any were.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub compacted_through: Option<u64>,
}

/// The body of `POST /v1/configs/{key}/rollback`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision whose value comes back.
    pub revision: u64,
}

/// The answer to a rollback: the new revision's metadata and the revision restored.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(try_from = "Map<String, Value>")]
pub struct RolledBack {
    pub meta: ConfigMeta,
    pub rolled_back_to: u64,
}

impl TryFrom<Map<String, Value>> for RolledBack {
    type Error = serde_json::Error;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        let rolled_back_to = required(take(&mut map, "rolled_back_to")?, "rolled_back_to")?;
        Ok(Self {
            meta: ConfigMeta::from_map(map)?,
            rolled_back_to,
        })
    }
}

impl Serialize for RolledBack {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.meta.serialize_fields(&mut map)?;
        map.serialize_entry("rolled_back_to", &self.rolled_back_to)?;
        map.end()
    }
}

/// The fields of [`ConfigMeta`] and `rolled_back_to`, in one flat object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RolledBack {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, described};
        Flat::of::<ConfigMeta>(
            "The answer to a rollback: the new revision's metadata (the fields of \
             `ConfigMeta`) and the revision restored, in one object.",
        )
        .property(
            "rolled_back_to",
            described(
                <u64 as utoipa::PartialSchema>::schema(),
                "The revision whose value was restored.",
            ),
            true,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RolledBack {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("RolledBack")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <ConfigMeta as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Key rules: at most this many bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Key rules: at most this many `/`-separated segments.
pub const MAX_KEY_SEGMENTS: usize = 32;

/// Why a key breaks the key rules (the message of the server's 400 `invalid_key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKey {
    #[error("the key is empty")]
    Empty,
    #[error("the key is {0} bytes long; at most {MAX_KEY_BYTES} are allowed")]
    TooLong(usize),
    #[error("the last key segment {0:?} is reserved (`/v1/configs/<key>/{0}` is a sub-resource)")]
    Reserved(String),
    #[error("the key has {0} segments; at most {MAX_KEY_SEGMENTS} are allowed")]
    TooManySegments(usize),
    #[error("the key has an empty segment (leading, trailing or double '/')")]
    EmptySegment,
    #[error("the key segment {0:?} is not allowed")]
    DotSegment(String),
    #[error("the key segment {segment:?} contains {character:?}; allowed are A-Z a-z 0-9 . _ -")]
    Character { segment: String, character: char },
}

/// A key is 1 to 32 segments of `[A-Za-z0-9._-]+` joined by `/`, at most 512 bytes; no
/// segment is `.` or `..`, and the last segment of a key of several is not `history` or
/// `rollback` (sub-resources). The server answers 400 `invalid_key` with the error's message.
pub fn validate_key(key: &str) -> Result<(), InvalidKey> {
    if key.is_empty() {
        return Err(InvalidKey::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(InvalidKey::TooLong(key.len()));
    }
    let segments: Vec<&str> = key.split('/').collect();
    if let Some(last @ ("history" | "rollback")) = segments.last().copied()
        && segments.len() > 1
    {
        return Err(InvalidKey::Reserved(last.to_string()));
    }
    if segments.len() > MAX_KEY_SEGMENTS {
        return Err(InvalidKey::TooManySegments(segments.len()));
    }
    for s in segments {
        if s.is_empty() {
            return Err(InvalidKey::EmptySegment);
        }
        if s == "." || s == ".." {
            return Err(InvalidKey::DotSegment(s.to_string()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(InvalidKey::Character {
                segment: s.to_string(),
                character: c,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#""key":"stores/orders","schema":"store","schema_version":1,"revision":2,"key_version":1,"created_at":"2026-11-26T05:19:08.555Z","created_by":"alice","updated_at":"2026-11-26T05:19:08.555Z","updated_by":"alice","plugin_digest":"sha256:7d6c""#;

    #[test]
    fn an_entry_round_trips_as_the_server_writes_it() {
        // Numbers as written: the server keeps them (`arbitrary_precision`, enabled for these
        // tests as in the server's build).
        let text = format!(
            r#"{{{META},"value":{{"timeout_ms":5000,"big":18446744073709551617,"e":1e2}}}}"#
        );
        let entry: ConfigEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(entry.meta.key, "stores/orders");
        assert_eq!(entry.meta.revision, 2);
        assert_eq!(entry.meta.plugin_digest.as_deref(), Some("sha256:7d6c"));
        assert_eq!(entry.meta.converted_from, None);
        // As exact as a `Value` (serde_json writes `1e2` as `1e+2`).
        let as_value = serde_json::from_str::<Value>(&text).unwrap().to_string();
        assert!(as_value.contains("18446744073709551617"), "{as_value}");
        assert_eq!(serde_json::to_string(&entry).unwrap(), as_value);
    }

    #[test]
    fn the_metadata_alone_is_a_write_answer() {
        let text = format!("{{{META}}}");
        let meta: ConfigMeta = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&meta).unwrap(), text);
        // serialize_fields writes the same fields as the derived Serialize.
        let entry = ConfigEntry {
            meta: meta.clone(),
            value: Value::Null,
        };
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            format!("{{{META},\"value\":null}}")
        );
        let converted = ConfigMeta {
            converted_from: Some(1),
            schema_version: 2,
            plugin_digest: None,
            ..meta
        };
        let text = serde_json::to_string(&converted).unwrap();
        assert!(
            text.contains(r#""plugin_digest":null,"converted_from":1"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ConfigMeta>(&text).unwrap(),
            converted
        );
    }

    #[test]
    fn a_missing_value_is_an_error() {
        let text = format!("{{{META}}}");
        let e = serde_json::from_str::<ConfigEntry>(&text).unwrap_err();
        assert!(e.to_string().contains("value"), "{e}");
    }

    #[test]
    fn history_items_mark_deletes() {
        let text = format!(
            r#"{{"items":[{{{META},"deleted":true,"value":null}},{{{META},"value":{{"a":1}}}}],"next_before":2,"compacted_through":null}}"#
        );
        let page: HistoryPage = serde_json::from_str(&text).unwrap();
        assert!(page.items[0].deleted);
        assert!(!page.items[1].deleted);
        assert_eq!(page.next_before, Some(2));
        assert_eq!(serde_json::to_string(&page).unwrap(), text);
    }

    #[test]
    fn a_rollback_answer_has_its_target() {
        let text = format!(r#"{{{META},"rolled_back_to":12}}"#);
        let r: RolledBack = serde_json::from_str(&text).unwrap();
        assert_eq!(r.rolled_back_to, 12);
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }

    #[test]
    fn a_page_and_a_delete() {
        let text =
            format!(r#"{{"items":[{{{META},"value":true}}],"next":"stores/x","revision":9}}"#);
        let page: ConfigPage = serde_json::from_str(&text).unwrap();
        assert_eq!(page.next.as_deref(), Some("stores/x"));
        assert_eq!(serde_json::to_string(&page).unwrap(), text);
        let d = r#"{"key":"a","revision":3,"deleted_at":"t","deleted_by":"bob"}"#;
        let del: Deleted = serde_json::from_str(d).unwrap();
        assert_eq!(serde_json::to_string(&del).unwrap(), d);
    }

    #[test]
    fn request_bodies() {
        let put = PutConfig::new("store", 1, serde_json::json!({"a": 1}));
        let text = serde_json::to_string(&put).unwrap();
        assert_eq!(
            text,
            r#"{"schema":"store","schema_version":1,"value":{"a":1}}"#
        );
        assert!(
            serde_json::from_str::<PutConfig>(
                r#"{"schema":"s","schema_version":1,"value":1,"x":1}"#
            )
            .is_err()
        );
        let big = r#"{"schema":"s","schema_version":1,"value":18446744073709551617}"#;
        let put: PutConfig = serde_json::from_str(big).unwrap();
        assert_eq!(serde_json::to_string(&put).unwrap(), big);
        assert_eq!(
            serde_json::to_string(&RollbackRequest { revision: 4 }).unwrap(),
            r#"{"revision":4}"#
        );
        assert_eq!(Consistency::Stale.as_str(), "stale");
    }

    #[test]
    fn keys_follow_the_segment_rules() {
        assert!(validate_key("stores/orders").is_ok());
        assert!(validate_key("a.b_c-d/E9").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("/a").is_err());
        assert!(validate_key("a/").is_err());
        assert!(validate_key("a//b").is_err());
        assert!(validate_key("a/../b").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key(&vec!["a"; 32].join("/")).is_ok());
        assert!(validate_key(&vec!["a"; 33].join("/")).is_err());
        assert!(validate_key(&"a".repeat(512)).is_ok());
        assert!(validate_key(&"a".repeat(513)).is_err());
        assert!(validate_key("stores/history").is_err());
        assert!(validate_key("stores/rollback").is_err());
        assert!(validate_key("history").is_ok());
        assert!(validate_key("history/a").is_ok());
    }
}
