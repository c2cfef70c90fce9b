//! Changing membership on the leader: probe → add as learner → catch up → promote, remove,
//! and finishing a change left half-done; followers forward these requests to the leader.
//!
//! Owns: the checks that keep every proposed voter set able to commit (cluster/DESIGN.md).
//! Does not own: openraft's joint consensus itself, nor forming a cluster (`form.rs`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::ChangeMembers;
use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use serde::Serialize;

use super::{
    Cluster, ClusterError, ClusterView, FINISH_CHECK, FINISH_GRACE, Forwarded, JoinRequest,
    PROBE_TIMEOUT, SelfInfo, Stage,
};
use crate::raft::{NodeId, NodeInfo};

/// What went wrong with a probe, briefly: the innermost cause ("Connection refused"), as
/// reqwest's own message says little ("error sending request for url").
fn root_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {PROBE_TIMEOUT:?}");
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    cause.to_string()
}

impl Cluster {
    /// Sends a membership change to the leader and maps its answer. The leader's refusals keep
    /// their kind (`Forwarded::Err`).
    async fn forward_membership<Req: Serialize>(
        &self,
        leader: &NodeInfo,
        path: &str,
        req: &Req,
    ) -> Result<ClusterView, ClusterError> {
        // The leader may wait for a learner to catch up and then for the promotion, each up to
        // the write timeout, after probing the node.
        let timeout = self.write_timeout * 2 + PROBE_TIMEOUT * 2;
        match self.forward(leader, path, req, timeout).await? {
            Forwarded::Ok(v) => Ok(v),
            Forwarded::NotLeader => Err(ClusterError::NoLeader),
            Forwarded::Err(e) => Err(e),
        }
    }

