//! Point chunks (`hop::PointChunk`, as in `Message::Points`) and the hop
//! state machine that consumes them.
//!
//! The input is a flag byte and then postcard-encoded chunks, decoded one
//! after the other: each must re-encode to a chunk that decodes to the
//! same value (and to the same bytes if it has the decoded length). Each
//! chunk is then handed to a hop of a fixed 3-person list (chunks of 2):
//! hop 1 (after the owner, no proof expected) if it claims hop 0, hop 2
//! (which checks hop 1's proof) otherwise. With flag bit 0 the chunk is
//! first moved into the hops' project and list, with bit 1 it is given
//! the chunk number the hop expects next, so that mutations reach the
//! point and proof checks.
//!
//! Checked: a refused chunk leaves the hop unchanged; an accepted chunk's
//! output is well formed and is accepted by the next hop (its proof
//! verifies); a hop that saw every chunk finishes.
#![no_main]

use kobling_fuzz::Cursor;
use kobling_protocol::{
    hop::{Hop, ListContext, PointChunk},
    share::Share,
    transcript::encode_value,
    types::{HopIndex, ListName, Name, ProjectId},
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn context() -> ListContext {
    ListContext {
        project: ProjectId::new("FUZZ-1").expect("valid"),
        list: ListName::new("NPR").expect("valid"),
        persons: 3,
        chunk_size: 2,
    }
}

fn share(b: u8) -> Share {
    let mut bytes = [0u8; 32];
    bytes[0] = b;
    Share::from_secret_bytes(&bytes).expect("a small non-zero scalar")
}

fn handle(hop: &mut Hop, chunk: &PointChunk, rng: &mut ChaCha20Rng) -> Option<PointChunk> {
    let before = (hop.next_chunk(), hop.records().len());
    match hop.handle_chunk(chunk, rng) {
        Ok(out) => {
            assert_eq!(hop.next_chunk(), before.0.next());
            assert_eq!(out.input, chunk.output, "the output's input is the chunk");
            assert_eq!(out.output.len(), chunk.output.len());
            assert_eq!(out.chunk, chunk.chunk);
            assert!(out.proof.is_some());
            Some(out)
        }
        Err(_) => {
            assert_eq!(
                (hop.next_chunk(), hop.records().len()),
                before,
                "a refused chunk changed the hop"
            );
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let flags = input.u8();
    let mut rest = input.rest();
    let ctx = context();
    let first = Hop::register(
        ctx.clone(),
        HopIndex(1),
        Name::new("KPR").expect("valid"),
        share(3),
        None,
    );
    let mut first = first.expect("hop 1");
    let second = Hop::register(
        ctx.clone(),
        HopIndex(2),
        Name::new("SSB").expect("valid"),
        share(5),
        Some(first.key()),
    );
    let mut second = second.expect("hop 2");
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    while let Ok((mut chunk, after)) = postcard::take_from_bytes::<PointChunk>(rest) {
        let used = &rest[..rest.len() - after.len()];
        rest = after;
        let bytes = encode_value(&chunk);
        assert_eq!(
            postcard::from_bytes::<PointChunk>(&bytes).ok().as_ref(),
            Some(&chunk)
        );
        assert!(bytes.len() <= used.len());
        if bytes.len() == used.len() {
            assert_eq!(bytes, used);
        }
        if flags & 1 != 0 {
            chunk.project = ctx.project.clone();
            chunk.list = ctx.list.clone();
        }
        if chunk.hop == HopIndex(0) {
            if flags & 2 != 0 {
                chunk.chunk = first.next_chunk();
            }
            if let Some(out) = handle(&mut first, &chunk, &mut rng) {
                // What hop 1 accepted and stepped, hop 2 accepts.
                handle(&mut second, &out, &mut rng).expect("the next hop refused an honest chunk");
            }
        } else {
            if flags & 2 != 0 {
                chunk.chunk = second.next_chunk();
            }
            handle(&mut second, &chunk, &mut rng);
        }
    }
    for hop in [first, second] {
        let complete = hop.is_complete();
        assert_eq!(hop.finish().is_ok(), complete);
    }
});
