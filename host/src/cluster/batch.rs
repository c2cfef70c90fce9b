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

use super::Forwarded;
use crate::raft::Raft;
use crate::store::{Command, CommandResult};

/// Commands in one entry at most; a full batch is followed at once by the next.
const MAX_BATCH: usize = 512;
/// Batches in flight at once: one being flushed, one being applied and answered.
const IN_FLIGHT: usize = 2;

type Waiter = oneshot::Sender<Forwarded<CommandResult>>;

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::UnboundedSender<(Command, Waiter)>,
}

impl Batcher {
    pub fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Proposes `cmd` (this node must be the leader) and waits for its applied result.
    pub async fn propose(&self, cmd: Command) -> Forwarded<CommandResult> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send((cmd, tx)).is_err() {
            return Forwarded::Failed("the node is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| Forwarded::Failed("the node is shutting down".into()))
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<(Command, Waiter)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // Everything that queued while the previous batches were in flight goes now.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (cmds, waiters): (Vec<Command>, Vec<Waiter>) = batch.into_iter().unzip();
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
                    let msg = e.to_string();
                    for waiter in waiters {
                        let _ = waiter.send(Forwarded::Failed(msg.clone()));
                    }
                }
            }
        });
    }
}
