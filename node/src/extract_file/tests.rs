//! Unit tests of the extract pass: what the node receives (persons and
//! their values), agreement of the node's and the check's counts, and
//! streaming over a large generated input.

use std::io::{self, Read};

use kobling_protocol::{
    hash::sha3_256,
    ident::IdKind,
    seal::{MAX_CELL_BYTES, MAX_ROWS_PER_PERSON},
};
use sha3::{Digest as _, Sha3_256};

use super::*;

const STRICT: ParseOptions = ParseOptions {
    allow_synthetic: false,
};

/// Valid identifiers (check digits computed by hand in `ident`'s tests).
const A: &str = "01018012371";
const B: &str = "41018012365";
const C: &str = "01418012354";

fn read(data: &[u8]) -> Result<ExtractRead, ExtractError> {
    read_extract_from(data, STRICT, None)
}

fn check(data: &[u8]) -> Result<ExtractSummary, ExtractError> {
    check_extract_from(data, STRICT, None)
}

fn values(p: &Person) -> Vec<Vec<&str>> {
    p.rows
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect()
}

#[test]
fn persons_keep_every_value_exactly() {
    let data = format!(
        "\u{FEFF}diag, fnr ,note\r\n\
         F20,{A},\"a, b\"\r\n\
         F21,\" {B}\",\"two\r\nlines \"\"quoted\"\"\"\r\n\
         ,{A},  spaces kept  \r\n\
         F22,01018012372,x\r\n"
    );
    let r = read(data.as_bytes()).expect("read");
    assert_eq!(r.summary.columns, ["diag", "note"]);
    assert_eq!(r.summary.digest.0, sha3_256(data.as_bytes()));
    assert_eq!(r.summary.bytes, data.len() as u64);
    assert_eq!(r.persons.len(), 2);
    assert_eq!(r.persons[0].id.expose(), A);
    assert_eq!(
        values(&r.persons[0]),
        [vec!["F20", "a, b"], vec!["", "  spaces kept  "]]
    );
    assert_eq!(r.persons[1].id.expose(), B);
    assert_eq!(
        values(&r.persons[1]),
        [vec!["F21", "two\r\nlines \"quoted\""]]
    );
    let st = &r.summary.stats;
    assert_eq!((st.rows, st.valid_rows, st.persons), (4, 3, 2));
    assert_eq!(st.invalid.len(), 1);
    assert_eq!(st.invalid[0].reason, "bad-check-digit");
    // Line 6: the quoted field of line 3 spans two lines.
    assert_eq!(st.invalid[0].lines, [6]);
    assert_eq!(r.summary.persons_with_several_rows, 1);
    assert_eq!(r.summary.max_rows_per_person, 2);
    assert_eq!(
        r.summary.details,
        [RowIssue {
            reason: "bad-check-digit",
            line: 6,
            detail: "identifier check digit k2 is wrong".into(),
            masked: Some("01*********".into()),
        }]
    );
}

/// A file with one of every row-level problem.
fn mixed() -> String {
    let full_width: String = A
        .chars()
        .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).expect("digit"))
        .collect();
    [
        "fnr,a,b".to_owned(),
        format!("{A},1,2"),
        format!("{A},1"),
        format!("{B},1,2,3"),
        "01018012372,1,2".to_owned(),
        "29020012380,1,2".to_owned(),
        ",1,2".to_owned(),
        "   ,1,2".to_owned(),
        "0101801237,1,2".to_owned(),
        "010180123711,1,2".to_owned(),
        format!("{full_width},1,2"),
        "01818012337,1,2".to_owned(),
        format!("{C},\"x\n\",{}", "y".repeat(MAX_CELL_BYTES + 1)),
        format!("{C},1,2"),
        String::new(),
        format!("{B},\"1,2\",3"),
    ]
    .join("\n")
}

