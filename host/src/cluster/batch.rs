//! Group commit at the proposal level: commands proposed while earlier ones are being
//! committed travel together in one Raft entry.
//!
//! openraft 0.9 runs its commands in order, and a command waiting for the log to be flushed
//! holds back the appends queued behind it. So concurrent `client_write`s would each get an
//! fsync of their own (measured: one fsync per write, about 2,000 writes/s at any
//! concurrency). Batching here makes concurrency share fsyncs whatever the engine does.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{ClusterError, Forwarded, Stage};
use crate::raft::Raft;
use crate::store::{Command, CommandResult};

/// Commands in one entry at most; a full batch is followed at once by the next.
const MAX_BATCH: usize = 512;
/// Value bytes in one entry at most (one larger value still travels alone). Small, because
/// openraft 0.9 gives an AppendEntries only a heartbeat interval to reach a follower.
const MAX_BATCH_BYTES: usize = 256 << 10;
/// Batches in flight at once: one being flushed, one being applied and answered.
const IN_FLIGHT: usize = 2;

type Waiter = oneshot::Sender<Forwarded<CommandResult>>;

/// The proposal queue of the leader. It is bounded (`--max-pending-proposals`): when writes
/// arrive faster than the log commits them, the ones past the bound are refused at once
/// (`ClusterError::Overloaded`, nothing proposed, safe to retry) instead of queueing memory
/// and latency without limit.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(Command, Waiter)>,
    limit: usize,
}

impl Batcher {
    pub fn start(raft: Raft, limit: usize) -> Self {
        let (tx, rx) = mpsc::channel(limit.max(1));
        tokio::spawn(run(raft, rx));
        Self { tx, limit }
    }

    /// Proposes `cmd` (this node must be the leader) and waits for its applied result.
    pub async fn propose(&self, cmd: Command) -> Forwarded<CommandResult> {
        let (tx, rx) = oneshot::channel();
        match self.tx.try_send((cmd, tx)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Forwarded::Err(ClusterError::Overloaded { limit: self.limit });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Forwarded::Err(ClusterError::ShuttingDown);
            }
        }
        // Queued: from here on, a lost answer is an unknown outcome, not a refusal.
        rx.await.unwrap_or_else(|_| {
            Forwarded::Err(ClusterError::WriteInterrupted(
                "the node stopped".to_string(),
            ))
        })
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<(Command, Waiter)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // Everything that queued while the previous batches were in flight goes now.
        let mut bytes = first.0.value_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(item) => {
                    bytes += item.0.value_bytes();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (cmds, waiters): (Vec<Command>, Vec<Waiter>) = batch.into_iter().unzip();
            let m = crate::metrics::get();
            m.proposals.inc();
            m.proposal_batch.observe(cmds.len() as f64);
            match raft.client_write(cmds).await {
                Ok(resp) => {
                    for (waiter, result) in waiters.into_iter().zip(resp.data) {
                        let _ = waiter.send(Forwarded::Ok(result));
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    for waiter in waiters {
                        let _ = waiter.send(Forwarded::NotLeader);
                    }
                }
                Err(e) => {
                    // openraft took the batch: whether it was appended is not known.
                    let e = ClusterError::WriteInterrupted(e.to_string());
                    for waiter in waiters {
                        let _ = waiter.send(Forwarded::Err(e.clone()));
                    }
                }
            }
        });
    }
}

type ReadWaiter = oneshot::Sender<Forwarded<u64>>;

/// Coalesces read-index requests on the leader: every request that arrives while a round
/// (a heartbeat to a quorum) is in flight is answered by the next round. A round that starts
/// after a request arrived gives it a valid read index, so reads stay linearizable while
/// sharing the quorum round trip.
#[derive(Clone)]
pub struct ReadIndexBatcher {
    tx: mpsc::UnboundedSender<ReadWaiter>,
}

impl ReadIndexBatcher {
    pub fn start(raft: Raft, timeout: std::time::Duration) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<ReadWaiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let outcome = match tokio::time::timeout(timeout, raft.get_read_log_id()).await {
                    Err(_) => Forwarded::Err(ClusterError::Timeout(Stage::ConfirmingLeadership)),
                    Ok(Ok((read, _))) => Forwarded::Ok(read.map(|l| l.index).unwrap_or(0)),
                    Ok(Err(RaftError::APIError(
                        openraft::error::CheckIsLeaderError::ForwardToLeader(_),
                    ))) => Forwarded::NotLeader,
                    Ok(Err(e)) => Forwarded::Err(ClusterError::consensus(e)),
                };
                for w in waiters {
                    let _ = w.send(outcome.clone());
                }
            }
        });
        Self { tx }
    }

    pub async fn read_index(&self) -> Forwarded<u64> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(tx).is_err() {
            return Forwarded::Err(ClusterError::ShuttingDown);
        }
        // Queued: from here on, a lost answer is an unknown outcome, not a refusal.
        rx.await.unwrap_or_else(|_| {
            Forwarded::Err(ClusterError::WriteInterrupted(
                "the node stopped".to_string(),
            ))
        })
    }
}
