//! Every revision of every config, deletes included, with per-key retention.
//!
//! One record per change, keyed `h\0{key}\0{revision:020}` in the `sm_history` keyspace (keys
//! never contain `\0`, and zero-padded revisions sort in order), holding the same bytes as the
//! config itself (metadata, a newline, the value; a tombstone has no value). Apply writes the
//! record with the change, in the same batch, and then drops the oldest records of that key
//! beyond the retention (`SmMeta::history.keep`, a replicated setting, so that every node
//! keeps exactly the same history). What was dropped is remembered as `c\0{key}` = the newest
//! dropped revision, so that a read of a dropped revision gets a clear error instead of a
//! wrong answer. `n\0{key}` = "{oldest} {count}" of the key's records lets retention find
//! what to drop with point reads (a scan of the key's records cost a third of a write's CPU),
//! and `l\0{key}\0{revision:020}` = the key's next recorded revision links each record to
//! its successor, so that the new oldest after a drop is a point read too (a range read of
//! the key's records from there cost 9 % of a node's CPU under overwrites). A record dropped
//! out of order (age retention may) has its predecessor link past it; a record without a link
//! (written before links existed) falls back to that range read.
//!
//! A revision index, `r\0{revision:020}\0{key}` = the change's time (or `c` once its record
//! was dropped), lists the changes in revision order for watchers. Retention by age sweeps it
//! from the oldest end as apply goes (bounded work per command, with the command's own clock,
//! so every node drops the same records), dropping records older than the maximum age except
//! a key's live value, and removing the index entries it passed: `SmMeta::history_floor` is
//! the newest revision swept, below which a watch can no longer start.

use fjall::Readable;
use serde::{Deserialize, Serialize};

use super::apply::{ApplyTx, By};
use super::keys::{Ks, decode_config};
use super::{
    CommandResult, ConfigEntry, ConfigMeta, HistoryRetentionSet, SetHistoryRetention, StateStore,
    StoreError, read_meta,
};

/// How much history is kept (replicated: every node applies the same rule).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryRetention {
    /// Revisions kept per key, the current one included (at least 1).
    pub keep: u32,
    /// Records older than this are dropped too (a key's live value never is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
    /// The revision index keeps the newest this many revisions (a watch can resume from
    /// them); older entries are swept. With a maximum age, entries whose records are still
    /// kept stay until they are that old, so the age decides then. Not written when it is
    /// the default, so that the encoding of a setting without it is what it was.
    #[serde(
        default = "default_watch_window",
        skip_serializing_if = "is_default_watch_window"
    )]
    pub watch_window: u64,
}

/// Revisions a watcher can resume from by default: 10 s at 10,000 writes/s, a day at one
/// write a second; the index costs about 55 bytes per revision (in state and snapshots).
pub const DEFAULT_WATCH_WINDOW: u64 = 100_000;

fn default_watch_window() -> u64 {
    DEFAULT_WATCH_WINDOW
}

fn is_default_watch_window(w: &u64) -> bool {
    *w == DEFAULT_WATCH_WINDOW
}

impl Default for HistoryRetention {
    fn default() -> Self {
        Self {
            keep: 100,
            max_age_seconds: None,
            watch_window: DEFAULT_WATCH_WINDOW,
        }
    }
}

/// Index entries one command's sweep looks at, at most: a burst of old history is dropped
/// over the following commands rather than stalling one apply.
const SWEEP_BATCH: usize = 256;

/// Without a maximum age, the window is swept once this many revisions are past it, so that
/// a write pays for one range read per this many revisions rather than one each.
const WINDOW_SLACK: u64 = 64;

/// What the sweep does with one revision index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    /// Removed; its record dropped too when `too_old` (unless it is the live value).
    Pass { too_old: bool },
    /// A dropped record's entry inside the window, with an age: passed only if an entry after
    /// it is passed.
    Pending,
    /// Stays, and so does everything after it.
    Stop,
}

const CHANGE_PREFIX: &[u8] = b"r\0";
const CHANGE_END: &[u8] = b"r\x01";
const DROPPED: &[u8] = b"c";

