use super::*;
use proptest::prelude::*;
use sha2::Sha256;

/// RFC 6962 with SHA-256, for the Certificate Transparency vectors.
struct Sha2;

impl TreeHash for Sha2 {
    fn empty() -> Digest {
        Digest(Sha256::digest([]).into())
    }
    fn leaf(data: &[u8]) -> Digest {
        let mut h = Sha256::new();
        sha2::Digest::update(&mut h, [LEAF_PREFIX]);
        sha2::Digest::update(&mut h, data);
        Digest(h.finalize().into())
    }
    fn node(left: &Digest, right: &Digest) -> Digest {
        let mut h = Sha256::new();
        sha2::Digest::update(&mut h, [NODE_PREFIX]);
        sha2::Digest::update(&mut h, left.0);
        sha2::Digest::update(&mut h, right.0);
        Digest(h.finalize().into())
    }
}

fn d(hex_str: &str) -> Digest {
    Digest(
        hex::decode(hex_str)
            .expect("hex")
            .try_into()
            .expect("32 bytes"),
    )
}

// Certificate Transparency test vectors (RFC 6962, SHA-256), as
// published by transparency-dev/merkle (`proof/verify_test.go`) and the
// original certificate-transparency `merkle_tree_test.cc`.
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Roots of the first 0, 1, …, 8 leaves.
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (0-based index, size, audit path).
const CT_PROOFS: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn ct_leaf_hashes(n: usize) -> Vec<Digest> {
    CT_LEAVES[..n]
        .iter()
        .map(|h| Sha2::leaf(&hex::decode(h).expect("hex")))
        .collect()
}

#[test]
fn the_parallel_root_equals_the_tree_root() {
    for n in [0usize, 1, 2, 3, 2047, 2048, 2049, 4096, 5000, 9000] {
        let leaves: Vec<Digest> = (0..n as u64).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        assert_eq!(
            root_of_leaf_hashes(&leaves),
            MerkleTree::from_leaf_hashes(leaves.clone()).root(),
            "n = {n}"
        );
    }
}

#[test]
fn rfc6962_roots_for_every_prefix() {
    for (n, want) in CT_ROOTS.iter().enumerate() {
        let hashes = ct_leaf_hashes(n);
        let (_, root) = build_levels::<Sha2>(hashes.clone());
        assert_eq!(root, d(want), "tree, size {n}");
        let mut b = Builder::<Sha2>::new();
        for h in hashes {
            b.push_hash(h);
        }
        assert_eq!(b.finish(), d(want), "builder, size {n}");
    }
}

#[test]
fn rfc6962_audit_paths() {
    for (index, size, want) in CT_PROOFS {
        let (levels, root) = build_levels::<Sha2>(ct_leaf_hashes(size as usize));
        let want: Vec<Digest> = want.iter().map(|h| d(h)).collect();
        let path = audit_path(&levels, index as usize);
        assert_eq!(path, want, "index {index}, size {size}");
        assert_eq!(root, d(CT_ROOTS[size as usize]));
        let leaf = ct_leaf_hashes(size as usize)[index as usize];
        verify_path::<Sha2>(index, size, &leaf, &path, &root).expect("verifies");
        assert!(verify_path::<Sha2>(index, size, &Sha2::leaf(b"WrongLeaf"), &path, &root).is_err());
    }
}

