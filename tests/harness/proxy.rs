//! A TCP proxy in the test process in front of each node's peer listener, to cut the links
//! between nodes (network partitions) without touching the nodes.
//!
//! Node `i` listens (API and peer) on `node_ip(i)` = 127.0.0.(10+i), and the server opens its
//! outgoing peer connections from its peer listener's IP, so a connection's source IP tells
//! which node opened it. Node `i` advertises its proxy's address as its peer URL
//! (`--peer-advertise`); the proxy forwards to the node's real peer listener and consults a
//! table shared by all proxies of a cluster: when (source IP, destination node) is cut, it
//! refuses new connections (accepts and resets them at once) and resets the live ones. A link
//! can also be slowed down instead: every chunk it carries waits the link's delay first.
//!
//! Connections from an IP that is no node's (e.g. 127.0.0.1, a node that did not bind its
//! outgoing socket) are never cut: they are counted per source (see `Net::sources`), so a test
//! can tell whether every peer connection was attributable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub type NodeId = u64;

/// The loopback IP node `id` listens on: 127.0.0.(10+id).
pub fn node_ip(id: NodeId) -> IpAddr {
    assert!(
        (1..=80).contains(&id),
        "node ids of proxied clusters are 1..=80"
    );
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + id as u8))
}

/// The node whose IP is `ip`, if any.
pub fn node_of_ip(ip: IpAddr) -> Option<NodeId> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            ((a, b, c) == (127, 0, 0) && (11..=90).contains(&d)).then(|| u64::from(d - 10))
        }
        IpAddr::V6(_) => None,
    }
}

/// Where the proxies listen: an IP no node uses, so that their ports never collide with a
/// node's sockets (a suspended proxy binds its port again on resume).
pub const PROXY_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 100));

/// How long `PeerProxy::resume` retries binding its old port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

struct Live {
    src: IpAddr,
    dest: NodeId,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Table {
    /// (source IP, destination node) pairs whose connections are refused.
    cut: BTreeSet<(IpAddr, NodeId)>,
    /// (source IP, destination node) pairs whose traffic (both ways) is delayed.
    delay: BTreeMap<(IpAddr, NodeId), Duration>,
    live: HashMap<u64, Live>,
    next_id: u64,
    /// Connections accepted (forwarded or refused), per source IP.
    sources: BTreeMap<IpAddr, u64>,
    refused: u64,
    reset: u64,
}

/// The partition table and live connections shared by all proxies of one cluster.
#[derive(Clone, Default)]
pub struct Net {
    table: Arc<Mutex<Table>>,
}

impl Net {
    pub fn new() -> Net {
        Net::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts every link between a node of `a` and a node of `b`, both directions; resets the
    /// live connections of those links.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut t = self.lock();
        for &x in a {
            for &y in b {
                if x != y {
                    t.cut.insert((node_ip(x), y));
                    t.cut.insert((node_ip(y), x));
                }
            }
        }
        let mut reset = 0;
        for live in t.live.values() {
            if t.cut.contains(&(live.src, live.dest)) {
                live.cancel.cancel();
                reset += 1;
            }
        }
        t.reset += reset;
    }

    /// Delays every chunk of data on the links between a node of `a` and a node of `b`, both
    /// directions, by `delay` (a slow or congested network rather than a cut one).
    pub fn slow(&self, a: &[NodeId], b: &[NodeId], delay: Duration) {
        let mut t = self.lock();
        for &x in a {
            for &y in b {
                if x != y {
                    t.delay.insert((node_ip(x), y), delay);
                    t.delay.insert((node_ip(y), x), delay);
                }
            }
        }
    }

    /// Restores every link (cut or slowed).
    pub fn heal(&self) {
        let mut t = self.lock();
        t.cut.clear();
        t.delay.clear();
    }

    /// The delay of the link from `src` to node `dest`, if it is slowed.
    fn delay_of(&self, src: IpAddr, dest: NodeId) -> Option<Duration> {
        self.lock().delay.get(&(src, dest)).copied()
    }

    /// Whether connections from `src` to node `dest` are refused.
    pub fn is_cut(&self, src: IpAddr, dest: NodeId) -> bool {
        self.lock().cut.contains(&(src, dest))
    }

    /// Connections accepted by the proxies so far, per source IP.
    pub fn sources(&self) -> BTreeMap<IpAddr, u64> {
        self.lock().sources.clone()
    }

    /// Connections accepted from an IP that is no node's (never cut by `partition`).
    pub fn unattributed(&self) -> BTreeMap<IpAddr, u64> {
        self.sources()
            .into_iter()
            .filter(|(ip, _)| node_of_ip(*ip).is_none())
            .collect()
    }

    /// (new connections refused, live connections reset) because of cuts.
    pub fn cut_counts(&self) -> (u64, u64) {
        let t = self.lock();
        (t.refused, t.reset)
    }

