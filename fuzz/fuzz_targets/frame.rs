//! Length-prefixed message frames on a stream (`net::frame::read_message`,
//! each connection's request and reply loop), read until the stream ends
//! or a frame is refused.
//!
//! A flag byte chooses how the stream arrives (1 to 8 bytes per read, or
//! all at once); the rest is the stream. Checked: no panic; the same
//! messages and the same ending whatever the read size; a refusal is one
//! of over-long (over `MAX_FRAME`), truncated (fewer bytes than announced)
//! or undecodable, never an I/O error; the messages read, framed again as
//! a node writes them, read back as the same messages and end cleanly.
#![no_main]

use kobling_fuzz::{step_of, Cursor};
use kobling_node::fuzzing::{read_frames, write_frame, FrameEnd};
use kobling_protocol::messages::MAX_FRAME;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Cursor(data);
    let step = step_of(input.u8());
    let stream = input.rest();
    let (messages, end) = read_frames(stream, usize::MAX);
    let (trickled, trickled_end) = read_frames(stream, step);
    assert_eq!(messages, trickled, "the read size changed the messages");
    assert_eq!(
        end, trickled_end,
        "the read size changed how the stream ended"
    );
    match &end {
        FrameEnd::Clean | FrameEnd::Malformed(_) => {}
        FrameEnd::TooLarge(n) => assert!(*n > MAX_FRAME as u64),
        FrameEnd::TooLargeForKind { kind, len } => assert!(*len > kind.max_frame() as u64),
        // A member's reader takes every kind.
        FrameEnd::NotAllowed(kind) => panic!("{} refused from a member", kind.name()),
        FrameEnd::Truncated { expected, got } => assert!(got < expected),
        FrameEnd::Io => panic!("an in-memory stream failed"),
    }
    let mut again = Vec::new();
    for m in &messages {
        again.extend_from_slice(&write_frame(m).expect("a read message can be sent"));
    }
    assert!(again.len() <= stream.len());
    let (reread, reread_end) = read_frames(&again, step);
    assert_eq!(reread, messages);
    assert_eq!(reread_end, FrameEnd::Clean);
});
