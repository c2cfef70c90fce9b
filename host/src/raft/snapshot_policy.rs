//! When this node builds a snapshot: once `--snapshot-threshold` entries were applied since
//! the last one *and* the log it appended since then is at least `--snapshot-log-ratio` times
//! the size of that snapshot's text (uncompressed: what building it again formats, compresses
//! and checksums; the file is LZ4 blocks, about a seventh of it at 256-byte configs).
//!
//! openraft 0.9 only counts entries (`SnapshotPolicy::LogsSinceLast`), so a snapshot of a
//! large state was rewritten every N entries however small they were: with a million audit
//! records kept, a 400 MB file every few seconds of writes. Here the work of rewriting the
//! state is paid for by as many bytes of log, so a snapshot costs a bounded share of the write
//! bandwidth (half of it at ratio 1) and the log between two snapshots stays about the size of
//! the state. The file's size was the measure at first: at 256-byte configs with 100,000
//! history and audit records kept, that rebuilt a 9 MiB file (65 MiB of text, about a second
//! of CPU) for every 9 MiB of log, every few seconds at c=16. openraft is configured with
//! `SnapshotPolicy::Never` and this task triggers builds; the purge after each build is
//! openraft's, as configured (`--log-keep`).
//!
//! Owns: the decision and the task that acts on it. Does not own: building the file
//! (`store::snapshot`) or counting appended bytes (`log_store`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Raft;
use crate::store::StateStore;

/// A build asked for that has not shown up in the metrics after this long (it failed, or
/// found nothing new) no longer holds back the next request.
const PENDING_FOR: Duration = Duration::from_secs(60);

/// The rule, apart from the task, so that it can be tested at its edges.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Entries applied since the last snapshot before another is built (at least 1).
    pub min_entries: u64,
    /// Log bytes appended since the last snapshot, per byte of that snapshot (0: no rule).
    pub log_ratio: f64,
}

impl Policy {
    /// Whether a snapshot is due with `entries` applied and `log_bytes` appended since the
    /// last one, whose file holds `snapshot_bytes` (0 without one).
    pub fn due(&self, entries: u64, log_bytes: u64, snapshot_bytes: u64) -> bool {
        entries >= self.min_entries.max(1)
            && log_bytes as f64 >= self.log_ratio * snapshot_bytes as f64
    }
}

/// Watches the applied index and asks openraft for a snapshot when [`Policy::due`]. `appended`
/// is the log store's count of bytes appended by this process. Ends when Raft shuts down.
pub async fn run(raft: Raft, store: Arc<StateStore>, appended: Arc<AtomicU64>, policy: Policy) {
    let mut metrics = raft.metrics();
    let mut last = metrics.borrow().snapshot;
    let mut snapshot_bytes = store.current_snapshot_text_bytes();
    // Log bytes counted from the last snapshot (or from this start: the entries appended
    // before it are not counted, which at worst delays the first snapshot by one period).
    let mut base = appended.load(Ordering::Relaxed);
    let mut pending: Option<Instant> = None;
    loop {
        if metrics.changed().await.is_err() {
            return;
        }
        let (snapshot, applied) = {
            let m = metrics.borrow();
            (m.snapshot, m.last_applied)
        };
        if snapshot != last {
            last = snapshot;
            snapshot_bytes = store.current_snapshot_text_bytes();
            // A snapshot installed from the leader restarts the count too.
            if pending.take().is_none() {
                base = appended.load(Ordering::Relaxed);
            }
        }
        if pending.is_some_and(|since| since.elapsed() < PENDING_FOR) {
            continue;
        }
        let entries = applied
            .map_or(0, |a| a.index)
            .saturating_sub(snapshot.map_or(0, |s| s.index));
        let log_bytes = appended.load(Ordering::Relaxed).saturating_sub(base);
        if policy.due(entries, log_bytes, snapshot_bytes) {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            base = appended.load(Ordering::Relaxed);
            pending = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Policy;

    #[test]
    fn a_snapshot_is_due_at_the_entry_threshold_and_not_one_before() {
        let p = Policy {
            min_entries: 100,
            log_ratio: 0.0,
        };
        assert!(!p.due(99, u64::MAX, 1 << 30));
        assert!(p.due(100, 0, 1 << 30));
    }

    #[test]
    fn a_large_snapshot_waits_for_as_many_bytes_of_log() {
        let p = Policy {
            min_entries: 10,
            log_ratio: 1.0,
        };
        let snapshot = 400 << 20;
        assert!(!p.due(1_000_000, snapshot - 1, snapshot));
        assert!(p.due(1_000_000, snapshot, snapshot));
        // Without a snapshot yet, the entries decide.
        assert!(p.due(10, 0, 0));
        let half = Policy {
            log_ratio: 0.5,
            ..p
        };
        assert!(half.due(10, snapshot / 2, snapshot));
        assert!(!half.due(10, snapshot / 2 - 1, snapshot));
    }
}
