//! The tamper suite (issue 5): a transcript from a real in-memory run, then
//! every kind of tampering, each rejected by the verifier with the right
//! check named. The run is a chain v1 run (`Federation::run_v1`), so that
//! `audit verify` keeps its v1 coverage; chain v2 transcripts are tampered
//! with in `chain_v2.rs` and `protocol/src/v2/tests.rs`. The CLI's exit codes and output are tested in
//! `node/tests/audit_cli.rs`.

use std::sync::OnceLock;

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use ed25519_dalek::SigningKey;
use kobling_node::testing::{Faults, Federation, ProjectConfig, LINKER};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    chain::multiply_decoded,
    dleq::{self, ChunkProof, ChunkStatement},
    manifest::{Ed25519Key, Manifest},
    share::{Domain, Share},
    transcript::{
        decode_file, encode_file, verify, verify_appended, Body, Check, Closure, Entry, Shredded,
        SignedStatement, Signer, Statement, Trailer, Transcript, VerifiedTranscript, VerifyError,
    },
    types::{ChunkIndex, Digest, HopIndex, Name},
};
use kobling_sim::population::{generate, PopulationConfig};
use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};

const REGISTERS: [&str; 4] = ["NPR", "KPR", "SSB", "RESEPT"];
/// The seed of the fixture's federation (operator and researcher keys).
const FEDERATION_SEED: u64 = 42;

fn name(s: &str) -> Name {
    Name::new(s).expect("valid name")
}

/// A full run over 600 persons in chunks of 64, shared by every test.
struct Fixture {
    _dir: tempfile::TempDir,
    fed: Federation,
    entries: Vec<Entry>,
    trailer: Trailer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let fed = Federation::create(dir.path(), &REGISTERS, FEDERATION_SEED).expect("federation");
        let pop = generate(&PopulationConfig {
            persons: 600,
            seed: 7,
            cohort_share: 0.2,
            ..Default::default()
        });
        let extracts: Vec<_> = REGISTERS
            .iter()
            .map(|r| pop.extract(r).expect("extract"))
            .collect();
        let config = ProjectConfig {
            project: "AUDIT-1".into(),
            cohort: "NPR & KPR".into(),
            chunk_size: 64,
            seed: 11,
            faults: Faults::default(),
        };
        let (out, _net) = fed.run_v1(&extracts, &config).expect("clean run");
        let (entries, trailer) = out.transcript;
        Fixture {
            _dir: dir,
            fed,
            entries,
            trailer,
        }
    })
}

impl Fixture {
    fn manifest(&self) -> &Manifest {
        &self.fed.manifest
    }

    fn node_key(&self, member: &str) -> SigningKey {
        let ks = self.fed.keystore(member).expect("keystore");
        SigningKey::from_bytes(&ks.signing_key().to_bytes())
    }

    fn linker_key(&self) -> SigningKey {
        self.node_key(LINKER)
    }

    fn bytes(&self) -> Vec<u8> {
        encode_file(&self.entries, &self.trailer)
    }

    fn statements(&self) -> Vec<SignedStatement> {
        self.entries.iter().map(|e| e.signed.clone()).collect()
    }

    /// Chains `statements` anew as the linker does, with a fresh trailer:
    /// after this only the statements themselves can be wrong.
    fn rechain(&self, statements: Vec<SignedStatement>) -> (Vec<Entry>, Trailer) {
        let linker = self.linker_key();
        let mut t = Transcript::new();
        for s in statements {
            t.append(s, &linker);
        }
        let entries = t.into_entries();
        let trailer = Trailer::sign(&self.entries[0].signed.statement.project, &entries, &linker);
        (entries, trailer)
    }

    /// Changes the statement of entry `i`, re-signs it with `key` and
    /// re-chains the transcript.
    fn resign(
        &self,
        i: usize,
        key: &SigningKey,
        change: impl FnOnce(&mut Statement),
    ) -> (Vec<Entry>, Trailer) {
        let mut statements = self.statements();
        let mut st = statements[i].statement.clone();
        change(&mut st);
        statements[i] = st.sign(key);
        self.rechain(statements)
    }

    /// The first entry whose body matches.
    fn find(&self, f: impl Fn(&Body) -> bool) -> usize {
        self.entries
            .iter()
            .position(|e| f(&e.signed.statement.body))
            .expect("entry in the fixture")
    }

