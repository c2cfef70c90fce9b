//! Transport security, as a client and a peer see it: TLS on the client API (and its
//! rotation by SIGHUP), mutual TLS and the cluster secret on the peer port, and the refusal to
//! start with unprotected peer traffic on a reachable address. Real `scarab serve` processes
//! on loopback ports; certificates made by `scarab cert`.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use harness::tls::{Pair, Pki, cert_der, https_client, server_cert, wait_200};
use harness::{
    Formation, Node, NodeOptions, Ready, assert_error, assert_status, config_body, free_port,
    wait_until,
};
use scarab_client::SchemaUpload;
use scarab_client::types::PutConfig;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// A node whose client API is served over TLS with `pair` (and `extra` flags), up and
/// serving over https.
async fn start_tls_node(pki: &Pki, pair: &Pair, extra: &[String]) -> Result<(Node, String)> {
    let node = Node::start(NodeOptions {
        extra_args: [pki.api_args(pair), extra.to_vec()].concat(),
        ready: Ready::Spawned,
        ..NodeOptions::default()
    })
    .await?;
    let base = format!("https://127.0.0.1:{}", node.port());
    let client = https_client(Some(&pki.ca()), None, true)?;
    wait_200(&client, &format!("{base}/v1/readyz"), WAIT)
        .await
        .with_context(|| node.log_tail(40))?;
    Ok((node, base))
}

fn typed(base: &str, pki: &Pki) -> Result<scarab_client::Client> {
    Ok(scarab_client::Client::builder()
        .endpoint(base)
        .ca_cert_file(pki.ca())
        .max_attempts(1)
        .build()?)
}

