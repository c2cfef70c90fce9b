//! A read-only scan of fjall 3.1's journal files, run before fjall opens them.
//!
//! fjall's own recovery cannot tell a torn tail (the last, unacknowledged batch half-written
//! by a power cut) from damage in the middle of a journal: at the first frame it cannot decode
//! it truncates the file there and fsyncs the truncation, silently dropping every batch after
//! it, acknowledged ones included. This scan tells the two apart, so the node can refuse to
//! start on damage while the bytes are still there.
//!
//! The format (pinned with fjall in Cargo.toml; `journal/entry.rs` in fjall): a batch is a
//! Start frame (tag 1, item count u32, seqno u64), that many Item (tag 2) or Clear (tag 4)
//! frames, and an End frame (tag 3, xxh3 of the item and clear frames as u64, magic `FJL\x03`).
//! Integers are little-endian. A journal file is pre-allocated with zeros.

use std::hash::Hasher;

const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const MAGIC: &[u8; 4] = b"FJL\x03";

/// What a journal file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Only complete batches with good checksums, then zeros or the end of the file.
    Clean { batches: u64 },
    /// Complete batches up to `valid_end`, then bytes that form no complete batch and are
    /// followed by none: an interrupted last write, never acknowledged.
    TornTail { batches: u64, valid_end: u64 },
    /// Bytes at `offset` that are not a valid batch, with a valid batch after them (or a bad
    /// batch that a later one follows): data was lost or changed after it was written.
    Damaged { offset: u64, what: String },
}

/// Why the batch at some offset is not valid.
#[derive(Debug)]
enum Invalid {
    /// The file ends (or zeros begin) inside the batch.
    Incomplete,
    /// A complete batch whose checksum does not match.
    Checksum,
    /// Bytes that are no frame of a batch here.
    Framing(String),
}

/// Scans one journal file's bytes.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut pos = 0usize;
    let mut batches = 0u64;
    loop {
        if bytes[pos..].iter().all(|b| *b == 0) {
            return Scan::Clean { batches };
        }
        match parse_batch(bytes, pos) {
            Ok(end) => {
                batches += 1;
                pos = end;
            }
            Err(invalid) => {
                // Is any complete, checksummed batch written after the bad bytes? Then they
                // are not a torn tail.
                if let Some(next) = (pos + 1..bytes.len())
                    .find(|&p| bytes[p] == TAG_START && parse_batch(bytes, p).is_ok())
                {
                    let what = match invalid {
                        Invalid::Incomplete => "a batch cut short".to_string(),
                        Invalid::Checksum => "a batch whose checksum does not match".to_string(),
                        Invalid::Framing(f) => f,
                    };
                    return Scan::Damaged {
                        offset: pos as u64,
                        what: format!(
                            "{what}, followed by a valid batch at byte {next}: written data was lost or changed"
                        ),
                    };
                }
                return Scan::TornTail {
                    batches,
                    valid_end: pos as u64,
                };
            }
        }
    }
}