#[test]
fn empty_tree() {
    let t = MerkleTree::from_leaves(Vec::<Vec<u8>>::new());
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    // SHA3-256 of the empty string.
    let want = d("a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    assert_eq!(t.root(), want);
    assert_eq!(empty_root(), want);
    assert_eq!(MerkleBuilder::new().finish(), want);
    assert_eq!(root_of_aligned_chunks(&[]), want);
    assert_eq!(
        t.inclusion_proof(0),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    let proof = InclusionProof {
        index: 0,
        size: 0,
        path: BoundedVec::default(),
    };
    assert!(proof.verify(&want, b"").is_err());
}

#[test]
fn one_leaf() {
    let t = MerkleTree::from_leaves([b"only"]);
    assert_eq!(t.root(), leaf_hash(b"only"));
    assert_eq!(t.leaf_hash(0), Some(leaf_hash(b"only")));
    assert_eq!(t.leaf_hash(1), None);
    let p = t.inclusion_proof(0).expect("in range");
    assert!(p.path.is_empty());
    p.verify(&t.root(), b"only").expect("verifies");
    assert!(p.verify(&t.root(), b"other").is_err());
    assert!(t.inclusion_proof(1).is_err());
}

#[test]
fn sha3_instantiation_is_the_rfc_shape() {
    let t = MerkleTree::from_leaves([b"a".as_slice(), b"b", b"c"]);
    let want = node_hash(
        &node_hash(&leaf_hash(b"a"), &leaf_hash(b"b")),
        &leaf_hash(b"c"),
    );
    assert_eq!(t.root(), want);
    let mut h = Sha3_256::new();
    h.update([0u8]);
    h.update(b"a");
    assert_eq!(leaf_hash(b"a"), Digest(h.finalize().into()));
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| (i as u32).to_le_bytes().to_vec()).collect()
}

/// Every way a proof can be wrong, each of which must be rejected.
fn corruptions(p: &InclusionProof, root: &Digest) -> Vec<(String, InclusionProof, Digest)> {
    let mut out = Vec::new();
    let mut with = |what: &str, f: &dyn Fn(&mut InclusionProof)| {
        let mut q = p.clone();
        f(&mut q);
        if q != *p {
            out.push((what.to_string(), q, *root));
        }
    };
    with("index - 1", &|q| q.index = q.index.wrapping_sub(1));
    with("index + 1", &|q| q.index += 1);
    with("index ^ 2", &|q| q.index ^= 2);
    // Not size ± 1: see `size_comes_from_the_signed_record`.
    with("size * 2", &|q| q.size *= 2);
    with("size / 2", &|q| q.size /= 2);
    let path = p.path.clone().into_inner();
    let set = |v: Vec<Digest>| BoundedVec::new(v).expect("fits");
    if !path.is_empty() {
        with("truncated", &|q| {
            q.path = set(path[..path.len() - 1].to_vec());
        });
        with("first dropped", &|q| q.path = set(path[1..].to_vec()));
        for i in 0..path.len() {
            with("bit flipped", &|q| {
                let mut v = path.clone();
                v[i].0[0] ^= 8;
                q.path = set(v);
            });
        }
    }
    with("extended with root", &|q| {
        let mut v = path.clone();
        v.push(*root);
        q.path = set(v);
    });
    with("extended with zero", &|q| {
        let mut v = path.clone();
        v.push(Digest::default());
        q.path = set(v);
    });
    with("prepended", &|q| {
        let mut v = vec![*root];
        v.extend_from_slice(&path);
        q.path = set(v);
    });
    out.push(("wrong root".into(), p.clone(), empty_root()));
    out
}

#[test]
fn every_proof_of_every_size_verifies_and_corruptions_fail() {
    for n in 1..=70usize {
        let data = leaves(n);
        let t = MerkleTree::from_leaves(&data);
        assert_eq!(t.len(), n as u64);
        let root = t.root();
        for (i, leaf) in data.iter().enumerate() {
            let p = t.inclusion_proof(i as u64).expect("in range");
            assert_eq!(p.index, i as u64);
            assert_eq!(p.size, n as u64);
            p.verify(&root, leaf).expect("verifies");
            p.verify_leaf_hash(&root, &leaf_hash(leaf))
                .expect("verifies by hash");
            assert_eq!(
                p.verify(&root, b"wrong leaf"),
                Err(MerkleError::InvalidProof)
            );
            // Another leaf's data under this proof.
            let other = &data[(i + 1) % n];
            if n > 1 {
                assert!(p.verify(&root, other).is_err());
            }
            for (what, q, r) in corruptions(&p, &root) {
                assert_eq!(
                    q.verify(&r, leaf),
                    Err(MerkleError::InvalidProof),
                    "{what}: leaf {i} of {n}"
                );
            }
        }
        assert!(matches!(
            t.inclusion_proof(n as u64),
            Err(MerkleError::IndexOutOfRange { .. })
        ));
    }
}

/// RFC 6962 proofs authenticate the index and the root, but the size
/// only as far as it shapes the path: the path of leaf 0 of 3 leaves
/// also "verifies" as leaf 0 of 4 against the same root. The size must
/// therefore come from the signed record that carries the root.
#[test]
fn size_comes_from_the_signed_record() {
    let t = MerkleTree::from_leaves(leaves(3));
    let mut p = t.inclusion_proof(0).expect("in range");
    p.size = 4;
    assert!(p.verify(&t.root(), &leaves(1)[0]).is_ok());
    p.size = 2;
    assert!(p.verify(&t.root(), &leaves(1)[0]).is_err());
}

#[test]
fn builder_equals_tree_for_every_small_n() {
    let data = leaves(300);
    let mut b = MerkleBuilder::new();
    assert_eq!(
        b.clone().finish(),
        MerkleTree::from_leaves(&data[..0]).root()
    );
    for n in 1..=data.len() {
        b.push(&data[n - 1]);
        assert_eq!(b.len(), n as u64);
        assert_eq!(
            b.clone().finish(),
            MerkleTree::from_leaves(&data[..n]).root(),
            "n = {n}"
        );
    }
}

#[test]
fn aligned_chunk_roots_combine_to_the_list_root() {
    let data = leaves(300);
    for n in 0..=data.len() {
        let whole = MerkleTree::from_leaves(&data[..n]).root();
        for c in [1usize, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
            let chunk_roots: Vec<Digest> = data[..n]
                .chunks(c)
                .map(|chunk| MerkleTree::from_leaves(chunk).root())
                .collect();
            assert_eq!(
                root_of_aligned_chunks(&chunk_roots),
                whole,
                "n = {n}, chunk = {c}"
            );
        }
    }
}

#[test]
fn unaligned_chunks_do_not_combine() {
    // Documents the precondition: a chunk size of 3 does not align.
    let data = leaves(7);
    let chunk_roots: Vec<Digest> = data
        .chunks(3)
        .map(|c| MerkleTree::from_leaves(c).root())
        .collect();
    assert_ne!(
        root_of_aligned_chunks(&chunk_roots),
        MerkleTree::from_leaves(&data).root()
    );
}

#[test]
fn proof_wire_format_is_bounded() {
    let t = MerkleTree::from_leaves(leaves(37));
    let p = t.inclusion_proof(17).expect("in range");
    let bytes = postcard::to_allocvec(&p).expect("encode");
    let back: InclusionProof = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, p);
    back.verify(&t.root(), &17u32.to_le_bytes())
        .expect("verifies");

    // 65 siblings is one too many.
    let long = vec![Digest::default(); MAX_PATH_LEN + 1];
    let bytes = postcard::to_allocvec(&(1u64, 2u64, long)).expect("encode");
    assert!(postcard::from_bytes::<InclusionProof>(&bytes).is_err());
}

