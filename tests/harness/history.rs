//! Histories of client operations on a few keys, and the checks run on them.
//!
//! Each operation is recorded with the global sequence numbers of its invocation and of its
//! completion (one atomic counter shared by every client, so "A completed before B was
//! invoked" is `a.complete_seq < b.invoke_seq`) and with its outcome, as Jepsen records them:
//!
//! - `ok`: the server answered and the answer says what happened (written, read, precondition
//!   refused, not found);
//! - `fail`: it certainly did not happen (the connection was refused before anything was sent,
//!   or a read that failed: reads change nothing);
//! - `info`: unknown (a timeout, a 5xx, a reset after sending). It may have happened at any
//!   point after its invocation, or never. The client that issued it continues as a new
//!   process, so that a process never has two operations open.
//!
//! Checks: linearizability per key (linearizability is compositional, so keys are checked
//! separately) by stateright's `LinearizabilityTester` against `KeyModel`, a register that may
//! be absent; and, independently of that checker, that every acknowledged write is still
//! readable at the end unless a later one superseded it, and that a value's revision is the
//! same wherever it was observed.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// One operation on one key. Values are unique numbers, so a read tells which write it saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    Read,
    /// Unconditional PUT.
    Write {
        value: u64,
    },
    /// PUT with `If-Match` of the revision at which this client saw `expect`: since every
    /// write has a fresh value (hence a fresh revision), that is "if the value is `expect`".
    Cas {
        expect: u64,
        value: u64,
    },
    /// PUT with `If-None-Match: *`.
    Create {
        value: u64,
    },
    /// DELETE.
    Delete,
}

impl Op {
    /// The value this operation writes, if it writes one.
    pub fn written(&self) -> Option<u64> {
        match *self {
            Op::Write { value } | Op::Cas { value, .. } | Op::Create { value } => Some(value),
            Op::Read | Op::Delete => None,
        }
    }

    pub fn is_mutation(&self) -> bool {
        !matches!(self, Op::Read)
    }
}

/// What a completed operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Ret {
    /// A read: the value, or `None` for an absent key.
    Read { value: Option<u64> },
    /// A mutation that took effect.
    Done,
    /// A conditional write whose precondition did not hold, or a delete of an absent key.
    Refused,
}

/// The sequential specification of one key: a register that may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyModel(Option<u64>);

impl SequentialSpec for KeyModel {
    type Op = Op;
    type Ret = Ret;

    fn invoke(&mut self, op: &Op) -> Ret {
        match *op {
            Op::Read => Ret::Read { value: self.0 },
            Op::Write { value } => {
                self.0 = Some(value);
                Ret::Done
            }
            Op::Cas { expect, value } if self.0 == Some(expect) => {
                self.0 = Some(value);
                Ret::Done
            }
            Op::Create { value } if self.0.is_none() => {
                self.0 = Some(value);
                Ret::Done
            }
            Op::Delete if self.0.is_some() => {
                self.0 = None;
                Ret::Done
            }
            Op::Cas { .. } | Op::Create { .. } | Op::Delete => Ret::Refused,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// The server said what happened; `revision` is the one the reply carried, if any.
    Ok { ret: Ret, revision: Option<u64> },
    /// It certainly did not happen.
    Fail { why: String },
    /// Unknown: it may or may not have happened.
    Info { why: String },
}

/// One operation, invoked and completed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub process: u64,
    pub client: usize,
    /// The node the request was sent to.
    pub node: u64,
    pub key: String,
    pub op: Op,
    pub invoke_seq: u64,
    pub complete_seq: u64,
    /// Milliseconds since the start of the run.
    pub invoke_ms: f64,
    pub complete_ms: f64,
    pub outcome: Outcome,
}

impl Record {
    pub fn acknowledged_mutation(&self) -> bool {
        self.op.is_mutation() && matches!(self.outcome, Outcome::Ok { ret: Ret::Done, .. })
    }
}

/// The shared recorder: clients take sequence numbers from it and push records into it.
#[derive(Clone)]
pub struct History {
    seq: Arc<AtomicU64>,
    records: Arc<Mutex<Vec<Record>>>,
    start: Instant,
}

/// An invocation in progress (see `History::invoke`).
pub struct Invocation {
    seq: u64,
    ms: f64,
}

impl History {
    pub fn new(start: Instant) -> History {
        History {
            seq: Arc::default(),
            records: Arc::default(),
            start,
        }
    }

