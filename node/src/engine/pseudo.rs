//! Projects with pseudonymous lists at a node (PROTOCOL.md §10;
//! `docs/domains.md`, "Projects with a pseudonymous list").
//!
//! ```text
//!  Duty::Commit ─▶ commit_keys: K_{i,p}; for each domain R of the order this
//!                  node holds a key of: accept Register(R) (long-lived, never
//!                  shredded by the project), K_{i,R}, ConversionKey → binding
//!                  (three statements, one commit, in this order)
//!  chunk_v2 / pass_v2 ─▶ step_share: k_{i,p}, or k_{i,p}·k_{i,R}⁻¹ on a list from R
//!  approve ─▶ approval_kind: a key holder without a list approves without an
//!             extract; a list's extract is keyed by `pseudonym` exactly when
//!             the order keys it by a domain (else refused, nothing stored)
//! ```

use kobling_protocol::{
    domain::{converting_domain, ConversionBinding, ConversionContext, ConversionKey},
    messages::Message,
    project::{ProjectView, Step},
    refusal::RefusalCode,
    share::{Domain, Share},
    transcript::{Approval, Body, KeyCommitment, ProjectOrder},
    types::{Digest, ProjectId, UnixTime},
};

use super::{
    approval::ExtractFile,
    error::{refuse, Outcome, Refused},
    Engine,
};

/// What an approval at this node stands for.
pub(super) enum ApprovalKind {
    /// This node's list: the extract is read and bound.
    List,
    /// A key holder of an order's domain without a list of its own: its
    /// operators approve without an extract.
    KeyHolderOnly,
}

impl Engine {
    /// Accepts the project domain and publishes `K_{i,p}`; as a key holder
    /// of a register domain the order keys a list by, also `K_{i,R}` and
    /// the binding of its conversion key `K'_i = (k_{i,p}·k_{i,R}⁻¹)·G`.
    pub(super) fn commit_keys(
        &mut self,
        project: &ProjectId,
        view: &ProjectView<'_>,
        now: UnixTime,
    ) -> Outcome<()> {
        let domain = super::delivery_run::key_domain(view, project);
        self.keystore
            .accept_domain_with_rng(&domain, &mut self.rng)?;
        let share = self.keystore.share(&domain)?;
        let mut bodies = vec![Body::Commitment(KeyCommitment {
            member: self.me.clone(),
            domain: domain.clone(),
            key: share.commitment(),
        })];
        for r in view.order().map(ProjectOrder::domains).unwrap_or_default() {
            let holds = self
                .manifest
                .domain(&r)
                .is_some_and(|spec| spec.is_key_holder(&self.manifest, &self.me));
            if !holds {
                continue;
            }
            let register = Domain::Register(r.clone());
            // A register domain's seed is long-lived: accepted once, kept
            // after the project's closure.
            self.keystore
                .accept_domain_with_rng(&register, &mut self.rng)?;
            let share_r = self.keystore.share(&register)?;
            bodies.push(Body::Commitment(KeyCommitment {
                member: self.me.clone(),
                domain: register.clone(),
                key: share_r.commitment(),
            }));
            let key = ConversionKey::new(
                ConversionContext {
                    from: &register,
                    to: &domain,
                    member: &self.me,
                },
                &share_r,
                &share,
                &mut self.rng,
            );
            bodies.push(Body::Conversion(ConversionBinding {
                member: self.me.clone(),
                domain: r,
                binding: *key.binding(),
            }));
        }
        let signed: Vec<_> = bodies
            .into_iter()
            .map(|b| self.sign(project, b, now))
            .collect();
        let linker = self.linker();
        self.store.transaction(|tx| {
            if tx.mark(project, Step::Commit)? {
                for s in &signed {
                    tx.send(project, &linker, &Message::Statement(s.clone()))?;
                }
            }
            Ok::<_, Refused>(())
        })
    }

    /// The scalar this node's step over `list` multiplies by: `k_{i,p}`,
    /// or `k_{i,p}·k_{i,R}⁻¹` if the order keys `list` by a domain R this
    /// node holds a key of (the linker combines β⁻¹ into it as for any
    /// list).
    pub(super) fn step_share(
        &self,
        view: &ProjectView<'_>,
        project: &ProjectId,
        list: &kobling_protocol::types::ListName,
    ) -> Outcome<Share> {
        let share = self
            .keystore
            .share(&super::delivery_run::key_domain(view, project))?;
        let Some(order) = view.order() else {
            return Ok(share);
        };
        match converting_domain(&self.manifest, order, list, &self.me) {
            None => Ok(share),
            Some(r) => {
                let share_r = self.keystore.share(&Domain::Register(r.clone()))?;
                Ok(share.product(&share_r.invert()))
            }
        }
    }

    /// What approval `a` of `order` stands for at this node, with the
    /// extract's key column checked against the order (before anything is
    /// stored).
    ///
    /// # Errors
    ///
    /// `wrong-register` if this node holds no key of the project;
    /// `extract` for an approval without an extract by a node with a list,
    /// an extract by a key holder without one, or an extract keyed by the
    /// other column (`pseudonym` in an fnr register's list, `fnr` in a
    /// holder's).
    pub(super) fn approval_kind(
        &self,
        order: &ProjectOrder,
        a: &Approval,
        file: &Result<ExtractFile, kobling_protocol::refusal::Refusal>,
    ) -> Outcome<ApprovalKind> {
        if order.delivery.is_some() {
            return self.delivery_approval_kind(order, a, file);
        }
        let has_list = order.register_names().contains(&self.me);
        let holds_key =
            kobling_protocol::domain::key_registers(&self.manifest, order).contains(&self.me);
        if !holds_key {
            return Err(refuse(
                RefusalCode::WrongRegister,
                format!("project {} does not name {}", order.project, self.me),
            ));
        }
        let no_extract = a.extract == Digest::default() && a.rows == 0 && a.columns.is_empty();
        if !has_list {
            if !no_extract {
                return Err(refuse(
                    RefusalCode::Extract,
                    format!(
                        "{} has no list in project {}: it takes part as a key holder, and its operators approve without an extract",
                        self.me, order.project
                    ),
                ));
            }
            return Ok(ApprovalKind::KeyHolderOnly);
        }
        if let Ok(f) = file {
            let pseudonymous = order.list_domain(&self.me).is_some();
            crate::extract_file::pseudonymous::check_key_column(&f.path, pseudonymous).map_err(
                |e| {
                    tracing::warn!(node = %self.me, project = %order.project, error = %e, "an approval's extract has the wrong key column: refused");
                    refuse(RefusalCode::Extract, format!("the extract cannot be used: {e}"))
                },
            )?;
        }
        Ok(ApprovalKind::List)
    }
}
