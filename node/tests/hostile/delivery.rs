//! Issue 12 item 9: the researcher's client checks a delivery against the
//! linker's signed delivery record. A real delivery is fetched over QUIC,
//! then tampered with as a dishonest linker (or a party between it and the
//! researcher) would: an item delivered twice in place of another, an item
//! dropped (with the header's count lowered to match), and a transcript
//! whose signed selection (re-signed with the linker's own key) differs
//! from the items delivered. Each is refused; the untouched replies open.

use ed25519_dalek::SigningKey;
use kobling_node::testing::quic::open_delivery;
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    messages::Message,
    transcript::{self, Body, Trailer, Transcript},
    types::Digest,
};

use crate::{
    attack,
    lifecycle::{run_p2, P2},
    Shared,
};

/// The linker's honest replies to a fetch of a delivered project (they
/// open), and the index of the first `DeliveryItems` with at least two
/// items.
async fn honest(s: &Shared) -> (Vec<Message>, usize) {
    run_p2(s).await;
    let honest = s.fed.fetch_replies(P2).await;
    assert!(open_delivery(&s.fed.manifest, &s.fed.keys.researcher_hpke, honest.clone()).is_ok());
    let at = honest
        .iter()
        .position(|m| matches!(m, Message::DeliveryItems { items, .. } if items.len() >= 2))
        .expect("a batch of two items or more");
    (honest, at)
}

fn refusal(s: &Shared, replies: Vec<Message>) -> String {
    open_delivery(&s.fed.manifest, &s.fed.keys.researcher_hpke, replies)
        .expect_err("a tampered delivery must be refused")
        .to_string()
}

#[test]
fn an_item_delivered_twice_is_refused_by_the_client() {
    // An item twice, in place of the next one (same count).
    attack(|s| async move {
        let (mut replies, at) = honest(s).await;
        if let Message::DeliveryItems { items, .. } = &mut replies[at] {
            let mut v = items.clone().into_inner();
            v[1] = v[0].clone();
            *items = BoundedVec::new(v).expect("fits");
        }
        let e = refusal(s, replies);
        assert!(e.contains("delivered twice or out of order"), "{e}");
    });
}

#[test]
fn a_dropped_item_is_refused_by_the_client() {
    // An item dropped from a batch breaks the batch's proof. A whole batch
    // dropped leaves every other batch's proof intact: the header's count
    // is lowered to hide it, and the signed record's count catches it.
    attack(|s| async move {
        let (honest, at) = honest(s).await;
        let mut replies = honest.clone();
        if let Message::DeliveryItems { items, .. } = &mut replies[at] {
            let mut v = items.clone().into_inner();
            v.remove(1);
            *items = BoundedVec::new(v).expect("fits");
        }
        let e = refusal(s, replies);
        assert!(e.contains("are not under the owner's signed root"), "{e}");

        let mut replies = honest;
        let (list, dropped) = match replies.remove(at) {
            Message::DeliveryItems { items, list, .. } => (list, items.len() as u64),
            _ => unreachable!("an items message"),
        };
        for m in &mut replies {
            if let Message::DeliveryHeader { list: l, items, .. } = m {
                if *l == list {
                    *items -= dropped;
                }
            }
        }
        let e = refusal(s, replies);
        assert!(e.contains("the signed delivery record says"), "{e}");
    });
}

#[test]
fn a_selection_that_differs_from_the_signed_record_is_refused_by_the_client() {
    // The items are the linker's, but the selection it signed is not
    // theirs (re-signed with the linker's key, so the transcript itself
    // verifies).
    attack(|s| async move {
        let (honest, _) = honest(s).await;
        let Some(Message::TranscriptFile { bytes }) = honest.first() else {
            panic!("the transcript first")
        };
        let (entries, _) = transcript::decode_file(bytes).expect("decodes");
        let linker = SigningKey::from_bytes(&s.fed.keystore("LINKER").signing_key().to_bytes());
        let mut log = Transcript::new();
        for e in &entries {
            let mut st = e.signed.statement.clone();
            let signed = match &mut st.body {
                Body::Delivery(d) => {
                    let mut lists = d.lists.clone().into_inner();
                    lists[0].selection = Digest([7; 32]);
                    d.lists = BoundedVec::new(lists).expect("fits");
                    st.sign(&linker)
                }
                _ => e.signed.clone(),
            };
            log.append(signed, &linker);
        }
        let entries = log.into_entries();
        let trailer = Trailer::sign(&entries[0].signed.statement.project, &entries, &linker);
        let mut replies = honest.clone();
        replies[0] = Message::TranscriptFile {
            bytes: BoundedBytes::new(transcript::encode_file(&entries, &trailer)).expect("fits"),
        };
        let e = refusal(s, replies);
        assert!(
            e.contains("the delivered selection differs from the signed delivery record"),
            "{e}"
        );
    });
}
