//! A register's own list: prepared from the approved extract (on a thread
//! of its own in the daemon, see [`crate::prepare`]), then queued in one
//! transaction: the announcement first in the linker's queue, the points
//! and sealed items in the order they were made, then β for the linker.

use std::sync::Arc;

use kobling_protocol::{
    ident::ParseOptions,
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    seal::HpkePublicKey,
    transcript::Body,
    types::{Digest, ListName, ProjectId, UnixTime},
};
use rand_chacha::rand_core::Rng;
use zeroize::Zeroizing;

use super::{
    error::{not_ready, refuse, EngineError, Outcome, Refused},
    Engine,
};
use crate::prepare::{JobError, JobState, ListJob, OwnerKey, PreparedList, RETRY_AFTER_SECONDS};

impl Engine {
    /// The duty to announce this node's list: start, follow or finish its
    /// preparation.
    pub(super) fn announce(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        extract: Digest,
        now: UnixTime,
    ) -> Outcome<()> {
        if self.config.chain_v2 {
            // Chain v2 streams the list (`list_stream.rs`).
            return self.stream(project, view, extract, now);
        }
        if self
            .store
            .transaction(|tx| tx.marked(project, Step::Announce))?
        {
            self.jobs.remove(project);
            return Ok(());
        }
        let result = match self.jobs.remove(project) {
            Some(JobState::Failed { retry_at }) if now < retry_at => {
                self.jobs
                    .insert(project.clone(), JobState::Failed { retry_at });
                return Ok(());
            }
            Some(JobState::Running { handle, cancel }) => {
                if !handle.is_finished() {
                    self.jobs
                        .insert(project.clone(), JobState::Running { handle, cancel });
                    return Ok(());
                }
                handle.join().unwrap_or_else(|_| {
                    Err(JobError::Refused(kobling_protocol::refusal::Refusal::new(
                        RefusalCode::Prepare,
                        "preparing the list failed (a bug: see the log)",
                    )))
                })
            }
            Some(JobState::Streaming { .. }) | Some(JobState::Failed { .. }) | None => {
                let mut seed = Zeroizing::new([0u8; 32]);
                self.rng.fill_bytes(seed.as_mut());
                let job = self.list_job(project, view, extract, seed)?;
                if self.config.background_preparation {
                    let state = JobState::spawn(job).map_err(EngineError::Spawn)?;
                    self.jobs.insert(project.clone(), state);
                    tracing::info!(node = %self.me, %project, "preparing the list");
                    return Ok(());
                }
                job.run()
            }
        };
        match result {
            Ok(prepared) => self.queue_list(project, prepared, now),
            Err(e) => {
                self.jobs.insert(
                    project.clone(),
                    JobState::Failed {
                        retry_at: now.plus(RETRY_AFTER_SECONDS),
                    },
                );
                Err(e.into())
            }
        }
    }