#[tokio::test]
async fn the_api_over_tls_serves_clients_that_trust_its_ca_and_no_one_else() -> Result<()> {
    let pki = Pki::new()?;
    let (node, base) = start_tls_node(&pki, &pki.node(1)?, &[]).await?;

    // A client with the CA reads and writes.
    let client = typed(&base, &pki)?;
    client
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    let written = client
        .put("tls/a", &PutConfig::new("note", 1, json!({"v": 1})))
        .await?;
    ensure!(written.created);
    ensure!(client.get("tls/a").await?.value == json!({"v": 1}));
    // The node advertises its API as https.
    let me: Value = https_client(Some(&pki.ca()), None, true)?
        .get(format!("{base}/v1/cluster/self"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        me["api"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")),
        "{me}"
    );

    // The CLI with --cacert reads it too; with --cert/--key it presents a certificate (this
    // node does not ask for one: it is ignored).
    let alice = pki.client("alice")?;
    let out = std::process::Command::new(harness::scarab_bin())
        .args([
            "config", "get", "tls/a", "-o", "json", "-s", &base, "--cacert",
        ])
        .arg(pki.ca())
        .arg("--cert")
        .arg(&alice.cert)
        .arg("--key")
        .arg(&alice.key)
        .output()?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"v\""),
        "scarab config get over https: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = harness::http_client()
        .get(format!("http://127.0.0.1:{}/v1/health", node.port()))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    ensure!(plain.is_err(), "plain HTTP got an answer: {plain:?}");

    // A client that trusts another CA (or none) does not get through.
    let stranger = Pki::new()?;
    for client in [
        https_client(Some(&stranger.ca()), None, true)?,
        https_client(None, None, true)?,
    ] {
        let r = client.get(format!("{base}/v1/health")).send().await;
        ensure!(r.is_err(), "a client without the CA got an answer: {r:?}");
    }
    let r = scarab_client::Client::builder()
        .endpoint(&base)
        .max_attempts(1)
        .build()?
        .get("tls/a")
        .await;
    ensure!(r.is_err(), "the typed client without a CA got through");
    Ok(())
}

#[tokio::test]
async fn client_certificates_are_optional_on_the_api_and_must_chain_to_its_client_ca() -> Result<()>
{
    let pki = Pki::new()?;
    let ca = pki.ca().display().to_string();
    let (_node, base) =
        start_tls_node(&pki, &pki.node(1)?, &["--tls-client-ca".into(), ca]).await?;
    let health = format!("{base}/v1/health");
    let alice = pki.client("alice")?;
    for (what, identity) in [("no certificate", None), ("alice", Some(&alice))] {
        let r = https_client(Some(&pki.ca()), identity, false)?
            .get(&health)
            .send()
            .await
            .with_context(|| what.to_string())?;
        ensure!(r.status() == 200, "{what}: {}", r.status());
    }
    let other = Pki::new()?;
    let stranger = other.client("mallory")?;
    let r = https_client(Some(&pki.ca()), Some(&stranger), false)?
        .get(&health)
        .send()
        .await;
    ensure!(
        r.is_err(),
        "a certificate of another CA got an answer: {r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn rotating_the_certificate_with_sighup_fails_no_request() -> Result<()> {
    let pki = Pki::new()?;
    let first = pki.node(1)?;
    let (mut node, base) = start_tls_node(&pki, &first, &[]).await?;
    typed(&base, &pki)?
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    let old = cert_der(&first.cert)?;

    // Two writers until told to stop: one on kept-alive connections (the typed client), one
    // opening a new connection (a new handshake) for every request.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for fresh in [false, true] {
        let (stop, done, base) = (stop.clone(), done.clone(), base.clone());
        let http = https_client(Some(&pki.ca()), None, !fresh)?;
        let typed = typed(&base, &pki)?;
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("rotation/{fresh}-{}", i % 16);
                let value = json!({"i": i});
                let ok = if fresh {
                    match http
                        .put(format!("{base}/v1/configs/{key}"))
                        .json(&config_body("note", 1, &value))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => Ok(()),
                        Ok(r) => Err(format!("HTTP {}", r.status())),
                        Err(e) => Err(format!("{e:#}")),
                    }
                } else {
                    typed
                        .put(&key, &PutConfig::new("note", 1, value))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                match ok {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }
    let before = done.load(Ordering::Relaxed);
    wait_until(WAIT, "writes before the rotation", || async {
        done.load(Ordering::Relaxed) >= before + 50
    })
    .await?;

    // Replace the files (a new key and serial), then SIGHUP.
    let second = pki.node(1)?;
    let new = cert_der(&second.cert)?;
    ensure!(new != old, "the new certificate is the old one");
    node.signal(libc::SIGHUP)?;
    // New connections get the new certificate.
    let probe = https_client(Some(&pki.ca()), None, false)?;
    wait_until(
        WAIT,
        "new connections to see the new certificate",
        || async {
            match probe.get(format!("{base}/v1/health")).send().await {
                Ok(r) => server_cert(&r).is_some_and(|c| c == new),
                Err(_) => false,
            }
        },
    )
    .await?;
    let rotated = done.load(Ordering::Relaxed);
    wait_until(WAIT, "writes after the rotation", || async {
        done.load(Ordering::Relaxed) >= rotated + 50
    })
    .await?;

    // A reload that fails (a key that does not parse) keeps the certificate in use.
    std::fs::write(&second.key, "not a key")?;
    node.signal(libc::SIGHUP)?;
    wait_until(WAIT, "the failed reload to be logged", || async {
        node.log_tail(200)
            .contains("cannot reload the TLS certificate")
    })
    .await?;
    let after_failed = done.load(Ordering::Relaxed);
    wait_until(WAIT, "writes after a failed reload", || async {
        done.load(Ordering::Relaxed) >= after_failed + 20
    })
    .await?;
    let r = probe.get(format!("{base}/v1/health")).send().await?;
    ensure!(
        server_cert(&r) == Some(new),
        "the failed reload changed the certificate"
    );

    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let failures = w.await?;
        ensure!(failures.is_empty(), "failed requests: {failures:?}");
    }
    Ok(())
}

/// A command the nodes themselves forward to the leader: put `key` (schema note v1).
fn put_command(key: &str) -> Value {
    json!({"actor": "mallory", "at_ms": 1,
        "op": {"PutConfig": {"key": key, "schema": "note", "schema_version": 1,
               "plugin_digest": null, "value": "{\"forged\":true}", "precondition": "None"}}})
}

async fn revision(node: &Node) -> Result<u64> {
    Ok(node.status().await?.revision)
}

#[tokio::test]
async fn peer_mutual_tls_forms_a_cluster_and_refuses_non_members() -> Result<()> {
    let pki = Pki::new()?;
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Node> = Vec::new();
    for id in 1..=3u64 {
        let pair = pki.node(id)?;
        let formation = match nodes.first() {
            None => Formation::Bootstrap,
            Some(first) => Formation::Join(vec![first.api_url()]),
        };
        nodes.push(
            Node::start(NodeOptions {
                node_id: id,
                peer_port: Some(ports[id as usize - 1]),
                formation,
                ready: if id == 1 {
                    Ready::Leader
                } else {
                    Ready::Serving
                },
                extra_args: pki.peer_args(&pair),
                ..NodeOptions::default()
            })
            .await?,
        );
    }
    let leader = &nodes[0];
    // Joined through /internal/join (the client API has no join credentials to offer here:
    // the route is the peer one), as voters, with https peer URLs.
    wait_until(WAIT, "three voters", || async {
        leader.typed().cluster().await.is_ok_and(|v| {
            v.members.len() == 3
                && v.voter_sets.len() == 1
                && v.voter_sets[0].len() == 3
                && v.members.iter().all(|m| m.peer.starts_with("https://"))
        })
    })
    .await?;
    leader
        .typed()
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    assert_status(
        &leader
            .put_config("tls/replicated", "note", 1, &json!({"v": 1}))
            .await?,
        201,
    );
    wait_until(WAIT, "replication to node 3", || async {
        nodes[2]
            .get_config_stale("tls/replicated")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await?;

    let propose = format!("https://127.0.0.1:{}/internal/propose", ports[0]);
    let before = revision(leader).await?;
    // Without a client certificate, and with one from another CA: refused at the handshake.
    let stranger = Pki::new()?;
    for (what, identity) in [
        ("no certificate", None),
        ("another CA's certificate", Some(stranger.node(2)?)),
    ] {
        let r = https_client(Some(&pki.ca()), identity.as_ref(), false)?
            .post(&propose)
            .json(&put_command("forged"))
            .send()
            .await;
        ensure!(r.is_err(), "{what}: answered {r:?}");
    }
    // A valid certificate of the cluster CA, of a node that is not a member: 403.
    let outsider = pki.node(9)?;
    let r = https_client(Some(&pki.ca()), Some(&outsider), false)?
        .post(&propose)
        .json(&put_command("forged"))
        .send()
        .await?;
    let status = r.status().as_u16();
    let body: Value = r.json().await?;
    ensure!(
        status == 403 && body["error"]["code"] == "forbidden",
        "{status} {body}"
    );
    // A client certificate (not a node's) is no member either.
    let alice = pki.client("alice")?;
    let r = https_client(Some(&pki.ca()), Some(&alice), false)?
        .post(&propose)
        .json(&put_command("forged"))
        .send()
        .await?;
    ensure!(r.status() == 403, "a client certificate: {}", r.status());
    // Nothing was applied.
    assert_error(&leader.get_config("forged").await?, 404, "not_found");
    ensure!(revision(leader).await? == before, "the revision moved");

    // The same request with a member's certificate goes through: the refusals above were
    // the certificates', not the body's.
    let member = pki.node(2)?;
    let r = https_client(Some(&pki.ca()), Some(&member), false)?
        .post(&propose)
        .json(&put_command("control"))
        .send()
        .await?;
    ensure!(r.status() == 200, "a member: {}", r.status());
    assert_status(&leader.get_config("control").await?, 200);
    Ok(())
}

fn secret_file(dir: &std::path::Path, name: &str, bytes: usize) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    // A trailing newline, as `echo` writes: trimmed.
    std::fs::write(&path, format!("{}\n", "s".repeat(bytes)))?;
    Ok(path)
}

#[tokio::test]
async fn a_cluster_secret_guards_the_peer_port() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let secret = secret_file(dir.path(), "secret", 40)?;
    let args = vec![
        "--cluster-secret-file".to_string(),
        secret.display().to_string(),
    ];
    let peer_port = free_port();
    let first = Node::start(NodeOptions {
        peer_port: Some(peer_port),
        extra_args: args.clone(),
        ..NodeOptions::default()
    })
    .await?;
    let second = Node::start(NodeOptions {
        node_id: 2,
        peer_port: Some(free_port()),
        formation: Formation::Join(vec![first.api_url()]),
        ready: Ready::Serving,
        extra_args: args,
        ..NodeOptions::default()
    })
    .await?;
    wait_until(WAIT, "two voters", || async {
        first
            .typed()
            .cluster()
            .await
            .is_ok_and(|v| v.voter_sets.len() == 1 && v.voter_sets[0].len() == 2)
    })
    .await?;
    first
        .typed()
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    wait_until(WAIT, "the schema on node 2", || async {
        second.status().await.is_ok_and(|s| s.revision >= 1)
    })
    .await?;

    let propose = format!("http://127.0.0.1:{peer_port}/internal/propose");
    let http = harness::http_client();
    let before = revision(&first).await?;
    for given in [None, Some("w".repeat(40))] {
        let mut req = http.post(&propose).json(&put_command("forged"));
        if let Some(s) = &given {
            req = req.header("x-scarab-cluster-secret", s);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await?;
        ensure!(
            status == 401 && body["error"]["code"] == "unauthenticated",
            "{given:?}: {status} {body}"
        );
    }
    assert_error(&first.get_config("forged").await?, 404, "not_found");
    ensure!(revision(&first).await? == before, "the revision moved");
    let r = http
        .post(&propose)
        .header("x-scarab-cluster-secret", "s".repeat(40))
        .json(&put_command("control"))
        .send()
        .await?;
    ensure!(r.status() == 200, "with the secret: {}", r.status());
    assert_status(&first.get_config("control").await?, 200);
    Ok(())
}

/// Starts a node expected to refuse to start; returns its log.
async fn refused(opts: NodeOptions) -> Result<String> {
    let mut node = Node::start(NodeOptions {
        ready: Ready::Spawned,
        ..opts
    })
    .await?;
    let status = node.wait_exit(WAIT).await?;
    ensure!(!status.success(), "exited with {status}");
    Ok(node.log_tail(20))
}

#[tokio::test]
async fn a_cluster_secret_has_at_least_32_bytes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let short = secret_file(dir.path(), "short", 31)?;
    let log = refused(NodeOptions {
        extra_args: vec!["--cluster-secret-file".into(), short.display().to_string()],
        ..NodeOptions::default()
    })
    .await?;
    ensure!(
        log.contains("has 31 bytes") && log.contains("at least 32"),
        "{log}"
    );
    let enough = secret_file(dir.path(), "enough", 32)?;
    Node::start(NodeOptions {
        extra_args: vec!["--cluster-secret-file".into(), enough.display().to_string()],
        ..NodeOptions::default()
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn unprotected_peer_traffic_on_a_reachable_address_needs_insecure_peer() -> Result<()> {
    let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    // (The API is served open on purpose: authentication is another test's concern.)
    let log = refused(NodeOptions {
        ip: any,
        extra_args: vec!["--insecure-no-auth".into()],
        ..NodeOptions::default()
    })
    .await?;
    ensure!(log.contains("--insecure-peer"), "{log}");
    // With --insecure-peer it starts, and says so.
    let node = Node::start(NodeOptions {
        ip: any,
        extra_args: vec!["--insecure-peer".into(), "--insecure-no-auth".into()],
        ..NodeOptions::default()
    })
    .await?;
    ensure!(node.log_tail(50).contains("--insecure-peer: peer traffic"));
    // A secret protects it: no flag needed.
    let dir = tempfile::tempdir()?;
    let secret = secret_file(dir.path(), "secret", 32)?;
    Node::start(NodeOptions {
        ip: any,
        extra_args: vec![
            "--cluster-secret-file".into(),
            secret.display().to_string(),
            "--insecure-no-auth".into(),
        ],
        ..NodeOptions::default()
    })
    .await?;
    // On loopback, it starts with a warning (the harness's own nodes).
    let local = Node::start(NodeOptions::default()).await?;
    ensure!(local.log_tail(50).contains("is not protected"));
    Ok(())
}

#[tokio::test]
async fn peer_tls_needs_its_own_listener_and_all_three_files() -> Result<()> {
    let pki = Pki::new()?;
    let pair = pki.node(1)?;
    let log = refused(NodeOptions {
        extra_args: pki.peer_args(&pair),
        ..NodeOptions::default()
    })
    .await?;
    ensure!(log.contains("--peer-listen"), "{log}");
    let log = refused(NodeOptions {
        peer_port: Some(free_port()),
        extra_args: pki.peer_args(&pair)[..4].to_vec(),
        ..NodeOptions::default()
    })
    .await?;
    ensure!(log.contains("all three"), "{log}");
    Ok(())
}

#[tokio::test]
async fn sighup_rotates_the_peer_certificate_and_replication_goes_on() -> Result<()> {
    let pki = Pki::new()?;
    let ports = [free_port(), free_port()];
    let one = pki.node(1)?;
    let first = Node::start(NodeOptions {
        peer_port: Some(ports[0]),
        extra_args: pki.peer_args(&one),
        ..NodeOptions::default()
    })
    .await?;
    let two = pki.node(2)?;
    let mut second = Node::start(NodeOptions {
        node_id: 2,
        peer_port: Some(ports[1]),
        formation: Formation::Join(vec![first.api_url()]),
        ready: Ready::Serving,
        extra_args: pki.peer_args(&two),
        ..NodeOptions::default()
    })
    .await?;
    first
        .typed()
        .register_schema("note", 1, &SchemaUpload::new(&json!({"type": "object"})))
        .await?;
    // What node 2's peer port presents, seen by a member (node 1's certificate).
    let peer = format!("https://127.0.0.1:{}/raft/vote", ports[1]);
    let probe = https_client(Some(&pki.ca()), Some(&one), false)?;
    let presented = || async {
        let r = probe.post(&peer).body("{}").send().await.ok()?;
        server_cert(&r)
    };
    let old = cert_der(&two.cert)?;
    ensure!(presented().await == Some(old.clone()));

    // New files for node 2 (a new key and serial), then SIGHUP.
    let new = cert_der(&pki.node(2)?.cert)?;
    ensure!(new != old);
    second.signal(libc::SIGHUP)?;
    wait_until(
        WAIT,
        "node 2's peer port to present the new certificate",
        || async { presented().await == Some(new.clone()) },
    )
    .await?;
    // Replication goes on: a write through node 2 (forwarded to the leader) is read back
    // from it.
    assert_status(
        &second
            .put_config("after/rotation", "note", 1, &json!({"v": 1}))
            .await?,
        201,
    );
    wait_until(WAIT, "the write on node 2", || async {
        second
            .get_config_stale("after/rotation")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn with_auth_on_a_client_certificate_authenticates_as_the_user_it_names() -> Result<()> {
    let pki = Pki::new()?;
    let ca = pki.ca().display().to_string();
    let (node, base) = start_tls_node(
        &pki,
        &pki.node(1)?,
        &["--tls-client-ca".into(), ca, "--auth".into()],
    )
    .await?;
    // The root token, once bootstrapped (over https).
    let token_file = node.data_dir().join("root-token");
    let accepted = |t: String| {
        let base = base.clone();
        let pki = &pki;
        async move {
            match typed(&base, pki).and_then(|c| Ok(c.with_token(&t)?)) {
                Ok(c) => c.whoami().await.is_ok(),
                Err(_) => false,
            }
        }
    };
    wait_until(WAIT, "the root token is bootstrapped", || {
        let t = std::fs::read_to_string(&token_file).unwrap_or_default();
        accepted(t.trim().to_string())
    })
    .await?;
    let root = std::fs::read_to_string(&token_file)?.trim().to_string();
    let admin = typed(&base, &pki)?.with_token(&root)?;
    admin
        .put_role(
            "reader",
            &scarab_client::types::auth::Permission::reader(""),
        )
        .await?;
    admin.put_user("alice", &["reader".into()]).await?;
    let whoami = |identity: Option<Pair>| {
        let base = base.clone();
        let ca = pki.ca();
        async move {
            let r = https_client(Some(&ca), identity.as_ref(), false)?
                .get(format!("{base}/v1/auth/whoami"))
                .send()
                .await?;
            anyhow::Ok((r.status().as_u16(), r.json::<Value>().await?))
        }
    };
    let (status, me) = whoami(Some(pki.client("alice")?)).await?;
    ensure!(status == 200, "{me}");
    assert_eq!(me["principal"], "alice");
    assert_eq!(me["authenticated_by"], "certificate");
    // A certificate of a name that is no user: known, but allowed nothing.
    let nobody = pki.client("nobody")?;
    let r = https_client(Some(&pki.ca()), Some(&nobody), false)?
        .get(format!("{base}/v1/configs/any"))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    // No certificate and no token: 401.
    let (status, _) = whoami(None).await?;
    assert_eq!(status, 401);
    Ok(())
}
