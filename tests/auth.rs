//! Authentication and access control (`--auth`), as a client sees them: every route against
//! every kind of caller, listing and watching within a principal's prefixes, revocation
//! through a follower, the bootstrap's root token, the audit trail's principal, and the
//! refusal to serve a public address open.

mod harness;

use std::time::Duration;

use anyhow::{Result, bail};
use reqwest::Method;
use scarab_client::SchemaUpload;
use scarab_client::types::PutConfig;
use scarab_client::types::auth::{CreateToken, Permission};
use serde_json::{Value, json};
use tokio::time::Instant;

use harness::auth::{client_with_token, root_token, start_auth_node};
use harness::{Formation, Node, NodeOptions, Ready, free_port, http_client};

/// What a caller gets from a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Yes,
    /// 403 `forbidden`.
    Forbidden,
    /// Neither 401 nor 403 (the route's own answer: 404, 415, 422...): the caller got past
    /// access control.
    Past,
}
use Expect::{Forbidden as F, Past as P, Yes as Y};

enum Body {
    None,
    Json(Value),
    /// A schema version upload (multipart, one `schema` part).
    Schema(Value),
}

struct Route {
    method: Method,
    /// `{who}` becomes the caller's column name (so that each caller writes its own keys).
    path: &'static str,
    body: Body,
    /// `None`: an open route (200 for everyone, credentials or not). Else what the reader of
    /// another prefix, the writer of the prefix and the admin get; every caller without a
    /// valid token gets 401 `unauthenticated`.
    expect: Option<[Expect; 3]>,
}

fn route(method: Method, path: &'static str, body: Body, expect: [Expect; 3]) -> Route {
    Route {
        method,
        path,
        body,
        expect: Some(expect),
    }
}

fn open(path: &'static str) -> Route {
    Route {
        method: Method::GET,
        path,
        body: Body::None,
        expect: None,
    }
}

fn note(value: Value) -> Body {
    Body::Json(json!({"schema": "note", "schema_version": 1, "value": value}))
}