#[test]
fn deep_proofs_are_rejected_without_panicking() {
    // A proof for the last leaf of a 2^64 - 1 leaf tree has 64 siblings;
    // verification must be total, whatever the numbers.
    let path = BoundedVec::new(vec![Digest::default(); MAX_PATH_LEN]).expect("fits");
    for (index, size) in [
        (u64::MAX - 1, u64::MAX),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
        (0, 1),
    ] {
        let p = InclusionProof {
            index,
            size,
            path: path.clone(),
        };
        assert!(p.verify(&empty_root(), b"x").is_err());
    }
}

/// A million leaves: levels only, no per-leaf allocation.
#[test]
fn a_million_leaves() {
    let n = 1_000_000u32;
    let hashes: Vec<Digest> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut b = MerkleBuilder::new();
    for h in &hashes {
        b.push_leaf_hash(*h);
    }
    let t = MerkleTree::from_leaf_hashes(hashes);
    assert_eq!(t.root(), b.finish());
    let p = t.inclusion_proof(765_432).expect("in range");
    assert_eq!(p.path.len(), 20);
    p.verify(&t.root(), &765_432u32.to_le_bytes())
        .expect("verifies");
}

proptest! {
    #[test]
    fn builder_equals_tree(data in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..8), 0..200))
    {
        let mut b = MerkleBuilder::new();
        for l in &data {
            b.push(l);
        }
        let t = MerkleTree::from_leaves(&data);
        prop_assert_eq!(b.finish(), t.root());
        if !data.is_empty() {
            let i = data.len() / 2;
            let p = t.inclusion_proof(i as u64).expect("in range");
            prop_assert!(p.verify(&t.root(), &data[i]).is_ok());
        }
    }
}
