//! References between registered schemas: what a `$ref` to another document resolves to.
//!
//! Owns: the two ways a registered schema version can be named from another
//! (`scarab:schemas/{name}/versions/{version}`, or the `$id` the version was registered with),
//! resolving them against the registry when a new version is checked, and serving the pinned
//! result when a registered version is compiled again. Does not own: keeping a referenced
//! version from being deleted (`store::schemas`, at apply) or compiling (`super`).
//!
//! Why pinned: a `$id` may be registered again later (a new version of the shared schema
//! often keeps its `$id`), and a node may compile a version long after it was registered. The
//! versions a schema resolved to at registration are part of its replicated record, so every
//! node, at any time, validates it with the same documents, and those versions cannot be
//! deleted while it exists. Nothing is ever fetched: a URI that names no registered version
//! is refused at registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::store::{SchemaRef, StateStore, StoreError};

/// Why a `$ref` to another document did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error(
        "the JSON Schema refers to {uri}, but schema {name} version {version} is not registered: register it first"
    )]
    NotRegistered {
        uri: String,
        name: String,
        version: u32,
    },
    #[error(
        "the JSON Schema refers to {uri}, the $id of several registered versions ({}): refer to one of them as scarab:schemas/NAME/versions/N",
        users.join(", ")
    )]
    Ambiguous { uri: String, users: Vec<String> },
    #[error(
        "the JSON Schema refers to {uri}, which it does not contain and no registered schema has as its $id: Scarab never fetches other documents (http, https, file). Register the referenced schema first, then refer to it by its $id or as scarab:schemas/NAME/versions/N (or put the definitions under $defs of this schema)"
    )]
    Unknown { uri: String },
}

/// Where the documents a schema refers to come from.
#[derive(Clone)]
pub enum References {
    /// None: any reference to another document is refused (the offline `plugin check`).
    None,
    /// The registry as it is now: for a version being registered or checked.
    Registry(Arc<StateStore>),
    /// The versions a registered version resolved to, loaded (see [`References::pinned`]).
    Pinned(Arc<HashMap<String, Resolved>>),
}

impl References {
    /// The documents of a registered version's `refs`, read from the store (where they stay
    /// while it exists).
    pub fn pinned(store: &StateStore, refs: &[SchemaRef]) -> Result<Self, StoreError> {
        let mut documents = HashMap::new();
        for r in refs {
            let Some(record) = store.schema_record(&r.name, r.version)? else {
                return Err(StoreError::Corrupt {
                    keyspace: "sm_schemas",
                    reason: format!(
                        "{} resolves to schema {} version {}, which is not stored",
                        r.uri, r.name, r.version
                    ),
                });
            };
            let document = parse_document(&record.schema)?;
            documents.insert(r.uri.clone(), (r.clone(), Arc::new(document)));
        }
        Ok(Self::Pinned(Arc::new(documents)))
    }
}

/// A registered version's JSON Schema as a referenced document: without `$schema` (every
/// registered schema is draft 2020-12; the format-assertion metaschema Scarab names is a URN
/// no resolver knows, and whether formats assert is the referring schema's choice).
fn parse_document(text: &str) -> Result<Value, StoreError> {
    let mut document: Value = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        keyspace: "sm_schemas",
        reason: format!("a stored schema is not JSON: {e}"),
    })?;
    if let Some(map) = document.as_object_mut() {
        map.remove("$schema");
    }
    Ok(document)
}

/// The canonical form of a schema's root `$id` (as `jsonschema` gives URIs to a retriever:
/// normalised, absolute, without an empty fragment).
fn id_of(schema: &Value) -> Option<String> {
    let id = schema.get("$id")?.as_str()?;
    let uri = jsonschema::uri::from_str(id).ok()?;
    Some(uri.as_str().trim_end_matches('#').to_string())
}

/// A registered version a reference resolved to, and its document.
pub(super) type Resolved = (SchemaRef, Arc<Value>);

/// `$id` → the versions registered with it.
type IdIndex = HashMap<String, Vec<(String, u32)>>;

/// The `jsonschema` retriever over [`References`], recording what it resolved.
pub(super) struct Retriever {
    source: References,
    /// Registry mode: `$id` → the versions registered with it, built on first use.
    ids: Mutex<Option<IdIndex>>,
    pub(super) found: Arc<Mutex<Vec<Resolved>>>,
}

impl Retriever {
    pub(super) fn new(source: References) -> Self {
        Self {
            source,
            ids: Mutex::new(None),
            found: Arc::default(),
        }
    }

    fn resolve(&self, uri: &str) -> Result<Resolved, RefError> {
        let store = match &self.source {
            References::None => {
                return Err(RefError::Unknown {
                    uri: uri.to_string(),
                });
            }
            References::Pinned(documents) => {
                return documents
                    .get(uri)
                    .cloned()
                    .ok_or_else(|| RefError::Unknown {
                        uri: uri.to_string(),
                    });
            }
            References::Registry(store) => store,
        };
        let (name, version) = match scarab_types::parse_schema_uri(uri) {
            Some((name, version)) => (name.to_string(), version),
            None => self.by_id(store, uri)?,
        };
        let not_registered = || RefError::NotRegistered {
            uri: uri.to_string(),
            name: name.clone(),
            version,
        };
        let record = store
            .schema_record(&name, version)
            .ok()
            .flatten()
            .ok_or_else(not_registered)?;
        let document = parse_document(&record.schema).map_err(|_| not_registered())?;
        Ok((
            SchemaRef {
                uri: uri.to_string(),
                name,
                version,
                revision: record.revision,
            },
            Arc::new(document),
        ))
    }

    fn by_id(&self, store: &StateStore, uri: &str) -> Result<(String, u32), RefError> {
        let mut ids = self.ids.lock().expect("ids");
        let ids = ids.get_or_insert_with(|| {
            let mut ids: HashMap<String, Vec<(String, u32)>> = HashMap::new();
            for record in store.list_schemas(None).unwrap_or_default() {
                let schema: Value = serde_json::from_str(&record.schema).unwrap_or(Value::Null);
                if let Some(id) = id_of(&schema) {
                    ids.entry(id)
                        .or_default()
                        .push((record.name, record.version));
                }
            }
            ids
        });
        match ids.get(uri).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some(several) if !several.is_empty() => Err(RefError::Ambiguous {
                uri: uri.to_string(),
                users: several
                    .iter()
                    .map(|(name, version)| format!("{name} v{version}"))
                    .collect(),
            }),
            _ => Err(RefError::Unknown {
                uri: uri.to_string(),
            }),
        }
    }
}

impl jsonschema::Retrieve for Retriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        let uri = uri.split_once('#').map_or(uri, |(base, _)| base);
        let (r, document) = self.resolve(uri)?;
        let value = (*document).clone();
        let mut found = self.found.lock().expect("found");
        if !found.iter().any(|(f, _)| f.uri == r.uri) {
            found.push((r, document));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_compared_in_the_form_the_retriever_gets() {
        assert_eq!(
            id_of(&json!({"$id": "https://Example.com/a/../common.json#"})).as_deref(),
            Some("https://example.com/common.json")
        );
        assert_eq!(id_of(&json!({"$id": 7})), None);
        assert_eq!(id_of(&json!({})), None);
    }
}
