//! A typed async client of Scarab, a Raft-replicated configuration service whose validation
//! is extensible with WebAssembly: the whole `/v1` HTTP API, with the server's own wire
//! types ([`scarab_types`], re-exported as [`types`]), failover across the nodes of a
//! cluster, and watches that resume across reconnects.
//!
//! ```no_run
//! use scarab_client::{Client, types::PutConfig};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), scarab_client::Error> {
//! let client = Client::builder()
//!     .endpoints(["http://10.0.0.1:7070", "http://10.0.0.2:7070", "http://10.0.0.3:7070"])
//!     .actor("alice")
//!     .build()?;
//!
//! let written = client
//!     .put("stores/orders", &PutConfig::new("store", 1, json!({"timeout_ms": 5000})))
//!     .await?;
//! println!("revision {} (created: {})", written.revision, written.created);
//!
//! let entry = client.get("stores/orders").await?;
//! assert_eq!(entry.value["timeout_ms"], 5000);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Every call returns [`Error`]: [`Error::Api`] carries the server's [`ApiError`] (the HTTP
//! status, the typed [`ErrorCode`](types::ErrorCode), the message, every violation, and the
//! report of a refused registration or transaction); [`Error::Transport`] says whether the
//! request may have been sent.
//!
//! ```no_run
//! use scarab_client::{Client, Error, WriteOptions, types::{ErrorCode, PutConfig}};
//! use serde_json::json;
//!
//! # async fn run(client: Client) -> Result<(), Error> {
//! // Compare-and-set on the revision read; on an unknown outcome (a timeout), the write
//! // may be sent again: a second application would fail its condition.
//! let current = client.get("flags/checkout").await?;
//! let put = PutConfig::new("flag", 1, json!({"enabled": true}));
//! let opts = WriteOptions::new()
//!     .if_match(current.meta.revision)
//!     .reason("enable checkout")
//!     .retry_unknown_outcome();
//! match client.put_with("flags/checkout", &put, &opts).await {
//!     Ok(w) => println!("now at revision {}", w.revision),
//!     Err(Error::Api(e)) if e.code == ErrorCode::ValidationFailed => {
//!         for v in &e.violations {
//!             println!("{}: {}", v.path, v.message);
//!         }
//!     }
//!     Err(Error::Api(e)) if e.code == ErrorCode::PreconditionFailed => {
//!         println!("changed meanwhile (or applied by the first attempt): read it again");
//!     }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Failover and retries
//!
//! A call goes to the endpoint that last answered and moves on to the next only when the
//! outcome is certain: the request was never sent (connection refused), or the server said
//! nothing was applied (503 `no_leader`, `overloaded`, `too_many_connections`; see
//! [`ErrorCode::is_retry_safe`](types::ErrorCode::is_retry_safe)). Reads are also repeated
//! after `timeout`, `leader_unreachable` and `not_ready`. A write whose outcome is unknown
//! is returned as such ([`Error::is_outcome_unknown`]) unless it is conditional and opts in
//! with [`WriteOptions::retry_unknown_outcome`]. See [`Client`].
//!
//! # Lists, history and audit
//!
//! [`Client::list`], [`Client::history_all`] and [`Client::audit`] are streams that follow
//! the server's paging cursor; [`Client::list_page`], [`Client::history`] and
//! [`Client::audit_page`] read one page.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use scarab_client::{Client, ListOptions};
//!
//! # async fn run(client: Client) -> Result<(), scarab_client::Error> {
//! let mut configs = std::pin::pin!(client.list(ListOptions::prefix("stores/").limit(500)));
//! while let Some(entry) = configs.try_next().await? {
//!     println!("{} at revision {}", entry.meta.key, entry.meta.revision);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Watch
//!
//! [`Client::watch`] is a stream of the changes under a prefix over Server-Sent Events, one
//! item per revision. It reconnects by itself, to another node when one fails, and resumes
//! after the last revision it delivered (`Last-Event-ID`), so it misses nothing and
//! delivers nothing twice. It ends only with an error that retrying cannot cure, such as 410
//! `revision_compacted`.
//!
//! ```no_run
//! use futures::StreamExt;
//! use scarab_client::{Client, WatchOptions, types::WatchEvent};
//!
//! # async fn run(client: Client) -> Result<(), scarab_client::Error> {
//! let mut watch = client.watch(WatchOptions::prefix("stores/").from_revision(42));
//! while let Some(event) = watch.next().await {
//!     match event? {
//!         WatchEvent::Change(batch) => {
//!             for change in batch.events {
//!                 println!("{} {:?} {:?}", batch.revision, change.kind, change.meta.key);
//!             }
//!         }
//!         WatchEvent::Progress(p) => println!("nothing new through {}", p.revision),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Schemas, migrations, cluster
//!
//! ```no_run
//! use scarab_client::{Client, SchemaUpload};
//!
//! # async fn run(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let upload = SchemaUpload::from_bytes(std::fs::read("schemas/store/v2.json")?)
//!     .plugin(std::fs::read("store_v2.wasm")?);
//! let check = client.check_compatibility("store", 2, &upload).await?;
//! if check.compatibility.compatible {
//!     client.register_schema("store", 2, &upload).await?;
//!     let migration = client.start_migration("store", 2).await?;
//!     println!("migration {} of {} configs", migration.id, migration.total);
//! }
//! for member in client.cluster().await?.members {
//!     println!("{} {:?} lag {:?}", member.node_id, member.role, member.lag);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # HTTPS
//!
//! The crate enables no TLS backend of `reqwest` 0.12. To reach `https://` endpoints,
//! enable one in your own `Cargo.toml` (`reqwest = { version = "0.12", features =
//! ["rustls-tls"] }`: Cargo unifies the features), or pass a configured client with
//! [`ClientBuilder::http_client`].
//!
//! A Tokio runtime is required (as for `reqwest`).

mod client;
mod error;
mod mirror;
mod options;
mod paging;
mod retry;
mod sse;
#[cfg(feature = "rustls-tls")]
mod tls;
mod watch;

pub use client::{BackupStream, Client, ClientBuilder, Plugin, Read, Written};
pub use error::{ApiError, Error};
pub use mirror::{
    Applied, CacheError, Freshness, Mirror, MirrorOptions, epoch_ms, write_atomically,
};
pub use options::{
    AuditQuery, HistoryOptions, ListOptions, ReadOptions, SchemaUpload, WatchOptions, WriteOptions,
};
pub use reqwest::Url;
pub use watch::WatchStream;

/// The wire types (the `scarab-types` crate).
pub use scarab_types as types;
