//! Scarab: a replicated configuration service whose writes are validated by JSON Schema and by
//! WebAssembly plugins.
//!
//! Data flows one way: [`api`] → [`schema`] validation (with [`plugins`]) → [`raft`] proposal
//! → [`store`] apply. The state machine never calls a plugin, so apply is deterministic.
//! [`node::run`] starts a node; the binary, `scarab dev`, the benchmark and the tests all
//! use it.

mod api;
pub mod cli;
mod cluster;
mod config;
mod datadir;
mod failpoint;
mod json;
mod migrate;
mod node;
pub mod plugins;
mod raft;
pub mod schema;
mod serve;
mod store;

pub use config::NodeConfig;
pub use node::{Listeners, NodeError, run};
