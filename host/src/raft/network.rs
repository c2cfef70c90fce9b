//! Raft RPCs between nodes over HTTP (JSON bodies; snapshot chunks as raw bytes), client and
//! server side.
//!
//! Owns: the wire format and the mapping of transport failures to openraft's RPC errors
//! (a refused connection is `Unreachable`, which makes openraft back off). Does not own:
//! deciding whom to talk to (openraft's replication) or client-facing routes ([`crate::api`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{LogId, NodeId, NodeInfo, Raft, TypeConfig};
use crate::store::snapshot::{SnapshotCheck, snapshot_stem};

/// Values one AppendEntries carries at most, unless its first entry alone is larger.
/// openraft 0.9 gives an AppendEntries one heartbeat interval (100 ms) to be sent, appended and
/// answered, and counts entries only (`max_payload_entries`): four entries of near-1 MiB values
/// were a 4 MB request that a loaded machine could not turn around in time, again and again,
/// so a follower behind by big values never caught up.
const APPEND_BYTES: usize = 1 << 20;

/// `None` if `entries` fit in `max_bytes` of values (or are a single entry); otherwise how many
/// of the first ones do (at least one).
fn entries_that_fit(entries: &[super::Entry], max_bytes: usize) -> Option<u64> {
    if entries.len() <= 1 {
        return None;
    }
    let mut total = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        if let openraft::EntryPayload::Normal(cmds) = &entry.payload {
            total += cmds.iter().map(|c| c.value_bytes()).sum::<usize>();
        }
        if total > max_bytes {
            return Some((i as u64).max(1));
        }
    }
    None
}

/// Creates one [`PeerClient`] per target; all share one HTTP connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
    contacts: crate::transport::Contacts,
}

