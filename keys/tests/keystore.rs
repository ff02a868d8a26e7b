//! Properties of the keystore as a node uses it: shares, persistence,
//! shredding, permissions, passphrases, damaged files, secret hygiene.

use std::{fs, path::Path};

use ed25519_dalek::{Signer, Verifier};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use subtle::ConstantTimeEq;

use kobling_keys::{DomainStatus, FormatError, KdfParams, Keystore, KeystoreError, KEYSTORE_FILE};
use kobling_protocol::{
    share::{Domain, Share},
    types::{Name, ProjectId},
};

/// Argon2id costs low enough for a fast suite (never for real use).
fn fast() -> KdfParams {
    KdfParams::new(64, 1, 1).expect("params")
}

fn names() -> Vec<String> {
    vec!["node.kobling.test".into(), "127.0.0.1".into()]
}

fn project(id: &str) -> Domain {
    Domain::Project(ProjectId::new(id).expect("valid project id"))
}

fn register(name: &str) -> Domain {
    Domain::Register(Name::new(name).expect("valid name"))
}

fn same(a: &Share, b: &Share) -> bool {
    bool::from(a.ct_eq(b))
}

fn new_store(dir: &Path, passphrase: Option<&str>) -> Keystore {
    Keystore::create(dir, passphrase, fast(), &names()).expect("create")
}

/// The seed files (`*.seed`) in a keystore's `domains` directory.
fn seed_files(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir.join("domains"))
        .expect("list domains")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seed"))
        .collect()
}

#[test]
fn two_keystores_derive_different_shares_for_the_same_domain() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut ka = new_store(a.path(), None);
    let mut kb = new_store(b.path(), None);
    let d = project("REK-2024-1");
    ka.accept_domain(&d).expect("accept");
    kb.accept_domain(&d).expect("accept");
    assert!(!same(
        &ka.share(&d).expect("share"),
        &kb.share(&d).expect("share")
    ));
    assert_ne!(ka.commitment(&d).expect("K"), kb.commitment(&d).expect("K"));
    // Every long-term key differs too.
    assert_ne!(ka.verifying_key(), kb.verifying_key());
    assert_ne!(ka.x25519_public(), kb.x25519_public());
    assert_ne!(ka.tls_spki_sha256(), kb.tls_spki_sha256());
}

#[test]
fn commitment_is_the_shares_public_point() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let d = project("P1");
    ks.accept_domain(&d).expect("accept");
    let k = ks.commitment(&d).expect("K");
    assert_eq!(k, ks.share(&d).expect("share").commitment());
    k.decode().expect("a valid non-identity point");
}

fn reopen_rederives(passphrase: Option<&str>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (p, r) = (project("P1"), register("SSB"));
    let (share_p, share_r, vk, x_pub, x_sec, spki, cert, key) = {
        let mut ks = new_store(dir.path(), passphrase);
        ks.accept_domain(&p).expect("accept");
        ks.accept_domain(&r).expect("accept");
        (
            ks.share(&p).expect("share"),
            ks.share(&r).expect("share"),
            ks.verifying_key(),
            ks.x25519_public(),
            ks.x25519_secret_bytes(),
            ks.tls_spki_sha256(),
            ks.tls_cert_der().to_vec(),
            ks.tls_key_der(),
        )
    };
    let ks = Keystore::open(dir.path(), passphrase).expect("reopen");
    assert!(same(&ks.share(&p).expect("share"), &share_p));
    assert!(same(&ks.share(&r).expect("share"), &share_r));
    assert_eq!(ks.verifying_key(), vk);
    assert_eq!(ks.x25519_public(), x_pub);
    assert_eq!(*ks.x25519_secret_bytes(), *x_sec);
    assert_eq!(ks.tls_spki_sha256(), spki);
    assert_eq!(ks.tls_cert_der(), cert.as_slice());
    assert_eq!(*ks.tls_key_der(), *key);
    // The reopened signing key signs for the published verifying key.
    let sig = ks.signing_key().sign(b"kjoreordre");
    vk.verify(b"kjoreordre", &sig).expect("signature verifies");
}

#[test]
fn reopened_keystore_rederives_the_same_share_without_passphrase() {
    reopen_rederives(None);
}

