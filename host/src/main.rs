//! The `scarab` binary: parses flags, sets up logging and signals, then hands over to the
//! command line (`cli`), which runs a node through the library or speaks to one over HTTP.

mod cli;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,openraft=warn,wasmtime=warn,cranelift=warn,fjall=warn,lsm_tree=warn".into()
    });
    let args: Vec<String> = std::env::args().collect();
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
