//! Snapshot files: one JSON header line (openraft's snapshot metadata and ours), then one line
//! per stored record. Built from a fjall snapshot (one consistent point) while applies go on;
//! written to a temporary name and renamed, so a crash never leaves a half snapshot as current.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fjall::{PersistMode, Readable};
use serde::{Deserialize, Serialize};

use super::{META_KEY, SmMeta, StateStore, StoreError, read_meta};
use crate::raft::SnapshotMeta;

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    meta: SnapshotMeta,
    sm: SmMeta,
}

#[derive(Serialize, Deserialize)]
struct Record {
    ks: String,
    k: String,
    v: String,
}

const SUFFIX: &str = "snap";
/// Records are installed in batches of about this many bytes.
const INSTALL_BATCH_BYTES: usize = 8 << 20;

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Snapshot(e.to_string())
}

impl StateStore {
    fn data_keyspaces(&self) -> [(&'static str, &fjall::Keyspace); 4] {
        [
            ("configs", &self.configs),
            ("schemas", &self.schemas),
            ("plugins", &self.plugins),
            ("usage", &self.usage),
        ]
    }

    /// Writes a snapshot of the current applied state and makes it the current one.
    pub(crate) fn build_snapshot_file(&self) -> Result<(SnapshotMeta, PathBuf), StoreError> {
        let snap = self.db.snapshot();
        let sm = read_meta(&snap, &self.meta)?;
        let last = sm.last_applied;
        let snapshot_id = match last {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, sm.revision),
            None => format!("0-0-{}", sm.revision),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: sm.membership.clone(),
            snapshot_id: snapshot_id.clone(),
        };
        let tmp = self.snapshot_dir.join(format!("{snapshot_id}.tmp"));
        let mut out = BufWriter::new(File::create(&tmp)?);
        serde_json::to_writer(
            &mut out,
            &Header {
                format: 1,
                meta: meta.clone(),
                sm,
            },
        )
        .map_err(err)?;
        out.write_all(b"\n")?;
        for (name, ks) in self.data_keyspaces() {
            for guard in snap.iter(ks) {
                let (k, v) = guard.into_inner()?;
                let record = Record {
                    ks: name.to_string(),
                    k: String::from_utf8(k.to_vec()).map_err(err)?,
                    v: STANDARD.encode(&v),
                };
                serde_json::to_writer(&mut out, &record).map_err(err)?;
                out.write_all(b"\n")?;
            }
        }
        let file = out.into_inner().map_err(|e| err(e.error()))?;
        file.sync_all()?;
        let path = self.snapshot_dir.join(format!("{snapshot_id}.{SUFFIX}"));
        fs::rename(&tmp, &path)?;
        self.remove_other_snapshots(&path)?;
        Ok((meta, path))
    }

    fn remove_other_snapshots(&self, keep: &Path) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.snapshot_dir)? {
            let path = entry?.path();
            if path != keep {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// The current snapshot file, if any, and its metadata.
    pub(crate) fn current_snapshot_file(&self) -> Result<Option<(SnapshotMeta, File)>, StoreError> {
        for entry in fs::read_dir(&self.snapshot_dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == SUFFIX) {
                let mut file = File::open(&path)?;
                let header = read_header(&mut file)?;
                file.seek(SeekFrom::Start(0))?;
                return Ok(Some((header.meta, file)));
            }
        }
        Ok(None)
    }

    /// A new file for a snapshot arriving from the leader.
    pub(crate) fn incoming_snapshot_file(&self) -> Result<File, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = self.snapshot_dir.join(format!("incoming-{nanos}.part"));
        Ok(File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?)
    }

    /// Makes a received snapshot the current one, then replaces the state with it.
    pub(crate) fn install_snapshot_file(
        &self,
        meta: &SnapshotMeta,
        mut received: File,
    ) -> Result<(), StoreError> {
        received.seek(SeekFrom::Start(0))?;
        let tmp = self.snapshot_dir.join(format!("{}.tmp", meta.snapshot_id));
        let mut copy = File::create(&tmp)?;
        std::io::copy(&mut received, &mut copy)?;
        copy.sync_all()?;
        let path = self
            .snapshot_dir
            .join(format!("{}.{SUFFIX}", meta.snapshot_id));
        fs::rename(&tmp, &path)?;
        self.remove_other_snapshots(&path)?;
        self.load_snapshot(&path)
    }

    /// Replaces the whole state with the snapshot at `path`, durably.
    fn load_snapshot(&self, path: &Path) -> Result<(), StoreError> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let header: Header = serde_json::from_str(&line).map_err(err)?;
        for (_, ks) in self.data_keyspaces() {
            ks.clear()?;
        }
        // Bounded batches: a snapshot never has to fit in memory. The metadata (and with it
        // the applied log id) is written last, so a crash part-way leaves the state behind the
        // current snapshot file, and the next start installs it again.
        let mut batch = self.db.batch();
        let mut batch_bytes = 0usize;
        for line in reader.lines() {
            let line = line?;
            let record: Record = serde_json::from_str(&line).map_err(err)?;
            let ks = self
                .data_keyspaces()
                .into_iter()
                .find(|(name, _)| *name == record.ks)
                .map(|(_, ks)| ks)
                .ok_or_else(|| err(format!("unknown keyspace {}", record.ks)))?;
            let value = STANDARD.decode(record.v).map_err(err)?;
            batch_bytes += record.k.len() + value.len();
            batch.insert(ks, record.k.into_bytes(), value);
            if batch_bytes >= INSTALL_BATCH_BYTES {
                batch.commit()?;
                batch = self.db.batch();
                batch_bytes = 0;
            }
        }
        let mut sm = header.sm;
        sm.last_applied = header.meta.last_log_id;
        sm.membership = header.meta.last_membership;
        batch.insert(&self.meta, META_KEY, serde_json::to_vec(&sm).map_err(err)?);
        batch.durability(Some(PersistMode::SyncData)).commit()?;
        *self.state.lock().expect("state lock") = sm.clone();
        self.applied.send_replace(sm);
        Ok(())
    }

    /// After a crash during an install, the snapshot file is ahead of the state: finish it.
    pub(super) fn recover_interrupted_install(&self) -> Result<(), StoreError> {
        let Some((meta, _)) = self.current_snapshot_file()? else {
            return Ok(());
        };
        if meta.last_log_id > self.applied().last_applied {
            let path = self
                .snapshot_dir
                .join(format!("{}.{SUFFIX}", meta.snapshot_id));
            tracing::warn!(snapshot = %meta.snapshot_id, "state is behind the current snapshot; installing it again");
            self.load_snapshot(&path)?;
        }
        Ok(())
    }
}

fn read_header(file: &mut File) -> Result<Header, StoreError> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    serde_json::from_str(&line).map_err(err)
}
