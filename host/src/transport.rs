//! How this node reaches its peers: the one builder of every outgoing peer HTTP client (Raft
//! RPCs, forwarded requests, membership probes, joining), so that each carries the same
//! source address and the same peer credentials.
//!
//! Owns: the client side of the peer boundary. Does not own: what is sent (the callers in
//! [`crate::raft::network`] and [`crate::cluster`]) nor the server side (`crate::serve`).

use std::net::IpAddr;
use std::time::Duration;

/// What every outgoing peer connection of this node shares.
#[derive(Clone, Debug, Default)]
pub struct PeerTransport {
    /// The address outgoing peer connections come from (the peer listener's IP when it is a
    /// specific one), so that peers and firewalls see a stable source.
    local_ip: Option<IpAddr>,
}

impl PeerTransport {
    pub fn new(local_ip: Option<IpAddr>) -> Self {
        PeerTransport { local_ip }
    }

    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local_ip
    }

    /// A client for peer requests; each request sets its own overall timeout.
    pub fn client(&self, connect_timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .local_address(self.local_ip)
            .build()
            .expect("build peer http client")
    }
}
