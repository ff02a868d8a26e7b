//! One real project, run once per fuzzing process: the node's in-memory
//! federation (`kobling_node::testing`: real engines for NPR, KPR and the
//! linker, each with its own keystore) over a small synthetic population, closed and
//! shredded, so its transcript passes every check of the verifier.
//!
//! `transcript_verify` edits this transcript and re-signs what it edited
//! with the node keys held here, so the verifier sees well-signed
//! transcripts that are wrong in every other way. The keystores live in a
//! temporary directory that is removed once the keys are read.

use std::{collections::BTreeMap, sync::LazyLock};

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedString,
    manifest::Manifest,
    share::Domain,
    transcript::{
        Body, Closure, Entry, Shredded, SignedStatement, Signer, Statement, Trailer, Transcript,
    },
    types::{Name, ProjectId},
};
use kobling_node::testing::{Faults, Federation, ProjectConfig, LINKER};
use kobling_sim::population::{generate, PopulationConfig};

/// The project's id.
pub const PROJECT: &str = "FUZZ-1";

/// The federation and the statements of its one project.
pub struct Fixture {
    /// The manifest every node pins.
    pub manifest: Manifest,
    /// Every node's Ed25519 signing key, by member name.
    pub node_keys: BTreeMap<Name, SigningKey>,
    /// The linker's member name.
    pub linker: Name,
    /// The project.
    pub project: ProjectId,
    /// The signed statements of the complete, closed project, in order.
    pub statements: Vec<SignedStatement>,
}

/// The fixture, built on first use.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);

fn build() -> Fixture {
    let dir = std::env::temp_dir().join(format!("kobling-fuzz-fixture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fed = Federation::create(&dir, &["NPR", "KPR"], 11).expect("federation");
    let pop = generate(&PopulationConfig {
        persons: 10,
        seed: 5,
        cohort_share: 0.3,
        messy_share: 0.1,
    });
    let extracts: Vec<_> = ["NPR", "KPR"]
        .iter()
        .map(|r| pop.extract(r).expect("extract"))
        .collect();
    let config = ProjectConfig {
        project: PROJECT.into(),
        cohort: "NPR | KPR".into(),
        chunk_size: 4,
        seed: 9,
        faults: Faults::default(),
    };
    let (outcome, net) = fed
        .run(&extracts, &config)
        .expect("the fixture project runs");
    drop(net);
    let manifest = fed.manifest.clone();
    let node_keys: BTreeMap<Name, SigningKey> = manifest
        .members
        .iter()
        .map(|m| {
            let ks = fed.keystore(m.name.as_str()).expect("keystore");
            (
                m.name.clone(),
                SigningKey::from_bytes(&ks.signing_key().to_bytes()),
            )
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);

    let linker = Name::new(LINKER).expect("name");
    let project = ProjectId::new(PROJECT).expect("project id");
    let mut statements: Vec<SignedStatement> =
        outcome.transcript.0.into_iter().map(|e| e.signed).collect();
    let time = statements.last().map_or(kobling_protocol::types::UnixTime::EPOCH, |s| s.statement.time);
    let sign = |signer: &Name, body: Body| {
        Statement {
            project: project.clone(),
            time,
            signer: Signer::Node(signer.clone()),
            body,
        }
        .sign(&node_keys[signer])
    };
    statements.push(sign(
        &linker,
        Body::Closure(Closure {
            reason: BoundedString::new("fuzzing fixture").expect("fits"),
        }),
    ));
    for m in &manifest.members {
        statements.push(sign(
            &m.name,
            Body::Shredded(Shredded {
                member: m.name.clone(),
                domain: Domain::Project(project.clone()),
            }),
        ));
    }
    let fixture = Fixture {
        manifest,
        node_keys,
        linker,
        project,
        statements,
    };
    let (entries, trailer) = fixture.record(fixture.statements.clone());
    kobling_protocol::transcript::verify(&entries, Some(&trailer), &fixture.manifest)
        .expect("the fixture's transcript verifies");
    fixture
}

impl Fixture {
    /// Chains `statements` into entries and signs the trailer, as the
    /// linker does.
    pub fn record(&self, statements: Vec<SignedStatement>) -> (Vec<Entry>, Trailer) {
        let linker = &self.node_keys[&self.linker];
        let mut log = Transcript::new();
        for s in statements {
            log.append(s, linker);
        }
        let entries = log.into_entries();
        let trailer = Trailer::sign(&self.project, &entries, linker);
        (entries, trailer)
    }

    /// Signs `statement` again if its signer is a node whose key is held
    /// here; otherwise keeps the old signature (which then fails the
    /// signature check, as it should).
    pub fn resign(&self, statement: Statement, old: &SignedStatement) -> SignedStatement {
        match &statement.signer {
            Signer::Node(n) if self.node_keys.contains_key(n) => {
                let key = &self.node_keys[n];
                statement.sign(key)
            }
            _ => SignedStatement {
                statement,
                signature: old.signature,
            },
        }
    }
}