#[test]
fn reopened_keystore_rederives_the_same_share_with_passphrase() {
    reopen_rederives(Some("korrekt hest batteri stift"));
}

#[test]
fn accepting_twice_keeps_the_seed_and_domains_are_separated() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let (p1, p2, r) = (project("P1"), project("P2"), register("P1"));
    ks.accept_domain(&p1).expect("accept");
    let seeds = seed_files(dir.path());
    assert_eq!(seeds.len(), 1);
    let seed_bytes = fs::read(&seeds[0]).expect("read seed");
    let first = ks.share(&p1).expect("share");

    ks.accept_domain(&p1).expect("accept again");
    assert_eq!(seed_files(dir.path()), seeds);
    assert_eq!(fs::read(&seeds[0]).expect("read seed"), seed_bytes);
    assert!(same(&ks.share(&p1).expect("share"), &first));

    ks.accept_domain(&p2).expect("accept");
    ks.accept_domain(&r).expect("accept");
    assert_eq!(seed_files(dir.path()).len(), 3);
    let s2 = ks.share(&p2).expect("share");
    let sr = ks.share(&r).expect("share");
    assert!(!same(&first, &s2));
    assert!(
        !same(&first, &sr),
        "project P1 and register domain P1 differ"
    );
    assert!(!same(&s2, &sr));
}

#[test]
fn seeds_come_from_the_given_rng_and_the_encrypted_file_hides_the_master() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let d = project("P1");
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let mut plain =
        Keystore::create_with_rng(a.path(), None, fast(), &names(), &mut rng).expect("create");
    plain
        .accept_domain_with_rng(&d, &mut ChaCha20Rng::seed_from_u64(7))
        .expect("accept");
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let mut enc = Keystore::create_with_rng(b.path(), Some("pw"), fast(), &names(), &mut rng)
        .expect("create");
    enc.accept_domain_with_rng(&d, &mut ChaCha20Rng::seed_from_u64(7))
        .expect("accept");
    // Same randomness, same master secret and seed: same share and keys.
    assert!(same(
        &plain.share(&d).expect("share"),
        &enc.share(&d).expect("share")
    ));
    assert_eq!(plain.verifying_key(), enc.verifying_key());
    assert_eq!(plain.x25519_public(), enc.x25519_public());

    let plain_file = fs::read(a.path().join(KEYSTORE_FILE)).expect("read");
    let enc_file = fs::read(b.path().join(KEYSTORE_FILE)).expect("read");
    let master = &plain_file[19..51];
    let signing = plain.signing_key().to_bytes();
    assert_eq!(&plain_file[51..83], signing.as_slice(), "documented layout");
    for secret in [
        master,
        signing.as_slice(),
        plain.x25519_secret_bytes().as_slice(),
    ] {
        assert!(
            !enc_file.windows(32).any(|w| w == secret),
            "a secret appears in the encrypted keystore file"
        );
    }
}

#[test]
fn shredded_domain_cannot_be_derived_or_reaccepted_and_its_seed_is_gone() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let (closed, open) = (project("CLOSED"), project("OPEN"));
    ks.accept_domain(&closed).expect("accept");
    ks.accept_domain(&open).expect("accept");
    let open_share = ks.share(&open).expect("share");
    assert_eq!(seed_files(dir.path()).len(), 2);

    ks.shred(&closed).expect("shred");
    assert_eq!(seed_files(dir.path()).len(), 1, "the seed file is deleted");
    assert!(matches!(
        ks.share(&closed),
        Err(KeystoreError::Shredded { .. })
    ));
    assert!(matches!(
        ks.commitment(&closed),
        Err(KeystoreError::Shredded { .. })
    ));
    let refused = ks
        .accept_domain(&closed)
        .expect_err("re-accepting must be refused");
    assert!(matches!(refused, KeystoreError::Shredded { .. }));
    assert!(refused.to_string().contains("project CLOSED"), "{refused}");
    assert_eq!(seed_files(dir.path()).len(), 1, "no new seed was created");
    assert_eq!(
        ks.domain_status(&closed).expect("status"),
        DomainStatus::Shredded
    );

    // Other domains are untouched; shredding again is harmless.
    assert!(same(&ks.share(&open).expect("share"), &open_share));
    ks.shred(&closed).expect("shred again");

    // It stays shredded across a reopen.
    drop(ks);
    let mut ks = Keystore::open(dir.path(), None).expect("reopen");
    assert!(matches!(
        ks.share(&closed),
        Err(KeystoreError::Shredded { .. })
    ));
    assert!(matches!(
        ks.accept_domain(&closed),
        Err(KeystoreError::Shredded { .. })
    ));
    assert_eq!(
        ks.domain_status(&open).expect("status"),
        DomainStatus::Accepted
    );
}

