//! Snapshot files: one JSON header line (openraft's snapshot metadata and ours), then one line
//! per stored record, then (format 2) a trailer line with the record count and the SHA-256 of
//! every byte before it. Built from a fjall snapshot (one consistent point) while applies go
//! on; written to a temporary name and renamed, so a crash never leaves a half snapshot as
//! current. A file that fails its checksum is never installed.
//!
//! Format 3, what the Raft snapshots of this version are: a record whose value is UTF-8 text
//! (configs, history and audit records are JSON text) carries it as text (`s`) rather than
//! base64 (`v`), and everything after the header line is in LZ4 blocks ([`Blocks`]): the same
//! lines, hashed as text, a third of the bytes (at 256-byte configs, a snapshot was a fifth
//! of a node's disk). Format 4 (this version's) is format 3 whose config records may hold
//! their metadata alone, a large value being in the key's newest history record only
//! (`configs.rs`): an
//! older node refuses it by its number rather than installing records it cannot read.
//! Backups stay format 2, text a person can read and older versions restore: their config
//! records carry their values again. Every reader takes all four.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fjall::{PersistMode, Readable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LogId, META_KEY, SmMeta, SnapshotMeta, StateStore, StoreError, read_meta};

#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) format: u32,
    pub(super) meta: SnapshotMeta,
    pub(super) sm: SmMeta,
}

/// One stored record. Its value is `v` (base64) or, from format 3 and when it is UTF-8, `s`.
#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) ks: String,
    pub(super) k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) v: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) s: Option<String>,
}

impl Record {
    fn new(format: u32, ks: &str, k: &[u8], v: &[u8]) -> Result<Self, StoreError> {
        let text = if format >= 3 {
            std::str::from_utf8(v).ok()
        } else {
            None
        };
        Ok(Self {
            ks: ks.to_string(),
            k: String::from_utf8(k.to_vec()).map_err(err)?,
            v: text.is_none().then(|| STANDARD.encode(v)),
            s: text.map(str::to_string),
        })
    }

