//! `kobling audit domain`: verify a register domain's transcript offline
//! (PROTOCOL.md §10, `docs/protocol.md` §15).
//!
//! ```text
//!  kobling audit domain --transcript FILE --manifest FILE --domain NAME
//!
//!  bytes ─ decode_domain_transcript ─▶ entries ─ verify_domain_transcript(manifest, NAME)
//!        ─▶ "domain transcript OK: …" (exit 0) | the entry at fault (exit 1)
//! ```
//!
//! Nothing printed identifies a person: a domain transcript holds keys,
//! counts and digests, never a pseudonym.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use kobling_protocol::{
    domain::transcript::{decode_domain_transcript, verify_domain_transcript, DomainState},
    manifest::Manifest,
    types::Name,
};

use crate::{console::say, manifest_file};

/// The largest domain transcript read (2²⁰ entries of a few hundred bytes).
const MAX_DOMAIN_TRANSCRIPT_BYTES: u64 = 1 << 30;

/// Arguments of `kobling audit domain`.
#[derive(Debug, Args)]
pub(crate) struct DomainArgs {
    /// The domain transcript file.
    #[arg(long, value_name = "FILE")]
    transcript: PathBuf,
    /// The federation manifest (TOML) that declares the domain.
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// The domain's name, as in the manifest's `[[domains]]`.
    #[arg(long, value_name = "NAME")]
    domain: String,
}

/// Runs the command: exit status 0 if the transcript verifies, 1 if not.
pub(crate) fn run(args: &DomainArgs) -> anyhow::Result<ExitCode> {
    let manifest = manifest_file::load(&args.manifest)?;
    let domain = Name::new(args.domain.clone()).context("invalid --domain")?;
    let len = std::fs::metadata(&args.transcript)
        .with_context(|| format!("cannot read {}", args.transcript.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_DOMAIN_TRANSCRIPT_BYTES,
        "{} is larger than 1 GiB",
        args.transcript.display()
    );
    let bytes = std::fs::read(&args.transcript)
        .with_context(|| format!("cannot read {}", args.transcript.display()))?;
    match verify(&manifest, &domain, &bytes) {
        Ok(text) => {
            say!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            say!("domain transcript {} FAILS: {e}", args.transcript.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// Decodes and verifies; the report line, or why it fails.
fn verify(
    manifest: &Manifest,
    domain: &Name,
    bytes: &[u8],
) -> Result<String, kobling_protocol::domain::transcript::DomainTranscriptError> {
    let entries = decode_domain_transcript(bytes)?;
    let state = verify_domain_transcript(manifest, domain, &entries)?;
    Ok(render(&state, entries.len()))
}

fn render(state: &DomainState, entries: usize) -> String {
    let keys: Vec<String> = state
        .keys
        .iter()
        .map(|(n, k)| match k {
            Some(k) => format!("{n} {}…", &hex::encode(k.as_bytes())[..16]),
            None => format!("{n} (no commitment yet)"),
        })
        .collect();
    format!(
        "domain transcript OK: domain {}, holder {}, {entries} entries, {} deliveries, {} re-shares, {} innsyn requests answered, {} identified projects' disclosures recorded, head {}…, {}\n  key holders: {}",
        state.domain,
        state.holder,
        state.deliveries,
        state.reshares,
        state.innsyn,
        state.disclosures,
        &state.head.to_hex()[..16],
        if state.retirement().is_some() {
            "RETIRED"
        } else {
            "active"
        },
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use kobling_protocol::{
        bounded::BoundedVec,
        domain::{
            transcript::{encode_domain_transcript, DomainBody, DomainLog},
            DomainSpec,
        },
        fixtures::{manifest_of, member, signing_key as key},
        manifest::Role,
        share::{Domain, Share},
        types::Digest,
    };

    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).expect("valid")
    }

    fn manifest() -> Manifest {
        let m = manifest_of(
            vec![
                member("NPR", Role::Register, 1),
                member("RESEPT", Role::Register, 2),
                member("LINKER", Role::Linker, 3),
            ],
            vec![DomainSpec {
                name: n("RESEPT"),
                holder: n("RESEPT"),
                key_holders: None,
                kind: Default::default(),
            }],
        );
        m.validate().expect("valid");
        m
    }

    #[test]
    fn a_domain_transcript_is_reported_and_a_tampered_one_fails_with_the_entry() {
        let m = manifest();
        let mut log = DomainLog::new();
        log.append(
            n("RESEPT"),
            &key(12),
            DomainBody::Created {
                domain: n("RESEPT"),
                holder: n("RESEPT"),
                key_holders: BoundedVec::new(vec![n("NPR"), n("LINKER")]).expect("fits"),
                manifest: m.digest(),
            },
            vec![],
        );
        for (name, i) in [("NPR", 11), ("LINKER", 13)] {
            let k = Share::derive(&[i; 32], &[0; 32], &Domain::Register(n("RESEPT")))
                .expect("share")
                .commitment();
            log.append(
                n(name),
                &key(i),
                DomainBody::KeyCommitment {
                    member: n(name),
                    key: k,
                },
                vec![],
            );
        }
        log.append(
            n("RESEPT"),
            &key(12),
            DomainBody::Delivery {
                delivery: [1; 16],
                source: n("NPR"),
                persons: 3,
                rows: 5,
                table: Digest([7; 32]),
            },
            vec![],
        );
        let bytes = encode_domain_transcript(log.entries());
        let text = verify(&m, &n("RESEPT"), &bytes).expect("verifies");
        assert!(
            text.contains("domain RESEPT, holder RESEPT, 4 entries, 1 deliveries"),
            "{text}"
        );
        assert!(text.contains("active"), "{text}");
        // The delivery's counts changed after signing.
        let mut entries = log.entries().to_vec();
        if let DomainBody::Delivery { persons, .. } = &mut entries[3].body {
            *persons = 4;
        }
        let err =
            verify(&m, &n("RESEPT"), &encode_domain_transcript(&entries)).expect_err("tampered");
        assert!(err.to_string().starts_with("entry 3:"), "{err}");
        assert!(verify(&m, &n("IPLOS"), &bytes).is_err());
        assert!(verify(&m, &n("RESEPT"), &bytes[..bytes.len() - 1]).is_err());
    }
}