    /// The operators' signing keys, re-derived from the federation seed as
    /// `Federation::create` draws them (two per register, in order), and
    /// checked against the manifest.
    fn operator_keys(&self, register: &str) -> Vec<SigningKey> {
        let mut rng = ChaCha20Rng::seed_from_u64(FEDERATION_SEED);
        let mut keys = Vec::new();
        for r in REGISTERS {
            let ops: Vec<SigningKey> = (0..2).map(|_| SigningKey::generate(&mut rng)).collect();
            if r == register {
                keys = ops;
            }
        }
        let member = self.manifest().member(&name(register)).expect("member");
        for (k, o) in keys.iter().zip(&member.operators) {
            assert_eq!(
                Ed25519Key(k.verifying_key().to_bytes()),
                o.key,
                "the operator keys are no longer drawn from the federation seed as this test assumes"
            );
        }
        keys
    }
}

fn check(entries: &[Entry], trailer: &Trailer, manifest: &Manifest) -> VerifyError {
    verify(entries, Some(trailer), manifest).expect_err("tampered transcript must be rejected")
}

fn assert_rejected(
    (entries, trailer): &(Vec<Entry>, Trailer),
    want: Check,
    entry: Option<usize>,
    what: &str,
) {
    let e = check(entries, trailer, fixture().manifest());
    assert_eq!(e.check, want, "{what}: {e}");
    assert_eq!(e.entry, entry.map(|i| i as u64), "{what}: {e}");
}

/// Decodes and verifies a file as the auditor does.
fn audit_bytes(bytes: &[u8], manifest: &Manifest) -> Result<VerifiedTranscript, VerifyError> {
    let (entries, trailer) = decode_file(bytes)?;
    verify(&entries, Some(&trailer), manifest)
}

/// Where each record of the fixture's file starts and ends.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 20; // magic and version
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        spans.push((at, at + 5 + len));
        at += 5 + len;
    }
    spans
}

#[test]
fn a_clean_transcript_verifies_and_reports_the_project() {
    let f = fixture();
    let v = verify(&f.entries, Some(&f.trailer), f.manifest()).expect("clean run verifies");
    assert_eq!(v.entries, f.entries.len());
    assert_eq!(v.lists.len(), 4);
    assert!(v.lists.iter().all(|l| l.complete && l.hops == 4));
    assert!(
        v.lists.iter().all(|l| l.persons > 64),
        "every list should span several chunks: {:?}",
        v.lists
    );
    assert!(v.cohort_persons.is_some_and(|c| c > 0));
    assert!(v.delivered);
    assert!(!v.closed);
    // The same through the file.
    assert_eq!(audit_bytes(&f.bytes(), f.manifest()), Ok(v));
}

/// A second, smaller run (two registers, lists of about a dozen persons in
/// chunks of 8), small enough to flip a bit in every byte of its file.
fn small() -> &'static (tempfile::TempDir, Manifest, Vec<u8>) {
    static SMALL: OnceLock<(tempfile::TempDir, Manifest, Vec<u8>)> = OnceLock::new();
    SMALL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let fed = Federation::create(dir.path(), &["NPR", "KPR"], 1).expect("federation");
        let pop = generate(&PopulationConfig {
            persons: 60,
            seed: 7,
            cohort_share: 0.2,
            ..Default::default()
        });
        let extracts: Vec<_> = ["NPR", "KPR"]
            .iter()
            .map(|r| pop.extract(r).expect("extract"))
            .collect();
        let config = ProjectConfig {
            project: "AUDIT-2".into(),
            cohort: "NPR | KPR".into(),
            chunk_size: 8,
            seed: 11,
            faults: Faults::default(),
        };
        let (out, _net) = fed.run_v1(&extracts, &config).expect("clean run");
        assert!(
            out.verified.lists.iter().all(|l| l.persons > 8),
            "several chunks"
        );
        let (entries, trailer) = out.transcript;
        (dir, fed.manifest.clone(), encode_file(&entries, &trailer))
    })
}

/// Flips each `(byte, mask)` in turn and checks the failure: the header's
/// bytes fail the format check; a record's bytes fail the format check or
/// the hash chain *at that record*; the trailer's the format check at its
/// record or the hash chain without an entry.
fn assert_flips_caught(bytes: &[u8], manifest: &Manifest, flips: &[(usize, u8)]) {
    let spans = record_spans(bytes);
    let trailer = spans.len() - 1;
    let check_flip = |&(i, mask): &(usize, u8)| {
        let mut tampered = bytes.to_vec();
        tampered[i] ^= mask;
        let e = audit_bytes(&tampered, manifest).expect_err("a flipped bit must be caught");
        let record = spans.iter().position(|&(s, end)| s <= i && i < end);
        let ok = match record {
            None => e.check == Check::Format && e.entry.is_none(),
            Some(r) if r == trailer => {
                (e.check == Check::Format && e.entry == Some(r as u64))
                    || (e.check == Check::HashChain && e.entry.is_none())
            }
            Some(r) => {
                matches!(e.check, Check::Format | Check::HashChain) && e.entry == Some(r as u64)
            }
        };
        assert!(ok, "byte {i} mask {mask:#04x} (record {record:?}): {e}");
    };
    // Two threads: each flip is independent.
    let (a, b) = flips.split_at(flips.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| a.iter().for_each(check_flip));
        b.iter().for_each(check_flip);
        other.join().expect("no failed flip");
    });
}

