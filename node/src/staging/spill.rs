//! The extract's rows of a list being prepared, in flat files: appended
//! in extract order while the extract is read, then distributed once into
//! at most [`MAX_BUCKETS`] bucket files by the chunk each person's
//! position falls in, so that the chunks, made in position order, read
//! each bucket once, front to back.
//!
//! ```text
//!  push(person, row) ─▶ rows spill   (person u32 ‖ length u32 ‖ postcard(row))*
//!  arrange(positions) ─▶ bucket k: the rows of the persons of chunks
//!                                  [k·per_bucket, (k+1)·per_bucket)
//!  rows(person) ─▶ its bucket loaded (once) ─▶ the person's rows, in extract order
//! ```
//!
//! This replaced a SQLite table with an index on person: one B-tree
//! insert per row and one indexed lookup per person cost the owner about
//! 5 µs per record (issue 13). Memory: one `u32` per person, and one
//! chunk's rows, undecoded, while its chunk is made (a bucket holding
//! several chunks is read once per chunk, keeping only that chunk's
//! rows), whatever the list's size.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use crate::store::StoreError;

/// The most bucket files a list is spread over.
pub(crate) const MAX_BUCKETS: usize = 64;

/// Where a spill's bytes live: a private file, or memory (no directory:
/// tests and in-memory federations).
enum Backing {
    File(PathBuf),
    Memory(Vec<u8>),
}

/// One append-then-read file of `person ‖ length ‖ bytes` records.
struct Spill {
    backing: Backing,
    writer: Option<BufWriter<File>>,
}

impl Spill {
    fn create(path: Option<PathBuf>) -> Result<Self, StoreError> {
        Ok(match path {
            Some(path) => {
                let _ = std::fs::remove_file(&path);
                let file = crate::private_fs::create_new(&path)?;
                Self {
                    backing: Backing::File(path),
                    writer: Some(BufWriter::with_capacity(1 << 16, file)),
                }
            }
            None => Self {
                backing: Backing::Memory(Vec::new()),
                writer: None,
            },
        })
    }

    fn append(&mut self, person: u32, bytes: &[u8]) -> Result<(), StoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| StoreError::Corrupt("staged row"))?;
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&person.to_le_bytes());
        head[4..].copy_from_slice(&len.to_le_bytes());
        match (&mut self.writer, &mut self.backing) {
            (Some(w), _) => {
                w.write_all(&head).map_err(StoreError::Scratch)?;
                w.write_all(bytes).map_err(StoreError::Scratch)?;
            }
            (None, Backing::Memory(v)) => {
                v.extend_from_slice(&head);
                v.extend_from_slice(bytes);
            }
            (None, Backing::File(_)) => return Err(StoreError::Corrupt("staging order")),
        }
        Ok(())
    }

    /// Ends the writing (flushes).
    fn close(&mut self) -> Result<(), StoreError> {
        if let Some(w) = self.writer.take() {
            // Flushed, not synced: a spill is rebuilt from the extract
            // after a crash.
            w.into_inner()
                .map_err(|e| StoreError::Scratch(e.into_error()))?;
        }
        Ok(())
    }

    /// Every record, in order.
    fn for_each(
        &mut self,
        mut f: impl FnMut(u32, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.close()?;
        let reader: Box<dyn Read + '_> = match &self.backing {
            Backing::File(path) => Box::new(BufReader::with_capacity(
                1 << 16,
                File::open(path).map_err(StoreError::Scratch)?,
            )),
            Backing::Memory(v) => Box::new(v.as_slice()),
        };
        let mut reader = reader;
        let mut head = [0u8; 8];
        let mut buf = Vec::new();
        loop {
            match read_full(&mut reader, &mut head)? {
                0 => return Ok(()),
                8 => {}
                _ => return Err(StoreError::Corrupt("staged row")),
            }
            let [p0, p1, p2, p3, l0, l1, l2, l3] = head;
            let person = u32::from_le_bytes([p0, p1, p2, p3]);
            let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
            buf.resize(len, 0);
            reader
                .read_exact(&mut buf)
                .map_err(|_| StoreError::Corrupt("staged row"))?;
            f(person, &buf)?;
        }
    }

    fn remove(&mut self) {
        self.writer = None;
        match &mut self.backing {
            Backing::File(path) => {
                let _ = std::fs::remove_file(path);
            }
            Backing::Memory(v) => *v = Vec::new(),
        }
    }
}

