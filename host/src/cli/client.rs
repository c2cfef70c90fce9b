//! Client subcommands: `scarab config ...` and `scarab schema ...` over the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use comfy_table::Table;
use reqwest::StatusCode;
use serde_json::Value;

use super::{ClientOpts, Output};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {server}: {source}")]
    Unreachable {
        server: String,
        source: reqwest::Error,
    },
    /// The server answered with an error body.
    #[error("{status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        body: Value,
    },
    #[error("{0}")]
    Input(String),
}

/// A thin HTTP client of the Scarab API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    actor: Option<String>,
    reason: Option<String>,
}

impl Client {
    pub fn new(base: &str, actor: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            actor,
            reason: None,
        }
    }

    /// Sends `X-Scarab-Reason: reason` with every request.
    pub fn with_reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(a) = &self.actor {
            rb = rb.header("x-scarab-actor", a);
        }
        if let Some(r) = &self.reason {
            rb = rb.header("x-scarab-reason", r);
        }
        rb
    }

    pub(crate) async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let resp = rb.send().await.map_err(|source| ClientError::Unreachable {
            server: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.base.clone(),
                source,
            })?;
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if status.is_success() {
            return Ok(body);
        }
        let field = |f: &str| body["error"][f].as_str().unwrap_or("").to_string();
        Err(ClientError::Api {
            status,
            code: field("code"),
            message: field("message"),
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn put_config(
        &self,
        key: &str,
        schema: &str,
        version: u32,
        value: &Value,
        if_match: Option<u64>,
        create_only: bool,
    ) -> Result<Value, ClientError> {
        let mut rb = self
            .request(reqwest::Method::PUT, &format!("/v1/configs/{key}"))
            .json(
                &serde_json::json!({"schema": schema, "schema_version": version, "value": value}),
            );
        if let Some(rev) = if_match {
            rb = rb.header("if-match", format!("\"{rev}\""));
        }
        if create_only {
            rb = rb.header("if-none-match", "*");
        }
        self.send(rb).await
    }

    pub async fn delete_config(
        &self,
        key: &str,
        if_match: Option<u64>,
    ) -> Result<Value, ClientError> {
        let mut rb = self.request(reqwest::Method::DELETE, &format!("/v1/configs/{key}"));
        if let Some(rev) = if_match {
            rb = rb.header("if-match", format!("\"{rev}\""));
        }
        self.send(rb).await
    }

    /// Uploads a schema version (`PUT` to register, `POST .../compatibility` to check).
    pub async fn upload_schema(
        &self,
        method: reqwest::Method,
        path: &str,
        schema: Vec<u8>,
        plugin: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let part = reqwest::multipart::Part::bytes(schema)
            .mime_str("application/json")
            .expect("static mime");
        let mut form = reqwest::multipart::Form::new().part("schema", part);
        if let Some(p) = plugin {
            form = form.part(
                "plugin",
                reqwest::multipart::Part::bytes(p)
                    .mime_str("application/wasm")
                    .expect("static mime"),
            );
        }
        self.send(self.request(method, path).multipart(form)).await
    }

    /// Registers a schema version.
    pub async fn register_schema(
        &self,
        name: &str,
        version: u32,
        schema: Vec<u8>,
        plugin: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let path = format!("/v1/schemas/{name}/versions/{version}");
        self.upload_schema(reqwest::Method::PUT, &path, schema, plugin)
            .await
    }
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Create or replace a config.
    Put {
        key: String,
        #[arg(long)]
        schema: String,
        #[arg(long = "schema-version", default_value_t = 1)]
        schema_version: u32,
        /// The value as JSON text.
        #[arg(long, conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from a JSON file (`-` for stdin).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Only if the key's current revision is this (compare-and-set).
        #[arg(long)]
        if_match: Option<u64>,
        /// Only if the key does not exist.
        #[arg(long, conflicts_with = "if_match")]
        create: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Read a config.
    Get {
        key: String,
        /// Serve from the node's local state (may be behind).
        #[arg(long)]
        stale: bool,
        /// Read the value converted to this version of its schema.
        #[arg(long = "schema-version")]
        schema_version: Option<u32>,
        /// Read the key as it was at this revision.
        #[arg(long)]
        revision: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// A key's revisions, newest first (deletes included).
    History {
        key: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only revisions older than this one (the previous page's `next_before`).
        #[arg(long)]
        before: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Write a key's value at an earlier revision as a new revision (validated like a write).
    Rollback {
        key: String,
        /// The revision whose value comes back.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Follow the changes under a prefix, one JSON line per change, until interrupted
    /// (reconnects and resumes from the last revision seen).
    Watch {
        #[arg(long, default_value = "")]
        prefix: String,
        /// Start at this revision (default: changes from now on).
        #[arg(long)]
        from_revision: Option<u64>,
        /// Only configs of this schema.
        #[arg(long)]
        schema: Option<String>,
        /// Values converted to this version of --schema.
        #[arg(long = "schema-version", requires = "schema")]
        schema_version: Option<u32>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List configs under a prefix (follows pages).
    List {
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many configs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Delete a config.
    Delete {
        key: String,
        #[arg(long)]
        if_match: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Subcommand)]
pub enum SchemaCmd {
    /// Register a schema version (JSON Schema plus optional plugin).
    Push {
        name: String,
        version: u32,
        /// The JSON Schema file.
        #[arg(long)]
        schema: PathBuf,
        /// The plugin component (.wasm).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Register even if configs stored at the previous version would not survive the
        /// upgrade (the compatibility report).
        #[arg(long)]
        force: bool,
        /// Only print the compatibility report; register nothing.
        #[arg(long, conflicts_with = "force")]
        check: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Rewrite every config of a schema to one version, showing progress.
    Migrate {
        name: String,
        /// The version to migrate to.
        #[arg(long)]
        to: u32,
        /// Convert everything but write nothing; print what would fail.
        #[arg(long)]
        dry_run: bool,
        /// Start it and return; follow it with `scarab schema migrations NAME`.
        #[arg(long, conflicts_with = "dry_run")]
        no_wait: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// A schema's storage migrations and their progress.
    Migrations {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show or set a schema's policy (which versions accept writes).
    Policy {
        name: String,
        /// `latest`: writes only at the highest version; `any`: at any registered version.
        #[arg(long, value_parser = ["any", "latest"])]
        writes: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List schemas and their versions.
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a schema's versions, or one version with its JSON Schema.
    Show {
        name: String,
        version: Option<u32>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn read_value(value: Option<String>, file: Option<PathBuf>) -> Result<Value, ClientError> {
    let text = match (value, file) {
        (Some(v), _) => v,
        (None, Some(f)) if f.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())
            .map_err(|e| ClientError::Input(format!("stdin: {e}")))?,
        (None, Some(f)) => std::fs::read_to_string(&f)
            .map_err(|e| ClientError::Input(format!("{}: {e}", f.display())))?,
        (None, None) => {
            return Err(ClientError::Input(
                "give the value with --value or --file".into(),
            ));
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| ClientError::Input(format!("the value is not JSON: {e}")))
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::Input(format!("{}: {e}", path.display())))
}

/// Prints an error (with violations as a table) and returns the exit code.
pub fn report(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    if let ClientError::Api { body, .. } = e
        && let Some(vs) = body["error"]["violations"].as_array()
    {
        let mut t = Table::new();
        t.set_header(["source", "path", "code", "message"]);
        for v in vs {
            t.add_row([
                v["source"].as_str().unwrap_or(""),
                v["path"].as_str().unwrap_or(""),
                v["code"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or(""),
            ]);
        }
        eprintln!("{t}");
    }
    ExitCode::FAILURE
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json prints"));
}

const META_FIELDS: [&str; 8] = [
    "key",
    "schema",
    "schema_version",
    "revision",
    "key_version",
    "updated_at",
    "updated_by",
    "plugin_digest",
];

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_meta(v: &Value) {
    let mut t = Table::new();
    for f in META_FIELDS
        .iter()
        .chain(["created_at", "created_by"].iter())
    {
        if let Some(x) = v.get(*f) {
            t.add_row([f.to_string(), cell(x)]);
        }
    }
    println!("{t}");
    if let Some(value) = v.get("value") {
        print_json(value);
    }
}

pub async fn run_config(cmd: ConfigCmd) -> ExitCode {
    let result = match cmd {
        ConfigCmd::Put {
            key,
            schema,
            schema_version,
            value,
            file,
            if_match,
            create,
            opts,
        } => {
            async {
                let value = read_value(value, file)?;
                let client = opts.client();
                let meta = client
                    .put_config(&key, &schema, schema_version, &value, if_match, create)
                    .await?;
                Ok((opts.output, meta))
            }
            .await
        }
        ConfigCmd::History {
            key,
            limit,
            before,
            opts,
        } => {
            async {
                let client = opts.client();
                let mut path = format!("/v1/configs/{key}/history?limit={limit}");
                if let Some(b) = before {
                    path.push_str(&format!("&before={b}"));
                }
                Ok((Output::Json, client.get(&path).await?))
            }
            .await
        }
        ConfigCmd::Watch {
            prefix,
            from_revision,
            schema,
            schema_version,
            opts,
        } => watch(opts.client(), prefix, from_revision, schema, schema_version).await,
        ConfigCmd::Rollback { key, to, opts } => {
            async {
                let client = opts.client();
                let path = format!("/v1/configs/{key}/rollback");
                let v = client
                    .post_json(&path, &serde_json::json!({ "revision": to }))
                    .await?;
                Ok((opts.output, v))
            }
            .await
        }
        ConfigCmd::Get {
            key,
            stale,
            schema_version,
            revision,
            opts,
        } => {
            async {
                let client = opts.client();
                let mut q = Vec::new();
                if stale {
                    q.push("consistency=stale".to_string());
                }
                if let Some(v) = schema_version {
                    q.push(format!("schema_version={v}"));
                }
                if let Some(r) = revision {
                    q.push(format!("revision={r}"));
                }
                let q = if q.is_empty() {
                    String::new()
                } else {
                    format!("?{}", q.join("&"))
                };
                Ok((
                    opts.output,
                    client.get(&format!("/v1/configs/{key}{q}")).await?,
                ))
            }
            .await
        }
        ConfigCmd::List {
            prefix,
            limit,
            opts,
        } => {
            async {
                let client = opts.client();
                let mut items = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let mut url = reqwest::Url::parse(&client.url("/v1/configs"))
                        .map_err(|e| ClientError::Input(e.to_string()))?;
                    url.query_pairs_mut()
                        .append_pair("prefix", &prefix)
                        .append_pair("limit", &limit.min(1000).to_string());
                    if let Some(a) = &after {
                        url.query_pairs_mut().append_pair("after", a);
                    }
                    let page = client.get(&url.as_str()[client.base.len()..]).await?;
                    items.extend(page["items"].as_array().cloned().unwrap_or_default());
                    match page["next"].as_str() {
                        Some(next) if items.len() < limit => after = Some(next.to_string()),
                        _ => break,
                    }
                }
                items.truncate(limit);
                if opts.output == Output::Table {
                    let mut t = Table::new();
                    t.set_header(META_FIELDS);
                    for i in &items {
                        t.add_row(META_FIELDS.map(|f| cell(&i[f])));
                    }
                    println!("{t}");
                    return Ok((Output::Json, Value::Null));
                }
                Ok((opts.output, Value::Array(items)))
            }
            .await
        }
        ConfigCmd::Delete {
            key,
            if_match,
            opts,
        } => {
            async {
                let client = opts.client();
                Ok((opts.output, client.delete_config(&key, if_match).await?))
            }
            .await
        }
    };
    finish(result)
}

fn finish(result: Result<(Output, Value), ClientError>) -> ExitCode {
    match result {
        Ok((_, Value::Null)) => ExitCode::SUCCESS,
        Ok((Output::Json, v)) => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        Ok((Output::Table, v)) => {
            print_meta(&v);
            ExitCode::SUCCESS
        }
        Err(e) => report(&e),
    }
}

pub async fn run_schema(cmd: SchemaCmd) -> ExitCode {
    let result = match cmd {
        SchemaCmd::Push {
            name,
            version,
            schema,
            plugin,
            force,
            check,
            opts,
        } => {
            async {
                let client = opts.client();
                let schema = read_file(&schema)?;
                let plugin = plugin.as_ref().map(read_file).transpose()?;
                let path = if check {
                    format!("/v1/schemas/{name}/versions/{version}/compatibility")
                } else if force {
                    format!("/v1/schemas/{name}/versions/{version}?force=true")
                } else {
                    format!("/v1/schemas/{name}/versions/{version}")
                };
                let method = if check {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::PUT
                };
                let v = client.upload_schema(method, &path, schema, plugin).await?;
                Ok((Output::Json, v))
            }
            .await
        }
        SchemaCmd::Migrate {
            name,
            to,
            dry_run,
            no_wait,
            opts,
        } => super::migrate::run(name, to, dry_run, no_wait, opts).await,
        SchemaCmd::Migrations { name, opts } => {
            async {
                let client = opts.client();
                let v = client
                    .get(&format!("/v1/schemas/{name}/migrations"))
                    .await?;
                Ok((Output::Json, v))
            }
            .await
        }
        SchemaCmd::Policy { name, writes, opts } => {
            async {
                let client = opts.client();
                let path = format!("/v1/schemas/{name}/policy");
                let v = match writes {
                    Some(w) => {
                        client
                            .send(
                                client
                                    .request(reqwest::Method::PUT, &path)
                                    .json(&serde_json::json!({ "writes": w })),
                            )
                            .await?
                    }
                    None => client.get(&path).await?,
                };
                Ok((Output::Json, v))
            }
            .await
        }
        SchemaCmd::List { opts } => {
            async {
                let client = opts.client();
                let v = client.get("/v1/schemas").await?;
                if opts.output == Output::Table {
                    let mut t = Table::new();
                    t.set_header(["name", "versions"]);
                    for s in v["schemas"].as_array().into_iter().flatten() {
                        t.add_row([cell(&s["name"]), cell(&s["versions"])]);
                    }
                    println!("{t}");
                    return Ok((Output::Json, Value::Null));
                }
                Ok((Output::Json, v))
            }
            .await
        }
        SchemaCmd::Show {
            name,
            version,
            opts,
        } => {
            async {
                let client = opts.client();
                let path = match version {
                    Some(v) => format!("/v1/schemas/{name}/versions/{v}"),
                    None => format!("/v1/schemas/{name}"),
                };
                Ok((Output::Json, client.get(&path).await?))
            }
            .await
        }
    };
    finish(result)
}

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Members, roles, leader, term, and each member's matched index and lag.
    Status {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Add a node: it must answer at both URLs, joins as a learner, catches up, and is then
    /// promoted (unless --learner). Refused with member_unreachable if it does not answer;
    /// left a learner (learner_not_caught_up) if it does not catch up within the leader's
    /// write timeout: promote it later.
    Add {
        node_id: u64,
        /// The node's API URL.
        #[arg(long)]
        api: String,
        /// The node's peer URL.
        #[arg(long)]
        peer: String,
        /// Keep it a learner (no vote).
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Make a learner a voter, once it answers and has caught up. Also finishes a change a
    /// dead leader left half-done that adds this node.
    Promote {
        node_id: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Remove a member (the leader too: the others elect a new one). Refused with
    /// quorum_at_risk when too few of the remaining voters answer. Also rolls back a change a
    /// dead leader left half-done that adds this node.
    Remove {
        node_id: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn print_cluster(v: &Value) {
    println!(
        "leader: {}   term: {}   last log index: {}",
        cell(&v["leader"]),
        cell(&v["term"]),
        cell(&v["last_log_index"])
    );
    let mut t = Table::new();
    t.set_header(["node", "role", "leader", "api", "peer", "matched", "lag"]);
    for m in v["members"].as_array().into_iter().flatten() {
        t.add_row([
            cell(&m["node_id"]),
            cell(&m["role"]),
            if m["leader"] == true {
                "*".into()
            } else {
                String::new()
            },
            cell(&m["api"]),
            cell(&m["peer"]),
            cell(&m["matched_index"]),
            cell(&m["lag"]),
        ]);
    }
    println!("{t}");
    let sets = v["voter_sets"].as_array().map_or(0, Vec::len);
    if sets > 1 {
        println!(
            "membership change under way: voters {} changing to {}",
            v["voter_sets"][0], v["voter_sets"][1]
        );
    }
    if v["membership_committed"] == false {
        println!(
            "the configuration at log index {} has not committed: no other membership change is accepted until it does (README: Running a cluster)",
            cell(&v["membership_index"])
        );
    }
}

pub async fn run_cluster(cmd: ClusterCmd) -> ExitCode {
    let (opts, result) = match cmd {
        ClusterCmd::Status { opts } => {
            let c = opts.client();
            let r = c.get("/v1/cluster").await;
            (opts, r)
        }
        ClusterCmd::Add {
            node_id,
            api,
            peer,
            learner,
            opts,
        } => {
            let c = opts.client();
            let body = serde_json::json!({"node_id": node_id, "api": api, "peer": peer, "voter": !learner});
            let r = c.post_json("/v1/cluster/members", &body).await;
            (opts, r)
        }
        ClusterCmd::Promote { node_id, opts } => {
            let c = opts.client();
            let r = c
                .post_json(
                    &format!("/v1/cluster/members/{node_id}/promote"),
                    &Value::Null,
                )
                .await;
            (opts, r)
        }
        ClusterCmd::Remove { node_id, opts } => {
            let c = opts.client();
            let r = c.delete(&format!("/v1/cluster/members/{node_id}")).await;
            (opts, r)
        }
    };
    match result {
        Ok(v) if opts.output == Output::Json => {
            print_json(&v);
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print_cluster(&v);
            ExitCode::SUCCESS
        }
        Err(e) => report(&e),
    }
}

/// Long-polls `/v1/watch` and prints each event as a JSON line; on a connection error or a 5xx
/// it retries from the next revision (nothing is missed or repeated), on any other error it
/// stops.
async fn watch(
    client: Client,
    prefix: String,
    from_revision: Option<u64>,
    schema: Option<String>,
    schema_version: Option<u32>,
) -> Result<(Output, Value), ClientError> {
    let mut next = from_revision;
    loop {
        let mut url = reqwest::Url::parse(&client.url("/v1/watch"))
            .map_err(|e| ClientError::Input(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("prefix", &prefix)
            .append_pair("wait", "30s");
        if let Some(n) = next {
            url.query_pairs_mut()
                .append_pair("from_revision", &n.to_string());
        }
        if let Some(s) = &schema {
            url.query_pairs_mut().append_pair("schema", s);
        }
        if let Some(v) = schema_version {
            url.query_pairs_mut()
                .append_pair("schema_version", &v.to_string());
        }
        match client.get(&url.as_str()[client.base.len()..]).await {
            Ok(page) => {
                for change in page["changes"].as_array().into_iter().flatten() {
                    for event in change["events"].as_array().into_iter().flatten() {
                        println!("{event}");
                    }
                }
                next = page["next_from_revision"].as_u64().or(next);
            }
            Err(ClientError::Unreachable { .. }) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await
            }
            Err(ClientError::Api { status, .. }) if status.is_server_error() => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Records whose object (key, schema/..., migration/..., settings/..., cluster) starts
    /// with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only changes made by this actor.
    #[arg(long = "by")]
    by: Option<String>,
    /// An action (config.update) or a family (config).
    #[arg(long)]
    action: Option<String>,
    /// From this time on (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run_audit(a: AuditArgs) -> ExitCode {
    let result = async {
        let client = a.opts.client();
        let mut url = reqwest::Url::parse(&client.url("/v1/audit"))
            .map_err(|e| ClientError::Input(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("prefix", &a.prefix)
            .append_pair("limit", &a.limit.clamp(1, 1000).to_string());
        for (name, value) in [
            ("actor", &a.by),
            ("action", &a.action),
            ("since", &a.since),
            ("until", &a.until),
        ] {
            if let Some(v) = value {
                url.query_pairs_mut().append_pair(name, v);
            }
        }
        let page = client.get(&url.as_str()[client.base.len()..]).await?;
        if a.opts.output == Output::Table {
            const FIELDS: [&str; 7] = [
                "seq",
                "at",
                "actor",
                "action",
                "object",
                "revision_after",
                "reason",
            ];
            let mut t = Table::new();
            t.set_header(FIELDS);
            for i in page["items"].as_array().into_iter().flatten() {
                t.add_row(FIELDS.map(|f| cell(&i[f])));
            }
            println!("{t}");
            return Ok((Output::Json, Value::Null));
        }
        Ok((a.opts.output, page))
    }
    .await;
    finish(result)
}

#[derive(clap::Args)]
pub struct TxnArgs {
    /// The transaction as JSON (`-` for stdin):
    /// {"conditions": [{"key", "revision"|"exists"|"pointer"+"equals"}],
    ///  "ops": [{"op": "put", "key", "schema", "schema_version", "value"} | {"op": "delete", "key"}]}
    file: PathBuf,
    #[command(flatten)]
    opts: ClientOpts,
}

pub async fn run_txn(a: TxnArgs) -> ExitCode {
    let result = async {
        let body = read_value(None, Some(a.file))?;
        let client = a.opts.client();
        Ok((Output::Json, client.post_json("/v1/txn", &body).await?))
    }
    .await;
    finish(result)
}
