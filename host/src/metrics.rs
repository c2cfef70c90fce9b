//! The node's Prometheus metrics: one registry per process (a node is a process), updated
//! where things happen and, for state (Raft positions, counts, sizes), read when scraped.
//! Served at `GET /metrics` in the Prometheus text format by `prometheus-client`.
//!
//! Label cardinality is bounded: routes are templates (`/v1/configs/{*key}`), never raw paths;
//! schema names and versions are registered ones; peers are members.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchemaLabels {
    pub schema: String,
    pub version: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginCallLabels {
    pub schema: String,
    pub version: u32,
    /// `ok`, `timeout`, `trap`, `memory`, `refused`, `malformed`, `instantiate`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub schema: String,
    /// `schema` or `plugin`: who refused.
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbLabels {
    /// `raft` (the log) or `state` (the state machine), or `snapshots`.
    pub db: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub proposals: Counter,
    pub proposal_batch: Histogram,
    pub leader_changes: Counter,
    pub append_entries: Family<PeerLabels, Histogram>,
    pub log_fsync: Histogram,
    pub snapshot_builds: Counter,
    pub snapshot_build_bytes: Counter,
    pub snapshot_build_seconds: Histogram,
    pub snapshot_installs: Counter,
    pub snapshot_install_seconds: Histogram,
    pub snapshot_install_bytes: Counter,
    pub plugin_calls: Family<PluginCallLabels, Counter>,
    pub plugin_duration: Family<SchemaLabels, Histogram>,
    pub plugin_instantiations: Counter,
    pub validations_refused: Family<RefusedLabels, Counter>,
    // Read at scrape time.
    pub raft_term: Gauge,
    pub raft_leader: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_last_log_index: Gauge,
    pub raft_applied_index: Gauge,
    pub raft_commit_index: Gauge,
    pub raft_snapshot_index: Gauge,
    pub revision: Gauge,
    pub configs: Gauge,
    pub schema_versions: Gauge,
    pub watches_open: Gauge,
    pub storage_bytes: Family<DbLabels, Gauge>,
}

/// Seconds, from 50 µs to about 26 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("scarab");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        let append_entries =
            Family::<PeerLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        let plugin_duration =
            Family::<SchemaLabels, Histogram>::new_with_constructor(seconds as fn() -> Histogram);
        let m = Self {
            http_requests,
            http_duration,
            proposals: Counter::default(),
            proposal_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            leader_changes: Counter::default(),
            append_entries,
            log_fsync: seconds(),
            snapshot_builds: Counter::default(),
            snapshot_build_bytes: Counter::default(),
            snapshot_build_seconds: seconds(),
            snapshot_installs: Counter::default(),
            snapshot_install_seconds: seconds(),
            snapshot_install_bytes: Counter::default(),
            plugin_calls: Family::default(),
            plugin_duration,
            plugin_instantiations: Counter::default(),
            validations_refused: Family::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_snapshot_index: Gauge::default(),
            revision: Gauge::default(),
            configs: Gauge::default(),
            schema_versions: Gauge::default(),
            watches_open: Gauge::default(),
            storage_bytes: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            m.http_duration.clone(),
        );
        r.register(
            "raft_proposals",
            "Proposals to the Raft log (one per batch of commands)",
            m.proposals.clone(),
        );
        r.register(
            "raft_proposal_commands",
            "Commands per proposal batch (group commit)",
            m.proposal_batch.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Changes of the leader this node has seen",
            m.leader_changes.clone(),
        );
        r.register(
            "raft_append_entries_seconds",
            "AppendEntries round trips from this node, by peer",
            m.append_entries.clone(),
        );
        r.register(
            "raft_log_fsync_seconds",
            "fsyncs of the Raft log",
            m.log_fsync.clone(),
        );
        r.register(
            "snapshot_builds",
            "Snapshots built",
            m.snapshot_builds.clone(),
        );
        r.register(
            "snapshot_build_bytes",
            "Bytes of snapshots built",
            m.snapshot_build_bytes.clone(),
        );
        r.register(
            "snapshot_build_seconds",
            "Time to build a snapshot",
            m.snapshot_build_seconds.clone(),
        );
        r.register(
            "snapshot_installs",
            "Snapshots installed from the leader",
            m.snapshot_installs.clone(),
        );
        r.register(
            "snapshot_install_seconds",
            "Time to install a snapshot",
            m.snapshot_install_seconds.clone(),
        );
        r.register(
            "snapshot_install_bytes",
            "Bytes of snapshots installed from the leader",
            m.snapshot_install_bytes.clone(),
        );
        r.register(
            "plugin_calls",
            "Plugin calls by schema, version and outcome (ok, timeout, trap, memory, refused, malformed, instantiate)",
            m.plugin_calls.clone(),
        );
        r.register(
            "plugin_call_seconds",
            "Plugin call latency by schema and version",
            m.plugin_duration.clone(),
        );
        r.register(
            "plugin_instantiations",
            "Plugin instances created",
            m.plugin_instantiations.clone(),
        );
        r.register(
            "validations_refused",
            "Documents refused, by schema and by who refused (schema or plugin)",
            m.validations_refused.clone(),
        );
        for (name, help, gauge) in [
            ("raft_term", "Current Raft term", &m.raft_term),
            (
                "raft_leader",
                "Node id of the leader (0: none known)",
                &m.raft_leader,
            ),
            (
                "raft_is_leader",
                "1 when this node leads",
                &m.raft_is_leader,
            ),
            (
                "raft_last_log_index",
                "Index of the last log entry",
                &m.raft_last_log_index,
            ),
            (
                "raft_applied_index",
                "Index of the last applied entry",
                &m.raft_applied_index,
            ),
            (
                "raft_commit_index",
                "Index of the last entry this node knows is committed",
                &m.raft_commit_index,
            ),
            (
                "raft_snapshot_index",
                "Last index the current snapshot covers",
                &m.raft_snapshot_index,
            ),
            ("revision", "Global revision applied here", &m.revision),
            ("configs", "Configs stored", &m.configs),
            (
                "schema_versions",
                "Schema versions registered",
                &m.schema_versions,
            ),
            (
                "watches_open",
                "Open watch streams and long polls on this node",
                &m.watches_open,
            ),
        ] {
            r.register(name, help, gauge.clone());
        }
        r.register(
            "storage_bytes",
            "Bytes on disk per database",
            m.storage_bytes.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The bytes of the files under `dir` (0 when missing).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
