//! Who may call the peer routes (Raft RPCs, forwarded proposals, membership changes): with
//! a cluster secret, only requests that carry it; with peer mutual TLS, only members, named
//! by their certificate (`CN=scarab-node-<id>`, verified against the cluster CA at the
//! handshake) and found in this node's current Raft membership (voters or learners).
//!
//! Owns: that check, in front of every peer route. Does not own: the handshake (`crate::serve`,
//! `crate::tls`), nor the secret's loading (`crate::transport`).
//!
//! `/internal/join` is the one route a valid certificate of a non-member may call: it is how
//! a node asks to become a member (the leader then probes it before anything changes). A
//! node without a membership yet (it has not joined, or not been told that it is a member)
//! accepts every verified cluster certificate: the leader that adds it is not in a
//! membership it has not received.

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scarab_types::{ErrorBody, ErrorCode};

use crate::raft::{NodeId, Raft};
use crate::tls::ClientIdentity;
use crate::transport::{ClusterSecret, SECRET_HEADER};

/// The CN prefix of node certificates; `scarab cert node` makes `scarab-node-<id>`.
pub const NODE_CN_PREFIX: &str = "scarab-node-";

/// The path a non-member may call to join.
pub const JOIN_PATH: &str = "/internal/join";

#[derive(Clone)]
struct Guard {
    raft: Raft,
    /// Peer mutual TLS: requests must come from members.
    members_only: bool,
    secret: Option<ClusterSecret>,
}

/// `router` behind the peer checks; unchanged without peer TLS and without a secret.
pub fn guard(
    router: Router,
    raft: Raft,
    members_only: bool,
    secret: Option<ClusterSecret>,
) -> Router {
    if !members_only && secret.is_none() {
        return router;
    }
    let guard = Guard {
        raft,
        members_only,
        secret,
    };
    router.layer(axum::middleware::from_fn_with_state(guard, check))
}

fn refuse(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

async fn check(State(g): State<Guard>, req: Request, next: Next) -> Response {
    if let Some(secret) = &g.secret {
        let given = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
        if !given.is_some_and(|v| secret.matches(v)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                format!(
                    "peer requests must carry the cluster secret ({SECRET_HEADER}, --cluster-secret-file)"
                ),
            );
        }
    }
    if g.members_only && req.uri().path() != JOIN_PATH {
        let node = req
            .extensions()
            .get::<ClientIdentity>()
            .map(|i| i.name.clone());
        if let Err(why) = is_member(&g.raft, node.as_deref()) {
            tracing::warn!(certificate = ?node, path = %req.uri().path(), "peer request refused: {why}");
            return refuse(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why);
        }
    }
    next.run(req).await
}

/// Whether the certificate named `cn` belongs to a node of this node's membership.
fn is_member(raft: &Raft, cn: Option<&str>) -> Result<(), String> {
    let Some(cn) = cn else {
        return Err("peer requests need a client certificate naming a node".into());
    };
    let id: NodeId = cn
        .strip_prefix(NODE_CN_PREFIX)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            format!("the certificate names {cn:?}, not a node ({NODE_CN_PREFIX}<id>)")
        })?;
    let membership = raft.metrics().borrow().membership_config.clone();
    let membership = membership.membership();
    if membership.nodes().next().is_none() || membership.get_node(&id).is_some() {
        Ok(())
    } else {
        Err(format!(
            "node {id} is not a member of this cluster; only {JOIN_PATH} is open to it"
        ))
    }
}
