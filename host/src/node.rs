//! Starting and stopping a node: storage, consensus, plugin host, HTTP. The binary, the dev
//! server, the benchmark and the tests all go through [`run`].

use std::future::Future;
use std::sync::Arc;

use openraft::SnapshotPolicy;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::cluster::Cluster;
use crate::cluster::form::{FormError, Formation, form};
use crate::config::{ConfigError, NodeConfig};
use crate::datadir::{self, DataDir, DataDirError};
use crate::plugins::{PluginError, PluginHost};
use crate::raft::log_store::LogStore;
use crate::raft::network::{self, Network};
use crate::raft::{Raft, StateMachine};
use crate::schema::SchemaRegistry;
use crate::store::{StateStore, StoreError};
use crate::tls::{Reload, ServerTls, TlsError, TlsFiles};
use crate::transport::{ClusterSecret, PeerTransport, TransportError};

/// The sockets a node serves on, bound by the caller (so tests and the dev server can bind
/// port 0 and learn the port before the node starts).
pub struct Listeners {
    /// Client API.
    pub api: TcpListener,
    /// Peer Raft RPCs; `None` serves them on the API listener.
    pub peer: Option<TcpListener>,
    /// Reloads both listeners' certificates and keys from disk when triggered (the binary
    /// does on SIGHUP); `Reload::default()` when nothing will.
    pub reload: Reload,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot open the database {path}: {source}. If its files are damaged, restore this node's data directory from a backup or, in a cluster whose other nodes are healthy, move it aside and add the node again (README: Reliability)"
    )]
    Open { path: String, source: fjall::Error },
    #[error(
        "another scarab process is using {dir} (its database {path} is locked): stop that process, or give this one another --data-dir"
    )]
    Locked { dir: String, path: String },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plugins(#[from] PluginError),
    #[error("invalid Raft configuration")]
    RaftConfig(#[from] Box<openraft::ConfigError>),
    #[error("consensus")]
    Raft(#[from] Box<openraft::error::Fatal<crate::raft::NodeId>>),
    #[error("the API server task failed")]
    ServerTask(#[from] tokio::task::JoinError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot form or join the cluster: {0}")]
    Form(#[from] FormError),
    #[error("client API TLS: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "stopped: consensus failed. Nothing was acknowledged after the failure; check the disk, then restart the node: it recovers from what is on disk"
    )]
    Fatal(#[source] Box<openraft::error::Fatal<crate::raft::NodeId>>),
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
    let api_addr = listeners.api.local_addr()?;
    let peer_addr = match &listeners.peer {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    // TLS material and the cluster secret are read before anything opens: a node whose
    // certificates or secret are wrong does not start.
    let api_tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(ServerTls::load(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: config.tls_client_ca.clone(),
            require_client_cert: false,
        })?)),
        _ => None,
    };
    let peer_tls = match (
        &config.peer_tls_cert,
        &config.peer_tls_key,
        &config.peer_tls_ca,
    ) {
        (Some(cert), Some(key), Some(ca)) => Some(Arc::new(
            ServerTls::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: Some(ca.clone()),
                require_client_cert: true,
            })
            .map_err(TransportError::Tls)?,
        )),
        _ => None,
    };
    let secret = match &config.cluster_secret_file {
        Some(path) => Some(ClusterSecret::load(path)?),
        None => None,
    };
    check_peer_exposure(
        &config,
        peer_addr.unwrap_or(api_addr),
        peer_tls.is_some() || secret.is_some(),
    )?;
    if api_tls.is_some() && peer_addr.is_none() {
        // Peers would reach this node's peer routes over https on the API listener, and
        // outgoing peer connections trust only the cluster CA, which needs --peer-listen.
        tracing::warn!(
            "the client API has TLS and peers share its listener (no --peer-listen): other              nodes cannot reach this node, so it cannot join or be joined. In a cluster, give              --peer-listen (with peer TLS or a cluster secret)"
        );
    }
    // Before anything opens a file: connections and fjall's files count against one limit.
    let limits = crate::serve::fit_open_files(
        crate::serve::ConnLimits::from_config(&config),
        1 + usize::from(listeners.peer.is_some()),
    );
    std::fs::create_dir_all(&config.data_dir)?;
    let dir = DataDir::new(&config.data_dir);
    // Before fjall opens anything: its recovery would cut a damaged journal short for good.
    let checked = dir.check_before_open()?;
    // Two databases: the log's journal is fsynced by its writer thread; the state machine's
    // never waits for that fsync (see raft/DESIGN.md).
    let open = |path: std::path::PathBuf| {
        fjall::Database::builder(&path)
            // fjall's default, 512 MiB of journal per database, was most of the disk of a
            // small state under steady writes; 64 MiB (its minimum) flushes memtables sooner.
            .max_journaling_size(JOURNAL_BYTES)
            .open()
            .map_err(|source| match source {
                fjall::Error::Locked => NodeError::Locked {
                    dir: config.data_dir.display().to_string(),
                    path: path.display().to_string(),
                },
                source => NodeError::Open {
                    path: path.display().to_string(),
                    source,
                },
            })
    };
    let log_db = open(dir.raft_db())?;
    let state_db = open(dir.state_db())?;
    let log_store = LogStore::open(&log_db).map_err(|source| NodeError::Open {
        path: dir.raft_db().display().to_string(),
        source,
    })?;
    let store = StateStore::open(&state_db, &config.data_dir)?;
    datadir::verify_opened(&dir, &checked, &log_store, &store)?;
    let plugins = Arc::new(PluginHost::new(
        plugin_limits(&config),
        config.plugin_cache_dir(),
    )?);
    let registry = Arc::new(SchemaRegistry::new(
        store.clone(),
        plugins,
        config.max_violations,
    ));

    let heartbeat = config.heartbeat.as_millis() as u64;
    let election = config.election_timeout.as_millis() as u64;
    let raft_config = openraft::Config {
        cluster_name: "scarab".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election,
        // openraft 0.9 also makes this the leader lease a follower waits out on top of its
        // timeout: a follower campaigns lease + [min, max) after the last heartbeat. Twice the
        // minimum put failover at 1.4 s; 1.5× at about 0.8 s with 300 ms (BENCHMARKS.md).
        election_timeout_max: election + election / 2,
        // Snapshots are triggered by `raft::snapshot_policy`, which also weighs their size.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: config.log_keep,
        // Purge everything a new snapshot allows at once (purges only follow snapshots).
        purge_batch_size: 1,
        // openraft 0.9 gives one AppendEntries a heartbeat interval to complete; an entry is a
        // batch of up to 256 KiB of values (or one larger value): keep the request small.
        max_payload_entries: 4,
        // openraft gives the last snapshot chunk this long to be sent *and installed* on the
        // follower, and starts over when it expires. The default (200 ms) is far less than
        // installing a state of any size takes, so a follower behind the purge point could
        // never catch up (found by the nemesis suite once history made states bigger). A dead
        // follower only costs its own replication stream this long.
        install_snapshot_timeout: 60_000,
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    }
    .validate()
    .map_err(Box::new)?;

    let info = node_info(&config, api_addr, peer_addr);
    let local_ip = peer_addr.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
    let mut transport = PeerTransport::new(local_ip);
    if let (Some(tls), Some(ca)) = (&peer_tls, &config.peer_tls_ca) {
        transport = transport.with_tls(ca, tls.client_cert_resolver())?;
    }
    if let Some(secret) = &secret {
        transport = transport.with_secret(secret.clone());
    }
    let appended = log_store.appended_bytes();
    let raft = Raft::new(
        config.node_id,
        Arc::new(raft_config),
        Network::new(&transport),
        log_store,
        StateMachine::new(store.clone()),
    )
    .await
    .map_err(Box::new)?;
    let snapshots = tokio::spawn(crate::raft::snapshot_policy::run(
        raft.clone(),
        store.clone(),
        appended,
        crate::raft::snapshot_policy::Policy {
            min_entries: config.snapshot_threshold,
            log_ratio: config.snapshot_log_ratio,
        },
    ));
    let cluster = Cluster::new(
        raft.clone(),
        config.node_id,
        info.clone(),
        transport,
        config.write_timeout,
        config.read_timeout,
        config.max_pending_proposals,
    );
    // A node with any Raft state (a vote or a log) never forms a cluster again: it rejoins
    // the one it belongs to.
    let initialized = raft.is_initialized().await.map_err(Box::new)?;
    let formation = (!initialized).then(|| formation(&config));
    if formation == Some(Formation::Bootstrap) {
        form(&cluster, Formation::Bootstrap).await?;
    }

    let config_data_dir = config.data_dir.clone();
    let migrations = tokio::spawn(crate::migrate::worker(
        cluster.clone(),
        store.clone(),
        registry.clone(),
    ));
    // Cancelled when the node starts to stop: long-lived responses (watches) end then, so that
    // the graceful shutdown does not wait for them.
    let stopping = tokio_util::sync::CancellationToken::new();
    let watches = Arc::new(tokio::sync::Semaphore::new(config.max_watches));
    let (node_id, peer_limit) = (config.node_id, config.max_peer_body_bytes);
    let (auth, insecure_no_auth) = (config.auth, config.insecure_no_auth);
    // Backups are written under the data directory and unlinked at once; one a crash
    // interrupted may be left.
    let _ = std::fs::remove_dir_all(config.data_dir.join("backups"));
    let state = AppState::new(crate::api::Handles {
        watches,
        backups: Arc::new(tokio::sync::Semaphore::new(1)),
        raft: raft.clone(),
        store,
        registry,
        config: Arc::new(config),
        cluster: cluster.clone(),
        stopping: stopping.clone(),
    });
    let peer_router = crate::cluster::guard(
        network::router(raft.clone(), node_id, peer_limit)
            .merge(crate::cluster::router(cluster.clone(), peer_limit)),
        raft.clone(),
        peer_tls.is_some(),
        secret,
    );
    let bootstrap_state = state.clone();
    let reloads = tokio::spawn(reload_on_request(
        listeners.reload.clone(),
        api_tls.clone(),
        peer_tls.clone(),
    ));
    let mut app = api::router(state);
    let stop_now = tokio_util::sync::CancellationToken::new();
    let stop = {
        let stop_now = stop_now.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stop_now.cancelled() => {}
            }
            stopping.cancel();
        }
    };
    // A fatal Raft error (a failed log write or fsync) stops consensus for good: stop serving
    // too, so that clients and supervisors see a dead node, not one that times out forever.
    let fatal = {
        let raft = raft.clone();
        let stop_now = stop_now.clone();
        tokio::spawn(async move {
            let mut metrics = raft.metrics();
            let mut leader = None;
            loop {
                // Counted here, where every change of the metrics passes.
                let now = metrics.borrow().current_leader;
                if now.is_some() && now != leader {
                    crate::metrics::get().leader_changes.inc();
                }
                leader = now;
                if let Err(e) = &metrics.borrow().running_state {
                    tracing::error!(error = %e, "consensus stopped; shutting the node down");
                    stop_now.cancel();
                    return Some(e.clone());
                }
                if metrics.changed().await.is_err() {
                    // The core task ended without a fatal error in its metrics: it panicked
                    // (or was shut down, which only happens after the servers stopped). Never
                    // stay up as a node that answers health but cannot write.
                    if stop_now.is_cancelled() {
                        return None;
                    }
                    tracing::error!("the consensus task ended; shutting the node down");
                    stop_now.cancel();
                    return Some(openraft::error::Fatal::Panicked);
                }
            }
        })
    };
    let (stop_peer_tx, stop_peer_rx) = tokio::sync::oneshot::channel::<()>();
    let peer_server = match listeners.peer {
        Some(peer) => Some(tokio::spawn(crate::serve::serve(
            peer,
            peer_router,
            limits,
            peer_tls,
            async {
                let _ = stop_peer_rx.await;
            },
        ))),
        None => {
            app = app.merge(peer_router);
            None
        }
    };
    if auth {
        tokio::spawn(api::auth_bootstrap(bootstrap_state));
    } else if insecure_no_auth {
        tracing::warn!(%api_addr, "--insecure-no-auth: the API is served WITHOUT authentication; anyone who reaches it may read and change everything");
    } else {
        tracing::info!(%api_addr, "authentication is off (the API listens on loopback only; --auth turns it on)");
    }
    tracing::info!(%api_addr, ?peer_addr, node = %info, elapsed = ?started.elapsed(), "serving");
    let api_server = tokio::spawn(crate::serve::serve(
        listeners.api,
        app,
        limits,
        api_tls,
        stop,
    ));
    // Joining needs this node's peer endpoint up (the leader replicates to it while it adds it).
    let mut formed = Ok(());
    if let Some(f) = formation.filter(|f| *f != Formation::Bootstrap) {
        formed = form(&cluster, f).await;
        if formed.is_err() {
            stop_now.cancel();
        }
    }
    let served = api_server.await;
    migrations.abort();
    reloads.abort();
    snapshots.abort();
    let _ = stop_peer_tx.send(());
    if let Some(p) = peer_server {
        let _ = p.await;
    }
    let fatal = if fatal.is_finished() {
        fatal.await.ok().flatten()
    } else {
        fatal.abort();
        None
    };
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft did not shut down cleanly");
    }
    if let Some(e) = fatal {
        return Err(NodeError::Fatal(Box::new(e)));
    }
    for (name, db) in [("raft", &log_db), ("state", &state_db)] {
        db.persist(fjall::PersistMode::SyncAll)
            .map_err(|source| NodeError::Open {
                path: config_data_dir.join(name).display().to_string(),
                source,
            })?;
    }
    formed?;
    match served {
        Ok(r) => r?,
        Err(e) => return Err(NodeError::ServerTask(e)),
    }
    Ok(())
}

