//! A node's configuration: flags, environment variables (`SCARAB_*`) and an optional TOML
//! file, validated before anything binds or opens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// How log lines are written (`--log-format`); read by the binary before anything logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The `--log-format` of a command line (or `SCARAB_LOG_FORMAT`), looked for before the
/// arguments are parsed: logging starts first.
pub fn log_format_of(args: &[String]) -> LogFormat {
    let given = args
        .iter()
        .position(|a| a == "--log-format")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--log-format=").map(str::to_string))
        })
        .or_else(|| std::env::var("SCARAB_LOG_FORMAT").ok());
    match given.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// The default of `--plugin-core-instances`: core module instances one plugin instance may
/// contain (`crate::plugins`).
pub const DEFAULT_CORE_INSTANCES: u32 = 64;

/// The default of `--max-violations`: violations listed per refused document (JSON Schema,
/// then plugin), before the entry that says how many more there are (`crate::schema`).
pub const DEFAULT_MAX_VIOLATIONS: usize = 100;

/// The most `--max-violations` may be: a refused write's answer then stays under about
/// 1.3 MiB (each entry is bounded: a 256-byte message, 1 KiB paths).
pub const MAX_MAX_VIOLATIONS: usize = 1_000;

/// How many bytes of converted configs one storage-migration batch (one Raft entry) holds at
/// most, besides one value: here because the peer body bound depends on it.
pub const MIGRATION_BATCH_BYTES: usize = 1 << 20;

#[derive(Args, Clone, Debug)]
pub struct NodeConfig {
    /// This node's id in the cluster (stable across restarts).
    #[arg(long, env = "SCARAB_NODE_ID", default_value_t = 1)]
    pub node_id: u64,

    /// Where the Raft log, the state and the plugin cache live.
    #[arg(long, env = "SCARAB_DATA_DIR", default_value = "./scarab-data")]
    pub data_dir: PathBuf,

    /// Client API address to listen on.
    #[arg(long, env = "SCARAB_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// URL other nodes and clients use to reach this node's API (default: http://LISTEN).
    #[arg(long, env = "SCARAB_ADVERTISE")]
    pub advertise: Option<String>,

    /// Address of the peer (Raft RPC) listener; without it, peer RPCs share the API listener.
    #[arg(long, env = "SCARAB_PEER_LISTEN")]
    pub peer_listen: Option<SocketAddr>,

    /// URL other nodes use to reach this node's peer listener (default: http://PEER_LISTEN).
    #[arg(long, env = "SCARAB_PEER_ADVERTISE")]
    pub peer_advertise: Option<String>,

    /// Start a new cluster with this node as its only voter (the default when neither --join
    /// nor --bootstrap-expect is given). Ignored when the node already has Raft state.
    #[arg(long, env = "SCARAB_BOOTSTRAP", conflicts_with = "join")]
    pub bootstrap: bool,

    /// Join an existing cluster through any of these members (API URLs, comma-separated).
    /// Such a node never initialises a cluster itself.
    #[arg(long, env = "SCARAB_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,

    /// Wait until this many nodes (this one and those in --join) have met, then form the
    /// cluster with all of them; the lowest node id initialises it.
    #[arg(long, env = "SCARAB_BOOTSTRAP_EXPECT", requires = "join")]
    pub bootstrap_expect: Option<usize>,

    /// How long a write may wait for a leader and a commit before it fails (outcome unknown).
    #[arg(long, env = "SCARAB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// How long a linearizable read may wait for its read index before it fails.
    #[arg(long, env = "SCARAB_READ_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub read_timeout: Duration,

    /// Compiled-plugin cache (default: DATA_DIR/plugin-cache). Safe to share between nodes
    /// of the same build: entries are keyed by plugin digest and engine version.
    #[arg(long, env = "SCARAB_PLUGIN_CACHE_DIR")]
    pub plugin_cache_dir: Option<PathBuf>,

    /// Largest config value accepted, in bytes (compact JSON).
    #[arg(long, env = "SCARAB_MAX_VALUE_BYTES", default_value_t = 1 << 20)]
    pub max_value_bytes: usize,

