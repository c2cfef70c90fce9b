//! Nodes with authentication on (`--auth`): starting them, finding the root token the
//! bootstrap writes, and clients that carry a token.

use std::sync::RwLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

use super::{Node, NodeOptions, POLL_INTERVAL, REQUEST_TIMEOUT, Ready, http_client};

/// A typed client of `base` (one endpoint, one attempt) authenticating with `token`.
pub fn client_with_token(base: &str, token: &str) -> scarab_client::Client {
    scarab_client::Client::builder()
        .endpoint(base)
        .http_client(http_client())
        .timeout(REQUEST_TIMEOUT)
        .max_attempts(1)
        .token(token)
        .build()
        .unwrap_or_else(|e| panic!("a typed client of {base}: {e}"))
}

/// Waits until `node` has written its root token file (`DATA_DIR/root-token`, or `file`)
/// and the token is accepted (`whoami` answers root): the bootstrap was applied.
pub async fn root_token(
    node: &Node,
    file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<String> {
    let path = file
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| node.data_dir().join("root-token"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let token = text.trim().to_string();
            if !token.is_empty() {
                let client = client_with_token(node.base_url(), &token);
                if let Ok(me) = client.whoami().await
                    && me.principal == "root"
                {
                    return Ok(token);
                }
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "no accepted root token in {} within {timeout:?}; log:\n{}",
                path.display(),
                node.log_tail(40)
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A single node with `--auth` (and `extra_args`) and its root token.
pub async fn start_auth_node(extra_args: &[&str]) -> Result<(Node, String)> {
    let mut args = vec!["--auth".to_string()];
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let node = Node::start(NodeOptions {
        extra_args: args,
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let token = root_token(&node, None, Duration::from_secs(60))
        .await
        .context("bootstrap of authentication")?;
    Ok((node, token))
}

/// The token every node started from now on bootstraps as its root token, and every harness
/// client sends (`None`: nodes run without authentication, as by default). For suites that
/// run whole clusters with authentication on (the nemesis): set it before starting them.
static CLUSTER_TOKEN: RwLock<Option<String>> = RwLock::new(None);

/// Runs the nodes started from now on with `--auth` and `token` as their root token, and makes
/// every client of [`super::http_client`] authenticate with it; `None` turns both off.
pub fn set_cluster_token(token: Option<String>) {
    *CLUSTER_TOKEN.write().expect("token lock") = token;
}

pub fn cluster_token() -> Option<String> {
    CLUSTER_TOKEN.read().expect("token lock").clone()
}

/// A new token of the server's shape (`scarab_<16 hex>_<43 base64url>`), for a root token
/// file chosen by the operator (here: the harness).
pub fn new_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id: String = (0..16)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect();
    let secret: String = (0..43)
        .map(|_| char::from(B64[rng.random_range(0..64)]))
        .collect();
    format!("scarab_{id}_{secret}")
}

/// `Authorization: Bearer <cluster token>` when there is one.
pub fn default_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = cluster_token() {
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
            .expect("a token is a header value");
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    headers
}
