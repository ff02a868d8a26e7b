//! Chain v2 chunks (`v2::ChunkMsg`, as in `Message::ChunkV2`) and the v2
//! register hop that consumes them.
//!
//! The input is a flag byte and then postcard-encoded chunks, decoded one
//! after the other: each must re-encode to a chunk that decodes to the
//! same value. With flag bit 0 the chunk is moved into the hop's list and
//! attempt and given the chunk number the hop expects; with bit 1 its
//! statement is made to digest its points and re-signed with the owner's
//! key, so that mutations reach the point checks. With bit 2 the first
//! chunk is instead the owner's honest chunk of the next position.
//!
//! Checked: a refused chunk leaves the hop unchanged; an accepted chunk's
//! output is accepted by the next hop; a hop that saw every chunk finishes.
#![no_main]

use ed25519_dalek::SigningKey;
use kobling_fuzz::Cursor;
use kobling_protocol::{
    group::WirePoint,
    hash::{hash_to_group, tags},
    share::{Domain, Share},
    transcript::encode_value,
    types::{Attempt, HopIndex, ListName, Name, ProjectId},
    v2::{chunk_digest, ChunkMsg, ListHeader, Mode, OwnerStream, RegisterHop, StepKey},
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn header() -> ListHeader {
    ListHeader {
        domain: Domain::Project(ProjectId::new("FUZZ-1").expect("valid")),
        delivery: None,
        list: ListName::new("NPR").expect("valid"),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons: 3,
        chunk_size: 2,
    }
}

fn share(b: u8) -> Share {
    let mut bytes = [0u8; 32];
    bytes[0] = b;
    Share::from_secret_bytes(&bytes).expect("a small non-zero scalar")
}

fn handle(hop: &mut RegisterHop, msg: &ChunkMsg, key: &SigningKey) -> Option<ChunkMsg> {
    let before = (hop.next_chunk(), hop.records().len());
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    match hop.handle_chunk(msg, key, &mut rng) {
        Ok(out) => {
            assert_eq!(hop.next_chunk(), before.0.next());
            assert_eq!(out.points.len(), msg.points.len());
            assert_eq!(out.statement.statement.input, msg.statement.statement.output);
            assert_eq!(out.statement.statement.output, chunk_digest(&out.points));
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
    let h = header();
    let keys: Vec<SigningKey> = (1..=3u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let first_step = StepKey::plain(share(3));
    let k1 = first_step.key();
    let mut first = RegisterHop::new(
        h.clone(),
        HopIndex(1),
        Name::new("KPR").expect("valid"),
        first_step,
        vec![keys[0].verifying_key()],
        Vec::new(),
    )
    .expect("hop 1");
    let mut second = RegisterHop::new(
        h.clone(),
        HopIndex(2),
        Name::new("SSB").expect("valid"),
        StepKey::plain(share(5)),
        vec![keys[0].verifying_key(), keys[1].verifying_key()],
        vec![k1],
    )
    .expect("hop 2");
    let mut owner = OwnerStream::new(h.clone()).expect("header");
    let mut msgs = Vec::new();
    if flags & 4 != 0 {
        let pts: Vec<WirePoint> = (0..2u64)
            .map(|i| WirePoint(hash_to_group(tags::IDENTITY, &i.to_le_bytes()).compress().to_bytes()))
            .collect();
        msgs.push(owner.chunk(pts, &keys[0]).expect("honest chunk"));
    }
    while let Ok((msg, after)) = postcard::take_from_bytes::<ChunkMsg>(rest) {
        rest = after;
        let bytes = encode_value(&msg);
        assert_eq!(postcard::from_bytes::<ChunkMsg>(&bytes).ok().as_ref(), Some(&msg));
        msgs.push(msg);
    }
    for mut msg in msgs {
        if flags & 1 != 0 {
            msg.list = h.list.clone();
            msg.attempt = h.attempt;
            msg.statement.statement.chunk = first.next_chunk();
        }
        if flags & 2 != 0 {
            let st = &mut msg.statement.statement;
            st.output = chunk_digest(&msg.points);
            st.count = u32::try_from(msg.points.len()).unwrap_or(u32::MAX);
            msg.statement.signature = st.sign(&h, &keys[0]);
        }
        if let Some(out) = handle(&mut first, &msg, &keys[1]) {
            handle(&mut second, &out, &keys[2]).expect("the next hop refused an honest chunk");
        }
    }
    for hop in [first, second] {
        let complete = hop.is_complete();
        assert_eq!(hop.finish().is_ok(), complete);
    }
});
