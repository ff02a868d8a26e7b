//! Wire messages (`messages::decode`, one frame's body): arbitrary bytes
//! never panic; whatever decodes re-encodes to a message that decodes to
//! the same value, and to the same bytes whenever it can (postcard accepts
//! over-long varints, so a longer input may be a non-canonical encoding).
#![no_main]

use kobling_protocol::messages::{decode, encode, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = decode(data) else {
        return;
    };
    let bytes = encode(&m);
    assert_eq!(decode(&bytes).as_ref(), Ok(&m), "decode(encode(m)) != m");
    // The canonical encoding is the shortest, and the only one of its length.
    assert!(bytes.len() <= data.len());
    if bytes.len() == data.len() {
        assert_eq!(bytes, data, "an encoding of the canonical length differs");
    }
    let _ = m.kind();
    // What a node does next with a decoded request or statement.
    match &m {
        Message::Fetch(r) | Message::Close(r) | Message::Status(r) => {
            let _ = r.check(r.request.time, &r.request.node, &r.request.manifest);
        }
        Message::SubmitOrder(s) | Message::Statement(s) | Message::Approve { statement: s, .. } => {
            let _ = s.statement.digest();
        }
        Message::DomainRequest(r) => {
            let _ = r.check(r.request.time, &r.request.node, &r.request.manifest);
        }
        Message::TranscriptFile { bytes } => {
            let _ = kobling_protocol::transcript::decode_file(bytes);
        }
        Message::Notice(n) => {
            let _ = n.check(
                &n.notice.project,
                &kobling_protocol::manifest::Ed25519Key([0x11; 32]),
            );
        }
        // The linker's checks of the researcher's list (docs/protocol.md
        // §18) that need no project state.
        Message::ResearcherList(part) => {
            use kobling_protocol::researcher_list::wire::{check_pass, ResearcherListPart};
            let _ = part.project();
            match &**part {
                ResearcherListPart::Announce { announcement: s, .. }
                | ResearcherListPart::End(s) => {
                    let _ = s.statement.digest();
                }
                ResearcherListPart::Pass { pass, .. } => {
                    let _ = check_pass(pass);
                }
                _ => {}
            }
        }
        _ => {}
    }
});