    /// The stored value: exactly one of `v` and `s`.
    fn value(self) -> Result<Vec<u8>, StoreError> {
        match (self.v, self.s) {
            (Some(v), None) => STANDARD.decode(v).map_err(err),
            (None, Some(s)) => Ok(s.into_bytes()),
            _ => Err(err("a record needs exactly one of v and s")),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    end: End,
}

#[derive(Serialize, Deserialize)]
struct End {
    records: u64,
    sha256: String,
}

/// The format of Raft snapshots: format 2 adds the trailer, format 3 text values and LZ4
/// blocks, format 4 config records without their values (module docs); format 1 files (no
/// checksum) are still read.
const FORMAT: u32 = 4;
/// The format of backups (module docs).
pub(super) const BACKUP_FORMAT: u32 = 2;
pub(super) const TRAILER_START: &[u8] = b"{\"end\":";
const SUFFIX: &str = "snap";

/// Format 3's blocks: each is its compressed length and its text's length (u32, little
/// endian), then the LZ4 block. A block holds at most this much text, so a reader's memory
/// per block is bounded whatever a file's lengths say.
const BLOCK_BYTES: usize = 1 << 20;

/// Writes what passes through as is until [`Blocks::start`], then in LZ4 blocks.
struct Blocks<W: Write> {
    inner: W,
    text: Vec<u8>,
    on: bool,
    /// Bytes of text written through, compressed or not.
    text_bytes: u64,
}

impl<W: Write> Blocks<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            text: Vec::new(),
            on: false,
            text_bytes: 0,
        }
    }

    fn start(&mut self) {
        self.on = true;
        self.text.reserve(BLOCK_BYTES);
    }

    fn write_block(&mut self) -> std::io::Result<()> {
        if self.text.is_empty() {
            return Ok(());
        }
        let packed = lz4_flex::block::compress(&self.text);
        // Both at most lz4's bound for BLOCK_BYTES, far below u32::MAX.
        self.inner.write_all(&(packed.len() as u32).to_le_bytes())?;
        self.inner
            .write_all(&(self.text.len() as u32).to_le_bytes())?;
        self.inner.write_all(&packed)?;
        self.text.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<W> {
        self.write_block()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Blocks<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.on {
            let n = self.inner.write(buf)?;
            self.text_bytes += n as u64;
            return Ok(n);
        }
        let n = buf.len().min(BLOCK_BYTES - self.text.len());
        self.text.extend_from_slice(&buf[..n]);
        self.text_bytes += n as u64;
        if self.text.len() == BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The lengths of the block that starts `head` (at least 8 bytes), checked against the bounds
/// before anything is allocated for it.
fn block_lengths(head: &[u8]) -> Result<(usize, usize), StoreError> {
    let packed = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
    let text = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    if text == 0 || text > BLOCK_BYTES {
        return Err(err(format!(
            "a block of {text} bytes of text (at most {BLOCK_BYTES})"
        )));
    }
    if packed == 0 || packed > lz4_flex::block::get_maximum_output_size(BLOCK_BYTES) {
        return Err(err(format!("a compressed block of {packed} bytes")));
    }
    Ok((packed, text))
}

fn unpack(packed: &[u8], text: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![0u8; text];
    let n = lz4_flex::block::decompress_into(packed, &mut out)
        .map_err(|e| err(format!("a block does not decompress: {e}")))?;
    if n != text {
        return Err(err(format!(
            "a block holds {n} bytes of text, not the {text} it says"
        )));
    }
    Ok(out)
}

/// Reads format 3's blocks as the text they hold.
struct Unblock<R> {
    inner: R,
    text: Vec<u8>,
    at: usize,
}

impl<R: Read> Read for Unblock<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.text.len() {
            let mut head = [0u8; 8];
            // A clean end of the file is the end of the text.
            match self.inner.read(&mut head[..1])? {
                0 => return Ok(0),
                _ => self.inner.read_exact(&mut head[1..])?,
            }
            let (packed_len, text_len) = block_lengths(&head).map_err(std::io::Error::other)?;
            let mut packed = vec![0u8; packed_len];
            self.inner.read_exact(&mut packed)?;
            self.text = unpack(&packed, text_len).map_err(std::io::Error::other)?;
            self.at = 0;
        }
        let n = buf.len().min(self.text.len() - self.at);
        buf[..n].copy_from_slice(&self.text[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The record lines of a file of `format`, read from just after its header line.
pub(super) fn record_lines<'r>(reader: impl BufRead + 'r, format: u32) -> Box<dyn BufRead + 'r> {
    if format >= 3 {
        Box::new(BufReader::with_capacity(
            1 << 16,
            Unblock {
                inner: reader,
                text: Vec::new(),
                at: 0,
            },
        ))
    } else {
        Box::new(reader)
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Checks the current snapshot file in `snapshot_dir` in full (see [`verify_snapshot_file`]);
/// returns the last log id it covers.
pub fn verify_current_snapshot(snapshot_dir: &Path) -> Result<Option<LogId>, StoreError> {
    if !snapshot_dir.exists() {
        return Ok(None);
    }
    for entry in fs::read_dir(snapshot_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == SUFFIX) {
            return Ok(verify_snapshot_file(&path)?.last_log_id);
        }
    }
    Ok(None)
}

/// Reads a whole snapshot file and checks it (see [`SnapshotCheck`]). Returns its metadata.
/// A cut or changed file is an error naming it.
pub(crate) fn verify_snapshot_file(path: &Path) -> Result<SnapshotMeta, StoreError> {
    Ok(check_snapshot_file(path)?.meta)
}

/// [`verify_snapshot_file`], with what the file's trailer says.
pub(crate) fn check_snapshot_file(path: &Path) -> Result<Checked, StoreError> {
    let damaged = |e: StoreError| StoreError::Snapshot(format!("{}: {e}", path.display()));
    let mut file = File::open(path)?;
    let mut check = SnapshotCheck::new(None);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check.feed(&buf[..n]).map_err(damaged)?;
    }
    check.finish().map_err(damaged)
}

/// The keyspaces a snapshot holds records of (see `StateStore::data_keyspaces`).
const KEYSPACES: [&str; 8] = [
    "configs",
    "schemas",
    "plugins",
    "usage",
    "schema_meta",
    "history",
    "audit",
    "auth",
];

/// The longest line a snapshot may have: a record holds one stored value, in base64 (the
/// largest are plugins, `--max-plugin-bytes`), with its key.
const MAX_LINE_BYTES: usize = 96 << 20;

/// Checks a snapshot as its bytes arrive, before anything is replaced with it: a header whose
/// metadata is the one expected (when one is), records that each decode into a known
/// keyspace, and a trailer with their count and the SHA-256 of every byte before it, with
/// nothing after. A snapshot from a peer passes this whole before openraft is told it is
/// complete, so a garbage or truncated one is refused without a trace.
pub struct SnapshotCheck {
    expect: Option<SnapshotMeta>,
    pending: Vec<u8>,
    /// Format 3: the bytes of a block not yet whole.
    packed: Vec<u8>,
    hash: Sha256,
    records: u64,
    meta: Option<SnapshotMeta>,
    format: u32,
    ended: bool,
    sha256: String,
}

/// What a whole, checked snapshot file holds.
pub(crate) struct Checked {
    pub(crate) meta: SnapshotMeta,
    pub(crate) format: u32,
    /// The trailer's record count and checksum (none in format 1).
    pub(crate) records: u64,
    pub(crate) sha256: String,
}

impl SnapshotCheck {
    pub fn new(expect: Option<SnapshotMeta>) -> Self {
        Self {
            expect,
            pending: Vec::new(),
            packed: Vec::new(),
            hash: Sha256::new(),
            records: 0,
            meta: None,
            format: 0,
            ended: false,
            sha256: String::new(),
        }
    }

    /// Whether what follows the header is in blocks (format 3).
    fn blocked(&self) -> bool {
        self.meta.is_some() && self.format >= 3
    }

    /// Takes the next bytes of the file.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let data = if self.blocked() {
            data
        } else {
            self.feed_text(data, true)?
        };
        if data.is_empty() {
            return Ok(());
        }
        // Format 3 after its header line: whole blocks are unpacked and their text checked.
        self.packed.extend_from_slice(data);
        let mut at = 0;
        while self.packed.len() - at >= 8 {
            let (packed, text) = block_lengths(&self.packed[at..at + 8])?;
            if self.packed.len() - at - 8 < packed {
                break;
            }
            let text = unpack(&self.packed[at + 8..at + 8 + packed], text)?;
            at += 8 + packed;
            self.feed_text(&text, false)?;
        }
        self.packed.drain(..at);
        Ok(())
    }

    /// Takes text: whole lines are checked, the rest waits for its newline. With
    /// `stop_at_blocks`, returns what follows a header that announces blocks, unread.
    fn feed_text<'d>(
        &mut self,
        mut data: &'d [u8],
        stop_at_blocks: bool,
    ) -> Result<&'d [u8], StoreError> {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let (head, rest) = data.split_at(nl + 1);
            data = rest;
            if self.pending.is_empty() {
                self.line(head)?;
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(head);
                self.line(&line)?;
            }
            if stop_at_blocks && self.blocked() {
                return Ok(data);
            }
        }
        if self.pending.len() + data.len() > MAX_LINE_BYTES {
            return Err(err(format!("a line is longer than {MAX_LINE_BYTES} bytes")));
        }
        self.pending.extend_from_slice(data);
        Ok(&[])
    }

    /// One whole line, with its newline.
    fn line(&mut self, line: &[u8]) -> Result<(), StoreError> {
        if self.ended {
            return Err(err("there are bytes after the trailer"));
        }
        let Some(_) = &self.meta else {
            let header: Header = serde_json::from_slice(line)
                .map_err(|e| err(format!("the header does not decode: {e}")))?;
            if let Some(expect) = &self.expect
                && *expect != header.meta
            {
                return Err(err(format!(
                    "the header describes snapshot {} (last log id {:?}), not the announced {} ({:?})",
                    header.meta.snapshot_id,
                    header.meta.last_log_id,
                    expect.snapshot_id,
                    expect.last_log_id
                )));
            }
            if header.format > FORMAT {
                return Err(err(format!(
                    "format {} is newer than this version reads ({FORMAT})",
                    header.format
                )));
            }
            self.hash.update(line);
            self.format = header.format;
            self.meta = Some(header.meta);
            return Ok(());
        };
        if line.starts_with(TRAILER_START) {
            let trailer: Trailer = serde_json::from_slice(line)
                .map_err(|e| err(format!("the trailer does not decode: {e}")))?;
            let got = hex::encode(self.hash.clone().finalize());
            if trailer.end.records != self.records || trailer.end.sha256 != got {
                return Err(err(format!(
                    "the checksum does not match (trailer: {} records, sha256 {}; file: {} records, sha256 {got}): the file was changed after it was written",
                    trailer.end.records, trailer.end.sha256, self.records
                )));
            }
            self.ended = true;
            self.sha256 = got;
            return Ok(());
        }
        let record: Record = serde_json::from_slice(line)
            .map_err(|e| err(format!("record {} does not decode: {e}", self.records + 1)))?;
        if !KEYSPACES.contains(&record.ks.as_str()) {
            return Err(err(format!(
                "record {} is of an unknown keyspace {:?}",
                self.records + 1,
                record.ks
            )));
        }
        record
            .value()
            .map_err(|e| err(format!("record {} does not decode: {e}", self.records + 1)))?;
        self.hash.update(line);
        self.records += 1;
        Ok(())
    }

    /// The end of the file: returns what it holds if everything checked out.
    pub(crate) fn finish(self) -> Result<Checked, StoreError> {
        if !self.pending.is_empty() {
            return Err(err("the file ends inside a line: it was cut short"));
        }
        if !self.packed.is_empty() {
            return Err(err("the file ends inside a block: it was cut short"));
        }
        let meta = self.meta.ok_or_else(|| err("the file is empty"))?;
        if !self.ended && self.format >= 2 {
            return Err(err(format!(
                "the file ends after {} records without its trailer: it was cut short",
                self.records
            )));
        }
        Ok(Checked {
            meta,
            format: self.format,
            records: self.records,
            sha256: self.sha256,
        })
    }
}