    /// A one-line summary for test output.
    pub fn summary(&self) -> String {
        let t = self.lock();
        format!(
            "connections per source {:?}; refused {}, reset {}",
            t.sources, t.refused, t.reset
        )
    }

    /// Registers an accepted connection, or `None` if its link is cut (checked under the same
    /// lock as `partition`, so no connection slips through a cut).
    fn admit(&self, src: IpAddr, dest: NodeId) -> Option<(u64, CancellationToken)> {
        let mut t = self.lock();
        *t.sources.entry(src).or_default() += 1;
        if t.cut.contains(&(src, dest)) {
            t.refused += 1;
            return None;
        }
        let id = t.next_id;
        t.next_id += 1;
        let cancel = CancellationToken::new();
        t.live.insert(
            id,
            Live {
                src,
                dest,
                cancel: cancel.clone(),
            },
        );
        Some((id, cancel))
    }

    fn forget(&self, id: u64) {
        self.lock().live.remove(&id);
    }

    /// Resets every live connection to node `dest` (its process went away).
    fn reset_all_to(&self, dest: NodeId) {
        let t = self.lock();
        for live in t.live.values().filter(|l| l.dest == dest) {
            live.cancel.cancel();
        }
    }
}

/// The proxy in front of one node's peer listener.
pub struct PeerProxy {
    dest: NodeId,
    addr: SocketAddr,
    upstream: SocketAddr,
    net: Net,
    accept: Option<(CancellationToken, JoinHandle<()>)>,
}

impl PeerProxy {
    /// Listens on `PROXY_IP`:free port and forwards to `upstream` (node `dest`'s peer
    /// listener).
    pub async fn start(net: Net, dest: NodeId, upstream: SocketAddr) -> Result<PeerProxy> {
        let listener = TcpListener::bind(SocketAddr::new(PROXY_IP, 0))
            .await
            .with_context(|| format!("binding a proxy on {PROXY_IP}"))?;
        let addr = listener.local_addr()?;
        let mut proxy = PeerProxy {
            dest,
            addr,
            upstream,
            net,
            accept: None,
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// The URL the node advertises as its peer URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening (new connections are refused by the kernel, as when nothing listens at
    /// a dead node's address) and resets the live connections: for a node that is down.
    pub async fn suspend(&mut self) {
        if let Some((stop, task)) = self.accept.take() {
            stop.cancel();
            let _ = task.await;
        }
        self.net.reset_all_to(self.dest);
    }

    /// Listens again on the same address (after `suspend`).
    pub async fn resume(&mut self) -> Result<()> {
        if self.accept.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("proxy of node {}: rebinding {}: {e}", self.dest, self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => bail!(
                    "proxy of node {}: cannot rebind {}: {e}",
                    self.dest,
                    self.addr
                ),
            }
        };
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            self.net.clone(),
            self.dest,
            self.upstream,
            stop.clone(),
        ));
        self.accept = Some((stop, task));
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.accept.take() {
            stop.cancel();
            task.abort();
        }
        self.net.reset_all_to(self.dest);
    }
}

async fn accept_loop(
    listener: TcpListener,
    net: Net,
    dest: NodeId,
    upstream: SocketAddr,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((inbound, from)) = accepted else {
            continue;
        };
        match net.admit(from.ip(), dest) {
            None => {
                // Refused: reset at once (RST rather than FIN).
                let _ = inbound.set_zero_linger();
                drop(inbound);
            }
            Some((id, cancel)) => {
                let net = net.clone();
                tokio::spawn(async move {
                    pipe(inbound, upstream, cancel, &net, from.ip(), dest).await;
                    net.forget(id);
                });
            }
        }
    }
}

/// Copies both ways until either side closes or the link is cut (then both sides are reset),
/// waiting the link's delay (if it is slowed) before forwarding each chunk.
async fn pipe(
    inbound: TcpStream,
    upstream: SocketAddr,
    cancel: CancellationToken,
    net: &Net,
    src: IpAddr,
    dest: NodeId,
) {
    let connected = tokio::select! {
        _ = cancel.cancelled() => None,
        c = TcpStream::connect(upstream) => c.ok(),
    };
    let Some(outbound) = connected else {
        let _ = inbound.set_zero_linger();
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let forward = copy_slowed(&mut in_read, &mut out_write, net, src, dest);
    let backward = copy_slowed(&mut out_read, &mut in_write, net, src, dest);
    let cut = tokio::select! {
        _ = async { tokio::join!(forward, backward) } => false,
        _ = cancel.cancelled() => true,
    };
    if cut && let (Ok(i), Ok(o)) = (in_read.reunite(in_write), out_read.reunite(out_write)) {
        let _ = i.set_zero_linger();
        let _ = o.set_zero_linger();
    }
}

/// Copies `from` to `to` until EOF or an error, then shuts `to` down for writing.
async fn copy_slowed<R, W>(from: &mut R, to: &mut W, net: &Net, src: IpAddr, dest: NodeId)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(delay) = net.delay_of(src, dest) {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
