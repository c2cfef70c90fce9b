//! Scarab: a replicated configuration service whose writes are validated by JSON Schema and by
//! WebAssembly plugins.
//!
//! Data flows one way: [`api`] → [`schema`] validation (with [`plugins`]) → [`raft`] proposal
//! → [`store`] apply. The state machine never calls a plugin, so apply is deterministic.
//! [`node::run`] starts a node; the binary, `scarab dev`, the benchmark and the tests all
//! use it.

pub mod api;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod datadir;
pub mod failpoint;
pub mod json;
pub mod migrate;
pub mod node;
pub mod plugins;
pub mod propose;
pub mod raft;
pub mod schema;
pub mod serve;
pub mod store;

pub use config::NodeConfig;
pub use node::{Listeners, NodeError, run};
