//! Register domains in the keystore (PROTOCOL.md §10): long-lived seeds
//! that a project's closure never shreds, retirement only against a
//! verified two-operator transcript entry, backups that open only with two
//! operators' passphrases, and a re-share from a backup onto a replacement
//! node.

use ed25519_dalek::{Signer, SigningKey};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use subtle::ConstantTimeEq;

use kobling_keys::{
    backup::{open_backup, BACKUP_LEN},
    DomainStatus, FormatError, KdfParams, Keystore, KeystoreError,
};
use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        transcript::{verify_domain_transcript, DomainBody, DomainLog, OperatorSig},
        verify_step, ConversionContext, ConversionKey, DomainSpec,
    },
    manifest::{Ed25519Key, Manifest, Member, Operator, Role},
    share::Domain,
    transcript::Sig,
    types::{ChunkIndex, HopIndex, ListName, Name, Position, ProjectId},
};

fn fast() -> KdfParams {
    KdfParams::new(64, 1, 1).expect("params")
}

fn n(s: &str) -> Name {
    Name::new(s).expect("valid")
}

fn store(dir: &std::path::Path, seed: u64) -> Keystore {
    Keystore::create_with_rng(
        dir,
        None,
        fast(),
        &["node.kobling.test".into()],
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .expect("create")
}

#[test]
fn a_projects_closure_never_shreds_a_register_domain() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = store(dir.path(), 1);
    let r = Domain::Register(n("RESEPT"));
    let p = Domain::Project(ProjectId::new("P-1").expect("valid"));
    ks.accept_domain(&r).expect("accept R");
    ks.accept_domain(&p).expect("accept p");
    let before = ks.commitment(&r).expect("share of R");
    // The project closes: its seed is shredded, R's is not.
    ks.shred(&p).expect("close the project");
    assert_eq!(
        ks.domain_status(&p).expect("status"),
        DomainStatus::Shredded
    );
    assert_eq!(ks.commitment(&r).expect("still there"), before);
    // A closure code path handed R by mistake is refused and changes nothing.
    let err = ks.shred(&r).expect_err("long-lived");
    assert!(matches!(err, KeystoreError::LongLivedDomain { .. }));
    assert!(err.to_string().contains("register domain RESEPT"), "{err}");
    assert_eq!(
        ks.domain_status(&r).expect("status"),
        DomainStatus::Accepted
    );
    assert_eq!(ks.commitment(&r).expect("still there"), before);
}

/// A one-register-domain federation whose holder RESEPT has operators
/// with known keys.
struct Fed {
    manifest: Manifest,
    holder: SigningKey,
    committers: Vec<(Name, SigningKey)>,
    operators: [SigningKey; 2],
}

fn federation() -> Fed {
    let key = |i: u8| SigningKey::from_bytes(&[i; 32]);
    let operators = [key(50), key(51)];
    let mut members = Vec::new();
    let mut committers = Vec::new();
    for (i, (name, role)) in [
        ("NPR", Role::Register),
        ("RESEPT", Role::Register),
        ("LINKER", Role::Linker),
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as u8;
        let ops = match (name, role) {
            ("RESEPT", _) => operators
                .iter()
                .enumerate()
                .map(|(j, k)| Operator {
                    name: format!("op{j}"),
                    key: Ed25519Key(k.verifying_key().to_bytes()),
                })
                .collect(),
            (_, Role::Register) => (0..2)
                .map(|j| Operator {
                    name: format!("op{j}"),
                    key: Ed25519Key([60 + 2 * i + j; 32]),
                })
                .collect(),
            _ => Vec::new(),
        };
        members.push(Member {
            name: n(name),
            role,
            address: format!("127.0.0.1:{}", 7400 + u16::from(i)),
            tls_spki_sha256: kobling_protocol::manifest::TlsFingerprint([10 + i; 32]),
            signing_key: Ed25519Key(key(i + 1).verifying_key().to_bytes()),
            hpke_key: kobling_protocol::manifest::X25519Key([20 + i; 32]),
            operators: ops,
        });
        committers.push((n(name), key(i + 1)));
    }
    let manifest = Manifest {
        federation: "test".into(),
        portals: Vec::new(),
        members,
        authorities: Vec::new(),
        domains: vec![DomainSpec {
            name: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: None,
            kind: Default::default(),
        }],
    };
    manifest.validate().expect("valid");
    Fed {
        manifest,
        holder: key(2),
        committers,
        operators,
    }
}