    /// Most operations one transaction (`POST /v1/txn`) may hold.
    #[arg(long, env = "SCARAB_MAX_TXN_OPS", default_value_t = 64)]
    pub max_txn_ops: usize,

    /// Most bytes of values (compact JSON, conditions' `equals` included) one transaction may
    /// carry; more is 413 `payload_too_large`. A transaction is one Raft entry.
    #[arg(long, env = "SCARAB_MAX_TXN_BYTES", default_value_t = 4 << 20)]
    pub max_txn_bytes: usize,

    /// Deepest nesting of any JSON document a request carries (a config value, a transaction
    /// condition's `equals`, a JSON Schema); deeper is 400 `json_too_deep`.
    #[arg(long, env = "SCARAB_MAX_JSON_DEPTH", default_value_t = crate::json::DEFAULT_MAX_DEPTH)]
    pub max_json_depth: usize,

    /// Log lines as `text` (for people) or `json` (one object per line, for a log pipeline).
    #[arg(long, env = "SCARAB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Browser origins allowed to call the API (CORS), comma-separated or repeated, e.g.
    /// `https://console.example.com`; `*` allows any. None by default: a browser page of
    /// another origin cannot read answers.
    #[arg(long, env = "SCARAB_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// A request slower than this is logged as a warning, with its route and where the time
    /// went (validation, Raft, the rest).
    #[arg(long, env = "SCARAB_SLOW_REQUEST", default_value = "1s", value_parser = humantime::parse_duration)]
    pub slow_request: Duration,

    /// Violations listed in a refused document's answer (JSON Schema, then plugin); one more
    /// entry, code `violations_left_out`, then says how many were left out.
    #[arg(long, env = "SCARAB_MAX_VIOLATIONS", default_value_t = DEFAULT_MAX_VIOLATIONS)]
    pub max_violations: usize,

    /// Open watches (SSE streams and long polls) this node serves at once; more is 503
    /// `too_many_watches`.
    #[arg(long, env = "SCARAB_MAX_WATCHES", default_value_t = 1024)]
    pub max_watches: usize,

    /// Proposals the leader holds waiting for the log (its group-commit queue); one more is
    /// 503 `overloaded`, with nothing applied (safe to retry).
    #[arg(long, env = "SCARAB_MAX_PENDING_PROPOSALS", default_value_t = 10_000)]
    pub max_pending_proposals: usize,

    /// Most bytes of values one page of a list, history or watch response carries (a page
    /// always holds at least one item); the page then ends early with its cursor.
    #[arg(long, env = "SCARAB_MAX_PAGE_BYTES", default_value = "4MiB", value_parser = parse_size)]
    pub max_page_bytes: usize,

    /// Largest body a peer request may have (AppendEntries, a snapshot chunk, a forwarded
    /// proposal). It must hold a few entries of the largest value or plugin: see `validate`.
    #[arg(long, env = "SCARAB_MAX_PEER_BODY_BYTES", default_value = "192MiB", value_parser = parse_size)]
    pub max_peer_body_bytes: usize,

    /// Largest plugin accepted at registration (bytes, or with KiB/MiB/GiB); a larger
    /// upload is 413 `payload_too_large` naming this flag.
    #[arg(long, env = "SCARAB_MAX_PLUGIN_BYTES", default_value = "32MiB", value_parser = parse_size)]
    pub max_plugin_bytes: usize,

    /// Time budget of one plugin call, in CPU time of the thread running it (e.g. 50ms).
    #[arg(long, env = "SCARAB_PLUGIN_TIMEOUT", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub plugin_timeout: Duration,

    /// Memory cap of one plugin instance (bytes, or with KiB/MiB/GiB).
    #[arg(long, env = "SCARAB_PLUGIN_MEMORY", default_value = "32MiB", value_parser = parse_size)]
    pub plugin_memory: usize,

    /// Plugin instances that may exist at once.
    #[arg(long, env = "SCARAB_PLUGIN_INSTANCES", default_value_t = 128)]
    pub plugin_instances: u32,

