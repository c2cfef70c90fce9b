//! The schema registry: which JSON Schema and which plugin a schema version has, compiled
//! lazily and cached, and the one validation path every write takes.
//!
//! Owns: checking a document against a version (JSON Schema and plugin, every violation from
//! both), checking a new version's content before it is proposed. Does not own: storing
//! versions ([`crate::store`]) or running wasm ([`crate::plugins`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use crate::plugins::{CallContext, Failure, LoadedPlugin, PluginError, PluginHost};
use crate::store::{SchemaRecord, StateStore, StoreError};

/// Where a violation was found.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Schema,
    Plugin,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer into the document.
    pub path: String,
    pub message: String,
    pub code: Option<String>,
    pub source: Source,
}

/// The verdict on a document, and which plugin gave it.
#[derive(Debug)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub plugin_digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} version {version} is not registered")]
    Unknown { name: String, version: u32 },
    #[error("the JSON Schema is not valid draft 2020-12: {0}")]
    InvalidSchema(String),
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
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A schema version ready to validate with.
struct Compiled {
    record: SchemaRecord,
    validator: jsonschema::Validator,
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

/// Compiles a JSON Schema as draft 2020-12 after checking it against the meta-schema.
pub fn compile_json_schema(schema: &Value) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::draft202012::meta::validate(schema).map_err(|e| {
        let at = e.instance_path().as_str().to_string();
        SchemaError::InvalidSchema(if at.is_empty() {
            e.to_string()
        } else {
            format!("{e} (at {at})")
        })
    })?;
    jsonschema::draft202012::new(schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))
}

/// Every JSON Schema violation of `doc`, in document order.
pub fn schema_violations(validator: &jsonschema::Validator, doc: &Value) -> Vec<Violation> {
    validator
        .iter_errors(doc)
        .map(|e| Violation {
            path: e.instance_path().as_str().to_string(),
            message: e.to_string(),
            code: Some(e.kind().keyword().to_string()),
            source: Source::Schema,
        })
        .collect()
}

/// The one validation path, used by writes, `validate` and the offline `plugin check`: every
/// JSON Schema violation, then every plugin violation (the plugin sees every document, so that
/// all violations from both are reported at once).
pub fn check_document(
    plugins: &PluginHost,
    validator: Option<&jsonschema::Validator>,
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
        violations.extend(found.into_iter().map(|v| Violation {
            path: v.path,
            message: v.message,
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

    /// Checks a new version's content before it is proposed: the JSON Schema compiles, and
    /// the plugin (if any) is a component implementing the validator world. Compiling the
    /// plugin here also warms this node's cache.
    pub fn check_new_version(
        &self,
        schema: &Value,
        plugin: Option<(&str, &[u8])>,
    ) -> Result<(), SchemaError> {
        compile_json_schema(schema)?;
        if let Some((digest, bytes)) = plugin {
            self.plugins.load(digest, bytes).map_err(|e| match e {
                PluginError::InvalidComponent(m) => SchemaError::InvalidPlugin(m),
                other => SchemaError::Internal(other.to_string()),
            })?;
        }
        Ok(())
    }

    fn compiled(&self, name: &str, version: u32) -> Result<Arc<Compiled>, SchemaError> {
        let record = self
            .store
            .get_schema(name, version)?
            .ok_or_else(|| SchemaError::Unknown {
                name: name.to_string(),
                version,
            })?;
        let cache_key = (name.to_string(), version);
        if let Some(c) = self.compiled.lock().expect("schema cache").get(&cache_key)
            && c.record.revision == record.revision
        {
            return Ok(c.clone());
        }
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
            record,
            validator,
            plugin,
        });
        self.compiled
            .lock()
            .expect("schema cache")
            .insert(cache_key, compiled.clone());
        Ok(compiled)
    }

    /// [`Self::validate`] on the blocking pool, with at most as many validations at once as
    /// the plugin pool allows. Hands `doc_text` back for the proposal.
    pub async fn validate_async(
        self: &Arc<Self>,
        name: String,
        version: u32,
        key: String,
        doc: Value,
        doc_text: String,
    ) -> Result<(Verdict, String), SchemaError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SchemaError::Internal("the validator is shutting down".into()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.validate(&name, version, &key, &doc, &doc_text)
                .map(|v| (v, doc_text))
        })
        .await
        .map_err(|e| SchemaError::Internal(format!("validation task: {e}")))?
    }

    /// Validates `doc` (whose compact JSON text is `doc_text`) against a registered version:
    /// the JSON Schema, then the plugin, which sees every document so that all violations
    /// from both are reported at once. Blocking (the plugin runs here): call it off the async
    /// runtime.
    pub fn validate(
        &self,
        name: &str,
        version: u32,
        key: &str,
        doc: &Value,
        doc_text: &str,
    ) -> Result<Verdict, SchemaError> {
        let compiled = self.compiled(name, version)?;
        let ctx = CallContext {
            key,
            schema_name: name,
            schema_version: version,
        };
        let plugin = compiled.plugin.as_deref();
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
        })
    }
}
