//! The key holder's side of a register domain's re-share (PROTOCOL.md
//! §10, "Continuity"), run by `kobling domain reshare` on the key holder's
//! machine, as one of its operators, against the domain's holder.
//!
//! ```text
//!  backup (two operators' passphrases) ─▶ k_old;  K_old must be the member's committed key
//!  keystore: the lost seed ─▶ accept_domain ─▶ k_new   (a keystore still holding k_old is refused)
//!  ConversionKey(R → R, member): k_new·k_old⁻¹, binding log_G K_old = log_{K'} K_new
//!  for each page: ReshareTable ─▶ β·Ψ_R ─▶ convert + batch proof ─▶ ReshareConverted
//!  Reshare entry signed with the member's node key at the holder's head ─▶ ReshareFinish
//! ```
//!
//! `k_old` exists only in this process, for the conversion; the key
//! holder sees only β-blinded values, never a pseudonym.

use ed25519_dalek::SigningKey;
use kobling_keys::{DomainStatus, Keystore, KeystoreError};
use kobling_protocol::{
    bounded::BoundedVec,
    domain::{
        convert::{ChunkAt, ConversionContext, ConversionError, ConversionKey},
        transcript::{
            verify_domain_transcript, DomainBody, DomainEntry, DomainLog, DomainState,
            DomainTranscriptError,
        },
        wire::{DomainAction, DomainRequest, RESHARE_PAGE},
    },
    manifest::Manifest,
    messages::{Message, MAX_ENTRIES_PER_MESSAGE, NONCE_LEN},
    share::{Domain, Share},
    types::{ChunkIndex, HopIndex, ListName, Name, Position, UnixTime},
};
use rand_core::CryptoRng;

/// A re-share could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReshareError {
    /// The holder refused a step.
    #[error("the holder refused ({code}): {detail}")]
    Refused {
        /// The refusal's code.
        code: String,
        /// Its detail.
        detail: String,
    },
    /// The holder answered with something else than the step's answer.
    #[error("unexpected answer from the holder: {0}")]
    Unexpected(&'static str),
    /// The request could not be sent or answered.
    #[error("cannot reach the holder: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The domain's transcript does not verify.
    #[error(transparent)]
    Transcript(#[from] DomainTranscriptError),
    /// The member has no committed key in the transcript.
    #[error("{0} has no committed key in the domain transcript")]
    NotCommitted(Name),
    /// The backup's share is not the member's committed one.
    #[error("the backup does not hold {0}'s committed share")]
    WrongBackup(Name),
    /// The manifest does not name `new` in `old`'s place.
    #[error(
        "the manifest does not name {new} in place of key holder {old}: change the manifest first"
    )]
    NotReplacing {
        /// The key holder to replace.
        old: Name,
        /// The member meant to take its place.
        new: Name,
    },
    /// The keystore still holds the committed share: nothing was lost.
    #[error("this keystore still holds {0}'s committed share: a re-share replaces a lost one")]
    StillHeld(Name),
    /// The keystore failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// A page could not be converted (a point that is not valid).
    #[error(transparent)]
    Conversion(#[from] ConversionError),
}

/// Who re-shares what, and how requests reach the holder.
pub struct Reshare<'a, S> {
    /// The federation manifest.
    pub manifest: &'a Manifest,
    /// The domain.
    pub domain: &'a Name,
    /// The key holder whose share is replaced (the keystore's node).
    pub member: &'a Name,
    /// The retired key holder whose place `member` takes (the manifest
    /// names `member` instead; `old` is then this key holder's share, from
    /// its backup); `None` when `member` lost its own seed.
    pub replaces: Option<&'a Name>,
    /// The operator of `member` who runs it.
    pub operator: &'a SigningKey,
    /// Unix time now, for the requests.
    pub now: UnixTime,
    /// Sends a request to the holder, returns its answers.
    pub send: S,
}

impl<S> std::fmt::Debug for Reshare<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reshare")
            .field("domain", self.domain)
            .field("member", self.member)
            .finish_non_exhaustive()
    }
}

