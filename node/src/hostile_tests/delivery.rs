//! Issue 12 item 9: the researcher's client checks a delivery against the
//! linker's signed delivery record. A real delivery is fetched over QUIC,
//! then tampered with as a dishonest linker (or a party between it and the
//! researcher) would: an item delivered twice in place of another, an item
//! dropped (with the header's count lowered to match), and a transcript
//! whose signed selection (re-signed with the linker's own key) differs
//! from the items delivered. Each is refused; the untouched replies open.

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    messages::Message,
    transcript::{self, Body, Trailer, Transcript},
    types::Digest,
};

use super::harness::{runtime, Fed, Logs, REGISTERS};
use crate::researcher::open_delivery;

/// The index of the first `DeliveryItems` with at least two items.
fn items_message(replies: &[Message]) -> usize {
    replies
        .iter()
        .position(|m| matches!(m, Message::DeliveryItems { items, .. } if items.len() >= 2))
        .expect("a batch of two items or more")
}

fn refusal(fed: &Fed, replies: Vec<Message>) -> String {
    format!(
        "{:#}",
        open_delivery(&fed.manifest, &fed.researcher_hpke, replies)
            .expect_err("a tampered delivery must be refused")
    )
}

#[test]
fn a_delivery_that_differs_from_the_signed_record_is_refused_by_the_client() {
    let logs = Logs::default();
    let (rt, dispatch) = runtime(&logs);
    let _default = tracing::dispatcher::set_default(&dispatch);
    rt.block_on(async {
        let fed = Fed::start().await;
        let project = "DELIVERY-1";
        fed.run_project(project, &REGISTERS).await;
        let honest = fed.fetch_replies(project).await;
        assert!(open_delivery(&fed.manifest, &fed.researcher_hpke, honest.clone()).is_ok());
        let at = items_message(&honest);

        // An item twice, in place of the next one (same count).
        let mut replies = honest.clone();
        if let Message::DeliveryItems { items, .. } = &mut replies[at] {
            let mut v = items.clone().into_inner();
            v[1] = v[0].clone();
            *items = BoundedVec::new(v).expect("fits");
        }
        let e = refusal(&fed, replies);
        assert!(e.contains("delivered twice or out of order"), "{e}");

        // An item dropped, the header's count lowered to hide it.
        let mut replies = honest.clone();
        let list = match &mut replies[at] {
            Message::DeliveryItems { items, list, .. } => {
                let mut v = items.clone().into_inner();
                v.remove(1);
                *items = BoundedVec::new(v).expect("fits");
                list.clone()
            }
            _ => unreachable!("an items message"),
        };
        for m in &mut replies {
            if let Message::DeliveryHeader { list: l, items, .. } = m {
                if *l == list {
                    *items -= 1;
                }
            }
        }
        let e = refusal(&fed, replies);
        assert!(e.contains("the signed delivery record says"), "{e}");

        // The items are the linker's, but the selection it signed is not
        // theirs (re-signed with the linker's key, so the transcript itself
        // verifies).
        let Some(Message::TranscriptFile { bytes }) = honest.first() else {
            panic!("the transcript first")
        };
        let (entries, _) = transcript::decode_file(bytes).expect("decodes");
        let linker = SigningKey::from_bytes(&fed.keystore("LINKER").signing_key().to_bytes());
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
        let e = refusal(&fed, replies);
        assert!(
            e.contains("the delivered selection differs from the signed delivery record"),
            "{e}"
        );
        fed.stop().await;
    });
}
