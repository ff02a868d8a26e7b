//! The whole protocol in one process: every party with its own keystore
//! and keys, every message passed in memory, nothing shortcut.
//!
//! ```text
//!  Federation::create ── keystores, operator/researcher keys, manifest
//!  run_project:
//!    order (researcher) → approvals (2 operators / register) → commitments (every node)
//!    → prepare_list (owner) → hops in manifest order → linker hop
//!    → link (cohort) → delivery → researcher verifies transcript and opens items
//! ```
//!
//! [`Observer`] records every point a register sees, in every list at
//! every hop, and the linker's final points, so tests can check what each
//! party could have learned. [`Fault`] makes one party misbehave.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ed25519_dalek::SigningKey;
use kobling_keys::{KdfParams, Keystore, KeystoreError};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    delivery::{
        deliver_item, open_item, selection_digest, DeliveredItem, DeliveryError, ListDeliverySource,
    },
    extract::{ExtractStats, ListBuilder},
    group::WirePoint,
    hash::sha3_256,
    hop::{owner_chunks, Hop, HopError, LinkerKeys, PointChunk},
    ident::ParseOptions,
    link::{link, Cohort, Linkage, Lnr},
    manifest::{Key32, Manifest, Member, Operator, Role},
    merkle::MerkleTree,
    owner::{prepare_list, sealed_leaf, OwnerError, PreparedList},
    project::ProjectView,
    seal::{open_blinding, HpkePublicKey, HpkeSecretKey},
    share::{Domain, Share},
    transcript::{
        self, Approval, Body, ColumnName, Columns, DeliveredList, DeliveryRecord, InvalidCount,
        KeyCommitment, LinkSummary, LinkedList, ListAnnouncement, ProjectOrder, RegisterRequest,
        Signer, Statement, Trailer, Transcript, VerifiedTranscript,
    },
    types::{Digest, Name, ProjectId},
};
use rand_chacha::{
    rand_core::{Rng, SeedableRng},
    ChaCha20Rng,
};

use crate::population::Extract;

/// The linker's member name.
pub const LINKER: &str = "LINKER";

/// A party misbehaving, for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Register `member` steps list `list` with a share other than the one
    /// it committed to.
    WrongShare {
        /// The list.
        list: String,
        /// The cheating hop.
        member: String,
    },
}

