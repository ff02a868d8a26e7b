//! What the transport refuses before the engine sees it: a member's kind
//! from a client, frames over the limits, bytes that do not decode, and a
//! peer outside the manifest.

use kobling_keys::{KdfParams, Keystore};
use kobling_node::{
    net::{
        client::{Client, ClientError},
        endpoint::{client_endpoint, TransportLimits},
        tls::TlsIdentity,
        CloseCode,
    },
    testing::quic::send_raw,
};
use kobling_protocol::{
    bounded::BoundedVec,
    hop::PointChunk,
    messages::{self, Message, MAX_FRAME},
};

use crate::{
    attack, chunk_to,
    harness::{list_name, name, pid, settings},
    P1,
};
use kobling_protocol::types::{ChunkIndex, HopIndex};

/// `Message::Points` with `n` output points, as raw postcard bytes: a
/// message no honest encoder can produce when `n` exceeds the limit.
fn points_bytes(chunk: &PointChunk, n: usize) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let probe = messages::encode(&Message::Points(chunk.clone()));
    let tag = probe[0]; // the variant index of `Points` (< 128)
    let mut out = vec![tag];
    for s in [chunk.project.as_str(), chunk.list.as_str()] {
        varint(s.len() as u64, &mut out);
        out.extend_from_slice(s.as_bytes());
    }
    varint(u64::from(chunk.hop.0), &mut out);
    varint(chunk.chunk.0, &mut out);
    varint(0, &mut out); // no input
    varint(n as u64, &mut out);
    let point = chunk.output[0].0;
    for _ in 0..n {
        out.extend_from_slice(&point);
    }
    out.push(0); // no proof
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn a_members_kind_from_a_client_is_refused_unread() {
    // A member's kind from a client without a member certificate: the
    // transport closes the connection on the frame's first byte, before
    // the body is read (issue 18, item 4).
    attack(|s| async move {
        let chunk = chunk_to(P1, s.honest.clone());
        // A client of its own: the node closes its connection.
        let client = Client::new(
            client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint"),
            None,
            s.fed.manifest.clone(),
            &TransportLimits::default(),
            settings(),
        )
        .expect("client");
        match client.request(&name("SSB"), &chunk).await {
            Err(ClientError::Connection(quinn::ConnectionError::ApplicationClosed(c))) => {
                assert_eq!(
                    CloseCode::from_varint(c.error_code),
                    Some(CloseCode::NotAllowed)
                );
            }
            other => panic!("a chunk from a client was not refused unread: {other:?}"),
        }
    });
}

#[test]
fn a_frame_over_the_size_limit_closes_the_connection() {
    attack(|s| async move {
        let too_large = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert_eq!(
            send_raw(&s.fed.kpr_alone(), &name("SSB"), &too_large)
                .await
                .expect("no reply"),
            Some(CloseCode::FrameTooLarge)
        );
    });
}

#[test]
fn a_chunk_over_the_point_limit_closes_the_connection() {
    attack(|s| async move {
        let v1_chunk = PointChunk {
            project: pid(P1),
            list: list_name("NPR"),
            hop: HopIndex(1),
            chunk: ChunkIndex(0),
            input: BoundedVec::default(),
            output: s.honest.points.clone(),
            proof: None,
        };
        let over = points_bytes(&v1_chunk, kobling_protocol::hop::MAX_CHUNK_POINTS + 1);
        assert!(over.len() < MAX_FRAME);
        assert_eq!(
            send_raw(&s.fed.kpr_alone(), &name("SSB"), &frame(&over))
                .await
                .expect("no reply"),
            Some(CloseCode::Malformed),
            "a chunk over the point limit"
        );
    });
}

#[test]
fn bytes_that_do_not_decode_close_the_connection() {
    attack(|s| async move {
        assert_eq!(
            send_raw(
                &s.fed.kpr_alone(),
                &name("LINKER"),
                &frame(&[0xff, 0xff, 0xff])
            )
            .await
            .expect("no reply"),
            Some(CloseCode::Malformed)
        );
    });
}

#[test]
fn a_peer_whose_certificate_is_in_no_manifest_entry_is_refused() {
    attack(|s| async move {
        let stranger_dir = s.fed.keys.dir.join("stranger");
        let stranger = Keystore::create(
            stranger_dir.join("keys"),
            None,
            KdfParams::default(),
            &["localhost".into()],
        )
        .expect("keystore");
        let stranger = Client::new(
            client_endpoint("127.0.0.1:0".parse().expect("addr")).expect("endpoint"),
            Some(&TlsIdentity::from_keystore(&stranger).expect("identity")),
            s.fed.manifest.clone(),
            &TransportLimits::default(),
            settings(),
        )
        .expect("client");
        assert!(matches!(
            stranger
                .request(&name("SSB"), &chunk_to(P1, s.honest.clone()))
                .await,
            Err(ClientError::Connection(_))
        ));
        stranger.close();
    });
}