impl<S> Reshare<'_, S>
where
    S: FnMut(Message) -> Result<Vec<Message>, ReshareError>,
{
    /// Runs the re-share: `old` is the member's lost share (from its
    /// two-operator backup), `keystore` the member's keystore (it accepts
    /// the domain afresh). The domain's state after the `Reshare` entry.
    ///
    /// # Errors
    ///
    /// A [`ReshareError`]; the holder keeps its table until the last step.
    pub fn run<R: CryptoRng + ?Sized>(
        mut self,
        keystore: &mut Keystore,
        old: &Share,
        rng: &mut R,
    ) -> Result<DomainState, ReshareError> {
        let (_, state) = self.transcript(rng)?;
        let leaving = self.replaces.unwrap_or(self.member).clone();
        if let Some(old_member) = self.replaces {
            let pending = state
                .replacing
                .as_ref()
                .is_some_and(|r| r.leaving == *old_member && r.joining == *self.member);
            if !pending {
                return Err(ReshareError::NotReplacing {
                    old: old_member.clone(),
                    new: self.member.clone(),
                });
            }
        }
        let committed = state
            .key_of(&leaving)
            .ok_or_else(|| ReshareError::NotCommitted(leaving.clone()))?;
        if old.commitment() != committed {
            return Err(ReshareError::WrongBackup(leaving.clone()));
        }
        let key_domain = Domain::Register(self.domain.clone());
        if keystore.domain_status(&key_domain)? == DomainStatus::Accepted
            && keystore.commitment(&key_domain)? == committed
        {
            return Err(ReshareError::StillHeld(self.member.clone()));
        }
        keystore.accept_domain_with_rng(&key_domain, rng)?;
        let new = keystore.share(&key_domain)?;
        let ctx = ConversionContext {
            from: &key_domain,
            to: &key_domain,
            member: &leaving,
        };
        let step = ConversionKey::new(ctx, old, &new, rng).into_step();
        let binding = step.proofs().binding;
        let mut first = 0u64;
        let total = loop {
            let answer = self.ask(
                DomainAction::ReshareTable {
                    member: leaving.clone(),
                    first,
                },
                rng,
            )?;
            let Message::DomainPoints {
                first: f,
                total,
                points,
                ..
            } = answer
            else {
                return Err(ReshareError::Unexpected(answer.kind()));
            };
            if f != first {
                return Err(ReshareError::Unexpected("a page from another position"));
            }
            if points.is_empty() {
                break total;
            }
            let at = ChunkAt {
                target: &key_domain,
                list: &ListName::of_domain(self.domain),
                step: HopIndex(1),
                chunk: ChunkIndex(first / RESHARE_PAGE as u64),
                first_position: Position(first),
            };
            let (converted, proof) = step.apply_chunk(at, &points, rng)?;
            let n = converted.len() as u64;
            let answer = self.ask(
                DomainAction::ReshareConverted {
                    member: leaving.clone(),
                    first,
                    points: BoundedVec::new(converted).unwrap_or_default(),
                    proof: Box::new(proof),
                    binding: Box::new(binding),
                },
                rng,
            )?;
            if !matches!(answer, Message::Ack { .. }) {
                return Err(ReshareError::Unexpected(answer.kind()));
            }
            first += n;
            if first >= total {
                break total;
            }
        };
        let (entries, _) = self.transcript(rng)?;
        let entry = DomainLog::from_entries(entries)
            .append(
                self.member.clone(),
                keystore.signing_key(),
                DomainBody::Reshare {
                    old_member: leaving.clone(),
                    new_member: self.member.clone(),
                    binding,
                    persons: total,
                },
                Vec::new(),
            )
            .clone();
        let answer = self.ask(
            DomainAction::ReshareFinish {
                entry: Box::new(entry),
            },
            rng,
        )?;
        if !matches!(answer, Message::Ack { .. }) {
            return Err(ReshareError::Unexpected(answer.kind()));
        }
        Ok(self.transcript(rng)?.1)
    }

    /// The holder's transcript, verified.
    fn transcript<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<(Vec<DomainEntry>, DomainState), ReshareError> {
        let mut all: Vec<DomainEntry> = Vec::new();
        loop {
            let answer = self.ask(
                DomainAction::Transcript {
                    first: all.len() as u64,
                },
                rng,
            )?;
            let Message::DomainEntries { entries, .. } = answer else {
                return Err(ReshareError::Unexpected(answer.kind()));
            };
            let full = entries.len() == MAX_ENTRIES_PER_MESSAGE;
            all.extend(entries.into_inner());
            if !full {
                break;
            }
        }
        let state = verify_domain_transcript(self.manifest, self.domain, &all)?;
        Ok((all, state))
    }

    /// One signed request to the holder; its first answer (a refusal is
    /// an error).
    fn ask<R: CryptoRng + ?Sized>(
        &mut self,
        action: DomainAction,
        rng: &mut R,
    ) -> Result<Message, ReshareError> {
        let holder = self
            .manifest
            .domain(self.domain)
            .map(|d| d.holder.clone())
            .ok_or(ReshareError::Unexpected("an undeclared domain"))?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let req = DomainRequest {
            domain: self.domain.clone(),
            action,
            time: self.now,
            node: holder,
            manifest: self.manifest.digest(),
            nonce,
        }
        .sign(self.operator);
        let answer = (self.send)(Message::DomainRequest(req))?
            .into_iter()
            .next()
            .ok_or(ReshareError::Unexpected("nothing"))?;
        match answer {
            Message::Refused { code, detail } => Err(ReshareError::Refused {
                code: code.as_str().to_string(),
                detail: detail.as_str().to_string(),
            }),
            other => Ok(other),
        }
    }
}
