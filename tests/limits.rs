//! Connection bounds of a real `scarab serve` process (host/src/serve.rs): the connection
//! limit and its 503, the header, idle and body timeouts, and the open-file limit raised at
//! start. Each test starts its own node and talks raw HTTP/1.1 over TCP, so that it controls
//! exactly which connections exist.

mod harness;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use harness::{Node, NodeOptions, Ready, wait_until};

/// Upper bound for anything the server is expected to do promptly (a guard against hangs).
const PROMPT: Duration = Duration::from_secs(10);

/// A response read off a raw connection.
#[derive(Debug)]
struct RawReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("body {:?}", self.body))
    }
}

/// Sends `GET path` on `stream` (keeping the connection unless `close`).
async fn send_get(stream: &mut TcpStream, path: &str, close: bool) -> Result<()> {
    let connection = if close { "close" } else { "keep-alive" };
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: scarab\r\nconnection: {connection}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    Ok(())
}

/// Reads one response with a `content-length` body.
async fn read_reply(stream: &mut TcpStream) -> Result<RawReply> {
    tokio::time::timeout(PROMPT, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!(
                    "the connection closed before a response head ({} bytes)",
                    buf.len()
                );
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("status line of {head:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .with_context(|| format!("content-length in {head:?}"))?;
        let mut body = buf[head_end..].to_vec();
        while body.len() < len {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("the connection closed in the body");
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok(RawReply {
            status,
            headers,
            body: String::from_utf8_lossy(&body[..len]).to_string(),
        })
    })
    .await
    .context("no response in time")?
}

/// `GET path` on a new connection that closes after the response.
async fn get_once(addr: SocketAddr, path: &str) -> Result<RawReply> {
    let mut stream = TcpStream::connect(addr).await?;
    send_get(&mut stream, path, true).await?;
    read_reply(&mut stream).await
}

/// Waits until the server closes `stream` (EOF or reset) and returns how long that took.
async fn wait_closed(stream: &mut TcpStream, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    match tokio::time::timeout(within, stream.read(&mut chunk)).await {
        Err(_) => bail!("still open after {within:?}"),
        Ok(Ok(0)) => Ok(start.elapsed()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(n)) => bail!(
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
    }
}

/// A node whose only connections are the test's: no readiness probe through a pooled client.
async fn start_bare(args: &[&str]) -> Result<Node> {
    let node = Node::start(NodeOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let addr = node.addr;
    wait_until(
        Duration::from_secs(30),
        "/v1/health answers 200",
        || async move {
            get_once(addr, "/v1/health")
                .await
                .is_ok_and(|r| r.status == 200)
        },
    )
    .await?;
    Ok(node)
}

/// Opens `n` kept-alive connections, each of which has been served once (so each is surely
/// counted by the server). A connection refused meanwhile (the server may not yet have let go
/// of an earlier one) is dropped and opened again.
async fn hold(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    let deadline = Instant::now() + PROMPT;
    let mut held = Vec::new();
    while held.len() < n {
        let mut stream = TcpStream::connect(addr).await?;
        send_get(&mut stream, "/v1/health", false).await?;
        let reply = read_reply(&mut stream).await?;
        match reply.status {
            200 => held.push(stream),
            503 if Instant::now() < deadline => {
                tokio::time::sleep(harness::POLL_INTERVAL).await;
            }
            _ => bail!("holding connection {}: {reply:?}", held.len() + 1),
        }
    }
    Ok(held)
}

#[tokio::test]
async fn a_connection_over_the_limit_is_answered_503_too_many_connections() -> Result<()> {
    let node = start_bare(&["--max-connections", "8"]).await?;
    let _held = hold(node.addr, 8).await?;

    let mut ninth = TcpStream::connect(node.addr).await?;
    send_get(&mut ninth, "/v1/health", false).await?;
    let reply = read_reply(&mut ninth).await?;
    ensure!(reply.status == 503, "{reply:?}");
    ensure!(reply.header("connection") == Some("close"), "{reply:?}");
    ensure!(
        reply.header("content-type") == Some("application/json"),
        "{reply:?}"
    );
    let body = reply.json()?;
    ensure!(body["error"]["code"] == "too_many_connections", "{reply:?}");
    ensure!(body["error"]["message"].is_string(), "{reply:?}");
    wait_closed(&mut ninth, PROMPT).await?;
    Ok(())
}

#[tokio::test]
async fn closing_a_connection_at_the_limit_lets_the_next_one_in() -> Result<()> {
    let node = start_bare(&["--max-connections", "8"]).await?;
    let addr = node.addr;
    let mut held = hold(addr, 8).await?;
    let refused = get_once(addr, "/v1/health").await?;
    ensure!(refused.status == 503, "{refused:?}");

    drop(held.pop());
    wait_until(PROMPT, "a new connection is served", || async move {
        get_once(addr, "/v1/health")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await?;

    // Full again, then every connection closed: the node serves as before.
    held.extend(hold(addr, 1).await?);
    ensure!(get_once(addr, "/v1/health").await?.status == 503);
    drop(held);
    wait_until(PROMPT, "health answers once all are closed", || async {
        node.health().await.is_ok_and(|r| r.status == 200)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_connection_slow_to_send_its_request_head_is_closed() -> Result<()> {
    let node = start_bare(&["--header-timeout", "500ms"]).await?;
    let mut stream = TcpStream::connect(node.addr).await?;
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nhost: scarab\r\n")
        .await?;
    let after = wait_closed(&mut stream, PROMPT).await?;
    ensure!(
        after >= Duration::from_millis(400),
        "closed after {after:?}, before the header timeout"
    );
    Ok(())
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() -> Result<()> {
    // A header timeout far past the idle one: the first request's head deadline must not
    // stand once the connection is idle.
    let node = start_bare(&["--idle-timeout", "500ms", "--header-timeout", "60s"]).await?;
    let mut stream = TcpStream::connect(node.addr).await?;
    send_get(&mut stream, "/v1/health", false).await?;
    let reply = read_reply(&mut stream).await?;
    ensure!(reply.status == 200, "{reply:?}");
    let after = wait_closed(&mut stream, PROMPT).await?;
    ensure!(
        after >= Duration::from_millis(400),
        "closed after {after:?}, before the idle timeout"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_is_not_idle_and_outlives_the_idle_timeout() -> Result<()> {
    let idle = Duration::from_millis(500);
    // The header timeout as short: its deadline (from connecting) passes during the watch too.
    let node =
        harness::start_note_node(&["--idle-timeout", "500ms", "--header-timeout", "500ms"]).await?;
    let mut stream = TcpStream::connect(node.addr).await?;
    // Progress events only every minute: no byte in either direction while the test waits.
    send_get(&mut stream, "/v1/watch?prefix=w/&progress=60s", false).await?;
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_by = Instant::now() + PROMPT;
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(head_by.into(), stream.read(&mut chunk))
            .await
            .context("no response head")??;
        ensure!(n > 0, "closed before the response head");
        seen.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&seen).to_string();
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    ensure!(head.contains("text/event-stream"), "{head}");

    // Three idle timeouts pass: the stream must stay open.
    let quiet_until = Instant::now() + idle * 3 + Duration::from_millis(200);
    loop {
        match tokio::time::timeout_at(quiet_until.into(), stream.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) => bail!("the watch was closed while in flight"),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => bail!("the watch failed while in flight: {e}"),
        }
    }

    // And it still delivers.
    let reply = node
        .put_config("w/after-idle", "note", 1, &json!({"ok": true}))
        .await?;
    ensure!(reply.status.is_success(), "{reply}");
    let delivered_by = Instant::now() + PROMPT;
    while !String::from_utf8_lossy(&seen).contains("w/after-idle") {
        let n = tokio::time::timeout_at(delivered_by.into(), stream.read(&mut chunk))
            .await
            .context("the change was not delivered")??;
        ensure!(n > 0, "the watch closed before delivering the change");
        seen.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

#[tokio::test]
async fn a_request_body_slower_than_the_body_timeout_gets_408() -> Result<()> {
    let node = start_bare(&["--body-timeout", "500ms"]).await?;
    let mut stream = TcpStream::connect(node.addr).await?;
    stream
        .write_all(
            b"PUT /v1/configs/slow HTTP/1.1\r\nhost: scarab\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"schema\":",
        )
        .await?;
    let start = Instant::now();
    let reply = read_reply(&mut stream).await?;
    ensure!(reply.status == 408, "{reply:?}");
    ensure!(
        reply.json()?["error"]["code"] == "body_timeout",
        "{reply:?}"
    );
    ensure!(
        start.elapsed() >= Duration::from_millis(400),
        "answered after {:?}, before the body timeout",
        start.elapsed()
    );
    Ok(())
}

/// (soft, hard) "Max open files" of a process, from /proc.
fn open_file_limits(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no 'Max open files' line")?;
    let fields: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    let parse = |s: &str| -> Result<u64> {
        Ok(if s == "unlimited" {
            u64::MAX
        } else {
            s.parse()?
        })
    };
    Ok((parse(fields[0])?, parse(fields[1])?))
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() -> Result<()> {
    // Start the node with a soft limit below the hard one (children inherit it), so that
    // raising it is visible; then restore this process's.
    let mut mine = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process, with structs we own.
    unsafe {
        ensure!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut mine) == 0);
    }
    let lowered = libc::rlimit {
        rlim_cur: mine.rlim_cur.min(512),
        rlim_max: mine.rlim_max,
    };
    // SAFETY: as above.
    unsafe {
        ensure!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) == 0);
    }
    let started = start_bare(&[]).await;
    // SAFETY: as above.
    unsafe {
        ensure!(libc::setrlimit(libc::RLIMIT_NOFILE, &mine) == 0);
    }
    let node = started?;
    let pid = node.pid().context("the node's pid")?;
    let (soft, hard) = open_file_limits(pid)?;
    ensure!(
        soft == hard,
        "soft limit {soft} is not the hard limit {hard} (started with {})",
        lowered.rlim_cur
    );
    Ok(())
}
