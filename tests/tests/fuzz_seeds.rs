//! Writes the seed corpus of the fuzz targets (`fuzz/seeds/<target>/`):
//! a few valid inputs per target in the real formats, so the fuzzers start
//! from well-formed messages, files and keystores instead of discovering
//! magic bytes, checksums and postcard layouts byte by byte.
//!
//! Run by hand after a format change (docs/reliability.md, "Fuzzing"):
//!
//! ```text
//! cargo test -p kobling-tests --test fuzz_seeds -- --ignored
//! ```
//!
//! Every identifier written is synthetic (month + 80); transcripts hold no
//! identifiers at all.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore};
use kobling_node::testing::{Faults, Federation, ProjectConfig};
use kobling_protocol::{
    bounded::{BoundedBytes, BoundedString, BoundedVec},
    group::WirePoint,
    hash::{hash_to_group, tags},
    hop::{owner_chunks, ListContext, PointChunk},
    ident::{IdKind, Identifier},
    messages::{encode, Action, Message, Request, PROTOCOL_VERSION},
    seal::{encode_rows, SealedItem, WrappedKey},
    share::Domain,
    transcript::{encode_file, Body, Closure, Signer, Statement},
    types::{Digest, ListName, Name, ProjectId, UnixTime},
};
use kobling_sim::population::{generate, PopulationConfig};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir().join(target);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn with_flag(flag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(bytes);
    out
}

