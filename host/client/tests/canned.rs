//! The client against tiny HTTP servers on real sockets that answer canned responses: the
//! requests it sends, how it decodes answers and errors, when it moves to the next endpoint,
//! and how a watch resumes. No Scarab server is needed (the integration suites run the
//! client against real nodes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use scarab_client::types::{
    Condition, Consistency, ErrorCode, PutConfig, TxnOp, TxnRequest, ViolationSource, WatchEvent,
};
use scarab_client::{
    Client, Error, ListOptions, ReadOptions, SchemaUpload, WatchOptions, WriteOptions,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    /// Path and query.
    target: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// What the server does with a request.
enum Reply {
    Json(u16, String, Vec<(&'static str, String)>),
    /// An SSE response: the chunks, each after its pause, then the connection closes (or
    /// stays silent if `hang`).
    Sse(Vec<(u64, String)>, bool),
    /// Reads the request and closes the connection without answering.
    Close,
    /// Reads the request and never answers.
    Hang,
}

fn json(status: u16, body: impl ToString) -> Reply {
    Reply::Json(status, body.to_string(), Vec::new())
}

fn error(status: u16, code: &str) -> Reply {
    json(
        status,
        json!({"error": {"code": code, "message": format!("canned {code}")}}),
    )
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A server on 127.0.0.1 that answers each request with `handler(request, n)` (`n`: how many
/// requests it had before) and records them.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (handler, recorded) = (handler.clone(), recorded.clone());
                tokio::spawn(async move { serve(socket, handler, recorded).await });
            }
        });
        Self {
            url: format!("http://{addr}"),
            requests,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// One request per connection (every answer says `connection: close`).
async fn serve(mut socket: TcpStream, handler: Arc<Handler>, recorded: Arc<Mutex<Vec<Request>>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let n = {
        let mut all = recorded.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    match handler(&request, n) {
        Reply::Json(status, body, headers) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        }
        Reply::Sse(chunks, hang) => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            for (pause_ms, chunk) in chunks {
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            if hang {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
        Reply::Close => {}
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
    }
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers.contains_key("transfer-encoding"),
        "the client sends bodies with a length"
    );
    let length: usize = headers
        .get("content-length")
        .map_or(0, |l| l.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// An address where nothing listens: connections are refused.
async fn refused() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

const META: &str = r#""key":"stores/orders","schema":"store","schema_version":1,"revision":7,"key_version":2,"created_at":"2026-11-26T05:19:08.555Z","created_by":"alice","updated_at":"2026-11-26T05:19:08.555Z","updated_by":"bob","plugin_digest":null"#;

fn meta() -> String {
    format!("{{{META}}}")
}

fn entry(value: &str) -> String {
    format!("{{{META},\"value\":{value}}}")
}

fn fast(endpoints: &[&str]) -> Client {
    Client::builder()
        .endpoints(endpoints.iter().copied())
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_read_sends_its_options_and_reads_the_headers() {
    let server = Server::start(|_, _| {
        Reply::Json(
            200,
            entry(r#"{"timeout_ms":5000}"#),
            vec![
                ("x-scarab-revision", "9".into()),
                ("x-scarab-consistency", "stale".into()),
                ("etag", "\"7\"".into()),
            ],
        )
    })
    .await;
    let client = fast(&[&server.url]);
    let read = client
        .get_with(
            "stores/orders",
            &ReadOptions::new().stale().schema_version(2).revision(7),
        )
        .await
        .unwrap();
    assert_eq!(read.meta.revision, 7);
    assert_eq!(read.value["timeout_ms"], 5000);
    assert_eq!(read.applied_revision, Some(9));
    assert!(read.stale);
    let sent = &server.requests()[0];
    assert_eq!(sent.method, "GET");
    assert_eq!(
        sent.target,
        "/v1/configs/stores/orders?consistency=stale&schema_version=2&revision=7"
    );
    // Linearizable is the server's default: not sent.
    client.get("stores/orders").await.unwrap();
    assert_eq!(server.requests()[1].target, "/v1/configs/stores/orders");
}

#[tokio::test]
async fn a_write_sends_its_body_condition_actor_and_reason() {
    let server = Server::start(|_, _| json(201, meta())).await;
    let client = Client::builder()
        .endpoint(&server.url)
        .actor("alice")
        .reason("raise limits")
        .build()
        .unwrap();
    let put = PutConfig::new("store", 1, json!({"n": 18446744073709551615u64}));
    let written = client
        .put_with(
            "stores/orders",
            &put,
            &WriteOptions::new().if_match(6).actor("bob"),
        )
        .await
        .unwrap();
    assert!(written.created);
    assert_eq!(written.updated_by, "bob");
    let sent = &server.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("PUT", "/v1/configs/stores/orders")
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("if-match"), Some("\"6\""));
    assert_eq!(sent.header("x-scarab-actor"), Some("bob"));
    assert_eq!(sent.header("x-scarab-reason"), Some("raise limits"));
    assert_eq!(
        String::from_utf8_lossy(&sent.body),
        r#"{"schema":"store","schema_version":1,"value":{"n":18446744073709551615}}"#
    );
    client
        .put_with(
            "stores/orders",
            &put,
            &WriteOptions::new().if_none_match_any(),
        )
        .await
        .unwrap();
    assert_eq!(server.requests()[1].header("if-none-match"), Some("*"));
}

#[tokio::test]
async fn errors_decode_with_their_violations_and_unknown_codes() {
    let server = Server::start(|req, _| match req.target.as_str() {
        "/v1/configs/a" => json(
            422,
            json!({"error": {"code": "validation_failed", "message": "the document has 1 violation(s)",
                "violations": [{"path": "/timeout_ms", "message": "0 is less than 1", "code": "minimum", "source": "schema"}]}}),
        ),
        "/v1/configs/b" => error(418, "from_the_future"),
        _ => Reply::Json(502, "<html>bad gateway</html>".into(), Vec::new()),
    })
    .await;
    let client = fast(&[&server.url]);
    let put = PutConfig::new("store", 1, json!({"timeout_ms": 0}));
    let Err(Error::Api(e)) = client.put("a", &put).await else {
        panic!("not an API error")
    };
    assert_eq!((e.status, &e.code), (422, &ErrorCode::ValidationFailed));
    assert_eq!(e.violations.len(), 1);
    assert_eq!(e.violations[0].source, ViolationSource::Schema);
    let e = client.get("b").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::Other("from_the_future".into())));
    let e = client.get("c").await.unwrap_err();
    assert!(matches!(e, Error::Decode { status: 502, .. }), "{e}");
}

#[tokio::test]
async fn a_write_moves_on_past_refused_connections_and_no_leader() {
    let down = refused().await;
    let leaderless = Server::start(|_, _| error(503, "no_leader")).await;
    let good = Server::start(|_, _| json(200, meta())).await;
    let client = fast(&[&down, &leaderless.url, &good.url]);
    let put = PutConfig::new("store", 1, json!({}));
    client.put("stores/orders", &put).await.unwrap();
    assert_eq!(leaderless.requests().len(), 1);
    assert_eq!(good.requests().len(), 1);
    // The next call starts at the endpoint that answered.
    client.put("stores/orders", &put).await.unwrap();
    assert_eq!(leaderless.requests().len(), 1);
    assert_eq!(good.requests().len(), 2);
}

#[tokio::test]
async fn an_unknown_outcome_is_not_repeated_unless_a_conditional_write_opts_in() {
    let slow = Server::start(|_, _| error(503, "timeout")).await;
    let good = Server::start(|_, _| json(200, meta())).await;
    let client = fast(&[&slow.url, &good.url]);
    let put = PutConfig::new("store", 1, json!({}));
    let e = client.put("k", &put).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::Timeout));
    assert!(e.is_outcome_unknown());
    assert_eq!(good.requests().len(), 0);
    // `not_ready` on a write may hide an unknown outcome too.
    let unsure = Server::start(|_, _| error(503, "not_ready")).await;
    let client2 = fast(&[&unsure.url, &good.url]);
    assert!(client2.put("k", &put).await.is_err());
    assert_eq!(good.requests().len(), 0);
    // Conditional and opted in: repeated on the next node.
    let opts = WriteOptions::new().if_match(6).retry_unknown_outcome();
    client.put_with("k", &put, &opts).await.unwrap();
    assert_eq!(good.requests().len(), 1);
    // A read is repeated anyway.
    let reader = Server::start(|_, _| json(200, entry("1"))).await;
    let client = fast(&[&slow.url, &reader.url]);
    client.get("k").await.unwrap();
    assert_eq!(reader.requests().len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_an_unknown_outcome_for_a_write_and_a_retry_for_a_read() {
    let closer = Server::start(|_, _| Reply::Close).await;
    let good = Server::start(|req, _| match req.method.as_str() {
        "GET" => json(200, entry("1")),
        _ => json(200, meta()),
    })
    .await;
    let client = fast(&[&closer.url, &good.url]);
    let e = client.delete("k").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_outcome_unknown());
    assert_eq!(good.requests().len(), 0);
    client.get("k").await.unwrap();
    assert_eq!(good.requests().len(), 1);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let silent = Server::start(|_, _| Reply::Hang).await;
    let client = Client::builder()
        .endpoint(&silent.url)
        .timeout(Duration::from_millis(200))
        .max_attempts(1)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = client.get("k").await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn refusals_are_final_and_attempts_are_bounded() {
    let refusing = Server::start(|_, _| error(412, "precondition_failed")).await;
    let good = Server::start(|_, _| json(200, meta())).await;
    let client = fast(&[&refusing.url, &good.url]);
    let opts = WriteOptions::new().if_match(1).retry_unknown_outcome();
    let e = client
        .put_with("k", &PutConfig::new("s", 1, json!(1)), &opts)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::PreconditionFailed));
    assert_eq!(good.requests().len(), 0);
    // Three rounds of two endpoints, then the last error.
    let a = Server::start(|_, _| error(503, "no_leader")).await;
    let b = Server::start(|_, _| error(503, "overloaded")).await;
    let client = fast(&[&a.url, &b.url]);
    let e = client.get("k").await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::Overloaded));
    assert_eq!(a.requests().len() + b.requests().len(), 6);
}

#[tokio::test]
async fn node_scoped_calls_stay_on_the_node_that_answered() {
    let unready = Server::start(|_, _| error(503, "not_ready")).await;
    let ready = Server::start(|_, _| json(200, r#"{"ready":true}"#)).await;
    let client = fast(&[&unready.url, &ready.url]);
    let e = client.ready().await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::NotReady));
    assert_eq!(ready.requests().len(), 0);
    let down = refused().await;
    let client = fast(&[&down, &ready.url]);
    assert!(client.ready().await.unwrap().ready);
}

#[tokio::test]
async fn a_list_follows_the_cursor() {
    let server = Server::start(|req, _| {
        let item = |key: &str| entry("1").replace("stores/orders", key);
        if req.target.contains("after=b") {
            json(
                200,
                format!(r#"{{"items":[{}],"next":null,"revision":4}}"#, item("c")),
            )
        } else {
            json(
                200,
                format!(
                    r#"{{"items":[{},{}],"next":"b","revision":3}}"#,
                    item("a"),
                    item("b")
                ),
            )
        }
    })
    .await;
    let client = fast(&[&server.url]);
    let keys: Vec<String> = client
        .list(
            ListOptions::prefix("")
                .limit(2)
                .consistency(Consistency::Stale),
        )
        .map_ok(|e| e.meta.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, ["a", "b", "c"]);
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/v1/configs?prefix=&limit=2&consistency=stale",
            "/v1/configs?prefix=&after=b&limit=2&consistency=stale"
        ]
    );
}