#[test]
fn the_remaining_seed_file_is_the_open_domains() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let (closed, open) = (project("CLOSED"), project("OPEN"));
    ks.accept_domain(&open).expect("accept");
    let open_seed = seed_files(dir.path());
    ks.accept_domain(&closed).expect("accept");
    ks.shred(&closed).expect("shred");
    assert_eq!(seed_files(dir.path()), open_seed);
}

#[test]
fn unknown_domain_is_reported_and_shredding_it_closes_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let d = project("NEVER");
    assert_eq!(ks.domain_status(&d).expect("status"), DomainStatus::Unknown);
    let err = ks.share(&d).expect_err("unknown");
    assert!(matches!(err, KeystoreError::UnknownDomain { .. }));
    assert!(err.to_string().contains("project NEVER"), "{err}");
    ks.shred(&d).expect("shred unknown");
    assert!(matches!(
        ks.accept_domain(&d),
        Err(KeystoreError::Shredded { .. })
    ));
}

#[test]
fn seed_files_are_bound_to_their_keystore_and_domain() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut ka = new_store(a.path(), None);
    let mut kb = new_store(b.path(), None);
    let (p1, p2) = (project("P1"), project("P2"));
    ka.accept_domain(&p1).expect("accept");
    kb.accept_domain(&p1).expect("accept");
    kb.accept_domain(&p2).expect("accept");
    let a_seed = seed_files(a.path()).pop().expect("seed");
    let b_seeds = seed_files(b.path());
    let name = a_seed.file_name().expect("name");

    // A's seed copied over B's seed for the same domain does not open in B.
    let b_p1 = b.path().join("domains").join(name);
    let b_p2 = b_seeds.into_iter().find(|p| *p != b_p1).expect("P2 seed");
    let b_p2_bytes = fs::read(&b_p2).expect("read");
    fs::copy(&a_seed, &b_p1).expect("copy");
    assert!(matches!(
        kb.share(&p1),
        Err(KeystoreError::CorruptSeed {
            source: FormatError::Authentication,
            ..
        })
    ));
    // B's own P2 seed put under P1's name does not open either.
    fs::write(&b_p1, &b_p2_bytes).expect("write");
    assert!(matches!(
        kb.share(&p1),
        Err(KeystoreError::CorruptSeed {
            source: FormatError::Authentication,
            ..
        })
    ));
    // And accept_domain does not paper over a bad seed with a new one.
    assert!(matches!(
        kb.accept_domain(&p1),
        Err(KeystoreError::CorruptSeed { .. })
    ));
    // A truncated seed file is a typed error.
    fs::write(&b_p1, &b_p2_bytes[..40]).expect("write");
    assert!(matches!(
        kb.share(&p1),
        Err(KeystoreError::CorruptSeed {
            source: FormatError::Truncated,
            ..
        })
    ));
}

