//! The nemesis: a fault schedule drawn from a seed, and its execution against a `Cluster`.
//!
//! A schedule is a list of steps; a step applies one or more faults at once, holds them, heals
//! them all, then leaves the cluster alone for a quiet period. Targets are abstract ("the
//! leader", "node 3") and resolved when the step starts, so one seed gives the same schedule
//! on every run; what the leader is at that moment is up to the cluster, and the resolved
//! targets are recorded in the applied log beside the schedule.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::proxy::NodeId;

/// Whom a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The node the cluster agrees is the leader when the step starts.
    Leader,
    /// A fixed node.
    Node(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9`, restarted (same data directory) when the step heals.
    Kill { target: Target },
    /// SIGSTOP, SIGCONT when the step heals.
    Pause { target: Target },
    /// Cut every link between the target and the other nodes.
    Isolate { target: Target },
    /// Cut a minority of `size` nodes (the first one `first`) from the majority.
    Minority { first: Target, size: usize },
    /// Delay every chunk on the target's links by `delay_ms`.
    Slow { target: Target, delay_ms: u64 },
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Isolate { .. } => "isolate",
            Fault::Minority { .. } => "minority",
            Fault::Slow { .. } => "slow",
        }
    }

    /// Whether the fault takes its nodes out of the majority (rather than slowing them).
    fn disrupts(&self) -> bool {
        !matches!(self, Fault::Slow { .. })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub faults: Vec<Fault>,
    pub hold_ms: u64,
    pub quiet_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    pub nodes: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The steps that fill `duration`, drawn from `seed`. A step never takes more nodes out
    /// than a minority, so that the cluster can make progress between... and during faults.
    pub fn generate(seed: u64, nodes: u64, duration: Duration) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ nodes.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let minority = ((nodes - 1) / 2) as usize;
        let mut steps = Vec::new();
        let mut t = 0u64;
        let total = duration.as_millis() as u64;
        while t < total {
            let mut faults = vec![one_fault(&mut rng, nodes, minority)];
            // A combination now and then: a second fault at the same time.
            if rng.random_bool(0.25) {
                let second = one_fault(&mut rng, nodes, minority);
                let disrupting: usize = faults
                    .iter()
                    .chain(std::iter::once(&second))
                    .filter(|f| f.disrupts())
                    .map(|f| match f {
                        Fault::Minority { size, .. } => *size,
                        _ => 1,
                    })
                    .sum();
                if disrupting <= minority {
                    faults.push(second);
                }
            }
            let hold_ms = rng.random_range(800..4000);
            let quiet_ms = rng.random_range(300..2000);
            t += hold_ms + quiet_ms;
            steps.push(Step {
                faults,
                hold_ms,
                quiet_ms,
            });
        }
        Schedule { seed, nodes, steps }
    }

    /// How many faults of each kind the schedule holds.
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut out = std::collections::BTreeMap::new();
        for f in self.steps.iter().flat_map(|s| &s.faults) {
            *out.entry(f.name()).or_default() += 1;
        }
        out
    }
}

fn target(rng: &mut StdRng, nodes: u64) -> Target {
    if rng.random_bool(0.5) {
        Target::Leader
    } else {
        Target::Node(rng.random_range(1..=nodes))
    }
}

fn one_fault(rng: &mut StdRng, nodes: u64, minority: usize) -> Fault {
    match rng.random_range(0..100) {
        0..30 => Fault::Kill {
            target: target(rng, nodes),
        },
        30..50 => Fault::Pause {
            target: target(rng, nodes),
        },
        50..70 => Fault::Isolate {
            target: target(rng, nodes),
        },
        70..85 => Fault::Minority {
            first: target(rng, nodes),
            size: minority,
        },
        _ => Fault::Slow {
            target: target(rng, nodes),
            delay_ms: rng.random_range(10..150),
        },
    }
}

/// A fault as it was applied: when, and to which nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Applied {
    pub step: usize,
    pub fault: Fault,
    pub nodes: Vec<NodeId>,
    pub at_ms: f64,
    pub healed_ms: Option<f64>,
    /// Why it was not applied (e.g. its node was already hit by the step's other fault).
    pub skipped: Option<String>,
}

/// Runs `schedule` against `cluster` until it ends or `stop` is cancelled, then heals
/// everything. Returns the applied log.
pub async fn run(
    cluster: &mut Cluster,
    schedule: &Schedule,
    start: Instant,
    stop: CancellationToken,
) -> Result<Vec<Applied>> {
    let ms = || start.elapsed().as_secs_f64() * 1000.0;
    let ids = cluster.ids();
    let mut rng = StdRng::seed_from_u64(schedule.seed.rotate_left(17));
    let mut applied: Vec<Applied> = Vec::new();
    for (i, step) in schedule.steps.iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        let mut hit: BTreeSet<NodeId> = BTreeSet::new();
        let mut killed = Vec::new();
        let mut paused = Vec::new();
        let first_of_step = applied.len();
        for fault in &step.faults {
            let resolve = |t: Target, leader: Option<NodeId>, rng: &mut StdRng| match t {
                Target::Node(n) => n,
                Target::Leader => leader.unwrap_or_else(|| ids[rng.random_range(0..ids.len())]),
            };
            let leader = current_leader(cluster).await;
            let mut record = Applied {
                step: i,
                fault: fault.clone(),
                nodes: Vec::new(),
                at_ms: ms(),
                healed_ms: None,
                skipped: None,
            };
            let nodes: Vec<NodeId> = match fault {
                Fault::Kill { target }
                | Fault::Pause { target }
                | Fault::Isolate { target }
                | Fault::Slow { target, .. } => vec![resolve(*target, leader, &mut rng)],
                Fault::Minority { first, size } => {
                    let mut set = vec![resolve(*first, leader, &mut rng)];
                    while set.len() < *size {
                        let n = ids[rng.random_range(0..ids.len())];
                        if !set.contains(&n) {
                            set.push(n);
                        }
                    }
                    set
                }
            };
            record.nodes = nodes.clone();
            if nodes.iter().any(|n| hit.contains(n)) {
                record.skipped = Some("a node of it is already hit in this step".into());
                applied.push(record);
                continue;
            }
            hit.extend(nodes.iter().copied());
            let others: Vec<NodeId> = ids.iter().copied().filter(|n| !nodes.contains(n)).collect();
            let outcome = match fault {
                Fault::Kill { .. } => {
                    let r = cluster.kill(nodes[0]).await.map(|_| ());
                    killed.push(nodes[0]);
                    r
                }
                Fault::Pause { .. } => {
                    let r = cluster.pause(nodes[0]);
                    if r.is_ok() {
                        paused.push(nodes[0]);
                    }
                    r
                }
                Fault::Isolate { .. } | Fault::Minority { .. } => {
                    cluster.partition(&nodes, &others);
                    Ok(())
                }
                Fault::Slow { delay_ms, .. } => {
                    cluster
                        .net()
                        .slow(&nodes, &others, Duration::from_millis(*delay_ms));
                    Ok(())
                }
            };
            if let Err(e) = outcome {
                record.skipped = Some(format!("{e:#}"));
            }
            eprintln!(
                "nemesis {:>8.0} ms: step {i}: {} {:?}{}",
                record.at_ms,
                fault.name(),
                record.nodes,
                record
                    .skipped
                    .as_deref()
                    .map(|s| format!(" (skipped: {s})"))
                    .unwrap_or_default()
            );
            applied.push(record);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(step.hold_ms)) => {}
            _ = stop.cancelled() => {}
        }
        heal(cluster, &paused, &killed).await?;
        let healed = ms();
        for a in &mut applied[first_of_step..] {
            if a.skipped.is_none() {
                a.healed_ms = Some(healed);
            }
        }
        eprintln!("nemesis {healed:>8.0} ms: step {i} healed");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(step.quiet_ms)) => {}
            _ = stop.cancelled() => {}
        }
    }
    Ok(applied)
}

/// Resumes the paused nodes, restores every link, restarts the killed nodes.
async fn heal(cluster: &mut Cluster, paused: &[NodeId], killed: &[NodeId]) -> Result<()> {
    for &n in paused {
        cluster.resume(n)?;
    }
    cluster.heal();
    for &n in killed {
        cluster.restart(n).await?;
    }
    Ok(())
}

/// The leader most running nodes report, if any answers.
async fn current_leader(cluster: &mut Cluster) -> Option<NodeId> {
    let mut votes: std::collections::BTreeMap<NodeId, usize> = Default::default();
    for id in cluster.running() {
        let client = cluster.api(id).typed_within(Duration::from_millis(500));
        if let Ok(status) = client.status().await
            && let Some(l) = status.leader
        {
            *votes.entry(l).or_default() += 1;
        }
    }
    votes.into_iter().max_by_key(|(_, v)| *v).map(|(l, _)| l)
}