fn name(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn list_name(s: &str) -> ListName {
    ListName::new(s).expect("valid")
}

fn project() -> ProjectId {
    ProjectId::new("FUZZ-1").expect("valid")
}

/// `n` valid points (hashes to the group), as owners send them.
fn points(n: u64) -> Vec<WirePoint> {
    (0..n)
        .map(|i| {
            WirePoint(
                hash_to_group(tags::IDENTITY, &i.to_le_bytes())
                    .compress()
                    .to_bytes(),
            )
        })
        .collect()
}

/// A synthetic identifier (month + 80), never a real person's.
fn synthetic(day: u8, individual: u16) -> String {
    (individual..individual + 50)
        .find_map(|i| Identifier::from_parts(1985, 6, day, i, IdKind::Synthetic).ok())
        .expect("some individual number has valid check digits")
        .as_str()
        .to_owned()
}

fn messages() -> Vec<Message> {
    let researcher = SigningKey::from_bytes(&[7; 32]);
    let ctx = ListContext {
        project: project(),
        list: list_name("NPR"),
        persons: 3,
        chunk_size: 2,
    };
    let chunk = owner_chunks(&ctx, &points(3)).next().expect("a chunk");
    let statement = Statement {
        project: project(),
        time: UnixTime(1_700_000_000),
        signer: Signer::Node(name("LINKER")),
        body: Body::Closure(Closure {
            reason: BoundedString::new("expired").expect("fits"),
        }),
    }
    .sign(&SigningKey::from_bytes(&[9; 32]));
    vec![
        Message::Hello {
            version: PROTOCOL_VERSION,
        },
        Message::Ack {
            of: Digest([3; 32]),
        },
        Message::Refused {
            code: BoundedString::new("unknown-project").expect("fits"),
            detail: BoundedString::new("no such project").expect("fits"),
        },
        Message::Points(chunk),
        Message::Statement(statement),
        Message::Fetch(
            Request {
                project: project(),
                action: Action::Fetch,
                time: UnixTime(1_700_000_000),
                node: name("LINKER"),
                manifest: Digest([4; 32]),
                nonce: [5; kobling_protocol::messages::NONCE_LEN],
            }
            .sign(&researcher),
        ),
        Message::SealedItems {
            project: project(),
            list: list_name("KPR"),
            first: kobling_protocol::types::Position(0),
            items: BoundedVec::new(vec![SealedItem(
                BoundedBytes::new(vec![0x5a; 80]).expect("fits"),
            )])
            .expect("fits"),
        },
        Message::Blinding {
            project: project(),
            list: list_name("NPR"),
            sealed: WrappedKey {
                enc: [4; 32],
                ciphertext: BoundedBytes::new(vec![5; 48]).expect("fits"),
            },
        },
        Message::Notice(
            kobling_protocol::notice::PhaseNotice {
                project: project(),
                phase: kobling_protocol::notice::Notified::Closed,
                failed_list: None,
            }
            .sign(&SigningKey::from_bytes(&[9; 32])),
        ),
        Message::Notice(
            kobling_protocol::notice::PhaseNotice {
                project: project(),
                phase: kobling_protocol::notice::Notified::Closed,
                failed_list: Some(list_name("KPR")),
            }
            .sign(&SigningKey::from_bytes(&[9; 32])),
        ),
    ]
}

#[test]
#[ignore = "writes fuzz/seeds; run by hand after a format change"]
fn write_fuzz_seeds() {
    // Files of the same name are overwritten; the seeds of targets other
    // generators write (domains, deliveries, innsyn, …) stay.

    // Messages, frames.
    let mut stream = Vec::new();
    for (i, m) in messages().iter().enumerate() {
        let body = encode(m);
        write("message", &format!("{i:02}-{}", m.kind()), &body);
        stream.extend_from_slice(&(body.len() as u32).to_le_bytes());
        stream.extend_from_slice(&body);
    }
    write("frame", "all-messages", &with_flag(0, &stream));
    write("frame", "all-messages-trickled", &with_flag(3, &stream));

    // Point chunks of the target's list (FUZZ-1/NPR, 3 persons, chunks of 2).
    let ctx = ListContext {
        project: project(),
        list: list_name("NPR"),
        persons: 3,
        chunk_size: 2,
    };
    let chunks: Vec<PointChunk> = owner_chunks(&ctx, &points(3)).collect();
    let mut both = vec![0u8];
    for c in &chunks {
        both.extend_from_slice(&postcard::to_allocvec(c).expect("encode"));
    }
    write("point_chunk", "owner-chunks", &both);
    both[0] = 3;
    write("point_chunk", "owner-chunks-adopted", &both);

    // Points: share byte, position byte, points (one invalid at the end).
    let mut pts = vec![5u8, 0];
    for p in points(4) {
        pts.extend_from_slice(p.as_bytes());
    }
    pts.extend_from_slice(&[0xff; 32]);
    write("wire_point", "four-and-a-bad-one", &pts);

    // A real transcript, its manifest, keystores and seed files.
    let dir = tempfile::tempdir().expect("tempdir");
    let fed = Federation::create(&dir.path().join("fed"), &["NPR", "KPR"], 3).expect("fed");
    let pop = generate(&PopulationConfig {
        persons: 120,
        seed: 5,
        cohort_share: 0.3,
        messy_share: 0.1,
    });
    let extracts: Vec<_> = ["NPR", "KPR"]
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    let config = ProjectConfig {
        project: "FUZZ-1".into(),
        cohort: "NPR | KPR".into(),
        chunk_size: 4,
        seed: 9,
        faults: Faults::default(),
    };
    let (out, _net) = fed.run(&extracts, &config).expect("run");
    let (entries, trailer) = &out.transcript;
    let file = encode_file(entries, trailer);
    write("transcript_file", "sim-run", &file);
    write(
        "transcript_file",
        "order-only",
        &encode_file(&entries[..1], trailer),
    );
    write("transcript_audit", "sim-run", &file);
    write("transcript_audit", "cut", &file[..file.len() / 2]);
    write("transcript_verify", "no-edits", &[0]);
    write("transcript_verify", "raw-file", &with_flag(2, &file));
    write(
        "transcript_verify",
        "drop-and-flip",
        &[0, 0, 3, 0, 4, 5, 0, 17, 0, 1],
    );

    let manifest = toml::to_string_pretty(&fed.manifest).expect("render");
    write("manifest", "sim-federation.toml", manifest.as_bytes());
    let key = fed.manifest.members[0].signing_key.to_hex();
    write("manifest", "key", key.as_bytes());

    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let plain = dir.path().join("plain");
    let mut ks = Keystore::create_with_rng(
        &plain,
        None,
        KdfParams::default(),
        &["localhost".into()],
        &mut rng,
    )
    .expect("keystore");
    let kob = std::fs::read(plain.join("keystore.kob")).expect("read");
    write("keystore", "plaintext", &with_flag(0, &kob));
    write(
        "keystore",
        "payload",
        &with_flag(1, &kob[19..kob.len() - 32]),
    );
    let sealed = dir.path().join("sealed");
    Keystore::create_with_rng(
        &sealed,
        Some("fuzz"),
        KdfParams::new(8, 1, 1).expect("params"),
        &["localhost".into()],
        &mut rng,
    )
    .expect("keystore");
    let kob = std::fs::read(sealed.join("keystore.kob")).expect("read");
    write("keystore", "passphrase", &with_flag(0, &kob));

    let domain = Domain::Project(project());
    ks.accept_domain_with_rng(&domain, &mut rng)
        .expect("accept");
    let seed_file = std::fs::read_dir(plain.join("domains"))
        .expect("domains")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "seed"))
        .expect("a seed file");
    let seed = std::fs::read(seed_file.path()).expect("read");
    write("seed_file", "other-keystore", &with_flag(0, &seed));
    let mut wrap = vec![1u8];
    wrap.extend_from_slice(&[0x11; 32]);
    wrap.extend_from_slice(&[0x22; 24]);
    wrap.extend_from_slice(&[3, 0x80]);
    wrap.extend_from_slice(b"FUZZ-2");
    write("seed_file", "wrap", &wrap);

    // Extracts and mapping files, with synthetic identifiers only.
    let (a, b, c) = (synthetic(1, 100), synthetic(2, 200), synthetic(3, 300));
    let csv = format!(
        "fnr,diagnose,dato\n{a},J45,2020-01-02\n{b},\"E11, type 2\",2021-03-04\n{a},I10,2022-05-06\n"
    );
    write("extract_csv", "simple", &with_flag(0, csv.as_bytes()));
    write("extract", "simple", &with_flag(1, csv.as_bytes()));
    let messy = format!(
        "\u{feff}x,fnr,\"merknad\"\r\n1,{a},\"ab\"\"c\"\r\n\r\n2,{},x\n3,{b} ,\"line\nbreak\"\n4,12345,y\n5,{c}\n",
        &b[..10]
    );
    write("extract_csv", "messy", &with_flag(4, messy.as_bytes()));
    write("extract", "messy", &with_flag(1 | 8, messy.as_bytes()));
    let mut mapped = format!("old,current\n{c},{a}\n").into_bytes();
    mapped.push(0);
    mapped.extend_from_slice(format!("fnr,v\n{c},1\n{a},2\n").as_bytes());
    write("extract", "mapping", &with_flag(3, &mapped));

    // Cohorts and item plaintexts.
    for (i, c) in ["NPR | KPR - SSB", "(NPR & KPR) | all", "RESEPT-2 & (A | B)"]
        .iter()
        .enumerate()
    {
        write("cohort", &format!("{i}"), c.as_bytes());
    }
    let rows = vec![
        vec!["J45".to_owned(), "2020-01-02".to_owned()],
        vec!["I10".to_owned(), String::new()],
    ];
    write(
        "sealed_rows",
        "two-rows",
        &encode_rows(&rows).expect("encode"),
    );
    write("sealed_rows", "no-rows", &encode_rows(&[]).expect("encode"));
}
