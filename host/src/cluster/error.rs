//! Why a cluster operation did not happen, and the answer a leader gives to a forwarded
//! request.
//!
//! Owns: the error kinds of the cluster boundary. They are serialisable because a leader's
//! refusal travels back to the follower that forwarded the request (`Forwarded::Err`), which
//! returns the same kind to its client: the code a client sees does not depend on which node
//! it asked. Does not own: their HTTP statuses (`api/error.rs`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::raft::NodeId;

/// Why a cluster operation did not happen.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum ClusterError {
    #[error("no leader is known; the cluster may be electing one or may have lost its quorum")]
    NoLeader,
    /// The leader's proposal queue is full (`--max-pending-proposals`): nothing was proposed.
    #[error(
        "the leader has {limit} proposals waiting (--max-pending-proposals); nothing was applied, retry later"
    )]
    Overloaded { limit: usize },
    #[error("{0} did not complete in time; its outcome is unknown")]
    Timeout(Stage),
    #[error("node {id} is already a member with other addresses ({existing}); remove it first")]
    Conflict { id: NodeId, existing: String },
    /// A membership change the leader will not make as asked (the reason says why and what to
    /// do instead).
    #[error("{0}")]
    Refused(String),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    /// The forwarded request may have reached the leader, but no answer came back.
    #[serde(skip)]
    #[error("cannot reach the leader")]
    Forward(#[source] Arc<reqwest::Error>),
    /// The forwarded request was never delivered (safe to retry).
    #[serde(skip)]
    #[error("the leader is unreachable")]
    Unreachable(#[source] Arc<reqwest::Error>),
    /// The leader's answer could not be decoded (a node of another version?).
    #[serde(skip)]
    #[error("the leader's answer could not be decoded")]
    BadAnswer(#[source] Arc<reqwest::Error>),
    /// openraft refused or failed (its own message: it is rendered on the node where it
    /// happened, which may be the leader).
    #[error("consensus: {0}")]
    Consensus(String),
    /// This node stopped being the leader while it was making a membership change.
    #[error(
        "the leadership moved during the membership change: its outcome is unknown; check `scarab cluster status` and retry"
    )]
    LeadershipMoved,
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A write that reached the leader's proposal queue, whose outcome was lost: the node
    /// stopped, or consensus failed, before it answered. It may have been committed.
    #[error(
        "the write was interrupted before its outcome was known ({0}); it may have been applied"
    )]
    WriteInterrupted(String),
    #[error("the change cannot be proposed: {0}")]
    InvalidCommand(String),
    /// The node to add or promote does not answer at its addresses (or another node does).
    #[error("member unreachable: {0}")]
    MemberUnreachable(String),
    /// The node is a learner, but did not catch up with the leader in time to be promoted.
    #[error("learner not caught up: {0}")]
    LearnerNotCaughtUp(String),
    /// A membership change has not committed; openraft accepts no other until it does.
    #[error("membership change in progress: {0}")]
    ChangeInProgress(String),
    /// The change would leave voters of which fewer than a majority answer.
    #[error("quorum at risk: {0}")]
    QuorumAtRisk(String),
}

impl ClusterError {
    pub(crate) fn forward(e: reqwest::Error) -> Self {
        ClusterError::Forward(Arc::new(e))
    }

    pub(crate) fn unreachable(e: reqwest::Error) -> Self {
        ClusterError::Unreachable(Arc::new(e))
    }

    pub(crate) fn consensus(e: impl std::fmt::Display) -> Self {
        ClusterError::Consensus(e.to_string())
    }
}

/// What did not complete in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Write,
    ForwardedRequest,
    ConfirmingLeadership,
    CatchingUpToReadIndex,
    WaitingForAnotherChange,
    AddingLearner,
    PromotingLearner,
    RemovingLearner,
    RemovingMember,
    CheckingVoters,
    CheckingAddedVoters,
    FinishingChange,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Write => "the write",
            Stage::ForwardedRequest => "the forwarded request",
            Stage::ConfirmingLeadership => "confirming the leadership with a quorum",
            Stage::CatchingUpToReadIndex => "catching up to the read index",
            Stage::WaitingForAnotherChange => "waiting for another membership change",
            Stage::AddingLearner => "adding the learner",
            Stage::PromotingLearner => "promoting the learner",
            Stage::RemovingLearner => "removing the learner",
            Stage::RemovingMember => "removing the member",
            Stage::CheckingVoters => "checking which voters answer",
            Stage::CheckingAddedVoters => "checking the added voters",
            Stage::FinishingChange => "finishing a membership change",
        })
    }
}

/// The answer of the leader to a forwarded request.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Forwarded<T> {
    Ok(T),
    /// The receiver is not (or no longer) the leader; try again.
    NotLeader,
    /// Refused or failed on the leader, with the kind the follower returns as its own.
    Err(ClusterError),
}

#[cfg(test)]
mod tests {
    use super::{ClusterError as E, Forwarded, Stage};
    use std::mem::discriminant;

    /// A follower gets the leader's refusal and returns the same error, so that the client
    /// sees the same code and message through any node.
    #[test]
    fn a_refusal_forwarded_by_the_leader_keeps_its_kind_and_message() {
        let same = [
            E::MemberUnreachable("node 9 cannot be reached".into()),
            E::LearnerNotCaughtUp("node 4 is a learner but".into()),
            E::ChangeInProgress("the configuration at log index 7".into()),
            E::QuorumAtRisk("removing node 2 would leave".into()),
            E::NotMember(7),
            E::Conflict {
                id: 3,
                existing: "api http://a, peer http://b".into(),
            },
            E::Refused("node 1 is the only voter".into()),
            E::Timeout(Stage::RemovingMember),
            E::Overloaded { limit: 10 },
            E::Consensus("anything else".into()),
            E::LeadershipMoved,
            E::WriteInterrupted("raft stopped".into()),
            E::InvalidCommand("too deep".into()),
        ];
        for e in same {
            let text = serde_json::to_vec(&Forwarded::<u64>::Err(e.clone())).unwrap();
            let Forwarded::<u64>::Err(back) = serde_json::from_slice(&text).unwrap() else {
                panic!("not an error: {}", String::from_utf8_lossy(&text));
            };
            assert_eq!(discriminant(&back), discriminant(&e), "{e}");
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
