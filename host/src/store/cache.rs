//! The decode cache of schema records: a write compares the plugin digest of the version it
//! was validated at, and a record holds its whole JSON Schema, so decoding it on every write
//! cost more than the write's JSON Schema validation.
//!
//! Owns: keeping decoded records, keyed by name and version, with the bytes they were decoded
//! from. Comparing the bytes keeps the cache right without any invalidation, so apply never
//! has to tell it anything. Does not own: where the bytes come from (`schemas.rs` reads,
//! `configs.rs` checks a write within an apply call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::keys::decode_json;
use super::{SchemaRecord, StoreError};

/// Schema versions whose decoded records are kept at most (the cache starts over beyond).
const SCHEMA_CACHE_ENTRIES: usize = 1024;

type SchemaCacheEntry = (Vec<u8>, Arc<SchemaRecord>);

/// Decoded schema records with the bytes they were decoded from.
#[derive(Default)]
pub(super) struct SchemaCache {
    entries: Mutex<HashMap<(String, u32), SchemaCacheEntry>>,
}

impl SchemaCache {
    /// Decodes a stored schema record, or returns the one decoded earlier from the same bytes.
    pub(super) fn decode(
        &self,
        name: &str,
        version: u32,
        bytes: &[u8],
    ) -> Result<Arc<SchemaRecord>, StoreError> {
        let key = (name.to_string(), version);
        let mut cache = self.entries.lock().expect("schema record cache");
        if let Some((raw, record)) = cache.get(&key)
            && raw.as_slice() == bytes
        {
            return Ok(record.clone());
        }
        let record: Arc<SchemaRecord> = Arc::new(decode_json("sm_schemas", bytes)?);
        if cache.len() >= SCHEMA_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (bytes.to_vec(), record.clone()));
        Ok(record)
    }
}