/// Parses the batch starting at `pos`; returns the offset just after it.
fn parse_batch(bytes: &[u8], pos: usize) -> Result<usize, Invalid> {
    let mut r = Reader { bytes, pos };
    let tag = r.u8()?;
    if tag != TAG_START {
        return Err(Invalid::Framing(format!(
            "byte {tag:#04x} where a batch should start"
        )));
    }
    let count = r.u32()?;
    let _seqno = r.u64()?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for _ in 0..count {
        let frame_start = r.pos;
        match r.u8()? {
            TAG_ITEM => {
                let _value_type = r.u8()?;
                let compression = r.u8()?;
                if compression > 1 {
                    return Err(Invalid::Framing(format!(
                        "unknown compression {compression:#04x} in an item"
                    )));
                }
                let _keyspace = r.u64()?;
                let key_len = r.u16()? as usize;
                let _value_len = r.u32()?;
                let stored_len = r.u32()? as usize;
                r.skip(key_len + stored_len)?;
            }
            TAG_CLEAR => {
                let _keyspace = r.u64()?;
            }
            0 => return Err(Invalid::Incomplete),
            other => {
                return Err(Invalid::Framing(format!(
                    "byte {other:#04x} where an item of a batch should be"
                )));
            }
        }
        hasher.update(&bytes[frame_start..r.pos]);
    }
    match r.u8()? {
        TAG_END => {}
        0 => return Err(Invalid::Incomplete),
        other => {
            return Err(Invalid::Framing(format!(
                "byte {other:#04x} where the end of a batch should be"
            )));
        }
    }
    let checksum = r.u64()?;
    let magic = r.take(4)?;
    if magic != MAGIC {
        if magic.iter().all(|b| *b == 0) {
            return Err(Invalid::Incomplete);
        }
        return Err(Invalid::Framing("a batch end without its marker".into()));
    }
    if hasher.finish() != checksum {
        return Err(Invalid::Checksum);
    }
    Ok(r.pos)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        let end = self.pos.checked_add(n).ok_or(Invalid::Incomplete)?;
        let slice = self.bytes.get(self.pos..end).ok_or(Invalid::Incomplete)?;
        self.pos = end;
        Ok(slice)
    }
    fn skip(&mut self, n: usize) -> Result<(), Invalid> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Invalid> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, Invalid> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, Invalid> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};

    use super::*;

    /// A journal written by the fjall this crate is built with (so the test breaks if fjall's
    /// format changes), with three batches; returns its bytes and the offsets where each
    /// batch starts.
    fn fjall_journal() -> (Vec<u8>, Vec<usize>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::builder(dir.path()).open().expect("open");
        let ks = db
            .keyspace("ks", KeyspaceCreateOptions::default)
            .expect("keyspace");
        for i in 0..3u8 {
            let mut batch = db.batch();
            batch.insert(&ks, [b'k', i], vec![i; 100]);
            batch.insert(&ks, [b'j', i], vec![i; 50]);
            batch.commit().expect("commit");
            db.persist(PersistMode::SyncAll).expect("persist");
        }
        let journal = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.extension().is_some_and(|e| e == "jnl"))
            .expect("a journal file");
        let bytes = std::fs::read(journal).expect("read journal");
        let mut starts = vec![];
        let mut pos = 0;
        while let Ok(end) = parse_batch(&bytes, pos) {
            starts.push(pos);
            pos = end;
        }
        assert!(
            starts.len() >= 3,
            "expected our three batches in {starts:?}"
        );
        (bytes, starts)
    }

    #[test]
    fn a_journal_written_by_fjall_scans_clean() {
        let (bytes, starts) = fjall_journal();
        assert_eq!(
            scan(&bytes),
            Scan::Clean {
                batches: starts.len() as u64
            }
        );
    }

    #[test]
    fn a_half_written_last_batch_is_a_torn_tail() {
        let (mut bytes, starts) = fjall_journal();
        let last = *starts.last().expect("a batch");
        let end = parse_batch(&bytes, last).expect("valid");
        bytes[last + (end - last) / 2..].fill(0);
        assert_eq!(
            scan(&bytes),
            Scan::TornTail {
                batches: starts.len() as u64 - 1,
                valid_end: last as u64
            }
        );
    }

    #[test]
    fn a_file_cut_inside_its_last_batch_is_a_torn_tail() {
        let (bytes, starts) = fjall_journal();
        let last = *starts.last().expect("a batch");
        assert!(matches!(
            scan(&bytes[..last + 20]),
            Scan::TornTail { valid_end, .. } if valid_end == last as u64
        ));
    }

    #[test]
    fn a_changed_byte_in_an_earlier_batch_is_damage() {
        let (mut bytes, starts) = fjall_journal();
        bytes[starts[1] + 40] ^= 0x5a;
        assert!(matches!(
            scan(&bytes),
            Scan::Damaged { offset, ref what } if offset == starts[1] as u64 && what.contains("checksum")
        ));
    }

    #[test]
    fn a_broken_frame_before_valid_batches_is_damage_not_a_tail() {
        // fjall itself would truncate the file here and lose the later batches.
        let (mut bytes, starts) = fjall_journal();
        bytes[starts[1]] = 0x07;
        assert!(matches!(
            scan(&bytes),
            Scan::Damaged { offset, .. } if offset == starts[1] as u64
        ));
    }

    #[test]
    fn a_zeroed_block_before_valid_batches_is_damage() {
        let (mut bytes, starts) = fjall_journal();
        bytes[starts[1]..starts[2]].fill(0);
        assert!(matches!(scan(&bytes), Scan::Damaged { .. }));
    }
}
