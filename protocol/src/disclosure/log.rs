//! The conversion of an identified project's padded list into the
//! disclosure log domain (PROTOCOL.md §10a, issue 16 item 3): the one-step
//! conversion of §10 (`domain::convert`), blinded by the linker's `β`,
//! which only the log's holder opens.
//!
//! ```text
//!  linker  P_p(x) (padded, shuffled) ─▶ ·(β·k_{L,log}·k_{L,p}⁻¹) ─▶ page 0…n−1 ─▶ hop 1
//!  hop i   verify the header and every earlier step ─▶ ·(k_{i,log}·k_{i,p}⁻¹)  (a key holder of both)
//!                                                      ·k_{i,p}⁻¹  (of the project only)
//!                                                      ·k_{i,log}  (of the log only)
//!          with the binding proof and a chunk proof ─▶ hop i+1 (the last: the holder)
//!  holder  verify every step against the log's committed keys ─▶ ·k_{H,p}⁻¹ (if it holds
//!          one) ─▶ ·β⁻¹ ─▶ Ψ_log(x) = k_log·I(x): one DisclosureRecord {project, day} each
//! ```
//!
//! Every value on the way carries `β` (sealed to the holder) and the
//! linker's `k_{L,log}`, which is never removed: no key holder can run a
//! dictionary over fnr on it, and only the holder sees `Ψ_log`. A hop that
//! is a key holder of one side only applies its one factor, proven with
//! the same binding proof as a conversion whose other key is `1` (its
//! committed key then reads `G`).

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use ed25519_dalek::{Signer as _, SigningKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::{
    bounded::BoundedVec,
    chain,
    dleq::ChunkProof,
    domain::convert::{
        verify_chunk, verify_step, BindingProof, ChunkAt, ChunkStatement, ConversionContext,
        ConversionError, ConversionKey, StepProofs,
    },
    group::WirePoint,
    hash::{frame, framed_sha3},
    manifest::{Ed25519Key, Manifest},
    seal::{hpke_open, hpke_seal, HpkePublicKey, HpkeSecretKey, WrappedKey},
    share::{Domain, Share},
    transcript::{verify_sig, Sig},
    types::{ChunkIndex, HopIndex, ListName, Name, Position, ProjectId},
    v2::chunk_digest,
};

/// Points per page of the log's list.
pub const PAGE: usize = 256;

/// Hops of a log conversion at most (the members besides the linker and
/// the holder).
pub const MAX_HOPS: usize = 64;

/// Domain-separation tags.
pub mod tags {
    /// The linker's signature over a log header.
    pub const HEADER: &[u8] = b"KOBLING-DISCLOSURE-LOG-HEADER";
    /// HPKE `info` of `β` sealed to the log's holder.
    pub const BLINDING: &[u8] = b"KOBLING-DISCLOSURE-LOG-BLINDING";
}

/// A log conversion is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The manifest declares no disclosure log domain, or not this one.
    #[error("the manifest declares no disclosure log domain {0}")]
    UnknownLog(Name),
    /// The header's signature is not the linker's.
    #[error("the disclosure log header is not signed by the linker")]
    BadSignature,
    /// The page is not this member's to step, or comes with the wrong
    /// number of steps.
    #[error("step {step} of the disclosure log list is not {member}'s")]
    NotMyStep {
        /// The step.
        step: usize,
        /// The member asked.
        member: Name,
    },
    /// A member's key in the header is not its committed key.
    #[error("the header's key of {0} is not its committed key")]
    WrongKey(Name),
    /// The header's project key of the holder is not the holder's.
    #[error("the header's project key of the log's holder is not its key")]
    HolderKey,
    /// The hops do not cover every key holder of the log but the linker,
    /// or name one that is no key holder of either side.
    #[error("the hops of the disclosure log list do not cover the log's key holders")]
    Hops,
    /// The page is longer than [`PAGE`], past the list's size, or its
    /// steps' lengths differ.
    #[error("page {0} of the disclosure log list is malformed")]
    Page(u64),
    /// A step's proofs do not verify.
    #[error("step {step} of the disclosure log list: {error}")]
    Step {
        /// The step (1 = the first hop).
        step: usize,
        /// Why.
        error: ConversionError,
    },
    /// `β` does not open with the holder's key.
    #[error("the disclosure log blinding does not open")]
    Blinding,
    /// Too many hops or points for the wire bounds.
    #[error("the disclosure log list is too large for its bounds")]
    TooLarge,
}

