//! `kobling delivery status --manifest M --key OPERATOR_KEY --delivery ID
//! [--watch]`: where a delivery is, as its transcript at the linker
//! shows it (verified before it is read): the approvals per register, the
//! commitments, the chain per hop, the check, whether the holder's fetch
//! is recorded, and, last, `phase: <ordered|chaining|checked|received|closed>`.
//!
//! The holder-local form (`--dir NODE_DIR --domain R`, the deliveries a
//! holder received) is `super::delivery`'s.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use kobling_protocol::{
    manifest::Manifest,
    transcript::{Body, Entry, Signer},
    types::{Name, ProjectId},
};

use crate::{console::say, keyfile::KeyFile, manifest_file};

/// The phase a delivery's transcript shows.
pub(crate) fn phase(entries: &[Entry]) -> &'static str {
    let has = |f: fn(&Body) -> bool| entries.iter().any(|e| f(&e.signed.statement.body));
    if has(|b| matches!(b, Body::Closure(_))) {
        "closed"
    } else if has(|b| matches!(b, Body::Delivery(_))) {
        "received"
    } else if has(|b| matches!(b, Body::ListCheck(c) if c.passed)) {
        "checked"
    } else if has(|b| {
        matches!(
            b,
            Body::ListAnnounced(_) | Body::ListAnnouncedV2(_) | Body::Hop(_) | Body::HopV2(_)
        )
    }) {
        "chaining"
    } else {
        "ordered"
    }
}

/// The order of the phases.
fn rank(phase: &str) -> u8 {
    match phase {
        "chaining" => 1,
        "checked" => 2,
        "received" => 3,
        "closed" => 4,
        _ => 0,
    }
}

