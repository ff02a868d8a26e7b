//! The extract reader's CSV records (`extract_file::records`, which reads
//! extracts and mapping files), the part of the extract pipeline that
//! sees raw bytes.
//!
//! A flag byte chooses the read size (1 to 8 bytes per read, or all at
//! once); the rest is the file. Checked: no panic; the same records (and
//! lines) and the same refusal whatever the read size; the digest and size
//! are those of every byte of the input; line numbers start at 1 and never
//! go down; the records are field for field those of the `csv` crate
//! (default dialect, flexible) unless the reader refused the input; the
//! records written back with the `csv` crate (every field quoted) read
//! back as the same records.
#![no_main]

use kobling_fuzz::{step_of, Cursor};
use kobling_node::fuzzing::{read_records, RecordFailure};
use kobling_protocol::hash::sha3_256;
use libfuzzer_sys::fuzz_target;

type Fields = Vec<Vec<Vec<u8>>>;

fn csv_crate(data: &[u8]) -> Fields {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
        .byte_records()
        .map(|r| {
            r.expect("the csv crate reads bytes")
                .iter()
                .map(<[u8]>::to_vec)
                .collect()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let step = step_of(input.u8());
    let file = input.rest();
    let whole = read_records(file, usize::MAX);
    assert_eq!(
        whole,
        read_records(file, step),
        "the read size changed the records"
    );
    let records = match whole {
        Ok(r) => r,
        Err(RecordFailure::Io) => panic!("an in-memory input failed"),
        Err(RecordFailure::TooLong { line } | RecordFailure::UnterminatedQuote { line }) => {
            assert!(line >= 1);
            return;
        }
    };
    assert_eq!(records.digest, sha3_256(file));
    assert_eq!(records.bytes, file.len() as u64);
    let mut last = 1;
    for (line, _) in &records.records {
        assert!(*line >= last, "line numbers went down");
        last = *line;
    }
    let fields: Fields = records.records.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        fields,
        csv_crate(file),
        "the records differ from the csv crate's"
    );

    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    for r in &fields {
        writer.write_record(r).expect("write");
    }
    let written = writer.into_inner().expect("flush");
    let reread = read_records(&written, step).expect("written records read back");
    let reread: Fields = reread.records.into_iter().map(|(_, f)| f).collect();
    assert_eq!(reread, fields, "written records read back differently");
});