/// The journal each fjall database may keep before memtables are flushed (see `open`).
const JOURNAL_BYTES: u64 = 64 << 20;

fn plugin_limits(config: &NodeConfig) -> crate::plugins::PluginLimits {
    crate::plugins::PluginLimits {
        timeout: config.plugin_timeout,
        memory_bytes: config.plugin_memory,
        max_instances: config.plugin_instances,
        core_instances: config.plugin_core_instances,
        ..crate::plugins::PluginLimits::default()
    }
}

/// How this node is reached, given the addresses its listeners are bound to: https when
/// the listener has TLS, unless the advertised URL says otherwise.
fn node_info(
    config: &NodeConfig,
    api: std::net::SocketAddr,
    peer: Option<std::net::SocketAddr>,
) -> crate::raft::NodeInfo {
    let url = |s: &str, tls: bool| {
        let s = s.trim_end_matches('/');
        if s.starts_with("http://") || s.starts_with("https://") {
            s.to_string()
        } else if tls {
            format!("https://{s}")
        } else {
            format!("http://{s}")
        }
    };
    let api = url(
        &config.advertise.clone().unwrap_or_else(|| api.to_string()),
        config.tls_cert.is_some(),
    );
    let peer = match (&config.peer_advertise, peer) {
        (Some(p), _) => url(p, config.peer_tls()),
        (None, Some(p)) => url(&p.to_string(), config.peer_tls()),
        (None, None) => api.clone(),
    };
    crate::raft::NodeInfo { api, peer }
}