/// Reads until `buf` is full or the end: the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, StoreError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::Scratch(e)),
        }
    }
    Ok(n)
}

/// The rows of one list: appended, arranged into buckets, read per person.
pub(crate) struct Rows {
    dir: Option<PathBuf>,
    stem: String,
    rows: Spill,
    buckets: Vec<Spill>,
    /// The chunk of each person (`u32::MAX`: not in the list).
    chunk_of: Vec<u32>,
    /// Chunks per bucket.
    per_bucket: usize,
    /// The chunk loaded: its rows' bytes, and where each person's are.
    current: Option<u32>,
    loaded: Vec<u8>,
    index: HashMap<u32, Vec<(usize, usize)>>,
}

impl Rows {
    /// A fresh spill `<stem>-rows.spill` in `dir` (any earlier one is
    /// discarded), or in memory without a directory.
    pub(crate) fn create(dir: Option<&Path>, stem: &str) -> Result<Self, StoreError> {
        let path = |what: &str| dir.map(|d| d.join(format!("{stem}-{what}{SUFFIX}")));
        Ok(Self {
            dir: dir.map(Path::to_path_buf),
            stem: stem.to_string(),
            rows: Spill::create(path("rows"))?,
            buckets: Vec::new(),
            chunk_of: Vec::new(),
            per_bucket: 1,
            current: None,
            loaded: Vec::new(),
            index: HashMap::new(),
        })
    }

    /// Appends one row of `person`.
    pub(crate) fn push(&mut self, person: u32, values: &[String]) -> Result<(), StoreError> {
        let bytes = postcard::to_allocvec(values).map_err(|_| StoreError::Corrupt("staged row"))?;
        self.rows.append(person, &bytes)
    }

    /// Ends the loading.
    pub(crate) fn seal_off(&mut self) -> Result<(), StoreError> {
        self.rows.close()
    }

