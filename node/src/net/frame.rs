//! Length-prefixed message frames on a byte stream.
//!
//! ```text
//!  frame = len: u32 little-endian ‖ postcard(Message), len ≤ MAX_FRAME
//! ```
//!
//! The length is checked before a byte of the body is read or any room is
//! reserved for it, and the body buffer grows with the bytes that actually
//! arrive, so an announced length costs nothing until the peer sends it.
//! The server also reads the body's first bytes alone (`read_kind`): the
//! message's kind, which decides whether the peer may send it and how long
//! it may be ([`Kind::max_frame`]) before the rest is read.
//! The end of the stream is allowed only between frames. The body is
//! decoded with [`messages::decode`], which never panics and rejects
//! trailing bytes.
//!
//! The functions are generic over tokio's byte-stream traits: quinn's
//! `RecvStream` and `SendStream` implement them, and tests use in-memory
//! pipes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use kobling_protocol::messages::{self, DecodeError, Kind, Message, MAX_FRAME, MAX_KIND_PREFIX};

use super::CloseCode;

/// Bytes of the length prefix.
pub(crate) const LEN_PREFIX: usize = 4;

/// Room reserved up front for a frame body; more is reserved only as bytes
/// arrive.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length (announced by the peer, or of a message we were about
    /// to send) exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(u64),
    /// The frame is longer than its kind can be ([`Kind::max_frame`]).
    #[error("{} frame of {len} bytes exceeds the kind's limit", kind.name())]
    TooLargeForKind {
        /// The kind.
        kind: Kind,
        /// The announced length.
        len: u64,
    },
    /// A kind the peer may not send (a member's kind from a client),
    /// refused before its body is read.
    #[error("{} is not a kind this peer may send", .0.name())]
    NotAllowed(Kind),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame (prefix and body) expected.
        expected: u64,
        /// Bytes received before the end of the stream.
        got: u64,
    },
    /// The body is not a valid message.
    #[error("undecodable message")]
    Decode(#[from] DecodeError),
    /// The stream failed (reset by the peer, connection lost, ...).
    #[error("stream failed")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The code to close the connection with when the *peer* sent this,
    /// or `None` if the failure is the stream's or ours, not a violation.
    pub(crate) fn violation(&self) -> Option<CloseCode> {
        match self {
            FrameError::TooLarge(_) | FrameError::TooLargeForKind { .. } => {
                Some(CloseCode::FrameTooLarge)
            }
            FrameError::NotAllowed(_) => Some(CloseCode::NotAllowed),
            FrameError::Truncated { .. } => Some(CloseCode::Truncated),
            FrameError::Decode(_) => Some(CloseCode::Malformed),
            FrameError::Io(_) => None,
        }
    }
}

/// Reads one frame and decodes it; `Ok(None)` if the stream ended cleanly
/// before the frame's first byte.
///
/// # Errors
///
/// [`FrameError::TooLarge`] before reading the body, [`FrameError::Truncated`],
/// [`FrameError::Decode`], or [`FrameError::Io`].
pub async fn read_message<R: AsyncRead + Unpin>(
    recv: &mut R,
) -> Result<Option<Message>, FrameError> {
    match read_len(recv).await? {
        Some(len) => Ok(Some(read_body(recv, len).await?)),
        None => Ok(None),
    }
}

/// Reads a frame's length prefix and checks it against [`MAX_FRAME`];
/// `Ok(None)` if the stream ended cleanly before it.
///
/// # Errors
///
/// [`FrameError::TooLarge`], [`FrameError::Truncated`] if the stream ends
/// inside the prefix, or [`FrameError::Io`].
pub(crate) async fn read_len<R: AsyncRead + Unpin>(
    recv: &mut R,
) -> Result<Option<usize>, FrameError> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut got = 0;
    while got < LEN_PREFIX {
        let n = recv.read(&mut prefix[got..]).await?;
        if n == 0 {
            return match got {
                0 => Ok(None),
                _ => Err(FrameError::Truncated {
                    expected: LEN_PREFIX as u64,
                    got: got as u64,
                }),
            };
        }
        got += n;
    }
    let len = u32::from_le_bytes(prefix);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_FRAME => Ok(Some(len)),
        _ => Err(FrameError::TooLarge(u64::from(len))),
    }
}