/// Every point seen, for tests.
#[derive(Debug, Default, Clone)]
pub struct Observer {
    /// (list, register that saw it, the points it saw: what it received
    /// and what it produced).
    pub register_views: Vec<(Name, Name, Vec<WirePoint>)>,
    /// The linker's final pseudonyms per list, by position.
    pub final_points: BTreeMap<Name, Vec<WirePoint>>,
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A keystore operation failed.
    #[error("keystore: {0}")]
    Keystore(#[from] KeystoreError),
    /// A hop refused a chunk.
    #[error("list {list}: hop {hop} ({member}) refused chunk {chunk}: {source}")]
    Hop {
        /// The list.
        list: Name,
        /// The refusing hop.
        hop: u32,
        /// Its member.
        member: Name,
        /// The chunk.
        chunk: u64,
        /// Why.
        source: HopError,
    },
    /// The owner could not prepare its list.
    #[error("list {0}: {1}")]
    Owner(Name, OwnerError),
    /// Linking failed.
    #[error("linking: {0}")]
    Link(#[from] kobling_protocol::link::LinkError),
    /// The researcher refused a delivered item.
    #[error("delivery: {0}")]
    Delivery(#[from] DeliveryError),
    /// The transcript did not verify.
    #[error("transcript: {0}")]
    Transcript(#[from] transcript::VerifyError),
    /// Anything else that is wrong with the set-up.
    #[error("{0}")]
    Setup(String),
}

/// A federation: nodes with keystores, operators, a researcher.
pub struct Federation {
    /// Where the keystores live.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    keystores: BTreeMap<Name, Keystore>,
    operators: BTreeMap<Name, Vec<SigningKey>>,
    researcher_signing: SigningKey,
    researcher_hpke: HpkeSecretKey,
    rng: ChaCha20Rng,
}

impl core::fmt::Debug for Federation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Federation")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a project run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Per register: (lnr, row values) for every delivered row.
    pub tables: BTreeMap<Name, Vec<(Lnr, Vec<String>)>>,
    /// Per register: the extract counts.
    pub stats: BTreeMap<Name, ExtractStats>,
    /// The linkage (linker's view: positions and lnr).
    pub linkage: Linkage,
    /// The transcript entries and trailer.
    pub transcript: (Vec<transcript::Entry>, Trailer),
    /// What the auditor's verification established.
    pub verified: VerifiedTranscript,
    /// Wall time per phase.
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

/// Settings of one project run.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// Project id.
    pub project: String,
    /// Cohort expression.
    pub cohort: String,
    /// Points per chunk.
    pub chunk_size: u32,
    /// Seed for every random choice of the run.
    pub seed: u64,
}

impl Federation {
    /// Creates keystores for `registers` and a linker under `dir`, two
    /// operators per register and a researcher.
    ///
    /// # Errors
    ///
    /// [`RunError`] if a keystore cannot be created.
    pub fn create(dir: &Path, registers: &[&str], seed: u64) -> Result<Self, RunError> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut keystores = BTreeMap::new();
        let mut operators = BTreeMap::new();
        let mut members = Vec::new();
        for (i, name) in registers
            .iter()
            .copied()
            .chain(std::iter::once(LINKER))
            .enumerate()
        {
            let n = name_of(name)?;
            let ks = Keystore::create(
                dir.join(name),
                None,
                KdfParams::default(),
                &["localhost".to_string()],
            )?;
            let role = if name == LINKER {
                Role::Linker
            } else {
                Role::Register
            };
            let ops: Vec<SigningKey> = if role == Role::Register {
                (0..2).map(|_| SigningKey::generate(&mut rng)).collect()
            } else {
                Vec::new()
            };
            members.push(Member {
                operators: ops
                    .iter()
                    .enumerate()
                    .map(|(k, o)| Operator {
                        name: format!("{name}-operator-{}", k + 1),
                        key: Key32(o.verifying_key().to_bytes()),
                    })
                    .collect(),
                ..ks.manifest_entry(n.clone(), role, format!("127.0.0.1:{}", 7400 + i))
            });
            keystores.insert(n.clone(), ks);
            operators.insert(n, ops);
        }
        let manifest = Manifest {
            federation: "kobling-sim".into(),
            members,
            domains: Vec::new(),
        };
        manifest
            .validate()
            .map_err(|e| RunError::Setup(e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            keystores,
            operators,
            researcher_signing: SigningKey::generate(&mut rng),
            researcher_hpke: HpkeSecretKey::generate(&mut rng),
            rng,
        })
    }

    /// The keystore of `member`.
    pub fn keystore(&self, member: &Name) -> Option<&Keystore> {
        self.keystores.get(member)
    }

    /// Shreds the project's seed at every node.
    ///
    /// # Errors
    ///
    /// [`RunError::Keystore`].
    pub fn close(&mut self, project: &str) -> Result<(), RunError> {
        let domain = Domain::Project(project_of(project)?);
        for ks in self.keystores.values_mut() {
            ks.shred(&domain)?;
        }
        Ok(())
    }

    /// Runs a project over `extracts` end to end.
    ///
    /// # Errors
    ///
    /// The first [`RunError`] of any party.
    pub fn run_project(
        &mut self,
        extracts: &[&Extract],
        config: &ProjectConfig,
        fault: Option<&Fault>,
        mut observer: Option<&mut Observer>,
    ) -> Result<RunOutcome, RunError> {
        let mut rng = ChaCha20Rng::seed_from_u64(config.seed ^ self.rng.next_u64());
        let mut timings = Vec::new();
        let mut clock = std::time::Instant::now();
        let mut lap =
            |name: &'static str, timings: &mut Vec<(&'static str, std::time::Duration)>| {
                timings.push((name, clock.elapsed()));
                clock = std::time::Instant::now();
            };
        let project = project_of(&config.project)?;
        let domain = Domain::Project(project.clone());
        let linker_name = name_of(LINKER)?;
        let linker_key = self.signing_key(&linker_name)?;
        let mut log = Transcript::new();
        let now = 1_700_000_000u64;
        let statement = |signer: Signer, body: Body| Statement {
            project: project.clone(),
            time: now,
            signer,
            body,
        };

        // 1. The researcher's order.
        let cohort = Cohort::parse(&config.cohort).map_err(|e| RunError::Setup(e.to_string()))?;
        let registers: Vec<Name> = extracts
            .iter()
            .map(|e| name_of(e.name))
            .collect::<Result<_, _>>()?;
        let order = ProjectOrder {
            project: project.clone(),
            title: text("Synthetic demonstration project")?,
            legal_basis: text("REK 2024/000000 (synthetic)")?,
            manifest_digest: self.manifest.digest(),
            linker: linker_name.clone(),
            registers: BoundedVec::new(
                extracts
                    .iter()
                    .map(|e| {
                        Ok(RegisterRequest {
                            register: name_of(e.name)?,
                            variables: columns(&e.columns[1..])?,
                        })
                    })
                    .collect::<Result<Vec<_>, RunError>>()?,
            )
            .map_err(|e| RunError::Setup(e.to_string()))?,
            cohort: text(&cohort.to_string())?,
            expires: now + 5 * 365 * 86_400,
            researcher_signing_key: Key32(self.researcher_signing.verifying_key().to_bytes()),
            researcher_hpke_key: Key32(*self.researcher_hpke.public_key().as_bytes()),
            test_mode: false,
        };
        let order_digest = order.digest();
        let researcher = Signer::Researcher(order.researcher_signing_key);
        log.append(
            statement(researcher, Body::Order(order.clone())).sign(&self.researcher_signing),
            &linker_key,
        );

        // 2. Two operators approve each register's extract.
        for e in extracts {
            let register = name_of(e.name)?;
            let approval = Approval {
                register: register.clone(),
                order: order_digest,
                extract: extract_digest(e),
                rows: e.rows.len() as u64,
                columns: columns(&e.columns)?,
            };
            for op in self.operators.get(&register).into_iter().flatten() {
                let signer = Signer::Operator {
                    register: register.clone(),
                    key: Key32(op.verifying_key().to_bytes()),
                };
                log.append(
                    statement(signer, Body::Approval(approval.clone())).sign(op),
                    &linker_key,
                );
            }
        }

        // 3. Every key holder accepts the domain and commits.
        let mut commitments = BTreeMap::new();
        for member in registers.iter().chain(std::iter::once(&linker_name)) {
            let ks = self.keystore_mut(member)?;
            ks.accept_domain(&domain)?;
            let key = ks.commitment(&domain)?;
            commitments.insert(member.clone(), key);
            let body = Body::Commitment(KeyCommitment {
                member: member.clone(),
                domain: domain.clone(),
                key,
            });
            let node_key = self.signing_key(member)?;
            log.append(
                statement(Signer::Node(member.clone()), body).sign(&node_key),
                &linker_key,
            );
        }

        lap("order, approvals, commitments", &mut timings);

        // 4. Owners prepare and announce their lists.
        let researcher_pk = self.researcher_hpke.public_key();
        let linker_pk = HpkePublicKey::from_bytes(self.member(&linker_name)?.hpke_key.0)
            .map_err(|e| RunError::Setup(format!("the linker's HPKE key: {e}")))?;
        let mut prepared: BTreeMap<Name, PreparedList> = BTreeMap::new();
        let mut stats = BTreeMap::new();
        for e in extracts {
            let list = name_of(e.name)?;
            let mut builder = ListBuilder::new(ParseOptions::default(), None);
            for (line, (id, values)) in e.rows.iter().enumerate() {
                // Invalid identifiers are counted by the builder.
                let _ = builder.push_row(line as u64 + 2, id, values.clone());
            }
            let (persons, st) = builder.finish();
            let share = self.keystore_ref(&list)?.share(&domain)?;
            let p = prepare_list(
                &project,
                &list,
                persons,
                &share,
                &researcher_pk,
                &linker_pk,
                config.chunk_size,
                &mut rng,
            )
            .map_err(|err| RunError::Owner(list.clone(), err))?;
            let announcement = ListAnnouncement {
                list: list.clone(),
                extract: extract_digest(e),
                rows: st.rows,
                invalid: BoundedVec::new(
                    st.invalid
                        .iter()
                        .map(|i| {
                            Ok(InvalidCount {
                                reason: bstr(i.reason)?,
                                count: i.count,
                            })
                        })
                        .collect::<Result<Vec<_>, RunError>>()?,
                )
                .map_err(|e| RunError::Setup(e.to_string()))?,
                persons: p.context.persons,
                columns: columns(&e.columns[1..])?,
                blinding_commitment: p.blinding_commitment,
                points_root: p.points_root,
                sealed_root: p.sealed_root,
                chunk_size: config.chunk_size,
                content_key: p.content_key.clone(),
            };
            let node_key = self.signing_key(&list)?;
            log.append(
                statement(
                    Signer::Node(list.clone()),
                    Body::ListAnnounced(announcement),
                )
                .sign(&node_key),
                &linker_key,
            );
            stats.insert(list.clone(), st);
            prepared.insert(list, p);
        }

        lap("owners: validate, shuffle, blind, seal", &mut timings);

        // 5. The chain, list by list, chunk by chunk through every hop.
        let linker_share = self.keystore_ref(&linker_name)?.share(&domain)?;
        let linker_hpke =
            HpkeSecretKey::from_bytes(*self.keystore_ref(&linker_name)?.x25519_secret_bytes());
        let mut final_points: BTreeMap<Name, Vec<WirePoint>> = BTreeMap::new();
        for (list, p) in &prepared {
            let order_of_hops = {
                let mut h = self.manifest.chain_order(list, &registers);
                h.remove(0);
                h
            };
            let mut hops = Vec::new();
            let mut previous_key = None;
            for (i, member) in order_of_hops.iter().enumerate() {
                let mut share = self.keystore_ref(member)?.share(&domain)?;
                if fault
                    == Some(&Fault::WrongShare {
                        list: list.to_string(),
                        member: member.to_string(),
                    })
                {
                    share = Share::random(&mut rng);
                }
                let hop = Hop::register(
                    p.context.clone(),
                    i as u32 + 1,
                    member.clone(),
                    share,
                    previous_key,
                )
                .map_err(|source| RunError::Hop {
                    list: list.clone(),
                    hop: i as u32 + 1,
                    member: member.clone(),
                    chunk: 0,
                    source,
                })?;
                // The next hop checks proofs against the published commitment,
                // whatever share this hop really used.
                previous_key = commitments.get(member).copied();
                hops.push((member.clone(), hop));
            }
            let blinding = open_blinding(&linker_hpke, &project, list, &p.blinding_for_linker)
                .map_err(|e| {
                    RunError::Setup(format!(
                        "the linker cannot open the blinding of {list}: {e}"
                    ))
                })?;
            let linker_hop_index = hops.len() as u32 + 1;
            let linker_hop = Hop::linker(
                p.context.clone(),
                linker_hop_index,
                linker_name.clone(),
                LinkerKeys {
                    share: &linker_share,
                    blinding: &blinding,
                    blinding_commitment: &p.blinding_commitment,
                },
                previous_key,
                &mut rng,
            )
            .map_err(|source| RunError::Hop {
                list: list.clone(),
                hop: linker_hop_index,
                member: linker_name.clone(),
                chunk: 0,
                source,
            })?;
            hops.push((linker_name.clone(), linker_hop));

            let mut finals = Vec::with_capacity(p.points.len());
            for chunk in owner_chunks(&p.context, &p.points) {
                let mut current: PointChunk = chunk;
                for (member, hop) in hops.iter_mut() {
                    let next =
                        hop.handle_chunk(&current, &mut rng)
                            .map_err(|source| RunError::Hop {
                                list: list.clone(),
                                hop: current.hop + 1,
                                member: member.clone(),
                                chunk: current.chunk,
                                source,
                            })?;
                    if let (Some(obs), true) = (observer.as_deref_mut(), *member != linker_name) {
                        let mut seen: Vec<WirePoint> = current
                            .input
                            .iter()
                            .chain(current.output.iter())
                            .copied()
                            .collect();
                        seen.extend(next.output.iter().copied());
                        obs.register_views
                            .push((list.clone(), member.clone(), seen));
                    }
                    current = next;
                }
                finals.extend(current.output.iter().copied());
            }
            for (member, hop) in hops {
                let record = hop.finish().map_err(|source| RunError::Hop {
                    list: list.clone(),
                    hop: 0,
                    member: member.clone(),
                    chunk: 0,
                    source,
                })?;
                let node_key = self.signing_key(&member)?;
                log.append(
                    statement(Signer::Node(member.clone()), Body::Hop(record)).sign(&node_key),
                    &linker_key,
                );
            }
            final_points.insert(list.clone(), finals);
        }

        lap("chain: every hop, proofs checked", &mut timings);

        // 6. Link.
        let lists: Vec<(Name, &[WirePoint])> = final_points
            .iter()
            .map(|(n, v)| (n.clone(), v.as_slice()))
            .collect();
        let linkage = link(&project, &lists, &cohort)?;
        let point_trees: BTreeMap<Name, MerkleTree> = final_points
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    MerkleTree::from_leaves(v.iter().map(|p| p.as_bytes())),
                )
            })
            .collect();
        let summary = LinkSummary {
            cohort: text(&cohort.to_string())?,
            cohort_persons: linkage.persons.len() as u64,
            lists: BoundedVec::new(
                linkage
                    .lists
                    .iter()
                    .map(|l| LinkedList {
                        list: l.list.clone(),
                        final_root: point_trees[&l.list].root(),
                        persons: l.total,
                        matched: l.selected.len() as u64,
                    })
                    .collect(),
            )
            .map_err(|e| RunError::Setup(e.to_string()))?,
        };
        let linker_signer = Signer::Node(linker_name.clone());
        log.append(
            statement(linker_signer.clone(), Body::LinkSummary(summary)).sign(&linker_key),
            &linker_key,
        );

        lap("link", &mut timings);

        // 7. Delivery: only cohort positions leave the linker.
        let mut delivered: BTreeMap<Name, Vec<DeliveredItem>> = BTreeMap::new();
        let mut delivered_lists = Vec::new();
        for sel in &linkage.lists {
            let p = &prepared[&sel.list];
            let sealed_tree = MerkleTree::from_leaves(p.sealed.iter().map(sealed_leaf));
            let source = ListDeliverySource {
                sealed: &sealed_tree,
                points: &point_trees[&sel.list],
            };
            let mut items = Vec::with_capacity(sel.selected.len());
            for (position, lnr) in &sel.selected {
                let i = position.0 as usize;
                let item = deliver_item(
                    *lnr,
                    *position,
                    p.sealed[i].clone(),
                    final_points[&sel.list][i],
                    &source,
                )
                .map_err(|e| RunError::Setup(e.to_string()))?;
                items.push(item);
            }
            delivered_lists.push(DeliveredList {
                list: sel.list.clone(),
                items: items.len() as u64,
                selection: selection_digest(&sel.selected),
            });
            delivered.insert(sel.list.clone(), items);
        }
        let record = DeliveryRecord {
            recipient: order.researcher_signing_key,
            lists: BoundedVec::new(delivered_lists).map_err(|e| RunError::Setup(e.to_string()))?,
        };
        log.append(
            statement(linker_signer, Body::Delivery(record)).sign(&linker_key),
            &linker_key,
        );

        // 8. The researcher verifies the transcript, then every item.
        let entries = log.into_entries();
        let trailer = Trailer::sign(&project, &entries, &linker_key);
        let verified = transcript::verify(&entries, Some(&trailer), &self.manifest)?;
        if let Some(obs) = observer {
            obs.final_points = final_points.clone();
        }
        let view = ProjectView::new(&self.manifest, &entries);
        let mut tables = BTreeMap::new();
        for (list, items) in &delivered {
            let (announcement, final_root) = view
                .announcement(list)
                .zip(view.final_root(list))
                .ok_or_else(|| RunError::Setup(format!("transcript lacks the roots of {list}")))?;
            let key = announcement
                .content_key
                .unwrap(&self.researcher_hpke, &project, list)
                .map_err(|e| {
                    RunError::Setup(format!("cannot open the content key of {list}: {e}"))
                })?;
            let mut rows = Vec::new();
            for item in items {
                for r in open_item(
                    &project,
                    list,
                    item,
                    &announcement.sealed_root,
                    &final_root,
                    announcement.persons,
                    &key,
                )? {
                    rows.push((item.lnr, r));
                }
            }
            tables.insert(list.clone(), rows);
        }
        lap("delivery, transcript check, opening", &mut timings);
        Ok(RunOutcome {
            tables,
            stats,
            linkage,
            transcript: (entries, trailer),
            verified,
            timings,
        })
    }

    fn member(&self, name: &Name) -> Result<&Member, RunError> {
        self.manifest
            .member(name)
            .ok_or_else(|| RunError::Setup(format!("{name} is not in the manifest")))
    }

    fn keystore_ref(&self, name: &Name) -> Result<&Keystore, RunError> {
        self.keystores
            .get(name)
            .ok_or_else(|| RunError::Setup(format!("no keystore for {name}")))
    }

    fn keystore_mut(&mut self, name: &Name) -> Result<&mut Keystore, RunError> {
        self.keystores
            .get_mut(name)
            .ok_or_else(|| RunError::Setup(format!("no keystore for {name}")))
    }

    fn signing_key(&self, name: &Name) -> Result<SigningKey, RunError> {
        Ok(SigningKey::from_bytes(
            &self.keystore_ref(name)?.signing_key().to_bytes(),
        ))
    }
}

/// SHA3-256 of an extract rendered as CSV (as the node digests the file).
pub fn extract_digest(e: &Extract) -> Digest {
    Digest(sha3_256(render_csv(e).as_bytes()))
}

pub use crate::population::render_csv;

fn name_of(s: &str) -> Result<Name, RunError> {
    Name::new(s).map_err(|e| RunError::Setup(e.to_string()))
}

fn project_of(s: &str) -> Result<ProjectId, RunError> {
    ProjectId::new(s).map_err(|e| RunError::Setup(e.to_string()))
}

fn text(s: &str) -> Result<transcript::Text, RunError> {
    BoundedString::new(s).map_err(|e| RunError::Setup(e.to_string()))
}

fn bstr<const N: usize>(s: &str) -> Result<BoundedString<N>, RunError> {
    BoundedString::new(s).map_err(|e| RunError::Setup(e.to_string()))
}

fn columns(cols: &[&str]) -> Result<Columns, RunError> {
    let v: Vec<ColumnName> = cols.iter().map(|c| bstr(c)).collect::<Result<_, _>>()?;
    BoundedVec::new(v).map_err(|e| RunError::Setup(e.to_string()))
}
