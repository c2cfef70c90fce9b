//! Clusters of real `scarab serve` processes on one machine, with a partition proxy in front
//! of every node's peer listener.
//!
//! Node `i` listens (API and peer) on 127.0.0.(10+i) with ports picked free on that IP, and
//! advertises its proxy (`--peer-advertise http://127.0.0.100:PORT`) as its peer URL, so that
//! every Raft RPC between nodes goes through a `PeerProxy` (see `proxy`). Clients (the tests)
//! talk to the nodes' API listeners directly.
//!
//! Cluster tests run one at a time within a test binary (a process-wide gate): on 2 cores,
//! several clusters at once would make elections and timings flaky.
//!
//! Every helper here that reads an answer (status, views, leader, convergence) uses the typed
//! client of one node (`Api::typed_within`); `Cluster::client` is a typed client of the whole
//! cluster, with every node as an endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use scarab_client::types::{ClusterView, Consistency, MemberRole, Role, Status};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::proxy::{Net, NodeId, PeerProxy, node_ip};
use super::{
    Api, Formation, Node, NodeOptions, POLL_INTERVAL, REQUEST_TIMEOUT, Ready, free_port_on,
};

/// How long a probe of one node may take while polling (a partitioned node may be slow).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound for forming a cluster, electing a leader, converging after a change.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// One cluster at a time per test process.
static CLUSTER_GATE: Semaphore = Semaphore::const_new(1);

/// How the first start of the nodes forms the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterFormation {
    /// Every node: `--bootstrap-expect N --join <every API URL>`.
    BootstrapExpect,
    /// Node 1 `--bootstrap`, the others `--join <node 1's API URL>` (started in id order).
    BootstrapThenJoin,
}

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Nodes 1..=size.
    pub size: u64,
    pub formation: ClusterFormation,
    /// Arguments given to every node (timeouts, snapshot policy, ...).
    pub args: Vec<String>,
    /// Environment of every node; `{id}` in a value is replaced by the node's id.
    pub env: Vec<(String, String)>,
    /// Peer mutual TLS with certificates of this CA (each node's valid for its own address
    /// and its proxy's); peer URLs are then https.
    pub peer_tls: Option<std::sync::Arc<super::tls::Pki>>,
    /// TLS on every node's client API too (with the peer certificates' CA): harness
    /// clients then speak https (see `tls::set_client_ca`).
    pub client_tls: bool,
}

impl ClusterOptions {
    pub fn new(size: u64) -> ClusterOptions {
        ClusterOptions {
            size,
            formation: ClusterFormation::BootstrapExpect,
            args: Vec::new(),
            env: Vec::new(),
            peer_tls: None,
            client_tls: false,
        }
    }

    /// TLS on the client API of every node as well as peer mutual TLS, with one new
    /// development CA; every harness client trusts it from now on.
    pub fn tls(self) -> Result<Self> {
        let mut opts = self.peer_tls()?;
        opts.client_tls = true;
        let ca = opts.peer_tls.as_ref().expect("a CA").ca();
        super::tls::set_client_ca(Some(ca));
        Ok(opts)
    }

    /// Peer mutual TLS on every node, with a new development CA.
    pub fn peer_tls(mut self) -> Result<Self> {
        self.peer_tls = Some(std::sync::Arc::new(super::tls::Pki::new()?));
        Ok(self)
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn formation(mut self, formation: ClusterFormation) -> Self {
        self.formation = formation;
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }
}

/// The nodes, their proxies and the partition table. Dropping it kills every node; unless
/// `pass` was called (a test that returned an error or panicked), every node's directory is
/// kept and its log tail printed.
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    proxies: BTreeMap<NodeId, PeerProxy>,
    net: Net,
    args: Vec<String>,
    env: Vec<(String, String)>,
    peer_tls: Option<std::sync::Arc<super::tls::Pki>>,
    client_tls: bool,
    passed: bool,
    _gate: SemaphorePermit<'static>,
}

/// A member as `/v1/cluster` lists it, without the leader's replication figures that move
/// with every entry (`matched_index`), so that two views of one membership compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: NodeId,
    pub api: String,
    pub peer: String,
    pub role: MemberRole,
    pub leader: bool,
    pub lag: Option<u64>,
}

/// The members of a cluster view, by id.
pub fn members(view: &ClusterView) -> BTreeMap<NodeId, Member> {
    view.members
        .iter()
        .map(|m| {
            let member = Member {
                node_id: m.node_id,
                api: m.api.clone(),
                peer: m.peer.clone(),
                role: m.role,
                leader: m.leader,
                lag: m.lag,
            };
            (m.node_id, member)
        })
        .collect()
}