/// Reads the first bytes of a frame body of `len` bytes, one at a time,
/// until they name the message's kind (one byte for every kind there is;
/// at most [`MAX_KIND_PREFIX`]), and returns them with the kind. The
/// caller checks the kind before reading the rest.
///
/// # Errors
///
/// [`FrameError::Decode`] if the bytes name no kind (or the body ends
/// before they do), [`FrameError::Truncated`], or [`FrameError::Io`].
pub(crate) async fn read_kind<R: AsyncRead + Unpin>(
    recv: &mut R,
    len: usize,
) -> Result<(Vec<u8>, Kind), FrameError> {
    let mut head = Vec::with_capacity(MAX_KIND_PREFIX);
    loop {
        if let Some(kind) = Kind::peek(&head)? {
            return Ok((head, kind));
        }
        if head.len() >= len.min(MAX_KIND_PREFIX) {
            return Err(FrameError::Decode(DecodeError::Malformed(
                "the frame ends inside the message kind".into(),
            )));
        }
        let mut byte = [0u8];
        if recv.read(&mut byte).await? == 0 {
            return Err(FrameError::Truncated {
                expected: (LEN_PREFIX + len) as u64,
                got: (LEN_PREFIX + head.len()) as u64,
            });
        }
        head.push(byte[0]);
    }
}

/// Checks a frame of `kind` and `len` bytes from a peer that is a client
/// (`client`) or a member.
///
/// # Errors
///
/// [`FrameError::NotAllowed`] for a kind only members may send, from a
/// client; [`FrameError::TooLargeForKind`] for a frame longer than its
/// kind can be.
pub(crate) fn check_kind(kind: Kind, len: usize, client: bool) -> Result<(), FrameError> {
    if client && !kind.from_client() {
        return Err(FrameError::NotAllowed(kind));
    }
    if len > kind.max_frame() {
        return Err(FrameError::TooLargeForKind {
            kind,
            len: len as u64,
        });
    }
    Ok(())
}

/// Reads a frame body of `len` bytes (as returned by [`read_len`]) and
/// decodes it.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if `len` is over [`MAX_FRAME`],
/// [`FrameError::Truncated`], [`FrameError::Decode`], or [`FrameError::Io`].
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    recv: &mut R,
    len: usize,
) -> Result<Message, FrameError> {
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len as u64));
    }
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY_CAPACITY));
    let got = recv.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(FrameError::Truncated {
            expected: (LEN_PREFIX + len) as u64,
            got: (LEN_PREFIX + got) as u64,
        });
    }
    Ok(messages::decode(&body)?)
}