    pub fn invoke(&self) -> Invocation {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        Invocation {
            seq: self.seq.fetch_add(1, Ordering::SeqCst),
            ms,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn complete(
        &self,
        inv: Invocation,
        process: u64,
        client: usize,
        node: u64,
        key: &str,
        op: Op,
        outcome: Outcome,
    ) -> Record {
        let complete_seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let record = Record {
            process,
            client,
            node,
            key: key.to_string(),
            op,
            invoke_seq: inv.seq,
            complete_seq,
            invoke_ms: inv.ms,
            complete_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            outcome,
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        record
    }

    pub fn records(&self) -> Vec<Record> {
        let mut r = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        r.sort_by_key(|r| r.invoke_seq);
        r
    }
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub anomalies: Vec<String>,
    pub keys_checked: usize,
    pub ops_checked: usize,
    pub check_time: Duration,
}

/// Counts of operations per kind and outcome, for the summary.
pub fn tally(records: &[Record]) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for r in records {
        let kind = match r.op {
            Op::Read => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::Create { .. } => "create",
            Op::Delete => "delete",
        };
        let outcome = match &r.outcome {
            Outcome::Ok {
                ret: Ret::Refused, ..
            } => "refused",
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Info { .. } => "unknown",
        };
        *out.entry(kind.to_string())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    out
}

/// Runs every check on `records` (the final reads included). `budget` bounds the
/// linearizability search of one key: a key it cannot decide in time is an anomaly too
/// (an undecided history proves nothing).
pub fn check(records: &[Record], budget: Duration) -> Verdict {
    check_with(records, budget, true)
}

/// [`check`], with the one-revision-per-value check only if `one_revision_per_value`: a
/// storage migration rewrites a value at a new revision (and a new schema version), so runs
/// with migrations leave it out (and issue no compare-and-set, whose `If-Match` is a revision).
pub fn check_with(records: &[Record], budget: Duration, one_revision_per_value: bool) -> Verdict {
    let started = Instant::now();
    let mut verdict = Verdict::default();
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_key.entry(&r.key).or_default().push(r);
    }
    verdict.keys_checked = by_key.len();
    verdict.ops_checked = records
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Fail { .. }))
        .count();

    // Linearizability, one key per thread (the search recurses once per operation).
    let mut running = Vec::new();
    for (key, ops) in &by_key {
        let key = key.to_string();
        let ops: Vec<Record> = ops.iter().map(|r| (*r).clone()).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("check {key}"))
            .stack_size(512 << 20)
            .spawn(move || {
                let _ = tx.send(linearizable(&ops));
            })
            .expect("spawn a checker thread");
        running.push((key, rx));
    }
    for (key, rx) in running {
        match rx.recv_timeout(budget) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => verdict
                .anomalies
                .push(format!("key {key}: not linearizable: {why}")),
            Err(_) => verdict.anomalies.push(format!(
                "key {key}: the linearizability checker did not decide within {budget:?}"
            )),
        }
    }

    verdict.anomalies.extend(lost_acknowledged_writes(&by_key));
    if one_revision_per_value {
        verdict.anomalies.extend(revisions_disagree(records));
    }
    verdict.check_time = started.elapsed();
    verdict
}

/// Checks one key. Unknown operations stay open forever, and the search tries each of them at
/// every point, which explodes with many of them (a partitioned follower yields dozens). So
/// first check without the unknown writes whose value nobody ever read: a linearization without
/// them is one where they never happened, which is allowed for an unknown operation, so a pass
/// is a pass of the whole history. Only if that fails is the whole history searched.
fn linearizable(ops: &[Record]) -> Result<(), String> {
    let observed: std::collections::HashSet<u64> = ops
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::Ok {
                ret: Ret::Read { value: Some(v) },
                ..
            } => Some(v),
            _ => None,
        })
        .collect();
    let pruned: Vec<Record> = ops
        .iter()
        .filter(|r| {
            !(matches!(r.outcome, Outcome::Info { .. })
                && r.op.written().is_some_and(|v| !observed.contains(&v)))
        })
        .cloned()
        .collect();
    if pruned.len() < ops.len() && search(&pruned).is_ok() {
        return Ok(());
    }
    search(ops)
}

