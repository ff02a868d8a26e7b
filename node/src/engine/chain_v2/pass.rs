//! Chain v2's backward pass at a node: the owner starts it (`start_pass`,
//! `A_0`), each hop steps it (`pass_v2`), and the linker concludes its
//! list check and publishes the checks once every list has one that
//! passed (`conclude`, `publish_checks`).

use kobling_protocol::{
    bounded::BoundedVec,
    group::WirePoint,
    manifest::Role,
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    transcript::{self, Body},
    types::{Attempt, ChunkIndex, HopIndex, ListName, ProjectId, UnixTime},
    v2::{pass_step, Combination, ListCheck, OwnerCheckBuilder, Pass, PassContext, LAST_ATTEMPT},
};

use super::{Chain, KEPT_Y, KEPT_Z, PENDING_CHECK, SENT_CHECK};
use crate::engine::{
    error::{ack, not_ready, refuse, Outcome, Refused},
    now_of, Engine,
};
use crate::store::StoreError;

impl Engine {
    /// The owner's duty once every hop of its list's attempt is recorded:
    /// σ from the records, `A_0 = Σ c_t·y_t` over the kept output, signed,
    /// to hop 1 (to the linker if no other register steps the list).
    pub(in crate::engine) fn start_pass(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        list: &ListName,
        attempt: Attempt,
    ) -> Outcome<()> {
        let step = if attempt == Attempt::FIRST {
            Step::Pass
        } else {
            Step::StrictPass
        };
        if self.store.transaction(|tx| tx.marked(project, step))? {
            return Ok(());
        }
        let chain = Chain::of(view, project, list)?;
        let ctx = chain.context(self.signing.verifying_key())?;
        let mut builder = OwnerCheckBuilder::new(chain.header.clone(), ctx.sigma);
        let failed = self.for_each_kept_y(project, list, |points| builder.push_chunk(&points))?;
        if let Some(e) = failed {
            return Err(refuse(RefusalCode::Check, e.to_string()));
        }
        let owner = builder
            .finish(&self.signing)
            .map_err(|e| refuse(RefusalCode::Check, e.to_string()))?;
        let pass = Pass {
            list: list.clone(),
            attempt,
            sigma: ctx.sigma,
            owner,
            steps: BoundedVec::default(),
        };
        let next = view
            .hops_of(list)
            .first()
            .cloned()
            .unwrap_or_else(|| self.linker());
        self.store.transaction(|tx| {
            if tx.mark(project, step)? {
                tx.send(
                    project,
                    &next,
                    &Message::PassV2 {
                        project: project.clone(),
                        pass,
                    },
                )?;
            }
            Ok::<_, Refused>(())
        })?;
        tracing::info!(node = %self.me, %project, %list, %attempt, "list check started (A_0 sent)");
        Ok(())
    }

