//! The load generator: `c` closed-loop clients sending one kind of request over the keys for
//! a duration, each recording its latencies; the figures are their sum.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One kind of request of a workload, over key indexes (Scarab's in `workload`, etcd's in
/// `versus`). Shared by the clients of a load: built once, with everything a request needs
/// prepared beforehand, so that sending one allocates only what the HTTP client does.
pub trait Op: Send + Sync + 'static {
    /// Sends the request of key index `k`; whether it succeeded (a 2xx, its body read).
    fn send(&self, k: usize) -> impl Future<Output = bool> + Send;
}

/// The measurements of one load.
pub struct Figures {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of every request (failed ones too), in nanoseconds.
    pub hist: Histogram<u64>,
}

impl Figures {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q`, in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1e6
    }

    /// One line of the report: `name` at concurrency `c`, sent `via` where.
    pub fn line(&self, name: &str, c: usize, via: &str) -> String {
        format!(
            "{name:<4} c={c:<3} {:>9.0} ops/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} ops, {} errors)  via {via}",
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.ops,
            self.errors
        )
    }
}

/// The figures of one load, whichever generator ran it (this one or `wrk`).
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Summary {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

impl From<&Figures> for Summary {
    fn from(f: &Figures) -> Self {
        Self {
            ops: f.ops,
            errors: f.errors,
            elapsed: f.elapsed,
            p50_ms: f.ms(0.5),
            p99_ms: f.ms(0.99),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// `c` closed-loop clients sending `op`'s requests for `duration`, client `t` over key indexes
/// `t`, `t + c`, `t + 2c`, … modulo `keys`.
pub async fn load<O: Op>(c: usize, duration: Duration, keys: usize, op: Arc<O>) -> Figures {
    let started = Instant::now();
    let stop = started + duration;
    let keys = keys.max(1);
    let mut tasks = Vec::with_capacity(c);
    for t in 0..c {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut i = t;
            while Instant::now() < stop {
                let begin = Instant::now();
                let ok = op.send(i % keys).await;
                let _ = hist.record(begin.elapsed().as_nanos() as u64);
                if ok {
                    ops += 1
                } else {
                    errors += 1
                }
                i += c;
            }
            (hist, ops, errors)
        }));
    }
    let mut all = histogram();
    let (mut ops, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await.expect("a load client panicked");
        all.add(h).expect("histograms of the same bounds");
        ops += o;
        errors += e;
    }
    Figures {
        ops,
        errors,
        elapsed: started.elapsed(),
        hist: all,
    }
}
