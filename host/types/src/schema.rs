//! `/v1/schemas`: schema versions, their registration and compatibility reports, policies,
//! validation.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::{required, take};
use crate::error::Violation;

/// A registered schema version (the server's `VersionView`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaVersion {
    pub name: String,
    pub version: u32,
    /// `sha256:…` of the plugin, `null` without one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub plugin_digest: Option<String>,
    /// The revision of the registration.
    pub revision: u64,
    pub registered_at: String,
    pub registered_by: String,
    /// What the plugin declared it implements (absent without a plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub plugin_contract: Option<PluginContract>,
    /// The registered schema versions its `$ref`s resolved to, fixed at registration
    /// (absent when it refers to none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// The JSON Schema: only in `GET /v1/schemas/{name}/versions/{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub schema: Option<Value>,
}

/// A document a registered schema refers to: the URI its `$ref` named (without fragment:
/// `scarab:schemas/common/versions/1`, or the `$id` the target was registered with) and the
/// registered version it resolved to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaReference {
    pub uri: String,
    pub name: String,
    pub version: u32,
}

/// The URI naming version `version` of registered schema `name` in a `$ref`.
pub fn schema_uri(name: &str, version: u32) -> String {
    format!("scarab:schemas/{name}/versions/{version}")
}

/// The schema name and version a `scarab:schemas/{name}/versions/{version}` URI names (without
/// fragment); `None` for any other URI.
pub fn parse_schema_uri(uri: &str) -> Option<(&str, u32)> {
    let rest = uri.strip_prefix("scarab:schemas/")?;
    let (name, version) = rest.split_once("/versions/")?;
    let version = version.parse().ok().filter(|v| *v > 0)?;
    validate_schema_name(name).ok()?;
    Some((name, version))
}

impl SchemaVersion {
    /// Writes the fields into a map being serialised (see
    /// [`crate::ConfigMeta::serialize_fields`]).
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("version", &self.version)?;
        map.serialize_entry("plugin_digest", &self.plugin_digest)?;
        map.serialize_entry("revision", &self.revision)?;
        map.serialize_entry("registered_at", &self.registered_at)?;
        map.serialize_entry("registered_by", &self.registered_by)?;
        if let Some(c) = &self.plugin_contract {
            map.serialize_entry("plugin_contract", c)?;
        }
        if !self.references.is_empty() {
            map.serialize_entry("references", &self.references)?;
        }
        if let Some(s) = &self.schema {
            map.serialize_entry("schema", s)?;
        }
        Ok(())
    }
}

/// The answer to `PUT /v1/schemas/{name}/versions/{version}` (201 created, 200 when the
/// identical content was registered already): the version and its compatibility report.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "Map<String, Value>")]
pub struct Registered {
    pub version: SchemaVersion,
    pub compatibility: CompatReport,
}

impl TryFrom<Map<String, Value>> for Registered {
    type Error = serde_json::Error;

    fn try_from(mut map: Map<String, Value>) -> Result<Self, Self::Error> {
        let compatibility = required(take(&mut map, "compatibility")?, "compatibility")?;
        Ok(Self {
            version: serde_json::from_value(Value::Object(map))?,
            compatibility,
        })
    }
}

impl Serialize for Registered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.version.serialize_fields(&mut map)?;
        map.serialize_entry("compatibility", &self.compatibility)?;
        map.end()
    }
}

/// The fields of [`SchemaVersion`] and `compatibility`, in one flat object.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Registered {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::{Flat, described, reference};
        Flat::of::<SchemaVersion>(
            "The answer to `PUT /v1/schemas/{name}/versions/{version}` (201 created, 200 when \
             the identical content was registered already): the version (the fields of \
             `SchemaVersion`) and its compatibility report, in one object.",
        )
        .property(
            "compatibility",
            described(
                reference::<CompatReport>().into(),
                "What registering the version does to the configs stored at the previous one.",
            ),
            true,
        )
        .build()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Registered {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Registered")
    }

    fn schemas(schemas: &mut crate::openapi::Schemas) {
        <SchemaVersion as utoipa::ToSchema>::schemas(schemas);
        crate::openapi::collect::<CompatReport>(schemas);
    }
}

/// What a registered plugin implements, as it declared it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginContract {
    /// The WIT package version it was built against (`0.1.0`, `0.2.0`).
    pub wit: String,
    /// Its migrator, if it has one (`null` without).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub migration: Option<MigrationSpec>,
}

/// A migrator's declaration: it upgrades from `from_version` (the previous version), and
/// downgrades back if `downgrade`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationSpec {
    pub from_version: u32,
    pub downgrade: bool,
}

/// What registering a version does to the configs stored at the previous one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompatReport {
    pub name: String,
    pub version: u32,
    /// The version whose configs were checked (`None`: nothing to check).
    #[cfg_attr(feature = "openapi", schema(required))]
    pub from_version: Option<u32>,
    pub checked: u64,
    pub compatible: bool,
    /// How many failed; `failures` lists at most 100 of them.
    pub failed: u64,
    pub failures: Vec<CompatFailure>,
}

/// Which step of the compatibility check failed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompatStep {
    Upgrade,
    Validate,
    RoundTrip,
    /// A step this version does not know (never sent by a server of this version).
    #[serde(other)]
    Unknown,
}

#[cfg(feature = "openapi")]
crate::openapi::open_enum_schema!(
    CompatStep as "CompatStep",
    [Upgrade, Validate, RoundTrip],
    catch_all Unknown,
    "Which step of the compatibility check failed."
);

