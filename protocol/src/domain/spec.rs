//! A register domain as the manifest declares it (PROTOCOL.md §10).
//!
//! ```toml
//! [[domains]]
//! name = "RESEPT"
//! holder = "RESEPT"
//! key_holders = ["NPR", "KPR", "SSB", "LINKER"]   # optional
//! ```
//!
//! Without `key_holders` the key holders are every register and the
//! linker, except the holder. Either way they are used in manifest order
//! with the linker last (the chain order of a delivery into the domain).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::{
    manifest::{Manifest, Role},
    share::Domain,
    types::Name,
};

/// One `[[domains]]` entry of the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSpec {
    /// The domain's name (its key derivation uses `Domain::Register(name)`).
    pub name: Name,
    /// The register that stores data under the domain's pseudonyms.
    pub holder: Name,
    /// The key holders as written, if written (`None`: the default).
    #[serde(default)]
    pub key_holders: Option<Vec<Name>>,
    /// What the domain is for: a register's data (the default), or the
    /// federation's disclosure log (PROTOCOL.md §10a), `kind =
    /// "disclosure-log"` in TOML.
    #[serde(default)]
    pub kind: DomainKind,
}

/// What a register domain is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DomainKind {
    /// A register's data, keyed by `Ψ_R` (postcard `00`).
    #[default]
    Register,
    /// The disclosure log of identified projects (postcard `01`): its
    /// holder keeps one `DisclosureRecord` per converted value and
    /// answers innsyn with them; nothing is delivered into it.
    DisclosureLog,
}

/// A `[[domains]]` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainSpecError {
    /// Two domains share a name.
    #[error("domain {0} is declared twice")]
    DuplicateDomain(Name),
    /// The domain's name is another member's name.
    #[error("domain {domain}: its name is the name of member {domain}, which is not its holder (a domain may share its name only with its holder)")]
    NameClash {
        /// The domain.
        domain: Name,
    },
    /// The holder is not a member.
    #[error("domain {domain}: holder {holder} is not a member of the federation")]
    UnknownHolder {
        /// The domain.
        domain: Name,
        /// The holder named.
        holder: Name,
    },
    /// The holder is the linker.
    #[error(
        "domain {domain}: holder {holder} is the linker; a domain's holder must be a register"
    )]
    LinkerHolder {
        /// The domain.
        domain: Name,
        /// The holder named.
        holder: Name,
    },
    /// A key holder is not a member.
    #[error("domain {domain}: key holder {member} is not a member of the federation")]
    UnknownKeyHolder {
        /// The domain.
        domain: Name,
        /// The key holder named.
        member: Name,
    },
    /// A key holder is listed twice.
    #[error("domain {domain}: key holder {member} is listed twice")]
    DuplicateKeyHolder {
        /// The domain.
        domain: Name,
        /// The key holder named twice.
        member: Name,
    },
    /// The holder is among its own domain's key holders.
    #[error("domain {domain}: the holder {holder} must not be a key holder of its own domain")]
    HolderIsKeyHolder {
        /// The domain.
        domain: Name,
        /// The holder.
        holder: Name,
    },
    /// The linker is not a key holder.
    #[error("domain {domain}: the key holders must include the linker")]
    LinkerMissing {
        /// The domain.
        domain: Name,
    },
    /// No register holds a share: the linker alone would hold `k_R`.
    #[error("domain {domain}: at least one register besides the linker must be a key holder")]
    TooFewKeyHolders {
        /// The domain.
        domain: Name,
    },
    /// A second domain is declared `kind = "disclosure-log"`.
    #[error("domain {domain}: the federation has one disclosure log, and {first} is it already")]
    SecondDisclosureLog {
        /// The second log declared.
        domain: Name,
        /// The first.
        first: Name,
    },
}

impl DomainSpec {
    /// The key domain of this register domain: `Domain::Register(name)`.
    pub fn domain(&self) -> Domain {
        Domain::Register(self.name.clone())
    }

    /// The key holders in chain order: the registers among them in
    /// manifest order, then the linker. Members the manifest does not know
    /// are left out (a validated manifest has none).
    pub fn key_holders(&self, manifest: &Manifest) -> Vec<Name> {
        let listed = |n: &Name| match &self.key_holders {
            Some(list) => list.contains(n),
            None => *n != self.holder,
        };
        let mut out: Vec<Name> = manifest
            .registers()
            .map(|m| &m.name)
            .filter(|n| listed(n))
            .cloned()
            .collect();
        if let Some(l) = manifest.linker() {
            if self.key_holders.is_none() || listed(&l.name) {
                out.push(l.name.clone());
            }
        }
        out
    }

