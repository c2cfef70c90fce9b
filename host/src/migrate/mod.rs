//! Storage migrations: rewriting every config of a schema to one version, in batches through
//! Raft, on whichever node leads. It owns planning a migration (what is left to convert), the
//! worker that drives running migrations, and the dry run. It does not own conversion (the
//! chain of migrators is [`crate::schema`]'s) nor how a batch is applied ([`crate::store`]).
//!
//! A migration is a record in the replicated state (`StartMigration`), so it survives a crash
//! or a leader change: the worker of the new leader carries on. Each batch is one Raft command
//! of compare-and-set writes on the revisions the values were converted from, so a concurrent
//! update is never overwritten; it is picked up by the next pass instead. A pass that finds
//! nothing left but keys that already failed at their current revision finishes the migration.
//! See DESIGN.md beside this file.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::schema::{SchemaError, SchemaRegistry};
use crate::store::{
    ConfigEntry, Context, FinishMigration, MigrateBatch, MigrationFailure, MigrationRecord,
    MigrationStatus, MigrationWrite, Proposal, StateStore,
};

/// Configs per batch (one Raft command).
pub const BATCH: usize = 64;
/// Converted value bytes per batch, at most about (a larger single value travels alone).
/// Defined in `config`, because the peer body bound depends on it.
pub use crate::config::MIGRATION_BATCH_BYTES as BATCH_BYTES;

/// Why a pass of the migration worker stopped early (it retries).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    Propose(#[from] crate::propose::ProposeError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// How often an idle worker looks for running migrations.
const IDLE: Duration = Duration::from_millis(500);