#[test]
fn retiring_a_domain_shreds_it_only_against_a_verified_two_operator_retirement() {
    let f = federation();
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = store(dir.path(), 2);
    let r = Domain::Register(n("RESEPT"));
    ks.accept_domain(&r).expect("accept");

    let mut log = DomainLog::new();
    log.append(
        n("RESEPT"),
        &f.holder,
        DomainBody::Created {
            domain: n("RESEPT"),
            holder: n("RESEPT"),
            key_holders: BoundedVec::new(vec![n("NPR"), n("LINKER")]).expect("fits"),
            manifest: f.manifest.digest(),
        },
        vec![],
    );
    for (name, key) in f.committers.iter().filter(|(n, _)| n.as_str() != "RESEPT") {
        log.append(
            name.clone(),
            key,
            DomainBody::KeyCommitment {
                member: name.clone(),
                key: ks.commitment(&r).expect("a key"),
            },
            vec![],
        );
    }
    let state = verify_domain_transcript(&f.manifest, &n("RESEPT"), log.entries()).expect("ok");
    assert!(
        state.retirement().is_none(),
        "not retired: nothing to shred"
    );

    let digest = log.next_digest(&n("RESEPT"), &DomainBody::Retired);
    let sigs = f
        .operators
        .iter()
        .map(|k| OperatorSig {
            key: Ed25519Key(k.verifying_key().to_bytes()),
            signature: Sig(k.sign(digest.as_bytes()).to_bytes()),
        })
        .collect();
    log.append(n("RESEPT"), &f.holder, DomainBody::Retired, sigs);
    let state = verify_domain_transcript(&f.manifest, &n("RESEPT"), log.entries()).expect("ok");
    let retirement = state.retirement().expect("retired");
    ks.retire_domain(&retirement).expect("shred");
    assert_eq!(
        ks.domain_status(&r).expect("status"),
        DomainStatus::Shredded
    );
    assert!(matches!(ks.share(&r), Err(KeystoreError::Shredded { .. })));
    assert!(matches!(
        ks.accept_domain(&r),
        Err(KeystoreError::Shredded { .. })
    ));
}

#[test]
fn a_backup_opens_only_with_both_operators_passphrases() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = store(dir.path(), 3);
    let r = Domain::Register(n("RESEPT"));
    ks.accept_domain(&r).expect("accept");
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let backup = ks
        .backup_domain_with_rng(
            &r,
            "kari's passphrase",
            "ola's passphrase",
            fast(),
            &mut rng,
        )
        .expect("backup");
    assert_eq!(backup.len(), BACKUP_LEN);
    assert_eq!(&backup[..12], b"KOBLING-DBAK");
    let share = ks.share(&r).expect("share");
    // The secret is not in the file.
    let secret = share.to_secret_bytes();
    assert!(!backup.windows(32).any(|w| w == secret.as_ref()));

    let opened = open_backup(&r, &backup, "kari's passphrase", "ola's passphrase").expect("open");
    assert!(bool::from(opened.ct_eq(&share)));
    for (a, b) in [
        ("kari's passphrase", "wrong"),
        ("wrong", "ola's passphrase"),
        ("ola's passphrase", "kari's passphrase"),
    ] {
        assert!(matches!(
            open_backup(&r, &backup, a, b),
            Err(KeystoreError::Backup(FormatError::Authentication))
        ));
    }
    // One operator alone cannot stand in for two.
    assert!(matches!(
        open_backup(&r, &backup, "kari's passphrase", "kari's passphrase"),
        Err(KeystoreError::SamePassphrase)
    ));
    assert!(matches!(
        ks.backup_domain(&r, "same", "same", fast()),
        Err(KeystoreError::SamePassphrase)
    ));
    // Another domain's name, altered bytes, truncation: refused.
    let other = Domain::Register(n("IPLOS"));
    assert!(open_backup(&other, &backup, "kari's passphrase", "ola's passphrase").is_err());
    for i in [0, 13, 15, 30, 50, 70, 100, 129] {
        let mut bad = backup.clone();
        bad[i] ^= 1;
        assert!(
            open_backup(&r, &bad, "kari's passphrase", "ola's passphrase").is_err(),
            "byte {i}"
        );
    }
    for len in [0, 12, 57, 129] {
        assert!(open_backup(&r, &backup[..len], "a", "b").is_err());
    }
    // A project's key is never backed up: it must die with the project.
    let p = Domain::Project(ProjectId::new("P-1").expect("valid"));
    ks.accept_domain(&p).expect("accept");
    assert!(matches!(
        ks.backup_domain(&p, "a", "b", fast()),
        Err(KeystoreError::NotARegisterDomain { .. })
    ));
}