/// A formation for a node that an operator adds later: it forms nothing itself (it expects
/// a second node at an address where nothing listens) and belongs to the cluster once a
/// leader has replicated to it.
pub fn waits_to_be_added() -> Formation {
    Formation::Expect {
        expect: 2,
        join: vec!["http://127.0.0.1:1".to_string()],
    }
}

impl Cluster {
    /// Starts nodes 1..=size (each healthy, `Ready::Serving`), then waits until they form one
    /// cluster: every node a voter and every node reporting the same leader.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster> {
        let gate = CLUSTER_GATE
            .acquire()
            .await
            .context("the cluster gate is closed")?;
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            proxies: BTreeMap::new(),
            net: Net::new(),
            args: opts.args.clone(),
            env: opts.env.clone(),
            peer_tls: opts.peer_tls.clone(),
            client_tls: opts.client_tls,
            passed: false,
            _gate: gate,
        };
        let ids: Vec<NodeId> = (1..=opts.size).collect();
        // Every API port is needed up front (the --join lists).
        let ports: BTreeMap<NodeId, (u16, u16)> = ids
            .iter()
            .map(|&id| {
                let ip = node_ip(id);
                let api = free_port_on(ip);
                let mut peer = free_port_on(ip);
                while peer == api {
                    peer = free_port_on(ip);
                }
                (id, (api, peer))
            })
            .collect();
        let api_urls: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    "{}://{}:{}",
                    super::tls::api_scheme(),
                    node_ip(*id),
                    ports[id].0
                )
            })
            .collect();
        for &id in &ids {
            let formation = match opts.formation {
                ClusterFormation::BootstrapExpect => Formation::Expect {
                    expect: ids.len(),
                    join: api_urls.clone(),
                },
                ClusterFormation::BootstrapThenJoin if id == 1 => Formation::Bootstrap,
                ClusterFormation::BootstrapThenJoin => Formation::Join(vec![api_urls[0].clone()]),
            };
            let (api, peer) = ports[&id];
            cluster
                .launch(id, formation, Some(api), Some(peer), Vec::new())
                .await?;
        }
        cluster.wait_formed(&ids, FORM_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Starts node `id` (with its proxy) as a new process with a fresh data dir, and waits
    /// until it serves (`Ready::Serving`); what it joins is up to `formation`.
    pub async fn add_node(&mut self, id: NodeId, formation: Formation) -> Result<()> {
        self.launch(id, formation, None, None, Vec::new()).await
    }

    async fn launch(
        &mut self,
        id: NodeId,
        formation: Formation,
        api_port: Option<u16>,
        peer_port: Option<u16>,
        more_args: Vec<String>,
    ) -> Result<()> {
        if self.nodes.contains_key(&id) {
            bail!("node {id} already exists");
        }
        let ip = node_ip(id);
        let api_port = api_port.unwrap_or_else(|| free_port_on(ip));
        let mut peer_port = peer_port.unwrap_or_else(|| free_port_on(ip));
        while peer_port == api_port {
            peer_port = free_port_on(ip);
        }
        let proxy = PeerProxy::start(
            self.net.clone(),
            id,
            std::net::SocketAddr::new(ip, peer_port),
        )
        .await?;
        let mut extra_args = self.args.clone();
        extra_args.extend(more_args);
        let mut peer_advertise = proxy.url();
        if let Some(pki) = &self.peer_tls {
            let hosts = [ip.to_string(), proxy.addr().ip().to_string()];
            let pair = pki.node_for(id, &[&hosts[0], &hosts[1]])?;
            extra_args.extend(pki.peer_args(&pair));
            if self.client_tls {
                extra_args.extend(pki.api_args(&pair));
            }
            peer_advertise = peer_advertise.replacen("http://", "https://", 1);
        }
        let env = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{id}", &id.to_string())))
            .collect();
        let opts = NodeOptions {
            node_id: id,
            ip,
            port: Some(api_port),
            peer_port: Some(peer_port),
            peer_advertise: Some(peer_advertise),
            formation,
            extra_args,
            env,
            ready: Ready::Serving,
            ..NodeOptions::default()
        };
        self.proxies.insert(id, proxy);
        let node = Node::start(opts)
            .await
            .with_context(|| format!("starting node {id}"))?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Every node id, running or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The ids of the nodes whose process is running.
    pub fn running(&mut self) -> Vec<NodeId> {
        self.nodes
            .iter_mut()
            .filter_map(|(id, n)| n.is_running().then_some(*id))
            .collect()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// A cloneable HTTP handle on node `id`'s API.
    pub fn api(&self, id: NodeId) -> Api {
        self.node(id).api().clone()
    }

    /// A typed client of the whole cluster: every node's API as an endpoint (in id order),
    /// with the client's failover.
    pub fn client(&self) -> scarab_client::Client {
        scarab_client::Client::builder()
            .endpoints(self.nodes.values().map(|n| n.base_url().to_string()))
            .http_client(super::http_client())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a typed client of the cluster")
    }

    /// The partition table of this cluster's proxies.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Cuts every link between a node of `a` and a node of `b` (both directions).
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        self.net.partition(a, b);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.net.heal();
    }

    /// SIGKILL of node `id` (its proxy then stops listening, like a dead host's port).
    pub async fn kill(&mut self, id: NodeId) -> Result<ExitStatus> {
        let status = self.node_mut(id).kill()?;
        if let Some(p) = self.proxies.get_mut(&id) {
            p.suspend().await;
        }
        Ok(status)
    }

    /// SIGSTOP of node `id`: the process freezes with its sockets open (a GC pause, a VM
    /// stall), so peers see timeouts rather than refused connections.
    pub fn pause(&mut self, id: NodeId) -> Result<()> {
        self.node_mut(id).signal(libc::SIGSTOP)
    }

    /// SIGCONT of node `id` (after `pause`).
    pub fn resume(&mut self, id: NodeId) -> Result<()> {
        self.node_mut(id).signal(libc::SIGCONT)
    }

    /// SIGTERM of node `id`, waiting for it to exit.
    pub async fn stop(&mut self, id: NodeId) -> Result<ExitStatus> {
        let status = self.node_mut(id).stop().await?;
        if let Some(p) = self.proxies.get_mut(&id) {
            p.suspend().await;
        }
        Ok(status)
    }

    /// Starts node `id` again (same addresses, same data dir) and waits until it serves.
    pub async fn restart(&mut self, id: NodeId) -> Result<()> {
        if let Some(p) = self.proxies.get_mut(&id) {
            p.resume().await?;
        }
        self.node_mut(id).restart().await
    }

    /// `GET /v1/status` of node `id`, with a short timeout.
    pub async fn status(&self, id: NodeId) -> Result<Status> {
        let status = self
            .node(id)
            .typed_within(PROBE_TIMEOUT)
            .status()
            .await
            .with_context(|| format!("GET /v1/status of node {id}"))?;
        Ok(status.into_inner())
    }

    /// `GET /v1/cluster` through node `id` (the leader's view when it is reachable).
    pub async fn view(&self, id: NodeId) -> Result<ClusterView> {
        self.node(id)
            .typed_within(PROBE_TIMEOUT)
            .cluster()
            .await
            .with_context(|| format!("GET /v1/cluster of node {id}"))
    }

    /// `GET /v1/cluster?consistency=stale` of node `id`: its own configuration, not the
    /// leader's.
    pub async fn local_view(&self, id: NodeId) -> Result<ClusterView> {
        self.node(id)
            .typed_within(PROBE_TIMEOUT)
            .with_consistency(Consistency::Stale)
            .cluster()
            .await
            .with_context(|| format!("GET /v1/cluster?consistency=stale of node {id}"))
    }

    /// Waits until every node of `among` has, in its own configuration, the same single
    /// voter set, committed, and the same members with the same roles. Returns the roles.
    pub async fn wait_same_membership(
        &self,
        among: &[NodeId],
        timeout: Duration,
    ) -> Result<BTreeMap<NodeId, MemberRole>> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.same_membership_once(among).await {
                Ok(roles) => return Ok(roles),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                bail!(
                    "{among:?} do not agree on one committed membership within {timeout:?}; last: {last}"
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn same_membership_once(
        &self,
        among: &[NodeId],
    ) -> Result<BTreeMap<NodeId, MemberRole>, String> {
        type Seen = (Vec<BTreeSet<NodeId>>, bool, BTreeMap<NodeId, MemberRole>);
        let mut seen: BTreeMap<NodeId, Seen> = BTreeMap::new();
        for &id in among {
            let view = self.local_view(id).await.map_err(|e| format!("{e:#}"))?;
            let roles = view.members.iter().map(|m| (m.node_id, m.role)).collect();
            seen.insert(id, (view.voter_sets, view.membership_committed, roles));
        }
        let first = seen.values().next();
        match first {
            Some((sets, true, roles))
                if sets.len() == 1 && seen.values().all(|s| Some(s) == first) =>
            {
                Ok(roles.clone())
            }
            _ => Err(format!("(voter sets, committed, roles) per node: {seen:?}")),
        }
    }

    /// One observation of `among`: `Ok(leader)` when every one of them reports the same
    /// leader, that leader is one of them and says it is the leader; else why not.
    async fn agreed_leader(&self, among: &[NodeId]) -> Result<NodeId, String> {
        let mut leaders = BTreeMap::new();
        for &id in among {
            let s = self.status(id).await.map_err(|e| format!("{e:#}"))?;
            leaders.insert(id, (s.leader, s.role));
        }
        let seen: BTreeSet<Option<u64>> = leaders.values().map(|(l, _)| *l).collect();
        match seen.into_iter().collect::<Vec<_>>()[..] {
            [Some(l)] if among.contains(&l) && leaders[&l].1 == Role::Leader => Ok(l),
            _ => Err(format!("leader/role per node: {leaders:?}")),
        }
    }

    /// Waits until every node of `among` reports the same leader, one of them.
    pub async fn wait_leader(&self, among: &[NodeId], timeout: Duration) -> Result<NodeId> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.agreed_leader(among).await {
                Ok(l) => return Ok(l),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                bail!("no agreed leader among {among:?} within {timeout:?}; last: {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until `voters` agree on a leader among them and that leader's view lists exactly
    /// `voters` as voters (and no one else). Returns the leader.
    pub async fn wait_formed(&self, voters: &[NodeId], timeout: Duration) -> Result<NodeId> {
        let want: BTreeSet<NodeId> = voters.iter().copied().collect();
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.agreed_leader(voters).await {
                Err(why) => why,
                Ok(leader) => match self.view(leader).await {
                    Err(e) => format!("{e:#}"),
                    Ok(view) => {
                        let ms = members(&view);
                        let got: BTreeSet<NodeId> = ms
                            .values()
                            .filter(|m| m.role == MemberRole::Voter)
                            .map(|m| m.node_id)
                            .collect();
                        if got == want && ms.len() == want.len() {
                            return Ok(leader);
                        }
                        format!("members {ms:?}")
                    }
                },
            };
            if Instant::now() >= deadline {
                bail!(
                    "the voters {voters:?} did not form a cluster within {timeout:?}; last: {last}"
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every node of `among` reports the same leader (one of them), has applied
    /// the leader's whole log, and shows the same revision. Returns that revision.
    pub async fn wait_converged(&self, among: &[NodeId], timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.converged_once(among).await {
                Ok(rev) => return Ok(rev),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                bail!("{among:?} did not converge within {timeout:?}; last: {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn converged_once(&self, among: &[NodeId]) -> Result<u64, String> {
        let leader = self.agreed_leader(among).await?;
        let mut seen = BTreeMap::new();
        for &id in among {
            let s = self.status(id).await.map_err(|e| format!("{e:#}"))?;
            seen.insert(id, (s.revision, s.last_applied_index, s.last_log_index));
        }
        let target = seen[&leader].2;
        let revisions: BTreeSet<u64> = seen.values().map(|v| v.0).collect();
        let all_applied = seen.values().all(|v| v.1.is_some() && v.1 == target);
        match revisions.into_iter().collect::<Vec<_>>()[..] {
            [rev] if all_applied => Ok(rev),
            _ => Err(format!(
                "leader {leader}; (revision, applied, last log) per node: {seen:?}"
            )),
        }
    }

    /// Waits until every node of `among` has applied at least `schemas` schema versions
    /// (`/v1/status` "schemas").
    pub async fn wait_schemas(
        &self,
        among: &[NodeId],
        schemas: u64,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = BTreeMap::new();
            for &id in among {
                let n = self.status(id).await.ok().map(|s| s.schemas);
                seen.insert(id, n);
            }
            if seen.values().all(|n| n.is_some_and(|n| n >= schemas)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("not every node has {schemas} schema(s) within {timeout:?}: {seen:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The last `lines` lines of every node's log, for test output.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let _ = writeln!(
                out,
                "---- node {id} ({}) ----\n{}",
                node.log_path().display(),
                node.log_tail(lines)
            );
        }
        out
    }

    /// Marks the test as passed: the nodes' directories are removed on drop.
    pub fn pass(&mut self) {
        self.passed = true;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.passed || std::thread::panicking() {
            eprintln!(
                "cluster test failed; proxies: {}; keeping the node directories",
                self.net.summary()
            );
            for node in self.nodes.values_mut() {
                node.keep_on_drop();
            }
        }
    }
}
