//! The node's clock, read where a change is proposed (a command carries the reading, so that
//! apply never reads a clock and every node applies the same command the same way).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch on this node.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