    /// The owner: hands every chunk of its kept output `y` of `list` to
    /// `each`, in chunk order; the first error `each` gives is returned
    /// (the later chunks are still handed on).
    pub(super) fn for_each_kept_y<E>(
        &mut self,
        project: &ProjectId,
        list: &ListName,
        mut each: impl FnMut(Vec<WirePoint>) -> Result<(), E>,
    ) -> Outcome<Option<E>> {
        let mut failed = None;
        self.store.transaction(|tx| {
            tx.for_each_v2(project, list, KEPT_Y, |_, bytes| {
                let points: Vec<WirePoint> =
                    postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("kept output"))?;
                if let Err(e) = each(points) {
                    failed.get_or_insert(e);
                }
                Ok(())
            })
        })?;
        Ok(failed)
    }

    /// The backward pass of `pass.list`: a register hop's step, or the
    /// linker's list check.
    pub(in crate::engine) fn pass_v2(
        &mut self,
        project: &ProjectId,
        pass: Pass,
    ) -> Outcome<Vec<Message>> {
        let entries = self.store.entries(project)?;
        let manifest = self.manifest.clone();
        let view = ProjectView::new(&manifest, &entries);
        let list = pass.list.clone();
        let l = view
            .v2_list(&list)
            .ok_or_else(|| not_ready(format!("list {list} is not announced for chain v2 here")))?;
        if l.stopped.is_some() || l.passed.is_some() || pass.attempt < l.attempt {
            return Ok(vec![ack()]);
        }
        if pass.attempt > l.attempt {
            return Err(not_ready(format!(
                "list {list}: attempt {} is not open here",
                pass.attempt
            )));
        }
        let chain = Chain::of(&view, project, &list)?;
        let ctx = chain.context(self.owner_key(&view, &list)?)?;
        if self.role == Role::Linker {
            return self.conclude(project, &view, &chain, &ctx, &pass, now_of(&entries));
        }
        let hops = view.hops_of(&list);
        let hop = pass.steps.len() as u32 + 1;
        if hops.get(hop as usize - 1) != Some(&self.me) {
            return Err(refuse(
                RefusalCode::UnexpectedSender,
                format!("step {hop} of list {list}'s pass is not this node's"),
            ));
        }
        let share = self.step_share(&view, project, &list)?;
        let step = self.register_step_key(&view, project, &list, share)?;
        let linker = self.linker();
        let made = pass_step(&ctx, &pass, HopIndex(hop), &step, &mut self.rng);
        let (to, out) = match made {
            Ok(s) => {
                let mut out = pass;
                let mut steps = out.steps.into_inner();
                steps.push(s);
                out.steps = BoundedVec::new(steps)
                    .map_err(|_| refuse(RefusalCode::Check, "too many steps"))?;
                (hops.get(hop as usize).cloned().unwrap_or(linker), out)
            }
            Err(kobling_protocol::v2::CheckError::Sigma) => {
                return Err(refuse(
                    RefusalCode::Check,
                    format!("list {list}: the pass is not for the σ the records give"),
                ))
            }
            Err(e) => {
                // The owner's signature or an earlier step's proof fails:
                // the linker, which decides, gets the pass as it came.
                tracing::warn!(node = %self.me, %project, %list, hop, error = %e, "a backward pass that does not verify: handed to the linker");
                (linker, pass)
            }
        };
        self.store.transaction(|tx| {
            tx.send(
                project,
                &to,
                &Message::PassV2 {
                    project: project.clone(),
                    pass: out,
                },
            )
        })?;
        Ok(vec![ack()])
    }

    /// The linker: `B = Σ c_t·Z_t` over the kept `Z`, the whole pass
    /// verified, the list check concluded and kept; published once every
    /// list's check passed (a failed one at once, with the project's
    /// closure naming the list).
    pub(super) fn conclude(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        chain: &Chain,
        ctx: &PassContext,
        pass: &Pass,
        now: UnixTime,
    ) -> Outcome<Vec<Message>> {
        let list = &pass.list;
        let mut have = false;
        self.store.transaction(|tx| {
            for kind in [PENDING_CHECK, SENT_CHECK] {
                tx.for_each_v2(project, list, kind, |attempt, _| {
                    have |= attempt == u64::from(pass.attempt);
                    Ok(())
                })?;
            }
            Ok::<_, Refused>(())
        })?;
        if have {
            return Ok(vec![ack()]);
        }
        let m = chain.registers.len();
        if pass.steps.len() < m {
            // A register hop handed over a pass that does not verify.
            let steps: Vec<_> = pass.steps.iter().map(|s| (s.a, s.proof)).collect();
            let failing = ListCheck::conclude(
                &PassContext {
                    sigma: ctx.sigma,
                    owner_key: ctx.owner_key,
                    step_keys: ctx.step_keys[..steps.len()].to_vec(),
                },
                pass,
                Combination::default().point(),
            );
            let Err(e) = failing else {
                return Err(refuse(
                    RefusalCode::Check,
                    format!(
                        "list {list}: a pass with {} of {m} steps that verifies",
                        steps.len()
                    ),
                ));
            };
            // The hop that handed it over may be the one that broke it:
            // the closure names the list, not a hop.
            let detail = format!(
                "list {list} failed its list check (attempt {}): its backward pass does not verify; the project is stopped",
                pass.attempt
            );
            tracing::error!(node = %self.me, %project, %list, attempt = %pass.attempt, error = %e, "{detail}");
            self.stop_list(project, list, pass.attempt, now)?;
            self.stop_project(project, &detail, now)?;
            return Ok(vec![ack()]);
        }
        let mut b = Combination::default();
        let mut failed = None;
        self.store.transaction(|tx| {
            tx.for_each_v2(project, list, KEPT_Z, |c, bytes| {
                let z: Vec<WirePoint> =
                    postcard::from_bytes(bytes).map_err(|_| StoreError::Corrupt("kept Z"))?;
                if let Err(e) = b.push_chunk(&ctx.sigma, ChunkIndex(c), &z) {
                    failed.get_or_insert(e);
                }
                Ok(())
            })
        })?;
        if let Some(e) = failed {
            return Err(refuse(RefusalCode::Check, e.to_string()));
        }
        let check = match ListCheck::conclude(ctx, pass, b.point()) {
            Ok(check) => check,
            Err(e) => {
                let detail = format!(
                    "list {list} failed its list check (attempt {}): {e}; the project is stopped",
                    pass.attempt
                );
                tracing::error!(node = %self.me, %project, %list, attempt = %pass.attempt, "{detail}");
                self.stop_list(project, list, pass.attempt, now)?;
                self.stop_project(project, &detail, now)?;
                return Ok(vec![ack()]);
            }
        };
        let passed = check.passed;
        // The researcher list has no strict attempt: its owner is a
        // client, not a node that resends (docs/protocol.md §18).
        if !passed && pass.attempt < LAST_ATTEMPT && !view.is_researcher_list(list) {
            tracing::info!(node = %self.me, %project, %list, attempt = %pass.attempt, passed, "list check concluded");
            self.retry_list(project, list, &check, now)?;
            return Ok(vec![ack()]);
        }
        self.store.transaction(|tx| {
            tx.put_v2(
                project,
                list,
                PENDING_CHECK,
                u64::from(pass.attempt),
                &transcript::encode_value(&check),
            )
        })?;
        tracing::info!(node = %self.me, %project, %list, attempt = %pass.attempt, passed, "list check concluded");
        if !passed {
            // The strict attempt failed too (every kept check is recorded
            // before the closure, `stop_project`).
            let detail = format!(
                "list {list} failed its list check in strict mode too (attempt {}): a hop's output is not its input times its key, and no hop's per-chunk proof named it; the project is stopped",
                pass.attempt
            );
            self.stop_project(project, &detail, now)?;
        } else {
            self.publish_checks(project, view, now)?;
        }
        Ok(vec![ack()])
    }

    /// Publishes the concluded list checks not published yet, once every
    /// list of the project has a passed one (a closure records them at
    /// once, `record_kept_checks`), in list and attempt order.
    pub(super) fn publish_checks(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let lists = view.lists();
        let mut pending: Vec<(ListName, u64, ListCheck)> = Vec::new();
        let mut passed = 0;
        self.store.transaction(|tx| {
            for list in &lists {
                let mut any = false;
                for kind in [PENDING_CHECK, SENT_CHECK] {
                    tx.for_each_v2(project, list, kind, |attempt, bytes| {
                        let check: ListCheck = postcard::from_bytes(bytes)
                            .map_err(|_| StoreError::Corrupt("list check"))?;
                        any |= check.passed;
                        if kind == PENDING_CHECK {
                            pending.push((list.clone(), attempt, check));
                        }
                        Ok(())
                    })?;
                }
                passed += usize::from(any);
            }
            Ok::<_, Refused>(())
        })?;
        if pending.is_empty() || passed < lists.len() {
            return Ok(());
        }
        let linker = self.linker();
        let signed: Vec<_> = pending
            .into_iter()
            .map(|(list, attempt, check)| {
                let bytes = transcript::encode_value(&check);
                (
                    list,
                    attempt,
                    bytes,
                    self.sign(project, Body::ListCheck(check), now),
                )
            })
            .collect();
        self.store.transaction(|tx| {
            for (list, attempt, bytes, s) in &signed {
                tx.send(project, &linker, &Message::Statement(s.clone()))?;
                tx.put_v2(project, list, SENT_CHECK, *attempt, bytes)?;
            }
            for (list, ..) in &signed {
                tx.delete_v2(project, list, PENDING_CHECK)?;
            }
            Ok::<_, Refused>(())
        })?;
        Ok(())
    }
}