    /// Whether `member` is a key holder of this domain.
    pub fn is_key_holder(&self, manifest: &Manifest, member: &Name) -> bool {
        self.key_holders(manifest).contains(member)
    }

    fn validate(&self, manifest: &Manifest) -> Result<(), DomainSpecError> {
        let domain = || self.name.clone();
        if self.name != self.holder && manifest.member(&self.name).is_some() {
            return Err(DomainSpecError::NameClash { domain: domain() });
        }
        let holder =
            manifest
                .member(&self.holder)
                .ok_or_else(|| DomainSpecError::UnknownHolder {
                    domain: domain(),
                    holder: self.holder.clone(),
                })?;
        if holder.role == Role::Linker {
            return Err(DomainSpecError::LinkerHolder {
                domain: domain(),
                holder: self.holder.clone(),
            });
        }
        if let Some(list) = &self.key_holders {
            let mut seen = HashSet::new();
            for member in list {
                if manifest.member(member).is_none() {
                    return Err(DomainSpecError::UnknownKeyHolder {
                        domain: domain(),
                        member: member.clone(),
                    });
                }
                if !seen.insert(member) {
                    return Err(DomainSpecError::DuplicateKeyHolder {
                        domain: domain(),
                        member: member.clone(),
                    });
                }
                if *member == self.holder {
                    return Err(DomainSpecError::HolderIsKeyHolder {
                        domain: domain(),
                        holder: self.holder.clone(),
                    });
                }
            }
        }
        let holders = self.key_holders(manifest);
        let linker = manifest.linker().map(|l| &l.name);
        if linker.is_none_or(|l| !holders.contains(l)) {
            return Err(DomainSpecError::LinkerMissing { domain: domain() });
        }
        if holders.len() < 2 {
            return Err(DomainSpecError::TooFewKeyHolders { domain: domain() });
        }
        Ok(())
    }
}

/// Checks every `[[domains]]` entry of a manifest whose members are valid.
///
/// # Errors
///
/// The first [`DomainSpecError`] found, in declaration order.
pub fn validate_domains(manifest: &Manifest) -> Result<(), DomainSpecError> {
    let mut names = HashSet::new();
    let mut log: Option<&Name> = None;
    for d in &manifest.domains {
        if !names.insert(&d.name) {
            return Err(DomainSpecError::DuplicateDomain(d.name.clone()));
        }
        d.validate(manifest)?;
        if d.kind == DomainKind::DisclosureLog {
            if let Some(first) = log {
                return Err(DomainSpecError::SecondDisclosureLog {
                    domain: d.name.clone(),
                    first: first.clone(),
                });
            }
            log = Some(&d.name);
        }
    }
    Ok(())
}

/// A project's use of register domains that cannot be admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainUseError {
    /// The domain is not declared in the manifest.
    #[error("no register domain {0} is declared in the manifest")]
    UnknownDomain(Name),
    /// A pseudonymous list comes from a domain whose holder does not take
    /// part in the project.
    #[error("a list from domain {domain} needs its holder {holder} among the project's registers")]
    HolderMissing {
        /// The domain.
        domain: Name,
        /// Its holder.
        holder: Name,
    },
    /// A participant is not a register of the manifest.
    #[error("{0} is not a register of the manifest")]
    UnknownRegister(Name),
    /// The order keys a register's list by a domain that register does not
    /// hold.
    #[error("the order keys {register}'s list by domain {domain}, whose holder is {holder}: only a domain's holder has a pseudonymous list in it")]
    NotTheHolder {
        /// The register named.
        register: Name,
        /// The domain.
        domain: Name,
        /// The domain's holder.
        holder: Name,
    },
    /// The order keys a list by the disclosure log's domain: the log's
    /// records are never a project's list (they would link disclosures
    /// to data).
    #[error("the order keys {register}'s list by domain {domain}, the disclosure log: its records are never a list")]
    DisclosureLog {
        /// The register named.
        register: Name,
        /// The domain.
        domain: Name,
    },
    /// The order keys a list by a domain for a register that is not among
    /// its registers.
    #[error(
        "the order names a pseudonymous list of {0}, which is not among the project's registers"
    )]
    NotAParticipant(Name),
    /// The order names a register's pseudonymous list twice.
    #[error("the order names {0}'s pseudonymous list twice")]
    DuplicateList(Name),
}

