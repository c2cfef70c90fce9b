//! Scarab: a replicated configuration service whose writes are validated by JSON Schema and by
//! WebAssembly plugins.
//!
//! Data flows one way: `api` → [`schema`] validation (with [`plugins`]) → `raft` proposal
//! → `store` apply. The state machine never calls a plugin, so apply is deterministic. The
//! modules form layers, each using only its own and the ones below (README, "Inside the
//! server"; checked by `tests/layering.rs`).
//!
//! The library's public face is small: [`run`] starts a node (the `scarab` binary's `serve`
//! and `dev` use it) on its [`Listeners`], whose [`Reload`] handle reloads its certificates,
//! [`NodeConfig`] is its configuration, and [`plugins`] and [`schema`] are
//! public for the offline `scarab plugin check` and the benchmark's in-process measurements.
//! Clients speak to a node over HTTP, through the `scarab-client` crate.

mod api;
mod clock;
mod cluster;
pub mod config;
mod datadir;
mod failpoint;
mod json;
pub mod metrics;
mod migrate;
mod node;
pub mod plugins;
mod propose;
mod raft;
pub mod restore;
pub mod schema;
mod serve;
mod store;
mod tls;
mod transport;

pub use config::NodeConfig;
pub use node::{Listeners, NodeError, run};
pub use tls::Reload;
