//! A streaming CSV record reader that hashes every byte it reads and knows
//! the physical line each record starts on.
//!
//! # Dialect
//!
//! RFC 4180 with the leniencies of the `csv` crate (its default
//! configuration), which a differential test below checks field by field:
//!
//! - fields are separated by `,`; a record ends at `\n`, `\r\n` or a lone
//!   `\r`; empty lines (between records, at the start and at the end) are
//!   skipped;
//! - a field that starts with `"` is quoted: it may contain `,`, line breaks
//!   and `""` (one `"`); bytes after its closing quote are appended to it
//!   (`"ab"c` is `abc`); a `"` inside an unquoted field is an ordinary byte;
//! - a UTF-8 byte-order mark at the very start of the input is skipped (but
//!   hashed, like every other byte).
//!
//! Unlike the `csv` crate it refuses two things, because both mean the file
//! is not what the operator thinks it is:
//!
//! - a quoted field still open at the end of the input
//!   ([`RecordError::UnterminatedQuote`]), which the `csv` crate silently
//!   closes;
//! - a record longer than [`MAX_RECORD_BYTES`] ([`RecordError::TooLong`]),
//!   so that a stray `"` early in a 2 GB file cannot make one record of the
//!   rest of the file in memory.
//!
//! # Why not the `csv` crate's reader
//!
//! `csv` 1.4 reports as a record's line the line where the parser *resumed*
//! after the previous record: with CRLF line endings that is the previous
//! line (the `\n` of `\r\n` is consumed with the next record), and after
//! empty lines it is the first empty line. Operators look rows up in an
//! editor by line number, so this reader counts physical lines itself: a
//! line break is `\r\n`, `\n` or a lone `\r`, inside quoted fields too.
//!
//! # Memory
//!
//! One [`CHUNK`]-byte read buffer and the current record (at most
//! [`MAX_RECORD_BYTES`] of field bytes), whatever the size of the input.

use std::io::{self, Read};

use kobling_protocol::types::Digest;
use sha3::{Digest as _, Sha3_256};

/// The longest record, counted in raw bytes from its first byte up to and
/// including its line break: 1 MiB.
pub(crate) const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Bytes read from the input at a time.
const CHUNK: usize = 64 * 1024;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record: its fields' bytes (quotes removed) and where it starts.
#[derive(Debug, Default)]
pub(crate) struct Record {
    line: u64,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum RecordError {
    /// Reading the input failed.
    Io(io::Error),
    /// The record starting at `line` is longer than [`MAX_RECORD_BYTES`].
    TooLong {
        /// Physical line where the record starts.
        line: u64,
    },
    /// The quoted field opened at `line` is never closed.
    UnterminatedQuote {
        /// Physical line of the opening `"`.
        line: u64,
    },
}

/// Reads records from `R` one at a time, hashing the input as it goes.
pub(crate) struct RecordReader<R> {
    inner: R,
    hasher: Sha3_256,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    bytes_read: u64,
    /// Physical line (1-based) of the next byte.
    line: u64,
    /// The last byte was `\r`: a `\n` now completes that line break.
    after_cr: bool,
    state: State,
    /// Raw bytes of the current record so far.
    raw: u64,
    /// Line of the `"` that opened the current quoted field.
    quote_line: u64,
    record: Record,
}

/// Where the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between records: line breaks are skipped.
    StartRecord,
    /// At the first byte of a field.
    StartField,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// After a `"` inside a quoted field: `"` again is a literal quote.
    QuoteInQuoted,
}

impl Record {
    /// The physical line (1-based) where the record starts.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// The number of fields.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i`'s bytes.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub(crate) fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The fields in order.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.field(i))
    }

    /// The physical line of byte `at` of field `field`: the record's line
    /// plus the line breaks (`\r\n`, `\n`, lone `\r`) inside quoted fields
    /// before it.
    pub(crate) fn line_of(&self, field: usize, at: usize) -> u64 {
        let before = (0..field).map(|i| line_breaks(self.field(i))).sum::<u64>();
        let here = line_breaks(&self.field(field)[..at]);
        self.line + before + here
    }

    fn clear(&mut self, line: u64) {
        self.line = line;
        self.bytes.clear();
        self.ends.clear();
    }

    fn end_field(&mut self) {
        self.ends.push(self.bytes.len());
    }
}

/// Line breaks in `bytes`: `\r\n`, `\n` and lone `\r` count one each.
fn line_breaks(bytes: &[u8]) -> u64 {
    let mut n = 0;
    let mut after_cr = false;
    for &b in bytes {
        match b {
            b'\r' => {
                n += 1;
                after_cr = true;
            }
            b'\n' => {
                if !after_cr {
                    n += 1;
                }
                after_cr = false;
            }
            _ => after_cr = false,
        }
    }
    n
}