fn change_key(revision: u64, key: &str) -> Vec<u8> {
    let mut k = CHANGE_PREFIX.to_vec();
    k.extend_from_slice(format!("{revision:020}").as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn parse_change_key(k: &[u8]) -> Result<(u64, String), StoreError> {
    let corrupt = || StoreError::Corrupt {
        keyspace: "sm_history",
        reason: format!("bad revision index key {:?}", String::from_utf8_lossy(k)),
    };
    let rest = k.strip_prefix(CHANGE_PREFIX).ok_or_else(corrupt)?;
    let digits = rest.get(..20).ok_or_else(corrupt)?;
    let revision = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(corrupt)?;
    let key = rest
        .get(21..)
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or_else(corrupt)?;
    Ok((revision, key.to_string()))
}

/// The changes under a prefix in a range of revisions, or why they cannot all be given.
pub enum Changes {
    /// In revision order (changes of one transaction share a revision, in key order), every
    /// change up to and including revision `through`.
    Found {
        entries: Vec<ConfigEntry>,
        through: u64,
    },
    /// A change under the prefix at or after the start was dropped by retention: the caller
    /// must re-read the state and watch from after it. `revision` is the first one lost.
    Compacted { revision: u64 },
}

impl StateStore {
    /// The changes of keys under `prefix` with a revision in `from..=to`, in one consistent
    /// read; at most about `max` of them (a revision is never split), and then `through`
    /// says how far they go.
    pub fn changes(
        &self,
        prefix: &str,
        from: u64,
        to: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Changes, StoreError> {
        let snap = self.db.snapshot();
        let floor = read_meta(&snap, &self.meta)?.history_floor;
        if from <= floor {
            return Ok(Changes::Compacted { revision: from });
        }
        let mut entries: Vec<ConfigEntry> = Vec::new();
        if from > to {
            return Ok(Changes::Found {
                entries,
                through: to,
            });
        }
        let end = change_key(to.saturating_add(1), "");
        let mut bytes = 0usize;
        for guard in snap.range(&self.history, change_key(from, "")..end) {
            let (k, v) = guard.into_inner()?;
            let (revision, key) = parse_change_key(&k)?;
            if !key.starts_with(prefix) {
                continue;
            }
            // A page ends at a revision boundary once it holds `max` changes or `max_bytes`
            // of values (a revision is never split, so one may exceed either).
            if let Some(last) = entries.last()
                && (entries.len() >= max || bytes >= max_bytes)
                && last.meta.revision != revision
            {
                let through = last.meta.revision;
                return Ok(Changes::Found { entries, through });
            }
            if &*v == DROPPED {
                return Ok(Changes::Compacted { revision });
            }
            match snap.get(&self.history, record_key(&key, revision))? {
                Some(record) => {
                    bytes += record.len();
                    entries.push(decode_config(&record)?)
                }
                None => return Ok(Changes::Compacted { revision }),
            }
        }
        Ok(Changes::Found {
            entries,
            through: to,
        })
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

fn window_key(key: &str) -> Vec<u8> {
    let mut k = b"n\0".to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// How many revisions of a key are recorded, and the oldest of them.
#[derive(Clone, Copy, Debug)]
struct Window {
    oldest: u64,
    count: u64,
}

impl Window {
    fn encode(self) -> Vec<u8> {
        format!("{} {}", self.oldest, self.count).into_bytes()
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let (oldest, count) = std::str::from_utf8(b).ok()?.split_once(' ')?;
        Some(Self {
            oldest: oldest.parse().ok()?,
            count: count.parse().ok()?,
        })
    }
}

/// The successor link of `key`'s record at `revision`.
fn link_key(key: &str, revision: u64) -> Vec<u8> {
    let mut k = b"l\0".to_vec();
    k.extend_from_slice(key.as_bytes());
    k.push(0);
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
        max_bytes: usize,
    ) -> Result<HistoryPage, StoreError> {
        let start = record_key(key, 0);
        let end = record_key(key, before.unwrap_or(u64::MAX));
        let mut items = Vec::new();
        let mut more = false;
        let mut bytes = 0usize;
        for guard in self.history.range(start..end).rev() {
            let (_, v) = guard.into_inner()?;
            if items.len() == limit || (!items.is_empty() && bytes >= max_bytes) {
                more = true;
                break;
            }
            bytes += v.len();
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
    /// `SetHistoryRetention`: the retention every node applies from now on (at least one
    /// revision per key is kept).
    pub(super) fn set_history_retention(
        &mut self,
        op: SetHistoryRetention,
        by: &By,
    ) -> Result<CommandResult, StoreError> {
        let SetHistoryRetention { retention } = op;
        self.meta.revision += 1;
        self.meta.history = HistoryRetention {
            keep: retention.keep.max(1),
            max_age_seconds: retention.max_age_seconds,
            watch_window: retention.watch_window.max(1),
        };
        let detail = serde_json::to_value(self.meta.history).expect("serialises");
        self.audit_other("settings.history", "settings/history".into(), by, detail);
        Ok(CommandResult::HistoryRetentionSet(HistoryRetentionSet {
            retention: self.meta.history,
            revision: self.meta.revision,
        }))
    }

    /// Records a change of `meta.key` (`record`: its metadata and value, as
    /// `keys::with_value` encodes them; a tombstone's value is empty), then drops what the
    /// retention no longer keeps. The newest record of a key is never dropped: it holds the
    /// live value (`configs.rs`).
    /// `previous` is the key's record before this change (live or tombstone), if any.
    pub(super) fn record_history(
        &mut self,
        meta: &ConfigMeta,
        record: Vec<u8>,
        previous: Option<&ConfigMeta>,
    ) -> Result<(), StoreError> {
        // The age sweep passed over the previous record while it was the live value; now that
        // it is not, it goes if it is too old.
        let mut link_from = previous.map(|p| p.revision);
        if let (Some(prev), Some(cutoff)) = (previous, self.age_cutoff(meta.updated_at))
            && prev.revision <= self.meta.history_floor
            && prev.updated_at < cutoff
        {
            self.drop_record(&prev.key, prev.revision)?;
            link_from = None;
        }
        if let Some(prev) = link_from.filter(|p| *p < meta.revision) {
            self.put(
                Ks::History,
                link_key(&meta.key, prev),
                meta.revision.to_string().into_bytes(),
            );
        }
        // Read before the new record is put: a store without a window counts its records.
        let mut window = self.window(&meta.key)?;
        self.put(Ks::History, record_key(&meta.key, meta.revision), record);
        let index_key = change_key(meta.revision, &meta.key);
        self.index_added.insert(index_key.clone());
        self.put(
            Ks::History,
            index_key,
            meta.updated_at.to_string().into_bytes(),
        );
        self.history_added
            .entry(meta.key.clone())
            .or_default()
            .push(meta.revision);
        let keep = u64::from(self.meta.history.keep.max(1));
        window.count += 1;
        if window.count == 1 {
            window.oldest = meta.revision;
        }
        self.put_window(&meta.key, window);
        while window.count > keep {
            self.drop_record(&meta.key, window.oldest)?;
            window = self.window(&meta.key)?;
        }
        Ok(())
    }

    /// The key's recorded revisions as a count and the oldest, so that retention costs a
    /// point read per write rather than a scan of the key's history. Kept under `n\0{key}`;
    /// a store written before the window existed has none, and then it is counted once.
    fn window(&self, key: &str) -> Result<Window, StoreError> {
        if let Some(b) = self.get(Ks::History, &window_key(key))? {
            return Window::decode(&b).ok_or_else(|| StoreError::Corrupt {
                keyspace: "sm_history",
                reason: format!("bad history window of {key}"),
            });
        }
        let revisions = self.history_revisions(key)?;
        Ok(Window {
            oldest: revisions.first().copied().unwrap_or(0),
            count: revisions.len() as u64,
        })
    }

    fn put_window(&mut self, key: &str, window: Window) {
        if window.count == 0 {
            self.remove(Ks::History, window_key(key));
        } else {
            self.put(Ks::History, window_key(key), window.encode());
        }
    }

    /// The record's successor link, if it has one.
    fn link(&self, key: &str, revision: u64) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get(Ks::History, &link_key(key, revision))?
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse::<u64>().ok())
            .filter(|next| *next > revision))
    }

    /// The oldest recorded revision of `key` after `after` by a range read of the key's
    /// records, this apply call's changes included (when `after` has no link).
    fn next_revision(&self, key: &str, after: u64) -> Result<Option<u64>, StoreError> {
        let mut end = record_prefix(key);
        *end.last_mut().expect("prefix ends in NUL") = 1;
        let mut next = None;
        for g in self.store.history.range(record_key(key, after + 1)..end) {
            let k = g.key()?;
            if self.overlay.get(&(Ks::History, k.to_vec())) == Some(&None) {
                continue;
            }
            next = revision_of(&k);
            break;
        }
        for r in self.history_added.get(key).into_iter().flatten() {
            if *r > after
                && next.is_none_or(|n| *r < n)
                && self.overlay.get(&(Ks::History, record_key(key, *r))) != Some(&None)
            {
                next = Some(*r);
            }
        }
        Ok(next)
    }

    /// The newest recorded revision of `key` before `before`, this apply call's changes
    /// included (only for a record dropped out of order, which age retention may do).
    fn previous_revision(&self, key: &str, before: u64) -> Result<Option<u64>, StoreError> {
        let mut previous = None;
        for g in self
            .store
            .history
            .range(record_key(key, 0)..record_key(key, before))
            .rev()
        {
            let k = g.key()?;
            if self.overlay.get(&(Ks::History, k.to_vec())) == Some(&None) {
                continue;
            }
            previous = revision_of(&k);
            break;
        }
        for r in self.history_added.get(key).into_iter().flatten() {
            if *r < before
                && previous.is_none_or(|p| *r > p)
                && self.overlay.get(&(Ks::History, record_key(key, *r))) != Some(&None)
            {
                previous = Some(*r);
            }
        }
        Ok(previous)
    }

    /// Drops one record and remembers it (for readers of the key and watchers).
    fn drop_record(&mut self, key: &str, revision: u64) -> Result<(), StoreError> {
        let mut window = self.window(key)?;
        self.remove(Ks::History, record_key(key, revision));
        window.count = window.count.saturating_sub(1);
        let next = self.link(key, revision)?;
        self.remove(Ks::History, link_key(key, revision));
        if window.oldest == revision {
            if window.count > 0 {
                window.oldest = match next {
                    Some(n) => n,
                    None => self.next_revision(key, revision)?.unwrap_or(0),
                };
            }
        } else if let Some(previous) = self.previous_revision(key, revision)? {
            // Out of order: the record before it now links past it (or has no link, and a
            // range read finds its successor when it is dropped).
            match next {
                Some(n) => self.put(
                    Ks::History,
                    link_key(key, previous),
                    n.to_string().into_bytes(),
                ),
                None => self.remove(Ks::History, link_key(key, previous)),
            }
        }
        self.put_window(key, window);
        let marker = compacted_key(key);
        let newest = match self.get(Ks::History, &marker)? {
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
                .max(revision),
            None => revision,
        };
        self.put(Ks::History, marker, newest.to_string().into_bytes());
        // Index entries at or below the floor are already gone.
        if revision > self.meta.history_floor {
            self.put(Ks::History, change_key(revision, key), DROPPED.to_vec());
        }
        Ok(())
    }

    /// Records written before this are too old (`None`: no maximum age).
    fn age_cutoff(&self, now_ms: u64) -> Option<u64> {
        let max_age = self.meta.history.max_age_seconds?;
        Some(now_ms.saturating_sub(max_age.saturating_mul(1000)))
    }

    /// Sweeps the revision index from its oldest end (see the module doc): drops history
    /// older than the maximum age, and index entries past the watch window, removing the
    /// entries it passes. Runs after every command with that command's clock.
    ///
    /// It passes whole revisions only (a transaction's changes share one), so that a watch
    /// from after the floor gets every change of a revision or is told it cannot; and it
    /// reads this apply call's own entries from the overlay, so that every node sweeps the
    /// same entries however its apply calls grouped the log.
    pub(super) fn sweep_history(&mut self, now_ms: u64) -> Result<(), StoreError> {
        let cutoff = self.age_cutoff(now_ms);
        // Entries at or below this revision are outside the watch window.
        let window_floor = self
            .meta
            .revision
            .saturating_sub(self.meta.history.watch_window);
        if cutoff.is_none() && window_floor < self.meta.history_floor + WINDOW_SLACK {
            return Ok(());
        }
        let start = change_key(self.meta.history_floor.saturating_add(1), "");
        let mut stored = self
            .store
            .history
            .range(start.clone()..CHANGE_END.to_vec())
            .map(|g| g.into_inner())
            .peekable();
        let mut added = self
            .index_added
            .range(start..CHANGE_END.to_vec())
            .cloned()
            .peekable();
        let mut scanned: Vec<(u64, String, Sweep)> = Vec::new();
        // The revision of the first entry not passed, if the scan stopped before the end.
        let mut stopped_at = None;
        loop {
            // The next index entry in key order, from fjall or from this apply call.
            let from_fjall = match (stored.peek(), added.peek()) {
                (None, None) => break,
                (Some(Ok((k, _))), Some(a)) => a.as_slice() >= &k[..],
                // An error: taken from fjall, where `?` returns it.
                (Some(Err(_)), _) | (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let (k, stored_value) = if from_fjall {
                let (k, v) = stored.next().expect("peeked")?;
                if added.peek().is_some_and(|a| a.as_slice() == &k[..]) {
                    added.next();
                }
                (k.to_vec(), Some(v.to_vec()))
            } else {
                (added.next().expect("peeked"), None)
            };
            let value = match (self.overlay.get(&(Ks::History, k.clone())), stored_value) {
                (Some(Some(v)), _) => v.clone(),
                (None, Some(v)) => v,
                // Removed by this apply call (or, for an added key, never put).
                _ => continue,
            };
            let (revision, key) = parse_change_key(&k)?;
            if scanned.len() >= SWEEP_BATCH && scanned.last().is_some_and(|s| s.0 != revision) {
                stopped_at = Some(revision);
                break;
            }
            let past_window = revision <= window_floor;
            let sweep = if value == DROPPED {
                if past_window {
                    Sweep::Pass { too_old: false }
                } else if cutoff.is_some() {
                    // Its record is gone: it goes with an older-than-the-age entry after it.
                    Sweep::Pending
                } else {
                    Sweep::Stop
                }
            } else {
                let at: u64 = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        keyspace: "sm_history",
                        reason: format!("bad revision index entry for {key}@{revision}"),
                    })?;
                if cutoff.is_some_and(|c| at < c) {
                    Sweep::Pass { too_old: true }
                } else if past_window && cutoff.is_none() {
                    // Without an age, the record is left to `keep`.
                    Sweep::Pass { too_old: false }
                } else {
                    // Young, or past the window while the age has yet to decide on it.
                    Sweep::Stop
                }
            };
            if sweep == Sweep::Stop {
                stopped_at = Some(revision);
                break;
            }
            scanned.push((revision, key, sweep));
        }
        // Pending entries after the last one passed stay.
        let passing = scanned
            .iter()
            .rposition(|s| matches!(s.2, Sweep::Pass { .. }))
            .map_or(0, |i| i + 1);
        if passing < scanned.len() {
            stopped_at = Some(scanned[passing].0);
            scanned.truncate(passing);
        }
        // A revision is passed whole or not at all.
        if let Some(r) = stopped_at {
            while scanned.last().is_some_and(|s| s.0 == r) {
                scanned.pop();
            }
        }
        for (revision, key, sweep) in scanned {
            self.remove(Ks::History, change_key(revision, &key));
            self.meta.history_floor = revision;
            if sweep != (Sweep::Pass { too_old: true }) {
                continue;
            }
            let live = self
                .live_meta(&key)?
                .is_some_and(|m| m.revision == revision);
            if !live {
                self.drop_record(&key, revision)?;
            }
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

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    #[test]
    fn changes_come_in_revision_order_and_a_dropped_one_is_reported() {
        let mut f = Fixture::keeping(2);
        let first = written(f.put("w/a", "1", Precondition::None)).revision;
        written(f.put("other", "1", Precondition::None));
        written(f.put("w/b", "1", Precondition::None));
        let Changes::Found { entries, .. } = f
            .store
            .changes("w/", first, u64::MAX, 100, usize::MAX)
            .unwrap()
        else {
            panic!("nothing is compacted yet")
        };
        let keys: Vec<_> = entries.iter().map(|e| e.meta.key.as_str()).collect();
        assert_eq!(keys, ["w/a", "w/b"]);
        written(f.put("w/a", "2", Precondition::None));
        written(f.put("w/a", "3", Precondition::None));
        assert!(matches!(
            f.store.changes("w/", first, u64::MAX, 100, usize::MAX).unwrap(),
            Changes::Compacted { revision } if revision == first
        ));
        // Another prefix does not care.
        assert!(matches!(
            f.store
                .changes("other", first, u64::MAX, 100, usize::MAX)
                .unwrap(),
            Changes::Found { .. }
        ));
    }

    /// The revisions of `a` kept, oldest first.
    fn revisions(f: &Fixture) -> Vec<u64> {
        let page = f.store.history("a", None, 100, usize::MAX).unwrap();
        page.items.iter().rev().map(|e| e.meta.revision).collect()
    }

    #[test]
    fn count_retention_follows_successor_links_and_reads_the_range_without_them() {
        let mut f = Fixture::keeping(3);
        let links = |f: &Fixture| -> Vec<Vec<u8>> {
            f.store
                .history
                .prefix(b"l\0a\0")
                .map(|g| g.key().unwrap().to_vec())
                .collect()
        };
        let mut written_revs = Vec::new();
        for i in 0..10 {
            written_revs.push(written(f.put("a", &i.to_string(), Precondition::None)).revision);
        }
        assert_eq!(revisions(&f), written_revs[7..]);
        // One link from each kept record but the newest: dropped records leave none behind.
        assert_eq!(
            links(&f),
            [
                super::link_key("a", written_revs[7]),
                super::link_key("a", written_revs[8])
            ]
        );
        // A store written before links existed finds the next oldest by a range read.
        for k in links(&f) {
            f.store.history.remove(k).unwrap();
        }
        for i in 10..13 {
            written_revs.push(written(f.put("a", &i.to_string(), Precondition::None)).revision);
        }
        assert_eq!(revisions(&f), written_revs[10..]);
        assert_eq!(links(&f).len(), 2);
    }

    #[test]
    fn a_record_dropped_out_of_order_is_linked_past() {
        let mut f = Fixture::new();
        f.schema();
        let retention = |keep, max_age_seconds| {
            Op::SetHistoryRetention(SetHistoryRetention {
                retention: HistoryRetention {
                    keep,
                    max_age_seconds,
                    watch_window: 1,
                },
            })
        };
        f.apply(retention(100, None));
        let a: Vec<u64> = (0..5)
            .map(|i| written(f.put("a", &i.to_string(), Precondition::None)).revision)
            .collect();
        // The window sweeps the index past `a`'s records while no age is set...
        for i in 0..100 {
            written(f.put(&format!("o/{i}"), "1", Precondition::None));
        }
        assert!(f.store.applied().history_floor > a[4]);
        // ...so once an age is, overwriting `a` drops its old live record, but not the older
        // ones the window passed: a record dropped from the middle.
        f.apply(retention(100, Some(60)));
        f.index += 120_000;
        let a5 = written(f.put("a", "5", Precondition::None)).revision;
        assert_eq!(revisions(&f), [a[0], a[1], a[2], a[3], a5]);
        // Count retention walks the links from the oldest, across the gap.
        f.apply(retention(2, None));
        let a6 = written(f.put("a", "6", Precondition::None)).revision;
        assert_eq!(revisions(&f), [a5, a6]);
        let a7 = written(f.put("a", "7", Precondition::None)).revision;
        assert_eq!(revisions(&f), [a6, a7]);
    }

    #[test]
    fn age_retention_drops_old_records_but_keeps_live_values() {
        let mut f = Fixture::new();
        f.schema();
        let old = written(f.put("a", "1", Precondition::None));
        written(f.put("a", "2", Precondition::None));
        let live_b = written(f.put("b", "1", Precondition::None));
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 100,
                max_age_seconds: Some(60),
                ..Default::default()
            },
        }));
        // The fixture's clock is 1 s plus the log index: jump it past the maximum age.
        f.index += 120_000;
        written(f.put("c", "1", Precondition::None));
        assert!(matches!(
            f.store.config_at("a", old.revision).unwrap(),
            AtRevision::Compacted { .. }
        ));
        assert!(matches!(
            f.store.config_at("b", live_b.revision).unwrap(),
            AtRevision::Found(_)
        ));
        assert!(f.store.applied().history_floor >= live_b.revision);
        assert!(matches!(
            f.store
                .changes("", old.revision, u64::MAX, 100, usize::MAX)
                .unwrap(),
            Changes::Compacted { .. }
        ));
        // Once overwritten, the old live value goes too.
        written(f.put("b", "2", Precondition::None));
        assert!(matches!(
            f.store.config_at("b", live_b.revision).unwrap(),
            AtRevision::Compacted { .. }
        ));
    }

    #[test]
    fn count_retention_keeps_the_newest_revisions_within_a_batch_and_without_a_window() {
        let mut f = Fixture::keeping(3);
        let mut written_revs = Vec::new();
        for i in 0..5 {
            written_revs.push(written(f.put("a", &i.to_string(), Precondition::None)).revision);
        }
        assert_eq!(revisions(&f), written_revs[2..]);
        // Five writes of the key in one entry: retention sees its own batch's records.
        f.index += 1;
        let cmds = (0..5)
            .map(|i| {
                Command::new(
                    "tester".into(),
                    1_000 + f.index,
                    Op::PutConfig(PutConfig {
                        key: "a".into(),
                        schema: "s".into(),
                        schema_version: 1,
                        plugin_digest: None,
                        value: format!("{}", 10 + i),
                        precondition: Precondition::None,
                    }),
                )
            })
            .collect();
        let entry = (
            LogId::new(CommittedLeaderId::new(1, 1), f.index),
            Change::Commands(cmds),
        );
        let batch: Vec<u64> = f
            .store
            .apply_batch([entry])
            .unwrap()
            .remove(0)
            .into_iter()
            .map(|r| written(r).revision)
            .collect();
        assert_eq!(revisions(&f), batch[2..]);
        // A store written before the window record existed is counted once, then trimmed.
        f.store.history.remove(b"n\0a").unwrap();
        let last = written(f.put("a", "99", Precondition::None)).revision;
        assert_eq!(revisions(&f), vec![batch[3], batch[4], last]);
        let deleted = match f.apply(Op::DeleteConfig(DeleteConfig {
            key: "a".into(),
            precondition: Precondition::None,
        })) {
            CommandResult::ConfigDeleted(ConfigDeleted { meta }) => meta.revision,
            other => panic!("expected a delete, got {other:?}"),
        };
        assert_eq!(revisions(&f), vec![batch[4], last, deleted]);
    }

    fn index_entries(f: &Fixture) -> usize {
        f.store.history.prefix(b"r\0").count()
    }

    #[test]
    fn the_revision_index_keeps_the_watch_window_and_the_records_stay() {
        let mut f = Fixture::new();
        f.schema();
        let window = 10;
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 100,
                max_age_seconds: None,
                watch_window: window,
            },
        }));
        let mut last = 0;
        for i in 0..500 {
            last =
                written(f.put(&format!("k{}", i % 5), &i.to_string(), Precondition::None)).revision;
        }
        let floor = f.store.applied().history_floor;
        // Swept once WINDOW_SLACK revisions are past the window: never more than that.
        assert!(floor <= last - window, "floor {floor}, last {last}");
        assert!(
            floor + window + super::WINDOW_SLACK >= last,
            "floor {floor}, last {last}"
        );
        assert!(index_entries(&f) as u64 <= window + super::WINDOW_SLACK);
        // At the window's edge a watch resumes; at the floor it is told it cannot.
        assert!(matches!(
            f.store
                .changes("", last - window + 1, u64::MAX, 100, usize::MAX)
                .unwrap(),
            Changes::Found { entries, .. } if entries.len() as u64 == window
        ));
        assert!(matches!(
            f.store.changes("", floor, u64::MAX, 100, usize::MAX).unwrap(),
            Changes::Compacted { revision } if revision == floor
        ));
        // The window bounds the index, not the history: each key keeps its 100 revisions.
        let page = f.store.history("k0", None, 1000, usize::MAX).unwrap();
        assert_eq!(page.items.len(), 100);
    }

    #[test]
    fn with_a_maximum_age_the_index_keeps_what_the_age_has_yet_to_drop() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 1000,
                max_age_seconds: Some(60),
                watch_window: 1,
            },
        }));
        let first = written(f.put("a", "0", Precondition::None)).revision;
        for i in 1..200 {
            written(f.put("a", &i.to_string(), Precondition::None));
        }
        // Far past the window, but young: the age sweep still has to see these records.
        assert!(f.store.applied().history_floor < first);
        f.index += 120_000;
        let last = written(f.put("a", "last", Precondition::None)).revision;
        // The sweep goes 256 entries per command: one more write clears the rest.
        written(f.put("b", "1", Precondition::None));
        assert!(f.store.applied().history_floor >= last - 1);
        assert!(matches!(
            f.store.config_at("a", first).unwrap(),
            AtRevision::Compacted { .. }
        ));
        assert!(index_entries(&f) <= 2);
    }

    fn index_keys(f: &Fixture) -> Vec<Vec<u8>> {
        f.store
            .history
            .prefix(b"r\0")
            .map(|g| g.key().unwrap().to_vec())
            .collect()
    }

    fn put_op(key: &str, value: &str) -> Op {
        Op::PutConfig(PutConfig {
            key: key.into(),
            schema: "s".into(),
            schema_version: 1,
            plugin_digest: None,
            value: value.into(),
            precondition: Precondition::None,
        })
    }

    /// A follower that applies the same log in other groupings sweeps the same entries.
    #[test]
    fn the_sweep_is_the_same_however_the_log_is_grouped_into_apply_calls() {
        let retention = SetHistoryRetention {
            retention: HistoryRetention {
                keep: 100,
                max_age_seconds: None,
                watch_window: 1,
            },
        };
        let mut one_by_one = Fixture::new();
        one_by_one.schema();
        one_by_one.apply(Op::SetHistoryRetention(retention.clone()));
        let mut together = Fixture::new();
        together.schema();
        together.apply(Op::SetHistoryRetention(retention));
        for i in 0..100 {
            one_by_one.apply(put_op(&format!("k{}", i % 7), &i.to_string()));
        }
        let base = together.index;
        let entries: Vec<_> = (0..100u64)
            .map(|i| {
                (
                    LogId::new(CommittedLeaderId::new(1, 1), base + 1 + i),
                    Change::Commands(vec![Command::new(
                        "tester".into(),
                        1_000 + base + 1 + i,
                        put_op(&format!("k{}", i % 7), &i.to_string()),
                    )]),
                )
            })
            .collect();
        together.store.apply_batch(entries).unwrap();
        assert!(one_by_one.store.applied().history_floor > 0);
        assert_eq!(
            one_by_one.store.applied().history_floor,
            together.store.applied().history_floor
        );
        assert_eq!(index_keys(&one_by_one), index_keys(&together));
    }

    /// A transaction's changes share a revision: the sweep passes all of them or none, even
    /// past its batch of 256 entries, so a watch never gets part of a transaction.
    #[test]
    fn the_sweep_passes_a_transactions_revision_whole() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 100,
                max_age_seconds: None,
                watch_window: 1,
            },
        }));
        let ops = (0..300)
            .map(|i| TxnOp::Put {
                key: format!("t/{i:03}"),
                schema: "s".into(),
                schema_version: 1,
                plugin_digest: None,
                value: "1".into(),
            })
            .collect();
        let txn = match f.apply(Op::Txn(Txn {
            conditions: vec![],
            ops,
        })) {
            CommandResult::TxnApplied(t) => t.revision,
            other => panic!("expected a transaction, got {other:?}"),
        };
        for i in 0..70 {
            written(f.put("after", &i.to_string(), Precondition::None));
        }
        let floor = f.store.applied().history_floor;
        let prefix = format!("r\0{txn:020}\0");
        let left = f.store.history.prefix(prefix.as_bytes()).count();
        assert!(
            (floor >= txn && left == 0) || (floor < txn && left == 300),
            "floor {floor}, transaction at {txn}, {left} of its entries left"
        );
        assert!(
            floor >= txn,
            "the window is 1: the transaction is long past it"
        );
    }

    /// With a maximum age, the entries of records `keep` already dropped do not hold the age
    /// sweep back.
    #[test]
    fn dropped_records_do_not_stall_the_age_sweep() {
        let mut f = Fixture::new();
        f.schema();
        f.apply(Op::SetHistoryRetention(SetHistoryRetention {
            retention: HistoryRetention {
                keep: 1,
                max_age_seconds: Some(60),
                watch_window: 1_000_000,
            },
        }));
        for i in 0..3 {
            written(f.put("a", &i.to_string(), Precondition::None));
        }
        let b = written(f.put("b", "1", Precondition::None)).revision;
        f.index += 120_000;
        written(f.put("c", "1", Precondition::None));
        assert!(
            f.store.applied().history_floor >= b,
            "floor {} < {b}",
            f.store.applied().history_floor
        );
    }
}