impl Network {
    pub fn new(transport: &crate::transport::PeerTransport) -> Self {
        Self {
            http: transport.client(Duration::from_millis(500)),
            contacts: transport.contacts().clone(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            target,
            base: peer_base_url(&node.peer),
            http: self.http.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

fn peer_base_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

pub struct PeerClient {
    target: NodeId,
    base: String,
    http: reqwest::Client,
    contacts: crate::transport::Contacts,
}

/// Everything of an `InstallSnapshotRequest` but its data, which travels as the raw body: as
/// JSON, a chunk is an array of numbers, about four times its size and slow to parse, and a
/// follower could not receive a large snapshot within its election timeout.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotChunkHeader {
    vote: super::Vote,
    meta: super::SnapshotMeta,
    offset: u64,
    done: bool,
}

const SNAPSHOT_HEADER: &str = "x-scarab-snapshot";

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        rpc: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let request = self
            .http
            .post(format!("{}/raft/{rpc}", self.base))
            .json(req);
        self.send(request, option).await
    }

    async fn send<Resp, E>(
        &self,
        request: reqwest::RequestBuilder,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let resp = request
            .timeout(option.hard_ttl())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let result: Result<Resp, RaftError<NodeId, E>> = resp
            .json()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // An answer of the protocol (a refusal by a peer's guard is not one).
        self.contacts.answered(self.target);
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        if let Some(fit) = entries_that_fit(&rpc.entries, APPEND_BYTES) {
            // openraft sends fewer entries at once (for its next 10 requests) and retries now.
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let started = std::time::Instant::now();
        let result = self.call("append", &rpc, &option).await;
        crate::metrics::get()
            .append_entries
            .get_or_create(&crate::metrics::PeerLabels { peer: self.target })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let header = SnapshotChunkHeader {
            vote: rpc.vote,
            meta: rpc.meta,
            offset: rpc.offset,
            done: rpc.done,
        };
        let header = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&header).expect("snapshot header serialises"));
        let request = self
            .http
            .post(format!("{}/raft/snapshot", self.base))
            .header(SNAPSHOT_HEADER, header)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(rpc.data);
        self.send(request, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// The server side of the peer RPCs, mounted on the peer listener.
///
/// A peer request is network input like any other: before openraft sees one, its body is
/// bounded, its sender must be a member of this node's cluster other than this node, its terms
/// and indexes must be consistent with each other and with what this node has committed, and
/// a snapshot must arrive whole and well-formed (see [`PeerGuard`]). openraft 0.9 trusts its
/// network layer: given an inconsistent request it asserts and its core panics, leaving a
/// node that answers health but can never write. What fails a check is answered 400 with the
/// reason and never reaches openraft; a real leader never sends such a request.
pub fn router(raft: Raft, me: NodeId, body_limit: usize) -> Router {
    let guard = PeerGuard {
        raft,
        me,
        body_limit,
        incoming: Arc::new(Mutex::new(None)),
    };
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        // Bodies are read by the handlers with `body_limit` (an AppendEntries after a leader
        // change carries several batches: axum's 2 MB default stalled replication).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(guard)
}

/// Terms beyond this are refused: no cluster reaches them, and `term + 1` must never overflow.
const MAX_TERM: u64 = u64::MAX / 4;

#[derive(Clone)]
pub struct PeerGuard {
    raft: Raft,
    me: NodeId,
    body_limit: usize,
    /// The snapshot being received.
    incoming: Arc<Mutex<Option<Receiving>>>,
}

/// A snapshot transfer in progress, checked chunk by chunk.
struct Receiving {
    id: String,
    /// The offset the next chunk must have.
    next: u64,
    /// The last chunk taken (offset, length): the leader sends it again after a timeout
    /// whose answer it did not see, and that resend is passed on without checking it twice.
    last: Option<(u64, u64)>,
    check: SnapshotCheck,
}

type Refused = (StatusCode, Json<serde_json::Value>);

fn refused(why: impl std::fmt::Display) -> Refused {
    let message = why.to_string();
    tracing::warn!(%message, "peer request refused");
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": {"code": "peer_refused", "message": message}})),
    )
}

/// What this node holds that a peer request is checked against.
struct Local {
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// The sender is in the effective or committed membership, or this node has none yet.
    sender_known: bool,
}

impl PeerGuard {
    async fn body<T: DeserializeOwned>(&self, body: Body) -> Result<T, Refused> {
        let bytes = axum::body::to_bytes(body, self.body_limit).await.map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({"error": {"code": "payload_too_large", "message": format!("a peer request is at most {} bytes (--max-peer-body-bytes)", self.body_limit)}})),
            )
        })?;
        serde_json::from_slice(&bytes).map_err(refused)
    }

    /// Checks the sender and its term, and reads what the rest is checked against.
    async fn local(&self, sender: NodeId, term: u64) -> Result<Local, Refused> {
        if sender == self.me {
            return Err(refused(format!(
                "the request claims to come from node {sender}, which is this node"
            )));
        }
        if term > MAX_TERM {
            return Err(refused(format!("term {term} is out of range")));
        }
        let purged = self.raft.metrics().borrow().purged;
        let (committed, sender_known) = self
            .raft
            .with_raft_state(move |st| {
                let effective = st.membership_state.effective().membership();
                let committed = st.membership_state.committed().membership();
                let none_yet = effective.nodes().next().is_none();
                let known = none_yet
                    || effective.get_node(&sender).is_some()
                    || committed.get_node(&sender).is_some();
                (st.committed, known)
            })
            .await
            .map_err(|e| refused(format!("consensus is not running: {e}")))?;
        if !sender_known {
            return Err(refused(format!(
                "node {sender} is not a member of this node's cluster"
            )));
        }
        Ok(Local {
            committed,
            purged,
            sender_known,
        })
    }
}

/// How a peer's AppendEntries (or snapshot) contradicts what any real leader could send.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistent {
    #[error("log id {id} is of a term after the leader's ({term})")]
    FutureTerm { id: LogId, term: u64 },
    #[error("entry {id} does not follow {last:?}: index {expected} was expected")]
    NotNext {
        id: LogId,
        last: Option<LogId>,
        expected: u64,
    },
    #[error("entry {id} has a term before {last:?}'s")]
    TermGoesBack { id: LogId, last: Option<LogId> },
    #[error("log id {id} contradicts what this node has committed ({committed:?})")]
    ContradictsCommitted { id: LogId, committed: Option<LogId> },
    #[error("log id {id} is at or below this node's purge point ({purged:?})")]
    BelowPurged { id: LogId, purged: Option<LogId> },
}