#[test]
fn bad_rows_are_counted_per_reason_and_good_rows_kept() {
    let r = read(mixed().as_bytes()).expect("read");
    let st = &r.summary.stats;
    let by_reason: Vec<(&str, u64, Vec<u64>)> = st
        .invalid
        .iter()
        .map(|s| (s.reason, s.count, s.lines.clone()))
        .collect();
    assert_eq!(
        by_reason,
        [
            ("bad-check-digit", 1, vec![5]),
            ("bad-date", 1, vec![6]),
            (CELL_TOO_LONG, 1, vec![13]),
            ("empty", 2, vec![7, 8]),
            ("non-digit", 1, vec![11]),
            (RAGGED_ROW, 2, vec![3, 4]),
            ("synthetic-not-allowed", 1, vec![12]),
            ("wrong-length", 2, vec![9, 10]),
        ]
    );
    assert_eq!((st.rows, st.valid_rows, st.persons), (14, 3, 3));
    assert_eq!(st.valid_rows, st.rows - st.invalid_rows());
    let ids: Vec<&str> = r.persons.iter().map(|p| p.id.expose()).collect();
    assert_eq!(ids, [A, C, B]);
    assert_eq!(values(&r.persons[2]), [vec!["1,2", "3"]]);
    let details: Vec<(u64, Option<&str>)> = r
        .summary
        .details
        .iter()
        .map(|d| (d.line, d.masked.as_deref()))
        .collect();
    assert_eq!(
        details,
        [
            (3, None),
            (4, None),
            (5, Some("01*********")),
            (6, Some("29*********")),
            (7, None),
            (8, None),
            (9, Some("01********")),
            (10, Some("01**********")),
            (11, Some("***********")),
            (12, Some("01*********")),
            (13, None),
        ]
    );
    assert!(r.summary.details[6].detail.contains("leading 0"));
    assert_eq!(r.summary.details[1].detail, "4 fields, the header has 3");
    assert_eq!(r.summary.details[0].detail, "2 fields, the header has 3");
    // Nothing an operator sees contains an identifier.
    let shown = format!("{:?}", r.summary);
    for id in [A, B, C, "01018012372", "0101801237"] {
        assert!(!shown.contains(id), "{shown}");
    }
}

#[test]
fn check_counts_what_the_node_counts() {
    let mapping = IdMapping::new([(
        Identifier::parse(B, STRICT).expect("valid"),
        Identifier::parse(A, STRICT).expect("valid"),
    )])
    .expect("mapping");
    for data in [
        mixed(),
        format!("fnr\n{A}\n{B}\n{C}\n{A}\n"),
        "fnr,x\n".to_owned(),
    ] {
        for m in [None, Some(&mapping)] {
            let node = read_extract_from(data.as_bytes(), STRICT, m).expect("read");
            let checked = check_extract_from(data.as_bytes(), STRICT, m).expect("check");
            assert_eq!(node.summary, checked);
        }
    }
    let s = check_extract_from(
        format!("fnr\n{A}\n{B}\n{C}\n{A}\n").as_bytes(),
        STRICT,
        Some(&mapping),
    )
    .expect("check");
    assert_eq!((s.stats.persons, s.stats.mapped_rows), (2, 1));
    assert_eq!((s.persons_with_several_rows, s.max_rows_per_person), (1, 3));
}

#[test]
fn shape_errors_refuse_the_file() {
    let msg = |data: &[u8]| check(data).map(|_| ()).expect_err("refused").to_string();
    assert!(msg(b"").starts_with("the extract is empty"));
    assert!(msg(b"\xEF\xBB\xBF\r\n\n").starts_with("the extract is empty"));
    assert_eq!(
        msg(b"id,diag\n1,2\n"),
        "no column `fnr` in the header (line 1); columns found: `id`, `diag`"
    );
    let m = msg(format!("{A},F20\n{B},F21\n").as_bytes());
    assert!(m.contains("`01*********`, `F20`"), "{m}");
    assert!(m.contains("needs a header row"), "{m}");
    assert!(!m.contains(A));
    assert!(msg(b"FNR,x\n").contains("named `fnr` exactly, not `FNR`"));
    assert_eq!(
        msg(b"fnr,x,y,x\n"),
        "the header names column `x` twice (columns 2 and 4); every column needs its own name"
    );
    assert!(msg(b"fnr,x,fnr\n").contains("`fnr` twice (columns 1 and 3)"));
    assert_eq!(msg(b"fnr, ,y\n"), "column 2 of the header has no name");
    assert!(msg(b"fnr,lnr\n").starts_with("column 2 is named `lnr`"));
    let wide = format!(
        "fnr{}\n",
        (0..513).map(|i| format!(",v{i}")).collect::<String>()
    );
    assert!(msg(wide.as_bytes()).contains("513 variables"));
    assert!(msg(format!("fnr,{}\n", "n".repeat(129)).as_bytes()).contains("129 bytes"));
    // The header's line is where it starts.
    assert!(msg(b"\n\nid\n").starts_with("no column `fnr` in the header (line 3)"));
}

