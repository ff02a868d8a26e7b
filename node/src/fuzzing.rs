//! Entry points for the fuzz targets in `fuzz/` (compiled only with
//! `--cfg fuzzing`, which `cargo fuzz` sets), as quinn-proto's `fuzzing`
//! module: the node's crate-private readers of bytes from outside (the
//! manifest file, message frames, extract and mapping files, transcript
//! files as `kobling audit` reads them), wrapped so that a target can call
//! them with in-memory input and check what they return. Nothing here is
//! part of the API.
//!
//! Readers that take a stream are driven in pieces of at most `step`
//! bytes, so a target can check that the way the input arrives does not
//! change what is read.

use std::{
    future::Future,
    io::{self, Read},
    pin::{pin, Pin},
    task::{Context, Poll, Waker},
};

use tokio::io::{AsyncRead, ReadBuf};

use kobling_protocol::{
    extract::{ExtractStats, Person},
    ident::{IdMapping, ParseOptions},
    manifest::Manifest,
    messages::{DecodeError, Kind, Message},
    transcript::{Entry, FileError, Trailer},
};

use crate::{
    extract_file::{
        self,
        records::{RecordError, RecordReader},
    },
    manifest_file,
    net::frame::{self, FrameError},
};

/// Parses and validates manifest text as every command does.
///
/// # Errors
///
/// The error's text.
pub fn parse_manifest(text: &str) -> Result<Manifest, String> {
    manifest_file::parse(text).map_err(|e| format!("{e:#}"))
}

/// Renders a manifest as TOML, as `kobling keys` and the simulator do.
///
/// # Errors
///
/// The error's text.
pub fn render_manifest(manifest: &Manifest) -> Result<String, String> {
    manifest_file::render(manifest).map_err(|e| format!("{e:#}"))
}

/// How reading a stream of frames ended.
#[derive(Debug, PartialEq)]
pub enum FrameEnd {
    /// The stream ended between two frames.
    Clean,
    /// A frame announced more than `MAX_FRAME` bytes.
    TooLarge(u64),
    /// A frame announced more bytes than its kind may have.
    TooLargeForKind {
        /// The kind, read first.
        kind: Kind,
        /// The announced length.
        len: u64,
    },
    /// A kind the reader does not take from this peer.
    NotAllowed(Kind),
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the frame expected.
        expected: u64,
        /// Bytes of the frame received.
        got: u64,
    },
    /// A frame's body is not a message.
    Malformed(DecodeError),
    /// The in-memory stream failed (never expected).
    Io,
}

/// Reads frames from `bytes`, handed to the reader at most `step` bytes at
/// a time, until the stream ends or a frame is refused, as a connection's
/// request loop does.
pub fn read_frames(bytes: &[u8], step: usize) -> (Vec<Message>, FrameEnd) {
    let mut stream = Trickle {
        data: bytes,
        step: step.max(1),
    };
    let mut messages = Vec::new();
    loop {
        match block_on(frame::read_message(&mut stream)) {
            Ok(Some(m)) => messages.push(m),
            Ok(None) => return (messages, FrameEnd::Clean),
            Err(e) => {
                let end = match e {
                    FrameError::TooLarge(n) => FrameEnd::TooLarge(n),
                    FrameError::TooLargeForKind { kind, len } => {
                        FrameEnd::TooLargeForKind { kind, len }
                    }
                    FrameError::NotAllowed(kind) => FrameEnd::NotAllowed(kind),
                    FrameError::Truncated { expected, got } => {
                        FrameEnd::Truncated { expected, got }
                    }
                    FrameError::Decode(d) => FrameEnd::Malformed(d),
                    FrameError::Io(_) => FrameEnd::Io,
                };
                return (messages, end);
            }
        }
    }
}

/// Writes `message` as one frame, as a node sends it.
///
/// # Errors
///
/// The error's text (a message over `MAX_FRAME`).
pub fn write_frame(message: &Message) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    block_on(frame::write_message(&mut out, message)).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The records of a CSV input as the extract reader splits it.
#[derive(Debug, PartialEq, Eq)]
pub struct Records {
    /// Each record: the physical line it starts on and its fields' bytes.
    pub records: Vec<(u64, Vec<Vec<u8>>)>,
    /// SHA3-256 of the input as the reader hashed it.
    pub digest: [u8; 32],
    /// Bytes the reader read.
    pub bytes: u64,
}

/// Why the CSV reader refused an input.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordFailure {
    /// A record longer than 1 MiB, starting at `line`.
    TooLong {
        /// Its physical line.
        line: u64,
    },
    /// A quoted field opened at `line` and never closed.
    UnterminatedQuote {
        /// Its physical line.
        line: u64,
    },
    /// The in-memory input failed (never expected).
    Io,
}

