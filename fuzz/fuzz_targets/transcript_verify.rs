//! The transcript verifier (`transcript::verify`) on transcripts that are
//! well signed but wrong: a sequence of edits to the fixture's complete,
//! closed project (see `kobling_fuzz::fixture`), after which every entry
//! is chained and countersigned again by the linker, and every edited
//! node statement signed again by its node.
//!
//! The input is a flag byte (bit 0: verify without the trailer, as a live
//! node does; bit 1: read the rest as a raw transcript file instead) and
//! then edits, each an operation byte and its arguments: drop, duplicate,
//! move or truncate entries; flip a byte of a statement's body (kept if it
//! still decodes); set its time; give it to another node; replace its body
//! with one decoded from the input.
//!
//! Checked: the re-chained file round-trips through `encode_file` and
//! `decode_file`; verification never panics; without edits it succeeds;
//! on success it counts the entries it was given; `kobling audit show`
//! lists the file.
#![no_main]

use kobling_fuzz::{fixture::FIXTURE, Cursor};
use kobling_protocol::transcript::{
    decode_file, encode_file, encode_value, verify, Body, SignedStatement, Signer,
};
use libfuzzer_sys::fuzz_target;

fn edit(statements: &mut Vec<SignedStatement>, input: &mut Cursor<'_>) {
    let n = statements.len();
    let op = input.u8() % 8;
    let i = input.below(n);
    if n == 0 {
        return;
    }
    match op {
        0 => {
            statements.remove(i);
        }
        1 => {
            let j = input.below(n + 1);
            let s = statements[i].clone();
            statements.insert(j, s);
        }
        2 => {
            let j = input.below(n);
            let s = statements.remove(i);
            statements.insert(j, s);
        }
        3 => statements.truncate(i),
        4 => {
            let mut body = encode_value(&statements[i].statement.body);
            let at = input.below(body.len());
            body[at] ^= input.u8().max(1);
            if let Ok(b) = postcard::from_bytes::<Body>(&body) {
                replace(statements, i, |s| s.body = b);
            }
        }
        5 => {
            let time = kobling_protocol::types::UnixTime(input.u64());
            replace(statements, i, |s| s.time = time);
        }
        6 => {
            let members = &FIXTURE.manifest.members;
            let m = members[input.below(members.len())].name.clone();
            replace(statements, i, |s| s.signer = Signer::Node(m));
        }
        _ => {
            if let Ok((b, rest)) = postcard::take_from_bytes::<Body>(input.0) {
                input.0 = rest;
                replace(statements, i, |s| s.body = b);
            }
        }
    }
}

fn replace(
    statements: &mut [SignedStatement],
    i: usize,
    change: impl FnOnce(&mut kobling_protocol::transcript::Statement),
) {
    let mut statement = statements[i].statement.clone();
    change(&mut statement);
    let signed = FIXTURE.resign(statement, &statements[i]);
    statements[i] = signed;
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let mut input = Cursor(data);
    let flags = input.u8();
    if flags & 2 != 0 {
        if let Ok((entries, trailer)) = decode_file(input.rest()) {
            let _ = verify(&entries, Some(&trailer), &fixture.manifest);
        }
        return;
    }
    let mut statements = fixture.statements.clone();
    let mut edits = 0;
    while !input.is_empty() && edits < 16 {
        edit(&mut statements, &mut input);
        edits += 1;
    }
    let (entries, trailer) = fixture.record(statements);
    let file = encode_file(&entries, &trailer);
    let (decoded, decoded_trailer) = decode_file(&file).expect("a recorded transcript decodes");
    assert_eq!(decoded, entries);
    assert_eq!(decoded_trailer, trailer);
    let trailer = (flags & 1 == 0).then_some(&trailer);
    match verify(&entries, trailer, &fixture.manifest) {
        Ok(v) => assert_eq!(v.entries, entries.len()),
        Err(e) => assert!(edits > 0, "the fixture's transcript did not verify: {e}"),
    }
    // `kobling audit show` lists the entries (without a manifest, so
    // without verifying again: `transcript_audit` fuzzes the report).
    let (shown, _) = kobling_node::fuzzing::audit(&file, None);
    assert!(!shown.is_empty());
});