#[tokio::test]
async fn a_transaction_and_its_failed_conditions() {
    let server = Server::start(|_, _| {
        json(
            412,
            json!({"error": {"code": "condition_failed", "message": "m",
                "report": {"failed": [{"index": 0, "key": "a", "current_revision": 9}]}}}),
        )
    })
    .await;
    let client = fast(&[&server.url]);
    let txn = TxnRequest::new()
        .when(Condition::revision("a", 8))
        .op(TxnOp::delete("a"));
    let e = client.txn(&txn).await.unwrap_err();
    let failed = e.api().unwrap().failed_conditions().unwrap();
    assert_eq!(
        (failed[0].key.as_str(), failed[0].current_revision),
        ("a", Some(9))
    );
    let sent = &server.requests()[0];
    assert_eq!(sent.target, "/v1/txn");
    assert_eq!(
        sent.json(),
        json!({"conditions": [{"key": "a", "revision": 8}], "ops": [{"op": "delete", "key": "a"}]})
    );
    // Opting in to retries needs conditions.
    let bare = TxnRequest::new().op(TxnOp::delete("a"));
    assert!(matches!(
        client
            .txn_with(&bare, &WriteOptions::new().retry_unknown_outcome())
            .await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn a_schema_upload_is_multipart() {
    let registered = r#"{"name":"store","version":2,"plugin_digest":"sha256:ab","revision":3,"registered_at":"t","registered_by":"a","plugin_contract":{"wit":"0.2.0","migration":null},"compatibility":{"name":"store","version":2,"from_version":null,"checked":0,"compatible":true,"failed":0,"failures":[]}}"#;
    let server = Server::start(move |req, _| match req.method.as_str() {
        "PUT" => json(201, registered),
        _ => Reply::Json(200, "\0asm".into(), vec![("etag", "\"sha256:ab\"".into())]),
    })
    .await;
    let client = fast(&[&server.url]);
    let upload = SchemaUpload::new(&json!({"type": "object"}))
        .plugin(&b"\0asm"[..])
        .force();
    let r = client.register_schema("store", 2, &upload).await.unwrap();
    assert!(r.created);
    assert_eq!(r.version.plugin_digest.as_deref(), Some("sha256:ab"));
    let sent = &server.requests()[0];
    assert_eq!(sent.target, "/v1/schemas/store/versions/2?force=true");
    assert!(
        sent.header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let body = String::from_utf8_lossy(&sent.body);
    assert!(body.contains("name=\"schema\""), "{body}");
    assert!(body.contains(r#"{"type":"object"}"#), "{body}");
    assert!(body.contains("name=\"plugin\""), "{body}");
    assert!(body.contains("application/wasm"), "{body}");
    let plugin = client.plugin("store", 2).await.unwrap();
    assert_eq!(plugin.digest.as_deref(), Some("sha256:ab"));
    assert_eq!(&plugin.bytes[..], b"\0asm");
}

fn change(revision: u64) -> String {
    let meta = META.replace("\"revision\":7", &format!("\"revision\":{revision}"));
    format!(
        "event: change\nid: {revision}\ndata: {{\"revision\":{revision},\"events\":[{{{meta},\"type\":\"put\",\"value\":{{\"n\":{revision}}}}}]}}\n\n"
    )
}

fn progress(revision: u64) -> String {
    format!("event: progress\nid: {revision}\ndata: {{\"revision\":{revision}}}\n\n")
}

#[tokio::test]
async fn a_watch_resumes_after_the_last_event_on_the_next_node() {
    // Node A delivers 5 and a progress through 6, split mid-message, then dies.
    let a = Server::start(|_, n| match n {
        0 => {
            let text = format!("{}{}", change(5), progress(6));
            let (x, y) = text.split_at(40);
            Reply::Sse(vec![(0, x.to_string()), (20, y.to_string())], false)
        }
        _ => Reply::Close,
    })
    .await;
    // Node B resumes after 6, delivers 7, then finds the history compacted.
    let b = Server::start(|_, _| {
        Reply::Sse(
            vec![
                (0, change(7)),
                (
                    0,
                    "event: error\ndata: {\"code\":\"revision_compacted\",\"message\":\"gone\"}\n\n"
                        .into(),
                ),
            ],
            true,
        )
    })
    .await;
    let client = fast(&[&a.url, &b.url]);
    let mut watch = client.watch(
        WatchOptions::prefix("stores/")
            .from_revision(5)
            .schema("store"),
    );
    let mut revisions = Vec::new();
    let mut end = None;
    while let Some(item) = watch.next().await {
        match item {
            Ok(WatchEvent::Change(c)) => {
                assert_eq!(c.events[0].value["n"], c.revision);
                revisions.push(c.revision)
            }
            Ok(WatchEvent::Progress(p)) => revisions.push(p.revision),
            Err(e) => end = Some(e),
        }
    }
    assert_eq!(revisions, [5, 6, 7]);
    let end = end.expect("an error item");
    assert_eq!(end.code(), Some(&ErrorCode::RevisionCompacted));
    assert_eq!(end.api().unwrap().status, 410);
    assert_eq!(watch.last_revision(), Some(7));
    let first = &a.requests()[0];
    assert_eq!(
        first.target,
        "/v1/watch?prefix=stores%2F&schema=store&from_revision=5"
    );
    assert_eq!(first.header("accept"), Some("text/event-stream"));
    assert_eq!(first.header("last-event-id"), None);
    let resumed = &b.requests()[0];
    assert_eq!(resumed.header("last-event-id"), Some("6"));
    assert!(
        !resumed.target.contains("from_revision"),
        "{}",
        resumed.target
    );
}

#[tokio::test]
async fn a_watch_from_now_fixes_its_start_before_connecting() {
    let status = r#"{"node_id":1,"role":"follower","leader":2,"term":3,"last_log_index":9,"last_applied_index":9,"snapshot_index":null,"purged_index":null,"revision":41,"configs":1,"schemas":1,"plugins":{"loaded":0,"compiled":0,"from_disk_cache":0,"idle_instances":0,"misbehaving":[]}}"#;
    let server = Server::start(move |req, n| {
        if req.target == "/v1/status" {
            return json(200, status);
        }
        match n {
            // The first connection breaks before any event...
            1 => Reply::Close,
            _ => Reply::Sse(vec![(0, change(42))], true),
        }
    })
    .await;
    let client = fast(&[&server.url]);
    let mut watch = client.watch(WatchOptions::prefix("").progress(Duration::from_millis(500)));
    let Some(Ok(WatchEvent::Change(c))) = watch.next().await else {
        panic!("no change")
    };
    assert_eq!(c.revision, 42);
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    // ...and the second one still starts at 42, not at the node's "now".
    assert_eq!(
        targets,
        [
            "/v1/status",
            "/v1/watch?prefix=&progress=500ms&from_revision=42",
            "/v1/watch?prefix=&progress=500ms&from_revision=42"
        ]
    );
}

#[tokio::test]
async fn a_silent_watch_connection_is_replaced() {
    let server = Server::start(|_, n| match n {
        0 => Reply::Sse(vec![(0, progress(3))], true),
        _ => Reply::Sse(vec![(0, change(4))], true),
    })
    .await;
    let client = fast(&[&server.url]);
    let mut watch = client.watch(
        WatchOptions::prefix("")
            .from_revision(1)
            .progress(Duration::from_millis(100)),
    );
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.revision(), 3);
    // Silent for 3 progress intervals: reconnects and resumes after 3.
    let second = watch.next().await.unwrap().unwrap();
    assert_eq!(second.revision(), 4);
    assert_eq!(server.requests()[1].header("last-event-id"), Some("3"));
}

#[tokio::test]
async fn a_watch_ends_on_a_refusal_and_gives_up_when_told() {
    let gone = Server::start(|_, _| error(410, "revision_compacted")).await;
    let client = fast(&[&gone.url]);
    let mut watch = client.watch(WatchOptions::prefix("").from_revision(1));
    let e = watch.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::RevisionCompacted));
    assert!(watch.next().await.is_none());
    // Every node full: retried, then given up after 4 attempts.
    let full = Server::start(|_, _| error(503, "too_many_watches")).await;
    let down = refused().await;
    let client = fast(&[&full.url, &down]);
    let mut watch = client.watch(
        WatchOptions::prefix("")
            .from_revision(1)
            .max_reconnect_attempts(4),
    );
    let e = watch.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                maybe_sent: false,
                ..
            }
        ) || e.code() == Some(&ErrorCode::TooManyWatches),
        "{e:?}"
    );
    assert_eq!(full.requests().len(), 2);
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn a_revision_sent_again_is_delivered_once() {
    let server = Server::start(|_, n| match n {
        0 => Reply::Sse(vec![(0, change(5))], false),
        _ => Reply::Sse(vec![(0, change(5)), (0, change(6))], true),
    })
    .await;
    let client = fast(&[&server.url]);
    let revisions: Vec<u64> = client
        .watch(WatchOptions::prefix("").from_revision(5))
        .take(2)
        .map_ok(|e| e.revision())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(revisions, [5, 6]);
}

#[tokio::test]
async fn a_long_poll_waits_longer_than_the_timeout() {
    let server = Server::start(|_, _| {
        json(
            200,
            r#"{"changes":[],"revision":57,"next_from_revision":58}"#,
        )
    })
    .await;
    let client = fast(&[&server.url]);
    let poll = client
        .watch_poll(
            &WatchOptions::prefix("stores/").from_revision(58),
            Duration::from_secs(30),
            Some(10),
        )
        .await
        .unwrap();
    assert_eq!(poll.next_from_revision, 58);
    assert_eq!(
        server.requests()[0].target,
        "/v1/watch?prefix=stores%2F&from_revision=58&wait=30000ms&limit=10"
    );
}
