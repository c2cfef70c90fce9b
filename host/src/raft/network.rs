//! Raft RPCs between nodes over HTTP (JSON bodies; snapshot chunks as raw bytes), client and
//! server side.
//!
//! Owns: the wire format and the mapping of transport failures to openraft's RPC errors
//! (a refused connection is `Unreachable`, which makes openraft back off). Does not own:
//! deciding whom to talk to (openraft's replication) or client-facing routes ([`crate::api`]).

use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{NodeId, NodeInfo, Raft, TypeConfig};

/// Creates one [`PeerClient`] per target; all share one HTTP connection pool.
#[derive(Clone)]
pub struct Network {
    http: reqwest::Client,
}

impl Network {
    /// `local_ip`: the address outgoing peer connections come from (the peer listener's IP
    /// when it is a specific one), so that peers and firewalls see a stable source.
    pub fn new(local_ip: Option<std::net::IpAddr>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .local_address(local_ip)
            .build()
            .expect("build peer http client");
        Self { http }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            target,
            base: peer_base_url(&node.peer),
            http: self.http.clone(),
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
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
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
pub fn router(raft: Raft) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        // AppendEntries after a leader change can carry many batched entries: axum's 2 MB
        // default would refuse them (with a plain-text 413) and stall replication for good.
        // Peers are trusted cluster members; the size is bounded by max_payload_entries.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(raft)
}

async fn append(
    State(raft): State<Raft>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.append_entries(req).await)
}

async fn vote(
    State(raft): State<Raft>,
    Json(req): Json<VoteRequest<NodeId>>,
) -> Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.vote(req).await)
}

async fn snapshot(
    State(raft): State<Raft>,
    headers: axum::http::HeaderMap,
    data: axum::body::Bytes,
) -> Result<
    Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>,
    (axum::http::StatusCode, String),
> {
    let bad = |why: String| (axum::http::StatusCode::BAD_REQUEST, why);
    let header = headers
        .get(SNAPSHOT_HEADER)
        .ok_or_else(|| bad(format!("missing {SNAPSHOT_HEADER}")))?;
    let header = base64::engine::general_purpose::STANDARD
        .decode(header.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let header: SnapshotChunkHeader =
        serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    let req = InstallSnapshotRequest {
        vote: header.vote,
        meta: header.meta,
        offset: header.offset,
        data: data.to_vec(),
        done: header.done,
    };
    Ok(Json(raft.install_snapshot(req).await))
}
