//! `kobling delivery order`: an operator of a source register orders a
//! delivery of its list into a register domain (PROTOCOL.md §10,
//! `docs/deliveries.md`).
//!
//! The command builds the [`ProjectOrder`] (one register, the source; its
//! variables; sealed to the holder's HPKE key from the manifest; the
//! trailing [`DeliveryInto`]), checks it as the linker and the auditor do
//! ([`check_delivery_order`]: a domain the manifest declares, a source
//! that is a register and not the domain's holder, a key of an operator of
//! the source) before anything leaves the machine, signs it with the
//! operator's key and submits it to the linker. A delivery needs no
//! access authority's grant: its orderer is an operator of the source.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context};
use kobling_protocol::{
    bounded::{BoundedString, BoundedVec},
    messages::Message,
    receipt::{check_delivery_order, DeliveryInto},
    transcript::{Body, ProjectOrder, RegisterRequest, Signer, Statement},
    types::{Name, ProjectId, UnixTime},
};

use crate::{console::say, daemon::unix_now, keyfile::KeyFile, manifest_file};

/// How long a delivery order stays open for approvals and the chain.
const ORDER_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// What `kobling delivery order` was given.
pub(crate) struct OrderArgs<'a> {
    pub(crate) manifest: &'a Path,
    pub(crate) key: &'a Path,
    pub(crate) source: &'a str,
    pub(crate) domain: &'a str,
    pub(crate) id: &'a str,
    pub(crate) variables: &'a [String],
    pub(crate) test_mode: bool,
}

/// Builds, checks, signs and submits the order; prints `delivery ID
/// ordered`.
pub(crate) fn order(args: &OrderArgs<'_>) -> anyhow::Result<()> {
    let manifest = manifest_file::load(args.manifest)?;
    let key = KeyFile::load(args.key)?;
    let source = Name::new(args.source).context("a source is named as in the manifest")?;
    let domain = Name::new(args.domain).context("a domain is named as in the manifest")?;
    let spec = manifest.domain(&domain).with_context(|| {
        format!("the manifest declares no register domain {domain} (see `[[domains]]`)")
    })?;
    let holder = manifest
        .member(&spec.holder)
        .with_context(|| format!("domain {domain}: its holder is not a member"))?;
    if args.variables.is_empty() {
        bail!("a delivery names its variables (--variables a,b,c)");
    }
    let variables = args
        .variables
        .iter()
        .map(|v| BoundedString::new(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let now = unix_now();
    let order = ProjectOrder {
        project: ProjectId::new(args.id).context("a delivery id is a project id")?,
        title: BoundedString::new(format!("delivery {} from {source} into {domain}", args.id))?,
        legal_basis: BoundedString::new(format!("delivery into register domain {domain}"))?,
        manifest_digest: manifest.digest(),
        linker: manifest
            .linker()
            .map(|l| l.name.clone())
            .context("the manifest names no linker")?,
        registers: BoundedVec::new(vec![RegisterRequest {
            register: source.clone(),
            variables: BoundedVec::new(variables)?,
        }])?,
        cohort: BoundedString::new(source.as_str())?,
        expires: UnixTime(now.0 + ORDER_LIFETIME.as_secs()),
        researcher_signing_key: key.public(),
        researcher_hpke_key: holder.hpke_key,
        test_mode: args.test_mode,
        grant: None,
        delivery: Some(DeliveryInto {
            domain: domain.clone(),
        }),
        pseudonymous: Default::default(),
        identified: None,
    };
    // Refused here, with the reason, before anything is sent: an unknown
    // domain, a source that is no register or is the holder, a key of no
    // operator of the source.
    check_delivery_order(&manifest, &order)
        .with_context(|| format!("delivery {} refused", args.id))?;
    let project = order.project.clone();
    let linker = order.linker.clone();
    let signed = Statement {
        project: project.clone(),
        time: now,
        signer: Signer::Researcher(order.researcher_signing_key),
        body: Body::Order(order),
    }
    .sign(&key.signing);
    let rt = super::runtime()?;
    let replies = rt.block_on(super::project::ask(
        &manifest,
        &linker,
        Message::SubmitOrder(signed),
    ))?;
    match replies.into_iter().next() {
        Some(Message::Ack { .. }) => {}
        Some(Message::Refused { code, detail }) => {
            bail!("delivery {project} refused by {linker} ({code}): {detail}")
        }
        other => bail!(
            "unexpected reply from {linker}: {}",
            other.map_or("nothing", |m| m.kind())
        ),
    }
    say!("delivery {project} ordered");
    Ok(())
}