    /// Core module instances one plugin instance may contain: a Rust plugin has 1 to 4, one
    /// built by componentize-py 38. A component with more is refused at registration.
    #[arg(long, env = "SCARAB_PLUGIN_CORE_INSTANCES", default_value_t = DEFAULT_CORE_INSTANCES)]
    pub plugin_core_instances: u32,

    /// Build a snapshot after this many log entries since the last one (at least; see
    /// --snapshot-log-ratio).
    #[arg(long, env = "SCARAB_SNAPSHOT_THRESHOLD", default_value_t = 10_000)]
    pub snapshot_threshold: u64,

    /// And only once the log written since the last snapshot is at least this many times
    /// that snapshot's size (its text, uncompressed), so that rewriting the whole state costs
    /// a bounded share of the writes however large the state is (0: the entries alone decide).
    #[arg(long, env = "SCARAB_SNAPSHOT_LOG_RATIO", default_value_t = 1.0)]
    pub snapshot_log_ratio: f64,

    /// Log entries kept behind a snapshot (for followers that are slightly behind).
    #[arg(long, env = "SCARAB_LOG_KEEP", default_value_t = 1_000)]
    pub log_keep: u64,

    /// Raft heartbeat interval. openraft 0.9 also uses it as the timeout of one
    /// AppendEntries, so it must cover sending a few MiB to a follower.
    #[arg(long, env = "SCARAB_HEARTBEAT", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// Raft election timeout (lower bound; the upper bound is 1.5× this). openraft 0.9 adds a
    /// leader lease of the upper bound, so a follower campaigns 2.5× to 3× this after the
    /// leader's last heartbeat.
    #[arg(long, env = "SCARAB_ELECTION_TIMEOUT", default_value = "300ms", value_parser = humantime::parse_duration)]
    pub election_timeout: Duration,

    /// Connections each listener (API, peer) serves at once; more are answered 503
    /// `too_many_connections` and closed. Lowered at start if the open-file limit is too low.
    #[arg(long, env = "SCARAB_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Time a client has to send a complete request head (from connecting, or from the first
    /// byte of a later request on a kept-alive connection); then the connection is closed.
    #[arg(long, env = "SCARAB_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A kept-alive connection without a request in flight and without a byte received for
    /// this long is closed (a watch in progress is a request in flight).
    #[arg(long, env = "SCARAB_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Time a request body has to arrive in full after its head; then 408 `body_timeout`.
    #[arg(long, env = "SCARAB_BODY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Require authentication on the client API: bearer tokens (and client certificates).
    /// The first start of a cluster with it writes a root token to --root-token-file.
    /// Start every node of a cluster the same way.
    #[arg(long, env = "SCARAB_AUTH")]
    pub auth: bool,

    /// Serve without authentication on a non-loopback address (refused otherwise); logged at
    /// every start.
    #[arg(long, env = "SCARAB_INSECURE_NO_AUTH", conflicts_with = "auth")]
    pub insecure_no_auth: bool,

    /// Where the node that bootstraps authentication writes the root token (mode 0600), or
    /// reads it from if the file exists (default: DATA_DIR/root-token).
    #[arg(long, env = "SCARAB_ROOT_TOKEN_FILE")]
    pub root_token_file: Option<PathBuf>,

    /// Most tokens the cluster holds; creating one more is 409 `too_many_tokens` (expired
    /// tokens are removed by the next change of users, roles or tokens).
    #[arg(long, env = "SCARAB_MAX_TOKENS", default_value_t = 10_000)]
    pub max_tokens: usize,