#[test]
fn invalid_utf8_names_the_physical_line() {
    let data = [
        format!("fnr,x\n{A},\"a\r\nb\"\n{A},\"c\nd").into_bytes(),
        b"\xE9\"\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        check(&data).map(|_| ()).expect_err("refused").to_string(),
        "invalid UTF-8 at line 5, column `x`: the file must be UTF-8 (an export in Latin-1, \
         Windows-1252 or UTF-16 is the usual cause: export it again as UTF-8)"
    );
    let m = check(b"fnr,caf\xE9\n")
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        m.starts_with("invalid UTF-8 at line 1, column 2 (in the header)"),
        "{m}"
    );
    let data = [format!("fnr\n{A},").into_bytes(), b"\xE9\n".to_vec()].concat();
    let m = check(&data).map(|_| ()).expect_err("refused");
    assert!(m
        .to_string()
        .starts_with("invalid UTF-8 at line 2, column 2 (past the header's 1)"));
    // UTF-16 (with its BOM) is not UTF-8.
    let utf16: Vec<u8> = "\u{FEFF}fnr\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(check(&utf16)
        .map(|_| ())
        .expect_err("refused")
        .to_string()
        .contains("UTF-16"));
}

#[test]
fn broken_quotes_refuse_the_file() {
    let m = check(format!("fnr,x\n{A},1\n{A},\"open\n{A},2\n").as_bytes())
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert_eq!(
        m,
        "the quoted field opened at line 3 is never closed (a quote (\") is missing)"
    );
    let mut data = format!("fnr,x\n{A},\"open\n").into_bytes();
    data.extend(format!("{A},2\n").repeat(100_000).into_bytes());
    data.extend(b"\"\n");
    let m = check(&data).map(|_| ()).expect_err("refused").to_string();
    assert!(
        m.starts_with("the record starting at line 2 is longer than 1 MiB"),
        "{m}"
    );
}

#[test]
fn header_only_is_an_empty_extract() {
    let s = check(b"fnr,diag\r\n").expect("read");
    assert_eq!(s.columns, ["diag"]);
    assert_eq!(s.stats, ExtractStats::default());
    assert_eq!(s.unusable_reason(), None);
    let s = check(b"fnr\n01018012372\n").expect("read");
    assert_eq!(
        s.unusable_reason(),
        Some("no data row has a valid identifier")
    );
}

#[test]
fn too_many_rows_for_one_person() {
    let rows = MAX_ROWS_PER_PERSON + 1;
    let data = format!("fnr\n{}", format!("{A}\n").repeat(rows));
    assert_eq!(
        check(data.as_bytes()).map(|_| ()).expect_err("refused").to_string(),
        format!("a person has {rows} rows; at most {MAX_ROWS_PER_PERSON} rows per person can be delivered")
    );
}