/// One hop of the log conversion: a member and its committed keys (`None`
/// where it holds no key of that side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHop {
    /// The member.
    pub member: Name,
    /// `K_{i,p}`, its key of the project.
    pub project_key: Option<WirePoint>,
    /// `K_{i,log}`, its key of the log domain.
    pub log_key: Option<WirePoint>,
}

/// What the linker fixes for a log conversion, signed: which project, into
/// which log, the day recorded, the padded size, the hops in order and `β`
/// sealed to the holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHeader {
    /// The identified project.
    pub project: ProjectId,
    /// The log domain.
    pub log: Name,
    /// The delivery's day (days since 1970-01-01).
    pub day: u32,
    /// The padded size (the number of linked persons).
    pub size: u64,
    /// The hops, in order (the holder is not one).
    pub hops: BoundedVec<LogHop, MAX_HOPS>,
    /// `K_{H,p}` if the log's holder is a key holder of the project (it
    /// removes its own factor last).
    pub holder_project_key: Option<WirePoint>,
    /// `β`, HPKE-sealed to the holder.
    pub blinding: WrappedKey,
}

/// A [`LogHeader`] with the linker's signature over
/// `framed_sha3(HEADER, [postcard(header)])`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedLogHeader {
    /// The header.
    pub header: LogHeader,
    /// The linker's signature.
    pub signature: Sig,
}

/// One hop's step on one page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStep {
    /// The member.
    pub member: Name,
    /// `log_G K_{i,p} = log_{K'} K_{i,log}` (a missing side reads `G`).
    pub binding: BindingProof,
    /// The page after the step.
    pub output: BoundedVec<WirePoint, PAGE>,
    /// The batch proof of `output = k'·input` against `K'`.
    pub proof: ChunkProof,
}

/// One page of the log's list on its way: the linker's values and every
/// step so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    /// The signed header (the same on every page).
    pub header: SignedLogHeader,
    /// The page's index (its first position is `page · PAGE`).
    pub page: u64,
    /// The linker's output for the page.
    pub start: BoundedVec<WirePoint, PAGE>,
    /// The hops' steps so far, in order.
    pub steps: BoundedVec<LogStep, MAX_HOPS>,
}

/// The disclosure log's one message kind (`Message::DisclosureLog`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogMessage {
    /// `00`: a page on its way (the linker → hop 1 → … → the holder).
    Page(Box<LogPage>),
    /// `01`: the holder → the linker: every page of `project` is stored.
    Stored {
        /// The project.
        project: ProjectId,
        /// The log domain.
        log: Name,
    },
}

/// The hops of a log conversion: every key register of the project
/// (`project_registers`, without the linker) and every key holder of the
/// log but the linker, in manifest order, without the log's holder.
pub fn log_hops(manifest: &Manifest, project_registers: &[Name], log: &Name) -> Vec<Name> {
    let Some(spec) = manifest.domain(log) else {
        return Vec::new();
    };
    let log_holders = spec.key_holders(manifest);
    manifest
        .members
        .iter()
        .map(|m| &m.name)
        .filter(|m| **m != spec.holder && Some(*m) != manifest.linker().map(|l| &l.name))
        .filter(|m| project_registers.contains(m) || log_holders.contains(m))
        .cloned()
        .collect()
}

impl LogHeader {
    /// The header's digest, which the linker signs.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        framed_sha3(tags::HEADER, &[&bytes])
    }

    /// Signs the header with the linker's node key.
    pub fn sign(self, linker: &SigningKey) -> SignedLogHeader {
        let signature = Sig(linker.sign(&self.digest()).to_bytes());
        SignedLogHeader {
            header: self,
            signature,
        }
    }

    /// The pages of the list: `size` divided into [`PAGE`]s.
    pub fn pages(&self) -> u64 {
        self.size.div_ceil(PAGE as u64)
    }

    fn target(&self) -> Domain {
        Domain::Register(self.log.clone())
    }

    fn list(&self) -> ListName {
        ListName::of_domain(&self.log)
    }
}

impl SignedLogHeader {
    /// Checks the linker's signature (`linker_key` from the manifest).
    ///
    /// # Errors
    ///
    /// [`LogError::BadSignature`].
    pub fn check(&self, linker_key: &Ed25519Key) -> Result<(), LogError> {
        verify_sig(linker_key, &self.header.digest(), &self.signature)
            .map_err(|()| LogError::BadSignature)
    }
}