#[test]
fn a_flipped_bit_in_any_byte_is_caught_by_the_format_or_the_hash_chain() {
    let (_, manifest, bytes) = small();
    let spans = record_spans(bytes);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // Every bit of the header, every record's framing and the trailer; a
    // random bit of every other byte.
    let framing: std::collections::HashSet<usize> =
        spans.iter().flat_map(|&(s, _)| s..s + 5).collect();
    let mut flips = Vec::new();
    for i in 0..bytes.len() {
        if i < spans[0].0 || i >= spans[spans.len() - 1].0 || framing.contains(&i) {
            flips.extend((0..8).map(|b| (i, 1u8 << b)));
        } else {
            flips.push((i, 1u8 << (rng.next_u32() % 8)));
        }
    }
    assert_flips_caught(bytes, manifest, &flips);
}

#[test]
fn flipped_bits_in_the_large_transcript_are_caught_too() {
    // The fixture's file is too large to flip every byte in a test: every
    // record's framing, and 16 random bytes of every record.
    let f = fixture();
    let bytes = f.bytes();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut flips: Vec<(usize, u8)> = (0..20).map(|i| (i, 1u8 << (i % 8))).collect();
    for (s, end) in record_spans(&bytes) {
        for i in s..s + 5 {
            flips.push((i, 1u8 << (rng.next_u32() % 8)));
        }
        for _ in 0..16 {
            let i = s + 5 + (rng.next_u32() as usize) % (end - s - 5);
            flips.push((i, 1u8 << (rng.next_u32() % 8)));
        }
    }
    assert_flips_caught(&bytes, f.manifest(), &flips);
}

#[test]
fn truncation_anywhere_is_caught() {
    let f = fixture();
    let bytes = f.bytes();
    let spans = record_spans(&bytes);
    for (r, &(start, end)) in spans.iter().enumerate() {
        // At the boundary: a shorter file with no trailer.
        let e = audit_bytes(&bytes[..start], f.manifest()).expect_err("cut at a boundary");
        assert_eq!(
            (e.check, e.entry),
            (Check::Format, None),
            "cut before record {r}: {e}"
        );
        // Inside the record: in its framing, its body, its last byte.
        for cut in [start + 1, start + 4, start + 5, (start + end) / 2, end - 1] {
            let e = audit_bytes(&bytes[..cut], f.manifest()).expect_err("cut inside a record");
            assert_eq!(
                (e.check, e.entry),
                (Check::Format, Some(r as u64)),
                "cut at byte {cut} inside record {r}: {e}"
            );
        }
    }
    // Inside the magic and the version.
    for cut in [0, 5, 18, 19] {
        let e = audit_bytes(&bytes[..cut], f.manifest()).expect_err("cut header");
        assert_eq!(e.check, Check::Format, "{e}");
    }
    // Entries dropped from the end with the original trailer kept, and
    // the entries with the trailer dropped and a forged one in its place.
    for keep in 0..f.entries.len() {
        let e = check(&f.entries[..keep], &f.trailer, f.manifest());
        assert_eq!(
            (e.check, e.entry),
            (Check::HashChain, None),
            "{keep} kept: {e}"
        );
    }
    let forged = Trailer::sign(
        &f.trailer.project,
        &f.entries[..f.entries.len() - 1],
        &SigningKey::from_bytes(&[9; 32]),
    );
    let e = check(&f.entries[..f.entries.len() - 1], &forged, f.manifest());
    assert_eq!((e.check, e.entry), (Check::HashChain, None), "{e}");
}