/// Feeds one key's operations to stateright's tester in sequence order: failed operations are
/// left out, unknown ones are invoked and never return.
fn search(ops: &[Record]) -> Result<(), String> {
    let mut events: Vec<(u64, bool, &Record)> = Vec::new();
    for r in ops {
        match &r.outcome {
            Outcome::Fail { .. } => {}
            Outcome::Info { .. } => events.push((r.invoke_seq, true, r)),
            Outcome::Ok { .. } => {
                events.push((r.invoke_seq, true, r));
                events.push((r.complete_seq, false, r));
            }
        }
    }
    events.sort_by_key(|e| e.0);
    let mut tester = LinearizabilityTester::new(KeyModel::default());
    for (_, invoke, r) in events {
        let step = if invoke {
            tester.on_invoke(r.process, r.op).map(|_| ())
        } else {
            let Outcome::Ok { ret, .. } = r.outcome else {
                unreachable!("only ok operations return")
            };
            tester.on_return(r.process, ret).map(|_| ())
        };
        step.map_err(|e| format!("malformed history: {e}"))?;
    }
    if tester.serialized_history().is_some() {
        Ok(())
    } else {
        Err(format!(
            "no linearization of its {} operations exists",
            ops.len()
        ))
    }
}

/// Every acknowledged mutation must be reflected by the final read (the last record of each
/// key, invoked after every client stopped): the final value must come from a write that no
/// acknowledged mutation invoked after its completion superseded; an absent key must come from
/// such a delete.
fn lost_acknowledged_writes(by_key: &BTreeMap<&str, Vec<&Record>>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, ops) in by_key {
        let Some(last) = ops.iter().max_by_key(|r| r.invoke_seq) else {
            continue;
        };
        let Outcome::Ok {
            ret: Ret::Read { value: fin },
            ..
        } = last.outcome
        else {
            out.push(format!("key {key}: no final read"));
            continue;
        };
        let acked: Vec<&&Record> = ops
            .iter()
            .filter(|r| r.acknowledged_mutation() && r.invoke_seq < last.invoke_seq)
            .collect();
        // Completion of a possible source of the final state (unknown: never completed).
        let completes = |r: &Record| match r.outcome {
            Outcome::Info { .. } => u64::MAX,
            _ => r.complete_seq,
        };
        let superseded = |source: &Record| {
            acked
                .iter()
                .find(|a| a.invoke_seq > completes(source))
                .map(|a| (**a).clone())
        };
        match fin {
            Some(v) => {
                let Some(source) = ops.iter().find(|r| r.op.written() == Some(v)) else {
                    out.push(format!(
                        "key {key}: the final value {v} was never written to it"
                    ));
                    continue;
                };
                match &source.outcome {
                    Outcome::Fail { why } => out.push(format!(
                        "key {key}: the final value {v} comes from a write that failed ({why})"
                    )),
                    Outcome::Ok {
                        ret: Ret::Refused, ..
                    } => out.push(format!(
                        "key {key}: the final value {v} comes from a write that was refused"
                    )),
                    _ => {
                        if let Some(a) = superseded(source) {
                            out.push(format!(
                                "key {key}: acknowledged {:?} (process {}, completed at seq {}) \
                                 is lost: the final value {v} is older",
                                a.op, a.process, a.complete_seq
                            ));
                        }
                    }
                }
            }
            None => {
                if acked.is_empty() {
                    continue;
                }
                let deletes: Vec<&&Record> = ops
                    .iter()
                    .filter(|r| {
                        r.op == Op::Delete
                            && matches!(
                                r.outcome,
                                Outcome::Info { .. } | Outcome::Ok { ret: Ret::Done, .. }
                            )
                    })
                    .collect();
                if !deletes.iter().any(|d| superseded(d).is_none()) {
                    let last_ack = acked.iter().max_by_key(|a| a.complete_seq).expect("some");
                    out.push(format!(
                        "key {key}: acknowledged {:?} (process {}) is lost: the key is absent \
                         at the end and no delete explains it",
                        last_ack.op, last_ack.process
                    ));
                }
            }
        }
    }
    out
}

/// A value is written once, so every observation of it must carry the same revision.
fn revisions_disagree(records: &[Record]) -> Vec<String> {
    let mut seen: HashMap<u64, (u64, &Record)> = HashMap::new();
    let mut out = Vec::new();
    for r in records {
        let Outcome::Ok {
            ret,
            revision: Some(rev),
        } = r.outcome
        else {
            continue;
        };
        let value = match (ret, r.op.written()) {
            (Ret::Read { value: Some(v) }, _) => v,
            (Ret::Done, Some(v)) => v,
            _ => continue,
        };
        match seen.get(&value) {
            None => {
                seen.insert(value, (rev, r));
            }
            Some((other, first)) if *other != rev => out.push(format!(
                "value {value} of key {} was seen at revision {other} (process {}, {:?}) and at \
                 revision {rev} (process {}, {:?})",
                r.key, first.process, first.op, r.process, r.op
            )),
            Some(_) => {}
        }
    }
    out
}

/// Writes the records as JSON lines.
pub fn save(records: &[Record], path: &Path) -> Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
