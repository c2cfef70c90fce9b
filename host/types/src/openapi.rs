//! Helpers of the hand-written OpenAPI schemas (feature `openapi`): for the types whose wire
//! form is not what `#[derive(ToSchema)]` would describe: the flat objects made of a config's
//! (or schema version's) fields and a few more, the string codes with their own `Serialize`,
//! and the enums whose catch-all variant (`Unknown`, `Other`) is never sent.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOf, Object, ObjectBuilder, Ref, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// What [`ToSchema::schemas`] collects: the named schemas a schema refers to.
pub(crate) type Schemas = Vec<(String, RefOr<Schema>)>;

/// Said of every enum the server may extend.
pub(crate) const OPEN_ENUM_NOTE: &str =
    "A newer server may send a value not listed here: clients must accept it.";

/// Rustdoc links (`` [`Foo`] ``, `` [`crate::foo`] ``) as plain code (`` `Foo` ``, `` `foo` ``),
/// for the documentation a description is made of.
pub(crate) fn unlink(doc: &str) -> String {
    doc.replace("[`crate::", "`")
        .replace("[`", "`")
        .replace("`]", "`")
}

/// The schema of any JSON value (`{}` plus its description).
pub(crate) fn any_value(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(description))
        .into()
}

/// `schema` (an inline schema or a `$ref`) with `description`.
pub(crate) fn described(schema: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut o)) => {
            o.description = Some(description.to_string());
            RefOr::T(Schema::Object(o))
        }
        RefOr::Ref(mut r) => {
            r.description = description.to_string();
            RefOr::Ref(r)
        }
        other => other,
    }
}

/// A `$ref` to `T`'s named schema.
pub(crate) fn reference<T: ToSchema>() -> Ref {
    Ref::from_schema_name(T::name())
}

/// Collects `T`'s named schema and those it refers to (for [`ToSchema::schemas`] of a schema
/// that refers to `T`).
pub(crate) fn collect<T: ToSchema>(schemas: &mut Schemas) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// A string enum of `values` (their serde text, in order).
pub(crate) fn string_enum<T: serde::Serialize>(description: &str, values: &[T]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().map(wire_text)))
        .description(Some(description))
        .into()
}

/// What serde writes for a value that is a string on the wire.
pub(crate) fn wire_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a string on the wire: {other:?}"),
    }
}

/// `anyOf` of `$ref`s.
pub(crate) fn any_of(description: &str, refs: impl IntoIterator<Item = Ref>) -> RefOr<Schema> {
    let mut any_of = AnyOf::new();
    for r in refs {
        any_of.items.push(RefOr::Ref(r));
    }
    any_of.description = Some(description.to_string());
    RefOr::T(Schema::AnyOf(any_of))
}

/// A flat object: the properties (and required ones) of a derived struct `Base`, and more
/// (see [`crate::ConfigMeta::serialize_fields`]).
pub(crate) struct Flat(Object);

impl Flat {
    pub(crate) fn of<Base: PartialSchema>(description: &str) -> Self {
        match Base::schema() {
            RefOr::T(Schema::Object(mut o)) => {
                o.description = Some(description.to_string());
                Flat(o)
            }
            _ => unreachable!("the schema of a struct is an object"),
        }
    }

    /// Adds property `name`, required (always sent) or not (sent only at times).
    pub(crate) fn property(
        mut self,
        name: &str,
        schema: impl Into<RefOr<Schema>>,
        required: bool,
    ) -> Self {
        self.0.properties.insert(name.to_string(), schema.into());
        if required {
            self.0.required.push(name.to_string());
        }
        self
    }

    pub(crate) fn build(self) -> RefOr<Schema> {
        RefOr::T(Schema::Object(self.0))
    }
}

