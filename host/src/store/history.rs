//! Every revision of every config, deletes included, with per-key retention.
//!
//! One record per change, keyed `h\0{key}\0{revision:020}` in the `sm_history` keyspace (keys
//! never contain `\0`, and zero-padded revisions sort in order), holding the same bytes as the
//! config itself (metadata, a newline, the value; a tombstone has no value). Apply writes the
//! record with the change, in the same batch, and then drops the oldest records of that key
//! beyond the retention (`SmMeta::history.keep`, a replicated setting, so that every node
//! keeps exactly the same history). What was dropped is remembered as `c\0{key}` = the newest
//! dropped revision, so that a read of a dropped revision gets a clear error instead of a
//! wrong answer.

use serde::{Deserialize, Serialize};

use super::{
    ApplyTx, ConfigEntry, ConfigMeta, Ks, StateStore, StoreError, decode_config, encode_config,
};

/// How much history is kept (replicated: every node applies the same rule).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryRetention {
    /// Revisions kept per key, the current one included (at least 1).
    pub keep: u32,
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self { keep: 100 }
    }
}

fn record_prefix(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 3);
    k.extend_from_slice(b"h\0");
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

pub(super) fn record_key(key: &str, revision: u64) -> Vec<u8> {
    let mut k = record_prefix(key);
    k.extend_from_slice(format!("{revision:020}").as_bytes());
    k
}

fn compacted_key(key: &str) -> Vec<u8> {
    let mut k = b"c\0".to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

fn revision_of(record_key: &[u8]) -> Option<u64> {
    let digits = record_key.get(record_key.len().checked_sub(20)?..)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One page of a key's history, newest first.
pub struct HistoryPage {
    pub items: Vec<ConfigEntry>,
    /// More, older records exist: ask again with `before` = the last item's revision.
    pub more: bool,
    /// The newest revision dropped by retention, if any was.
    pub compacted_through: Option<u64>,
}

/// A key as of a revision.
pub enum AtRevision {
    /// The record in force at that revision (a tombstone if the key was deleted then).
    Found(ConfigEntry),
    /// The key had no record yet at that revision.
    Absent,
    /// The records that would answer were dropped by retention; `oldest` is the oldest
    /// revision still kept for this key.
    Compacted { oldest: Option<u64> },
}

impl StateStore {
    /// The history of `key`, newest first, strictly before revision `before` if given.
    pub fn history(
        &self,
        key: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let start = record_key(key, 0);
        let end = record_key(key, before.unwrap_or(u64::MAX));
        let mut items = Vec::new();
        let mut more = false;
        for guard in self.history.range(start..end).rev() {
            let (_, v) = guard.into_inner()?;
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(decode_config(&v)?);
        }
        Ok(HistoryPage {
            items,
            more,
            compacted_through: self.compacted_through(key)?,
        })
    }

    fn compacted_through(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .history
            .get(compacted_key(key))?
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok()))
    }

    /// `key` as it was at `revision`.
    pub fn config_at(&self, key: &str, revision: u64) -> Result<AtRevision, StoreError> {
        let start = record_key(key, 0);
        let end = record_key(key, revision);
        if let Some(guard) = self.history.range(start..=end).next_back() {
            let (_, v) = guard.into_inner()?;
            return Ok(AtRevision::Found(decode_config(&v)?));
        }
        if self.compacted_through(key)?.is_some() {
            let oldest = match self.history.prefix(record_prefix(key)).next() {
                Some(g) => revision_of(&g.key()?),
                None => None,
            };
            return Ok(AtRevision::Compacted { oldest });
        }
        Ok(AtRevision::Absent)
    }
}

impl ApplyTx<'_> {
    /// Records a change of `meta.key` (a tombstone has an empty `value`), then drops what the
    /// retention no longer keeps.
    pub(super) fn record_history(
        &mut self,
        meta: &ConfigMeta,
        value: &str,
    ) -> Result<(), StoreError> {
        self.put(
            Ks::History,
            record_key(&meta.key, meta.revision),
            encode_config(meta, value),
        );
        self.history_added
            .entry(meta.key.clone())
            .or_default()
            .push(meta.revision);
        let keep = self.meta.history.keep.max(1) as usize;
        let revisions = self.history_revisions(&meta.key)?;
        if revisions.len() > keep {
            let drop = revisions.len() - keep;
            for r in &revisions[..drop] {
                self.remove(Ks::History, record_key(&meta.key, *r));
            }
            self.put(
                Ks::History,
                compacted_key(&meta.key),
                revisions[drop - 1].to_string().into_bytes(),
            );
        }
        Ok(())
    }

    /// The revisions recorded for `key`, oldest first, this apply call's changes included.
    fn history_revisions(&self, key: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = record_prefix(key);
        let mut revisions = std::collections::BTreeSet::new();
        for g in self.store.history.prefix(&prefix) {
            let k = g.key()?;
            if self.overlay.get(&(Ks::History, k.to_vec())) == Some(&None) {
                continue;
            }
            revisions.extend(revision_of(&k));
        }
        for r in self.history_added.get(key).into_iter().flatten() {
            if self.overlay.get(&(Ks::History, record_key(key, *r))) != Some(&None) {
                revisions.insert(*r);
            }
        }
        Ok(revisions.into_iter().collect())
    }
}