#[cfg(unix)]
mod permissions {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn created_files_and_directories_are_private() {
        let parent = tempfile::tempdir().expect("tmp");
        let dir = parent.path().join("node").join("keys");
        let mut ks = new_store(&dir, None);
        ks.accept_domain(&project("P1")).expect("accept");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("domains")), 0o700);
        assert_eq!(mode(&dir.join(KEYSTORE_FILE)), 0o600);
        let seeds = seed_files(&dir);
        assert_eq!(seeds.len(), 1);
        assert_eq!(mode(&seeds[0]), 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn keystore_file_open_to_group_or_others_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        drop(new_store(dir.path(), None));
        let file = dir.path().join(KEYSTORE_FILE);
        for bad in [0o640, 0o604, 0o620, 0o602, 0o644] {
            chmod(&file, bad);
            let err = Keystore::open(dir.path(), None).expect_err("insecure mode");
            assert!(
                matches!(err, KeystoreError::InsecurePermissions { mode, .. } if mode == bad),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:04o}")), "{msg}");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
        }
        chmod(&file, 0o600);
        Keystore::open(dir.path(), None).expect("private again");
        chmod(&file, 0o400);
        Keystore::open(dir.path(), None).expect("read-only for the owner is fine");
    }

    #[test]
    fn seed_file_open_to_group_or_others_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut ks = new_store(dir.path(), None);
        let d = project("P1");
        ks.accept_domain(&d).expect("accept");
        let seed = seed_files(dir.path()).pop().expect("seed");
        chmod(&seed, 0o644);
        let err = ks.share(&d).expect_err("insecure seed");
        assert!(
            matches!(err, KeystoreError::InsecurePermissions { mode: 0o644, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
        assert!(msg.contains(&seed.display().to_string()), "{msg}");
        // accept_domain checks the existing seed the same way.
        assert!(matches!(
            ks.accept_domain(&d),
            Err(KeystoreError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn keystore_directory_open_to_group_or_others_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        drop(new_store(dir.path(), None));
        chmod(dir.path(), 0o755);
        let err = Keystore::open(dir.path(), None).expect_err("insecure dir");
        assert!(err.to_string().contains("chmod 700"), "{err}");
        chmod(dir.path(), 0o700);
        chmod(&dir.path().join("domains"), 0o770);
        let err = Keystore::open(dir.path(), None).expect_err("insecure domains dir");
        assert!(
            matches!(err, KeystoreError::InsecurePermissions { mode: 0o770, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn passphrase_mismatches_are_clear_errors() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    drop(new_store(a.path(), Some("riktig")));
    drop(new_store(b.path(), None));

    let err = Keystore::open(a.path(), Some("feil")).expect_err("wrong passphrase");
    assert!(
        matches!(err, KeystoreError::WrongPassphrase { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert!(matches!(
        Keystore::open(a.path(), Some("Riktig")),
        Err(KeystoreError::WrongPassphrase { .. })
    ));
    assert!(matches!(
        Keystore::open(a.path(), None),
        Err(KeystoreError::PassphraseRequired { .. })
    ));
    assert!(matches!(
        Keystore::open(b.path(), Some("riktig")),
        Err(KeystoreError::UnexpectedPassphrase { .. })
    ));
    Keystore::open(a.path(), Some("riktig")).expect("right passphrase");

    let c = tempfile::tempdir().expect("tmp");
    assert!(matches!(
        Keystore::create(c.path(), Some(""), fast(), &names()),
        Err(KeystoreError::EmptyPassphrase)
    ));
    assert!(!c.path().join(KEYSTORE_FILE).exists());
}

/// Opens the keystore after replacing its file with `bytes`; must not panic.
fn open_with(
    dir: &Path,
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Result<Keystore, KeystoreError> {
    fs::write(dir.join(KEYSTORE_FILE), bytes).expect("write");
    Keystore::open(dir, passphrase)
}

#[test]
fn truncated_keystore_files_give_typed_errors() {
    for passphrase in [None, Some("pw")] {
        let dir = tempfile::tempdir().expect("tmp");
        drop(new_store(dir.path(), passphrase));
        let good = fs::read(dir.path().join(KEYSTORE_FILE)).expect("read");
        for len in 0..good.len() {
            match open_with(dir.path(), &good[..len], passphrase) {
                Err(KeystoreError::Corrupt { .. }) => {}
                other => panic!("prefix of {len} bytes: expected Corrupt, got {other:?}"),
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            open_with(dir.path(), &longer, passphrase),
            Err(KeystoreError::Corrupt { .. })
        ));
        open_with(dir.path(), &good, passphrase).expect("the intact file opens");
    }
}

#[test]
fn bit_flips_in_a_plaintext_keystore_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(new_store(dir.path(), None));
    let good = fs::read(dir.path().join(KEYSTORE_FILE)).expect("read");
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            match open_with(dir.path(), &bad, None) {
                Err(KeystoreError::Corrupt { .. }) => {}
                // The KDF byte 0 → 1 turns the file into an "encrypted" one.
                Err(KeystoreError::PassphraseRequired { .. }) if i == 18 => {}
                other => panic!("bit {bit} of byte {i}: expected Corrupt, got {other:?}"),
            }
        }
    }
}

#[test]
fn bit_flips_in_an_encrypted_keystore_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(new_store(dir.path(), Some("pw")));
    let good = fs::read(dir.path().join(KEYSTORE_FILE)).expect("read");
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let result = open_with(dir.path(), &bad, Some("pw"));
        match (i, result) {
            // Magic, version, KDF id, KDF costs: the header is refused.
            (
                0..=30,
                Err(KeystoreError::Corrupt { .. } | KeystoreError::UnexpectedPassphrase { .. }),
            ) => {}
            // Changed costs or salt change the derived key: reads as a wrong
            // passphrase. So does a damaged check value.
            (19..=78, Err(KeystoreError::WrongPassphrase { .. })) => {}
            // Nonce, ciphertext, tag: authentication fails.
            (
                79..,
                Err(KeystoreError::Corrupt {
                    source: FormatError::Authentication,
                    ..
                }),
            ) => {}
            (i, other) => panic!("byte {i}: unexpected {other:?}"),
        }
    }
}

#[test]
fn garbage_and_foreign_files_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    drop(new_store(dir.path(), None));
    for bytes in [
        &b""[..],
        b"KOBLING-KEYSTORE",
        b"-----BEGIN PRIVATE KEY-----\n",
        &[0xff; 4096],
        &[0; 200],
    ] {
        assert!(matches!(
            open_with(dir.path(), bytes, None),
            Err(KeystoreError::Corrupt { .. })
        ));
    }
    let huge = vec![0u8; 100 * 1024];
    assert!(matches!(
        open_with(dir.path(), &huge, None),
        Err(KeystoreError::Corrupt {
            source: FormatError::TooLarge { .. },
            ..
        })
    ));
}

#[test]
fn create_refuses_to_overwrite_an_existing_keystore() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let d = project("P1");
    ks.accept_domain(&d).expect("accept");
    let share = ks.share(&d).expect("share");
    let before = fs::read(dir.path().join(KEYSTORE_FILE)).expect("read");

    for passphrase in [None, Some("pw")] {
        let err = Keystore::create(dir.path(), passphrase, fast(), &names())
            .expect_err("must not overwrite");
        assert!(
            matches!(err, KeystoreError::AlreadyExists { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }
    assert_eq!(
        fs::read(dir.path().join(KEYSTORE_FILE)).expect("read"),
        before
    );
    let ks = Keystore::open(dir.path(), None).expect("reopen");
    assert!(same(&ks.share(&d).expect("share"), &share));

    // Seeds left behind without their keystore file are not orphaned by a
    // new master secret either.
    fs::remove_file(dir.path().join(KEYSTORE_FILE)).expect("rm");
    assert!(matches!(
        Keystore::create(dir.path(), None, fast(), &names()),
        Err(KeystoreError::AlreadyExists { .. })
    ));
}

#[test]
fn open_without_keystore_is_not_found() {
    let dir = tempfile::tempdir().expect("tmp");
    for path in [dir.path().to_path_buf(), dir.path().join("missing")] {
        let err = Keystore::open(&path, None).expect_err("nothing there");
        assert!(matches!(err, KeystoreError::NotFound { .. }), "{err:?}");
    }
}

#[test]
fn debug_output_contains_no_secret_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let d = project("P1");
    ks.accept_domain(&d).expect("accept");
    let file = fs::read(dir.path().join(KEYSTORE_FILE)).expect("read");
    let master = file[19..51].to_vec();
    let signing = ks.signing_key().to_bytes().to_vec();
    let x25519 = ks.x25519_secret_bytes().to_vec();
    let tls_key = ks.tls_key_der().to_vec();
    let share = ks.share(&d).expect("share").to_secret_bytes().to_vec();

    let shown = format!(
        "{ks:?} {ks:#?} {:?} {:?}",
        ks.signing_key(),
        ks.share(&d).expect("share")
    );
    for secret in [
        &master,
        &signing,
        &x25519,
        &share,
        &tls_key[tls_key.len() - 32..].to_vec(),
    ] {
        assert!(
            !shown.contains(&hex_lower(secret)),
            "hex of a secret in {shown}"
        );
        assert!(
            !shown.contains(&hex_upper(secret)),
            "hex of a secret in {shown}"
        );
        assert!(
            !shown.contains(&format!("{secret:?}")[1..40]),
            "bytes of a secret in {shown}"
        );
    }
    // The public parts are there, so the output is useful.
    assert!(
        shown.contains(&hex_lower(ks.verifying_key().as_bytes())),
        "{shown}"
    );
    assert!(shown.contains(&hex_lower(&ks.tls_spki_sha256())), "{shown}");
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn x25519_keys_agree_between_two_nodes() {
    use curve25519_dalek::MontgomeryPoint;
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let ka = new_store(a.path(), None);
    let kb = new_store(b.path(), None);
    let ab = MontgomeryPoint(kb.x25519_public()).mul_clamped(*ka.x25519_secret_bytes());
    let ba = MontgomeryPoint(ka.x25519_public()).mul_clamped(*kb.x25519_secret_bytes());
    assert_eq!(ab, ba);
    assert_ne!(ab.to_bytes(), [0; 32]);
}

#[test]
fn tls_fingerprint_is_the_sha256_of_the_certificates_spki() {
    use rcgen::{KeyPair, PublicKeyData};
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().expect("tmp");
    let ks = new_store(dir.path(), None);
    let key = KeyPair::try_from(ks.tls_key_der().as_slice()).expect("PKCS#8 key");
    let spki = key.subject_public_key_info();
    assert!(
        ks.tls_cert_der()
            .windows(spki.len())
            .any(|w| w == spki.as_slice()),
        "the certificate carries the key's SPKI"
    );
    let want: [u8; 32] = Sha256::digest(&spki).into();
    assert_eq!(ks.tls_spki_sha256(), want);
    // The SAN is in the certificate.
    assert!(ks
        .tls_cert_der()
        .windows(b"node.kobling.test".len())
        .any(|w| w == b"node.kobling.test"));
}

#[test]
fn invalid_kdf_params_are_refused() {
    let err = KdfParams::new(1 << 30, 3, 1).expect_err("8 TiB");
    assert!(err.to_string().contains("m_cost"), "{err}");
    assert!(KdfParams::new(64 * 1024, 0, 1).is_err());
}

#[test]
fn the_manifest_entry_carries_the_keystores_public_keys() {
    use kobling_protocol::{
        manifest::{Ed25519Key, Role, TlsFingerprint, X25519Key},
        types::Name,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ks = kobling_keys::Keystore::create(
        dir.path().join("ks"),
        None,
        kobling_keys::KdfParams::default(),
        &["localhost".into()],
    )
    .expect("create");
    let entry = ks.manifest_entry(
        Name::new("NPR").expect("valid"),
        Role::Register,
        "npr.example.no:7400".into(),
    );
    assert_eq!(entry.tls_spki_sha256, TlsFingerprint(ks.tls_spki_sha256()));
    assert_eq!(entry.signing_key, Ed25519Key(ks.verifying_key().to_bytes()));
    assert_eq!(entry.hpke_key, X25519Key(ks.x25519_public()));
    assert_ne!(entry.signing_key.0, entry.hpke_key.0);
    assert!(entry.operators.is_empty());
    assert_eq!(
        (entry.role, entry.address.as_str()),
        (Role::Register, "npr.example.no:7400")
    );
}

#[test]
fn the_tls_key_can_be_dropped_once_used_and_the_rest_still_works() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut ks = new_store(dir.path(), None);
    let d = project("P1");
    ks.accept_domain(&d).expect("accept");
    let share = ks.share(&d).expect("share");
    assert!(!ks.tls_key_der().is_empty());
    let spki = ks.tls_spki_sha256();
    ks.drop_tls_key();
    assert!(ks.tls_key_der().is_empty(), "no copy of the key is left");
    assert_eq!(ks.tls_spki_sha256(), spki);
    assert!(same(&ks.share(&d).expect("share"), &share));
    // The file is untouched: reopening gives the key again.
    let reopened = Keystore::open(dir.path(), None).expect("reopen");
    assert!(!reopened.tls_key_der().is_empty());
}