/// `PartialSchema` and `ToSchema` of an enum the server may extend, as a string of the known
/// variants' serde text: its catch-all variant (never sent by a server of this version) is
/// left out, and the description says that clients must accept other values.
///
/// The match on every variant makes a variant added to the enum a compile error until it is
/// listed here (as known or as the catch-all).
macro_rules! open_enum_schema {
    (
        $ty:ident as $name:literal,
        [$( $known:ident ),+ $(,)?],
        catch_all $unknown:ident,
        $doc:literal $(,)?
    ) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let _every_variant_is_listed = |v: $ty| match v {
                    $( $ty::$known )|+ | $ty::$unknown => (),
                };
                $crate::openapi::string_enum(
                    &format!("{}\n\n{}", $doc, $crate::openapi::OPEN_ENUM_NOTE),
                    &[$( $ty::$known ),+],
                )
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

pub(crate) use open_enum_schema;

#[cfg(test)]
mod tests {
    //! Every schema against what serde writes: a small validator of the keywords the schemas
    //! use (`$ref`, `type`, `enum`, `properties`, `required`, `additionalProperties`, `items`,
    //! `uniqueItems`, `oneOf`, `anyOf`, `minimum`), run over samples as the server sends them,
    //! decoded and encoded again by the types themselves.

    use std::collections::{BTreeMap, BTreeSet};

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};
    use utoipa::{PartialSchema, ToSchema};

    use super::{Schemas, collect};
    use crate::auth::{
        self, Action, CreateToken, CreatedToken, Grant, Permission, PutRole, PutUser, TokenInfo,
        User, WhoAmI,
    };
    use crate::*;

    /// Every type's named schema, and those they refer to, by name.
    fn components() -> BTreeMap<String, Value> {
        let mut schemas = Schemas::new();
        macro_rules! collect_all {
            ($($ty:ty),* $(,)?) => { $( collect::<$ty>(&mut schemas); )* };
        }
        collect_all!(
            AuditRecord,
            Provenance,
            AuditPage,
            Action,
            Permission,
            auth::Role,
            User,
            TokenInfo,
            PutUser,
            PutRole,
            CreateToken,
            CreatedToken,
            WhoAmI,
            ClusterView,
            MemberView,
            MemberRole,
            SelfInfo,
            JoinRequest,
            Consistency,
            ConfigMeta,
            ConfigEntry,
            PutConfig,
            Deleted,
            ConfigPage,
            HistoryEntry,
            HistoryPage,
            RollbackRequest,
            RolledBack,
            ErrorCode,
            ErrorBody,
            ErrorDetail,
            ViolationSource,
            Violation,
            ConditionFailedReport,
            FailedCondition,
            StartMigration,
            MigrationStatus,
            Migration,
            MigrationFailure,
            MigrationList,
            DryRun,
            Health,
            Ready,
            Role,
            Status,
            PluginStats,
            HistoryRetention,
            HistoryRetentionSet,
            AuditRetention,
            AuditRetentionSet,
            SchemaVersion,
            SchemaReference,
            Registered,
            PluginContract,
            MigrationSpec,
            CompatReport,
            CompatStep,
            CompatFailure,
            CompatibilityCheck,
            SchemaList,
            SchemaSummary,
            SchemaVersions,
            ValidateResult,
            SchemaPolicy,
            WritePolicy,
            PolicyView,
            PolicySet,
            TxnRequest,
            Condition,
            TxnOpKind,
            TxnOp,
            TxnResponse,
            TxnResult,
            ChangeKind,
            Change,
            WatchError,
            ChangeBatch,
            WatchProgress,
            WatchPoll,
            WatchEvent,
        );
        let mut out = BTreeMap::new();
        for (name, schema) in schemas {
            let schema = serde_json::to_value(&schema).unwrap();
            if let Some(previous) = out.insert(name.clone(), schema.clone()) {
                assert_eq!(previous, schema, "two different schemas named {name}");
            }
        }
        out
    }

    const KEYWORDS: &[&str] = &[
        "$ref",
        "description",
        "type",
        "format",
        "enum",
        "minimum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "uniqueItems",
        "oneOf",
        "anyOf",
    ];

    /// Why `value` (at JSON Pointer `at`) does not match `schema`: nothing if it does.
    fn errors(
        defs: &BTreeMap<String, Value>,
        schema: &Value,
        value: &Value,
        at: &str,
    ) -> Vec<String> {
        let s = schema.as_object().expect("a schema is an object");
        for keyword in s.keys() {
            assert!(
                KEYWORDS.contains(&keyword.as_str()),
                "{at}: keyword {keyword} not checked"
            );
        }
        let mut out = Vec::new();
        let mut nested = Vec::new();
        let mut fail = |why: String| out.push(format!("{at}: {why}"));
        if let Some(r) = s.get("$ref") {
            let name = r
                .as_str()
                .unwrap()
                .strip_prefix("#/components/schemas/")
                .unwrap();
            let target = defs
                .get(name)
                .unwrap_or_else(|| panic!("{at}: no schema {name}"));
            nested.extend(errors(defs, target, value, at));
        }
        let matching = |key: &str| {
            s.get(key).map(|items| {
                let items = items.as_array().unwrap();
                items
                    .iter()
                    .filter(|i| errors(defs, i, value, at).is_empty())
                    .count()
            })
        };
        if let Some(n) = matching("oneOf").filter(|n| *n != 1) {
            fail(format!("matches {n} schemas of oneOf"));
        }
        if matching("anyOf") == Some(0) {
            fail("matches no schema of anyOf".into());
        }
        if let Some(types) = s.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t],
                types => types
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect(),
            };
            let is = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "string" => value.is_string(),
                "integer" => value.is_u64() || value.is_i64(),
                "number" => value.is_number(),
                "array" => value.is_array(),
                "object" => value.is_object(),
                other => panic!("type {other}"),
            };
            if !types.iter().any(|t| is(t)) {
                fail(format!("{value} is not of type {types:?}"));
            }
        }
        if let Some(values) = s.get("enum")
            && !values.as_array().unwrap().contains(value)
        {
            fail(format!("{value} is not one of {values}"));
        }
        if let (Some(min), Some(n)) = (s.get("minimum"), value.as_f64())
            && n < min.as_f64().unwrap()
        {
            fail(format!("{value} is below {min}"));
        }
        if let Value::Object(object) = value {
            let properties = s.get("properties").and_then(Value::as_object);
            for required in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let required = required.as_str().unwrap();
                if !object.contains_key(required) {
                    fail(format!("{required} is missing"));
                }
            }
            for (key, v) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(p) => nested.extend(errors(defs, p, v, &format!("{at}/{key}"))),
                    None if s.get("additionalProperties") == Some(&json!(false)) => {
                        fail(format!("{key} is not a property"))
                    }
                    None => {}
                }
            }
        }
        if let Value::Array(items) = value {
            if let Some(schema) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    nested.extend(errors(defs, schema, v, &format!("{at}/{i}")));
                }
            }
            if s.get("uniqueItems") == Some(&json!(true)) {
                let set: BTreeSet<String> = items.iter().map(Value::to_string).collect();
                if set.len() != items.len() {
                    fail("items are not unique".into());
                }
            }
        }
        out.extend(nested);
        out
    }

    fn reference(name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Decodes `text` as a `T`, encodes it again, and checks that what serde wrote matches
    /// `T`'s schema; returns what it wrote.
    fn wire<T: ToSchema + Serialize + DeserializeOwned>(text: &str) -> Value {
        let value: T = serde_json::from_str(text).unwrap();
        let written = serde_json::to_value(&value).unwrap();
        let errors = errors(&components(), &reference(&T::name()), &written, "");
        assert!(errors.is_empty(), "{}: {errors:#?}\n{written}", T::name());
        written
    }

    /// The property names of `T`'s schema (resolving nothing: a flat object).
    fn properties<T: ToSchema>() -> BTreeSet<String> {
        let schema = &components()[&*T::name()];
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    /// A sample with every field that may be sent has exactly the schema's properties.
    fn every_property<T: ToSchema + Serialize + DeserializeOwned>(text: &str) -> Value {
        let written = wire::<T>(text);
        assert_eq!(keys(&written), properties::<T>(), "{}", T::name());
        written
    }

    const META: &str = r#""key":"stores/orders","schema":"store","schema_version":2,"revision":42,"key_version":3,"created_at":"2026-11-26T05:19:08.555Z","created_by":"alice","updated_at":"2026-11-26T05:19:08.555Z","updated_by":"alice","plugin_digest":null"#;
    const CONVERTED: &str = r#","converted_from":1"#;
    const VERSION: &str = r#""name":"store","version":2,"plugin_digest":"sha256:7d6c","revision":5,"registered_at":"t","registered_by":"anonymous""#;
    const REPORT: &str = r#"{"name":"store","version":2,"from_version":1,"checked":3,"compatible":false,"failed":1,"failures":[{"key":"stores/a","revision":4,"step":"round_trip","reason":"differs","violations":[{"path":"","message":"m","code":null,"source":"plugin"}]}]}"#;

    /// Every `$ref` in `v`.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    fn assert_no_dangling_refs(defs: &BTreeMap<String, Value>) {
        let mut all = Vec::new();
        defs.values().for_each(|v| refs(v, &mut all));
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(defs.contains_key(name), "dangling {r}");
        }
    }

    #[test]
    fn every_ref_resolves_and_no_two_schemas_share_a_name() {
        assert_no_dangling_refs(&components());
        // The two `Role`s.
        assert_eq!(Role::name(), "NodeRole");
        assert_eq!(auth::Role::name(), "Role");
    }

    /// As the server builds its document: `#[derive(OpenApi)]` collects the same schemas
    /// (generic ones named by their arguments), and every `$ref` resolves.
    #[test]
    fn an_openapi_document_of_the_types() {
        #[derive(utoipa::OpenApi)]
        #[openapi(components(schemas(
            ConfigEntry, ConfigPage, PutConfig, Deleted, HistoryPage, RollbackRequest, RolledBack,
            ErrorBody, ConditionFailedReport, TxnRequest, TxnResponse, WatchEvent, WatchError,
            WatchPoll, Registered, CompatibilityCheck, SchemaList, SchemaVersions,
            ValidateResult, SchemaPolicy, PolicyView, PolicySet, StartMigration, Migration,
            MigrationList, DryRun, AuditPage, ClusterView, SelfInfo, JoinRequest, Health, Ready,
            Status, HistoryRetention, HistoryRetentionSet, AuditRetention, AuditRetentionSet, Consistency, WhoAmI, User, auth::Role,
            PutUser, PutRole, Grant<String>, Grant<Permission>, CreateToken, CreatedToken,
            TokenInfo,
        )))]
        struct Api;

        let doc = serde_json::to_value(<Api as utoipa::OpenApi>::openapi()).unwrap();
        let defs: BTreeMap<String, Value> =
            serde_json::from_value(doc["components"]["schemas"].clone()).unwrap();
        assert_no_dangling_refs(&defs);
        let ours = components();
        for (name, schema) in &defs {
            match ours.get(name) {
                Some(ours) => assert_eq!(schema, ours, "{name}"),
                None => assert!(name.starts_with("Grant_"), "{name}"),
            }
        }
        assert_eq!(
            defs["Grant_String"]["properties"]["grant"],
            json!({"type": "string"})
        );
        assert_eq!(
            defs["Grant_Permission"]["properties"]["grant"]["required"],
            json!(["action"])
        );
    }

    #[test]
    fn flat_objects_are_the_fields_serde_writes() {
        // ConfigEntry: the metadata and the value (a document: any JSON, numbers as written).
        let entry = every_property::<ConfigEntry>(&format!(
            r#"{{{META}{CONVERTED},"value":{{"big":18446744073709551617,"e":1e2}}}}"#
        ));
        assert_eq!(entry["converted_from"], 1);
        for value in ["null", "true", "\"s\"", "[1]", "-1.5"] {
            wire::<ConfigEntry>(&format!(r#"{{{META},"value":{value}}}"#));
        }
        // HistoryEntry: `deleted` only on a delete.
        every_property::<HistoryEntry>(&format!(
            r#"{{{META}{CONVERTED},"deleted":true,"value":null}}"#
        ));
        let write = wire::<HistoryEntry>(&format!(r#"{{{META},"value":{{"a":1}}}}"#));
        assert!(write.get("deleted").is_none());
        wire::<HistoryPage>(&format!(
            r#"{{"items":[{{{META},"deleted":true,"value":null}}],"next_before":2,"compacted_through":null}}"#
        ));
        // The other answers made of the metadata and a field.
        every_property::<RolledBack>(&format!(r#"{{{META}{CONVERTED},"rolled_back_to":12}}"#));
        every_property::<TxnResult>(&format!(r#"{{{META}{CONVERTED},"op":"delete"}}"#));
        wire::<TxnResponse>(&format!(
            r#"{{"revision":43,"results":[{{{META},"op":"put"}}]}}"#
        ));
        // Registered: the version's fields, those sent only at times included, and the report.
        every_property::<Registered>(&format!(
            r#"{{{VERSION},"plugin_contract":{{"wit":"0.2.0","migration":null}},"references":[{{"uri":"scarab:schemas/common/versions/1","name":"common","version":1}}],"schema":true,"compatibility":{REPORT}}}"#
        ));
        wire::<Registered>(&format!(r#"{{{VERSION},"compatibility":{REPORT}}}"#));
        // A watch change message: a change with an error, a delete.
        let change = every_property::<Change>(&format!(
            r#"{{{META}{CONVERTED},"type":"put","value":null,"error":{{"code":"conversion_failed","message":"m"}}}}"#
        ));
        assert_eq!(change["type"], "put");
        let batch = format!(
            r#"{{"revision":42,"events":[{{{META},"type":"delete","value":null}},{{{META},"type":"put","value":[1.50]}}]}}"#
        );
        wire::<ChangeBatch>(&batch);
        // WatchEvent: the `data:` of either message.
        let defs = components();
        for (event, data) in [
            ("change", batch.as_str()),
            ("progress", r#"{"revision":57}"#),
        ] {
            let data = WatchEvent::decode(event, data).unwrap().unwrap().data();
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(
                errors(&defs, &reference("WatchEvent"), &data, ""),
                Vec::<String>::new()
            );
        }
        wire::<WatchPoll>(&format!(
            r#"{{"changes":[{batch}],"revision":57,"next_from_revision":58}}"#
        ));
    }

    #[test]
    fn errors_are_what_the_server_sends() {
        let body = wire::<ErrorBody>(
            r#"{"error":{"code":"validation_failed","message":"m","violations":[{"path":"/a","message":"m","code":"minimum","source":"schema","schema_path":"/properties/a/minimum"},{"path":"","message":"m","code":null,"source":"plugin"}],"report":{"failed":[]}}}"#,
        );
        assert_eq!(keys(&body["error"]), properties::<ErrorDetail>());
        assert_eq!(
            keys(&body["error"]["violations"][0]),
            properties::<Violation>()
        );
        wire::<ErrorBody>(r#"{"error":{"code":"no_leader","message":"m"}}"#);
        wire::<ConditionFailedReport>(
            r#"{"failed":[{"index":1,"key":"b","current_revision":null}]}"#,
        );
        // The enum lists every code, and nothing else; an unknown code is not in it.
        let defs = components();
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
        assert_eq!(defs["ErrorCode"]["enum"], json!(codes));
        let description = defs["ErrorCode"]["description"].as_str().unwrap();
        assert!(description.contains("- `no_leader` (503, retry-safe): No leader took"));
        assert!(description.contains("clients must accept it"));
        let unknown = json!({"error": {"code": "brand_new", "message": "m"}});
        assert!(!errors(&defs, &reference("ErrorBody"), &unknown, "").is_empty());
    }

    #[test]
    fn open_enums_leave_their_catch_all_out() {
        let defs = components();
        for (name, values) in [
            ("ViolationSource", json!(["schema", "plugin"])),
            ("CompatStep", json!(["upgrade", "validate", "round_trip"])),
            ("ChangeKind", json!(["put", "delete"])),
            ("MigrationStatus", json!(["running", "done"])),
            ("MemberRole", json!(["voter", "learner"])),
            (
                "NodeRole",
                json!(["leader", "follower", "candidate", "learner", "shutdown"]),
            ),
        ] {
            assert_eq!(defs[name]["enum"], values, "{name}");
            assert!(
                defs[name]["description"]
                    .as_str()
                    .unwrap()
                    .contains("clients must accept")
            );
        }
        let actions: Vec<&str> = Action::ALL.iter().map(Action::as_str).collect();
        assert_eq!(defs["Action"]["enum"], json!(actions));
    }

    #[test]
    fn the_other_responses() {
        every_property::<ConfigMeta>(&format!("{{{META}{CONVERTED}}}"));
        wire::<ConfigPage>(&format!(
            r#"{{"items":[{{{META},"value":true}}],"next":null,"revision":9}}"#
        ));
        wire::<Deleted>(r#"{"key":"a","revision":3,"deleted_at":"t","deleted_by":"bob"}"#);
        wire::<AuditPage>(
            r#"{"items":[{"seq":17,"log_index":21,"at":"t","actor":"alice","on_behalf_of":"bob","action":"config.update","object":"stores/orders","revision_before":12,"revision_after":16,"reason":"r","validation":{"schema":"store","schema_version":1,"plugin_digest":"sha256:x","elapsed_us":41}},{"seq":3,"log_index":4,"at":null,"actor":"raft","action":"membership.change","object":"cluster","revision_before":null,"revision_after":null,"reason":null,"validation":null,"detail":{"voters":[1,2]}}],"next_before":3}"#,
        );
        wire::<ClusterView>(
            r#"{"leader":1,"term":3,"last_log_index":40,"members":[{"node_id":1,"api":"a","peer":"p","role":"voter","leader":true,"matched_index":40,"lag":0},{"node_id":4,"api":"d","peer":"pd","role":"learner","leader":false,"matched_index":null,"lag":null}],"served_by":1,"voter_sets":[[1,2,3],[1,2,4]],"membership_index":38,"membership_committed":false}"#,
        );
        // From an older server: the fields it lacked are sent (with their defaults) once
        // decoded.
        wire::<ClusterView>(
            r#"{"leader":null,"term":3,"last_log_index":null,"members":[],"served_by":2}"#,
        );
        wire::<SelfInfo>(r#"{"node_id":1,"api":"a","peer":"p","initialized":true}"#);
        wire::<Status>(
            r#"{"node_id":1,"role":"leader","leader":1,"term":1,"last_log_index":7,"last_applied_index":7,"snapshot_index":null,"purged_index":null,"revision":5,"configs":3,"schemas":2,"plugins":{"loaded":2,"compiled":2,"from_disk_cache":0,"idle_instances":2,"misbehaving":[]}}"#,
        );
        wire::<HistoryRetentionSet>(
            r#"{"keep":5,"max_age_seconds":null,"watch_window":9,"revision":9}"#,
        );
        wire::<AuditRetentionSet>(r#"{"max_records":5,"max_age_seconds":null,"revision":9}"#);
        wire::<Health>(r#"{"status":"ok"}"#);
        wire::<Ready>(r#"{"ready":true}"#);
        let migration = r#"{"id":9,"schema":"store","target_version":2,"status":"done","total":3,"done":2,"skipped":1,"failed_count":1,"failed":[{"key":"k","revision":3,"reason":"r"}],"started_at":"t","started_by":"alice","updated_at":"t","finished_at":"u"}"#;
        every_property::<Migration>(migration);
        wire::<MigrationList>(&format!(r#"{{"migrations":[{migration}]}}"#));
        wire::<DryRun>(
            r#"{"name":"store","target_version":2,"total":3,"convertible":2,"failed":[]}"#,
        );
        wire::<CompatibilityCheck>(&format!(
            r#"{{"plugin_contract":null,"compatibility":{REPORT}}}"#
        ));
        wire::<SchemaList>(r#"{"schemas":[{"name":"store","versions":[1,2]}]}"#);
        wire::<SchemaVersions>(&format!(r#"{{"name":"store","versions":[{{{VERSION}}}]}}"#));
        wire::<PolicySet>(r#"{"name":"store","policy":{"writes":"latest"},"revision":7}"#);
        wire::<PolicyView>(r#"{"name":"store","policy":{"writes":"any"}}"#);
        wire::<ValidateResult>(
            r#"{"valid":false,"violations":[{"path":"","message":"m","code":null,"source":"plugin"}],"plugin_digest":null}"#,
        );
        let permissions = r#"[{"action":"config:read","resource":"stores/"},{"action":"cluster:admin","resource":""}]"#;
        wire::<auth::Role>(&format!(
            r#"{{"name":"r","permissions":{permissions},"builtin":false}}"#
        ));
        wire::<User>(r#"{"name":"u","roles":["r"],"created_at":"t","created_by":"a"}"#);
        let info = r#"{"id":"i","principal":"u","created_at":"t","created_by":"a","expires_at":null,"description":"d"}"#;
        every_property::<TokenInfo>(info);
        wire::<CreatedToken>(&format!(r#"{{"token":"s","info":{info}}}"#));
        every_property::<WhoAmI>(&format!(
            r#"{{"principal":"u","authenticated_by":"token","token_id":"i","roles":[],"permissions":{permissions}}}"#
        ));
    }

    #[test]
    fn request_bodies() {
        wire::<PutConfig>(r#"{"schema":"s","schema_version":1,"value":18446744073709551617}"#);
        wire::<RollbackRequest>(r#"{"revision":4}"#);
        every_property::<TxnRequest>(
            r#"{"conditions":[{"key":"a","revision":42},{"key":"b","exists":false},{"key":"c","pointer":"/on","equals":true}],"ops":[{"op":"put","key":"a","schema":"s","schema_version":1,"value":{"n":1}},{"op":"delete","key":"b"}]}"#,
        );
        every_property::<JoinRequest>(
            r#"{"node_id":4,"api":"a","peer":"p","voter":false,"without_state":true}"#,
        );
        every_property::<StartMigration>(r#"{"target_version":2,"dry_run":true}"#);
        wire::<SchemaPolicy>(r#"{"writes":"latest"}"#);
        every_property::<HistoryRetention>(r#"{"keep":100,"max_age_seconds":60,"watch_window":7}"#);
        every_property::<AuditRetention>(r#"{"max_records":100,"max_age_seconds":60}"#);
        every_property::<CreateToken>(r#"{"principal":"u","ttl":"30d","description":"d"}"#);
        wire::<PutUser>(r#"{"roles":["r"]}"#);
        wire::<PutRole>(r#"{"permissions":[{"action":"schema:read","resource":"*"}]}"#);
        // Grant<T>: the granted value inline, whatever T.
        let defs = components();
        for (schema, sample) in [
            (Grant::<String>::schema(), json!({"grant": "reader"})),
            (
                Grant::<Permission>::schema(),
                json!({"grant": {"action": "config:read", "resource": ""}}),
            ),
        ] {
            let schema = serde_json::to_value(schema).unwrap();
            assert_eq!(errors(&defs, &schema, &sample, ""), Vec::<String>::new());
            let wrong = json!({"grant": 1});
            assert!(!errors(&defs, &schema, &wrong, "").is_empty());
        }
    }

    /// The validator is not blind: what the schemas forbid fails, for the reason expected.
    #[test]
    fn wrong_values_fail() {
        let defs = components();
        let fails = |name: &str, value: Value, why: &str| {
            let errors = errors(&defs, &reference(name), &value, "");
            assert!(
                errors.iter().any(|e| e.contains(why)),
                "{name}: {value}: {errors:?}"
            );
        };
        let entry: Value = serde_json::from_str(&format!(r#"{{{META},"value":1}}"#)).unwrap();
        let with = |field: &str, value: Option<Value>| {
            let mut v = entry.clone();
            match value {
                Some(value) => v[field] = value,
                None => drop(v.as_object_mut().unwrap().remove(field)),
            }
            v
        };
        fails("ConfigEntry", with("value", None), "value is missing");
        fails(
            "ConfigEntry",
            with("plugin_digest", None),
            "plugin_digest is missing",
        );
        fails("ConfigEntry", with("revision", Some(json!(-1))), "below 0");
        fails(
            "ConfigEntry",
            with("converted_from", Some(Value::Null)),
            "not of type",
        );
        fails(
            "HistoryEntry",
            with("deleted", Some(json!("yes"))),
            "not of type",
        );
        fails(
            "RollbackRequest",
            json!({"revision": 1, "x": 1}),
            "x is not a property",
        );
        fails(
            "Change",
            with("type", Some(json!(1))),
            "/type: 1 is not of type",
        );
        fails("MemberRole", json!("unknown"), "is not one of");
        fails(
            "WatchEvent",
            json!({"events": []}),
            "matches no schema of anyOf",
        );
        fails(
            "AuditRecord",
            json!({"validation": 1}),
            "matches 0 schemas of oneOf",
        );
        let mut view: Value = serde_json::from_str(
            r#"{"leader":null,"term":3,"last_log_index":null,"members":[],"served_by":2,"voter_sets":[[1,1]],"membership_index":null,"membership_committed":true}"#,
        )
        .unwrap();
        fails("ClusterView", view.clone(), "items are not unique");
        view["voter_sets"] = json!([[1, 2]]);
        assert_eq!(
            errors(&defs, &reference("ClusterView"), &view, ""),
            Vec::<String>::new()
        );
    }
}