/// Encodes `message` and writes it as one frame. Does not finish the
/// stream.
///
/// # Errors
///
/// [`FrameError::TooLarge`] (nothing is written) or [`FrameError::Io`].
pub async fn write_message<W: AsyncWrite + Unpin>(
    send: &mut W,
    message: &Message,
) -> Result<(), FrameError> {
    let body = messages::encode(message);
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= MAX_FRAME)
        .ok_or(FrameError::TooLarge(body.len() as u64))?;
    send.write_all(&len.to_le_bytes()).await?;
    send.write_all(&body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kobling_protocol::types::Digest;

    use super::*;

    fn ack(b: u8) -> Message {
        Message::Ack {
            of: Digest([b; 32]),
        }
    }

    fn frame(message: &Message) -> Vec<u8> {
        let body = messages::encode(message);
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly_between_frames() {
        let mut buf = Vec::new();
        write_message(&mut buf, &ack(1)).await.expect("write");
        write_message(&mut buf, &Message::Hello { version: 1 })
            .await
            .expect("write");
        let first = frame(&ack(1));
        assert_eq!(&buf[..first.len()], &first[..]);
        let mut r = &buf[..];
        assert_eq!(read_message(&mut r).await.expect("read"), Some(ack(1)));
        assert_eq!(
            read_message(&mut r).await.expect("read"),
            Some(Message::Hello { version: 1 })
        );
        assert_eq!(read_message(&mut r).await.expect("eof"), None);
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_the_body() {
        // Only the prefix is there: a reader that tried to read (or wait
        // for) the body would report truncation instead.
        let prefix = ((MAX_FRAME + 1) as u32).to_le_bytes();
        let mut r = &prefix[..];
        let err = read_message(&mut r).await.expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME as u64 + 1));
        assert_eq!(err.violation(), Some(CloseCode::FrameTooLarge));
        let mut r = &u32::MAX.to_le_bytes()[..];
        assert!(matches!(
            read_message(&mut r).await,
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            read_body(&mut &[][..], MAX_FRAME + 1).await,
            Err(FrameError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn a_stream_ending_inside_a_frame_is_an_error() {
        let f = frame(&ack(2));
        for cut in [1, 3, LEN_PREFIX, LEN_PREFIX + 1, f.len() - 1] {
            let mut r = &f[..cut];
            let err = read_message(&mut r).await.expect_err("truncated");
            assert!(
                matches!(err, FrameError::Truncated { got, .. } if got == cut as u64),
                "cut at {cut}: {err:?}"
            );
            assert_eq!(err.violation(), Some(CloseCode::Truncated));
        }
    }

    #[tokio::test]
    async fn malformed_bodies_are_decode_errors() {
        // A variant tag that does not exist.
        let mut r = &[1, 0, 0, 0, 0xff][..];
        let err = read_message(&mut r).await.expect_err("malformed");
        assert!(matches!(err, FrameError::Decode(_)));
        assert_eq!(err.violation(), Some(CloseCode::Malformed));
        // A valid message followed by a trailing byte inside the frame.
        let mut body = messages::encode(&ack(3));
        body.push(0);
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&body);
        assert!(matches!(
            read_message(&mut &f[..]).await,
            Err(FrameError::Decode(DecodeError::Trailing))
        ));
        // An empty frame.
        assert!(matches!(
            read_message(&mut &[0, 0, 0, 0][..]).await,
            Err(FrameError::Decode(_))
        ));
    }

    #[tokio::test]
    async fn the_kind_is_read_alone_and_checked_before_the_body() {
        let body = messages::encode(&ack(4));
        let mut r = &body[..];
        let (head, kind) = read_kind(&mut r, body.len()).await.expect("kind");
        assert_eq!((head.as_slice(), kind), (&body[..1], Kind::Ack));
        assert_eq!(r.len(), body.len() - 1, "only the kind's byte was read");
        // An over-long varint takes more bytes; a kind that does not exist
        // or a body ending inside the kind is refused.
        let mut r = &[0x87, 0x00, 0xaa][..];
        let (head, kind) = read_kind(&mut r, 3).await.expect("kind");
        assert_eq!((head.len(), kind), (2, Kind::Points));
        assert!(matches!(
            read_kind(&mut &[0x7f][..], 1).await,
            Err(FrameError::Decode(_))
        ));
        assert!(matches!(
            read_kind(&mut &[0x80, 0x80][..], 1).await,
            Err(FrameError::Decode(_))
        ));
        assert!(matches!(
            read_kind(&mut &[0x80][..], 9).await,
            Err(FrameError::Truncated { .. })
        ));
        // Members' kinds from a client, and frames over a kind's cap.
        let e = check_kind(Kind::Entries, 10, true).expect_err("a member's kind");
        assert_eq!(e.violation(), Some(CloseCode::NotAllowed));
        assert!(check_kind(Kind::Entries, 10, false).is_ok());
        assert!(check_kind(Kind::Status, Kind::Status.max_frame(), true).is_ok());
        let e = check_kind(Kind::Status, Kind::Status.max_frame() + 1, true).expect_err("cap");
        assert_eq!(e.violation(), Some(CloseCode::FrameTooLarge));
        assert!(check_kind(Kind::SubmitOrder, MAX_FRAME, true).is_err());
    }

    #[tokio::test]
    async fn io_errors_are_not_violations() {
        let err = FrameError::Io(std::io::Error::other("reset"));
        assert_eq!(err.violation(), None);
    }
}