/// The HPKE info under which the linker seals `β` to the log's holder
/// (`docs/protocol.md` §20).
pub fn blinding_info(project: &ProjectId, log: &Name) -> Vec<u8> {
    frame(&[tags::BLINDING, project.as_bytes(), log.as_bytes()])
}

/// Seals `β` to the log's holder.
pub fn seal_log_blinding<R: CryptoRng + ?Sized>(
    holder: &HpkePublicKey,
    project: &ProjectId,
    log: &Name,
    beta: &Share,
    rng: &mut R,
) -> WrappedKey {
    hpke_seal(
        holder,
        &blinding_info(project, log),
        &beta.to_secret_bytes(),
        rng,
    )
}

/// The linker's step over the padded list: every point times
/// `β·k_{L,log}·k_{L,p}⁻¹`, cut into pages.
///
/// # Errors
///
/// [`LogError::Page`] naming the page of an invalid point.
pub fn linker_pages(
    padded: &[WirePoint],
    project_share: &Share,
    log_share: &Share,
    beta: &Share,
) -> Result<Vec<Vec<WirePoint>>, LogError> {
    let k = beta.product(log_share).product(&project_share.invert());
    padded
        .chunks(PAGE)
        .enumerate()
        .map(|(i, page)| {
            chain::apply_share(&k, page, (i * PAGE) as u64).map_err(|_| LogError::Page(i as u64))
        })
        .collect()
}

fn basepoint() -> WirePoint {
    WirePoint(RISTRETTO_BASEPOINT_POINT.compress().to_bytes())
}

impl LogPage {
    /// The page's values after the last step so far.
    pub fn current(&self) -> &[WirePoint] {
        self.steps.last().map_or(&self.start[..], |s| &s.output[..])
    }

    fn check_shape(&self) -> Result<(), LogError> {
        let h = &self.header.header;
        let first = self.page.saturating_mul(PAGE as u64);
        let expected = h.size.saturating_sub(first).min(PAGE as u64);
        let bad = || LogError::Page(self.page);
        if self.page >= h.pages() || self.start.len() as u64 != expected {
            return Err(bad());
        }
        if self.steps.len() > h.hops.len()
            || self
                .steps
                .iter()
                .any(|s| s.output.len() != self.start.len())
        {
            return Err(bad());
        }
        Ok(())
    }

    /// Verifies every step so far against the header's keys (the linker's
    /// signature checked by the caller); returns the current values.
    ///
    /// # Errors
    ///
    /// [`LogError::Page`] for a malformed page, [`LogError::Step`] naming
    /// the first step that does not verify.
    pub fn verify_steps(&self) -> Result<&[WirePoint], LogError> {
        self.check_shape()?;
        let h = &self.header.header;
        let (from, to, list) = (Domain::Project(h.project.clone()), h.target(), h.list());
        let mut input = &self.start[..];
        for (i, (step, hop)) in self.steps.iter().zip(h.hops.iter()).enumerate() {
            let bad = |error| LogError::Step { step: i + 1, error };
            if step.member != hop.member {
                return Err(LogError::NotMyStep {
                    step: i + 1,
                    member: step.member.clone(),
                });
            }
            let ctx = ConversionContext {
                from: &from,
                to: &to,
                member: &hop.member,
            };
            let proofs = StepProofs {
                binding: step.binding,
                blinding: None,
            };
            let committed_from = hop.project_key.unwrap_or_else(basepoint);
            let committed_to = hop.log_key.unwrap_or_else(basepoint);
            let key = verify_step(ctx, &committed_from, &committed_to, &list, None, &proofs)
                .map_err(bad)?;
            let statement = ChunkStatement {
                target: &to,
                list: &list,
                step: HopIndex(i as u32 + 1),
                chunk: ChunkIndex(self.page),
                key,
                input: chunk_digest(input),
                output: chunk_digest(&step.output),
                count: input.len() as u64,
            };
            verify_chunk(&statement, input, &step.output, &step.proof).map_err(bad)?;
            input = &step.output[..];
        }
        Ok(input)
    }

