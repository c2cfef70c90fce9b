//! The schema registry: which JSON Schema and which plugin a schema version has, compiled
//! lazily and cached, and the one validation path every write takes.
//!
//! Owns: checking a document against a version (JSON Schema and plugin, every violation from
//! both), checking a new version's content before it is proposed. Does not own: storing
//! versions ([`crate::store`]) or running wasm ([`crate::plugins`]).

mod cost;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::plugins::{CallContext, Direction, Failure, LoadedPlugin, PluginError, PluginHost};
use crate::store::{MigrationSpec, PluginContract, SchemaRecord, StateStore, StoreError};

/// Where a violation was found.
/// One reason a document is not valid: the wire type itself, so that what the API sends
/// and what clients read cannot drift.
pub use scarab_types::{Violation, ViolationSource as Source};

/// The verdict on a document, and which plugin gave it.
#[derive(Debug)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub plugin_digest: Option<String>,
    /// Wall time of the JSON Schema and plugin checks (for the audit trail's provenance).
    pub elapsed_us: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} version {version} is not registered")]
    Unknown { name: String, version: u32 },
    #[error("the JSON Schema is not valid draft 2020-12: {0}")]
    InvalidSchema(String),
    /// `$schema` names a metaschema Scarab does not evaluate (see [`SUPPORTED_METASCHEMAS`]).
    #[error(
        "the JSON Schema's $schema is {0:?}, which Scarab does not evaluate: it evaluates draft 2020-12 only. Name https://json-schema.org/draft/2020-12/schema, or leave $schema out"
    )]
    UnsupportedMetaschema(String),
    /// A `$ref` to a document the schema does not contain.
    #[error(
        "the JSON Schema refers to {0}, which it does not contain: Scarab never fetches other documents (http, https, file). Put the shared definitions under $defs of this schema"
    )]
    UnresolvedReference(String),
    /// The schema's evaluation could explode or never end (see [`MAX_EVALUATIONS_PER_NODE`]).
    #[error("the JSON Schema is too complex to evaluate safely: {0}")]
    TooComplex(String),
    #[error("invalid plugin: {0}")]
    InvalidPlugin(String),
    #[error("plugin {digest} of schema {name} version {version} {failure}")]
    PluginFailed {
        name: String,
        version: u32,
        digest: String,
        failure: Failure,
    },
    #[error(transparent)]
    Conversion(Box<ConversionFailure>),
    #[error(
        "registering {name} version {version} would break {failed} of the {checked} stored config(s) at version {from}; see the report, or register with force=true"
    )]
    Incompatible {
        name: String,
        version: u32,
        from: u32,
        checked: usize,
        failed: usize,
        report: Box<CompatReport>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Why a config could not be converted to another version of its schema.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot convert {key} from {name} version {from} to version {to}: {step}: {reason}")]
pub struct ConversionFailure {
    pub key: String,
    pub name: String,
    pub from: u32,
    pub to: u32,
    /// Which step failed, e.g. `upgrade 1 → 2 by plugin sha256:…` or `validation at 2`.
    pub step: String,
    pub reason: String,
    /// For a failed validation at the target version.
    pub violations: Vec<Violation>,
}

/// What registering a version would do to the configs stored at the previous one: each is
/// upgraded by the new plugin, validated at the new version, and (if the plugin downgrades)
/// converted back, which must give the same document.
#[derive(Serialize, Clone, Debug)]
pub struct CompatReport {
    pub name: String,
    pub version: u32,
    /// The version whose configs were checked (`None`: nothing to check: version 1, or a
    /// plugin without a migrator, whose configs stay at their version).
    pub from_version: Option<u32>,
    pub checked: usize,
    pub compatible: bool,
    /// At most [`MAX_REPORTED`] failures; `failed` counts them all.
    pub failed: usize,
    pub failures: Vec<CompatFailure>,
}

/// Failures listed in a report beyond which only the count grows.
pub const MAX_REPORTED: usize = 100;

#[derive(Serialize, Clone, Debug)]
pub struct CompatFailure {
    pub key: String,
    pub revision: u64,
    /// `upgrade`, `validate` or `round_trip`.
    pub step: &'static str,
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// A checked new version, ready to be proposed.
pub struct NewVersion {
    pub contract: Option<PluginContract>,
    pub report: CompatReport,
}

/// A schema version ready to validate with.
struct Compiled {
    record: SchemaRecord,
    validator: SchemaValidator,
    plugin: Option<Arc<LoadedPlugin>>,
}

pub struct SchemaRegistry {
    store: Arc<StateStore>,
    plugins: Arc<PluginHost>,
    // Versions are immutable while they exist; an entry is reused only while the stored
    // version has the revision it was compiled from (a deleted and re-registered version has
    // another), so no node ever validates with a stale compilation.
    compiled: Mutex<HashMap<(String, u32), Arc<Compiled>>>,
    /// Bounds concurrent validations to half the plugin instance pool; the other half holds
    /// idle warm instances (see `plugins`).
    permits: tokio::sync::Semaphore,
}

/// Documents up to this size may be validated on the async runtime (see `validate_async`).
const INLINE_DOCUMENT_BYTES: usize = 16 << 10;
/// ...and whose JSON Schema evaluation is bounded by this many evaluations (values × the
/// schema's cost): tens of microseconds. A costlier check goes to the blocking pool, so that
/// no schema can stall the async runtime (a probe stalled `/v1/health` for 17 s).
const INLINE_WORK: u64 = 5_000;

/// The most subschema evaluations a schema may cause at a single instance node, by the static
/// bound of [`cost`] (each subschema applied counts 1, `$ref` entries included).
///
/// Real schemas are far below. Measured: the example schemas in `schemas/` cost 1 to 2; of
/// 2 382 published schemas (CloudFormation resource schemas, OpenAPI 2.0 to 3.2, AWS SAM, Step
/// Functions, the draft 4 to 2020-12 meta-schemas), the median costs 2, the 99th percentile
/// 19, and the largest under 1 MiB 182 (Step Functions; OpenAPI 3.2: 143): each level of
/// composition adds its branches, and only composition nested in composition multiplies.
/// Exploding schemas are far above: a chain of k levels of `allOf` applying the next level
/// twice costs 2^(k+2) - 2, so the reported 28-level one (1.9 KB) costs about 10^9, and 2^14
/// doublings 65 534. 1 000 admits 7 such levels (510) and refuses 8 (1 022).
///
/// It bounds evaluations per node, so a document of n nodes may still cost n times this: cheap
/// when the document is valid (a 16 KB array of 8 000 numbers through a cost-831 schema: 10 ms),
/// not when every evaluation fails, since each failure allocates an error (the same document
/// failing: 6.6 million errors, 4.6 s, 2.4 GB; see `schema_violations`).
pub const MAX_EVALUATIONS_PER_NODE: u64 = 1_000;

/// The instance depth the cost bound covers: the largest `--max-json-depth` allowed
/// (`crate::json::MAX_MAX_DEPTH`), so that the bound holds whatever the configuration.
const COST_INSTANCE_DEPTH: usize = 100;

/// Violations listed per document (JSON Schema first, then plugin); the rest are dropped.
pub const MAX_VIOLATIONS: usize = 100;

/// The longest violation message, in bytes: `jsonschema` messages embed the instance, so a
/// 1 MiB value would otherwise make a 1 MiB message. A longer one is cut and ends with "…".
pub const MAX_MESSAGE_BYTES: usize = 256;

/// A compiled JSON Schema and the bound on its evaluations per document value (its cost, see
/// `cost.rs`), which decides how a document is checked against it.
pub struct SchemaValidator {
    validator: jsonschema::Validator,
    cost: u64,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl SchemaValidator {
    /// The bound on the evaluations checking `doc` takes: its values × the schema's cost
    /// (counting stops once past `cap`).
    pub fn work(&self, doc: &Value, cap: u64) -> u64 {
        let values = value_count(doc, (cap / self.cost.max(1)).saturating_add(1) as usize);
        (values as u64).saturating_mul(self.cost.max(1))
    }
}

/// What a registered schema may name in `$schema` (at its root): Scarab evaluates every
/// schema as draft 2020-12, so a schema that names another metaschema (an older draft, or one
/// that turns vocabularies on or off) would be evaluated by rules it did not ask for.
pub const SUPPORTED_METASCHEMAS: [&str; 3] = [
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/schema#",
    FORMAT_ASSERTION_METASCHEMA,
];

/// Draft 2020-12 with its format-assertion vocabulary: a schema naming it in `$schema` has
/// every `format` of the specification checked (IDN ones included). Without it `format` is
/// an annotation, as the specification's default. Named in the schema itself, so the choice
/// is part of the registered (immutable, replicated) content.
pub const FORMAT_ASSERTION_METASCHEMA: &str = "urn:scarab:draft-2020-12:format-assertion";

fn check_metaschema(schema: &Value) -> Result<(), SchemaError> {
    match schema.get("$schema") {
        None => Ok(()),
        Some(Value::String(uri)) if SUPPORTED_METASCHEMAS.contains(&uri.as_str()) => Ok(()),
        Some(Value::String(uri)) => Err(SchemaError::UnsupportedMetaschema(uri.clone())),
        Some(other) => Err(SchemaError::InvalidSchema(format!(
            "$schema must be a URI string, not {other}"
        ))),
    }
}

/// Compiles a JSON Schema as draft 2020-12 after checking its `$schema` and checking it
/// against the meta-schema, and refuses one whose evaluation could explode (see
/// [`MAX_EVALUATIONS_PER_NODE`]) or that refers to a document it does not contain.
pub fn compile_json_schema(schema: &Value) -> Result<SchemaValidator, SchemaError> {
    check_metaschema(schema)?;
    jsonschema::draft202012::meta::validate(schema).map_err(|e| {
        let at = e.instance_path().as_str().to_string();
        SchemaError::InvalidSchema(if at.is_empty() {
            e.to_string()
        } else {
            format!("{e} (at {at})")
        })
    })?;
    let cost = cost::check_cost(schema, COST_INSTANCE_DEPTH, MAX_EVALUATIONS_PER_NODE)
        .map_err(|e| SchemaError::TooComplex(e.to_string()))?;
    let assert_formats =
        schema.get("$schema").and_then(Value::as_str) == Some(FORMAT_ASSERTION_METASCHEMA);
    let built = if assert_formats {
        let mut plain = schema.clone();
        if let Some(object) = plain.as_object_mut() {
            object.remove("$schema");
        }
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&plain)
    } else {
        jsonschema::draft202012::new(schema)
    };
    let validator = built.map_err(|e| match e.kind() {
        // The crate's own message names a build feature the user cannot change.
        jsonschema::error::ValidationErrorKind::Referencing(
            jsonschema::ReferencingError::Unretrievable { uri, .. },
        ) => SchemaError::UnresolvedReference(uri.clone()),
        _ => SchemaError::InvalidSchema(e.to_string()),
    })?;
    Ok(SchemaValidator { validator, cost })
}

/// A message of at most [`MAX_MESSAGE_BYTES`], written by `Display` until it is full (so a
/// huge instance is never formatted whole).
struct Capped {
    text: String,
    full: bool,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.full {
            return Err(std::fmt::Error);
        }
        let room = MAX_MESSAGE_BYTES - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        self.text.push_str(&s[..s.floor_char_boundary(room)]);
        self.full = true;
        Err(std::fmt::Error)
    }
}

impl Capped {
    fn of(message: &dyn std::fmt::Display) -> String {
        let mut capped = Capped {
            text: String::new(),
            full: false,
        };
        // An error here is the writer saying it is full.
        let _ = std::fmt::Write::write_fmt(&mut capped, format_args!("{message}"));
        if capped.full {
            let keep = capped
                .text
                .floor_char_boundary(MAX_MESSAGE_BYTES - "…".len());
            capped.text.truncate(keep);
            capped.text.push('…');
        }
        capped.text
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] on a character boundary, ending with "…"
/// when cut.
pub fn cut_message(message: &str) -> String {
    Capped::of(&message)
}

/// The JSON Schema violations of `doc`, in document order: at most [`MAX_VIOLATIONS`], each
/// message cut to [`MAX_MESSAGE_BYTES`].
pub fn schema_violations(schema: &SchemaValidator, doc: &Value) -> Vec<Violation> {
    let validator = &schema.validator;
    // Only the list handed out and its formatting are bounded here: jsonschema 0.61 collects
    // every error before its iterator yields the first (`Validator::iter_errors`), so the work
    // and memory of that collection are bounded only by the schema's cost times the document's
    // nodes (see MAX_EVALUATIONS_PER_NODE).
    // So: a valid document costs one short-circuiting pass; an invalid one lists every
    // violation only while the worst case of that collection (values × cost) is within
    // LIST_ALL_WORK, and beyond it only its first violation, which `validate` finds without
    // collecting the rest. Measured before this: a 16 KB
    // document of 8,000 failing numbers took 4.6 s and 2.4 GB to list.
    if validator.is_valid(doc) {
        return Vec::new();
    }
    let view = |e: &jsonschema::ValidationError<'_>| Violation {
        path: e.instance_path().as_str().to_string(),
        message: Capped::of(e),
        code: Some(e.kind().keyword().to_string()),
        source: Source::Schema,
    };
    if schema.work(doc, LIST_ALL_WORK) > LIST_ALL_WORK {
        return validator
            .validate(doc)
            .err()
            .map(|e| vec![view(&e)])
            .unwrap_or_default();
    }
    validator
        .iter_errors(doc)
        .take(MAX_VIOLATIONS)
        .map(|e| view(&e))
        .collect()
}

/// A failing document lists every JSON Schema violation (up to [`MAX_VIOLATIONS`]) while its
/// values × the schema's cost is at most this; beyond, its first violation. Collecting all
/// errors of 8,000 failing numbers (4.6 s, 2.4 GB) was 6.6 million evaluations; this is 300
/// times less (a cost-2 schema lists all for documents of up to 10,000 values).
pub const LIST_ALL_WORK: u64 = 20_000;

/// How many values (objects, arrays and scalars) `doc` holds; counting stops past `cap`.
fn value_count(doc: &Value, cap: usize) -> usize {
    let mut count = 0;
    let mut todo = vec![doc];
    while let Some(v) = todo.pop() {
        count += 1;
        if count > cap {
            break;
        }
        match v {
            Value::Array(items) => todo.extend(items),
            Value::Object(map) => todo.extend(map.values()),
            _ => {}
        }
    }
    count
}

/// The one validation path, used by writes, `validate` and the offline `plugin check`: the JSON
/// Schema violations, then the plugin's (the plugin sees every document, so that violations
/// from both are reported at once), at most [`MAX_VIOLATIONS`] in all, messages cut to
/// [`MAX_MESSAGE_BYTES`]. A list of `MAX_VIOLATIONS` may have been cut.
pub fn check_document(
    plugins: &PluginHost,
    validator: Option<&SchemaValidator>,
    plugin: Option<&LoadedPlugin>,
    ctx: &CallContext<'_>,
    doc: &Value,
    doc_text: &str,
) -> Result<Vec<Violation>, Failure> {
    let mut violations = validator
        .map(|v| schema_violations(v, doc))
        .unwrap_or_default();
    if let Some(plugin) = plugin {
        let found = plugins.validate(plugin, ctx, doc_text)?;
        let room = MAX_VIOLATIONS.saturating_sub(violations.len());
        violations.extend(found.into_iter().take(room).map(|v| Violation {
            path: v.path,
            message: cut_message(&v.message),
            code: v.code,
            source: Source::Plugin,
        }));
    }
    Ok(violations)
}

impl SchemaRegistry {
    pub fn new(store: Arc<StateStore>, plugins: Arc<PluginHost>) -> Self {
        let permits = (plugins.limits().max_instances as usize / 2).max(1);
        Self {
            store,
            plugins,
            compiled: Mutex::new(HashMap::new()),
            permits: tokio::sync::Semaphore::new(permits),
        }
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// Checks a new version before it is proposed: the JSON Schema compiles; the plugin (if
    /// any) is a component implementing a released plugin world; a migrator upgrades from
    /// the previous version, which must be registered; and the configs stored at the previous
    /// version survive the upgrade (the compatibility report). Compiling the plugin here also
    /// warms this node's cache. Blocking (plugins run): call it off the async runtime.
    pub fn check_new_version(
        &self,
        name: &str,
        version: u32,
        schema: &Value,
        plugin: Option<(&str, &[u8])>,
    ) -> Result<NewVersion, SchemaError> {
        let validator = compile_json_schema(schema)?;
        let loaded = match plugin {
            None => None,
            Some((digest, bytes)) => {
                Some(self.plugins.load(digest, bytes).map_err(|e| match e {
                    PluginError::InvalidComponent(m) => SchemaError::InvalidPlugin(m),
                    other => SchemaError::Internal(other.to_string()),
                })?)
            }
        };
        let contract = loaded.as_ref().map(|p| PluginContract {
            wit: p.contract.wit.to_string(),
            migration: p.contract.migration.map(|m| MigrationSpec {
                from_version: m.from_version,
                downgrade: m.downgrade,
            }),
        });
        if let Some(m) = contract.as_ref().and_then(|c| c.migration) {
            if m.from_version.checked_add(1) != Some(version) {
                return Err(SchemaError::InvalidPlugin(format!(
                    "its migrator upgrades from version {}, so it can only be version {} of a schema, not version {version}",
                    m.from_version,
                    m.from_version.saturating_add(1)
                )));
            }
            if self.store.get_schema(name, m.from_version)?.is_none() {
                return Err(SchemaError::InvalidPlugin(format!(
                    "its migrator upgrades from {name} version {}, which is not registered",
                    m.from_version
                )));
            }
        }
        let report = self.compatibility(name, version, &validator, loaded.as_deref())?;
        Ok(NewVersion { contract, report })
    }

    /// The compatibility report of a new version (see [`CompatReport`]).
    fn compatibility(
        &self,
        name: &str,
        version: u32,
        validator: &SchemaValidator,
        plugin: Option<&LoadedPlugin>,
    ) -> Result<CompatReport, SchemaError> {
        let mut report = CompatReport {
            name: name.to_string(),
            version,
            from_version: None,
            checked: 0,
            compatible: true,
            failed: 0,
            failures: Vec::new(),
        };
        let Some((plugin, migration)) = plugin.and_then(|p| p.contract.migration.map(|m| (p, m)))
        else {
            return Ok(report);
        };
        report.from_version = Some(migration.from_version);
        for entry in self
            .store
            .configs_of(name, |v| v == migration.from_version)?
        {
            report.checked += 1;
            let key = &entry.meta.key;
            let fail =
                |step: &'static str, reason: String, violations: Vec<Violation>| CompatFailure {
                    key: key.clone(),
                    revision: entry.meta.revision,
                    step,
                    reason,
                    violations,
                };
            let outcome = (|| {
                let up_ctx = CallContext {
                    key,
                    schema_name: name,
                    schema_version: version,
                };
                let upgraded = self
                    .plugins
                    .migrate(plugin, Direction::Upgrade, &up_ctx, &entry.value)
                    .map_err(|f| {
                        fail("upgrade", format!("plugin {} {f}", plugin.digest), vec![])
                    })?;
                let doc: Value = serde_json::from_str(&upgraded)
                    .map_err(|e| fail("upgrade", e.to_string(), vec![]))?;
                let text = doc.to_string();
                let violations = check_document(
                    &self.plugins,
                    Some(validator),
                    Some(plugin),
                    &up_ctx,
                    &doc,
                    &text,
                )
                .map_err(|f| fail("validate", format!("plugin {} {f}", plugin.digest), vec![]))?;
                if !violations.is_empty() {
                    return Err(fail(
                        "validate",
                        format!("the upgraded document is not valid at version {version}"),
                        violations,
                    ));
                }
                if migration.downgrade {
                    let down_ctx = CallContext {
                        key,
                        schema_name: name,
                        schema_version: migration.from_version,
                    };
                    let back = self
                        .plugins
                        .migrate(plugin, Direction::Downgrade, &down_ctx, &text)
                        .map_err(|f| {
                            fail(
                                "round_trip",
                                format!("plugin {} {f}", plugin.digest),
                                vec![],
                            )
                        })?;
                    let back: Value = serde_json::from_str(&back)
                        .map_err(|e| fail("round_trip", e.to_string(), vec![]))?;
                    let original: Value = serde_json::from_str(&entry.value)
                        .map_err(|e| fail("round_trip", e.to_string(), vec![]))?;
                    if back != original {
                        return Err(fail(
                            "round_trip",
                            format!(
                                "upgrading to {version} and downgrading back does not give the stored document: {back}"
                            ),
                            vec![],
                        ));
                    }
                }
                Ok(())
            })();
            if let Err(f) = outcome {
                report.compatible = false;
                report.failed += 1;
                if report.failures.len() < MAX_REPORTED {
                    report.failures.push(f);
                }
            }
        }
        Ok(report)
    }

    /// Converts a config's value (JSON text) from version `from` to version `to` of schema
    /// `name`, one step at a time: up through each later version's `upgrade`, or down through
    /// each version's `downgrade`. The result is validated at `to` (JSON Schema and plugin).
    /// Blocking (plugins run).
    pub fn convert(
        &self,
        name: &str,
        key: &str,
        from: u32,
        to: u32,
        value: &str,
    ) -> Result<String, SchemaError> {
        let failed = |step: String, reason: String, violations: Vec<Violation>| {
            SchemaError::Conversion(Box::new(ConversionFailure {
                key: key.to_string(),
                name: name.to_string(),
                from,
                to,
                step,
                reason,
                violations,
            }))
        };
        let target = self.compiled(name, to)?;
        if from == to {
            return Ok(value.to_string());
        }
        let mut text = value.to_string();
        let steps: Vec<(u32, Direction, u32)> = if to > from {
            // Version v's plugin upgrades v-1 → v.
            (from + 1..=to)
                .map(|v| (v, Direction::Upgrade, v))
                .collect()
        } else {
            // Version v's plugin downgrades v → v-1.
            (to + 1..=from)
                .rev()
                .map(|v| (v, Direction::Downgrade, v - 1))
                .collect()
        };
        for (owner, direction, result_version) in steps {
            let (verb, start) = match direction {
                Direction::Upgrade => ("upgrade", owner - 1),
                Direction::Downgrade => ("downgrade", owner),
            };
            let step = format!("{verb} {start} → {result_version}");
            let compiled = self
                .compiled(name, owner)
                .map_err(|e| failed(step.clone(), e.to_string(), vec![]))?;
            let Some(plugin) = compiled.plugin.as_deref() else {
                return Err(failed(
                    step,
                    format!("version {owner} has no plugin, so no migrator"),
                    vec![],
                ));
            };
            let step = format!("{step} by plugin {}", plugin.digest);
            match plugin.contract.migration {
                None => {
                    return Err(failed(
                        step,
                        format!("version {owner}'s plugin has no migrator"),
                        vec![],
                    ));
                }
                Some(m) if direction == Direction::Downgrade && !m.downgrade => {
                    return Err(failed(
                        step,
                        format!("version {owner}'s plugin does not downgrade"),
                        vec![],
                    ));
                }
                Some(_) => {}
            }
            let ctx = CallContext {
                key,
                schema_name: name,
                schema_version: result_version,
            };
            text = self
                .plugins
                .migrate(plugin, direction, &ctx, &text)
                .map_err(|f| failed(step, format!("the plugin {f}"), vec![]))?;
        }
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| failed(format!("validation at {to}"), e.to_string(), vec![]))?;
        let text = doc.to_string();
        let ctx = CallContext {
            key,
            schema_name: name,
            schema_version: to,
        };
        let violations = check_document(
            &self.plugins,
            Some(&target.validator),
            target.plugin.as_deref(),
            &ctx,
            &doc,
            &text,
        )
        .map_err(|f| {
            failed(
                format!("validation at {to}"),
                format!("the plugin {f}"),
                vec![],
            )
        })?;
        if !violations.is_empty() {
            return Err(failed(
                format!("validation at {to}"),
                format!("the converted document is not valid at version {to}"),
                violations,
            ));
        }
        Ok(text)
    }

    /// The digest of the plugin of a registered version (what a write at it must carry).
    pub fn plugin_digest(&self, name: &str, version: u32) -> Result<Option<String>, SchemaError> {
        Ok(self.compiled(name, version)?.record.plugin_digest.clone())
    }

    /// [`Self::convert`] on the blocking pool, under the same concurrency bound as validation.
    pub async fn convert_async(
        self: &Arc<Self>,
        name: String,
        key: String,
        from: u32,
        to: u32,
        value: String,
    ) -> Result<String, SchemaError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SchemaError::Internal("the validator is shutting down".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.convert(&name, &key, from, to, &value))
            .await
            .map_err(|e| SchemaError::Internal(format!("conversion task: {e}")))?
    }

    fn compiled(&self, name: &str, version: u32) -> Result<Arc<Compiled>, SchemaError> {
        if let Some(ready) = self.compiled_if_ready(name, version)? {
            return Ok(ready);
        }
        let record =
            self.store
                .schema_record(name, version)?
                .ok_or_else(|| SchemaError::Unknown {
                    name: name.to_string(),
                    version,
                })?;
        let cache_key = (name.to_string(), version);
        let schema: Value = serde_json::from_str(&record.schema)
            .map_err(|e| SchemaError::Internal(format!("stored schema is not JSON: {e}")))?;
        let validator = compile_json_schema(&schema)?;
        // Lazy start: a plugin is compiled (or loaded from the disk cache) on first use.
        let plugin =
            match &record.plugin_digest {
                None => None,
                Some(digest) => {
                    let bytes = self.store.plugin_bytes(digest)?.ok_or_else(|| {
                        SchemaError::Internal(format!(
                            "plugin {digest} of {name} v{version} is missing from the store"
                        ))
                    })?;
                    Some(self.plugins.load(digest, &bytes).map_err(|e| {
                        SchemaError::PluginFailed {
                            name: name.to_string(),
                            version,
                            digest: digest.clone(),
                            failure: Failure::Instantiate(e.to_string()),
                        }
                    })?)
                }
            };
        let compiled = Arc::new(Compiled {
            record: (*record).clone(),
            validator,
            plugin,
        });
        self.compiled
            .lock()
            .expect("schema cache")
            .insert(cache_key, compiled.clone());
        Ok(compiled)
    }

    /// Validates `doc` (compact JSON text `doc_text`) against a registered version, for the
    /// async runtime. Hands `doc_text` back for the proposal.
    ///
    /// A small document whose version is compiled and whose plugin has never misbehaved is
    /// validated in place: that costs microseconds, less than the hand-off to another thread
    /// and back (see `LoadedPlugin::runs_inline`). Everything else runs on the blocking pool,
    /// with at most as many validations at once as the plugin pool allows.
    pub async fn validate_async(
        self: &Arc<Self>,
        name: String,
        version: u32,
        key: String,
        doc: Value,
        doc_text: String,
    ) -> Result<(Verdict, String), SchemaError> {
        if doc_text.len() <= INLINE_DOCUMENT_BYTES
            && let Some(compiled) = self.compiled_if_ready(&name, version)?
            && compiled.plugin.as_ref().is_none_or(|p| p.runs_inline())
            && compiled.validator.work(&doc, INLINE_WORK) <= INLINE_WORK
        {
            return self
                .validate_compiled(&compiled, &name, version, &key, &doc, &doc_text)
                .map(|v| (v, doc_text));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SchemaError::Internal("the validator is shutting down".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let compiled = this.compiled(&name, version)?;
            this.validate_compiled(&compiled, &name, version, &key, &doc, &doc_text)
                .map(|v| (v, doc_text))
        })
        .await
        .map_err(|e| SchemaError::Internal(format!("validation task: {e}")))?
    }

    /// The compilation of `name` v`version` if it is cached and current; `None` if it would
    /// have to be compiled (which takes milliseconds: never on the async runtime).
    fn compiled_if_ready(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Option<Arc<Compiled>>, SchemaError> {
        let Some(record) = self.store.schema_record(name, version)? else {
            return Ok(None);
        };
        let cache = self.compiled.lock().expect("schema cache");
        Ok(cache
            .get(&(name.to_string(), version))
            .filter(|c| c.record.revision == record.revision)
            .cloned())
    }

    /// Validates `doc` (whose compact JSON text is `doc_text`) against a compiled version:
    /// the JSON Schema, then the plugin, which sees every document so that all violations
    /// from both are reported at once. Blocking (the plugin runs here): on the async runtime
    /// only as `validate_async` allows.
    fn validate_compiled(
        &self,
        compiled: &Compiled,
        name: &str,
        version: u32,
        key: &str,
        doc: &Value,
        doc_text: &str,
    ) -> Result<Verdict, SchemaError> {
        let ctx = CallContext {
            key,
            schema_name: name,
            schema_version: version,
        };
        let plugin = compiled.plugin.as_deref();
        let started = std::time::Instant::now();
        let violations = check_document(
            &self.plugins,
            Some(&compiled.validator),
            plugin,
            &ctx,
            doc,
            doc_text,
        )
        .map_err(|failure| SchemaError::PluginFailed {
            name: name.to_string(),
            version,
            digest: plugin.map(|p| p.digest.clone()).unwrap_or_default(),
            failure,
        })?;
        Ok(Verdict {
            violations,
            plugin_digest: compiled.record.plugin_digest.clone(),
            elapsed_us: started.elapsed().as_micros() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_draft_2020_12_may_be_named_as_the_metaschema() {
        for ok in [
            json!({"type": "object"}),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema#"}),
        ] {
            assert!(compile_json_schema(&ok).is_ok(), "{ok}");
        }
        for uri in [
            "http://example.com/no-such-metaschema",
            "http://json-schema.org/draft-07/schema#",
            "https://json-schema.org/draft/2019-09/schema",
        ] {
            let e = compile_json_schema(&json!({"$schema": uri})).err().unwrap();
            assert!(
                matches!(e, SchemaError::UnsupportedMetaschema(ref u) if u == uri),
                "{e}"
            );
            assert!(e.to_string().contains("draft 2020-12"), "{e}");
        }
        let e = compile_json_schema(&json!({"$schema": 7})).err().unwrap();
        assert!(matches!(e, SchemaError::InvalidSchema(_)), "{e}");
    }

    /// Every format of draft 2020-12, with a valid and an invalid string.
    const FORMATS: [(&str, &str, &str); 19] = [
        ("date-time", "2026-12-01T07:00:00Z", "2026-13-01T07:00:00Z"),
        ("date", "2026-12-01", "2026-02-30"),
        ("time", "07:00:00Z", "25:00:00Z"),
        ("duration", "P1DT2H", "1D"),
        ("email", "ops@example.com", "not-an-email"),
        ("idn-email", "运维@例子.广告", "not-an-email"),
        ("hostname", "example.com", "-bad-.example.com"),
        ("idn-hostname", "例子.广告", "-bad-.例子.广告"),
        ("ipv4", "192.168.0.1", "256.1.1.1"),
        ("ipv6", "::1", "12345::"),
        ("uri", "https://example.com/a?b#c", "relative/path"),
        ("uri-reference", "relative/path", "\\\\WINDOWS\\share"),
        ("iri", "https://例子.广告/路径", "relative/路径"),
        ("iri-reference", "relative/路径", "\\\\WINDOWS\\filëshare"),
        (
            "uuid",
            "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
            "2eb8aa08-aa98-11ea-b4aa",
        ),
        (
            "uri-template",
            "https://example.com/{id}",
            "https://example.com/{id",
        ),
        ("json-pointer", "/a/b~1c", "a/b"),
        ("relative-json-pointer", "1/a", "/a"),
        ("regex", "^a+$", "^(a$"),
    ];

    #[test]
    fn format_is_an_annotation_unless_the_schema_names_the_format_assertion_metaschema() {
        for (format, valid, invalid) in FORMATS {
            let annotation = compile_json_schema(&json!({"format": format})).unwrap();
            let asserting = compile_json_schema(&json!({
                "$schema": FORMAT_ASSERTION_METASCHEMA,
                "format": format
            }))
            .unwrap();
            for doc in [valid, invalid] {
                assert!(
                    schema_violations(&annotation, &json!(doc)).is_empty(),
                    "{format}: {doc:?} refused without format assertion"
                );
            }
            assert!(
                schema_violations(&asserting, &json!(valid)).is_empty(),
                "{format}: {valid:?} refused"
            );
            let refused = schema_violations(&asserting, &json!(invalid));
            assert_eq!(refused.len(), 1, "{format}: {invalid:?} accepted");
        }
    }

    #[test]
    fn a_reference_to_another_document_is_refused_and_never_fetched() {
        for uri in [
            "https://example.com/common.json#/$defs/duration",
            "file:///etc/common.json",
            "common.json",
        ] {
            let e = compile_json_schema(&json!({"properties": {"d": {"$ref": uri}}}))
                .err()
                .unwrap();
            assert!(
                matches!(e, SchemaError::UnresolvedReference(_)),
                "{uri}: {e}"
            );
            let text = e.to_string();
            assert!(
                text.contains("never fetches") && !text.contains("resolve-http"),
                "{text}"
            );
        }
        // A reference within the schema, also through its own absolute $id, resolves.
        let local = json!({
            "$id": "https://example.com/store",
            "$defs": {"d": {"type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/d"}, "b": {"$ref": "https://example.com/store#/$defs/d"}}
        });
        assert!(compile_json_schema(&local).is_ok());
    }

    #[test]
    fn violations_are_capped() {
        let validator = compile_json_schema(&json!({"items": {"type": "string"}})).unwrap();
        let doc = Value::Array((0..1000).map(Value::from).collect());
        let violations = schema_violations(&validator, &doc);
        assert_eq!(violations.len(), MAX_VIOLATIONS);
        // Past LIST_ALL_WORK, only the first violation is looked for.
        let doc = Value::Array((0..LIST_ALL_WORK).map(Value::from).collect());
        assert_eq!(schema_violations(&validator, &doc).len(), 1);
        assert_eq!(violations[0].path, "/0");
        assert_eq!(violations[99].path, "/99");
    }

    #[test]
    fn messages_embedding_a_huge_instance_are_cut() {
        let validator = compile_json_schema(&json!({"type": "number"})).unwrap();
        let doc = Value::String("é".repeat(1 << 19));
        let violations = schema_violations(&validator, &doc);
        assert_eq!(violations.len(), 1);
        let message = &violations[0].message;
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.len() > MAX_MESSAGE_BYTES - 8, "{}", message.len());
        assert!(message.starts_with("\"éé"), "{message}");
        assert!(message.ends_with('…'), "{message}");
    }

    #[test]
    fn cut_message_keeps_short_messages_and_cuts_on_a_char_boundary() {
        assert_eq!(cut_message("short"), "short");
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(cut_message(&exact), exact);
        for filler in ["a", "é", "€", "𝄞"] {
            let long = filler.repeat(MAX_MESSAGE_BYTES + 1);
            let cut = cut_message(&long);
            assert!(cut.len() <= MAX_MESSAGE_BYTES, "{filler}: {}", cut.len());
            assert!(cut.len() > MAX_MESSAGE_BYTES - 3 - filler.len(), "{filler}");
            assert!(cut.ends_with('…'));
            assert!(
                cut.trim_end_matches('…')
                    .chars()
                    .all(|c| c.to_string() == filler)
            );
        }
    }

    #[test]
    fn an_exploding_schema_is_refused_at_compilation() {
        let mut defs = serde_json::Map::new();
        for i in 0..28 {
            let next = format!("#/$defs/a{}", i + 1);
            defs.insert(
                format!("a{i}"),
                json!({"allOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("a28".into(), json!({"type": "string"}));
        let schema = json!({"$ref": "#/$defs/a0", "$defs": defs});
        let err = compile_json_schema(&schema).expect_err("refused");
        assert!(matches!(err, SchemaError::TooComplex(_)), "{err}");
        assert!(err.to_string().contains("1000"), "{err}");
        let cycle =
            json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"});
        let err = compile_json_schema(&cycle).expect_err("refused");
        assert!(err.to_string().contains("#/$defs/a"), "{err}");
    }
}
