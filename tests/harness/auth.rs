//! Nodes with authentication on (`--auth`): starting them, finding the root token the
//! bootstrap writes, and clients that carry a token.

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
