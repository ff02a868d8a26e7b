//! The test vectors printed in `docs/protocol.md` are what this code
//! computes: every `name: value` line of every ```vectors block in the
//! document is recomputed here and must match. Change the protocol, and
//! this test tells you which published vector went stale.

use std::collections::BTreeMap;

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_POINT, Scalar};
use kobling_protocol::{
    chain,
    dleq::{self, ChunkStatement},
    group::WirePoint,
    hash::{expand_message_xof, hash_to_scalar, tags},
    ident::{IdKind, Identifier, ParseOptions},
    link::Lnr,
    merkle::MerkleTree,
    seal::{encode_rows, HpkeSecretKey},
    share::{Domain, Share},
    types::{Attempt, ChunkIndex, Digest, HopIndex, ListName, Name, Position, ProjectId},
};

fn h(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every vector, computed.
fn computed() -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    let project = ProjectId::new("DEMO-1").expect("valid");
    let list = ListName::new("NPR").expect("valid");

    // A synthetic test number (month + 80): never a real person.
    let id = Identifier::from_parts(1980, 1, 1, 123, IdKind::Synthetic).expect("synthetic number");
    v.insert("identifier", id.expose().to_string());
    let parsed = Identifier::parse(
        id.expose(),
        ParseOptions {
            allow_synthetic: true,
        },
    )
    .expect("parses");
    assert_eq!(parsed, id);
    v.insert(
        "expand_message_xof(KOBLING-V1-IDENTITY, identifier, 64)",
        h(&expand_message_xof(tags::IDENTITY, id.as_bytes(), 64)),
    );
    let identity = id.identity_point();
    v.insert("I(identifier)", h(identity.compress().as_bytes()));

    let domain = Domain::Project(project.clone());
    v.insert("domain bytes of project DEMO-1", h(&domain.to_bytes()));
    let k1 = Share::derive(&[1; 32], &[2; 32], &domain).expect("share");
    v.insert(
        "k (master 01.., seed 02.., DEMO-1)",
        h(k1.to_secret_bytes().as_ref()),
    );
    v.insert("K = k·G", h(k1.commitment().as_bytes()));
    let k2 = Share::derive(&[3; 32], &[4; 32], &domain).expect("share");
    v.insert(
        "k' (master 03.., seed 04.., DEMO-1)",
        h(k2.to_secret_bytes().as_ref()),
    );

    let beta =
        Share::from_scalar(hash_to_scalar(b"KOBLING-V1-TEST-VECTOR", b"beta")).expect("non-zero");
    v.insert(
        "beta = hash_to_scalar(KOBLING-V1-TEST-VECTOR, beta)",
        h(beta.to_secret_bytes().as_ref()),
    );
    v.insert("D = beta^-1·G", h(beta.invert().commitment().as_bytes()));
    let y = chain::multiply_decoded(&beta.product(&k1), &[identity])[0];
    v.insert("y = (beta·k)·I", h(y.as_bytes()));
    let z = chain::apply_share(&k2, &[y], 0).expect("valid")[0];
    v.insert("z = k'·y", h(z.as_bytes()));
    let p = chain::apply_share(&beta.invert(), &[z], 0).expect("valid")[0];
    v.insert("P = beta^-1·z = (k·k')·I", h(p.as_bytes()));
    v.insert("lnr(DEMO-1, P)", Lnr::derive(&project, &p).to_string());
    v.insert(
        "lnr(DEMO-1, G)",
        Lnr::derive(
            &project,
            &WirePoint(RISTRETTO_BASEPOINT_POINT.compress().to_bytes()),
        )
        .to_string(),
    );

    let leaves = [y, z, p];
    let tree = MerkleTree::from_leaves(leaves.iter().map(|l| l.as_bytes()));
    v.insert("merkle root [y, z, P]", tree.root().to_hex());
    let statement = ChunkStatement {
        project: &project,
        list: &list,
        hop: HopIndex(1),
        chunk: ChunkIndex(0),
        key: k2.commitment(),
        input_root: MerkleTree::from_leaves([y.as_bytes()]).root(),
        output_root: MerkleTree::from_leaves([z.as_bytes()]).root(),
        count: 1,
    };
    v.insert(
        "chunk statement digest (DEMO-1, NPR, hop 1, chunk 0, K', [y], [z], 1)",
        h(&statement.digest()),
    );
    let c: Vec<Scalar> = ChunkStatement {
        count: 2,
        ..statement.clone()
    }
    .coefficients();
    v.insert(
        "first batch coefficient of that statement with count 2",
        h(c[0].as_bytes()),
    );
    v.insert("second batch coefficient", h(c[1].as_bytes()));
    // Proofs are randomised (hedged nonce); a proof made with any nonce must verify.
    let proof = {
        use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
        let yp = chain::decode_points(&[y], 0).expect("valid");
        dleq::prove_chunk(&k2, &statement, &yp, &mut ChaCha20Rng::seed_from_u64(0))
    };
    v.insert("A = c0·y (chunk of one)", h(proof.a.as_bytes()));
    v.insert("B = k'·A", h(proof.b.as_bytes()));

    let rows = encode_rows(&[vec!["F20.0".into(), "2019-03-01".into()]]).expect("encodes");
    v.insert(
        "encode_rows([[F20.0, 2019-03-01]]) (first 24 bytes; zero padding to 256)",
        h(&rows[..24]),
    );
    let researcher = HpkeSecretKey::derive(b"KOBLING-V1-TEST-VECTOR researcher");
    v.insert(
        "researcher X25519 public (DeriveKeyPair of RFC 9180 on that ikm)",
        h(researcher.public_key().as_bytes()),
    );
    v.insert(
        "empty merkle root",
        Digest(MerkleTree::from_leaves(Vec::<&[u8]>::new()).root().0).to_hex(),
    );
    v2_vectors(&mut v, &project, &list, &k2, &beta, [y, z, p]);

    // Issue 12 items 1 and 8: the phase notice, and v1's salted final leaf
    // with the salt key derived from a linker share (here `k`).
    let notice = kobling_protocol::notice::PhaseNotice {
        project: project.clone(),
        phase: kobling_protocol::notice::Notified::Closed,
        failed_list: None,
    };
    v.insert("phase notice digest (DEMO-1, closed)", h(&notice.digest()));
    let named = kobling_protocol::notice::PhaseNotice {
        failed_list: Some(ListName::new("KPR").expect("valid")),
        ..notice
    };
    v.insert(
        "phase notice digest (DEMO-1, closed, failed list KPR)",
        h(&named.digest()),
    );
    let salt =
        kobling_protocol::delivery::FinalSaltKey::from_share(&k1, &domain).salt(&domain, &list, 0);
    v.insert(
        "v1 final salt (key from k, DEMO-1, NPR, position 0)",
        h(&salt),
    );
    v.insert(
        "v1 salted final leaf of P at position 0",
        kobling_protocol::delivery::salted_leaf_hash(&salt, &p).to_hex(),
    );
    domain_vectors(&mut v, &domain, &k1, &identity);
    pseudonymous_project_vectors(&mut v, &domain, &k1);
    citizen_vectors(&mut v);
    identified_vectors(&mut v);
    strict_vectors(&mut v);
    multiproof_vectors(&mut v);
    disclosure_log_vectors(&mut v);
    v
}