#[test]
fn swapped_removed_and_inserted_entries_break_the_hash_chain() {
    let f = fixture();
    let n = f.entries.len();
    for (i, j) in [(0, 1), (1, 2), (3, 9), (n - 2, n - 1), (5, n - 3)] {
        let mut entries = f.entries.clone();
        entries.swap(i, j);
        let e = check(&entries, &f.trailer, f.manifest());
        assert_eq!(
            (e.check, e.entry),
            (Check::HashChain, Some(i as u64)),
            "swap {i},{j}: {e}"
        );
    }
    for i in 0..n {
        let mut entries = f.entries.clone();
        entries.remove(i);
        let e = check(&entries, &f.trailer, f.manifest());
        let want = if i == n - 1 { None } else { Some(i as u64) };
        assert_eq!(
            (e.check, e.entry),
            (Check::HashChain, want),
            "remove {i}: {e}"
        );
    }
    // A duplicated entry, and an entry replayed with its sequence number
    // and previous hash fixed up but not re-signed by the linker.
    let mut entries = f.entries.clone();
    entries.insert(4, f.entries[3].clone());
    let e = check(&entries, &f.trailer, f.manifest());
    assert_eq!((e.check, e.entry), (Check::HashChain, Some(4)), "{e}");
    let mut entries = f.entries.clone();
    let mut replay = f.entries[3].clone();
    replay.seq = 4;
    replay.prev = entries[3].hash();
    entries.insert(4, replay);
    let e = check(&entries, &f.trailer, f.manifest());
    assert_eq!((e.check, e.entry), (Check::HashChain, Some(4)), "{e}");
}

#[test]
fn an_entry_signed_with_a_key_not_in_the_manifest_fails_the_signature_check() {
    let f = fixture();
    let stranger = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(99));
    let stranger_key = Ed25519Key(stranger.verifying_key().to_bytes());
    // A node's statement (a commitment, a hop record) signed by a stranger.
    for i in [
        f.find(|b| matches!(b, Body::Commitment(_))),
        f.find(|b| matches!(b, Body::Hop(_))),
        f.find(|b| matches!(b, Body::LinkSummary(_))),
    ] {
        assert_rejected(
            &f.resign(i, &stranger, |_| {}),
            Check::Signatures,
            Some(i),
            "node",
        );
    }
    // An approval by a stranger claiming to be an operator of NPR.
    let i = f.find(|b| matches!(b, Body::Approval(_)));
    assert_rejected(
        &f.resign(i, &stranger, |st| {
            st.signer = Signer::Operator {
                register: name("NPR"),
                key: stranger_key,
            }
        }),
        Check::Signatures,
        Some(i),
        "operator",
    );
    // An approval by an operator key of another register.
    let kpr_op = f.manifest().member(&name("KPR")).expect("KPR").operators[0].key;
    assert_rejected(
        &f.resign(i, &stranger, |st| {
            st.signer = Signer::Operator {
                register: name("NPR"),
                key: kpr_op,
            }
        }),
        Check::Signatures,
        Some(i),
        "another register's operator",
    );
    // A statement by a signer the manifest does not know.
    let c = f.find(|b| matches!(b, Body::Commitment(_)));
    assert_rejected(
        &f.resign(c, &stranger, |st| st.signer = Signer::Node(name("MALLORY"))),
        Check::Signatures,
        Some(c),
        "unknown node",
    );
    // The order signed by a stranger (the researcher key unchanged).
    assert_rejected(
        &f.resign(0, &stranger, |_| {}),
        Check::Signatures,
        Some(0),
        "order",
    );
    // A researcher statement other than the order, by another researcher.
    assert_rejected(
        &f.resign(1, &stranger, |st| {
            st.signer = Signer::Researcher(stranger_key)
        }),
        Check::Signatures,
        Some(1),
        "researcher",
    );
    // An entry recorded by someone other than the linker.
    let mut entries = f.entries.clone();
    entries[5] = Entry::record(5, entries[5].prev, entries[5].signed.clone(), &stranger);
    let linker = f.linker_key();
    for k in 6..entries.len() {
        let prev = entries[k - 1].hash();
        entries[k] = Entry::record(k as u64, prev, entries[k].signed.clone(), &linker);
    }
    let trailer = Trailer::sign(&f.trailer.project, &entries, &linker);
    assert_rejected(&(entries, trailer), Check::HashChain, Some(5), "recorder");
}

