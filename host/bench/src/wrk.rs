//! The external load generator: Debian's `wrk` (`apt-get install wrk`), one thread, `c`
//! connections, each sending the prepared requests of a workload in turn.
//!
//! The in-process generator (`load.rs`) sends every request through reqwest on the same two
//! cores as the server, and at c=64 takes more CPU per request than the server it measures
//! (about 45 µs, BENCHMARKS.md), so a ratio between two servers measured with it understates
//! the faster one. wrk spends a few µs per request in C, with the requests formatted once
//! (`init` in the Lua script below), so the figures measure the servers. It does not check
//! certificates, so it takes the TLS runs' self-signed CA as it is.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::load::Summary;

/// One request of a workload.
pub struct Request {
    pub method: &'static str,
    /// Path and query, e.g. `/v1/configs/bench/k1?consistency=stale`.
    pub path: String,
    /// A compact JSON body (no tab or newline), if any.
    pub body: Option<String>,
}

/// What wrk sends: to `base` (scheme, host and port), these headers on every request, and the
/// requests in turn.
pub struct Target {
    pub base: String,
    pub headers: Vec<(String, String)>,
    pub requests: Vec<Request>,
}

/// Reads the requests file (one `METHOD\tPATH\tBODY` per line, then the headers as
/// `NAME\tVALUE` lines after a line `--`), formats every request once, and sends them in turn;
/// `done` prints the figures as one JSON line.
const SCRIPT: &str = r#"
local requests = {}
local n = 0

function init(args)
  local headers = {}
  local lines = {}
  local in_headers = false
  for line in io.lines(args[1]) do
    if line == "--" then
      in_headers = true
    elseif in_headers then
      local name, value = line:match("^([^\t]+)\t(.*)$")
      headers[name] = value
    else
      table.insert(lines, line)
    end
  end
  for _, line in ipairs(lines) do
    local method, path, body = line:match("^(%S+)\t(%S+)\t(.*)$")
    if body == "" then body = nil end
    -- wrk.format adds Host and Content-Length to the table it is given: one per request.
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    table.insert(requests, wrk.format(method, path, h, body))
  end
  n = math.random(#requests) - 1
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "SCARAB-WRK {\"requests\":%d,\"duration_us\":%d,\"status_errors\":%d,\"io_errors\":%d,\"p50_us\":%d,\"p99_us\":%d}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

#[derive(Deserialize)]
struct Done {
    requests: u64,
    duration_us: u64,
    status_errors: u64,
    io_errors: u64,
    p50_us: u64,
    p99_us: u64,
}

/// Whether `wrk` runs here.
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| !o.stdout.is_empty() || !o.stderr.is_empty())
}

/// Runs wrk with `c` connections for `duration` against `target`; its script and requests
/// go to `dir`.
pub async fn run(target: &Target, c: usize, duration: Duration, dir: &Path) -> Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let script = dir.join("scarab-bench.lua");
    std::fs::write(&script, SCRIPT).context("writing the wrk script")?;
    let requests = dir.join("wrk-requests.tsv");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&requests).context("writing the wrk requests")?,
    );
    for r in &target.requests {
        let body = r.body.as_deref().unwrap_or("");
        if body.contains(['\t', '\n']) || r.path.contains(char::is_whitespace) {
            bail!(
                "a wrk request must not contain tabs or newlines: {}",
                r.path
            );
        }
        writeln!(file, "{}\t{}\t{body}", r.method, r.path)?;
    }
    writeln!(file, "--")?;
    for (name, value) in &target.headers {
        writeln!(file, "{name}\t{value}")?;
    }
    file.flush()?;
    drop(file);
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{c}")])
        // wrk takes whole seconds (s, m, h).
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["--timeout", "30s", "-s"])
        .arg(&script)
        .arg(&target.base)
        .arg("--")
        .arg(&requests)
        .output()
        .await
        .context("cannot run wrk (apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("SCARAB-WRK ")) else {
        bail!(
            "wrk gave no figures ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let done: Done = serde_json::from_str(line).with_context(|| line.to_string())?;
    Ok(Summary {
        ops: done.requests.saturating_sub(done.status_errors),
        errors: done.status_errors + done.io_errors,
        elapsed: Duration::from_micros(done.duration_us.max(1)),
        p50_ms: done.p50_us as f64 / 1e3,
        p99_ms: done.p99_us as f64 / 1e3,
    })
}