/// The old key holder's keystore (KPR) is lost; the replacement node
/// accepts the domain afresh (a new share), the operators open the backup
/// of the old share, and the holder's γ-blinded table is converted by
/// `k'·k⁻¹` with the binding proof. Every stored pseudonym then matches a
/// new delivery of the same persons through the new set of keystores.
#[test]
fn a_replacement_node_reshares_from_the_backup() {
    use kobling_protocol::{
        chain,
        domain::{verify_chunk, ChunkAt},
        hash::{hash_to_group, tags},
        share::Share,
        v2::chunk_digest,
    };
    let r = Domain::Register(n("RESEPT"));
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let mut npr = store(dirs[0].path(), 10);
    let mut linker = store(dirs[1].path(), 11);
    let mut old = store(dirs[2].path(), 5);
    for ks in [&mut npr, &mut linker, &mut old] {
        ks.accept_domain(&r).expect("accept");
    }
    let persons: Vec<_> = (0..40u64)
        .map(|i| hash_to_group(tags::IDENTITY, format!("{:011}", 1000 + i).as_bytes()))
        .collect();
    let psi = |shares: [&Share; 3]| {
        let k = shares[0].product(shares[1]).product(shares[2]);
        chain::multiply_decoded(&k, &persons)
    };
    let (k_npr, k_l) = (npr.share(&r).expect("k"), linker.share(&r).expect("k"));
    let table = psi([&k_npr, &old.share(&r).expect("k"), &k_l]);
    let old_key = old.commitment(&r).expect("K");
    let backup = old
        .backup_domain_with_rng(
            &r,
            "first",
            "second",
            fast(),
            &mut ChaCha20Rng::seed_from_u64(6),
        )
        .expect("backup");
    drop(old);
    std::fs::remove_dir_all(dirs[2].path()).expect("the keystore is lost");

    let mut new = store(dirs[3].path(), 7);
    new.accept_domain(&r).expect("accept");
    let new_share = new.share(&r).expect("k'");
    assert_ne!(new_share.commitment(), old_key);
    let old_share = open_backup(&r, &backup, "first", "second").expect("open");
    let ctx = ConversionContext {
        from: &r,
        to: &r,
        member: &n("KPR"),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let step = ConversionKey::new(ctx, &old_share, &new_share, &mut rng).into_step();
    drop(old_share);
    // The holder checks the step against the committed keys first.
    let key = verify_step(
        ctx,
        &old_key,
        &new_share.commitment(),
        &ListName::of_domain(&n("RESEPT")),
        None,
        &step.proofs(),
    )
    .expect("bound");
    // The holder blinds its table, the replacement node converts it.
    let gamma = Share::random(&mut rng);
    let blinded = chain::apply_share(&gamma, &table, 0).expect("valid");
    let at = ChunkAt {
        target: &r,
        list: &ListName::of_domain(&n("RESEPT")),
        step: HopIndex(1),
        chunk: ChunkIndex(0),
        first_position: Position(0),
    };
    let (converted, proof) = step.apply_chunk(at, &blinded, &mut rng).expect("valid");
    let st = kobling_protocol::domain::convert::ChunkStatement {
        target: &r,
        list: &ListName::of_domain(&n("RESEPT")),
        step: HopIndex(1),
        chunk: ChunkIndex(0),
        key,
        input: chunk_digest(&blinded),
        output: chunk_digest(&converted),
        count: blinded.len() as u64,
    };
    verify_chunk(&st, &blinded, &converted, &proof).expect("proven");
    let restored = chain::apply_share(&gamma.invert(), &converted, 0).expect("valid");
    assert_eq!(restored, psi([&k_npr, &new_share, &k_l]));
    assert_ne!(restored, table);
}