/// A stored config that would not survive the new version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompatFailure {
    pub key: String,
    pub revision: u64,
    pub step: CompatStep,
    pub reason: String,
    /// Sent only when not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// The answer to `POST /v1/schemas/{name}/versions/{version}/compatibility` (a dry run of a
/// registration).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompatibilityCheck {
    /// `null` without a plugin.
    #[cfg_attr(feature = "openapi", schema(required))]
    pub plugin_contract: Option<PluginContract>,
    pub compatibility: CompatReport,
}

/// `GET /v1/schemas`: every schema name and its versions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaList {
    pub schemas: Vec<SchemaSummary>,
}

/// A schema name and its registered versions, ascending (the server's `NameSummary`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaSummary {
    pub name: String,
    pub versions: Vec<u32>,
}

/// `GET /v1/schemas/{name}`: every version's registration (without the JSON Schemas).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SchemaVersions {
    pub name: String,
    pub versions: Vec<SchemaVersion>,
}

/// The answer to `POST /v1/schemas/{name}/versions/{version}/validate`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidateResult {
    pub valid: bool,
    pub violations: Vec<Violation>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required))]
    pub plugin_digest: Option<String>,
}

/// Per-schema rules: the body of `PUT /v1/schemas/{name}/policy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SchemaPolicy {
    /// Which versions a config may be written at.
    pub writes: WritePolicy,
}

/// Which versions of a schema accept writes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WritePolicy {
    /// Any registered version (the default).
    #[default]
    Any,
    /// Only the highest registered version.
    Latest,
}

/// `GET /v1/schemas/{name}/policy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyView {
    pub name: String,
    pub policy: SchemaPolicy,
}

/// The answer to `PUT /v1/schemas/{name}/policy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicySet {
    pub name: String,
    pub policy: SchemaPolicy,
    /// The revision of the change.
    pub revision: u64,
}

/// A schema name that breaks the name rules (the message of the server's 400
/// `invalid_schema_name`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema name {0:?} must be 1 to 64 characters of a-z 0-9 -, starting with a letter")]
pub struct InvalidSchemaName(pub String);

/// A schema name is 1 to 64 characters of `[a-z0-9-]`, starting with a letter. The server
/// answers 400 `invalid_schema_name` otherwise.
pub fn validate_schema_name(name: &str) -> Result<(), InvalidSchemaName> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(InvalidSchemaName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = r#""name":"store","version":2,"plugin_digest":"sha256:7d6c","revision":5,"registered_at":"2026-11-26T05:19:08.555Z","registered_by":"anonymous","plugin_contract":{"wit":"0.2.0","migration":{"from_version":1,"downgrade":true}}"#;
    const REPORT: &str = r#"{"name":"store","version":2,"from_version":1,"checked":3,"compatible":false,"failed":1,"failures":[{"key":"stores/a","revision":4,"step":"round_trip","reason":"differs"}]}"#;

    #[test]
    fn a_registration_is_the_version_and_its_report() {
        let text = format!(r#"{{{VERSION},"compatibility":{REPORT}}}"#);
        let r: Registered = serde_json::from_str(&text).unwrap();
        assert_eq!(r.version.version, 2);
        assert_eq!(
            r.version.plugin_contract.as_ref().unwrap().migration,
            Some(MigrationSpec {
                from_version: 1,
                downgrade: true
            })
        );
        assert_eq!(r.compatibility.failures[0].step, CompatStep::RoundTrip);
        assert_eq!(serde_json::to_string(&r).unwrap(), text);
    }

    #[test]
    fn a_version_with_its_schema_and_one_without_a_plugin() {
        let text = format!(r#"{{{VERSION},"schema":{{"type":"object"}}}}"#);
        let v: SchemaVersion = serde_json::from_str(&text).unwrap();
        assert!(v.schema.is_some());
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        let bare = r#"{"name":"s","version":1,"plugin_digest":null,"revision":1,"registered_at":"t","registered_by":"a"}"#;
        let v: SchemaVersion = serde_json::from_str(bare).unwrap();
        assert_eq!(v.plugin_contract, None);
        assert_eq!(serde_json::to_string(&v).unwrap(), bare);
        let list = format!(r#"{{"name":"store","versions":[{bare}]}}"#);
        let l: SchemaVersions = serde_json::from_str(&list).unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), list);
    }

    #[test]
    fn reports_lists_policies_and_verdicts() {
        let check = format!(r#"{{"plugin_contract":null,"compatibility":{REPORT}}}"#);
        let c: CompatibilityCheck = serde_json::from_str(&check).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), check);
        let list = r#"{"schemas":[{"name":"store","versions":[1,2]}]}"#;
        let l: SchemaList = serde_json::from_str(list).unwrap();
        assert_eq!(serde_json::to_string(&l).unwrap(), list);
        let set = r#"{"name":"store","policy":{"writes":"latest"},"revision":7}"#;
        let p: PolicySet = serde_json::from_str(set).unwrap();
        assert_eq!(p.policy.writes, WritePolicy::Latest);
        assert_eq!(serde_json::to_string(&p).unwrap(), set);
        assert!(serde_json::from_str::<SchemaPolicy>(r#"{"writes":"some"}"#).is_err());
        let verdict = r#"{"valid":false,"violations":[{"path":"","message":"m","code":null,"source":"plugin"}],"plugin_digest":null}"#;
        let v: ValidateResult = serde_json::from_str(verdict).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), verdict);
    }

    #[test]
    fn schema_names() {
        assert!(validate_schema_name("store-v2").is_ok());
        assert!(validate_schema_name("2store").is_err());
        assert!(validate_schema_name("Store").is_err());
        assert!(validate_schema_name("").is_err());
        assert!(validate_schema_name(&"a".repeat(65)).is_err());
    }
}