/// The consistency an AppendEntries must have before openraft sees it (see [`router`]):
/// entries follow `prev` one index at a time with non-decreasing terms no later than the
/// leader's; nothing at or below this node's commit point contradicts it (a real leader holds
/// every committed entry), and nothing reaches below the purge point but committed entries.
pub fn check_append(
    term: u64,
    prev: Option<LogId>,
    entries: &[LogId],
    committed: Option<LogId>,
    purged: Option<LogId>,
) -> Result<(), Inconsistent> {
    let mut last = prev;
    let mut next_index = prev.map_or(0, |p| p.index + 1);
    for id in prev.iter().chain(entries) {
        if id.leader_id.term > term {
            return Err(Inconsistent::FutureTerm { id: *id, term });
        }
    }
    for id in entries {
        if id.index != next_index {
            return Err(Inconsistent::NotNext {
                id: *id,
                last,
                expected: next_index,
            });
        }
        if last.is_some_and(|l| id.leader_id < l.leader_id) {
            return Err(Inconsistent::TermGoesBack { id: *id, last });
        }
        last = Some(*id);
        next_index = next_index.saturating_add(1);
    }
    let committed_index = committed.map(|c| c.index);
    for id in prev.iter().chain(entries) {
        if committed_index.is_some_and(|c| id.index <= c) && Some(*id) > committed {
            return Err(Inconsistent::ContradictsCommitted { id: *id, committed });
        }
        if purged.is_some_and(|p| id.index <= p.index)
            && committed_index.is_none_or(|c| id.index > c)
        {
            return Err(Inconsistent::BelowPurged { id: *id, purged });
        }
    }
    Ok(())
}

async fn append(
    State(guard): State<PeerGuard>,
    body: Body,
) -> Result<Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>, Refused> {
    let req: AppendEntriesRequest<TypeConfig> = guard.body(body).await?;
    let leader = req.vote.leader_id;
    let local = guard.local(leader.node_id, leader.term).await?;
    debug_assert!(local.sender_known);
    let ids: Vec<LogId> = req.entries.iter().map(|e| e.log_id).collect();
    check_append(
        leader.term,
        req.prev_log_id,
        &ids,
        local.committed,
        local.purged,
    )
    .map_err(refused)?;
    if req
        .leader_commit
        .is_some_and(|c| c.leader_id.term > leader.term)
    {
        return Err(refused("the leader's commit point is of a later term"));
    }
    Ok(Json(guard.raft.append_entries(req).await))
}

async fn vote(
    State(guard): State<PeerGuard>,
    body: Body,
) -> Result<Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>>, Refused> {
    let req: VoteRequest<NodeId> = guard.body(body).await?;
    let candidate = req.vote.leader_id;
    guard.local(candidate.node_id, candidate.term).await?;
    if req
        .last_log_id
        .is_some_and(|l| l.leader_id.term > candidate.term)
    {
        return Err(refused("the candidate's last log id is of a later term"));
    }
    Ok(Json(guard.raft.vote(req).await))
}