/// The configs a migration to `target` still has to convert: those not at `target`, except
/// the keys that already failed at their current revision.
///
/// A full scan that decodes every config of the schema: it runs on the blocking pool, never
/// on the async runtime's threads.
pub async fn pending(
    store: &Arc<StateStore>,
    name: &str,
    target: u32,
    failed: &[MigrationFailure],
) -> Result<Vec<ConfigEntry>, crate::store::StoreError> {
    let (store, name, failed) = (store.clone(), name.to_string(), failed.to_vec());
    let scan = tokio::task::spawn_blocking(move || {
        let mut out = store.configs_of(&name, |v| v != target)?;
        out.retain(|e| {
            !failed
                .iter()
                .any(|f| f.key == e.meta.key && f.revision == e.meta.revision)
        });
        Ok(out)
    });
    match scan.await {
        Ok(result) => result,
        // The scan panicked: a bug, surfaced where it happened.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// One config converted, or why not.
pub enum Converted {
    Ok(MigrationWrite),
    Failed(MigrationFailure),
}

/// Converts `entry` to `target` (blocking work on the pool, plugins included).
pub async fn convert(
    registry: &Arc<SchemaRegistry>,
    entry: &ConfigEntry,
    target: u32,
) -> Result<Converted, SchemaError> {
    let key = entry.meta.key.clone();
    let outcome = registry
        .convert_async(
            entry.meta.schema.clone(),
            key.clone(),
            entry.meta.schema_version,
            target,
            entry.value.clone(),
        )
        .await;
    match outcome {
        Ok(value) => {
            let digest = registry.plugin_digest(&entry.meta.schema, target)?;
            Ok(Converted::Ok(MigrationWrite {
                key,
                expected_revision: entry.meta.revision,
                plugin_digest: digest,
                value,
            }))
        }
        Err(e @ SchemaError::Conversion(_)) => Ok(Converted::Failed(MigrationFailure {
            key,
            revision: entry.meta.revision,
            reason: e.to_string(),
        })),
        Err(e) => Err(e),
    }
}

/// A config a migration could not convert, as the API shows it.
pub fn failure_view(f: &MigrationFailure) -> scarab_types::MigrationFailure {
    scarab_types::MigrationFailure {
        key: f.key.clone(),
        revision: f.revision,
        reason: f.reason.clone(),
    }
}

/// Converts every config a migration would, and writes nothing: what it found.
pub async fn dry_run(
    store: &Arc<StateStore>,
    registry: &Arc<SchemaRegistry>,
    name: &str,
    target: u32,
) -> Result<scarab_types::DryRun, SchemaError> {
    let entries = pending(store, name, target, &[]).await?;
    let mut report = scarab_types::DryRun {
        name: name.to_string(),
        target_version: target,
        total: entries.len() as u64,
        convertible: 0,
        failed: Vec::new(),
    };
    for entry in &entries {
        match convert(registry, entry, target).await? {
            Converted::Ok(_) => report.convertible += 1,
            Converted::Failed(f) => report.failed.push(failure_view(&f)),
        }
    }
    Ok(report)
}

/// Drives running migrations while this node leads. Runs until the node stops.
pub async fn worker(cluster: Cluster, store: Arc<StateStore>, registry: Arc<SchemaRegistry>) {
    let mut applied = store.subscribe();
    loop {
        let running: Vec<MigrationRecord> = store
            .migrations(None)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.status == MigrationStatus::Running)
            .collect();
        let leading = cluster.leader().map(|(id, _)| id) == Some(cluster.node_id());
        if leading && !running.is_empty() {
            for m in running {
                if let Err(e) = pass(&cluster, &store, &registry, &m).await {
                    tracing::warn!(migration = m.id, schema = %m.name, error = %e, "migration pass failed; retrying");
                    tokio::time::sleep(IDLE).await;
                }
            }
            continue;
        }
        // Wake on any apply (a new migration, a leader change's first entry) or after a while.
        let _ = tokio::time::timeout(IDLE, applied.changed()).await;
    }
}

/// One pass of migration `m`: converts what is pending and proposes it batch by batch;
/// finishes the migration when nothing is pending.
async fn pass(
    cluster: &Cluster,
    store: &Arc<StateStore>,
    registry: &Arc<SchemaRegistry>,
    m: &MigrationRecord,
) -> Result<(), PassError> {
    // See every committed write first: a new leader may not have applied all of them yet.
    cluster.read_barrier().await?;
    let Some(current) = store.migration(&m.name, m.id)? else {
        return Ok(());
    };
    if current.status != MigrationStatus::Running {
        return Ok(());
    }
    let todo = pending(store, &m.name, m.target_version, &current.failed).await?;
    let actor = &current.started_by;
    if todo.is_empty() {
        propose(
            cluster,
            actor,
            FinishMigration {
                name: m.name.clone(),
                id: m.id,
            },
        )
        .await?;
        tracing::info!(migration = m.id, schema = %m.name, "migration finished");
        return Ok(());
    }
    // A batch is one Raft entry: at most BATCH configs and about BATCH_BYTES of converted
    // values (at least one), so that an entry always fits a peer request
    // (`--max-peer-body-bytes` is checked against four entries of this at start).
    let mut writes = Vec::new();
    let mut failures = Vec::new();
    let mut bytes = 0usize;
    let last = todo.len().saturating_sub(1);
    for (i, entry) in todo.iter().enumerate() {
        if writes.is_empty() && failures.is_empty() {
            if crate::failpoint::triggered("migration-slow") {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if cluster.leader().map(|(id, _)| id) != Some(cluster.node_id()) {
                return Ok(());
            }
        }
        match convert(registry, entry, m.target_version).await? {
            Converted::Ok(w) => {
                bytes += w.value.len();
                writes.push(w)
            }
            Converted::Failed(f) => failures.push(f),
        }
        if i == last || writes.len() + failures.len() >= BATCH || bytes >= BATCH_BYTES {
            propose(
                cluster,
                actor,
                MigrateBatch {
                    name: m.name.clone(),
                    id: m.id,
                    writes: std::mem::take(&mut writes),
                    failures: std::mem::take(&mut failures),
                },
            )
            .await?;
            bytes = 0;
        }
    }
    Ok(())
}

/// Proposes `proposal` as `actor`; a rejection is an error.
async fn propose<P: Proposal>(
    cluster: &Cluster,
    actor: &str,
    proposal: P,
) -> Result<P::Output, PassError> {
    Ok(crate::propose::propose(cluster, actor.to_string(), Context::default(), proposal).await?)
}
