//! [`super::Check::Commitments`] for projects with pseudonymous lists
//! (PROTOCOL.md §10): every key holder of an order's register domain R
//! commits `K_{i,R}` and binds its conversion key `K'_i` to `K_{i,R}` and
//! `K_{i,p}`; a hop of a list from R by such a key holder steps with
//! `K'_i` (the linker: a combined key over `K'_L`).

use std::collections::HashMap;

use super::{fail, Check, Project, VerifyError};
use crate::{
    domain::{converting_domain, verify_binding},
    group::WirePoint,
    share::Domain,
    transcript::body::Body,
    types::{ListName, Name},
};

/// `K_{i,R}` and `K'_i` recorded so far, by (member, domain).
#[derive(Default)]
pub(crate) struct Conversions {
    domain_keys: HashMap<(Name, Name), WirePoint>,
    combined: HashMap<(Name, Name), WirePoint>,
}

impl Conversions {
    /// Takes a register-domain commitment or a conversion binding
    /// (returns `true`); any other body is left to the caller (`false`).
    /// `commitments` holds the project commitments `K_{i,p}` so far.
    pub(crate) fn on_body(
        &mut self,
        body: &Body,
        commitments: &HashMap<&Name, WirePoint>,
        p: &Project<'_>,
        at: Option<u64>,
    ) -> Result<bool, VerifyError> {
        match body {
            Body::Commitment(c) => {
                // The order's own key domain (a delivery's is a register
                // domain) is the caller's.
                let Domain::Register(r) = &c.domain else {
                    return Ok(false);
                };
                if c.domain == p.domain {
                    return Ok(false);
                }
                holds_key(p, r, &c.member, at)?;
                let old = self
                    .domain_keys
                    .insert((c.member.clone(), r.clone()), c.key);
                if old.is_some_and(|k| k != c.key) {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!("{} committed to two keys of domain {r}", c.member),
                    ));
                }
                Ok(true)
            }
            Body::Conversion(c) => {
                holds_key(p, &c.domain, &c.member, at)?;
                let (Some(from), Some(to)) = (
                    self.domain_keys.get(&(c.member.clone(), c.domain.clone())),
                    commitments.get(&c.member),
                ) else {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!(
                            "{} bound a conversion key of domain {} before committing to both keys",
                            c.member, c.domain
                        ),
                    ));
                };
                let k_prime = verify_binding(&p.order.project, c, from, to).map_err(|e| {
                    fail(
                        Check::Commitments,
                        at,
                        format!("{}'s conversion from domain {}: {e}", c.member, c.domain),
                    )
                })?;
                if self
                    .combined
                    .insert((c.member.clone(), c.domain.clone()), k_prime)
                    .is_some()
                {
                    return Err(fail(
                        Check::Commitments,
                        at,
                        format!(
                            "{} bound two conversion keys of domain {}",
                            c.member, c.domain
                        ),
                    ));
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The key `member`'s step over `list` must use: `Some(K'_i)` if the
    /// list is keyed by a domain `member` holds a key of (an error if no
    /// binding of it is recorded yet), `None` for its project key.
    pub(crate) fn expected(
        &self,
        p: &Project<'_>,
        list: &ListName,
        member: &Name,
        at: Option<u64>,
    ) -> Result<Option<WirePoint>, VerifyError> {
        let Some(domain) = converting_domain(p.manifest, p.order, list, member) else {
            return Ok(None);
        };
        self.combined
            .get(&(member.clone(), domain.clone()))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                fail(
                    Check::Commitments,
                    at,
                    format!(
                        "{member} stepped list {list}, keyed by domain {domain}, without a bound conversion key"
                    ),
                )
            })
    }
}

/// `member` is a key holder of domain `r`, and `r` is a domain of the order.
fn holds_key(p: &Project<'_>, r: &Name, member: &Name, at: Option<u64>) -> Result<(), VerifyError> {
    let in_order = p.order.domains().contains(r);
    let holds = p
        .manifest
        .domain(r)
        .is_some_and(|spec| spec.is_key_holder(p.manifest, member));
    if in_order && holds {
        Ok(())
    } else {
        Err(fail(
            Check::Commitments,
            at,
            format!("{member} holds no key of domain {r} in this project"),
        ))
    }
}