impl Manifest {
    /// The domain called `name`.
    pub fn domain(&self, name: &Name) -> Option<&DomainSpec> {
        self.domains.iter().find(|d| &d.name == name)
    }

    /// The federation's disclosure log domain, if it declares one (its
    /// holder is a register, never the linker: `validate_domains`).
    pub fn disclosure_log(&self) -> Option<&DomainSpec> {
        self.domains
            .iter()
            .find(|d| d.kind == DomainKind::DisclosureLog)
    }

    /// The key holders of a project whose registers are `participants` and
    /// which has a pseudonymous list from each domain in `domains`
    /// (PROTOCOL.md §10): the participants and every key holder of each
    /// such domain (even one without a list of its own), in manifest
    /// order, then the linker. No share of R is left unmatched by a share
    /// of the project.
    ///
    /// # Errors
    ///
    /// A [`DomainUseError`]: an unknown domain or register, or a domain
    /// whose holder is not a participant.
    pub fn project_key_holders(
        &self,
        participants: &[Name],
        domains: &[Name],
    ) -> Result<Vec<Name>, DomainUseError> {
        for p in participants {
            if !self.registers().any(|m| &m.name == p) {
                return Err(DomainUseError::UnknownRegister(p.clone()));
            }
        }
        let mut needed: Vec<&Name> = participants.iter().collect();
        for d in domains {
            let spec = self
                .domain(d)
                .ok_or_else(|| DomainUseError::UnknownDomain(d.clone()))?;
            if !participants.contains(&spec.holder) {
                return Err(DomainUseError::HolderMissing {
                    domain: d.clone(),
                    holder: spec.holder.clone(),
                });
            }
            let holders = spec.key_holders(self);
            for h in holders {
                if let Some(m) = self.member(&h) {
                    needed.push(&m.name);
                }
            }
        }
        let mut out: Vec<Name> = self
            .registers()
            .map(|m| &m.name)
            .filter(|n| needed.contains(n))
            .cloned()
            .collect();
        if let Some(l) = self.linker() {
            out.push(l.name.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        fixtures::manifest_of,
        manifest::{tests::member, ManifestError},
    };

    fn n(s: &str) -> Name {
        Name::new(s).expect("valid")
    }

    fn manifest(domains: Vec<DomainSpec>) -> Manifest {
        manifest_of(
            vec![
                member("NPR", Role::Register, 1, 2),
                member("KPR", Role::Register, 2, 2),
                member("RESEPT", Role::Register, 3, 2),
                member("LINKER", Role::Linker, 4, 0),
                member("SSB", Role::Register, 5, 2),
            ],
            domains,
        )
    }

    fn spec(name: &str, holder: &str, key_holders: Option<&[&str]>) -> DomainSpec {
        DomainSpec {
            name: n(name),
            holder: n(holder),
            key_holders: key_holders.map(|l| l.iter().map(|s| n(s)).collect()),
            kind: Default::default(),
        }
    }

    #[test]
    fn default_key_holders_are_every_register_but_the_holder_then_the_linker() {
        let m = manifest(vec![spec("RESEPT", "RESEPT", None)]);
        assert_eq!(m.validate(), Ok(()));
        let d = m.domain(&n("RESEPT")).expect("declared");
        assert_eq!(
            d.key_holders(&m),
            vec![n("NPR"), n("KPR"), n("SSB"), n("LINKER")]
        );
        assert!(!d.is_key_holder(&m, &n("RESEPT")));
        assert_eq!(d.domain(), Domain::Register(n("RESEPT")));
    }

    #[test]
    fn listed_key_holders_follow_manifest_order_with_the_linker_last() {
        let m = manifest(vec![spec("IPLOS", "SSB", Some(&["LINKER", "KPR", "NPR"]))]);
        assert_eq!(m.validate(), Ok(()));
        let d = m.domain(&n("IPLOS")).expect("declared");
        assert_eq!(d.key_holders(&m), vec![n("NPR"), n("KPR"), n("LINKER")]);
        assert!(!d.is_key_holder(&m, &n("RESEPT")));
    }

    #[test]
    fn every_broken_domain_is_refused_with_its_reason() {
        let cases: Vec<(DomainSpec, DomainSpecError)> = vec![
            (
                spec("R", "NOBODY", None),
                DomainSpecError::UnknownHolder {
                    domain: n("R"),
                    holder: n("NOBODY"),
                },
            ),
            (
                spec("R", "LINKER", None),
                DomainSpecError::LinkerHolder {
                    domain: n("R"),
                    holder: n("LINKER"),
                },
            ),
            (
                spec("R", "RESEPT", Some(&["NPR", "GHOST", "LINKER"])),
                DomainSpecError::UnknownKeyHolder {
                    domain: n("R"),
                    member: n("GHOST"),
                },
            ),
            (
                spec("R", "RESEPT", Some(&["NPR", "NPR", "LINKER"])),
                DomainSpecError::DuplicateKeyHolder {
                    domain: n("R"),
                    member: n("NPR"),
                },
            ),
            (
                spec("R", "RESEPT", Some(&["NPR", "RESEPT", "LINKER"])),
                DomainSpecError::HolderIsKeyHolder {
                    domain: n("R"),
                    holder: n("RESEPT"),
                },
            ),
            (
                spec("R", "RESEPT", Some(&["NPR", "KPR"])),
                DomainSpecError::LinkerMissing { domain: n("R") },
            ),
            (
                spec("R", "RESEPT", Some(&["LINKER"])),
                DomainSpecError::TooFewKeyHolders { domain: n("R") },
            ),
            (
                spec("NPR", "RESEPT", None),
                DomainSpecError::NameClash { domain: n("NPR") },
            ),
        ];
        for (s, want) in cases {
            let m = manifest(vec![s]);
            assert_eq!(m.validate(), Err(ManifestError::Domain(want.clone())));
            // The message names the domain and what is wrong.
            assert!(want.to_string().starts_with("domain "), "{want}");
        }
        let twice = manifest(vec![spec("R", "RESEPT", None), spec("R", "SSB", None)]);
        assert_eq!(
            twice.validate(),
            Err(ManifestError::Domain(DomainSpecError::DuplicateDomain(n(
                "R"
            ))))
        );
    }

    #[test]
    fn every_key_holder_of_a_domain_is_a_key_holder_of_a_project_using_it() {
        let m = manifest(vec![
            spec("RESEPT", "RESEPT", Some(&["NPR", "SSB", "LINKER"])),
            spec("IPLOS", "SSB", Some(&["KPR", "LINKER"])),
        ]);
        assert_eq!(m.validate(), Ok(()));
        // NPR and RESEPT's pseudonymous list: SSB holds a share of RESEPT,
        // so it is a key holder of the project without a list of its own.
        assert_eq!(
            m.project_key_holders(&[n("NPR"), n("RESEPT")], &[n("RESEPT")]),
            Ok(vec![n("NPR"), n("RESEPT"), n("SSB"), n("LINKER")])
        );
        // Without a pseudonymous list, only the participants.
        assert_eq!(
            m.project_key_holders(&[n("NPR"), n("KPR")], &[]),
            Ok(vec![n("NPR"), n("KPR"), n("LINKER")])
        );
        assert_eq!(
            m.project_key_holders(&[n("NPR")], &[n("RESEPT")]),
            Err(DomainUseError::HolderMissing {
                domain: n("RESEPT"),
                holder: n("RESEPT")
            })
        );
        assert_eq!(
            m.project_key_holders(&[n("NPR")], &[n("GHOST")]),
            Err(DomainUseError::UnknownDomain(n("GHOST")))
        );
        assert_eq!(
            m.project_key_holders(&[n("LINKER")], &[]),
            Err(DomainUseError::UnknownRegister(n("LINKER")))
        );
    }

    #[test]
    fn domains_are_part_of_the_manifest_digest() {
        let plain = manifest(vec![]);
        let with = manifest(vec![spec("RESEPT", "RESEPT", None)]);
        let listed = manifest(vec![spec(
            "RESEPT",
            "RESEPT",
            Some(&["NPR", "KPR", "SSB", "LINKER"]),
        )]);
        assert_ne!(plain.digest(), with.digest());
        // The same key holders written out are still a different manifest
        // text, and a different digest: the digest is over what is written.
        assert_ne!(with.digest(), listed.digest());
        let bytes = postcard::to_allocvec(&with).expect("encode");
        assert_eq!(
            postcard::from_bytes::<Manifest>(&bytes).expect("decode"),
            with
        );
    }
}