#[test]
fn approvals_must_come_from_two_distinct_operators_for_the_announced_extract() {
    let f = fixture();
    let announce = f.find(|b| matches!(b, Body::ListAnnounced(a) if a.list.as_str() == "KPR"));
    let approvals: Vec<usize> = (0..f.entries.len())
        .filter(|&i| {
            matches!(&f.entries[i].signed.statement.body,
                Body::Approval(a) if a.register.as_str() == "KPR")
        })
        .collect();
    assert_eq!(approvals.len(), 2);

    // The second operator's approval replaced by the first operator's.
    let mut statements = f.statements();
    statements[approvals[1]] = statements[approvals[0]].clone();
    assert_rejected(
        &f.rechain(statements),
        Check::TwoPersonRule,
        Some(announce),
        "same operator twice",
    );

    // The second approval binds a different extract (signed by its operator).
    let ops = f.operator_keys("KPR");
    let different = f.resign(approvals[1], &ops[1], |st| {
        let Body::Approval(a) = &mut st.body else {
            unreachable!("an approval")
        };
        a.extract = Digest([0x5a; 32]);
    });
    assert!(
        verify(&different.0, Some(&different.1), f.manifest()).is_err(),
        "a different extract must not pass"
    );
    assert_rejected(
        &different,
        Check::TwoPersonRule,
        Some(announce),
        "different extract",
    );

    // Approved with another row count than announced.
    let rows = f.resign(approvals[1], &ops[1], |st| {
        let Body::Approval(a) = &mut st.body else {
            unreachable!("an approval")
        };
        a.rows += 1;
    });
    assert_rejected(&rows, Check::TwoPersonRule, Some(announce), "row count");

    // An approval binding another project order.
    let other_order = f.resign(approvals[1], &ops[1], |st| {
        let Body::Approval(a) = &mut st.body else {
            unreachable!("an approval")
        };
        a.order = Digest([1; 32]);
    });
    assert_rejected(
        &other_order,
        Check::TwoPersonRule,
        Some(approvals[1]),
        "order",
    );

    // Only one approval, or the second one after the announcement.
    let mut statements = f.statements();
    statements.remove(approvals[1]);
    assert_rejected(
        &f.rechain(statements),
        Check::TwoPersonRule,
        Some(announce - 1),
        "one approval",
    );
    let mut statements = f.statements();
    let late = statements.remove(approvals[1]);
    statements.insert(announce, late);
    assert_rejected(
        &f.rechain(statements),
        Check::TwoPersonRule,
        Some(announce - 1),
        "late approval",
    );
}

/// A register hop's chunk proof made with a share other than the committed
/// one, as a cheating hop would make it.
fn wrong_share_proof(f: &Fixture, i: usize, rng: &mut ChaCha20Rng) -> (Vec<Entry>, Trailer) {
    let member = match &f.entries[i].signed.statement.body {
        Body::Hop(h) => h.member.to_string(),
        _ => unreachable!("a hop record"),
    };
    let project = f.entries[0].signed.statement.project.clone();
    let wrong = Share::random(rng);
    f.resign(i, &f.node_key(&member), |st| {
        let Body::Hop(h) = &mut st.body else {
            unreachable!("a hop record")
        };
        let statement = ChunkStatement {
            project: &project,
            list: &h.list,
            hop: h.hop,
            chunk: ChunkIndex(1),
            key: h.key,
            input_root: h.chunks[1].input_root,
            output_root: h.chunks[1].output_root,
            count: u64::from(h.chunks[1].count),
        };
        let a = h.chunks[1].proof.a.decode().expect("A");
        let b = multiply_decoded(&wrong, &[*a.inner()])[0];
        let proof = dleq::prove(
            &wrong,
            &RISTRETTO_BASEPOINT_POINT,
            a.inner(),
            &statement.digest(),
            rng,
        );
        let mut chunks = h.chunks.clone().into_inner();
        chunks[1].proof = ChunkProof {
            a: chunks[1].proof.a,
            b,
            proof,
        };
        h.chunks = BoundedVec::new(chunks).expect("bounded");
    })
}

#[test]
fn a_proof_made_with_a_wrong_share_fails_the_proof_check() {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let register_hop = f.find(|b| matches!(b, Body::Hop(h) if h.linker.is_none()));
    assert_rejected(
        &wrong_share_proof(f, register_hop, &mut rng),
        Check::Proofs,
        Some(register_hop),
        "register hop",
    );
    let linker_hop = f.find(|b| matches!(b, Body::Hop(h) if h.linker.is_some()));
    assert_rejected(
        &wrong_share_proof(f, linker_hop, &mut rng),
        Check::Proofs,
        Some(linker_hop),
        "linker hop",
    );
    // The linker's key proof about another blinding.
    let bad_key_proof = f.resign(linker_hop, &f.linker_key(), |st| {
        let Body::Hop(h) = &mut st.body else {
            unreachable!("a hop record")
        };
        let lp = h.linker.as_mut().expect("key proof");
        lp.proof.response = lp.proof.challenge;
    });
    assert_rejected(&bad_key_proof, Check::Proofs, Some(linker_hop), "key proof");
}