    /// Spreads the rows over the buckets of the list's chunks: `positions`
    /// are the persons in position order, `chunk_size` the chunk length.
    /// Rows of persons not in `positions` (reserved ones) are dropped.
    pub(crate) fn arrange(
        &mut self,
        positions: &[u32],
        chunk_size: usize,
    ) -> Result<(), StoreError> {
        let size = chunk_size.max(1);
        let chunks = positions.len().div_ceil(size).max(1);
        let per_bucket = chunks.div_ceil(MAX_BUCKETS.min(chunks));
        let buckets = chunks.div_ceil(per_bucket);
        let persons = positions.iter().map(|&p| p as usize + 1).max().unwrap_or(0);
        let mut chunk_of = vec![u32::MAX; persons];
        for (i, &p) in positions.iter().enumerate() {
            chunk_of[p as usize] = u32::try_from(i / size).unwrap_or(u32::MAX);
        }
        let mut out = (0..buckets)
            .map(|k| {
                Spill::create(
                    self.dir
                        .as_ref()
                        .map(|d| d.join(format!("{}-{k}{SUFFIX}", self.stem))),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.rows
            .for_each(|person, bytes| match chunk_of.get(person as usize) {
                Some(&c) if c != u32::MAX => out[c as usize / per_bucket].append(person, bytes),
                _ => Ok(()),
            })?;
        self.rows.remove();
        for b in &mut out {
            b.close()?;
        }
        self.buckets = out;
        self.chunk_of = chunk_of;
        self.per_bucket = per_bucket;
        self.current = None;
        self.index.clear();
        Ok(())
    }

    /// The rows of `person`, in extract order (after [`arrange`](Self::arrange)).
    pub(crate) fn rows(&mut self, person: u32) -> Result<Vec<Vec<String>>, StoreError> {
        let Some(&c) = self.chunk_of.get(person as usize) else {
            return Ok(Vec::new());
        };
        if c == u32::MAX {
            return Ok(Vec::new());
        }
        if self.current != Some(c) {
            self.load(c)?;
        }
        let Some(ranges) = self.index.get(&person) else {
            return Ok(Vec::new());
        };
        ranges
            .iter()
            .map(|&(from, to)| {
                let bytes = self
                    .loaded
                    .get(from..to)
                    .ok_or(StoreError::Corrupt("staged row"))?;
                postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("staged row"))
            })
            .collect()
    }

    /// Reads chunk `c`'s rows from its bucket, skipping the other chunks'.
    fn load(&mut self, c: u32) -> Result<(), StoreError> {
        self.loaded.clear();
        self.index.clear();
        self.current = None;
        let (loaded, index, chunk_of) = (&mut self.loaded, &mut self.index, &self.chunk_of);
        self.buckets
            .get_mut(c as usize / self.per_bucket)
            .ok_or(StoreError::Corrupt("staging bucket"))?
            .for_each(|person, bytes| {
                if chunk_of.get(person as usize) == Some(&c) {
                    let from = loaded.len();
                    loaded.extend_from_slice(bytes);
                    index.entry(person).or_default().push((from, loaded.len()));
                }
                Ok(())
            })?;
        self.current = Some(c);
        Ok(())
    }
}

impl Drop for Rows {
    fn drop(&mut self) {
        self.rows.remove();
        for b in &mut self.buckets {
            b.remove();
        }
    }
}

/// Spill files end so.
pub(crate) const SUFFIX: &str = ".spill";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every person's rows come back whole and in extract order, over
    /// many buckets, from files and from memory.
    #[test]
    fn rows_come_back_per_person_over_many_buckets() {
        let dir = tempfile::tempdir().expect("tempdir");
        for backing in [Some(dir.path()), None] {
            let persons = 1000u32;
            let mut rows = Rows::create(backing, "staging-P").expect("create");
            let mut want: HashMap<u32, Vec<Vec<String>>> = HashMap::new();
            // Rows of a person scattered over the extract: 1 to 3 each.
            for round in 0..3u32 {
                for p in 0..persons {
                    if p % 3 >= round {
                        let row = vec![format!("{p}"), format!("row {round}")];
                        rows.push(p, &row).expect("push");
                        want.entry(p).or_default().push(row);
                    }
                }
            }
            rows.seal_off().expect("sealed off");
            // A shuffled order, leaving out every tenth person.
            let positions: Vec<u32> = (0..persons)
                .map(|i| (i * 7919) % persons)
                .filter(|p| p % 10 != 0)
                .collect();
            rows.arrange(&positions, 7).expect("arrange");
            // 129 chunks in 43 buckets of 3: each bucket read once per chunk.
            assert!(rows.buckets.len() <= MAX_BUCKETS && rows.buckets.len() > 1);
            assert!(rows.per_bucket > 1, "{} chunks per bucket", rows.per_bucket);
            for &p in &positions {
                assert_eq!(rows.rows(p).expect("rows"), want[&p], "person {p}");
            }
            assert!(rows.rows(10).expect("rows").is_empty(), "left out");
            // Out of order (an earlier bucket again) still answers.
            assert_eq!(rows.rows(positions[0]).expect("rows"), want[&positions[0]]);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert!(left.is_empty(), "spill files stay behind: {left:?}");
    }

    #[test]
    fn a_truncated_spill_is_refused_not_misread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rows = Rows::create(Some(dir.path()), "staging-P").expect("create");
        rows.push(0, &["a".to_string()]).expect("push");
        rows.seal_off().expect("sealed off");
        let path = dir.path().join("staging-P-rows.spill");
        let len = std::fs::metadata(&path).expect("spill").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_len(len - 1).expect("truncate");
        assert!(matches!(
            rows.arrange(&[0], 4),
            Err(StoreError::Corrupt("staged row"))
        ));
    }
}