/// Splits `bytes` into records with the extract reader, handed at most
/// `step` bytes per read. For each record it also asks `Record::line_of`
/// for the end of the last field (as error messages do), which must not
/// panic.
///
/// # Errors
///
/// [`RecordFailure`].
pub fn read_records(bytes: &[u8], step: usize) -> Result<Records, RecordFailure> {
    let failure = |e: RecordError| match e {
        RecordError::TooLong { line } => RecordFailure::TooLong { line },
        RecordError::UnterminatedQuote { line } => RecordFailure::UnterminatedQuote { line },
        RecordError::Io(_) => RecordFailure::Io,
    };
    let mut reader = RecordReader::new(StdTrickle {
        data: bytes,
        step: step.max(1),
    })
    .map_err(failure)?;
    let mut records = Vec::new();
    while let Some(rec) = reader.next_record().map_err(failure)? {
        let fields: Vec<Vec<u8>> = rec.fields().map(<[u8]>::to_vec).collect();
        if let Some(last) = fields.len().checked_sub(1) {
            let _ = rec.line_of(last, fields[last].len());
        }
        records.push((rec.line(), fields));
    }
    let (digest, bytes) = reader.finish().map_err(failure)?;
    Ok(Records {
        records,
        digest: digest.0,
        bytes,
    })
}

/// One excluded row of an extract, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    /// The reason code.
    pub reason: &'static str,
    /// The physical line.
    pub line: u64,
    /// What is wrong.
    pub detail: String,
    /// The identifier field, masked.
    pub masked: Option<String>,
}

/// What one pass over an extract found (`ExtractSummary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractSummary {
    /// SHA3-256 of the input.
    pub digest: [u8; 32],
    /// The input's size.
    pub bytes: u64,
    /// The variables.
    pub columns: Vec<String>,
    /// The counts.
    pub stats: ExtractStats,
    /// Persons with more than one row.
    pub persons_with_several_rows: u64,
    /// The most rows of one person.
    pub max_rows_per_person: u64,
    /// Variables holding identifiers, with their row counts.
    pub identifier_columns: Vec<(String, u64)>,
    /// The excluded rows shown to the operator.
    pub details: Vec<RowIssue>,
}

impl ExtractSummary {
    fn of(s: extract_file::ExtractSummary) -> Self {
        Self {
            digest: s.digest.0,
            bytes: s.bytes,
            columns: s.columns,
            stats: s.stats,
            persons_with_several_rows: s.persons_with_several_rows,
            max_rows_per_person: s.max_rows_per_person,
            identifier_columns: s.identifier_columns,
            details: s
                .details
                .into_iter()
                .map(|d| RowIssue {
                    reason: d.reason,
                    line: d.line,
                    detail: d.detail,
                    masked: d.masked,
                })
                .collect(),
        }
    }
}