/// What this node does on its first start (without Raft state).
fn formation(config: &NodeConfig) -> Formation {
    match (config.bootstrap_expect, config.join.is_empty()) {
        (Some(n), false) if n > 1 => Formation::Expect {
            expect: n,
            peers: config.join.clone(),
        },
        (_, false) => Formation::Join(config.join.clone()),
        (_, true) => Formation::Bootstrap,
    }
}

/// Refuses to serve peer traffic (Raft RPCs, forwarded proposals: anything can be written
/// through them) on a non-loopback address without peer TLS or a cluster secret, unless
/// `--insecure-peer`; warns on loopback, where only local processes can reach it.
fn check_peer_exposure(
    config: &NodeConfig,
    peer: std::net::SocketAddr,
    protected: bool,
) -> Result<(), ConfigError> {
    if protected {
        return Ok(());
    }
    let shared = if config.peer_listen.is_none() {
        " (the client API listener, which serves peer traffic without --peer-listen)"
    } else {
        ""
    };
    if peer.ip().is_loopback() {
        tracing::warn!(
            "peer traffic on {peer}{shared} is not protected (no peer TLS, no cluster secret): any local process can write through it"
        );
        return Ok(());
    }
    if config.insecure_peer {
        tracing::warn!(
            "--insecure-peer: peer traffic on {peer}{shared} is not protected (no peer TLS, no cluster secret): anyone who reaches it can write anything"
        );
        return Ok(());
    }
    Err(ConfigError(format!(
        "peer traffic on {peer}{shared} would not be protected: anyone who reaches it could write anything. Give --peer-tls-cert/--peer-tls-key/--peer-tls-ca (see `scarab cert`) or --cluster-secret-file, or --insecure-peer to accept the risk"
    )))
}

/// Reloads the listeners' TLS material each time `reload` is triggered; a failed reload is
/// logged and keeps the material in use.
async fn reload_on_request(
    reload: Reload,
    api: Option<Arc<ServerTls>>,
    peer: Option<Arc<ServerTls>>,
) {
    let mut requests = reload.subscribe();
    while requests.changed().await.is_ok() {
        for (listener, tls) in [("api", &api), ("peer", &peer)] {
            let Some(tls) = tls else { continue };
            match tls.reload() {
                Ok(()) => tracing::info!(
                    listener,
                    cert = %tls.files().cert.display(),
                    "reloaded the TLS certificate and key"
                ),
                Err(e) => tracing::error!(
                    listener,
                    error = %e,
                    "cannot reload the TLS certificate; still serving the previous one"
                ),
            }
        }
    }
}
