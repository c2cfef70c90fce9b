//! Starting and stopping a node: storage, consensus, plugin host, HTTP. The binary, the dev
//! server, the benchmark and the tests all go through [`run`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::{ConfigError, NodeConfig};
use crate::plugins::{PluginError, PluginHost};
use crate::raft::Raft;
use crate::raft::log_store::LogStore;
use crate::raft::network::{self, Network};
use crate::schema::SchemaRegistry;
use crate::store::{StateMachine, StateStore, StoreError};

/// The sockets a node serves on, bound by the caller (so tests and the dev server can bind
/// port 0 and learn the port before the node starts).
pub struct Listeners {
    /// Client API.
    pub api: TcpListener,
    /// Peer Raft RPCs; `None` serves them on the API listener.
    pub peer: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the data directory {path}: {source}")]
    Open { path: String, source: fjall::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plugins(#[from] PluginError),
    #[error("consensus: {0}")]
    Raft(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs a node until `shutdown` resolves, then stops accepting requests, finishes the ones in
/// flight, stops Raft and flushes storage.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    config.validate()?;
    let started = std::time::Instant::now();
    std::fs::create_dir_all(&config.data_dir)?;
    let db_path = config.data_dir.join("db");
    let db = fjall::Database::builder(&db_path)
        .open()
        .map_err(|source| NodeError::Open {
            path: db_path.display().to_string(),
            source,
        })?;
    let log_store = LogStore::open(&db).map_err(|source| NodeError::Open {
        path: db_path.display().to_string(),
        source,
    })?;
    let store = StateStore::open(&db, &config.data_dir)?;
    let plugins = Arc::new(PluginHost::new(
        config.plugin_limits(),
        config.plugin_cache_dir(),
    )?);
    let registry = Arc::new(SchemaRegistry::new(store.clone(), plugins));

    let heartbeat = config.heartbeat.as_millis() as u64;
    let election = config.election_timeout.as_millis() as u64;
    let raft_config = openraft::Config {
        cluster_name: "scarab".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold),
        max_in_snapshot_log_to_keep: config.log_keep,
        // Purge everything a new snapshot allows at once (purges only follow snapshots).
        purge_batch_size: 1,
        ..Default::default()
    }
    .validate()
    .map_err(|e| NodeError::Raft(e.to_string()))?;

    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config),
        Network::new(),
        log_store,
        StateMachine::new(store.clone()),
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;

    let api_addr = listeners.api.local_addr()?;
    let peer_addr = match &listeners.peer {
        Some(l) => l.local_addr()?,
        None => api_addr,
    };
    // A node with any Raft state (a vote or a log) never initialises again: it rejoins the
    // cluster it belongs to.
    if !raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?
    {
        let members =
            BTreeMap::from([(config.node_id, BasicNode::new(config.advertised(peer_addr)))]);
        raft.initialize(members)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        tracing::info!(
            node_id = config.node_id,
            "initialised a new single-member cluster"
        );
    }

    let state = AppState {
        raft: raft.clone(),
        store,
        registry,
        config: Arc::new(config),
    };
    let mut app = api::router(state);
    let peer_server = match listeners.peer {
        Some(peer) => Some(tokio::spawn(
            axum::serve(peer, network::router(raft.clone())).into_future(),
        )),
        None => {
            app = app.merge(network::router(raft.clone()));
            None
        }
    };
    tracing::info!(%api_addr, elapsed = ?started.elapsed(), "serving");
    let served = axum::serve(listeners.api, app)
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(p) = peer_server {
        p.abort();
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    db.persist(fjall::PersistMode::SyncAll)
        .map_err(|source| NodeError::Open {
            path: db_path.display().to_string(),
            source,
        })?;
    served?;
    Ok(())
}

/// Waits until the node's Raft reports a leader, for up to `timeout`.
pub async fn wait_for_leader(raft: &Raft, timeout: std::time::Duration) -> bool {
    raft.wait(Some(timeout))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .is_ok()
}