#[test]
fn a_hop_whose_input_root_does_not_match_fails_the_hop_chain() {
    let f = fixture();
    let later = f.find(|b| matches!(b, Body::Hop(h) if h.hop == HopIndex(2)));
    let first = f.find(|b| matches!(b, Body::Hop(h) if h.hop == HopIndex(1)));
    for i in [first, later] {
        let member = match &f.entries[i].signed.statement.body {
            Body::Hop(h) => h.member.to_string(),
            _ => unreachable!("a hop record"),
        };
        let tampered = f.resign(i, &f.node_key(&member), |st| {
            let Body::Hop(h) = &mut st.body else {
                unreachable!("a hop record")
            };
            h.input_root = h.output_root;
        });
        assert_rejected(&tampered, Check::HopChain, Some(i), "input root");
    }
    // Hops out of manifest order: the first hop record of a list dropped;
    // the list's next hop record (lists interleave: not necessarily the
    // next entry) is the one out of order.
    let list = match &f.entries[first].signed.statement.body {
        Body::Hop(h) => h.list.clone(),
        _ => unreachable!("a hop record"),
    };
    let next_of_list = (first + 1..f.entries.len())
        .find(|&i| matches!(&f.entries[i].signed.statement.body, Body::Hop(h) if h.list == list))
        .expect("the list's second hop");
    let mut statements = f.statements();
    statements.remove(first);
    let (entries, trailer) = f.rechain(statements);
    let e = check(&entries, &trailer, f.manifest());
    assert_eq!(
        (e.check, e.entry),
        (Check::HopChain, Some(next_of_list as u64 - 1)),
        "{e}"
    );
}

#[test]
fn a_transcript_checked_against_another_manifest_fails_the_manifest_check() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let other = Federation::create(dir.path(), &REGISTERS, 43).expect("federation");
    let e = check(&f.entries, &f.trailer, &other.manifest);
    assert_eq!((e.check, e.entry), (Check::Manifest, Some(0)), "{e}");
    // The same federation with one operator renamed is another manifest.
    let mut renamed = f.manifest().clone();
    renamed.members[1].operators[0].name = "Someone Else".into();
    let e = check(&f.entries, &f.trailer, &renamed);
    assert_eq!((e.check, e.entry), (Check::Manifest, Some(0)), "{e}");
    // An invalid manifest.
    let mut invalid = f.manifest().clone();
    invalid.members[0].operators.truncate(1);
    let e = check(&f.entries, &f.trailer, &invalid);
    assert_eq!((e.check, e.entry), (Check::Manifest, None), "{e}");
}

#[test]
fn the_other_checks_each_catch_their_own_tampering() {
    let f = fixture();
    let linker = f.linker_key();
    let commitment = f.find(|b| matches!(b, Body::Commitment(c) if c.member.as_str() == "SSB"));
    let hop = f.find(|b| matches!(b, Body::Hop(h) if h.member.as_str() == "SSB"));
    let summary = f.find(|b| matches!(b, Body::LinkSummary(_)));
    let delivery = f.find(|b| matches!(b, Body::Delivery(_)));

    // Order: a hop record signed (validly) by a node that is not its hop.
    let tampered = f.resign(hop, &f.node_key("KPR"), |st| {
        st.signer = Signer::Node(name("KPR"))
    });
    assert_rejected(&tampered, Check::Order, Some(hop), "authority");
    // Order: an entry about another project.
    let tampered = f.resign(summary, &linker, |st| {
        st.project = kobling_protocol::types::ProjectId::new("OTHER").expect("valid")
    });
    assert_rejected(&tampered, Check::Order, Some(summary), "project");

    // Commitments: SSB commits to another key than it steps with.
    let tampered = f.resign(commitment, &f.node_key("SSB"), |st| {
        let Body::Commitment(c) = &mut st.body else {
            unreachable!("a commitment")
        };
        c.key = Share::random(&mut ChaCha20Rng::seed_from_u64(1)).commitment();
    });
    assert_rejected(&tampered, Check::Commitments, Some(hop), "commitment");
    // Commitments: a commitment moved after its first use.
    let mut statements = f.statements();
    let c = statements.remove(commitment);
    statements.insert(hop, c);
    assert_rejected(
        &f.rechain(statements),
        Check::Commitments,
        Some(hop - 1),
        "late",
    );

    // Link summary: one more matched person than the linker found.
    let tampered = f.resign(summary, &linker, |st| {
        let Body::LinkSummary(s) = &mut st.body else {
            unreachable!("a summary")
        };
        s.cohort_persons = 10_000;
    });
    assert_rejected(&tampered, Check::LinkSummary, Some(summary), "cohort size");

    // Delivery: more items than matched, or to someone else.
    let tampered = f.resign(delivery, &linker, |st| {
        let Body::Delivery(d) = &mut st.body else {
            unreachable!("a delivery")
        };
        let mut lists = d.lists.clone().into_inner();
        lists[0].items += 1;
        d.lists = BoundedVec::new(lists).expect("bounded");
    });
    assert_rejected(&tampered, Check::Delivery, Some(delivery), "items");
    let tampered = f.resign(delivery, &linker, |st| {
        let Body::Delivery(d) = &mut st.body else {
            unreachable!("a delivery")
        };
        d.recipient = Ed25519Key([7; 32]);
    });
    assert_rejected(&tampered, Check::Delivery, Some(delivery), "recipient");
}