    /// Hop `me`'s step: the page must be at `me`'s turn, the header's keys
    /// of `me` its own, every earlier step must verify; then `me` applies
    /// its factor with its binding and chunk proofs.
    ///
    /// # Errors
    ///
    /// [`LogError`].
    pub fn step<R: CryptoRng + ?Sized>(
        &self,
        me: &Name,
        project_share: Option<&Share>,
        log_share: Option<&Share>,
        rng: &mut R,
    ) -> Result<LogStep, LogError> {
        let h = &self.header.header;
        let at = self.steps.len();
        let hop = h.hops.get(at).filter(|hop| hop.member == *me);
        let Some(hop) = hop else {
            return Err(LogError::NotMyStep {
                step: at + 1,
                member: me.clone(),
            });
        };
        if hop.project_key != project_share.map(Share::commitment)
            || hop.log_key != log_share.map(Share::commitment)
            || (hop.project_key.is_none() && hop.log_key.is_none())
        {
            return Err(LogError::WrongKey(me.clone()));
        }
        let input = self.verify_steps()?;
        let (from, to, list) = (Domain::Project(h.project.clone()), h.target(), h.list());
        let ctx = ConversionContext {
            from: &from,
            to: &to,
            member: me,
        };
        let one = Share::one();
        let from_share = project_share.unwrap_or(&one);
        let to_share = log_share.unwrap_or(&one);
        let conversion = ConversionKey::new(ctx, from_share, to_share, rng);
        let binding = *conversion.binding();
        let step = conversion.into_step();
        let (output, proof) = step
            .apply_chunk(
                ChunkAt {
                    target: &to,
                    list: &list,
                    step: HopIndex(at as u32 + 1),
                    chunk: ChunkIndex(self.page),
                    first_position: Position(self.page.saturating_mul(PAGE as u64)),
                },
                input,
                rng,
            )
            .map_err(|error| LogError::Step {
                step: at + 1,
                error,
            })?;
        Ok(LogStep {
            member: me.clone(),
            binding,
            output: BoundedVec::new(output).map_err(|_| LogError::TooLarge)?,
            proof,
        })
    }

    /// The page with one more step.
    ///
    /// # Errors
    ///
    /// [`LogError::TooLarge`] past [`MAX_HOPS`].
    pub fn with_step(&self, step: LogStep) -> Result<LogPage, LogError> {
        let mut steps = self.steps.clone().into_inner();
        steps.push(step);
        Ok(LogPage {
            header: self.header.clone(),
            page: self.page,
            start: self.start.clone(),
            steps: BoundedVec::new(steps).map_err(|_| LogError::TooLarge)?,
        })
    }

    /// The next member to receive the page: the next hop, or `holder`
    /// once every hop stepped.
    pub fn next<'a>(&'a self, holder: &'a Name) -> &'a Name {
        self.header
            .header
            .hops
            .get(self.steps.len())
            .map_or(holder, |h| &h.member)
    }

    /// The holder's last step: every hop stepped and verifies, the hops'
    /// log keys are exactly `log_keys` (the log's committed key holders but
    /// the linker, from its domain transcript); then its own project
    /// factor (`holder_project_share`, which must match the header) and
    /// `β` are removed. Returns `Ψ_log` of every position of the page.
    ///
    /// # Errors
    ///
    /// [`LogError`].
    pub fn finish(
        &self,
        log_keys: &[(Name, WirePoint)],
        holder_project_share: Option<&Share>,
        holder_key: &HpkeSecretKey,
    ) -> Result<Vec<WirePoint>, LogError> {
        let h = &self.header.header;
        if self.steps.len() != h.hops.len() {
            return Err(LogError::Page(self.page));
        }
        let mut named: Vec<(Name, WirePoint)> = h
            .hops
            .iter()
            .filter_map(|hop| hop.log_key.map(|k| (hop.member.clone(), k)))
            .collect();
        let mut wanted = log_keys.to_vec();
        named.sort();
        wanted.sort();
        if named != wanted {
            return Err(LogError::Hops);
        }
        if h.holder_project_key != holder_project_share.map(Share::commitment) {
            return Err(LogError::HolderKey);
        }
        let values = self.verify_steps()?;
        let bytes = hpke_open(holder_key, &blinding_info(&h.project, &h.log), &h.blinding)
            .map_err(|_| LogError::Blinding)?;
        let beta = Share::from_secret_bytes(&bytes).map_err(|_| LogError::Blinding)?;
        let mut k = beta.invert();
        if let Some(s) = holder_project_share {
            k = k.product(&s.invert());
        }
        chain::apply_share(&k, values, self.page.saturating_mul(PAGE as u64))
            .map_err(|_| LogError::Page(self.page))
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