/// Every route of `/v1`, in an order where each caller's writes precede its reads.
fn routes(rollback_to: u64) -> Vec<Route> {
    use Method as M;
    let j = Body::Json;
    vec![
        open("/v1/health"),
        open("/v1/readyz"),
        open("/v1/cluster/self"),
        // The console's files hold no data: the page asks for a token, the API checks it.
        open("/ui/"),
        open("/ui/app.js"),
        // Configs under a/ (the writer's prefix; the reader holds b/).
        route(
            M::PUT,
            "/v1/configs/a/{who}",
            note(json!({"n": 1})),
            [F, Y, Y],
        ),
        route(M::GET, "/v1/configs/a/{who}", Body::None, [F, Y, Y]),
        route(M::GET, "/v1/configs/a/{who}/history", Body::None, [F, Y, Y]),
        route(
            M::POST,
            "/v1/configs/a/x/rollback",
            j(json!({"revision": rollback_to})),
            [F, Y, Y],
        ),
        route(M::DELETE, "/v1/configs/a/{who}", Body::None, [F, Y, Y]),
        route(M::GET, "/v1/configs?prefix=a/", Body::None, [F, Y, Y]),
        // Everything: each caller sees its own part (the lists' content: another test).
        route(M::GET, "/v1/configs", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/configs?prefix=c/", Body::None, [F, F, Y]),
        route(
            M::POST,
            "/v1/txn",
            j(
                json!({"ops": [{"op": "put", "key": "a/txn-{who}", "schema": "note", "schema_version": 1, "value": {}}]}),
            ),
            [F, Y, Y],
        ),
        route(
            M::POST,
            "/v1/txn",
            j(
                json!({"conditions": [{"key": "b/x", "exists": true}], "ops": [{"op": "delete", "key": "a/txn-{who}"}]}),
            ),
            [F, F, Y],
        ),
        route(
            M::GET,
            "/v1/watch?prefix=a/&wait=1ms",
            Body::None,
            [F, Y, Y],
        ),
        route(M::GET, "/v1/watch?wait=1ms", Body::None, [F, F, Y]),
        route(M::GET, "/v1/audit?prefix=a/", Body::None, [F, F, Y]),
        // Schemas: readers and writers read every schema (the role templates).
        route(M::GET, "/v1/schemas", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/schemas/note", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/schemas/note/versions/1", Body::None, [Y, Y, Y]),
        route(
            M::GET,
            "/v1/schemas/note/versions/1/plugin",
            Body::None,
            [P, P, P],
        ),
        route(
            M::POST,
            "/v1/schemas/note/versions/1/validate",
            j(json!({"n": 1})),
            [Y, Y, Y],
        ),
        route(
            M::POST,
            "/v1/schemas/note/versions/2/compatibility",
            Body::Schema(json!({"type": "object"})),
            [Y, Y, Y],
        ),
        route(
            M::PUT,
            "/v1/schemas/s-{who}/versions/1",
            Body::Schema(json!({})),
            [F, F, Y],
        ),
        route(
            M::DELETE,
            "/v1/schemas/s-{who}/versions/1",
            Body::None,
            [F, F, Y],
        ),
        route(M::GET, "/v1/schemas/note/policy", Body::None, [Y, Y, Y]),
        route(
            M::PUT,
            "/v1/schemas/note/policy",
            j(json!({"writes": "any"})),
            [F, F, Y],
        ),
        route(M::GET, "/v1/schemas/note/migrations", Body::None, [Y, Y, Y]),
        route(
            M::POST,
            "/v1/schemas/note/migrations",
            j(json!({"target_version": 1, "dry_run": true})),
            [F, F, Y],
        ),
        route(
            M::GET,
            "/v1/schemas/note/migrations/7",
            Body::None,
            [P, P, P],
        ),
        // The node and the cluster.
        route(M::GET, "/v1/status", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/cluster", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/settings/history", Body::None, [Y, Y, Y]),
        route(
            M::PUT,
            "/v1/settings/history",
            j(json!({"keep": 1000})),
            [F, F, Y],
        ),
        route(M::GET, "/v1/settings/audit", Body::None, [F, F, Y]),
        route(
            M::PUT,
            "/v1/settings/audit",
            j(json!({"max_records": 1000000})),
            [F, F, Y],
        ),
        route(
            M::POST,
            "/v1/cluster/members",
            j(json!({"node_id": 9, "api": "http://127.0.0.1:1", "peer": "http://127.0.0.1:1"})),
            [F, F, P],
        ),
        route(
            M::POST,
            "/v1/cluster/join",
            j(json!({"node_id": 9, "api": "http://127.0.0.1:1", "peer": "http://127.0.0.1:1"})),
            [F, F, P],
        ),
        route(
            M::POST,
            "/v1/cluster/members/9/promote",
            Body::None,
            [F, F, P],
        ),
        route(M::DELETE, "/v1/cluster/members/9", Body::None, [F, F, P]),
        // Access management: auth:admin, except a caller's own user and tokens.
        route(M::GET, "/v1/auth/whoami", Body::None, [Y, Y, Y]),
        route(M::GET, "/v1/auth/users", Body::None, [F, F, Y]),
        route(M::GET, "/v1/auth/users/alice", Body::None, [F, Y, Y]),
        route(
            M::PUT,
            "/v1/auth/users/u-{who}",
            j(json!({"roles": []})),
            [F, F, Y],
        ),
        route(
            M::POST,
            "/v1/auth/users/u-{who}/roles",
            j(json!({"grant": "reader-b"})),
            [F, F, Y],
        ),
        route(
            M::DELETE,
            "/v1/auth/users/u-{who}/roles/reader-b",
            Body::None,
            [F, F, Y],
        ),
        route(M::DELETE, "/v1/auth/users/u-{who}", Body::None, [F, F, Y]),
        route(M::GET, "/v1/auth/roles", Body::None, [F, F, Y]),
        route(M::GET, "/v1/auth/roles/reader-b", Body::None, [F, F, Y]),
        route(
            M::PUT,
            "/v1/auth/roles/r-{who}",
            j(json!({"permissions": []})),
            [F, F, Y],
        ),
        route(M::DELETE, "/v1/auth/roles/r-{who}", Body::None, [F, F, Y]),
        route(M::GET, "/v1/auth/tokens", Body::None, [Y, Y, Y]),
        route(
            M::POST,
            "/v1/auth/tokens",
            j(json!({"principal": "alice", "ttl": "1h"})),
            [F, Y, Y],
        ),
        route(
            M::DELETE,
            "/v1/auth/tokens/0000000000000000",
            Body::None,
            [F, F, P],
        ),
        // No such route: still nothing without credentials.
        route(M::GET, "/v1/no-such-route", Body::None, [P, P, P]),
    ]
}

/// A well-formed token the cluster never issued.
const UNKNOWN_TOKEN: &str = "scarab_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

async fn send(
    http: &reqwest::Client,
    base: &str,
    route: &Route,
    who: &str,
    token: Option<&str>,
) -> Result<(u16, String)> {
    let path = route.path.replace("{who}", who);
    let mut req = http.request(route.method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req = match &route.body {
        Body::None => req,
        Body::Json(v) => req
            .header("content-type", "application/json")
            .body(v.to_string().replace("{who}", who)),
        Body::Schema(v) => {
            let boundary = "scarabtestboundary";
            let body = format!(
                "--{boundary}\r\ncontent-disposition: form-data; name=\"schema\"\r\ncontent-type: application/json\r\n\r\n{v}\r\n--{boundary}--\r\n"
            );
            req.header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
        }
    };
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
    Ok((status, code))
}

/// Polls until `client` is refused with 401 (a token that expired or was revoked).
async fn until_refused(client: &scarab_client::Client, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.whoami().await {
            Err(e) if e.api().is_some_and(|a| a.status == 401) => return Ok(()),
            other if Instant::now() >= deadline => bail!("still accepted: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_its_permissions_say() -> Result<()> {
    let (node, root) = start_auth_node(&[]).await?;
    let base = node.base_url().to_string();
    let admin = client_with_token(&base, &root);
    admin
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    admin
        .put_role("reader-b", &Permission::reader("b/"))
        .await?;
    admin
        .put_role("writer-a", &Permission::writer("a/"))
        .await?;
    let mut tokens = Vec::new();
    for (user, role) in [
        ("bob", "reader-b"),
        ("alice", "writer-a"),
        ("carol", "writer-a"),
        ("dave", "writer-a"),
    ] {
        admin.put_user(user, &[role.to_string()]).await?;
        let ttl = (user == "dave").then(|| "1s".to_string());
        let t = admin
            .create_token(&CreateToken {
                principal: user.into(),
                ttl,
                description: None,
            })
            .await?;
        tokens.push(t);
    }
    let (bob, alice, carol, dave) = (&tokens[0], &tokens[1], &tokens[2], &tokens[3]);
    admin.revoke_token(&carol.info.id).await?;
    until_refused(
        &client_with_token(&base, &dave.token),
        Duration::from_secs(10),
    )
    .await?;
    let seeded = admin
        .put("a/x", &PutConfig::new("note", 1, &json!({"n": 0})))
        .await?;
    admin
        .put("b/x", &PutConfig::new("note", 1, &json!({"n": 0})))
        .await?;

    let callers: [(&str, Option<&str>); 7] = [
        ("nobody", None),
        ("unknown", Some(UNKNOWN_TOKEN)),
        ("revoked", Some(&carol.token)),
        ("expired", Some(&dave.token)),
        ("reader", Some(&bob.token)),
        ("writer", Some(&alice.token)),
        ("admin", Some(&root)),
    ];
    let http = http_client();
    let mut wrong = Vec::new();
    for route in routes(seeded.body.revision) {
        for (i, (who, token)) in callers.iter().enumerate() {
            let (status, code) = send(&http, &base, &route, who, *token).await?;
            let ok = match (&route.expect, i) {
                (None, _) => status == 200,
                (Some(_), 0..=3) => status == 401 && code == "unauthenticated",
                (Some(e), _) => match e[i - 4] {
                    Y => (200..300).contains(&status),
                    F => status == 403 && code == "forbidden",
                    P => status != 401 && status != 403,
                },
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {who}: {status} {code} (expected {:?})",
                    route.method,
                    route.path,
                    route.expect.map(|e| if i < 4 {
                        "401".into()
                    } else {
                        format!("{:?}", e[i - 4])
                    })
                ));
            }
        }
    }
    if !wrong.is_empty() {
        bail!(
            "{} answers differ from the matrix:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn lists_and_watches_show_only_the_keys_a_principal_may_read() -> Result<()> {
    let (node, root) = start_auth_node(&[]).await?;
    let base = node.base_url().to_string();
    let admin = client_with_token(&base, &root);
    admin
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    for key in ["a/0", "a/1/x", "a/1/y", "a/2/x", "a/3/x", "a/4"] {
        admin
            .put(key, &PutConfig::new("note", 1, &json!({"k": key})))
            .await?;
    }
    admin
        .put_role(
            "parts",
            &[
                Permission::new(scarab_client::types::auth::Action::ConfigRead, "a/1/"),
                Permission::new(scarab_client::types::auth::Action::ConfigRead, "a/3/"),
            ],
        )
        .await?;
    admin.put_user("eve", &["parts".to_string()]).await?;
    let eve = admin
        .create_token(&CreateToken {
            principal: "eve".into(),
            ttl: None,
            description: None,
        })
        .await?;
    let http = http_client();
    // Page by page, one key a page: every cursor is a key she may read.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/configs?prefix=a/&limit=1");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth(&eve.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("a/1/") || next.starts_with("a/3/"),
                    "the cursor names a key she may not read: {next}"
                );
                after = Some(next.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a/1/x", "a/1/y", "a/3/x"]);
    // A watch needs the whole prefix; under a readable one it streams only that.
    let eve_client = client_with_token(&base, &eve.token);
    let status = http
        .get(format!("{base}/v1/watch?prefix=a/&wait=1ms"))
        .bearer_auth(&eve.token)
        .send()
        .await?
        .status();
    assert_eq!(status, 403);
    let from = admin.status().await?.body.revision + 1;
    admin
        .put("a/0", &PutConfig::new("note", 1, &json!({"k": 2})))
        .await?;
    admin
        .put("a/1/x", &PutConfig::new("note", 1, &json!({"k": 2})))
        .await?;
    let poll: Value = http
        .get(format!(
            "{base}/v1/watch?prefix=a/1/&from_revision={from}&wait=1s"
        ))
        .bearer_auth(&eve.token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let keys: Vec<&str> = poll["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|batch| batch["events"].as_array().unwrap())
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a/1/x"], "{poll}");
    assert_eq!(eve_client.whoami().await?.principal, "eve");
    Ok(())
}

#[tokio::test]
async fn the_audit_trail_records_the_principal_and_impersonation_only_when_granted() -> Result<()> {
    let (node, root) = start_auth_node(&[]).await?;
    let base = node.base_url().to_string();
    let admin = client_with_token(&base, &root);
    admin
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    admin.put_role("writer", &Permission::writer("")).await?;
    let mut deploy_perms = Permission::writer("");
    deploy_perms.push("auth:impersonate".parse()?);
    admin.put_role("deployer", &deploy_perms).await?;
    admin.put_user("alice", &["writer".into()]).await?;
    admin.put_user("ci", &["deployer".into()]).await?;
    let token = |p: &str| CreateToken {
        principal: p.into(),
        ttl: None,
        description: None,
    };
    let alice = admin.create_token(&token("alice")).await?;
    let ci = admin.create_token(&token("ci")).await?;
    // Alice claims to be someone else: ignored.
    client_with_token(&base, &alice.token)
        .with_actor("mallory")?
        .put("k/1", &PutConfig::new("note", 1, &json!({})))
        .await?;
    // The pipeline acts for bob: both recorded.
    client_with_token(&base, &ci.token)
        .with_actor("bob")?
        .put("k/2", &PutConfig::new("note", 1, &json!({})))
        .await?;
    let page = admin
        .audit_page(&scarab_client::AuditQuery {
            prefix: "k/".into(),
            ..Default::default()
        })
        .await?
        .body;
    let rec = |key: &str| page.items.iter().find(|r| r.object == key).unwrap();
    assert_eq!(rec("k/1").actor, "alice");
    assert_eq!(rec("k/1").on_behalf_of, None);
    assert_eq!(rec("k/2").actor, "ci");
    assert_eq!(rec("k/2").on_behalf_of.as_deref(), Some("bob"));
    // Changes of access are audited too, with who made them.
    let auth = admin
        .audit_page(&scarab_client::AuditQuery {
            prefix: "auth/".into(),
            ..Default::default()
        })
        .await?
        .body;
    assert!(
        auth.items
            .iter()
            .any(|r| r.action == "auth.token.create" && r.actor == "root"),
        "{auth:?}"
    );
    assert!(auth.items.iter().any(|r| r.action == "auth.bootstrap"));
    Ok(())
}

#[tokio::test]
async fn the_root_token_is_written_once_with_mode_0600_and_never_logged() -> Result<()> {
    let (mut node, root) = start_auth_node(&[]).await?;
    let path = node.data_dir().join("root-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    node.stop().await?;
    node.opts.ready = Ready::Spawned;
    node.restart().await?;
    let again = root_token(&node, None, Duration::from_secs(30)).await?;
    assert_eq!(again, root, "a restart made another root token");
    let tokens = client_with_token(node.base_url(), &root).tokens().await?;
    assert_eq!(tokens.len(), 1);
    let log = std::fs::read_to_string(node.log_path())?;
    assert!(!log.contains(&root), "the root token is in the log");
    assert!(log.contains("root-token"), "the log does not name the file");
    Ok(())
}

#[tokio::test]
async fn a_root_token_file_given_by_the_operator_is_the_root_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("root");
    // A token of the right shape, chosen by the operator.
    let chosen = "scarab_00112233aabbccdd_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    std::fs::write(&file, format!("{chosen}\n"))?;
    let node = Node::start(NodeOptions {
        extra_args: vec![
            "--auth".into(),
            "--root-token-file".into(),
            file.display().to_string(),
        ],
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let token = root_token(&node, Some(&file), Duration::from_secs(60)).await?;
    assert_eq!(token, chosen);
    Ok(())
}

#[tokio::test]
async fn a_revocation_takes_effect_on_a_follower_once_applied() -> Result<()> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.push(
            Node::start(NodeOptions {
                node_id: i as u64 + 1,
                port: Some(*port),
                formation: Formation::Expect {
                    expect: 3,
                    join: urls.clone(),
                },
                extra_args: vec!["--auth".into()],
                ready: Ready::Spawned,
                ..NodeOptions::default()
            })
            .await?,
        );
    }
    // Whichever node led first wrote the root token.
    let deadline = Instant::now() + Duration::from_secs(60);
    let root = loop {
        let mut found = None;
        for n in &nodes {
            if let Ok(t) = root_token(n, None, Duration::from_millis(200)).await {
                found = Some(t);
            }
        }
        if let Some(t) = found {
            break t;
        }
        if Instant::now() >= deadline {
            bail!("no node bootstrapped authentication");
        }
    };
    let all = scarab_client::Client::builder()
        .endpoints(urls.clone())
        .http_client(http_client())
        .token(&root)
        .build()?;
    let leader = all.cluster().await?.leader.expect("a leader");
    let follower = nodes.iter().find(|n| n.id() != leader).unwrap();
    all.put_user("svc", &[]).await?;
    let t = all
        .create_token(&CreateToken {
            principal: "svc".into(),
            ttl: None,
            description: None,
        })
        .await?;
    let at_follower = client_with_token(follower.base_url(), &t.token);
    // Accepted there once the creation is applied there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while at_follower.whoami().await.is_err() {
        if Instant::now() >= deadline {
            bail!("the follower never accepted the new token");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    all.revoke_token(&t.info.id).await?;
    until_refused(&at_follower, Duration::from_secs(10)).await?;
    // And for good: a linearizable read there (after its read barrier) is refused too.
    let err = at_follower.get("any").await.unwrap_err();
    assert_eq!(err.api().map(|a| a.status), Some(401));
    Ok(())
}

#[tokio::test]
async fn a_node_refuses_to_serve_a_public_address_without_authentication() -> Result<()> {
    let mut node = Node::start(NodeOptions {
        ip: "0.0.0.0".parse()?,
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let status = node.wait_exit(Duration::from_secs(30)).await?;
    assert!(!status.success());
    let log = std::fs::read_to_string(node.log_path())?;
    assert!(log.contains("--insecure-no-auth"), "{log}");
    Ok(())
}

#[tokio::test]
async fn insecure_no_auth_serves_a_public_address_open_and_says_so() -> Result<()> {
    let node = Node::start(NodeOptions {
        ip: "0.0.0.0".parse()?,
        extra_args: vec!["--insecure-no-auth".into(), "--insecure-peer".into()],
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let client = client_with_token(&format!("http://127.0.0.1:{}", node.port()), UNKNOWN_TOKEN);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Open: the token is not even looked at.
        if let Ok(me) = client.whoami().await {
            assert_eq!(me.authenticated_by, "open");
            break;
        }
        if Instant::now() >= deadline {
            bail!("not serving: {}", node.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(node.log_path())?;
    assert!(log.contains("WITHOUT authentication"), "{log}");
    Ok(())
}

#[tokio::test]
async fn tokens_are_limited_by_max_tokens() -> Result<()> {
    // The root token is one of the three.
    let (node, root) = start_auth_node(&["--max-tokens", "3"]).await?;
    let admin = client_with_token(node.base_url(), &root);
    admin.put_user("u", &[]).await?;
    let req = CreateToken {
        principal: "u".into(),
        ttl: None,
        description: None,
    };
    admin.create_token(&req).await?;
    let third = admin.create_token(&req).await?;
    let err = admin.create_token(&req).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&scarab_client::types::ErrorCode::TooManyTokens)
    );
    admin.revoke_token(&third.info.id).await?;
    admin.create_token(&req).await?;
    Ok(())
}

/// Runs `scarab ARGS -s BASE` with `SCARAB_TOKEN=token`; its stdout, or an error with stderr.
async fn cli(base: &str, token: &str, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(harness::scarab_bin())
        .args(args)
        .args(["-s", base])
        .env("SCARAB_TOKEN", token)
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "scarab {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn the_cli_manages_roles_users_and_tokens_and_a_token_it_prints_works() -> Result<()> {
    let (node, root) = start_auth_node(&[]).await?;
    let base = node.base_url().to_string();
    cli(
        &base,
        &root,
        &[
            "auth",
            "role",
            "create",
            "orders",
            "--writer",
            "stores/orders/",
        ],
    )
    .await?;
    cli(
        &base,
        &root,
        &[
            "auth",
            "role",
            "grant",
            "orders",
            "audit:read:stores/orders/",
        ],
    )
    .await?;
    cli(
        &base,
        &root,
        &["auth", "user", "create", "svc", "--role", "orders"],
    )
    .await?;
    // The token alone on stdout.
    let token = cli(
        &base,
        &root,
        &["auth", "token", "create", "--user", "svc", "--ttl", "1h"],
    )
    .await?
    .trim()
    .to_string();
    let me: Value =
        serde_json::from_str(&cli(&base, &token, &["auth", "whoami", "-o", "json"]).await?)?;
    assert_eq!(me["principal"], "svc");
    assert_eq!(me["authenticated_by"], "token");
    let perms: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["action"].as_str().unwrap())
        .collect();
    assert!(
        perms.contains(&"audit:read") && perms.contains(&"config:write"),
        "{me}"
    );
    // Not an admin: listing users is refused, with the permission named.
    let err = cli(&base, &token, &["auth", "user", "list"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("auth:admin"), "{err:#}");
    // Its own tokens: listed, then revoked by itself.
    let mine: Value =
        serde_json::from_str(&cli(&base, &token, &["auth", "token", "list", "-o", "json"]).await?)?;
    let id = mine[0]["id"].as_str().unwrap().to_string();
    cli(&base, &token, &["auth", "token", "revoke", &id]).await?;
    let err = cli(&base, &token, &["auth", "whoami"]).await.unwrap_err();
    assert!(err.to_string().contains("unauthenticated"), "{err:#}");
    // A role in use cannot go; once its user is gone, it can.
    let err = cli(&base, &root, &["auth", "role", "delete", "orders"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("role_in_use"), "{err:#}");
    cli(&base, &root, &["auth", "user", "delete", "svc"]).await?;
    cli(&base, &root, &["auth", "role", "delete", "orders"]).await?;
    Ok(())
}

#[tokio::test]
async fn names_roles_and_descriptions_are_bounded_at_their_limits() -> Result<()> {
    let (node, root) = start_auth_node(&[]).await?;
    let admin = client_with_token(node.base_url(), &root);
    let status = |r: Result<(), scarab_client::Error>| match r {
        Ok(()) => 200,
        Err(e) => e.api().map(|a| a.status).unwrap_or(0),
    };
    // A user name: at most 128 bytes.
    let at = "u".repeat(128);
    let past = "u".repeat(129);
    assert_eq!(status(admin.put_user(&at, &[]).await.map(drop)), 200);
    assert_eq!(status(admin.put_user(&past, &[]).await.map(drop)), 400);
    // A role: at most 256 permissions.
    let perms = |n: usize| -> Vec<Permission> {
        (0..n)
            .map(|i| {
                Permission::new(
                    scarab_client::types::auth::Action::ConfigRead,
                    format!("p{i}/"),
                )
            })
            .collect()
    };
    assert_eq!(
        status(admin.put_role("r256", &perms(256)).await.map(drop)),
        200
    );
    assert_eq!(
        status(admin.put_role("r257", &perms(257)).await.map(drop)),
        400
    );
    // A token's description: at most 256 bytes.
    let token = |d: usize| CreateToken {
        principal: at.clone(),
        ttl: None,
        description: Some("d".repeat(d)),
    };
    assert_eq!(status(admin.create_token(&token(256)).await.map(drop)), 200);
    assert_eq!(status(admin.create_token(&token(257)).await.map(drop)), 400);
    Ok(())
}
