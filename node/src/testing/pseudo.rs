//! Register domains in a test federation (PROTOCOL.md §10): a
//! `[[domains]]` entry, the holder's `Ψ_R` values computed in the harness
//! from every key holder's keystore (before deliveries exist, this is how a
//! test gets a holder's table), the holder's extract with a `pseudonym`
//! column, and a project run with pseudonymous lists.
//!
//! `Ψ_R(x) = (Π_i k_{i,R})·I(x)` is computed here only: no party of the
//! protocol can (PROTOCOL.md §10, "Inherent limits").

use kobling_keys::Keystore;
use kobling_protocol::{
    bounded::BoundedVec,
    chain,
    domain::{pseudonym_hex, DomainSpec, PseudonymousList},
    group::WirePoint,
    ident::{Identifier, ParseOptions},
    manifest::Ed25519Key,
    share::Domain,
    transcript::{Approval, Body, Entry, ProjectOrder, Signer, Statement},
    types::{Digest, UnixTime},
};
use kobling_sim::population::Extract;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::{authority, name, Federation, Net, ProjectConfig, TestingError};

/// An invalid `pseudonym` field the holder's extract carries where the
/// population's extract has an invalid fnr (counted as `non-hex`).
pub const INVALID_PSEUDONYM: &str =
    "zz00000000000000000000000000000000000000000000000000000000000000";

impl Federation {
    /// Declares register domain `domain` held by `holder`, with the
    /// default key holders (every register and the linker but the holder).
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] if the manifest does not validate.
    pub fn with_domain(mut self, domain: &str, holder: &str) -> Result<Self, TestingError> {
        self.manifest.domains.push(DomainSpec {
            name: name(domain)?,
            holder: name(holder)?,
            key_holders: None,
            kind: Default::default(),
        });
        self.manifest
            .validate()
            .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        Ok(self)
    }

    /// `Ψ_R(x)` of every identifier, from the `Domain::Register(domain)`
    /// shares of every key holder's keystore (accepting the domain in each
    /// keystore that has not yet, with a generator seeded from `seed`).
    ///
    /// # Errors
    ///
    /// A keystore error, or an unknown domain.
    pub fn register_pseudonyms(
        &self,
        domain: &str,
        ids: &[Identifier],
        seed: u64,
    ) -> Result<Vec<WirePoint>, TestingError> {
        let spec = self
            .manifest
            .domain(&name(domain)?)
            .ok_or_else(|| TestingError::Unexpected(format!("no domain {domain}")))?;
        let d = Domain::Register(spec.name.clone());
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut points: Vec<WirePoint> = ids
            .iter()
            .map(|id| WirePoint(id.identity_point().compress().to_bytes()))
            .collect();
        for holder in spec.key_holders(&self.manifest) {
            let mut ks = Keystore::open(self.dir.join(holder.as_str()).join("keys"), None)?;
            ks.accept_domain_with_rng(&d, &mut rng)?;
            points = chain::apply_share(&ks.share(&d)?, &points, 0)
                .map_err(|e| TestingError::Unexpected(e.to_string()))?;
        }
        Ok(points)
    }

    /// The holder's extract of `extract`'s rows, keyed by `Ψ_R` of domain
    /// `domain`: a `pseudonym` column instead of `fnr`; a row whose fnr is
    /// invalid gets [`INVALID_PSEUDONYM`] (so the same rows are excluded).
    ///
    /// # Errors
    ///
    /// As [`register_pseudonyms`](Self::register_pseudonyms).
    pub fn pseudonymous_extract(
        &self,
        extract: &Extract,
        domain: &str,
    ) -> Result<Extract, TestingError> {
        let options = ParseOptions {
            allow_synthetic: true,
        };
        let ids: Vec<Option<Identifier>> = extract
            .rows
            .iter()
            .zip(&extract.owners)
            .map(|((raw, _), owner)| owner.and_then(|_| Identifier::parse(raw, options).ok()))
            .collect();
        let valid: Vec<Identifier> = ids.iter().flatten().copied().collect();
        let mut pseudonyms = self
            .register_pseudonyms(domain, &valid, 0x5053)?
            .into_iter();
        let mut out = extract.clone();
        out.columns[0] = "pseudonym";
        for (row, id) in out.rows.iter_mut().zip(&ids) {
            row.0 = match id {
                Some(_) => pseudonyms
                    .next()
                    .map(|p| pseudonym_hex(&p))
                    .ok_or_else(|| TestingError::Unexpected("pseudonyms ran out".into()))?,
                None => INVALID_PSEUDONYM.to_string(),
            };
        }
        Ok(out)
    }

    /// The order of `config`'s project over `extracts` with the lists of
    /// `pseudonymous` (register, domain) keyed by their domains.
    ///
    /// # Errors
    ///
    /// As [`order`](Self::order).
    pub fn pseudonymous_order(
        &self,
        config: &ProjectConfig,
        extracts: &[&Extract],
        pseudonymous: &[(&str, &str)],
    ) -> Result<ProjectOrder, TestingError> {
        let mut order = self.order(&config.project, &config.cohort, extracts)?;
        let lists = pseudonymous
            .iter()
            .map(|(r, d)| {
                Ok(PseudonymousList {
                    register: name(r)?,
                    domain: name(d)?,
                })
            })
            .collect::<Result<Vec<_>, TestingError>>()?;
        order.pseudonymous =
            BoundedVec::new(lists).map_err(|e| TestingError::Unexpected(e.to_string()))?;
        Ok(order.granted_by(&authority()))
    }

    /// Operator `operator`'s approval of `order` at `register`, a key
    /// holder without a list: no extract (zero digest, no rows, no
    /// columns; the envelope names no file).
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for an unknown register or operator.
    pub fn key_holder_approval(
        &self,
        order: &ProjectOrder,
        order_entry: &Entry,
        register: &str,
        operator: usize,
        now: UnixTime,
    ) -> Result<kobling_protocol::messages::Message, TestingError> {
        let register = name(register)?;
        let key = self.operator_key(&register, operator)?;
        let signed = Statement {
            project: order.project.clone(),
            time: now,
            signer: Signer::Operator {
                register: register.clone(),
                key: Ed25519Key(key.verifying_key().to_bytes()),
            },
            body: Body::Approval(Approval {
                register,
                order: order.digest(),
                extract: Digest::default(),
                rows: 0,
                columns: BoundedVec::default(),
            }),
        }
        .sign(key);
        self.approval_envelope(signed, order_entry, operator, "", now)
    }

    /// Submits `order` (e.g. made by
    /// [`pseudonymous_order`](Self::pseudonymous_order)) and has two
    /// operators of every register with a list approve its extract, and
    /// two of every key holder in `key_holders_only` approve without one
    /// (then [`run_to_delivery`](Self::run_to_delivery) runs it).
    ///
    /// # Errors
    ///
    /// A refused order or approval.
    pub fn approve_pseudonymous(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        extracts: &[&Extract],
        key_holders_only: &[&str],
        config: &ProjectConfig,
    ) -> Result<(), TestingError> {
        let order_entry = self.submit(net, order)?;
        for e in extracts {
            let file = format!("{}-{}.csv", config.project, e.name);
            self.write_extract(e, &file)?;
            for operator in 0..2 {
                self.approve_until_ready(net, e.name, |fed, now| {
                    fed.approval_message(order, &order_entry, e, &file, operator, now)
                })?;
            }
        }
        for r in key_holders_only {
            for operator in 0..2 {
                self.approve_until_ready(net, r, |fed, now| {
                    fed.key_holder_approval(order, &order_entry, r, operator, now)
                })?;
            }
        }
        Ok(())
    }
}