    /// Serve the client API over TLS with this certificate chain (PEM; with --tls-key).
    /// Reloaded from disk on SIGHUP.
    #[arg(long, env = "SCARAB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "SCARAB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Ask API clients for a certificate signed by this CA (PEM); a verified one names the
    /// client (its subject CN). Clients without one are still served.
    #[arg(long, env = "SCARAB_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Mutual TLS on the peer listener and on outgoing peer connections: this node's
    /// certificate (PEM; CN scarab-node-<id>, see `scarab cert node`). Needs --peer-listen,
    /// --peer-tls-key and --peer-tls-ca. Reloaded from disk on SIGHUP.
    #[arg(long, env = "SCARAB_PEER_TLS_CERT")]
    pub peer_tls_cert: Option<PathBuf>,

    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "SCARAB_PEER_TLS_KEY")]
    pub peer_tls_key: Option<PathBuf>,

    /// The cluster CA (PEM): peers must present a certificate it signed, and peers' server
    /// certificates are verified against it alone.
    #[arg(long, env = "SCARAB_PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,

    /// A file holding the cluster secret (at least 32 bytes, surrounding whitespace
    /// trimmed): every peer request must carry it.
    #[arg(long, env = "SCARAB_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// Serve peer traffic on a non-loopback address without peer TLS or a cluster secret
    /// (anyone who reaches the port can then write anything). Logged at every start.
    #[arg(long, env = "SCARAB_INSECURE_PEER")]
    pub insecure_peer: bool,
}