/// Reads an extract as the node does when it prepares a list
/// (`stage_extract`: identifiers kept, rows handed to a sink by person),
/// and checks that the in-memory reader (`read_extract`) gets exactly the
/// same persons, rows and summary, or the same refusal.
///
/// # Errors
///
/// The refusal's text, as the operator would see it.
///
/// # Panics
///
/// If the two readers disagree (a bug the fuzzer should report).
pub fn read_extract(
    bytes: &[u8],
    step: usize,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<(ExtractSummary, Vec<Person>), String> {
    let trickle = || StdTrickle {
        data: bytes,
        step: step.max(1),
    };
    let staged = extract_file::stage_persons_from(trickle(), options, mapping)
        .map(|(summary, persons)| (ExtractSummary::of(summary), persons))
        .map_err(|e| e.to_string());
    let in_memory = extract_file::read_extract_from(trickle(), options, mapping)
        .map(|read| (ExtractSummary::of(read.summary), read.persons))
        .map_err(|e| e.to_string());
    assert!(
        staged == in_memory,
        "the staged and the in-memory extract readers disagree"
    );
    staged
}

/// What a holder's pseudonymous extract read gives: the summary, and per
/// person (in order of first appearance) the pseudonym's 32 bytes and its
/// rows.
pub type PseudonymousRead = (ExtractSummary, Vec<([u8; 32], Vec<Vec<String>>)>);

/// Reads a register domain holder's extract (a `pseudonym` column instead
/// of `fnr`) as the node does when it prepares the holder's list
/// (`extract_file::pseudonymous::stage_pseudonymous_from`), in pieces of
/// at most `step` bytes.
///
/// # Errors
///
/// The refusal's text, as the operator would see it.
pub fn read_pseudonymous_extract(bytes: &[u8], step: usize) -> Result<PseudonymousRead, String> {
    let input = StdTrickle {
        data: bytes,
        step: step.max(1),
    };
    let mut rows_of: Vec<Vec<Vec<String>>> = Vec::new();
    let (summary, points) =
        extract_file::pseudonymous::stage_pseudonymous_from(input, |person, row| {
            let person = person as usize;
            if rows_of.len() <= person {
                rows_of.resize_with(person + 1, Vec::new);
            }
            rows_of[person].push(row);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    rows_of.resize_with(points.len(), Vec::new);
    let persons = points.iter().map(|p| p.0).zip(rows_of).collect();
    Ok((ExtractSummary::of(summary), persons))
}

/// Checks an extract as `kobling extract check` does (`check_extract`).
///
/// # Errors
///
/// The refusal's text, as the operator would see it.
pub fn check_extract(
    bytes: &[u8],
    step: usize,
    options: ParseOptions,
    mapping: Option<&IdMapping>,
) -> Result<ExtractSummary, String> {
    let input = StdTrickle {
        data: bytes,
        step: step.max(1),
    };
    extract_file::check_extract_from(input, options, mapping)
        .map(ExtractSummary::of)
        .map_err(|e| e.to_string())
}

/// Reads a mapping file of changed identifiers (`old,current`).
///
/// # Errors
///
/// The refusal's text, as the operator would see it.
pub fn read_mapping(bytes: &[u8], options: ParseOptions) -> Result<IdMapping, String> {
    extract_file::read_mapping(bytes, options).map_err(|e| e.to_string())
}

/// What a reservation table file held (`kobling node run
/// --reservations`), in counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationsRead {
    /// Data rows.
    pub rows: u64,
    /// Distinct persons who reserved.
    pub persons: u64,
    /// Invalid identifiers, all reasons.
    pub invalid: u64,
    /// Reason codes seen.
    pub reasons: Vec<&'static str>,
    /// SHA3-256 of the bytes.
    pub digest: [u8; 32],
    /// The operator's summary line.
    pub described: String,
}

/// Reads a reservation table file as the node does.
///
/// # Errors
///
/// The refusal's text, as the operator would see it.
pub fn read_reservations(bytes: &[u8], options: ParseOptions) -> Result<ReservationsRead, String> {
    let loaded = crate::reservation_file::read_reservations(bytes, options, None)
        .map_err(|e| e.to_string())?;
    Ok(ReservationsRead {
        rows: loaded.stats.rows,
        persons: loaded.table.len() as u64,
        invalid: loaded.stats.invalid.iter().map(|i| i.count).sum(),
        reasons: loaded.stats.invalid.iter().map(|i| i.reason).collect(),
        digest: loaded.digest.0,
        described: crate::reservation_file::describe(&loaded.stats),
    })
}

/// Reads transcript bytes as `kobling audit` does: the entries (all, or
/// those before the damage) and the trailer or the format error.
pub fn read_transcript(bytes: &[u8]) -> (Vec<Entry>, Result<Trailer, FileError>) {
    let loaded = crate::cmd::audit::read_transcript(bytes);
    assert_eq!(loaded.size, bytes.len());
    (loaded.entries, loaded.trailer)
}

/// What `kobling audit` prints for transcript bytes: `audit show` (with
/// every chunk) and, with a manifest, `audit verify` as text and as JSON.
#[allow(clippy::type_complexity)]
pub fn audit(
    bytes: &[u8],
    manifest: Option<&Manifest>,
) -> (String, Option<(String, Result<String, String>)>) {
    let loaded = crate::cmd::audit::read_transcript(bytes);
    let (shown, _) = crate::cmd::audit::show("fuzz", &loaded, manifest, true);
    let report = manifest.map(|m| {
        let report = crate::cmd::audit::Report::new("fuzz", &loaded, m);
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string());
        (report.to_text(), json)
    });
    (shown, report)
}

/// Polls an in-memory I/O future to completion (it never waits on
/// anything, so a no-op waker does).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// An in-memory stream that hands out at most `step` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.step.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// [`Trickle`] for `std::io::Read`.
struct StdTrickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for StdTrickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Routes an HTTP request head as the metrics endpoint does (bytes from
/// any client of `--metrics ADDR`): `metrics`, `health`, `not-found`,
/// `bad-method` or `bad`.
pub fn metrics_route(head: &[u8]) -> &'static str {
    use crate::metrics::{route, Route};
    match route(head) {
        Route::Metrics => "metrics",
        Route::Health => "health",
        Route::NotFound => "not-found",
        Route::BadMethod => "bad-method",
        Route::Bad => "bad",
    }
}

/// What the operators' and researcher's files parse to: a node
/// configuration (`node run --config`), a member entry from another node
/// (`manifest add --entry`), a project spec (`project submit`, `fetch
/// --spec`), each `Ok` with a summary or `Err` with the error's text.
pub fn parse_operator_files(
    text: &str,
) -> (
    Result<String, String>,
    Result<String, String>,
    Result<String, String>,
) {
    let err = |e: anyhow::Error| format!("{e:#}");
    (
        crate::cmd::node::parse_config(text)
            .map(|c| format!("{c:?}"))
            .map_err(err),
        crate::cmd::manifest::parse_entry(text)
            .map(|m| m.name.to_string())
            .map_err(err),
        crate::spec::Spec::parse(text)
            .map(|s| {
                // Every declared type names a variable of its register.
                for r in &s.registers {
                    for v in r.types.keys() {
                        assert!(r.variables.contains(v), "a type of no variable");
                    }
                }
                s.project
            })
            .map_err(err),
    )
}