/// Citizen rights (docs/protocol.md §16): an innsyn request's digest and
/// the shown form of small and large counts.
fn citizen_vectors(v: &mut BTreeMap<&'static str, String>) {
    use kobling_protocol::{
        innsyn::InnsynRequest, reservation::ShownCount, seal::HpkeSecretKey, types::Name,
    };
    let device = HpkeSecretKey::derive(b"device");
    let request = InnsynRequest {
        register: Name::new("KPR".to_string()).expect("name"),
        device_key: device.public_key(),
        session: kobling_protocol::types::Digest(kobling_protocol::hash::framed_sha3(
            b"KOBLING-TEST-SESSION",
            &[b"login"],
        )),
        nonce: [0x11; 16],
    };
    v.insert(
        "innsyn device key (HpkeSecretKey::derive(\"device\"))",
        h(request.device_key.as_bytes()),
    );
    v.insert(
        "innsyn request digest (KPR, that key, session framed_sha3(KOBLING-TEST-SESSION, [login]), nonce 11..)",
        h(&request.digest().0),
    );
    let digest = request.digest();
    let kpr = Name::new("KPR".to_string()).expect("name");
    v.insert(
        "innsyn one-person step context (that request, hop 2, KPR)",
        h(&kobling_protocol::innsyn::blinded::step_context(
            &digest,
            HopIndex(2),
            &kpr,
        )),
    );
    let point = |b: u8| {
        kobling_protocol::group::WirePoint(
            (Scalar::from(u64::from(b)) * RISTRETTO_BASEPOINT_POINT)
                .compress()
                .to_bytes(),
        )
    };
    v.insert(
        "innsyn one-person key context (that request, KPR, K = 2·G, D2 = 3·G, C = 5·G)",
        h(&kobling_protocol::innsyn::blinded::key_context(
            &digest,
            &kpr,
            &point(2),
            &point(3),
            &point(5),
        )),
    );
    for (name, n) in [
        ("shown count of 3 (postcard)", 3),
        ("shown count of 12 (postcard)", 12),
    ] {
        v.insert(
            name,
            h(&postcard::to_allocvec(&ShownCount::of(n)).expect("encode")),
        );
    }
}