async fn snapshot(
    State(guard): State<PeerGuard>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<
    Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>,
    Refused,
> {
    let header = headers
        .get(SNAPSHOT_HEADER)
        .ok_or_else(|| refused(format!("missing {SNAPSHOT_HEADER}")))?;
    let header = base64::engine::general_purpose::STANDARD
        .decode(header.as_bytes())
        .map_err(refused)?;
    let header: SnapshotChunkHeader = serde_json::from_slice(&header).map_err(refused)?;
    let leader = header.vote.leader_id;
    let local = guard.local(leader.node_id, leader.term).await?;
    snapshot_stem(&header.meta).map_err(refused)?;
    if let Some(last) = header.meta.last_log_id {
        check_append(leader.term, Some(last), &[], None, None).map_err(refused)?;
        if local
            .committed
            .is_some_and(|c| c.index >= last.index && last > c)
        {
            return Err(refused(format!(
                "snapshot up to {last} contradicts what this node has committed"
            )));
        }
    }
    let data = axum::body::to_bytes(body, guard.body_limit)
        .await
        .map_err(|_| refused("a snapshot chunk is too large"))?;
    {
        let mut incoming = guard.incoming.lock().expect("incoming snapshot");
        let id = header.meta.snapshot_id.clone();
        if header.offset == 0 {
            *incoming = Some(Receiving {
                id: id.clone(),
                next: 0,
                last: None,
                check: SnapshotCheck::new(Some(header.meta.clone())),
            });
        }
        let Some(receiving) = incoming.as_mut() else {
            return Err(refused("a snapshot chunk without its beginning"));
        };
        let resent = receiving.id == id
            && receiving.last == Some((header.offset, data.len() as u64))
            && !header.done;
        if !resent {
            if receiving.id != id || receiving.next != header.offset {
                *incoming = None;
                return Err(refused(
                    "a snapshot chunk out of order: the transfer starts over",
                ));
            }
            if let Err(e) = receiving.check.feed(&data) {
                *incoming = None;
                return Err(refused(e));
            }
            receiving.last = Some((header.offset, data.len() as u64));
            receiving.next += data.len() as u64;
        }
        if header.done {
            let receiving = incoming.take().expect("checked above");
            receiving.check.finish().map_err(refused)?;
        }
    }
    let req = InstallSnapshotRequest {
        vote: header.vote,
        meta: header.meta,
        offset: header.offset,
        data: data.to_vec(),
        done: header.done,
    };
    Ok(Json(guard.raft.install_snapshot(req).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_leaders_append_passes() {
        let committed = Some(id(2, 10));
        assert_eq!(
            check_append(3, Some(id(2, 10)), &[id(2, 11), id(3, 12)], committed, None),
            Ok(())
        );
        // Entries the follower has committed already may be sent again.
        assert_eq!(
            check_append(
                3,
                Some(id(2, 8)),
                &[id(2, 9), id(2, 10)],
                committed,
                Some(id(1, 5))
            ),
            Ok(())
        );
        assert_eq!(check_append(1, None, &[id(1, 0)], None, None), Ok(()));
    }

    fn entry_of(value_bytes: usize) -> crate::raft::Entry {
        use crate::store::{Command, Op, Precondition, PutConfig};
        crate::raft::Entry {
            log_id: id(1, 1),
            payload: openraft::EntryPayload::Normal(vec![Command::new(
                "a".into(),
                1,
                Op::PutConfig(PutConfig {
                    key: "k".into(),
                    schema: "s".into(),
                    schema_version: 1,
                    plugin_digest: None,
                    value: "x".repeat(value_bytes),
                    precondition: Precondition::None,
                }),
            )]),
        }
    }

    #[test]
    fn an_append_is_cut_to_the_entries_that_fit_in_a_megabyte() {
        let mib = 1 << 20;
        // At the limit: sent as it is.
        let at = [entry_of(mib / 2), entry_of(mib / 2)];
        assert_eq!(entries_that_fit(&at, mib), None);
        // One byte past it: only the first goes.
        let past = [entry_of(mib / 2), entry_of(mib / 2 + 1)];
        assert_eq!(entries_that_fit(&past, mib), Some(1));
        // A single entry goes whatever its size; a large first one goes alone.
        assert_eq!(entries_that_fit(&[entry_of(3 * mib)], mib), None);
        let first_large = [entry_of(2 * mib), entry_of(1)];
        assert_eq!(entries_that_fit(&first_large, mib), Some(1));
        let four = [
            entry_of(600 << 10),
            entry_of(600 << 10),
            entry_of(1),
            entry_of(1),
        ];
        assert_eq!(entries_that_fit(&four, mib), Some(1));
    }

    #[test]
    fn a_gap_or_a_step_back_is_refused() {
        assert!(check_append(3, Some(id(2, 10)), &[id(2, 12)], None, None).is_err());
        assert!(check_append(3, Some(id(2, 10)), &[id(2, 11), id(2, 11)], None, None).is_err());
        assert!(check_append(3, Some(id(3, 10)), &[id(2, 11)], None, None).is_err());
        assert!(check_append(3, None, &[id(1, 5)], None, None).is_err());
    }

    #[test]
    fn a_term_after_the_leaders_is_refused() {
        assert!(check_append(2, Some(id(2, 1)), &[id(3, 2)], None, None).is_err());
        assert!(check_append(2, Some(id(5, 1)), &[], None, None).is_err());
    }

    #[test]
    fn rewriting_committed_entries_is_refused() {
        let committed = Some(id(2, 10));
        // A later term at a committed index: openraft would truncate committed entries.
        assert!(check_append(9, Some(id(2, 4)), &[id(9, 5)], committed, None).is_err());
        assert!(check_append(9, Some(id(9, 7)), &[], committed, None).is_err());
    }

    #[test]
    fn reaching_below_the_purge_point_is_refused() {
        // Purged up to 20 but committed only known to 10 (just restarted).
        assert!(
            check_append(
                3,
                Some(id(2, 15)),
                &[id(2, 16)],
                Some(id(2, 10)),
                Some(id(2, 20))
            )
            .is_err()
        );
    }
}