    /// Adds a node, or promotes a learner (`req.voter`). Runs on the leader; followers forward
    /// it. Idempotent for a node that is already a member with the same addresses.
    ///
    /// A voter set that includes a node the leader has not seen caught up is never proposed:
    /// the node must first answer at its addresses as node `node_id` (else
    /// `MemberUnreachable`, and nothing changes); it is then added (or re-added) as a
    /// learner, and promoted only once it holds that entry, appended after the request came
    /// (else `LearnerNotCaughtUp`, and it stays a learner).
    pub async fn add_member(&self, req: JoinRequest) -> Result<ClusterView, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        if let Some(answer) = self
            .forward_change("/internal/add-member", &req, deadline)
            .await
        {
            return answer;
        }
        let _turn = self.take_turn(deadline).await?;
        let id = req.node_id;
        let info = NodeInfo {
            api: req.api.clone(),
            peer: req.peer.clone(),
        };
        let stored = self.raft.metrics().borrow().membership_config.clone();
        let membership = stored.membership();
        let known = membership.get_node(&id).cloned();
        if let Some(existing) = &known
            && *existing != info
        {
            return Err(ClusterError::Conflict {
                id,
                existing: existing.to_string(),
            });
        }
        let is_voter = membership.voter_ids().any(|v| v == id);
        if is_voter && req.without_state {
            return Err(ClusterError::Refused(format!(
                "node {id} is a voter of this cluster but came back without its Raft state (a lost or replaced data directory): as a voter it could help elect a leader that lacks committed entries. Remove it first (scarab cluster remove {id}), then start it again to join"
            )));
        }
        // A voter of every voter set (not one that a change left half-done) is done.
        let voter_everywhere = membership
            .get_joint_config()
            .iter()
            .all(|set| set.contains(&id));
        if (is_voter && voter_everywhere) || (known.is_some() && !req.voter && !is_voter) {
            return Ok(self.view());
        }
        let stays = match (&known, is_voter) {
            (None, _) => "nothing was changed",
            (Some(_), false) => "it stays a learner",
            // A joint configuration that adds it: the leader rolls it back in a few seconds.
            (Some(_), true) => "the change that adds it stays unfinished until it answers",
        };
        // 1. It answers, as node `id`, before anything is proposed.
        if let Err(why) = self.probe(id, &info).await {
            return Err(ClusterError::MemberUnreachable(format!(
                "node {id} cannot be reached from the leader (node {me}): {why}; {stays}. Check that it runs, and that its API URL ({api}) and peer URL ({peer}) are reachable from every member",
                me = self.me,
                api = info.api,
                peer = info.peer,
            )));
        }
        // 2. A learner first: it gets the log, it has no vote. For a learner already there,
        //    this changes nothing but appends an entry it must now hold: proof that it is
        //    caught up now, not when it was last seen.
        self.ensure_quorum().await?;
        let marker = self
            .append_marker(id, &info, Stage::AddingLearner, deadline)
            .await?;
        if !req.voter {
            return Ok(self.view());
        }
        // 3. Caught up: it holds the marker.
        if !self
            .wait_matched(&BTreeSet::from([id]), marker, deadline)
            .await?
            .contains(&id)
        {
            let holds = self
                .matched(id)
                .map_or("no entry".to_string(), |i| format!("entries up to {i}"));
            return Err(ClusterError::LearnerNotCaughtUp(format!(
                "node {id} is a learner but did not catch up with the leader within {:?} (it holds {holds}, the leader is at {marker} or beyond); it stays a learner and does not vote. When `scarab cluster status` shows its lag near 0, promote it with `scarab cluster promote {id}` (or remove it with `scarab cluster remove {id}`)",
                self.write_timeout
            )));
        }
        // 4. Promote (joint configuration, then the new one; openraft does both steps).
        self.change(
            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
            false,
            Stage::PromotingLearner,
            Instant::now() + self.write_timeout,
        )
        .await?;
        Ok(self.view())
    }

    /// Makes a learner a voter, with the checks of `add_member`: it must answer and be caught
    /// up. Also finishes a change that a dead leader left half-done (a joint configuration
    /// that adds this node).
    pub async fn promote(&self, id: NodeId) -> Result<ClusterView, ClusterError> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let info = m
            .membership()
            .get_node(&id)
            .cloned()
            .ok_or(ClusterError::NotMember(id))?;
        self.add_member(JoinRequest {
            node_id: id,
            api: info.api,
            peer: info.peer,
            voter: true,
            without_state: false,
        })
        .await
    }

    /// Removes a member (voter or learner). Removing the leader makes it step down once the
    /// new configuration is committed; the remaining voters elect a new leader. A voter is
    /// removed only if a majority of the remaining voters answer (else `QuorumAtRisk`): the
    /// change could never commit, and would block every later one. Also rolls back a change
    /// that a dead leader left half-done (a joint configuration that adds this node).
    pub async fn remove(&self, id: NodeId) -> Result<ClusterView, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        if let Some(answer) = self
            .forward_change("/internal/remove-member", &id, deadline)
            .await
        {
            return answer;
        }
        let _turn = self.take_turn(deadline).await?;
        let stored = self.raft.metrics().borrow().membership_config.clone();
        let membership = stored.membership();
        let Some(info) = membership.get_node(&id).cloned() else {
            return Err(ClusterError::NotMember(id));
        };
        if !membership.voter_ids().any(|v| v == id) {
            self.change(
                ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                false,
                Stage::RemovingLearner,
                deadline,
            )
            .await?;
            return Ok(self.view());
        }
        let mut remaining = membership
            .get_joint_config()
            .last()
            .cloned()
            .unwrap_or_default();
        remaining.remove(&id);
        if remaining.is_empty() {
            return Err(ClusterError::Refused(format!(
                "node {id} is the only voter: a cluster keeps at least one"
            )));
        }
        // Who answers now: the remaining voters that hold an entry appended now.
        self.ensure_quorum().await?;
        let marker = self
            .append_marker(id, &info, Stage::CheckingVoters, deadline)
            .await?;
        let until = deadline.min(Instant::now() + PROBE_TIMEOUT);
        let answered = self.wait_matched(&remaining, marker, until).await?;
        let needed = remaining.len() / 2 + 1;
        if answered.len() < needed {
            let silent: BTreeSet<NodeId> = remaining.difference(&answered).copied().collect();
            return Err(ClusterError::QuorumAtRisk(format!(
                "removing node {id} would leave the voters {remaining:?}, of which only {answered:?} answer the leader: fewer than the {needed} a majority needs, so the change could never commit and would block every later one. Nothing was changed. Bring back {silent:?} first, or remove one of them instead"
            )));
        }
        self.change(
            ChangeMembers::RemoveVoters(BTreeSet::from([id])),
            false,
            Stage::RemovingMember,
            deadline,
        )
        .await?;
        Ok(self.view())
    }

    /// Where a membership change runs: `None` when this node is the leader (it runs here),
    /// else the leader's answer to the forwarded request. A request that was not delivered
    /// (the leader died) or not taken (it is not the leader any more) goes to the next leader,
    /// until `deadline`.
    async fn forward_change<Req: Serialize>(
        &self,
        path: &str,
        req: &Req,
        deadline: Instant,
    ) -> Option<Result<ClusterView, ClusterError>> {
        loop {
            let (leader_id, leader) = match self.wait_leader_for_change(deadline).await {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            if leader_id == self.me {
                return None;
            }
            match self.forward_membership(&leader, path, req).await {
                Err(ClusterError::Unreachable(_) | ClusterError::NoLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(ClusterError::Unreachable(_) | ClusterError::NoLeader)
                    if self.change_pending() || self.joint() =>
                {
                    let why = "no leader could be reached";
                    return Some(Err(ClusterError::ChangeInProgress(
                        self.stuck_guidance(why).await,
                    )));
                }
                other => return Some(other),
            }
        }
    }

    /// `wait_leader` for a membership change: without a leader, says what blocks it when this
    /// node's own configuration is a change that has not committed.
    async fn wait_leader_for_change(
        &self,
        deadline: Instant,
    ) -> Result<(NodeId, NodeInfo), ClusterError> {
        match self.wait_leader(deadline).await {
            Err(ClusterError::NoLeader) if self.change_pending() || self.joint() => Err(
                ClusterError::ChangeInProgress(self.stuck_guidance("no leader is known").await),
            ),
            other => other,
        }
    }

    /// Waits (until `deadline`) for the membership changes made through this node to be done.
    async fn take_turn(
        &self,
        deadline: Instant,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, ClusterError> {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.changes.clone().lock_owned())
            .await
            .map_err(|_| ClusterError::Timeout(Stage::WaitingForAnotherChange))
    }

    /// Whether this node's configuration is joint (a voter change under way).
    fn joint(&self) -> bool {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership().get_joint_config().len() > 1
    }

    /// Whether this node's configuration is not known to be committed (it has not applied it).
    fn change_pending(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let index = m.membership_config.log_id().as_ref().map(|l| l.index);
        let applied = m.last_applied.as_ref().map(|l| l.index);
        index > applied
    }

    /// Whether node `id` answers at `info`'s addresses, as node `id`: its API
    /// (`GET /v1/cluster/self`, which names it) and a TCP connection to its peer endpoint
    /// (from this node's peer IP, as Raft RPCs). Both within `PROBE_TIMEOUT`.
    async fn probe(&self, id: NodeId, info: &NodeInfo) -> Result<(), String> {
        let api = async {
            let url = format!("{}/v1/cluster/self", info.api.trim_end_matches('/'));
            let resp = self
                .api_http
                .get(&url)
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", root_cause(&e)))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: HTTP {}", resp.status()));
            }
            let other: SelfInfo = resp
                .json()
                .await
                .map_err(|e| format!("GET {url} does not answer as a Scarab node: {e}"))?;
            if other.node_id != id {
                return Err(format!(
                    "the node at {} is node {}, not node {id}",
                    info.api, other.node_id
                ));
            }
            Ok(())
        };
        let (api, peer) = tokio::join!(api, self.connect_peer(&info.peer));
        let problems: Vec<String> = [api.err(), peer.err()].into_iter().flatten().collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Opens (and closes) a TCP connection to a peer URL, from this node's peer IP.
    async fn connect_peer(&self, peer: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(peer).map_err(|e| format!("peer URL {peer}: {e}"))?;
        let addr = tokio::time::timeout(
            PROBE_TIMEOUT,
            tokio::task::spawn_blocking(move || url.socket_addrs(|| None)),
        )
        .await
        .map_err(|_| format!("peer URL {peer}: resolving its host timed out"))?
        .map_err(|e| format!("peer URL {peer}: {e}"))?
        .map_err(|e| format!("peer URL {peer}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("peer URL {peer}: no address"))?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| format!("connecting to {peer}: {e}"))?;
        if let Some(ip) = self.transport.local_ip()
            && ip.is_ipv4() == addr.is_ipv4()
        {
            socket
                .bind(std::net::SocketAddr::new(ip, 0))
                .map_err(|e| format!("connecting to {peer} from {ip}: {e}"))?;
        }
        match tokio::time::timeout(PROBE_TIMEOUT, socket.connect(addr)).await {
            Err(_) => Err(format!(
                "connecting to {peer}: no answer within {PROBE_TIMEOUT:?}"
            )),
            // Reset during the handshake: something accepted the connection, so the address
            // is live; whether Raft gets through is what the catch-up then shows.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Ok(Err(e)) => Err(format!("connecting to {peer}: {e}")),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Appends a membership entry that (re-)adds `id` as a learner, or changes nothing if it
    /// is a member with these addresses already, and returns its index once committed. A
    /// member that then holds this index has answered the leader since.
    async fn append_marker(
        &self,
        id: NodeId,
        info: &NodeInfo,
        what: Stage,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.raft.add_learner(id, info.clone(), false)).await {
            Err(_) => Err(self.timed_out(what).await),
            Ok(Err(e)) => Err(self.change_error(e).await),
            Ok(Ok(resp)) => Ok(resp.log_id.index),
        }
    }

    /// Refuses (`QuorumAtRisk`) when this leader cannot confirm its leadership with a
    /// majority of the voters now: no change could commit, and one proposed would block every
    /// later change until they are back. Appends nothing.
    async fn ensure_quorum(&self) -> Result<(), ClusterError> {
        let why = match tokio::time::timeout(PROBE_TIMEOUT, self.raft.get_read_log_id()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
                format!("only {:?} answered", q.got)
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer from a majority within {PROBE_TIMEOUT:?}"),
        };
        let voters: Vec<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        Err(ClusterError::QuorumAtRisk(format!(
            "the leader (node {}) cannot confirm a majority of the voters {voters:?} now ({why}): no membership change could commit, and one proposed now would block every later change until they are back. Nothing was changed. Bring back enough voters first (`scarab cluster status` shows who is behind)",
            self.me
        )))
    }

    /// The leader's matched index of `id`.
    fn matched(&self, id: NodeId) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        m.replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index)
    }

    /// Waits until every node of `ids` holds `index` (the leader's view), or `until`; returns
    /// those that do. This node counts as holding it.
    async fn wait_matched(
        &self,
        ids: &BTreeSet<NodeId>,
        index: u64,
        until: Instant,
    ) -> Result<BTreeSet<NodeId>, ClusterError> {
        let mut rx = self.raft.metrics();
        loop {
            let reached: BTreeSet<NodeId> = {
                let m = rx.borrow_and_update();
                let Some(repl) = &m.replication else {
                    return Err(ClusterError::LeadershipMoved);
                };
                ids.iter()
                    .copied()
                    .filter(|id| {
                        *id == self.me
                            || repl
                                .get(id)
                                .and_then(|l| l.as_ref())
                                .is_some_and(|l| l.index >= index)
                    })
                    .collect()
            };
            let left = until.saturating_duration_since(Instant::now());
            if reached.len() == ids.len() || left.is_zero() {
                return Ok(reached);
            }
            if let Ok(Err(_)) = tokio::time::timeout(left, rx.changed()).await {
                return Ok(reached); // Raft stopped.
            }
        }
    }

    /// Runs `change_membership` (both steps of a voter change) to completion, and waits for it
    /// until `deadline`. It runs in a task of its own: if the answer comes too late, openraft
    /// still takes the second step once the first has committed.
    async fn change(
        &self,
        change: ChangeMembers<NodeId, NodeInfo>,
        retain: bool,
        what: Stage,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        let raft = self.raft.clone();
        let task = tokio::spawn(async move { raft.change_membership(change, retain).await });
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Err(_) => Err(self.timed_out(what).await),
            Ok(Err(e)) => Err(ClusterError::consensus(e)),
            Ok(Ok(Err(e))) => Err(self.change_error(e).await),
            Ok(Ok(Ok(_))) => Ok(()),
        }
    }

    /// A membership step that did not answer in time: stuck if its configuration has not
    /// committed, else just late.
    async fn timed_out(&self, what: Stage) -> ClusterError {
        if self.change_pending() {
            ClusterError::ChangeInProgress(
                self.stuck_guidance(&format!("{what} did not complete in time"))
                    .await,
            )
        } else {
            ClusterError::Timeout(what)
        }
    }

    async fn change_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>,
    ) -> ClusterError {
        match e {
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            )) => ClusterError::ChangeInProgress(
                self.stuck_guidance("another membership change is under way")
                    .await,
            ),
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                ClusterError::LeadershipMoved
            }
            other => ClusterError::consensus(other),
        }
    }

    /// What blocks membership changes while this node's configuration has not committed, and
    /// what the operator does about it (also in `cluster/DESIGN.md` and the README).
    async fn stuck_guidance(&self, what: &str) -> String {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let index = m
            .membership_config
            .log_id()
            .as_ref()
            .map_or("?".to_string(), |l| l.index.to_string());
        let sets = membership.get_joint_config();
        let config = match &sets[..] {
            [from, to] => format!("voters {from:?} changing to {to:?}"),
            _ => format!("voters {:?}", membership.voter_ids().collect::<Vec<_>>()),
        };
        let pending = self.change_pending();
        if !pending && sets.len() < 2 {
            return format!(
                "{what}: the configuration ({config}, log index {index}) is committed now; retry"
            );
        }
        let mut probes = tokio::task::JoinSet::new();
        for (id, info) in membership.nodes() {
            if *id == self.me || !membership.voter_ids().any(|v| v == *id) {
                continue;
            }
            let (cluster, id, info) = (self.clone(), *id, info.clone());
            probes.spawn(async move { (id, cluster.probe(id, &info).await.err(), info) });
        }
        let mut silent = Vec::new();
        while let Some(Ok((id, problem, info))) = probes.join_next().await {
            if problem.is_some() {
                silent.push(format!("node {id} (api {}, peer {})", info.api, info.peer));
            }
        }
        silent.sort();
        let silent = if silent.is_empty() {
            "every voter answers, so it should commit shortly".to_string()
        } else {
            format!("not answering now: {}", silent.join(", "))
        };
        if !pending {
            return format!(
                "{what}: the configuration at log index {index} ({config}) is a change left half-done: it committed, but only a leader elected by a majority of every voter set can finish it or roll it back ({silent}). Start the missing node(s) again at the same addresses, with their data directory; the leader then finishes it (forward if the added voters hold its log, else back), or do it with `scarab cluster promote ID` (forward) or `scarab cluster remove ID` (back). See README, Running a cluster"
            );
        }
        format!(
            "{what}: the configuration at log index {index} ({config}) has not committed, and openraft accepts no other membership change until it does; it commits once a majority of every voter set holds it ({silent}). openraft cannot roll back a configuration that has not committed: start the missing node(s) again at the same addresses (with their data directory; a node that never held an entry may start with an empty one and --join, never --bootstrap), the change then commits and the leader finishes it; afterwards `scarab cluster remove ID` undoes it. See README, Running a cluster"
        )
    }

    /// On the leader, in the background: finishes a joint configuration that committed but
    /// was left there (its leader died between the two steps of a change, or the step that
    /// ends it failed). Forward when every voter it adds holds a fresh entry; else back, the
    /// added voters staying learners. Ends when Raft stops.
    pub(super) async fn finish_half_done_changes(self) {
        let mut rx = self.raft.metrics();
        let mut seen: Option<(u64, Instant)> = None;
        loop {
            tokio::time::sleep(FINISH_CHECK).await;
            if rx.has_changed().is_err() {
                return;
            }
            let m = rx.borrow_and_update().clone();
            let sets = m.membership_config.membership().get_joint_config().clone();
            let index = m.membership_config.log_id().as_ref().map(|l| l.index);
            let applied = m.last_applied.as_ref().map(|l| l.index);
            let (Some(index), [first, last]) = (index, &sets[..]) else {
                seen = None;
                continue;
            };
            if m.current_leader != Some(self.me) || applied < Some(index) {
                seen = None;
                continue;
            }
            // Give the change's own second step time to come first.
            match seen {
                Some((i, since)) if i == index && since.elapsed() >= FINISH_GRACE => {}
                Some((i, _)) if i == index => continue,
                _ => {
                    seen = Some((index, Instant::now()));
                    continue;
                }
            }
            let Ok(_turn) = self.changes.clone().try_lock_owned() else {
                continue;
            };
            match self.finish_joint(first, last).await {
                Ok(done) => tracing::info!(
                    index,
                    from = ?first,
                    to = ?last,
                    done,
                    "finished a membership change left half-done"
                ),
                Err(e) => tracing::warn!(
                    index,
                    from = ?first,
                    to = ?last,
                    error = %e,
                    "cannot finish a membership change left half-done yet"
                ),
            }
            seen = None;
        }
    }

    /// Ends the joint configuration `first`+`last`: forward to `last`, or back to `first`.
    async fn finish_joint(
        &self,
        first: &BTreeSet<NodeId>,
        last: &BTreeSet<NodeId>,
    ) -> Result<&'static str, ClusterError> {
        let deadline = Instant::now() + self.write_timeout;
        let added: BTreeSet<NodeId> = last.difference(first).copied().collect();
        let forward = match added.first() {
            None => true,
            Some(anchor) => {
                let membership = self.raft.metrics().borrow().membership_config.clone();
                let info = membership
                    .membership()
                    .get_node(anchor)
                    .cloned()
                    .ok_or(ClusterError::NotMember(*anchor))?;
                let marker = self
                    .append_marker(*anchor, &info, Stage::CheckingAddedVoters, deadline)
                    .await?;
                let until = deadline.min(Instant::now() + PROBE_TIMEOUT);
                self.wait_matched(&added, marker, until).await?.len() == added.len()
            }
        };
        let (goal, retain, done) = if forward {
            (last.clone(), false, "forward")
        } else {
            (first.clone(), true, "back (the added voters stay learners)")
        };
        self.change(
            ChangeMembers::ReplaceAllVoters(goal),
            retain,
            Stage::FinishingChange,
            deadline,
        )
        .await?;
        Ok(done)
    }
}