/// The file name stem of a snapshot: its id, which must be `TERM-INDEX-REVISION` in canonical
/// decimal with TERM and INDEX those of its last log id (`0-0-REVISION` for none). Ids come
/// from peers: one is never used as a path before it passes this.
pub fn snapshot_stem(meta: &SnapshotMeta) -> Result<&str, StoreError> {
    let id = meta.snapshot_id.as_str();
    let canonical = |s: &str| {
        !s.is_empty()
            && s.len() <= 20
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s.len() == 1 || !s.starts_with('0'))
    };
    let parts: Vec<&str> = id.split('-').collect();
    let (term, index) = meta
        .last_log_id
        .map(|l| (l.leader_id.term, l.index))
        .unwrap_or((0, 0));
    let ok = parts.len() == 3
        && parts.iter().all(|p| canonical(p))
        && parts[0] == term.to_string()
        && parts[1] == index.to_string();
    if ok {
        Ok(id)
    } else {
        Err(err(format!(
            "snapshot id {:?} is not TERM-INDEX-REVISION of its last log id",
            id.chars().take(80).collect::<String>()
        )))
    }
}

/// Records are installed in batches of about this many bytes.
pub(super) const INSTALL_BATCH_BYTES: usize = 8 << 20;

pub(super) fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Snapshot(e.to_string())
}