/// The fixture closed: a closure by the linker and a shredding confirmation
/// by every key holder in `shredders`.
fn closed(f: &Fixture, shredders: &[&str]) -> (Vec<Entry>, Trailer) {
    let project = f.entries[0].signed.statement.project.clone();
    let now = f.entries[0].signed.statement.time.plus(86_400);
    let statement = |signer: &str, body: Body| Statement {
        project: project.clone(),
        time: now,
        signer: Signer::Node(name(signer)),
        body,
    };
    let mut statements = f.statements();
    statements.push(
        statement(
            LINKER,
            Body::Closure(Closure {
                reason: BoundedString::new("expired").expect("short"),
            }),
        )
        .sign(&f.linker_key()),
    );
    for m in shredders {
        statements.push(
            statement(
                m,
                Body::Shredded(Shredded {
                    member: name(m),
                    domain: Domain::Project(project.clone()),
                }),
            )
            .sign(&f.node_key(m)),
        );
    }
    f.rechain(statements)
}

#[test]
fn a_closed_project_must_be_shredded_by_every_key_holder_and_run_nothing_more() {
    let f = fixture();
    let all = ["NPR", "KPR", "SSB", "RESEPT", LINKER];
    let (entries, trailer) = closed(f, &all);
    let v = verify(&entries, Some(&trailer), f.manifest()).expect("closed project verifies");
    assert!(v.closed && v.delivered);

    let missing = closed(f, &all[..4]);
    assert_rejected(&missing, Check::Closure, None, "linker did not shred");

    // A delivery after the closure.
    let (entries, _) = closed(f, &all);
    let mut statements: Vec<SignedStatement> = entries.iter().map(|e| e.signed.clone()).collect();
    let delivery = f.find(|b| matches!(b, Body::Delivery(_)));
    statements.push(statements[delivery].clone());
    let after = f.rechain(statements);
    assert_rejected(
        &after,
        Check::Closure,
        Some(after.0.len() - 1),
        "delivery after closure",
    );
}

#[test]
fn a_failure_means_every_earlier_check_held() {
    // The report semantics the CLI relies on: checks run in Check::ALL
    // order, so a failure's check orders the others.
    assert_eq!(Check::ALL[0], Check::Format);
    for (i, a) in Check::ALL.iter().enumerate() {
        for (j, b) in Check::ALL.iter().enumerate() {
            assert_eq!(a.runs_before(*b), i < j, "{a} vs {b}");
        }
    }
    let names: std::collections::HashSet<&str> = Check::ALL.iter().map(Check::name).collect();
    assert_eq!(names.len(), Check::ALL.len());
}

/// Issue 12 item 2 (data minimisation), as every node, `audit verify` and
/// the researcher's client check it: a register that announces (and so
/// would seal) a column the order does not request, drops one, or reorders
/// them is refused; and a delivered column must be one every approving
/// operator signed.
#[test]
fn a_list_whose_columns_are_not_the_order_s_variables_is_refused() {
    let f = fixture();
    let announced = f.find(|b| matches!(b, Body::ListAnnounced(a) if a.list.as_str() == "KPR"));
    let kpr = f.node_key("KPR");
    let change = |edit: fn(&mut Vec<BoundedString<128>>)| {
        f.resign(announced, &kpr, |st| {
            let Body::ListAnnounced(a) = &mut st.body else {
                unreachable!("an announcement")
            };
            let mut columns = a.columns.clone().into_inner();
            edit(&mut columns);
            a.columns = BoundedVec::new(columns).expect("bounded");
        })
    };
    let extra = change(|c| c.push(BoundedString::new("fnr_of_mother").expect("short")));
    assert_rejected(
        &extra,
        Check::TwoPersonRule,
        Some(announced),
        "an extra column",
    );
    let e = check(&extra.0, &extra.1, f.manifest());
    assert!(e.to_string().contains("the order requests"), "{e}");
    let dropped = change(|c| {
        c.pop();
    });
    assert_rejected(
        &dropped,
        Check::TwoPersonRule,
        Some(announced),
        "a dropped column",
    );
    let swapped = change(|c| c.reverse());
    let order = f.find(|b| matches!(b, Body::Order(_)));
    let Body::Order(o) = &f.entries[order].signed.statement.body else {
        unreachable!("the order")
    };
    let kpr_vars = &o
        .registers
        .iter()
        .find(|r| r.register.as_str() == "KPR")
        .expect("KPR")
        .variables;
    if kpr_vars.len() > 1 {
        assert_rejected(
            &swapped,
            Check::TwoPersonRule,
            Some(announced),
            "reordered columns",
        );
    }

    // The order asks for a column no operator approved: an approval whose
    // signed columns lack one of the delivered variables.
    let approval = f.find(|b| matches!(b, Body::Approval(a) if a.register.as_str() == "KPR"));
    let ops = f.operator_keys("KPR");
    let signer = f.entries[approval].signed.statement.signer.clone();
    let Signer::Operator { key, .. } = &signer else {
        unreachable!("an operator")
    };
    let op = ops
        .iter()
        .find(|k| Ed25519Key(k.verifying_key().to_bytes()) == *key)
        .expect("the approving operator");
    let narrow = f.resign(approval, op, |st| {
        let Body::Approval(a) = &mut st.body else {
            unreachable!("an approval")
        };
        a.columns =
            BoundedVec::new(vec![BoundedString::new("fnr").expect("short")]).expect("bounded");
    });
    assert_rejected(
        &narrow,
        Check::TwoPersonRule,
        Some(announced),
        "an unapproved column",
    );
}

