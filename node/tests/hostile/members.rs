//! A member speaking for another, or sending what its role may not: each
//! from KPR, with its own certificate.

use ed25519_dalek::SigningKey;
use kobling_node::daemon::unix_now;
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedVec},
    group::WirePoint,
    manifest::Ed25519Key,
    messages::Message,
    seal::{SealedItem, WrappedKey},
    share::Domain,
    transcript::{Body, KeyCommitment, Signer, Statement},
    types::Position,
};

use crate::{
    attack, from_kpr,
    harness::{list_name, name, pid},
    P1,
};

/// NPR's key commitment in [`P1`], signed by `key` as `signer`.
fn commitment(key: &SigningKey, signer: Signer) -> Message {
    Message::Statement(
        Statement {
            project: pid(P1),
            time: unix_now(),
            signer,
            body: Body::Commitment(KeyCommitment {
                member: name("NPR"),
                domain: Domain::Project(pid(P1)),
                key: WirePoint([1; 32]),
            }),
        }
        .sign(key),
    )
}

#[test]
fn a_statement_signed_with_another_members_stolen_key_is_impersonation() {
    attack(|s| async move {
        let npr_key = SigningKey::from_bytes(&s.fed.keystore("NPR").signing_key().to_bytes());
        assert_eq!(
            from_kpr(
                s,
                &name("LINKER"),
                commitment(&npr_key, Signer::Node(name("NPR")))
            )
            .await,
            "impersonation",
            "a statement signed with another member's (stolen) key"
        );
    });
}

#[test]
fn a_statement_claiming_another_members_name_is_impersonation() {
    attack(|s| async move {
        let kpr_key = SigningKey::from_bytes(&s.fed.keystore("KPR").signing_key().to_bytes());
        assert_eq!(
            from_kpr(
                s,
                &name("LINKER"),
                commitment(&kpr_key, Signer::Node(name("NPR")))
            )
            .await,
            "impersonation",
            "a statement claiming another member's name"
        );
    });
}

#[test]
fn another_registers_operator_statement_is_impersonation() {
    attack(|s| async move {
        let op = &s.fed.keys.operators[&name("NPR")][0];
        let signer = Signer::Operator {
            register: name("NPR"),
            key: Ed25519Key(op.verifying_key().to_bytes()),
        };
        assert_eq!(
            from_kpr(s, &name("LINKER"), commitment(op, signer)).await,
            "impersonation",
            "another register's operator statement"
        );
    });
}

#[test]
fn another_owners_list_blinding_is_unexpected() {
    attack(|s| async move {
        let wrapped = WrappedKey {
            enc: [3; 32],
            ciphertext: BoundedBytes::new(vec![4; 48]).expect("fits"),
        };
        let blinding = Message::Blinding {
            project: pid(P1),
            list: list_name("NPR"),
            sealed: wrapped,
        };
        assert_eq!(
            from_kpr(s, &name("LINKER"), blinding).await,
            "unexpected",
            "another owner's list blinding"
        );
    });
}

#[test]
fn another_owners_sealed_items_are_unexpected() {
    attack(|s| async move {
        let items = Message::SealedItems {
            project: pid(P1),
            list: list_name("NPR"),
            first: Position(0),
            items: BoundedVec::new(vec![SealedItem(
                BoundedBytes::new(vec![0; 256]).expect("fits"),
            )])
            .expect("fits"),
        };
        assert_eq!(
            from_kpr(s, &name("LINKER"), items).await,
            "unexpected",
            "another owner's sealed items"
        );
    });
}

#[test]
fn transcript_entries_from_a_register_are_unexpected() {
    attack(|s| async move {
        let entries = Message::Entries {
            project: pid(P1),
            first: 0,
            entries: BoundedVec::default(),
        };
        assert_eq!(
            from_kpr(s, &name("NPR"), entries).await,
            "unexpected",
            "transcript entries from a register (refused by kind and role, before any state is read)"
        );
    });
}
