//! Proposing a change: the one place where a command is put through the cluster and its
//! applied result is checked to be the result of that command.
//!
//! Owns: building a [`Command`] (actor, clock reading, context) from a [`Proposal`], and
//! turning the applied [`CommandResult`] into the proposal's own output, a
//! [`Rejection`], or (never expected) a mismatch. Does not own: how a command reaches the
//! leader and the log ([`crate::cluster`]), nor how it is applied ([`crate::store`]). Both the
//! API and the migration worker propose through here, so neither reaches into the other.

use crate::clock::now_ms;
use crate::cluster::{Cluster, ClusterError};
use crate::store::{Command, CommandResult, Context, Proposal, Rejection, WrongResult};

/// Why a proposal gave no output.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// It did not get through the cluster (no leader, a timeout, an invalid command...).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The state machine refused it; nothing changed.
    #[error(transparent)]
    Rejected(Rejection),
    /// Applied, but the result is another kind of command's (a bug).
    #[error(transparent)]
    Unexpected(#[from] WrongResult),
}

/// Proposes `proposal` as `actor` (with `context` for the audit trail, and this node's clock
/// reading) and waits for its applied result, which is `P`'s own output or an error: never
/// another command's result.
pub async fn propose<P: Proposal>(
    cluster: &Cluster,
    actor: String,
    context: Context,
    proposal: P,
) -> Result<P::Output, ProposeError> {
    let cmd = Command {
        actor,
        at_ms: now_ms(),
        op: proposal.into(),
        context,
    };
    match cluster.propose(cmd).await? {
        CommandResult::Rejected(r) => Err(ProposeError::Rejected(r)),
        other => Ok(P::output(other)?),
    }
}