/// Register domains (docs/protocol.md §15): one key holder (NPR) with
/// `k_R` from master 01.., seed 02.. in domain RESEPT, its conversion into
/// DEMO-1 (`k` above), the chunk statement of that conversion over the
/// one-person list, and the first entry of the domain transcript.
fn domain_vectors(
    v: &mut BTreeMap<&'static str, String>,
    project: &Domain,
    k: &Share,
    identity: &curve25519_dalek::RistrettoPoint,
) {
    use kobling_protocol::domain::{
        convert::ChunkStatement as ConversionChunk,
        pseudonym_hex,
        transcript::{DomainBody, DomainLog},
        ConversionContext, ConversionKey,
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    let name = Name::new("RESEPT").expect("valid");
    let r = Domain::Register(name.clone());
    v.insert("domain bytes of register domain RESEPT", h(&r.to_bytes()));
    let k_r = Share::derive(&[1; 32], &[2; 32], &r).expect("share");
    v.insert(
        "k_R (master 01.., seed 02.., RESEPT)",
        h(k_r.to_secret_bytes().as_ref()),
    );
    v.insert("K_R = k_R·G", h(k_r.commitment().as_bytes()));
    let psi = chain::multiply_decoded(&k_r, &[*identity])[0];
    v.insert(
        "pseudonym column of Psi_R = k_R·I (k_R alone, for hand replay)",
        pseudonym_hex(&psi),
    );
    let npr = Name::new("NPR").expect("valid");
    let ctx = ConversionContext {
        from: &r,
        to: project,
        member: &npr,
    };
    let conv = ConversionKey::new(ctx, &k_r, k, &mut ChaCha20Rng::seed_from_u64(0));
    let k_prime = conv.key();
    v.insert("K' = (k·k_R^-1)·G", h(k_prime.as_bytes()));
    v.insert(
        "binding context (RESEPT, DEMO-1, NPR, K_R, K, K')",
        h(&ctx.digest(&k_r.commitment(), &k.commitment(), &k_prime)),
    );
    let step = conv.into_step();
    let (out, proof) = step
        .apply_chunk(
            kobling_protocol::domain::ChunkAt {
                target: project,
                list: &ListName::of(&name),
                step: HopIndex(1),
                chunk: ChunkIndex(0),
                first_position: Position(0),
            },
            &[psi],
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .expect("valid");
    assert_eq!(out[0], chain::multiply_decoded(k, &[*identity])[0]);
    v.insert("converted (k·k_R^-1)·Psi_R = k·I", h(out[0].as_bytes()));
    let st = ConversionChunk {
        target: project,
        list: &ListName::of(&name),
        step: HopIndex(1),
        chunk: ChunkIndex(0),
        key: k_prime,
        input: kobling_protocol::v2::chunk_digest(&[psi]),
        output: kobling_protocol::v2::chunk_digest(&out),
        count: 1,
    };
    v.insert(
        "conversion chunk statement digest (DEMO-1, RESEPT, step 1, chunk 0, K', SHA3(Psi_R), SHA3(out), 1)",
        h(&st.digest()),
    );
    v.insert(
        "first conversion coefficient of that statement",
        h(st.coefficients()[0].as_bytes()),
    );
    v.insert("conversion A = c_0·Psi_R", h(proof.a.as_bytes()));
    let mut log = DomainLog::new();
    let body = DomainBody::Created {
        domain: name.clone(),
        holder: name.clone(),
        key_holders: kobling_protocol::bounded::BoundedVec::new(vec![
            npr,
            Name::new("LINKER").expect("valid"),
        ])
        .expect("fits"),
        manifest: Digest([0; 32]),
    };
    v.insert(
        "domain transcript entry 0 statement digest (Created RESEPT by RESEPT, [NPR, LINKER], manifest 00..)",
        log.next_digest(&name, &body).to_hex(),
    );
    let signer = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let entry = log.append(name, &signer, body, vec![]);
    v.insert(
        "domain transcript entry 0 hash (signed by Ed25519 secret 09..)",
        entry.hash().to_hex(),
    );
}

/// Identified projects (docs/protocol.md §18): the order's last field and
/// a list announcement's last field.
fn identified_vectors(v: &mut BTreeMap<&'static str, String>) {
    use kobling_protocol::{
        identified::ResearcherList, reservation::ShownCount, transcript::encode_value,
    };
    let list = Some(ResearcherList {
        persons: 240,
        digest: Digest([0x1d; 32]),
    });
    v.insert(
        "postcard(identified = Some { persons 240, digest 1d.. })",
        h(&encode_value(&list)),
    );
    v.insert(
        "postcard(identified = None)",
        h(&encode_value(&None::<ResearcherList>)),
    );
    for (name, count) in [
        ("postcard(excluded = None)", None),
        ("postcard(excluded = Some(<5))", Some(ShownCount::of(3))),
        ("postcard(excluded = Some(7))", Some(ShownCount::of(7))),
    ] {
        v.insert(name, h(&encode_value(&count)));
    }
    let kept = kobling_protocol::researcher_list::KeptOutput {
        project: ProjectId::new("P-1").expect("valid"),
        chunk_size: 4,
        points: vec![WirePoint([0x11; 32])],
    };
    v.insert(
        "postcard(KeptOutput { project P-1, chunk_size 4, points [11..] })",
        h(&kept.encode()),
    );
    // The researcher list's two messages (docs/protocol.md §18, "On the
    // wire").
    use kobling_protocol::{
        bounded::{BoundedBytes, BoundedVec},
        messages::{encode, Message},
        researcher_list::wire::ResearcherListPart,
        seal::WrappedKey,
    };
    let items = Message::ResearcherList(Box::new(ResearcherListPart::Items {
        project: ProjectId::new("P-1").expect("valid"),
        first: Position(0),
        items: BoundedVec::default(),
    }));
    v.insert(
        "Message::ResearcherList(Items { project P-1, first 0, items [] })",
        h(&encode(&items)),
    );
    let relay = Message::SecondBlinding {
        project: ProjectId::new("P-1").expect("valid"),
        list: ListName::new("RESEARCHER").expect("valid"),
        sealed: WrappedKey {
            enc: [0x22; 32],
            ciphertext: BoundedBytes::new(vec![0x33; 48]).expect("fits"),
        },
    };
    v.insert(
        "Message::SecondBlinding { project P-1, list RESEARCHER, enc 22.., ciphertext 48 × 33 }",
        h(&encode(&relay)),
    );
}

/// Projects with pseudonymous lists (docs/protocol.md §15, "A project
/// with a pseudonymous list at a node"): the order's `pseudonymous` field
/// and NPR's conversion binding body (without its randomised proof).
fn pseudonymous_project_vectors(
    v: &mut BTreeMap<&'static str, String>,
    project: &Domain,
    k: &Share,
) {
    use kobling_protocol::{
        bounded::BoundedVec,
        domain::{ConversionBinding, ConversionContext, ConversionKey, PseudonymousList},
        transcript::{encode_value, Body},
    };
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    let resept = Name::new("RESEPT").expect("valid");
    let lists: BoundedVec<PseudonymousList, 32> = BoundedVec::new(vec![PseudonymousList {
        register: resept.clone(),
        domain: resept.clone(),
    }])
    .expect("fits");
    v.insert(
        "postcard(pseudonymous = [(RESEPT, RESEPT)])",
        h(&encode_value(&lists)),
    );
    let r = Domain::Register(resept.clone());
    let k_r = Share::derive(&[1; 32], &[2; 32], &r).expect("share");
    let npr = Name::new("NPR").expect("valid");
    let key = ConversionKey::new(
        ConversionContext {
            from: &r,
            to: project,
            member: &npr,
        },
        &k_r,
        k,
        &mut ChaCha20Rng::seed_from_u64(0),
    );
    let body = Body::Conversion(ConversionBinding {
        member: npr,
        domain: resept,
        binding: *key.binding(),
    });
    let bytes = encode_value(&body);
    v.insert(
        "postcard(Body::Conversion { NPR, RESEPT, binding }) without the proof's e and s",
        h(&bytes[..bytes.len() - 64]),
    );
}

/// Chain v2 (docs/protocol.md, "Chain v2"): one list of one person, owner
/// NPR, hop 1 KPR with `k'`, the linker stepping with `C = beta^-1·G`
/// (a linker share of 1, for hand replay).
fn v2_vectors(
    v: &mut BTreeMap<&'static str, String>,
    project: &ProjectId,
    list: &ListName,
    k2: &Share,
    beta: &Share,
    [y, z, p]: [WirePoint; 3],
) {
    use kobling_protocol::{
        bounded::BoundedVec,
        delivery::{salted_leaf_hash, FinalSaltKey},
        v2::{
            check::pass_context, chunk_digest, coefficients, combine_chunk, list_digest, ChainView,
            ChunkDigests, ChunkStatement as V2Statement, HopRecordV2, ListHeader, Mode, OwnerList,
        },
    };
    let header = ListHeader {
        domain: Domain::Project(project.clone()),
        delivery: None,
        list: list.clone(),
        attempt: Attempt::FIRST,
        mode: Mode::Optimistic,
        persons: 1,
        chunk_size: 1,
    };
    let (dy, dz) = (chunk_digest(&[y]), chunk_digest(&[z]));
    v.insert("v2 chunk digest SHA3-256(y)", dy.to_hex());
    let owner_statement = V2Statement {
        hop: HopIndex(0),
        chunk: ChunkIndex(0),
        count: 1,
        input: Digest::default(),
        output: dy,
    };
    v.insert(
        "v2 owner chunk statement digest (DEMO-1, NPR, attempt 0, hop 0, chunk 0, 1, zero, SHA3(y))",
        owner_statement.digest(&header).to_hex(),
    );
    let hop_statement = V2Statement {
        hop: HopIndex(1),
        chunk: ChunkIndex(0),
        count: 1,
        input: dy,
        output: dz,
    };
    v.insert(
        "v2 hop 1 chunk statement digest (input SHA3(y), output SHA3(z))",
        hop_statement.digest(&header).to_hex(),
    );
    let owner_list = OwnerList {
        list: list.clone(),
        attempt: Attempt::FIRST,
        chunks: BoundedVec::new(vec![dy]).expect("fits"),
        list_digest: list_digest(&[dy]),
        sealed_root: Digest::default(),
    };
    v.insert("v2 list digest [SHA3(y)]", owner_list.list_digest.to_hex());
    // The owner's end-of-list statement of a streamed list (§19): the
    // transcript body it signs last.
    v.insert(
        "v2 end-of-list statement body OwnerListV2 (NPR, attempt 0, [SHA3(y)], sealed root 00..)",
        h(&kobling_protocol::transcript::encode_value(
            &kobling_protocol::transcript::Body::OwnerListV2(owner_list.clone()),
        )),
    );
    let kpr = Name::new("KPR").expect("valid");
    let hops = [HopRecordV2 {
        list: list.clone(),
        attempt: Attempt::FIRST,
        hop: HopIndex(1),
        member: kpr,
        key: k2.commitment(),
        count: 1,
        chunk_size: 1,
        chunks: BoundedVec::new(vec![ChunkDigests {
            input: dy,
            output: dz,
        }])
        .expect("fits"),
        key_proof: None,
        final_root: None,
    }];
    let d = beta.invert().commitment();
    let blinding = [d];
    let linker = Name::new("LINKER").expect("valid");
    let view = ChainView {
        header: &header,
        manifest: Digest([0; 32]),
        owner: list.owner(),
        blinding: &blinding,
        owner_list: &owner_list,
        hops: &hops,
        linker: (&linker, d),
    };
    let sigma = view.sigma().expect("chains");
    v.insert(
        "v2 sigma (manifest 00.., D, KPR K', LINKER C = D, one chunk)",
        sigma.to_hex(),
    );
    let c = coefficients(&sigma, ChunkIndex(0), 2);
    v.insert("v2 coefficient c_0 of chunk 0", h(c[0].as_bytes()));
    v.insert("v2 coefficient c_1 of chunk 0", h(c[1].as_bytes()));
    let a0 = combine_chunk(&sigma, ChunkIndex(0), &[y]).expect("valid");
    let a0w = WirePoint(a0.compress().to_bytes());
    v.insert("v2 A_0 = c_0·y", h(a0w.as_bytes()));
    let a1 = chain::apply_share(k2, &[a0w], 0).expect("valid")[0];
    v.insert("v2 A_1 = k'·A_0", h(a1.as_bytes()));
    let b = combine_chunk(&sigma, ChunkIndex(0), &[z]).expect("valid");
    v.insert("v2 B = c_0·z (equals A_1)", h(b.compress().as_bytes()));
    v.insert(
        "v2 pass context of step 1 (sigma, 1, K', A_0, A_1)",
        h(&pass_context(
            &sigma,
            HopIndex(1),
            &k2.commitment(),
            &a0w,
            &a1,
        )),
    );
    let key = FinalSaltKey::from_secret_bytes([7; 32]);
    let salt = key.salt(&Domain::Project(project.clone()), list, 0);
    v.insert(
        "v2 final salt (key 07.., DEMO-1, NPR, position 0)",
        h(&salt),
    );
    v.insert(
        "v2 salted final leaf of P at position 0",
        salted_leaf_hash(&salt, &p).to_hex(),
    );
}

/// A delivery batch's multiproof (docs/protocol.md §10).
fn multiproof_vectors(v: &mut BTreeMap<&'static str, String>) {
    let tree = MerkleTree::from_leaves((0u8..7).map(|t| [t]));
    let proof = tree.multi_proof(&[1, 2, 5]).expect("in the tree");
    let expected: Vec<Digest> = [0, 3, 4, 6]
        .iter()
        .map(|&t| tree.leaf_hash(t).expect("in the tree"))
        .collect();
    assert_eq!(
        proof.hashes.to_vec(),
        expected,
        "the walk's leafless ranges"
    );
    v.insert(
        "multiproof (7 leaves, batch 1 2 5) hash 0",
        proof.hashes[0].to_hex(),
    );
    v.insert(
        "multiproof (7 leaves, batch 1 2 5) hash 3",
        proof.hashes[3].to_hex(),
    );
    v.insert(
        "multiproof (7 leaves, batch 1 2 5) root",
        tree.root().to_hex(),
    );
    let leaves: Vec<(u64, Digest)> = [1, 2, 5]
        .iter()
        .map(|&t| (t, tree.leaf_hash(t).expect("in the tree")))
        .collect();
    assert_eq!(proof.root(&leaves), Ok(tree.root()));
    let bytes = postcard::to_allocvec(&proof).expect("encodes");
    assert_eq!(
        bytes.len(),
        2 + 4 * 32,
        "varint size, varint count, digests"
    );
    v.insert(
        "multiproof (7 leaves, batch 1 2 5) postcard (first 40 bytes)",
        h(&bytes[..40]),
    );
}

fn documented() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .expect("docs/protocol.md");
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            inside = line.trim() == "```vectors";
            continue;
        }
        if inside {
            if let Some((name, value)) = line.rsplit_once(": ") {
                out.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn documented_vectors_are_what_the_code_computes() {
    let computed = computed();
    let documented = documented();
    if std::env::var_os("KOBLING_PRINT_VECTORS").is_some() {
        for (k, v) in &computed {
            println!("{k}: {v}");
        }
    }
    for (name, value) in &computed {
        assert_eq!(
            documented.get(*name),
            Some(value),
            "vector `{name}` in docs/protocol.md is missing or stale"
        );
    }
    for name in documented.keys() {
        assert!(
            computed.contains_key(name.as_str()),
            "docs/protocol.md has vector `{name}` that no code computes"
        );
    }
}

/// Strict mode in the node (docs/protocol.md §17): the linker's
/// `ListRetry` body as the transcript encodes it.
fn strict_vectors(v: &mut BTreeMap<&'static str, String>) {
    use kobling_protocol::{
        transcript::{encode_value, Body},
        types::ListName,
        v2::ListRetry,
    };
    let retry = Body::ListRetry(ListRetry {
        list: ListName::new("KPR").expect("valid"),
        attempt: Attempt(1),
    });
    v.insert(
        "strict ListRetry body (KPR, attempt 1)",
        h(&encode_value(&retry)),
    );
}

/// The disclosure log (docs/protocol.md §20): the linker's header, its
/// digest, the holder's `Stored`, the log transcript's `Disclosures`
/// body, a record and the HPKE info of `β`.
fn disclosure_log_vectors(v: &mut BTreeMap<&'static str, String>) {
    use kobling_protocol::{
        bounded::{BoundedBytes, BoundedVec},
        disclosure::{
            log::{blinding_info, LogHeader, LogHop, LogMessage},
            DisclosureRecord,
        },
        domain::transcript::DomainBody,
        seal::WrappedKey,
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let project = ProjectId::new("ID-1").expect("valid");
    let log = Name::new("DLOG").expect("valid");
    let header = LogHeader {
        project: project.clone(),
        log: log.clone(),
        day: 20_424,
        size: 3,
        hops: BoundedVec::new(vec![LogHop {
            member: Name::new("NPR").expect("valid"),
            project_key: Some(WirePoint(RISTRETTO_BASEPOINT_POINT.compress().to_bytes())),
            log_key: None,
        }])
        .expect("fits"),
        holder_project_key: None,
        blinding: WrappedKey {
            enc: [0x11; 32],
            ciphertext: BoundedBytes::new(vec![0x22; 48]).expect("fits"),
        },
    };
    v.insert(
        "LogHeader (ID-1, DLOG, day 20424, size 3, hops [NPR: K_p = G, no log key], no holder key, blinding enc 11.. ct 22..)",
        hex(&postcard::to_allocvec(&header).expect("encodes")),
    );
    v.insert(
        "its signed digest framed_sha3(KOBLING-DISCLOSURE-LOG-HEADER, [that])",
        hex(&header.digest()),
    );
    v.insert(
        "LogMessage::Stored (ID-1, DLOG)",
        hex(&postcard::to_allocvec(&LogMessage::Stored {
            project: project.clone(),
            log: log.clone(),
        })
        .expect("encodes")),
    );
    v.insert(
        "DomainBody::Disclosures (ID-1, day 20424, size 3)",
        hex(&postcard::to_allocvec(&DomainBody::Disclosures {
            project: project.clone(),
            day: 20_424,
            size: 3,
        })
        .expect("encodes")),
    );
    let record = DisclosureRecord {
        project: project.clone(),
        day: 20_424,
    };
    assert_eq!(record.date(), "2025-12-02");
    v.insert(
        "DisclosureRecord (ID-1, day 20424 = 2025-12-02)",
        hex(&postcard::to_allocvec(&record).expect("encodes")),
    );
    v.insert(
        "HPKE info of β (ID-1, DLOG)",
        hex(&blinding_info(&project, &log)),
    );
}
