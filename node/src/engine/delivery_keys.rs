//! A register domain's keys in a project's transcript (PROTOCOL.md §10,
//! issue 15 item 2): the `K_{i,R}` a key holder commits to in a delivery
//! (or any project that keys a list by R) must be the key the domain's
//! own transcript records for it.
//!
//! ```text
//!  key holder i ──Statement(Commitment{i, Register(R), K})──▶ linker
//!  linker: domain transcript of R held here ── K_{i,R} ──┐
//!          K == K_{i,R} ? append : refuse, log (error)  ◀┘
//! ```
//!
//! The project transcript alone only shows that a member used the key it
//! committed to there; without this check a key holder could step a
//! delivery with another scalar than its long-lived share, and the holder
//! would file every row of it under a pseudonym that is not `Ψ_R`.

use kobling_protocol::{
    refusal::RefusalCode,
    share::Domain,
    transcript::{Body, SignedStatement},
    types::Name,
};

use super::{
    error::{not_ready, refuse, Outcome},
    Engine,
};

impl Engine {
    /// Linker: a commitment `from` sent to `K_{i,R}` of register domain R
    /// is the key R's transcript held here records for the member. Any
    /// other statement, and a domain this node holds no key of (so no
    /// transcript of), passes.
    ///
    /// A commitment to another key is refused (`invalid`) and logged at
    /// error level, naming the member and the domain; one that arrives
    /// before the member's domain commitment reached this node waits
    /// (`not-ready`).
    pub(super) fn check_domain_commitment(
        &self,
        from: &Name,
        signed: &SignedStatement,
    ) -> Outcome<()> {
        let Body::Commitment(c) = &signed.statement.body else {
            return Ok(());
        };
        let Domain::Register(r) = &c.domain else {
            return Ok(());
        };
        let project = &signed.statement.project;
        let holds_key = self
            .manifest
            .domain(r)
            .is_some_and(|spec| spec.is_key_holder(&self.manifest, &self.me));
        let state = match self.domain_state(r)? {
            Some(state) => state,
            None if holds_key => {
                return Err(not_ready(format!(
                    "the transcript of domain {r} has not reached {} yet",
                    self.me
                )))
            }
            None => return Ok(()),
        };
        if !state.keys.iter().any(|(m, _)| *m == c.member) {
            tracing::error!(node = %self.me, %project, member = %c.member, %from, domain = %r, "a commitment to a key of a register domain by a member that holds none: refused");
            return Err(refuse(
                RefusalCode::Invalid,
                format!("{} holds no key of domain {r}", c.member),
            ));
        }
        match state.key_of(&c.member) {
            Some(k) if k == c.key => Ok(()),
            Some(_) => {
                tracing::error!(node = %self.me, %project, member = %c.member, %from, domain = %r, "a key holder committed to a key of the domain other than the one in the domain's transcript: refused");
                Err(refuse(
                    RefusalCode::Invalid,
                    format!(
                        "{}'s commitment in {project} is not its key of domain {r} as the domain's transcript records it",
                        c.member
                    ),
                ))
            }
            None => Err(not_ready(format!(
                "{}'s key of domain {r} is not in the domain's transcript held here yet",
                c.member
            ))),
        }
    }
}