    /// What preparing this node's list in `project` needs; `seed` seeds
    /// the list's randomness (permutation, blinding, keys).
    pub(super) fn list_job(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        extract: Digest,
        seed: Zeroizing<[u8; 32]>,
    ) -> Outcome<ListJob> {
        let order = view.order().ok_or_else(|| not_ready("no order"))?;
        let path = self
            .store
            .transaction(|tx| tx.extract_path(project, &extract.0))?
            .ok_or_else(|| not_ready("the approved extract's path is not known"))?;
        // A delivery's source without a share of the domain splits its
        // blinding (β₂ to hop 1); it has no share to use.
        let split_hop1 = view
            .delivery_plan()
            .filter(|p| p.split)
            .and_then(|p| p.hops.first().cloned());
        let owner_key = match split_hop1 {
            Some(hop1) => OwnerKey::Split(
                self.manifest
                    .member(&hop1)
                    .and_then(|m| HpkePublicKey::from_bytes(m.hpke_key.0).ok())
                    .ok_or_else(|| {
                        refuse(RefusalCode::Manifest, format!("no HPKE key of {hop1}"))
                    })?,
            ),
            None => OwnerKey::Share(
                self.keystore
                    .share(&super::delivery_run::key_domain(view, project))?,
            ),
        };
        let researcher = HpkePublicKey::from_bytes(order.researcher_hpke_key.0)
            .map_err(|e| refuse(RefusalCode::Order, e.to_string()))?;
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| refuse(RefusalCode::Manifest, "no linker"))?;
        // β is sealed to whoever removes it: the linker, or a delivery's
        // holder (the order's sealing key), never the linker then.
        let beta_key = match order.delivery {
            Some(_) => order.researcher_hpke_key.0,
            None => linker.hpke_key.0,
        };
        let linker_key = HpkePublicKey::from_bytes(beta_key)
            .map_err(|e| refuse(RefusalCode::Manifest, e.to_string()))?;
        let first_hop = view
            .hops_of(&ListName::of(&self.me))
            .first()
            .cloned()
            .unwrap_or_else(|| linker.name.clone());
        Ok(ListJob {
            project: project.clone(),
            me: self.me.clone(),
            extract,
            path: path.into(),
            options: ParseOptions {
                allow_synthetic: self.config.test_mode,
            },
            owner_key,
            researcher,
            linker_key,
            linker: linker.name.clone(),
            first_hop,
            chunk_size: self.config.chunk_size,
            seed,
            variables: crate::prepare::variables_of(order, &self.me),
            mapping: self.store.mapping(),
            dir: self.store.dir(),
            cancel: Arc::default(),
            gate: self.gate.take(),
            chain_v2: self.config.chain_v2.then(|| self.signing.clone()),
            pseudonymous: order.list_domain(&self.me).is_some(),
            domain: order.key_domain(),
            delivery: order.delivery_id(),
            identified: order.identified.map(|_| self.config.reservations.clone()),
        })
    }

    /// Queues a prepared chain v1 list in one transaction (chain v2
    /// streams its list, `list_stream.rs`).
    fn queue_list(
        &mut self,
        project: &ProjectId,
        prepared: PreparedList,
        now: UnixTime,
    ) -> Outcome<()> {
        let linker = self.linker();
        let started = std::time::Instant::now();
        let PreparedList {
            staging,
            announcement,
            blinding,
            invalid_rows,
            seconds,
            second,
        } = prepared;
        let (persons, rows) = (announcement.persons, announcement.rows);
        // A delivery's list names it, and its β goes to the holder.
        let entries = self.store.entries(project)?;
        let plan = ProjectView::new(&self.manifest, &entries).delivery_plan();
        let beta_to = plan
            .as_ref()
            .map_or_else(|| linker.clone(), |p| p.spec.holder.clone());
        let signed = self.sign(project, Body::ListAnnounced(announcement), now);
        let me = self.me.clone();
        let list = ListName::of(&me);
        let queued = self.store.transaction(|tx| {
            if !tx.mark(project, Step::Announce)? {
                return Ok::<_, Refused>(false);
            }
            let slot = tx.reserve(project, &linker)?;
            // β₂ reaches hop 1 before the first chunk, which it needs.
            if let (Some(second), Some(hop1)) =
                (&second, plan.as_ref().and_then(|p| p.hops.first()))
            {
                tx.send(
                    project,
                    hop1,
                    &Message::Blinding {
                        project: project.clone(),
                        list: list.clone(),
                        sealed: second.sealed.clone(),
                    },
                )?;
            }
            staging.for_each_queued(|dest, bytes| tx.send_encoded(project, dest, bytes))?;
            tx.fill(slot, &Message::Statement(signed))?;
            tx.send(
                project,
                &beta_to,
                &Message::Blinding {
                    project: project.clone(),
                    list,
                    sealed: blinding,
                },
            )?;
            Ok(true)
        })?;
        drop(staging);
        if queued {
            tracing::info!(node = %self.me, %project, persons, rows, invalid = invalid_rows, seconds, queue_seconds = started.elapsed().as_secs_f64(), "list announced");
        }
        Ok(())
    }
}
