//! The `scarab` binary: parses flags, sets up logging and signals, then hands over to the
//! command line (`cli`), which runs a node through the library or speaks to one over HTTP.

mod cli;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // A node (and the agent, a long-running sidecar) logs what it does; a one-shot command
    // prints its answer and logs only warnings.
    let long_running = matches!(
        args.get(1).map(String::as_str),
        Some("serve" | "dev" | "agent")
    );
    let level = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        format!("{level},openraft=warn,wasmtime=warn,cranelift=warn,fjall=warn,lsm_tree=warn")
            .into()
    });
    if !long_running {
        // `scarab config list | head`: a closed pipe ends a one-shot command quietly, as it
        // does `cat` (Rust ignores SIGPIPE, and `println!` then panics). A node keeps
        // ignoring it: a peer that closes a socket must not kill it.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match scarab::config::log_format_of(&args) {
        // One JSON object per line, with the request span's fields (its id) in each.
        scarab::config::LogFormat::Json => logs.json().with_current_span(true).init(),
        scarab::config::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(cli::main())
}