/// The lines `status` prints for `entries`, the phase last.
pub(crate) fn lines(entries: &[Entry]) -> Vec<String> {
    let mut out = Vec::new();
    let mut approvals: BTreeMap<Name, BTreeSet<[u8; 32]>> = BTreeMap::new();
    let mut committed = Vec::new();
    let mut hops = Vec::new();
    for e in entries {
        let st = &e.signed.statement;
        match (&st.body, &st.signer) {
            (Body::Order(o), _) => {
                let into = o
                    .delivery
                    .as_ref()
                    .map_or_else(|| "(not a delivery)".to_string(), |d| d.domain.to_string());
                let source = o
                    .registers
                    .iter()
                    .map(|r| r.register.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(format!("delivery {}: from {source} into {into}", o.project));
            }
            (Body::Approval(a), Signer::Operator { key, .. }) => {
                approvals
                    .entry(a.register.clone())
                    .or_default()
                    .insert(key.0);
            }
            (Body::Commitment(c), _) => committed.push(c.member.to_string()),
            (Body::HopV2(h), _) => hops.push(format!("{} hop {}", h.list, h.hop)),
            (Body::Hop(h), _) => hops.push(format!("{} hop {}", h.list, h.hop)),
            (Body::ListCheck(c), _) => out.push(format!(
                "check of {} (attempt {}): {}",
                c.list,
                c.attempt,
                if c.passed { "passed" } else { "FAILED" }
            )),
            _ => {}
        }
    }
    for (register, keys) in &approvals {
        out.push(format!("approvals {register}: {} of 2", keys.len().min(2)));
    }
    if !committed.is_empty() {
        out.push(format!("committed: {}", committed.join(", ")));
    }
    for h in hops {
        out.push(format!("stepped: {h}"));
    }
    out.push(format!("phase: {}", phase(entries)));
    out
}

/// Asks the linker for the delivery's transcript and prints where it is;
/// with `watch`, again every two seconds until it is received or closed.
pub(crate) fn status(
    manifest: &Path,
    key: &Path,
    delivery: &str,
    watch: bool,
    save: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let manifest: Manifest = manifest_file::load(manifest)?;
    let key = KeyFile::load(key)?;
    let id = ProjectId::new(delivery).context("a delivery id is a project id")?;
    let linker = manifest
        .linker()
        .map(|l| l.name.clone())
        .context("the manifest names no linker")?;
    let rt = super::runtime()?;
    loop {
        let (entries, notice, file) = rt.block_on(super::project::status::status_reply(
            &manifest, &key, &id, &linker,
        ))?;
        anyhow::ensure!(!entries.is_empty(), "{linker} holds no delivery {id}");
        let mut lines = lines(&entries);
        // An operator who did not order the delivery reads the transcript
        // up to the chain; the linker's signed notice tells what followed.
        let told = match notice {
            Some(kobling_protocol::notice::Notified::Closed) => Some("closed"),
            Some(kobling_protocol::notice::Notified::Delivered) => Some("received"),
            Some(kobling_protocol::notice::Notified::Linked) => Some("checked"),
            None => None,
        };
        let shown = phase(&entries);
        let phase = match told {
            Some(t) if rank(t) > rank(shown) => t,
            _ => shown,
        };
        if let Some(last) = lines.last_mut() {
            *last = format!("phase: {phase}");
        }
        for l in &lines {
            say!("{l}");
        }
        let done = matches!(phase, "received" | "closed");
        if let (Some(path), true) = (save, !watch || done) {
            // The whole signed transcript, for `kobling audit verify`: the
            // linker gives it to the operator who ordered the delivery.
            let file = file.context(
                "the linker gave the transcript's register part only: the operator who ordered the delivery can save it",
            )?;
            use std::io::Write as _;
            let mut out = crate::private_fs::create_new(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            out.write_all(&file)
                .with_context(|| format!("cannot write {}", path.display()))?;
            say!("transcript written to {}", path.display());
        }
        if !watch || done {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kobling_protocol::{
        bounded::{BoundedString, BoundedVec},
        manifest::{Ed25519Key, X25519Key},
        receipt::DeliveryInto,
        transcript::{Closure, ProjectOrder, RegisterRequest, Statement, Transcript},
        types::UnixTime,
    };

    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).expect("name")
    }

    #[test]
    fn the_phase_follows_the_transcript_and_is_the_last_line() {
        let operator = SigningKey::from_bytes(&[7; 32]);
        let linker = SigningKey::from_bytes(&[8; 32]);
        let order = ProjectOrder {
            project: ProjectId::new("APOTEK-RESEPT-2025").expect("id"),
            title: BoundedString::new("t").expect("fits"),
            legal_basis: BoundedString::new("b").expect("fits"),
            manifest_digest: kobling_protocol::types::Digest([0; 32]),
            linker: n("LINKER"),
            registers: BoundedVec::new(vec![RegisterRequest {
                register: n("APOTEK"),
                variables: BoundedVec::new(vec![BoundedString::new("atc").expect("fits")])
                    .expect("fits"),
            }])
            .expect("fits"),
            cohort: BoundedString::new("APOTEK").expect("fits"),
            expires: UnixTime(2_000_000_000),
            researcher_signing_key: Ed25519Key(operator.verifying_key().to_bytes()),
            researcher_hpke_key: X25519Key([3; 32]),
            test_mode: true,
            grant: None,
            delivery: Some(DeliveryInto {
                domain: n("RESEPT"),
            }),
            pseudonymous: Default::default(),
            identified: None,
        };
        let mut t = Transcript::new();
        let statement = |body| Statement {
            project: order.project.clone(),
            time: UnixTime(1),
            signer: Signer::Researcher(order.researcher_signing_key),
            body,
        };
        t.append(
            statement(Body::Order(order.clone())).sign(&operator),
            &linker,
        );
        let entries = t.clone().into_entries();
        assert_eq!(phase(&entries), "ordered");
        let l = lines(&entries);
        assert_eq!(l[0], "delivery APOTEK-RESEPT-2025: from APOTEK into RESEPT");
        assert_eq!(l.last().map(String::as_str), Some("phase: ordered"));

        t.append(
            statement(Body::Closure(Closure {
                reason: BoundedString::new("done").expect("fits"),
            }))
            .sign(&operator),
            &linker,
        );
        let entries = t.into_entries();
        assert_eq!(phase(&entries), "closed");
        assert_eq!(
            lines(&entries).last().map(String::as_str),
            Some("phase: closed")
        );
    }
}
