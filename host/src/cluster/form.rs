//! How a node without Raft state finds its cluster: it bootstraps a new one, joins an existing
//! one through any member, or meets the other expected nodes first (`--bootstrap-expect`).
//!
//! Split-brain safety: a node with Raft state never comes here (it rejoins the cluster it
//! belongs to); a node started with `--join` never initialises a cluster itself; with
//! `--bootstrap-expect`, only the lowest node id among the nodes that met initialises, and only
//! when none of them belongs to a cluster yet.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Cluster, ClusterError, ClusterView, Forwarded, JoinRequest, SelfInfo};
use crate::raft::{NodeId, NodeInfo};

/// What a node with no Raft state does on start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Formation {
    /// Initialise a new cluster with this node as its only voter.
    Bootstrap,
    /// Ask these members (API URLs) to add this node.
    Join(Vec<String>),
    /// Wait until `expect` nodes (this one and those at `peers`) can see each other, then the
    /// lowest id initialises the cluster with all of them.
    Expect { expect: usize, peers: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("joining refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

fn base(url: &str) -> String {
    let u = url.trim().trim_end_matches('/');
    if u.starts_with("http://") || u.starts_with("https://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

/// Initialises a new cluster whose voters are `members`.
pub async fn initialize(
    cluster: &Cluster,
    members: BTreeMap<NodeId, NodeInfo>,
) -> Result<(), ClusterError> {
    cluster
        .raft()
        .initialize(members)
        .await
        .map_err(ClusterError::consensus)
}

/// Runs the formation until this node belongs to a cluster (or a definite refusal).
pub async fn form(cluster: &Cluster, formation: Formation) -> Result<(), FormError> {
    match formation {
        Formation::Bootstrap => {
            let members = BTreeMap::from([(cluster.node_id(), cluster.info().clone())]);
            initialize(cluster, members).await?;
            tracing::info!(node_id = cluster.node_id(), "initialised a new cluster");
            Ok(())
        }
        Formation::Join(urls) => join(cluster, &urls).await,
        Formation::Expect { expect, peers } => meet(cluster, expect, &peers).await,
    }
}

/// Asks a member to add this node: learns the member's peer URL from its client API
/// (`GET /v1/cluster/self`, an open route), then asks through the peer port
/// (`POST /internal/join`, with this node's peer credentials: the client API may require
/// an operator's token, the peer port requires a cluster certificate or the secret).
async fn join(cluster: &Cluster, urls: &[String]) -> Result<(), FormError> {
    let api = cluster.transport().api_client(Duration::from_millis(500));
    let http = cluster.transport().client(Duration::from_millis(500));
    let mut backoff = Duration::from_millis(100);
    // Set once the leader added this node as a learner but did not promote it yet (it was
    // still catching up): keep asking, the next answer promotes it once it holds the log.
    let mut learner = false;
    loop {
        for url in urls {
            // Without state until the leader has replicated to it (an earlier attempt whose
            // answer was lost may have added it already).
            let req = JoinRequest {
                node_id: cluster.node_id(),
                api: cluster.info().api.clone(),
                peer: cluster.info().peer.clone(),
                voter: true,
                without_state: !cluster.raft().is_initialized().await.unwrap_or(false),
            };
            match ask_to_join(&api, &http, url, &req).await {
                Ok(Forwarded::Ok(_)) => {
                    tracing::info!(%url, "joined the cluster");
                    return Ok(());
                }
                // With --bootstrap-expect, the node that initialised the cluster made this
                // one a voter already; our request (sent before its first replication reached
                // us) then looks like a voter that lost its state. If the leader's
                // replication arrives now, we are simply a member.
                Ok(Forwarded::Err(
                    e @ (ClusterError::Conflict { .. } | ClusterError::Refused(_)),
                )) => {
                    if became_member(cluster, Duration::from_secs(5)).await {
                        tracing::info!("already a member: the leader's replication arrived");
                        return Ok(());
                    }
                    return Err(FormError::Refused(e.to_string()));
                }
                // Added as a learner, still catching up (a large state): ask again;
                // replication goes on meanwhile, and a later answer promotes it.
                Ok(Forwarded::Err(ClusterError::LearnerNotCaughtUp(_))) => {
                    learner = true;
                    tracing::info!(%url, "added as a learner, still catching up; asking again to be promoted");
                }
                // No leader, the leader cannot reach this node (yet), another change is
                // under way...: retry.
                Ok(Forwarded::Err(e)) => {
                    tracing::warn!(%url, error = %e, "join not accepted yet; retrying")
                }
                Ok(Forwarded::NotLeader) => {
                    tracing::warn!(%url, "join not accepted yet (no leader); retrying")
                }
                Err(e) => {
                    tracing::warn!(%url, error = %e, "cannot reach a member to join; retrying")
                }
            }
            if !learner
                && cluster.raft().is_initialized().await.unwrap_or(false)
                && cluster.leader().is_some()
            {
                // Added by an operator (or an earlier attempt whose answer was lost).
                return Ok(());
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Why one attempt to join through a member got no answer from its leader.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
}

/// One attempt: the member's peer URL from its API, then `POST {peer}/internal/join`.
async fn ask_to_join(
    api: &reqwest::Client,
    http: &reqwest::Client,
    url: &str,
    req: &JoinRequest,
) -> Result<Forwarded<ClusterView>, AskError> {
    let self_url = format!("{}/v1/cluster/self", base(url));
    let fail = |url: &str| {
        let url = url.to_string();
        move |source| AskError::Http { url, source }
    };
    let member: SelfInfo = api
        .get(&self_url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(fail(&self_url))?
        .json()
        .await
        .map_err(fail(&self_url))?;
    let join_url = format!(
        "{}{}",
        member.peer.trim_end_matches('/'),
        super::guard::JOIN_PATH
    );
    let resp = http
        .post(&join_url)
        .timeout(Duration::from_secs(60))
        .json(req)
        .send()
        .await
        .map_err(fail(&join_url))?;
    if !resp.status().is_success() {
        return Err(AskError::Status {
            url: join_url,
            status: resp.status(),
            body: resp.text().await.unwrap_or_default(),
        });
    }
    resp.json().await.map_err(fail(&join_url))
}

/// Whether this node gets Raft state from a leader within `wait`.
async fn became_member(cluster: &Cluster, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if cluster.raft().is_initialized().await.unwrap_or(false) && cluster.leader().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn meet(cluster: &Cluster, expect: usize, peers: &[String]) -> Result<(), FormError> {
    let http = cluster.transport().api_client(Duration::from_millis(500));
    let mut logged = 0;
    loop {
        if cluster.raft().is_initialized().await.unwrap_or(false) {
            tracing::info!("the cluster was initialised by another node");
            return Ok(());
        }
        let mut met = BTreeMap::from([(cluster.node_id(), cluster.info().clone())]);
        let mut someone_initialized = false;
        for url in peers {
            let Ok(resp) = http
                .get(format!("{}/v1/cluster/self", base(url)))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            else {
                continue;
            };
            let Ok(info) = resp.json::<SelfInfo>().await else {
                continue;
            };
            someone_initialized |= info.initialized;
            met.insert(
                info.node_id,
                NodeInfo {
                    api: info.api,
                    peer: info.peer,
                },
            );
        }
        if someone_initialized {
            tracing::info!("a peer already belongs to a cluster; joining it");
            return join(cluster, peers).await;
        }
        if met.len() >= expect {
            let lowest = *met.keys().next().expect("non-empty");
            if lowest == cluster.node_id() {
                tracing::info!(members = ?met.keys().collect::<Vec<_>>(), "the expected nodes met; initialising the cluster");
                initialize(cluster, met).await?;
                return Ok(());
            }
        } else if met.len() != logged {
            logged = met.len();
            tracing::info!(met = met.len(), expect, "waiting for the expected nodes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
