//! The apply worker's cache of the records it reads back on every write: a config's record
//! (its metadata decides the write's version, creation time and preconditions) and its key's
//! history bookkeeping (the window, the successor links, the compacted marker).
//!
//! Why: under overwrites these were five point reads of fjall per write, and a point read
//! searches every memtable and the tables below them: 11 % of a node's CPU in a profile at
//! c=64 (`store/DESIGN.md`). The record a write's retention drops is a hundred writes of its
//! key old, so its successor link had long left the memtables.
//!
//! Owns: a bounded map from a (keyspace, key) to its committed value or its absence. Apply's
//! reads fill it from fjall (which holds exactly the committed state: apply is its only
//! writer), and each committed batch writes its cached kinds of records through, after the
//! commit, so the cache never holds anything that is not committed. Does not own: the
//! records' meaning (`configs.rs`, `history.rs`), nor reads outside apply (the API reads
//! fjall). Whatever replaces the state outside apply (a snapshot installed, a backup
//! restored) clears it, before and after.

use std::collections::HashMap;
use std::sync::Mutex;

use super::keys::Ks;

/// The bytes of records the cache holds at most (keys and values, plus a fixed cost per
/// entry); past it, it starts over. Under overwrites of 1,000 keys keeping 100 revisions
/// each it holds about 8 MiB (mostly successor links).
pub(super) const APPLY_CACHE_BYTES: usize = 32 << 20;

/// What an entry costs beyond its key and value bytes (the map's own bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

type Value = Option<Vec<u8>>;

/// Committed records apply reads back, by keyspace and key (`None`: absent).
pub(super) struct ApplyCache {
    capacity: usize,
    /// Only the apply worker uses it (and a snapshot install, which openraft never runs
    /// beside an apply), so the lock is never contended: a plain map costs less than a
    /// concurrent cache (quick_cache took 3.5 % of a node's CPU here, the map a fraction).
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<(Ks, Vec<u8>), Value>,
    bytes: usize,
}

fn weight(key: &[u8], value: &Value) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl Default for ApplyCache {
    fn default() -> Self {
        Self::with_capacity(APPLY_CACHE_BYTES)
    }
}

impl ApplyCache {
    pub(super) fn with_capacity(bytes: usize) -> Self {
        Self {
            capacity: bytes,
            entries: Mutex::default(),
        }
    }

    /// Whether records of this kind are cached: config records, and the history keyspace's
    /// windows (`n\0`), successor links (`l\0`) and compacted markers (`c\0`). Not history
    /// records, index entries nor audit records: apply writes those and does not read them.
    pub(super) fn holds(ks: Ks, key: &[u8]) -> bool {
        match ks {
            Ks::Configs => true,
            Ks::History => matches!(key, [b'n' | b'l' | b'c', 0, ..]),
            _ => false,
        }
    }

    /// The committed value of a cached kind of record, if the cache has it.
    pub(super) fn get(&self, ks: Ks, key: &[u8]) -> Option<Value> {
        let entries = self.entries.lock().expect("apply cache");
        entries.map.get(&(ks, key.to_vec())).cloned()
    }

    /// Remembers committed values (read from fjall, or written by a committed batch).
    pub(super) fn put_all(&self, records: impl IntoIterator<Item = (Ks, Vec<u8>, Value)>) {
        let mut entries = self.entries.lock().expect("apply cache");
        for (ks, key, value) in records {
            let w = weight(&key, &value);
            if entries.bytes + w > self.capacity {
                // Starting over is simpler than an eviction order and, for a working set
                // larger than the cache, no worse: what apply reads next is refilled.
                entries.map.clear();
                entries.bytes = 0;
            }
            let key_len = key.len();
            if let Some(old) = entries.map.insert((ks, key), value) {
                entries.bytes -= key_len + weight(&[], &old);
            }
            entries.bytes += w;
        }
    }

    /// Forgets everything: the state was replaced outside apply.
    pub(super) fn clear(&self) {
        let mut entries = self.entries.lock().expect("apply cache");
        entries.map.clear();
        entries.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_apply_reads_back_are_cached() {
        assert!(ApplyCache::holds(Ks::Configs, b"stores/orders"));
        assert!(ApplyCache::holds(Ks::History, b"n\0stores/orders"));
        assert!(ApplyCache::holds(
            Ks::History,
            b"l\0stores/orders\x0000000000000000000042"
        ));
        assert!(ApplyCache::holds(Ks::History, b"c\0stores/orders"));
        assert!(!ApplyCache::holds(
            Ks::History,
            b"h\0stores/orders\x0000000000000000000042"
        ));
        assert!(!ApplyCache::holds(
            Ks::History,
            b"r\x0000000000000000000042\0stores/orders"
        ));
        assert!(!ApplyCache::holds(Ks::Audit, b"00000000000000000042"));
    }

    #[test]
    fn the_cache_keeps_its_byte_bound_and_counts_a_replaced_entry_once() {
        let cache = ApplyCache::with_capacity(64 << 10);
        // Each entry weighs 4 + 100 + 64 bytes.
        let fits = (64 << 10) / 168;
        let put =
            |i: u32| cache.put_all([(Ks::Configs, i.to_be_bytes().to_vec(), Some(vec![0; 100]))]);
        for _ in 0..3 {
            for i in 0..fits as u32 {
                put(i);
            }
        }
        // Overwriting the same entries never filled the cache.
        assert!((0..fits as u32).all(|i| cache.get(Ks::Configs, &i.to_be_bytes()).is_some()));
        put(fits as u32);
        let held = (0..=fits as u32)
            .filter(|i| cache.get(Ks::Configs, &i.to_be_bytes()).is_some())
            .count();
        assert_eq!(held, 1, "one past the bound starts over");
        assert_eq!(
            cache.get(Ks::Configs, &(fits as u32).to_be_bytes()),
            Some(Some(vec![0; 100]))
        );
    }
}