impl StateStore {
    pub(super) fn data_keyspaces(&self) -> [(&'static str, &fjall::Keyspace); 8] {
        [
            ("configs", &self.configs),
            ("schemas", &self.schemas),
            ("plugins", &self.plugins),
            ("usage", &self.usage),
            ("schema_meta", &self.schema_meta),
            ("history", &self.history),
            ("audit", &self.audit),
            ("auth", &self.auth),
        ]
    }

    /// Writes a snapshot of the current applied state and makes it the current one.
    /// Writes a snapshot of the current applied state, makes it the current one, and opens it
    /// (before another build or install may replace it).
    pub(crate) fn build_snapshot_file(&self) -> Result<(SnapshotMeta, File), StoreError> {
        // Serialised with installs: otherwise an install that finishes during a build removes
        // the build's temporary file (the build then fails, which is fatal to openraft), or a
        // build that finishes after an install removes the newer installed snapshot. In order,
        // the later one always holds the newer state.
        let _files = self.snapshot_files.lock().expect("snapshot lock");
        let started = std::time::Instant::now();
        let tmp = self.snapshot_dir.join(format!(
            "build-{}.tmp",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let (meta, _, text_bytes, out) =
            self.write_state(BufWriter::new(File::create(&tmp)?), FORMAT)?;
        let snapshot_id = meta.snapshot_id.clone();
        let file = out.into_inner().map_err(|e| err(e.error()))?;
        file.sync_all()?;
        let path = self.snapshot_dir.join(format!("{snapshot_id}.{SUFFIX}"));
        fs::rename(&tmp, &path)?;
        self.remove_other_snapshots(&path)?;
        self.snapshot_text_bytes
            .store(text_bytes, std::sync::atomic::Ordering::Relaxed);
        let m = crate::metrics::get();
        m.snapshot_builds.inc();
        m.snapshot_build_bytes
            .inc_by(fs::metadata(&path).map(|md| md.len()).unwrap_or_default());
        m.snapshot_build_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok((meta, File::open(&path)?))
    }

    /// Writes the applied state at one consistent point (a fjall snapshot, while applies go
    /// on) to `out` in the snapshot format: header, one line per record, trailer with the
    /// record count and the SHA-256 of everything before it. Also what a backup is.
    pub(super) fn write_state<W: Write>(
        &self,
        out: W,
        format: u32,
    ) -> Result<(SnapshotMeta, SmMeta, u64, W), StoreError> {
        let snap = self.db.snapshot();
        let sm = read_meta(&snap, &self.meta)?;
        let written = sm.clone();
        let last = sm.last_applied;
        let snapshot_id = match last {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, sm.revision),
            None => format!("0-0-{}", sm.revision),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: sm.membership.clone(),
            snapshot_id,
        };
        let mut out = Hashing {
            inner: Blocks::new(out),
            hash: Sha256::new(),
        };
        let mut records = 0u64;
        serde_json::to_writer(
            &mut out,
            &Header {
                format,
                meta: meta.clone(),
                sm,
            },
        )
        .map_err(err)?;
        out.write_all(b"\n")?;
        if format >= 3 {
            out.inner.start();
        }
        for (name, ks) in self.data_keyspaces() {
            for guard in snap.iter(ks) {
                let (k, v) = guard.into_inner()?;
                let v = if format < 4 && name == "configs" {
                    self.config_with_value(&snap, &v)?
                } else {
                    v.to_vec()
                };
                let record = Record::new(format, name, &k, &v)?;
                serde_json::to_writer(&mut out, &record).map_err(err)?;
                out.write_all(b"\n")?;
                records += 1;
            }
        }
        let trailer = Trailer {
            end: End {
                records,
                sha256: hex::encode(out.hash.finalize()),
            },
        };
        let mut out = out.inner;
        serde_json::to_writer(&mut out, &trailer).map_err(err)?;
        out.write_all(b"\n")?;
        let text_bytes = out.text_bytes;
        Ok((meta, written, text_bytes, out.finish()?))
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

    /// The bytes of text in the current snapshot, uncompressed: what building it again
    /// formats, compresses and checksums, so the measure of its cost that the snapshot policy
    /// weighs against the log written since (`raft::snapshot_policy`). Known once this process
    /// built or installed one; until then the file's size, which is less (LZ4: about a
    /// seventh at 256-byte configs), and so errs towards snapshotting sooner, as before.
    pub fn current_snapshot_text_bytes(&self) -> u64 {
        match self
            .snapshot_text_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => self.current_snapshot_bytes(),
            text => text,
        }
    }

    /// The size of the current snapshot file (0 without one).
    pub fn current_snapshot_bytes(&self) -> u64 {
        let _files = self.snapshot_files.lock().expect("snapshot lock");
        let Ok(entries) = fs::read_dir(&self.snapshot_dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == SUFFIX))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .next()
            .unwrap_or(0)
    }

    /// The current snapshot file, if any, and its metadata.
    pub(crate) fn current_snapshot_file(&self) -> Result<Option<(SnapshotMeta, File)>, StoreError> {
        let _files = self.snapshot_files.lock().expect("snapshot lock");
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
        let stem = snapshot_stem(meta)?;
        let _files = self.snapshot_files.lock().expect("snapshot lock");
        received.seek(SeekFrom::Start(0))?;
        let tmp = self.snapshot_dir.join(format!("{stem}.tmp"));
        let mut copy = File::create(&tmp)?;
        let bytes = std::io::copy(&mut received, &mut copy)?;
        copy.sync_all()?;
        // Never replace the state with a snapshot that did not arrive whole.
        if let Err(e) = verify_snapshot_file(&tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let path = self.snapshot_dir.join(format!("{stem}.{SUFFIX}"));
        fs::rename(&tmp, &path)?;
        self.remove_other_snapshots(&path)?;
        let started = std::time::Instant::now();
        self.load_snapshot(&path)?;
        let m = crate::metrics::get();
        m.snapshot_installs.inc();
        m.snapshot_install_bytes.inc_by(bytes);
        m.snapshot_install_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Replaces the whole state with the snapshot at `path`, durably.
    fn load_snapshot(&self, path: &Path) -> Result<(), StoreError> {
        let mut reader = BufReader::new(File::open(path)?);
        let mut line = String::new();
        let header_bytes = reader.read_line(&mut line)? as u64;
        let header: Header = serde_json::from_str(&line).map_err(err)?;
        // Committed in several batches: no schema record read during the install is current,
        // nor after it, whether it succeeds or fails.
        let changing = self.schemas_changing();
        for (_, ks) in self.data_keyspaces() {
            ks.clear()?;
        }
        // Bounded batches: a snapshot never has to fit in memory. The metadata (and with it
        // the applied log id) is written last, so a crash part-way leaves the state behind the
        // current snapshot file, and the next start installs it again.
        let (mut batch, text_bytes) = self.load_records(record_lines(reader, header.format))?;
        self.snapshot_text_bytes.store(
            header_bytes + text_bytes,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut sm = header.sm;
        sm.last_applied = header.meta.last_log_id;
        sm.membership = header.meta.last_membership;
        batch.insert(&self.meta, META_KEY, serde_json::to_vec(&sm).map_err(err)?);
        batch.durability(Some(PersistMode::SyncData)).commit()?;
        drop(changing);
        *self.state.lock().expect("state lock") = sm.clone();
        self.reload_auth()?;
        self.applied.send_replace(sm);
        Ok(())
    }

    /// Writes the records that follow a snapshot's header into the state, in batches of
    /// about [`INSTALL_BATCH_BYTES`]; returns the last batch, uncommitted, for the caller to
    /// finish with the metadata, and the bytes of text read (the lines, the trailer's too).
    pub(super) fn load_records(
        &self,
        reader: impl BufRead,
    ) -> Result<(fjall::OwnedWriteBatch, u64), StoreError> {
        let mut batch = self.db.batch();
        let mut batch_bytes = 0usize;
        let mut text_bytes = 0u64;
        for line in reader.lines() {
            let line = line?;
            text_bytes += line.len() as u64 + 1;
            if line.as_bytes().starts_with(TRAILER_START) {
                break;
            }
            let mut record: Record = serde_json::from_str(&line).map_err(err)?;
            let ks = self
                .data_keyspaces()
                .into_iter()
                .find(|(name, _)| *name == record.ks)
                .map(|(_, ks)| ks)
                .ok_or_else(|| err(format!("unknown keyspace {}", record.ks)))?;
            let key = std::mem::take(&mut record.k);
            let value = record.value()?;
            batch_bytes += key.len() + value.len();
            batch.insert(ks, key.into_bytes(), value);
            if batch_bytes >= INSTALL_BATCH_BYTES {
                batch.commit()?;
                batch = self.db.batch();
                batch_bytes = 0;
            }
        }
        Ok((batch, text_bytes))
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
            verify_snapshot_file(&path)?;
            self.load_snapshot(&path)?;
        }
        Ok(())
    }
}

pub(super) fn read_header(file: &mut File) -> Result<Header, StoreError> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    serde_json::from_str(&line).map_err(err)
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{Fixture, written};
    use crate::store::*;

    #[test]
    fn a_snapshot_restores_the_same_state_elsewhere() {
        let mut a = Fixture::new();
        a.schema();
        for i in 0..50 {
            written(a.put(&format!("k/{i:02}"), &i.to_string(), Precondition::None));
        }
        a.apply(Op::DeleteConfig(DeleteConfig {
            key: "k/07".into(),
            precondition: Precondition::None,
        }));
        let (meta, file) = a.store.build_snapshot_file().unwrap();
        let b = Fixture::new();
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(b.store.applied(), a.store.applied());
        let page = |s: &StateStore| {
            s.list_configs("k/", None, 1000, usize::MAX)
                .unwrap()
                .items
                .into_iter()
                .map(|e| (e.meta, e.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(page(&b.store), page(&a.store));
        assert_eq!(page(&b.store).len(), 49);
    }

    /// The header line's bytes plus the text of every block that follows it.
    fn text_of(path: &std::path::Path) -> u64 {
        let bytes = std::fs::read(path).unwrap();
        let newline = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        let (mut at, mut text) = (newline, newline as u64);
        while at < bytes.len() {
            let (packed, len) = super::block_lengths(&bytes[at..at + 8]).unwrap();
            text += len as u64;
            at += 8 + packed;
        }
        text
    }

    #[test]
    fn a_snapshot_is_weighed_by_its_text_once_built_or_installed() {
        let mut a = Fixture::new();
        a.schema();
        assert_eq!(a.store.current_snapshot_text_bytes(), 0);
        for i in 0..200 {
            written(a.put(&format!("k/{i:03}"), &i.to_string(), Precondition::None));
        }
        let (meta, file) = a.store.build_snapshot_file().unwrap();
        let path = std::fs::read_dir(&a.store.snapshot_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = text_of(&path);
        assert_eq!(a.store.current_snapshot_text_bytes(), text);
        // LZ4 makes the file a fraction of the text that building it formats and hashes.
        assert!(a.store.current_snapshot_bytes() * 2 < text);
        let b = Fixture::new();
        // Before this process built or installed one: the file's size.
        assert_eq!(
            b.store.current_snapshot_text_bytes(),
            b.store.current_snapshot_bytes()
        );
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(b.store.current_snapshot_text_bytes(), text);
    }

    #[test]
    fn a_write_after_a_snapshot_is_installed_over_other_state_sees_the_snapshot() {
        let mut a = Fixture::new();
        a.schema();
        let at = written(a.put("k", "1", Precondition::None)).revision;
        let (meta, file) = a.store.build_snapshot_file().unwrap();
        // b has a newer "k" of its own, with its history window.
        let mut b = Fixture::new();
        b.schema();
        for v in 0..3 {
            written(b.put("k", &v.to_string(), Precondition::None));
        }
        b.store.install_snapshot_file(&meta, file).unwrap();
        b.index = a.index;
        let after = written(b.put("k", "2", Precondition::Revision(at)));
        assert_eq!(after.key_version, 2);
        let history = b.store.history("k", None, 10, usize::MAX).unwrap();
        assert_eq!(history.items.len(), 2);
    }

    /// A schema record read (and cached) before an install is read again after it.
    #[test]
    fn a_schema_record_read_before_an_install_is_read_again_after_it() {
        let mut a = Fixture::new();
        a.apply(PutSchema {
            name: "s".into(),
            version: 1,
            schema: r#"{"type":"object"}"#.into(),
            plugin_digest: None,
            plugin: None,
            plugin_contract: None,
            refs: vec![],
        });
        let (meta, file) = a.store.build_snapshot_file().unwrap();
        let mut b = Fixture::new();
        b.schema();
        assert_eq!(b.store.schema_record("s", 1).unwrap().unwrap().schema, "{}");
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(
            b.store.schema_record("s", 1).unwrap().unwrap().schema,
            r#"{"type":"object"}"#
        );
        b.index = a.index;
        b.apply(DeleteSchema {
            name: "s".into(),
            version: 1,
        });
        assert!(b.store.schema_record("s", 1).unwrap().is_none());
        assert!(!b.store.has_schema("s", 1).unwrap());
    }

    #[test]
    fn snapshots_built_and_installed_at_once_never_remove_each_others_files() {
        let mut a = Fixture::new();
        a.schema();
        let mut src = Fixture::new();
        src.schema();
        for i in 0..200 {
            written(a.put(&format!("a/{i}"), "1", Precondition::None));
            written(src.put(&format!("s/{i}"), "2", Precondition::None));
        }
        src.store.build_snapshot_file().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..20 {
                    a.store.build_snapshot_file().unwrap();
                }
            });
            s.spawn(|| {
                for _ in 0..20 {
                    let (meta, file) = src.store.current_snapshot_file().unwrap().unwrap();
                    a.store.install_snapshot_file(&meta, file).unwrap();
                }
            });
        });
        assert!(a.store.current_snapshot_file().unwrap().is_some());
        assert_eq!(a.store.applied(), src.store.applied());
    }

    use super::{BLOCK_BYTES, SnapshotCheck};

    /// A state of `n` configs with values of `bytes` letters that do not repeat, and the
    /// bytes of its snapshot file (this version's format).
    fn built(n: usize, bytes: usize) -> (Fixture, Vec<u8>) {
        let mut f = Fixture::new();
        f.schema();
        let mut seed = 7u64;
        for i in 0..n {
            let letters: String = (0..bytes)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (b'a' + (seed >> 59) as u8 % 26) as char
                })
                .collect();
            written(f.put(
                &format!("k/{i:04}"),
                &format!("\"{letters}\""),
                Precondition::None,
            ));
        }
        let (_, mut file) = f.store.build_snapshot_file().unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut out).unwrap();
        (f, out)
    }

    /// The same state as a backup writes it (format 2, text).
    fn format_2(f: &Fixture) -> (crate::store::SnapshotMeta, Vec<u8>) {
        let (meta, _, _, text) = f
            .store
            .write_state(Vec::new(), super::BACKUP_FORMAT)
            .unwrap();
        (meta, text)
    }

    /// A header followed by one block whose head says `text` bytes of text.
    fn with_block_of(header: &[u8], text: usize) -> Vec<u8> {
        let mut out = header.to_vec();
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&(text as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 16]);
        out
    }

    fn check_in_pieces(bytes: &[u8], piece: usize) -> Result<u64, StoreError> {
        let mut check = SnapshotCheck::new(None);
        for chunk in bytes.chunks(piece) {
            check.feed(chunk)?;
        }
        Ok(check.finish()?.records)
    }

    #[test]
    fn a_snapshot_is_in_lz4_blocks_with_text_values_and_checks_in_any_pieces() {
        let (f, bytes) = built(5000, 300);
        // Values that LZ4 cannot shrink: the saving is base64's third, the records'
        // repeated metadata. Several blocks.
        let (_, text) = format_2(&f);
        assert!(bytes.len() > 2 * BLOCK_BYTES, "{}", bytes.len());
        assert!(
            (bytes.len() as f64) < 0.6 * text.len() as f64,
            "format 4: {} bytes; format 2: {}",
            bytes.len(),
            text.len()
        );
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap();
        let header: serde_json::Value = serde_json::from_slice(&bytes[..header_end]).unwrap();
        assert_eq!(header["format"], 4);
        // What follows the header is a block, not a line of text.
        assert_ne!(bytes[header_end + 1], b'{');
        let records = check_in_pieces(&bytes, 1 << 20).unwrap();
        assert!(records > 6000, "{records}");
        for piece in [1, 7, 4096, 65_537] {
            assert_eq!(check_in_pieces(&bytes, piece).unwrap(), records);
        }
    }

    #[test]
    fn a_cut_or_changed_block_or_a_block_past_the_bound_is_refused() {
        let (_, bytes) = built(300, 300);
        let header_end = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        let cut = check_in_pieces(&bytes[..bytes.len() - 3], 4096).unwrap_err();
        assert!(cut.to_string().contains("cut short"), "{cut}");
        let mut changed = bytes.clone();
        let at = header_end + 8 + (bytes.len() - header_end - 8) / 2;
        changed[at] ^= 0x20;
        assert!(check_in_pieces(&changed, 4096).is_err());
        // A block that says it holds one byte more text than a block may: refused before
        // anything is allocated for it.
        let big = with_block_of(&bytes[..header_end], BLOCK_BYTES + 1);
        let e = check_in_pieces(&big, 4096).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        // At the bound, the block is read (and then fails on its content, not its size).
        let at_bound = with_block_of(&bytes[..header_end], BLOCK_BYTES);
        let e = check_in_pieces(&at_bound, 4096).unwrap_err();
        assert!(!e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn a_format_2_snapshot_from_an_older_node_still_installs() {
        let (a, _) = built(200, 50);
        let (meta, text) = format_2(&a);
        assert!(text.starts_with(b"{\"format\":2,"));
        assert!(text.windows(6).any(|w| w == b"\"v\":\"e"));
        let b = Fixture::new();
        let mut file = b.store.incoming_snapshot_file().unwrap();
        std::io::Write::write_all(&mut file, &text).unwrap();
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(b.store.applied(), a.store.applied());
        assert_eq!(
            b.store.get_config("k/0123").unwrap().unwrap().value,
            a.store.get_config("k/0123").unwrap().unwrap().value
        );
    }

    #[test]
    fn a_backup_carries_each_config_value_in_its_config_record() {
        // So that a version from before format 4 restores it: its config records hold their
        // values, where this version's hold metadata only once a record would be large.
        let (a, _) = built(20, 1500);
        let (_, text) = format_2(&a);
        let text = String::from_utf8(text).unwrap();
        let configs: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["ks"] == "configs")
            .collect();
        assert_eq!(configs.len(), 20);
        let record = |k: &str| {
            let r = configs.iter().find(|r| r["k"] == k).unwrap();
            let v = base64::Engine::decode(&super::STANDARD, r["v"].as_str().unwrap()).unwrap();
            crate::store::keys::decode_config(&v).unwrap()
        };
        let stored = a.store.get_config("k/0007").unwrap().unwrap();
        assert_eq!(record("k/0007").value, stored.value);
        assert_eq!(record("k/0007").meta, stored.meta);
        // And this version reads the file it wrote back.
        let b = Fixture::new();
        let (meta, bytes) = format_2(&a);
        let mut file = b.store.incoming_snapshot_file().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        b.store.install_snapshot_file(&meta, file).unwrap();
        assert_eq!(
            b.store.get_config("k/0007").unwrap().unwrap().value,
            stored.value
        );
    }
}
