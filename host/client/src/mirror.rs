//! A last-known-good mirror of the configs under some prefixes: served from memory, kept
//! current by a watch, kept on disk so that a service (or `scarab agent`) restarts with the
//! values it last saw and keeps serving them while the cluster is unreachable.
//!
//! How it follows the cluster, per prefix: a list (the revision of its first page is where
//! the watch starts, so nothing between pages is missed; replaying a change is harmless), then
//! a watch from that revision + 1. The revision reached is saved with the values, so after a
//! restart or a lost connection the watch resumes from it: no relist. Only a 410
//! `revision_compacted` (the cluster no longer has the changes since) relists.
//!
//! The cache is one file, written whole and atomically (temporary file, fsync, rename, fsync
//! of the directory), with a SHA-256 of its body in its first line: a file that does not
//! check out (damaged, cut short, for other prefixes) is discarded and rebuilt from the
//! cluster, never trusted half-read. Writes go to the cluster through [`Mirror::client`]:
//! the mirror never changes a value locally.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::options::{ListOptions, WatchOptions};
use crate::types::{ChangeKind, ConfigEntry, ErrorCode, WatchEvent};
use crate::{Client, Error};

/// What to mirror, and where to keep it.
#[derive(Clone, Debug)]
pub struct MirrorOptions {
    /// Keys starting with any of these.
    pub prefixes: Vec<String>,
    /// Values converted to this version of this schema (only configs of that schema).
    pub schema_version: Option<(String, u32)>,
    /// The cache file.
    pub cache: PathBuf,
    /// How often the watch reports progress while nothing changes: how soon a silent
    /// cluster is noticed (three times this), and how fresh [`Freshness::age`] stays.
    pub progress: Duration,
}

impl MirrorOptions {
    pub fn new(
        cache: impl Into<PathBuf>,
        prefixes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            prefixes: prefixes.into_iter().map(Into::into).collect(),
            schema_version: None,
            cache: cache.into(),
            progress: Duration::from_secs(1),
        }
    }
}

/// How current the mirror is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The lowest revision every prefix has caught up to (0: never synced).
    pub revision: u64,
    /// When the cluster last answered (a change, a progress event, a list); `None`: not
    /// since this process started.
    pub last_contact: Option<SystemTime>,
    /// Whether the watches are connected and caught up now.
    pub current: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// Keys whose latest change could not be converted to the pinned version: the last good
    /// value is kept, and the reason is here.
    pub conversion_errors: BTreeMap<String, String>,
}

impl Freshness {
    /// How long ago the cluster last answered (`None`: never).
    pub fn age(&self) -> Option<Duration> {
        self.last_contact
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    }
}

/// A change the mirror applied: keys put or deleted at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub revision: u64,
    pub changed: Vec<String>,
}

/// The mirrored state, as the cache file holds it.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct Saved {
    prefixes: Vec<String>,
    schema_version: Option<(String, u32)>,
    /// Per prefix: every change through this revision is in `entries`.
    revisions: BTreeMap<String, u64>,
    entries: BTreeMap<String, ConfigEntry>,
}

struct State {
    saved: Saved,
    freshness: Freshness,
    dirty: bool,
    /// Full reads of a prefix since start (the first, and one per compaction).
    relists: u64,
}

struct Inner {
    client: Client,
    opts: MirrorOptions,
    state: Mutex<State>,
    changes: tokio::sync::broadcast::Sender<Applied>,
    fresh: watch::Sender<Freshness>,
}

/// See the module docs. Cloning shares the mirror.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Why the cache could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cache {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

const MAGIC: &str = "scarab-mirror 1";