/// Generates an extract on the fly (never in memory as a whole) and
/// hashes what it hands out.
struct Generated {
    ids: Vec<String>,
    rows: u64,
    next: u64,
    pending: Vec<u8>,
    at: usize,
    hasher: Sha3_256,
    bytes: u64,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            self.pending.clear();
            self.at = 0;
            if self.next == 0 {
                self.pending.extend(b"fnr,diag,dato,note\r\n");
            }
            while self.pending.len() < 100_000 && self.next < self.rows {
                let id = &self.ids[(self.next % self.ids.len() as u64) as usize];
                let line = if self.next % 1000 == 999 {
                    format!("{id}x,F20,2021-01-01,\"bad, \"\"row\"\"\nsecond line\"\r\n")
                } else {
                    format!(
                        "{id},F{},2021-01-01,note {}\r\n",
                        self.next % 100,
                        self.next
                    )
                };
                self.pending.extend(line.as_bytes());
                self.next += 1;
            }
        }
        let n = out.len().min(self.pending.len() - self.at);
        out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.hasher.update(&out[..n]);
        self.bytes += n as u64;
        self.at += n;
        Ok(n)
    }
}

/// About 50 MB through the check pass: the digest matches, every row is
/// counted, and nothing but one counter per person is kept (the input is
/// never held whole, it does not exist whole).
#[test]
fn streams_a_large_input() {
    let ids: Vec<String> = (0..1000)
        .filter_map(|i| {
            Identifier::from_parts(
                1970 + i % 30,
                1 + (i % 12) as u8,
                1 + (i % 28) as u8,
                i % 500,
                IdKind::Fnr,
            )
            .ok()
        })
        .map(|x| x.expose().to_owned())
        .collect();
    let rows = 1_200_000;
    let mut input = Generated {
        ids: ids.clone(),
        rows,
        next: 0,
        pending: Vec::new(),
        at: 0,
        hasher: Sha3_256::new(),
        bytes: 0,
    };
    let s = check_extract_from(&mut input, STRICT, None).expect("check");
    assert!(input.bytes > 45_000_000, "{}", input.bytes);
    assert_eq!(s.bytes, input.bytes);
    assert_eq!(s.digest.0, <[u8; 32]>::from(input.hasher.finalize()));
    assert_eq!(s.stats.rows, rows);
    assert_eq!(s.stats.invalid_rows(), rows / 1000);
    assert_eq!(s.stats.persons, ids.len() as u64);
    assert_eq!(s.stats.invalid[0].lines[..2], [1001, 2002]);
    assert_eq!(s.columns, ["diag", "dato", "note"]);
}

#[test]
fn reads_from_a_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extract.csv");
    let data = format!("fnr,x\n{A},1\n{B},2\n");
    std::fs::write(&path, &data).expect("write");
    let r = read_extract(&path, STRICT, None).expect("read");
    assert_eq!(r.persons.len(), 2);
    assert_eq!(
        r.summary,
        check_extract(&path, STRICT, None).expect("check")
    );
    assert_eq!(r.summary.digest.0, sha3_256(data.as_bytes()));
    let missing = dir.path().join("missing.csv");
    let e = read_extract(&missing, STRICT, None).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!("cannot open the extract {}", missing.display())
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn identifiers_in_variables_are_flagged() {
    let data = format!(
        "fnr,mor_fnr,diag\n{A},{B},F20\n{C},,F20\n{B}, {A} ,01018012372\n{A},01818012337,x\n"
    );
    let s = check(data.as_bytes()).expect("read");
    assert_eq!(s.identifier_columns, [("mor_fnr".to_owned(), 3)]);
    assert_eq!(read(data.as_bytes()).expect("read").summary, s);
}

#[test]
fn staging_reads_exactly_what_the_in_memory_reader_reads() {
    let inputs: Vec<Vec<u8>> = vec![
        mixed().into_bytes(),
        format!("\u{FEFF}fnr,a\r\n{A},1\r\n{B},2\r\n{A},3\r\n").into_bytes(),
        format!("fnr,a\n{A},\"x,\ny\"\n{C},2\n").into_bytes(),
        b"fnr,a\n".to_vec(),
        b"".to_vec(),
        b"id,a\n1,2\n".to_vec(),
        format!("fnr,a\n{A},\"unterminated\n").into_bytes(),
    ];
    for data in &inputs {
        let in_memory = read(data).map(|r| (r.summary, r.persons));
        match (stage_persons_from(data.as_slice(), STRICT, None), in_memory) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.0, b.0);
                assert_eq!(a.1, b.1);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("the readers disagree: {:?} / {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
