//! The decode cache of schema records: a write compares the plugin digest of the version it
//! was validated at, and a record holds its whole JSON Schema, so decoding it on every write
//! cost more than the write's JSON Schema validation; reading it did too, three times a
//! write (the API's check that the version exists, the validator's, apply's).
//!
//! Owns: keeping decoded records, keyed by name and version, with the bytes they were decoded
//! from and the *generation* of the schema records they were read at. The generation moves
//! when a change to the schema keyspace begins and again once it is committed (or failed):
//! an apply call that writes one, a snapshot install, a restore
//! (`StateStore::schemas_changing`). So a record read at the current generation is the
//! stored one and needs no read. Read at an older one, it is read again, and the bytes
//! compared: the decode is kept if they did not change.
//! Does not own: where the bytes come from (`schemas.rs` reads, `configs.rs` checks a write
//! within an apply call).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::keys::decode_json;
use super::{SchemaRecord, StoreError};

/// Schema versions whose decoded records are kept at most (the cache starts over beyond).
const SCHEMA_CACHE_ENTRIES: usize = 1024;

/// A generation no read is made at: an entry decoded from bytes not yet committed (an apply
/// call's own) is never taken as current.
const UNCOMMITTED: u64 = u64::MAX;

struct Entry {
    raw: Vec<u8>,
    record: Arc<SchemaRecord>,
    /// The generation the bytes were read at.
    read_at: u64,
}

/// Decoded schema records with the bytes they were decoded from.
#[derive(Default)]
pub(super) struct SchemaCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, HashMap<u32, Entry>>>,
}

impl SchemaCache {
    /// The generation to read the schema records at: load it before reading them.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Called after a change to the schema records is committed (and before one starts, for
    /// changes committed in several batches): every entry must be read again.
    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The record of `name` v`version` if it was read at the current generation.
    pub(super) fn current(&self, name: &str, version: u32) -> Option<Arc<SchemaRecord>> {
        let generation = self.generation();
        let cache = self.entries.lock().expect("schema record cache");
        let entry = cache.get(name)?.get(&version)?;
        (entry.read_at == generation).then(|| entry.record.clone())
    }

    /// Decodes a stored schema record read at `read_at` (from [`Self::generation`], loaded
    /// before the read), or returns the one decoded earlier from the same bytes.
    pub(super) fn decode(
        &self,
        name: &str,
        version: u32,
        bytes: &[u8],
        read_at: u64,
    ) -> Result<Arc<SchemaRecord>, StoreError> {
        let mut cache = self.entries.lock().expect("schema record cache");
        if let Some(entry) = cache.get_mut(name).and_then(|v| v.get_mut(&version))
            && entry.raw.as_slice() == bytes
        {
            if read_at != UNCOMMITTED {
                entry.read_at = read_at;
            }
            return Ok(entry.record.clone());
        }
        let record: Arc<SchemaRecord> = Arc::new(decode_json("sm_schemas", bytes)?);
        if cache.values().map(HashMap::len).sum::<usize>() >= SCHEMA_CACHE_ENTRIES {
            cache.clear();
        }
        cache.entry(name.to_string()).or_default().insert(
            version,
            Entry {
                raw: bytes.to_vec(),
                record: record.clone(),
                read_at,
            },
        );
        Ok(record)
    }

    /// [`Self::decode`] for bytes not committed yet (an apply call's own schema records).
    pub(super) fn decode_uncommitted(
        &self,
        name: &str,
        version: u32,
        bytes: &[u8],
    ) -> Result<Arc<SchemaRecord>, StoreError> {
        self.decode(name, version, bytes, UNCOMMITTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(revision: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "name": "s", "version": 1, "schema": "{}", "plugin_digest": null,
            "revision": revision, "registered_at": 0, "registered_by": "t"
        }))
        .unwrap()
    }

    #[test]
    fn a_record_is_current_until_the_schemas_change_and_then_read_again() {
        let cache = SchemaCache::default();
        assert!(cache.current("s", 1).is_none());
        let g = cache.generation();
        let first = cache.decode("s", 1, &record(1), g).unwrap();
        assert_eq!(cache.current("s", 1).unwrap().revision, first.revision);
        cache.changed();
        assert!(cache.current("s", 1).is_none(), "read before the change");
        // The same bytes read again keep the decode and are current again.
        let again = cache
            .decode("s", 1, &record(1), cache.generation())
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(cache.current("s", 1).is_some());
        // Bytes read at a generation that has since moved are never current.
        let g = cache.generation();
        cache.changed();
        cache.decode("s", 1, &record(2), g).unwrap();
        assert!(cache.current("s", 1).is_none());
    }

    #[test]
    fn an_apply_calls_own_record_is_never_current() {
        let cache = SchemaCache::default();
        let r = cache.decode_uncommitted("s", 1, &record(3)).unwrap();
        assert_eq!(r.revision, 3);
        assert!(cache.current("s", 1).is_none());
    }
}