/// The cache file's bytes for `saved`: a header line with the body's SHA-256, then the body.
fn encode(saved: &Saved) -> Vec<u8> {
    let body = serde_json::to_vec(saved).expect("the mirror state serialises");
    let digest = hex(&Sha256::digest(&body));
    let mut out = format!("{MAGIC} {digest}\n").into_bytes();
    out.extend_from_slice(&body);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Saved, CacheError> {
    let damaged = |reason: &str| CacheError::Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| damaged("no header line"))?;
    let header =
        std::str::from_utf8(&bytes[..newline]).map_err(|_| damaged("header is not text"))?;
    let digest = header
        .strip_prefix(MAGIC)
        .map(str::trim)
        .ok_or_else(|| damaged("not a mirror cache of this version"))?;
    let body = &bytes[newline + 1..];
    if hex(&Sha256::digest(body)) != digest {
        return Err(damaged(
            "its checksum does not match (cut short or changed)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| damaged(&e.to_string()))
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, never part of
/// one: a temporary file beside it, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp{}-{n}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

impl Mirror {
    /// Starts mirroring: loads the cache (a damaged or foreign one is discarded), serves it at
    /// once, and follows the cluster in the background. Needs a tokio runtime.
    pub fn start(client: Client, opts: MirrorOptions) -> Self {
        let loaded = std::fs::read(&opts.cache)
            .ok()
            .and_then(|bytes| decode(&opts.cache, &bytes).ok())
            .filter(|s| s.prefixes == opts.prefixes && s.schema_version == opts.schema_version);
        let saved = loaded.unwrap_or_else(|| Saved {
            prefixes: opts.prefixes.clone(),
            schema_version: opts.schema_version.clone(),
            ..Saved::default()
        });
        let freshness = Freshness {
            revision: min_revision(&saved, &opts.prefixes),
            last_contact: None,
            current: false,
            error: None,
            conversion_errors: BTreeMap::new(),
        };
        let (fresh, _) = watch::channel(freshness.clone());
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let inner = Arc::new(Inner {
            client,
            opts: opts.clone(),
            state: Mutex::new(State {
                saved,
                freshness,
                dirty: false,
                relists: 0,
            }),
            changes,
            fresh,
        });
        let mut tasks: Vec<_> = opts
            .prefixes
            .iter()
            .map(|p| tokio::spawn(follow(inner.clone(), p.clone())))
            .collect();
        tasks.push(tokio::spawn(flush(inner.clone())));
        Self {
            inner,
            _task: Arc::new(TaskGuard(tasks)),
        }
    }

    /// The client the mirror follows with: writes go through it, to the cluster.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A config, from memory.
    pub fn get(&self, key: &str) -> Option<ConfigEntry> {
        self.state().saved.entries.get(key).cloned()
    }

    /// The configs whose keys start with `prefix`, in key order, from memory.
    pub fn list(&self, prefix: &str) -> Vec<ConfigEntry> {
        let state = self.state();
        state
            .saved
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// How many times a prefix was read in full since start: once each when there was no
    /// cache, and once more after each 410 `revision_compacted`; a restart or a lost
    /// connection resumes the watch instead.
    pub fn relists(&self) -> u64 {
        self.state().relists
    }

    pub fn freshness(&self) -> Freshness {
        self.state().freshness.clone()
    }

    /// Freshness as it changes (to wait until the mirror is current).
    pub fn subscribe_freshness(&self) -> watch::Receiver<Freshness> {
        self.inner.fresh.subscribe()
    }

    /// Every change applied from now on, as it is applied.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Applied> {
        self.inner.changes.subscribe()
    }

    /// Writes the cache now (it is also written within 100 ms of every change).
    pub fn save(&self) -> Result<(), CacheError> {
        save(&self.inner)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("mirror state")
    }
}

fn min_revision(saved: &Saved, prefixes: &[String]) -> u64 {
    prefixes
        .iter()
        .map(|p| saved.revisions.get(p).copied().unwrap_or(0))
        .min()
        .unwrap_or(0)
}

fn update<R>(inner: &Inner, f: impl FnOnce(&mut State) -> R) -> R {
    let mut state = inner.state.lock().expect("mirror state");
    let r = f(&mut state);
    state.freshness.revision = min_revision(&state.saved, &inner.opts.prefixes);
    inner.fresh.send_replace(state.freshness.clone());
    r
}

fn save(inner: &Inner) -> Result<(), CacheError> {
    let bytes = {
        let mut state = inner.state.lock().expect("mirror state");
        state.dirty = false;
        encode(&state.saved)
    };
    write_atomically(&inner.opts.cache, &bytes).map_err(|source| CacheError::Io {
        path: inner.opts.cache.clone(),
        source,
    })
}

/// Writes the cache within 100 ms of a change.
async fn flush(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let dirty = inner.state.lock().expect("mirror state").dirty;
        if dirty {
            let inner = inner.clone();
            let _ = tokio::task::spawn_blocking(move || save(&inner)).await;
        }
    }
}

/// Follows one prefix for ever: list when there is nothing to resume from (or the cluster
/// compacted past it), then watch; on a lost connection, wait and resume.
async fn follow(inner: Arc<Inner>, prefix: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let from = {
            let state = inner.state.lock().expect("mirror state");
            state.saved.revisions.get(&prefix).copied()
        };
        let result = match from {
            Some(revision) => watch_from(&inner, &prefix, revision + 1).await,
            None => relist(&inner, &prefix).await,
        };
        let error = match result {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Err(Error::Api(e)) if e.code == ErrorCode::RevisionCompacted => {
                // The changes since our revision are gone: read the state again.
                update(&inner, |s| {
                    s.saved.revisions.remove(&prefix);
                });
                continue;
            }
            Err(e) => e,
        };
        update(&inner, |s| {
            s.freshness.current = false;
            s.freshness.error = Some(error.to_string());
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn list_options(inner: &Inner, prefix: &str) -> ListOptions {
    let mut opts = ListOptions::prefix(prefix);
    if let Some((schema, version)) = &inner.opts.schema_version {
        opts.schema = Some(schema.clone());
        opts.schema_version = Some(*version);
    }
    opts
}

/// Reads every config under `prefix` and replaces the mirror's part for it.
async fn relist(inner: &Inner, prefix: &str) -> Result<(), Error> {
    let mut opts = list_options(inner, prefix);
    let mut entries = BTreeMap::new();
    let mut first_revision = None;
    loop {
        let page = inner.client.list_page(&opts).await?.body;
        first_revision.get_or_insert(page.revision);
        for e in page.items {
            entries.insert(e.meta.key.clone(), e);
        }
        match page.next {
            Some(after) => opts.after = Some(after),
            None => break,
        }
    }
    let revision = first_revision.unwrap_or(0);
    let changed = update(inner, |s| {
        let stale: Vec<String> = s
            .saved
            .entries
            .keys()
            .filter(|k| k.starts_with(prefix) && !entries.contains_key(*k))
            .cloned()
            .collect();
        let mut changed = stale.clone();
        for k in stale {
            s.saved.entries.remove(&k);
        }
        for (k, e) in entries {
            if s.saved.entries.get(&k) != Some(&e) {
                changed.push(k.clone());
                s.saved.entries.insert(k, e);
            }
        }
        s.saved.revisions.insert(prefix.to_string(), revision);
        s.freshness.last_contact = Some(SystemTime::now());
        s.dirty = true;
        s.relists += 1;
        changed
    });
    if !changed.is_empty() {
        let _ = inner.changes.send(Applied { revision, changed });
    }
    Ok(())
}

/// Applies the changes under `prefix` from `from` on, until the watch fails.
async fn watch_from(inner: &Inner, prefix: &str, from: u64) -> Result<(), Error> {
    let mut opts = WatchOptions::prefix(prefix);
    opts.from_revision = Some(from);
    opts.progress = Some(inner.opts.progress);
    // Give up after a round of failed connections, so that the mirror says it is stale.
    opts.max_reconnect_attempts = Some(2);
    if let Some((schema, version)) = &inner.opts.schema_version {
        opts.schema = Some(schema.clone());
        opts.schema_version = Some(*version);
    }
    let mut stream = inner.client.watch(opts);
    while let Some(event) = stream.next().await {
        match event? {
            WatchEvent::Progress(p) => update(inner, |s| {
                let r = s.saved.revisions.entry(prefix.to_string()).or_default();
                *r = (*r).max(p.revision);
                s.freshness.last_contact = Some(SystemTime::now());
                s.freshness.current = true;
                s.freshness.error = None;
                s.dirty = true;
            }),
            WatchEvent::Change(batch) => {
                let changed = update(inner, |s| {
                    let mut changed = Vec::new();
                    for c in batch.events {
                        let key = c.meta.key.clone();
                        if let Some(error) = &c.error {
                            // Not convertible to the pinned version: keep the last good value.
                            s.freshness
                                .conversion_errors
                                .insert(key, error.message.clone());
                            continue;
                        }
                        s.freshness.conversion_errors.remove(&key);
                        // Overlapping prefixes are followed by separate watches: never go
                        // back to an older state of a key.
                        if s.saved
                            .entries
                            .get(&key)
                            .is_some_and(|e| e.meta.revision > batch.revision)
                        {
                            continue;
                        }
                        match c.kind {
                            ChangeKind::Delete => {
                                s.saved.entries.remove(&key);
                            }
                            _ => {
                                s.saved.entries.insert(
                                    key.clone(),
                                    ConfigEntry {
                                        meta: c.meta,
                                        value: c.value,
                                    },
                                );
                            }
                        }
                        changed.push(key);
                    }
                    s.saved.revisions.insert(prefix.to_string(), batch.revision);
                    s.freshness.last_contact = Some(SystemTime::now());
                    s.freshness.current = true;
                    s.freshness.error = None;
                    s.dirty = true;
                    changed
                });
                if !changed.is_empty() {
                    let _ = inner.changes.send(Applied {
                        revision: batch.revision,
                        changed,
                    });
                }
            }
        }
    }
    Ok(())
}

/// `UNIX_EPOCH` milliseconds of a time (for callers rendering [`Freshness`]).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        let entry: ConfigEntry = serde_json::from_value(serde_json::json!({
            "key": "stores/a", "schema": "store", "schema_version": 1, "revision": 7,
            "key_version": 1, "created_at": "2026-12-01T00:00:00.000Z",
            "updated_at": "2026-12-01T00:00:00.000Z", "created_by": "x", "updated_by": "x",
            "plugin_digest": null, "value": {"n": 1}
        }))
        .unwrap();
        Saved {
            prefixes: vec!["stores/".into()],
            schema_version: None,
            revisions: BTreeMap::from([("stores/".into(), 7)]),
            entries: BTreeMap::from([("stores/a".into(), entry)]),
        }
    }

    #[test]
    fn a_cache_reads_back_only_whole_and_unchanged() {
        let path = Path::new("cache");
        let bytes = encode(&saved());
        let back = decode(path, &bytes).unwrap();
        assert_eq!(back.revisions, saved().revisions);
        assert_eq!(back.entries.len(), 1);
        // Cut short anywhere, or one byte changed: refused.
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(path, &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(matches!(
            decode(path, &flipped),
            Err(CacheError::Damaged { .. })
        ));
    }
}