/// Issue 12 item 10: counts a peer signs are added and compared without
/// wrapping or panicking: `u64::MAX`-sized invalid counts and matched
/// counts are refusals.
#[test]
fn counts_near_u64_max_are_refused_not_wrapped() {
    let f = fixture();
    let announced = f.find(|b| matches!(b, Body::ListAnnounced(a) if a.list.as_str() == "KPR"));
    let tampered = f.resign(announced, &f.node_key("KPR"), |st| {
        let Body::ListAnnounced(a) = &mut st.body else {
            unreachable!("an announcement")
        };
        // Two counts whose sum wraps to a small number in u64.
        let invalid = vec![
            kobling_protocol::transcript::InvalidCount {
                reason: BoundedString::new("checksum").expect("short"),
                count: u64::MAX,
            },
            kobling_protocol::transcript::InvalidCount {
                reason: BoundedString::new("length").expect("short"),
                count: 2,
            },
        ];
        a.invalid = BoundedVec::new(invalid).expect("bounded");
    });
    let e = check(&tampered.0, &tampered.1, f.manifest());
    assert_eq!(e.check, Check::HopChain, "{e}");
    assert!(e.to_string().contains("more than 2^64"), "{e}");

    // A summary whose matched counts would overflow a u64 sum.
    let summary = f.find(|b| matches!(b, Body::LinkSummary(_)));
    let tampered = f.resign(summary, &f.linker_key(), |st| {
        let Body::LinkSummary(s) = &mut st.body else {
            unreachable!("a summary")
        };
        let mut lists = s.lists.clone().into_inner();
        for l in &mut lists {
            l.matched = u64::MAX;
            l.persons = u64::MAX;
        }
        s.lists = BoundedVec::new(lists).expect("bounded");
        s.cohort_persons = u64::MAX;
    });
    let e = check(&tampered.0, &tampered.1, f.manifest());
    assert_eq!(e.check, Check::LinkSummary, "{e}");
}

#[test]
fn the_linker_s_incremental_check_verifies_each_new_entry_as_the_whole_check_does() {
    let f = fixture();
    // On the honest transcript, at every prefix: the same verdict as the
    // whole check.
    for n in 1..=f.entries.len() {
        let prefix = &f.entries[..n];
        assert_eq!(
            verify_appended(prefix, f.manifest(), n - 1).expect("verifies"),
            verify(prefix, None, f.manifest()).expect("verifies"),
            "prefix of {n}"
        );
    }
    // A new entry with a forged proof, a forged key proof or a foreign
    // signature is refused when it is the one appended.
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let register_hop = f.find(|b| matches!(b, Body::Hop(h) if h.linker.is_none()));
    let linker_hop = f.find(|b| matches!(b, Body::Hop(h) if h.linker.is_some()));
    let bad_key_proof = f.resign(linker_hop, &f.linker_key(), |st| {
        let Body::Hop(h) = &mut st.body else {
            unreachable!("a hop record")
        };
        let lp = h.linker.as_mut().expect("key proof");
        lp.proof.response = lp.proof.challenge;
    });
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let foreign = f.resign(register_hop, &stranger, |_| {});
    for ((entries, _), i, want) in [
        (
            wrong_share_proof(f, register_hop, &mut rng),
            register_hop,
            Check::Proofs,
        ),
        (
            wrong_share_proof(f, linker_hop, &mut rng),
            linker_hop,
            Check::Proofs,
        ),
        (bad_key_proof, linker_hop, Check::Proofs),
        (foreign, register_hop, Check::Signatures),
    ] {
        let e = verify_appended(&entries[..=i], f.manifest(), i).expect_err("refused");
        assert_eq!((e.check, e.entry), (want, Some(i as u64)), "{e}");
    }
}