/// Parses `1024`, `64KiB`, `32MiB`, `1GiB` (also KB/MB/GB as powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 32MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl NodeConfig {
    /// A configuration with every default, for tests and the dev server.
    pub fn with_data_dir(data_dir: PathBuf) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: NodeConfig,
        }
        let mut c = Wrapper::parse_from(["scarab"]).config;
        c.data_dir = data_dir;
        c
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.node_id == 0 {
            return fail("--node-id must be at least 1".into());
        }
        if !self.auth && !self.insecure_no_auth && !self.listen.ip().is_loopback() {
            return fail(format!(
                "refusing to serve the API on {} without authentication: start with --auth (the \
                 first start writes a root token to --root-token-file), or with \
                 --insecure-no-auth to serve it open on purpose",
                self.listen
            ));
        }
        if self.max_tokens == 0 {
            return fail("--max-tokens must be at least 1".into());
        }
        for origin in &self.cors_origin {
            let o = origin.trim();
            let scheme_host = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
            if o != "*" && !scheme_host {
                return fail(format!(
                    "--cors-origin {origin:?} must be an origin such as https://console.example.com (scheme, host and port, no path) or *"
                ));
            }
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 64 << 20 {
            return fail("--max-value-bytes must be between 1 and 64 MiB".into());
        }
        if self.max_txn_ops == 0 || self.max_txn_ops > 10_000 {
            return fail("--max-txn-ops must be between 1 and 10000".into());
        }
        if self.max_json_depth == 0 || self.max_json_depth > crate::json::MAX_MAX_DEPTH {
            return fail(format!(
                "--max-json-depth must be between 1 and {}",
                crate::json::MAX_MAX_DEPTH
            ));
        }
        if self.max_violations == 0 || self.max_violations > MAX_MAX_VIOLATIONS {
            return fail(format!(
                "--max-violations must be between 1 and {}",
                MAX_MAX_VIOLATIONS
            ));
        }
        if self.max_txn_bytes < self.max_value_bytes || self.max_txn_bytes > 64 << 20 {
            return fail(
                "--max-txn-bytes must be at least --max-value-bytes and at most 64 MiB".into(),
            );
        }
        if self.max_peer_body_bytes < self.min_peer_body_bytes() {
            return fail(format!(
                "--max-peer-body-bytes must be at least {} with these --max-value-bytes and --max-plugin-bytes (an AppendEntries holds up to 4 entries of the largest value or plugin)",
                self.min_peer_body_bytes()
            ));
        }
        if self.max_watches == 0 {
            return fail("--max-watches must be at least 1".into());
        }
        if self.max_pending_proposals == 0 {
            return fail("--max-pending-proposals must be at least 1".into());
        }
        if self.max_page_bytes < (64 << 10) {
            return fail("--max-page-bytes must be at least 64KiB".into());
        }
        if self.plugin_timeout < Duration::from_millis(1)
            || self.plugin_timeout > Duration::from_secs(60)
        {
            return fail("--plugin-timeout must be between 1ms and 60s".into());
        }
        if self.plugin_memory < (1 << 20) || self.plugin_memory > (4 << 30) {
            return fail("--plugin-memory must be between 1MiB and 4GiB".into());
        }
        if self.plugin_core_instances == 0 || self.plugin_core_instances > 1_000 {
            return fail("--plugin-core-instances must be between 1 and 1000".into());
        }
        if self.plugin_instances == 0 || self.plugin_instances > 10_000 {
            return fail("--plugin-instances must be between 1 and 10000".into());
        }
        if self.snapshot_threshold == 0 {
            return fail("--snapshot-threshold must be at least 1".into());
        }
        if !(0.0..=1000.0).contains(&self.snapshot_log_ratio) {
            return fail("--snapshot-log-ratio must be between 0 and 1000".into());
        }
        if self.heartbeat.is_zero() || self.election_timeout < self.heartbeat * 3 {
            return fail("--election-timeout must be at least three heartbeats".into());
        }
        if self.bootstrap_expect == Some(0) {
            return fail("--bootstrap-expect must be at least 1".into());
        }
        if self.advertise.as_deref().is_some_and(|a| a.contains(' ')) {
            return fail("--advertise must be a URL such as http://10.0.0.1:7070".into());
        }
        if self.write_timeout.is_zero() || self.read_timeout.is_zero() {
            return fail("--write-timeout and --read-timeout must be positive".into());
        }
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return fail("--max-connections must be between 1 and 1000000".into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return fail("--tls-cert and --tls-key go together".into());
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return fail("--tls-client-ca needs --tls-cert and --tls-key".into());
        }
        let peer_tls = [&self.peer_tls_cert, &self.peer_tls_key, &self.peer_tls_ca]
            .iter()
            .filter(|f| f.is_some())
            .count();
        if peer_tls != 0 && peer_tls != 3 {
            return fail(
                "--peer-tls-cert, --peer-tls-key and --peer-tls-ca go together (all three)".into(),
            );
        }
        if peer_tls == 3 && self.peer_listen.is_none() {
            return fail(
                "peer TLS needs its own listener (--peer-listen): the client API cannot require a peer certificate".into(),
            );
        }
        for (flag, d) in [
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--body-timeout", self.body_timeout),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(24 * 3600) {
                return fail(format!("{flag} must be between 100ms and 24h"));
            }
        }
        Ok(())
    }

    /// What a peer body must be able to hold: an AppendEntries of up to 4 entries (the
    /// `max_payload_entries` in node.rs), each the largest single command: a transaction or a
    /// migration batch of values (JSON-escaped inside JSON: at most twice their size), or the
    /// largest plugin (base64: 4/3), plus the envelope.
    pub fn min_peer_body_bytes(&self) -> usize {
        let values = self
            .max_value_bytes
            .max(self.max_txn_bytes)
            .max(MIGRATION_BATCH_BYTES + self.max_value_bytes);
        let largest = (2 * values).max(self.max_plugin_bytes / 3 * 4 + 4);
        4 * (largest + (64 << 10))
    }

    /// Whether peer traffic uses mutual TLS (all three --peer-tls-* flags).
    pub fn peer_tls(&self) -> bool {
        self.peer_tls_cert.is_some() && self.peer_tls_key.is_some() && self.peer_tls_ca.is_some()
    }

    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.plugin_cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugin-cache"))
    }
}

/// Turns a TOML file into command-line arguments placed before the real ones, so that flags
/// and `SCARAB_*` variables win over the file. Keys are flag names (`data-dir` or `data_dir`).
pub fn file_args(path: &std::path::Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let mut args = Vec::new();
    for (k, v) in table {
        let flag = k.replace('_', "-");
        let env = format!("SCARAB_{}", k.replace('-', "_").to_ascii_uppercase());
        if std::env::var_os(&env).is_some() {
            continue;
        }
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => return Err(ConfigError(format!("{k}: unsupported value {other}"))),
        };
        args.push(format!("--{flag}={value}"));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        NodeConfig::with_data_dir("x".into()).validate().unwrap();
    }

    #[test]
    fn zero_node_id_is_refused() {
        let mut c = NodeConfig::with_data_dir("x".into());
        c.node_id = 0;
        assert!(c.validate().is_err());
    }
}
