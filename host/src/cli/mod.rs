//! The command line: `serve`, `dev`, the client subcommands over the HTTP API, the offline
//! `plugin check`. The benchmark is a binary of its own (`scarab-bench`, host/bench).
//!
//! Owns: flags, output formats and exit codes. Does not own: any server behaviour (client
//! commands only speak HTTP, through `scarab-client` and the API's own wire types; `serve`
//! and `dev` call [`scarab::run`]).
//!
//! Client commands: `configs` (and `watch`), `schemas` (and `migrate`), `txn`, `audit`,
//! `cluster`; what they print and their exit code: `output`.

mod agent;
mod audit;
mod auth;
mod backup;
mod cert;
mod cluster;
mod configs;
mod dev;
mod examples;
mod export;
mod formats;
mod import;
mod migrate;
mod output;
mod plugin;
mod schemas;
mod settings;
mod txn;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use scarab::config::{NodeConfig, file_args};
use scarab::{Listeners, run};

#[derive(Parser)]
#[command(
    name = "scarab",
    version,
    about = "A replicated configuration service with WebAssembly validation"
)]
#[command(args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where client subcommands send requests, and how they print answers.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientOpts {
    /// Scarab API URL; several, comma-separated, to fail over between a cluster's nodes.
    ///
    /// A request goes to the node that last answered, and moves on to the next only when
    /// its outcome is certain: the node could not be reached, or answered that nothing was
    /// applied (no_leader, overloaded). A watch reconnects across them.
    #[arg(
        long,
        short = 's',
        env = "SCARAB_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub server: String,
    /// Bearer token of the principal to act as (nodes with --auth require one).
    #[arg(long, env = "SCARAB_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: `table` for people, `json` or `yaml` for programs (errors too, as
    /// JSON on stderr).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Who the change is made for (X-Scarab-Actor): the actor itself with authentication
    /// off; with it on, recorded next to the principal only if it holds auth:impersonate.
    #[arg(long, env = "SCARAB_ACTOR", global = true)]
    pub actor: Option<String>,
    /// Why (sent as X-Scarab-Reason; kept in the audit trail).
    #[arg(long, global = true)]
    pub reason: Option<String>,
    /// The CA (PEM) that an https server's certificate must chain to (only it is trusted).
    #[arg(long, env = "SCARAB_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// A client certificate (PEM) to present, with --key (its subject CN names the client).
    // Ids of their own: `key` is a positional argument of `config put|get|...`.
    #[arg(
        id = "client_cert",
        long = "cert",
        env = "SCARAB_CERT",
        global = true,
        requires = "client_key"
    )]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(
        id = "client_key",
        long = "key",
        env = "SCARAB_KEY",
        global = true,
        requires = "client_cert"
    )]
    pub key: Option<PathBuf>,
}

impl ClientOpts {
    /// The client of `--server`, making changes as `--actor` for `--reason`.
    pub fn client(&self) -> Result<scarab_client::Client, scarab_client::Error> {
        let mut builder = scarab_client::Client::builder().endpoints(
            self.server
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty()),
        );
        if let Some(token) = &self.token {
            builder = builder.token(token);
        }
        if let Some(actor) = &self.actor {
            builder = builder.actor(actor);
        }
        if let Some(reason) = &self.reason {
            builder = builder.reason(reason);
        }
        if let Some(ca) = &self.cacert {
            builder = builder.ca_cert_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            builder = builder.identity_files(cert, key);
        }
        builder.build()
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The server's JSON, as it sent it.
    Json,
    /// The same document as YAML.
    Yaml,
    /// Tables for people.
    Table,
}

impl Output {
    /// JSON or YAML: the document, not a table.
    pub fn structured(self) -> bool {
        self != Output::Table
    }
}

#[derive(Subcommand)]
// Parsed once at start: the size of the `serve` variant (all of a node's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a node.
    Serve {
        /// A TOML file with the same settings as the flags (flags and SCARAB_* win).
        #[arg(long, env = "SCARAB_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        node: NodeConfig,
    },
    /// Run a local development node with the example schemas and plugins registered.
    Dev(dev::DevArgs),
    /// Read and write configs.
    #[command(subcommand)]
    Config(configs::ConfigCmd),
    /// Register and inspect schema versions.
    #[command(subcommand)]
    Schema(schemas::SchemaCmd),
    /// Read the audit trail (newest first).
    Audit(audit::AuditArgs),
    /// How much history and audit trail the cluster keeps; change it.
    #[command(subcommand)]
    Settings(settings::SettingsCmd),
    /// Apply a transaction from a JSON file: conditions, then puts and deletes, all at one
    /// revision or none.
    Txn(txn::TxnArgs),
    /// Who you are; users, roles and tokens.
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Inspect and change cluster membership.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Work with plugins offline.
    #[command(subcommand)]
    Plugin(plugin::PluginCmd),
    /// Make a development CA and node/client certificates (TLS on both ports).
    #[command(subcommand)]
    Cert(cert::CertCmd),
    /// Write configs from static files (JSON, TOML, YAML, .env) or environment variables,
    /// each validated; `--dry-run` only validates.
    Import(import::ImportArgs),
    /// Write the configs under a prefix as files (JSON, TOML, YAML or .env).
    Export(export::ExportArgs),
    /// Take a consistent backup of the whole state, or check one offline.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Make the data directory of a new cluster's first node from a backup.
    Restore(backup::RestoreArgs),
    /// Keep a directory of files (and a local endpoint) as a mirror of configs, from a
    /// last-known-good cache that outlives the cluster: a sidecar for services that read files.
    Agent(agent::AgentArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
        scarab completion bash > ~/.local/share/bash-completion/completions/scarab\n  \
        scarab completion zsh > \"${fpath[1]}/_scarab\"\n  \
        scarab completion fish > ~/.config/fish/completions/scarab.fish")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Parses the process arguments (with a `--config` file expanded) and runs the command.
