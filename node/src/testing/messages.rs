//! The messages a test federation's researcher and operators send: the
//! order, approvals in their envelopes, and the researcher's requests,
//! each signed as the `kobling` commands sign it.

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    bounded::BoundedVec,
    manifest::{Ed25519Key, X25519Key},
    messages::{Action, Message, Request},
    transcript::{
        Approval, Body, Entry, ProjectOrder, RegisterRequest, SignedStatement, Signer, Statement,
    },
    types::{Name, ProjectId, UnixTime},
};
use kobling_sim::population::Extract;

use super::{authority, name, text, Federation, OrderTerms, TestingError};
use crate::engine::file_digest;

/// `order` submitted, signed by `key` (the researcher's, or for a
/// delivery order the source's operator).
pub fn order_message(order: &ProjectOrder, now: UnixTime, key: &SigningKey) -> Message {
    let signed = Statement {
        project: order.project.clone(),
        time: now,
        signer: Signer::Researcher(order.researcher_signing_key),
        body: Body::Order(order.clone()),
    }
    .sign(key);
    Message::SubmitOrder(signed)
}

impl Federation {
    /// The order of `project` over `extracts`, each register asked for
    /// every column of its extract.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for a value that does not fit.
    pub fn order(
        &self,
        project: &str,
        cohort: &str,
        extracts: &[&Extract],
    ) -> Result<ProjectOrder, TestingError> {
        self.order_with(project, cohort, extracts, OrderTerms::default())
    }

    /// [`order`](Self::order) with other `terms`.
    ///
    /// # Errors
    ///
    /// As [`order`](Self::order).
    pub fn order_with(
        &self,
        project: &str,
        cohort: &str,
        extracts: &[&Extract],
        terms: OrderTerms,
    ) -> Result<ProjectOrder, TestingError> {
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| TestingError::Unexpected("no linker".into()))?;
        let registers = extracts
            .iter()
            .map(|e| {
                let variables = e.columns[1..]
                    .iter()
                    .map(|c| text(c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RegisterRequest {
                    register: name(e.name)?,
                    variables: BoundedVec::new(variables)
                        .map_err(|e| TestingError::Unexpected(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, TestingError>>()?;
        Ok(ProjectOrder {
            project: ProjectId::new(project)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            title: text("in-memory federation")?,
            legal_basis: text("REK test")?,
            manifest_digest: self.manifest.digest(),
            linker: linker.name.clone(),
            registers: BoundedVec::new(registers)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            cohort: text(cohort)?,
            expires: terms.expires,
            researcher_signing_key: Ed25519Key(self.researcher.verifying_key().to_bytes()),
            researcher_hpke_key: X25519Key(*self.researcher_hpke.public_key().as_bytes()),
            test_mode: terms.test_mode,
            grant: None,
            delivery: None,
            pseudonymous: BoundedVec::default(),
            identified: None,
        }
        .granted_by(&authority()))
    }

    /// A request for node `to`, with the next nonce (unsigned: sign it
    /// with the researcher's or an operator's key).
    pub fn request_for(
        &self,
        to: &Name,
        project: &ProjectId,
        action: Action,
        now: UnixTime,
    ) -> Request {
        let n = self
            .nonces
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut nonce = [0u8; kobling_protocol::messages::NONCE_LEN];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        Request {
            project: project.clone(),
            action,
            time: now,
            node: to.clone(),
            manifest: self.manifest.digest(),
            nonce,
        }
    }

    /// The researcher's signed submission of `order`.
    pub fn submit_message(&self, order: &ProjectOrder, now: UnixTime) -> Message {
        order_message(order, now, &self.researcher)
    }

    /// The signing key of operator `operator` (0 or 1) of `register`.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for an unknown register or operator.
    pub fn operator_key(
        &self,
        register: &Name,
        operator: usize,
    ) -> Result<&SigningKey, TestingError> {
        self.operators
            .get(register)
            .and_then(|ops| ops.get(operator))
            .ok_or_else(|| {
                TestingError::Unexpected(format!("no operator {operator} of {register}"))
            })
    }

    /// Operator `operator`'s approval of `order` at `register`, naming
    /// `file` in the extract directory, in a fresh envelope (send a new
    /// one for every attempt: a node takes an envelope once), carrying
    /// `order_entry`, the order's first transcript entry as the linker
    /// recorded it.
    ///
    /// # Errors
    ///
    /// [`TestingError`] if the file cannot be read.
    pub fn approval_message(
        &self,
        order: &ProjectOrder,
        order_entry: &Entry,
        extract: &Extract,
        file: &str,
        operator: usize,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let register = name(extract.name)?;
        let path = self.extracts().join(file);
        let digest = file_digest(
            path.to_str()
                .ok_or_else(|| TestingError::Unexpected("path not UTF-8".into()))?,
        )
        .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        let columns = extract
            .columns
            .iter()
            .map(|c| text(c))
            .collect::<Result<Vec<_>, _>>()?;
        let approval = Approval {
            register: register.clone(),
            order: order.digest(),
            extract: digest,
            rows: extract.rows.len() as u64,
            columns: BoundedVec::new(columns)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?,
        };
        let key = self.operator_key(&register, operator)?;
        let signed = Statement {
            project: order.project.clone(),
            time: now,
            signer: Signer::Operator {
                register,
                key: Ed25519Key(key.verifying_key().to_bytes()),
            },
            body: Body::Approval(approval),
        }
        .sign(key);
        self.approval_envelope(signed, order_entry, operator, file, now)
    }

    /// `signed`, an approval by operator `operator` of its register, in a
    /// fresh envelope naming `file` in the extract directory, carrying the
    /// order's entry `order_entry`.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] if `signed` is not an operator's
    /// statement, or its register has no such operator.
    pub fn approval_envelope(
        &self,
        signed: SignedStatement,
        order_entry: &Entry,
        operator: usize,
        file: &str,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let Signer::Operator { register, .. } = &signed.statement.signer else {
            return Err(TestingError::Unexpected(
                "not an operator's statement".into(),
            ));
        };
        let key = self.operator_key(register, operator)?;
        let envelope = self
            .request_for(
                register,
                &signed.statement.project,
                Action::Approve {
                    statement: signed.statement.digest(),
                    extract: text(file)?,
                },
                now,
            )
            .sign(key);
        Ok(Message::Approve {
            statement: signed,
            request: Box::new(envelope),
            order: Box::new(order_entry.clone()),
        })
    }

    /// The researcher's signed request.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for an invalid project id.
    pub fn request(
        &self,
        project: &str,
        action: Action,
        now: UnixTime,
    ) -> Result<Message, TestingError> {
        let linker = self
            .manifest
            .linker()
            .map(|l| l.name.clone())
            .ok_or_else(|| TestingError::Unexpected("no linker".into()))?;
        let project =
            ProjectId::new(project).map_err(|e| TestingError::Unexpected(e.to_string()))?;
        let req = self
            .request_for(&linker, &project, action.clone(), now)
            .sign(&self.researcher);
        Ok(match action {
            Action::Fetch => Message::Fetch(req),
            Action::Close => Message::Close(req),
            _ => Message::Status(req),
        })
    }
}
