//! The schema registry: which JSON Schema and which plugin a schema version has, compiled
//! lazily and cached, and the one validation path every write takes.
//!
//! Owns: checking a document against a version (JSON Schema and plugin, every violation from
//! both), checking a new version's content before it is proposed. Does not own: storing
//! versions ([`crate::store`]) or running wasm ([`crate::plugins`]).

mod cost;
mod references;
mod violations;

pub use references::{RefError, References};
pub use violations::{
    DEFAULT_MAX_VIOLATIONS, LIST_ALL_WORK, MAX_MAX_VIOLATIONS, MAX_MESSAGE_BYTES, MAX_PATH_BYTES,
    cut_message,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::plugins::{CallContext, Direction, Failure, LoadedPlugin, PluginError, PluginHost};
use crate::store::{
    MigrationSpec, PluginContract, SchemaRecord, SchemaRef, StateStore, StoreError,
};

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
    /// A `$ref` to a document that is neither in the schema nor a registered version.
    #[error(transparent)]
    Reference(#[from] RefError),
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
        "registering {name} version {version} would break {failed} of the {checked} stored config(s) at version {from}; see the report, or register anyway with ?force=true (scarab schema push --force)"
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

/// The JSON Schema `examples` a new version's plugin is tried on at registration.
pub const MAX_TRIED_EXAMPLES: usize = 16;

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
    /// The registered versions its `$ref`s resolved to (pinned in its record).
    pub refs: Vec<SchemaRef>,
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
    /// `--max-violations`: violations listed per document.
    max_violations: usize,
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

/// A compiled JSON Schema and the bound on its evaluations per document value (its cost, see
/// `cost.rs`), which decides how a document is checked against it.
pub struct SchemaValidator {
    validator: jsonschema::Validator,
    cost: u64,
    /// The schema and the documents it refers to, by URI: where a violation's keyword is
    /// looked up to say what it asked for (see `violations.rs`).
    root: Arc<Value>,
    documents: HashMap<String, Arc<Value>>,
    /// The registered versions its references resolved to (see `references.rs`).
    refs: Vec<SchemaRef>,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl SchemaValidator {
    /// The registered versions its references resolved to.
    pub fn refs(&self) -> &[SchemaRef] {
        &self.refs
    }

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

/// Compiles a JSON Schema that refers to no other document (see [`compile_with`]).
pub fn compile_json_schema(schema: &Value) -> Result<SchemaValidator, SchemaError> {
    compile_with(schema, References::None)
}

/// Compiles a JSON Schema as draft 2020-12 after checking its `$schema` and checking it
/// against the meta-schema, its references to other documents resolved through `references`
/// (never fetched), and refuses one whose evaluation could explode (see
/// [`MAX_EVALUATIONS_PER_NODE`]), counting the documents it refers to.
pub fn compile_with(
    schema: &Value,
    references: References,
) -> Result<SchemaValidator, SchemaError> {
    check_metaschema(schema)?;
    jsonschema::draft202012::meta::validate(schema).map_err(|e| {
        let at = e.instance_path().as_str().to_string();
        SchemaError::InvalidSchema(if at.is_empty() {
            e.to_string()
        } else {
            format!("{e} (at {at})")
        })
    })?;
    let assert_formats =
        schema.get("$schema").and_then(Value::as_str) == Some(FORMAT_ASSERTION_METASCHEMA);
    // The draft is fixed by the builder: `$schema` (checked above) has said all it can, and
    // Scarab's format-assertion URN is not a document any resolver knows.
    let mut plain = schema.clone();
    if let Some(object) = plain.as_object_mut() {
        object.remove("$schema");
    }
    let retriever = references::Retriever::new(references);
    let found = retriever.found.clone();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(assert_formats)
        .with_retriever(retriever)
        .build(&plain)
        .map_err(|e| match e.kind() {
            // The crate's own message names a build feature the user cannot change.
            jsonschema::error::ValidationErrorKind::Referencing(
                jsonschema::ReferencingError::Unretrievable { uri, source },
            ) => SchemaError::Reference(source.downcast_ref::<RefError>().cloned().unwrap_or(
                RefError::Unknown {
                    uri: uri.to_string(),
                },
            )),
            _ => SchemaError::InvalidSchema(e.to_string()),
        })?;
    let found = std::mem::take(&mut *found.lock().expect("found"));
    let externals: Vec<(&str, &Value)> = found
        .iter()
        .map(|(r, document)| (r.uri.as_str(), document.as_ref()))
        .collect();
    let cost = cost::check_cost_with(
        &plain,
        &externals,
        COST_INSTANCE_DEPTH,
        MAX_EVALUATIONS_PER_NODE,
    )
    .map_err(|e| SchemaError::TooComplex(e.to_string()))?;
    let documents = found
        .iter()
        .map(|(r, document)| (r.uri.clone(), document.clone()))
        .collect();
    Ok(SchemaValidator {
        validator,
        cost,
        root: Arc::new(plain),
        documents,
        refs: found.into_iter().map(|(r, _)| r).collect(),
    })
}

/// The JSON Schema violations of `doc`, in document order: at most `max`, then one entry
/// saying how many were left out (see `violations.rs`).
pub fn schema_violations(schema: &SchemaValidator, doc: &Value, max: usize) -> Vec<Violation> {
    let mut listing = violations::Listing::new(max);
    listing.schema(schema, doc);
    listing.finish()
}

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
/// from both are reported at once), at most `max_violations` in all and then one entry saying
/// how many were left out, messages and paths cut (see `violations.rs`).
pub fn check_document(
    plugins: &PluginHost,
    validator: Option<&SchemaValidator>,
    plugin: Option<&LoadedPlugin>,
    ctx: &CallContext<'_>,
    doc: &Value,
    doc_text: &str,
    max_violations: usize,
) -> Result<Vec<Violation>, Failure> {
    let mut listing = violations::Listing::new(max_violations);
    if let Some(validator) = validator {
        listing.schema(validator, doc);
    }
    if let Some(plugin) = plugin {
        listing.plugin(plugins.validate(plugin, ctx, doc_text)?);
    }
    Ok(listing.finish())
}

impl SchemaRegistry {
    pub fn new(store: Arc<StateStore>, plugins: Arc<PluginHost>, max_violations: usize) -> Self {
        let permits = (plugins.limits().max_instances as usize / 2).max(1);
        Self {
            store,
            plugins,
            compiled: Mutex::new(HashMap::new()),
            permits: tokio::sync::Semaphore::new(permits),
            max_violations,
        }
    }

    /// `--max-violations`.
    pub fn max_violations(&self) -> usize {
        self.max_violations
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
        let validator = compile_with(schema, References::Registry(self.store.clone()))?;
        let loaded = match plugin {
            None => None,
            Some((digest, bytes)) => {
                Some(self.plugins.load(digest, bytes).map_err(|e| match e {
                    PluginError::InvalidComponent(m) => SchemaError::InvalidPlugin(m),
                    other => SchemaError::Internal(other.to_string()),
                })?)
            }
        };
        if let Some(plugin) = &loaded {
            self.try_plugin(name, version, schema, plugin)?;
        }
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
        Ok(NewVersion {
            contract,
            report,
            refs: validator.refs.clone(),
        })
    }

    /// Calls a new version's plugin on the JSON Schema's `examples` (at most
    /// [`MAX_TRIED_EXAMPLES`]), or on `{}` without any, so that a plugin that cannot answer
    /// at all (it traps as it starts, needs what the sandbox does not give, runs out of time or
    /// memory) is refused at registration rather than failing every write. What it answers
    /// does not matter, only that it answers.
    fn try_plugin(
        &self,
        name: &str,
        version: u32,
        schema: &Value,
        plugin: &LoadedPlugin,
    ) -> Result<(), SchemaError> {
        let examples: Vec<Value> = match schema.get("examples").and_then(Value::as_array) {
            Some(examples) if !examples.is_empty() => {
                examples.iter().take(MAX_TRIED_EXAMPLES).cloned().collect()
            }
            _ => vec![Value::Object(Default::default())],
        };
        let ctx = CallContext {
            key: "",
            schema_name: name,
            schema_version: version,
        };
        for example in examples {
            let text = example.to_string();
            self.plugins
                .validate(plugin, &ctx, &text)
                .map_err(|failure| {
                    SchemaError::InvalidPlugin(format!(
                        "it cannot validate: called on {} it {failure}",
                        cut_message(&text)
                    ))
                })?;
        }
        Ok(())
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
                    self.max_violations,
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
            self.max_violations,
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
        let references = References::pinned(&self.store, &record.refs)?;
        let validator = compile_with(&schema, references)?;
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
            // On the worker itself: a plugin that prints is answered on the calling thread too
            // (`plugins::sync_io`), so nothing here waits for another thread.
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
            self.max_violations,
        )
        .map_err(|failure| SchemaError::PluginFailed {
            name: name.to_string(),
            version,
            digest: plugin.map(|p| p.digest.clone()).unwrap_or_default(),
            failure,
        })?;
        for source in [Source::Schema, Source::Plugin] {
            if violations.iter().any(|v| v.source == source) {
                crate::metrics::get()
                    .validations_refused
                    .get_or_create(&crate::metrics::RefusedLabels {
                        schema: name.to_string(),
                        source: if source == Source::Schema {
                            "schema"
                        } else {
                            "plugin"
                        },
                    })
                    .inc();
            }
        }
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
                    schema_violations(&annotation, &json!(doc), 100).is_empty(),
                    "{format}: {doc:?} refused without format assertion"
                );
            }
            assert!(
                schema_violations(&asserting, &json!(valid), 100).is_empty(),
                "{format}: {valid:?} refused"
            );
            let refused = schema_violations(&asserting, &json!(invalid), 100);
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
                matches!(e, SchemaError::Reference(RefError::Unknown { .. })),
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