pub async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    if let Err(e) = expand_config_file(&mut args) {
        output::print_error(&e);
        return ExitCode::from(2);
    }
    let matches = examples::add(Cli::command()).get_matches_from(args);
    output::set_format(output_of(&matches).unwrap_or(Output::Table));
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Serve { node, .. } => serve(node).await,
        Command::Dev(args) => dev::run_dev(args).await,
        Command::Config(cmd) => output::finish(configs::run(cmd).await),
        Command::Schema(cmd) => output::finish(schemas::run(cmd).await),
        Command::Cluster(cmd) => output::finish(cluster::run(cmd).await),
        Command::Auth(cmd) => output::finish(auth::run(cmd).await),
        Command::Audit(args) => output::finish(audit::run(args).await),
        Command::Settings(cmd) => output::finish(settings::run(cmd).await),
        Command::Txn(args) => output::finish(txn::run(args).await),
        // Plugins run here, on this thread: off the runtime's workers (see
        // `SchemaRegistry::validate_async`).
        Command::Plugin(cmd) => tokio::task::block_in_place(|| plugin::run(cmd)),
        Command::Cert(cmd) => output::finish(cert::run(cmd)),
        Command::Import(args) => output::finish(import::run(args).await),
        Command::Export(args) => output::finish(export::run(args).await),
        Command::Agent(args) => output::finish(agent::run(args).await),
        Command::Backup(cmd) => output::finish(backup::run(cmd).await),
        Command::Restore(args) => output::finish(backup::restore(args).await),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut examples::add(Cli::command()),
                "scarab",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// The `--output` of the subcommand that runs (a global flag: the innermost one has it).
fn output_of(matches: &clap::ArgMatches) -> Option<Output> {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    m.try_get_one::<Output>("output").ok().flatten().copied()
}

/// `serve --config FILE`: the file's settings go in as flags before the real ones, so that
/// the real flags override them.
fn expand_config_file(args: &mut Vec<String>) -> Result<(), scarab::config::ConfigError> {
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(());
    }
    let mut path = std::env::var_os("SCARAB_CONFIG").map(PathBuf::from);
    for (i, a) in args.iter().enumerate() {
        if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.into());
        } else if a == "--config" {
            path = args.get(i + 1).map(PathBuf::from);
        }
    }
    if let Some(path) = path {
        let extra = file_args(&path)?;
        args.splice(2..2, extra);
    }
    Ok(())
}

async fn serve(node: NodeConfig) -> ExitCode {
    if let Err(e) = node.validate() {
        output::print_error(&e);
        return ExitCode::from(2);
    }
    let api = match tokio::net::TcpListener::bind(node.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", node.listen);
            return ExitCode::from(2);
        }
    };
    let peer = match node.peer_listen {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: cannot listen on {addr} (--peer-listen): {e}");
                return ExitCode::from(2);
            }
        },
    };
    let reload = scarab::Reload::new();
    reload_on_sighup(reload.clone());
    let listeners = Listeners { api, peer, reload };
    match run(node, listeners, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Triggers `reload` (certificates and keys read again from disk) on every SIGHUP.
fn reload_on_sighup(reload: scarab::Reload) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading TLS certificates");
                        reload.trigger();
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: certificates will not reload")
            }
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every subcommand's arguments are unique and consistent (clap checks them only when a
    /// subcommand is used, in debug builds).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_tls_flags_are_global() {
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "scarab", "config", "get", "a/b", "--cacert", "ca.pem", "--cert", "c.pem", "--key",
            "k.pem",
        ])
        .unwrap();
        let super::Command::Config(super::configs::ConfigCmd::Get { opts, key, .. }) = cli.command
        else {
            panic!("not config get");
        };
        assert_eq!(key, "a/b");
        assert_eq!(opts.cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(opts.key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(opts.cacert.as_deref(), Some(std::path::Path::new("ca.pem")));
    }
}