impl<R: Read> RecordReader<R> {
    /// A reader of `inner`, which it reads in [`CHUNK`]-byte pieces.
    ///
    /// # Errors
    ///
    /// [`RecordError::Io`] if the first read fails.
    pub(crate) fn new(inner: R) -> Result<Self, RecordError> {
        let mut r = RecordReader {
            inner,
            hasher: Sha3_256::new(),
            buf: vec![0; CHUNK].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            bytes_read: 0,
            line: 1,
            after_cr: false,
            state: State::StartRecord,
            raw: 0,
            quote_line: 0,
            record: Record::default(),
        };
        while r.len < BOM.len() && !r.eof {
            r.fill()?;
        }
        if r.buf[..r.len].starts_with(BOM) {
            r.pos = BOM.len();
        }
        Ok(r)
    }

    /// The next record, or `None` at the end of the input.
    ///
    /// # Errors
    ///
    /// [`RecordError::Io`], [`RecordError::TooLong`] or
    /// [`RecordError::UnterminatedQuote`]; the reader must not be used
    /// after an error.
    pub(crate) fn next_record(&mut self) -> Result<Option<&Record>, RecordError> {
        loop {
            if self.pos == self.len {
                if self.eof {
                    return self.end_of_input();
                }
                self.fill()?;
                continue;
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            let line = self.line;
            self.count_line(b);
            if self.state == State::StartRecord {
                if b == b'\r' || b == b'\n' {
                    continue;
                }
                self.record.clear(line);
                self.raw = 0;
                self.state = State::StartField;
            }
            self.raw += 1;
            if self.raw > MAX_RECORD_BYTES {
                return Err(RecordError::TooLong {
                    line: self.record.line,
                });
            }
            let rec = &mut self.record;
            self.state = match (self.state, b) {
                (State::StartField, b'"') => {
                    self.quote_line = line;
                    State::Quoted
                }
                (State::Quoted, b'"') => State::QuoteInQuoted,
                (State::Quoted, _) | (State::QuoteInQuoted, b'"') => {
                    rec.bytes.push(b);
                    State::Quoted
                }
                (_, b',') => {
                    rec.end_field();
                    State::StartField
                }
                (_, b'\r' | b'\n') => {
                    rec.end_field();
                    self.state = State::StartRecord;
                    return Ok(Some(&self.record));
                }
                _ => {
                    rec.bytes.push(b);
                    State::Unquoted
                }
            };
        }
    }

    /// The SHA3-256 of every byte of the input and the number of bytes,
    /// reading (and hashing) whatever was not read yet.
    ///
    /// # Errors
    ///
    /// [`RecordError::Io`] if reading the rest fails.
    pub(crate) fn finish(mut self) -> Result<(Digest, u64), RecordError> {
        while !self.eof {
            self.pos = self.len;
            self.fill()?;
        }
        Ok((Digest(self.hasher.finalize().into()), self.bytes_read))
    }

    /// At the end of the input: the last record if one is open.
    fn end_of_input(&mut self) -> Result<Option<&Record>, RecordError> {
        match self.state {
            State::StartRecord => Ok(None),
            State::Quoted => Err(RecordError::UnterminatedQuote {
                line: self.quote_line,
            }),
            State::StartField | State::Unquoted | State::QuoteInQuoted => {
                self.record.end_field();
                self.state = State::StartRecord;
                Ok(Some(&self.record))
            }
        }
    }

    fn count_line(&mut self, b: u8) {
        match b {
            b'\r' => {
                self.line += 1;
                self.after_cr = true;
            }
            b'\n' => {
                if !self.after_cr {
                    self.line += 1;
                }
                self.after_cr = false;
            }
            _ => self.after_cr = false,
        }
    }

    /// Reads more input after the unread bytes, hashing it.
    fn fill(&mut self) -> Result<(), RecordError> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RecordError::Io(e)),
            }
        };
        self.hasher.update(&self.buf[self.len..self.len + n]);
        self.len += n;
        self.bytes_read += n as u64;
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kobling_protocol::hash::sha3_256;

    use super::*;

    /// A reader that returns at most `step` bytes per call, to cross every
    /// buffer boundary.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    type Parsed = Vec<(u64, Vec<Vec<u8>>)>;

    fn parse_with(data: &[u8], step: usize) -> Result<Parsed, RecordError> {
        let mut r = RecordReader::new(Trickle { data, step })?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push((rec.line(), rec.fields().map(<[u8]>::to_vec).collect()));
        }
        let (digest, bytes) = r.finish()?;
        assert_eq!(digest.0, sha3_256(data));
        assert_eq!(bytes, data.len() as u64);
        Ok(out)
    }

    /// Parses with several read sizes and checks they agree.
    fn parse(data: &[u8]) -> Result<Parsed, RecordError> {
        let whole = parse_with(data, usize::MAX);
        for step in [1, 2, 3, 7] {
            let piecewise = parse_with(data, step);
            assert_eq!(
                format!("{whole:?}"),
                format!("{piecewise:?}"),
                "step {step}"
            );
        }
        whole
    }

    fn rec(line: u64, fields: &[&str]) -> (u64, Vec<Vec<u8>>) {
        (line, fields.iter().map(|f| f.as_bytes().to_vec()).collect())
    }

    #[test]
    fn line_endings_and_blank_lines() {
        let want = vec![
            rec(1, &["a", "b"]),
            rec(2, &["1", "2"]),
            rec(3, &["3", "4"]),
        ];
        for data in [
            &b"a,b\n1,2\n3,4\n"[..],
            b"a,b\r\n1,2\r\n3,4\r\n",
            b"a,b\r1,2\r3,4\r",
            b"a,b\n1,2\r\n3,4",
        ] {
            assert_eq!(parse(data).expect("parses"), want, "{data:?}");
        }
        // Empty lines are skipped but counted.
        assert_eq!(
            parse(b"\n\r\na,b\n\n\n1,2\n\r\n3,4\n\n").expect("parses"),
            vec![
                rec(3, &["a", "b"]),
                rec(6, &["1", "2"]),
                rec(8, &["3", "4"])
            ]
        );
    }

    #[test]
    fn quoted_fields() {
        let data = b"a,b\r\n\"x,\r\ny\",\"say \"\"hi\"\"\"\r\n\"\"\"\",\"ab\"c\r\nd\"e,\"\n\"\n";
        assert_eq!(
            parse(data).expect("parses"),
            vec![
                rec(1, &["a", "b"]),
                rec(2, &["x,\r\ny", "say \"hi\""]),
                rec(4, &["\"", "abc"]),
                rec(5, &["d\"e", "\n"]),
            ]
        );
        let mut r = RecordReader::new(&data[..]).expect("reader");
        for _ in 0..3 {
            r.next_record().expect("ok");
        }
        let last = r.next_record().expect("ok").expect("record");
        assert_eq!(last.line_of(0, 0), 5);
        assert_eq!(last.line_of(1, 0), 5);
        assert_eq!(last.line_of(1, 1), 6);
    }

    #[test]
    fn bom_is_skipped_but_hashed() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFfnr,x\n1,2\n").expect("parses"),
            vec![rec(1, &["fnr", "x"]), rec(2, &["1", "2"])]
        );
        assert_eq!(parse(b"\xEF\xBB\xBF").expect("parses"), vec![]);
        // Part of a BOM is data.
        assert_eq!(
            parse(b"\xEF\xBB").expect("parses"),
            vec![(1, vec![b"\xEF\xBB".to_vec()])]
        );
        // Only at the very start.
        assert_eq!(
            parse(b"a\n\xEF\xBB\xBFb\n").expect("parses"),
            vec![rec(1, &["a"]), (2, vec![b"\xEF\xBB\xBFb".to_vec()])]
        );
    }

    #[test]
    fn empty_fields_and_end_of_input() {
        assert_eq!(parse(b"").expect("parses"), vec![]);
        assert_eq!(parse(b"\n\n").expect("parses"), vec![]);
        assert_eq!(parse(b",").expect("parses"), vec![rec(1, &["", ""])]);
        assert_eq!(parse(b"a,\n").expect("parses"), vec![rec(1, &["a", ""])]);
        assert_eq!(parse(b"\"\"").expect("parses"), vec![rec(1, &[""])]);
        assert_eq!(parse(b"  \n").expect("parses"), vec![rec(1, &["  "])]);
    }

    #[test]
    fn unterminated_quote_is_refused() {
        match parse(b"a,b\n1,2\n3,\"x\ny\n") {
            Err(RecordError::UnterminatedQuote { line }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_record_is_refused() {
        let mut data = b"a,b\n1,\"".to_vec();
        data.resize(data.len() + MAX_RECORD_BYTES as usize + 10, b'x');
        match parse_with(&data, usize::MAX) {
            Err(RecordError::TooLong { line }) => assert_eq!(line, 2),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        // Exactly at the limit is fine.
        let mut data = vec![b'x'; MAX_RECORD_BYTES as usize - 1];
        data.push(b'\n');
        assert_eq!(parse_with(&data, usize::MAX).expect("parses").len(), 1);
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        assert!(matches!(
            RecordReader::new(Failing).map(|_| ()),
            Err(RecordError::Io(_))
        ));
    }

    /// A small deterministic generator (xorshift64*), so the differential
    /// test needs no extra dependency and is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// Field by field, the same records as the `csv` crate (default
    /// dialect, flexible lengths) on random inputs over the bytes that
    /// matter; only inputs that end inside a quoted field differ (refused
    /// here, closed silently there).
    #[test]
    fn agrees_with_the_csv_crate() {
        let alphabet = b"ab,\"\r\n \xEF\xBB\xBF";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut compared = 0;
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            let ours = match parse_with(&data, 5) {
                Ok(v) => v,
                Err(RecordError::UnterminatedQuote { .. }) => continue,
                Err(e) => panic!("{e:?}"),
            };
            let mut theirs = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&data[..]);
            let theirs: Vec<Vec<Vec<u8>>> = theirs
                .byte_records()
                .map(|r| r.expect("csv").iter().map(<[u8]>::to_vec).collect())
                .collect();
            let ours: Vec<Vec<Vec<u8>>> = ours.into_iter().map(|(_, f)| f).collect();
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&data));
            compared += 1;
        }
        assert!(compared > 10_000, "{compared}");
    }
}
