//! Deliveries into a register domain in a test federation (PROTOCOL.md
//! §10, issue 15 item 2): the order an operator of the source makes, the
//! four approvals (two of the source's operators with the extract, two of
//! the holder's without), and a run until the holder has received it.

use kobling_protocol::{
    bounded::BoundedVec,
    manifest::{Ed25519Key, X25519Key},
    receipt::DeliveryInto,
    transcript::{Body, Entry, ProjectOrder, RegisterRequest},
    types::{Name, ProjectId},
};
use kobling_sim::population::Extract;

use super::{expect_ack, name, order_message, text, Federation, Net, TestingError};
use crate::store::{Store, StoredDelivery};

impl Federation {
    /// Operator 0 of `extract`'s register orders the delivery `id` of
    /// every column of `extract` into domain `domain`.
    ///
    /// # Errors
    ///
    /// [`TestingError::Unexpected`] for an unknown register, domain or
    /// value that does not fit.
    pub fn delivery_order(
        &self,
        id: &str,
        extract: &Extract,
        domain: &str,
    ) -> Result<ProjectOrder, TestingError> {
        let source = name(extract.name)?;
        let spec = self
            .manifest
            .domain(&name(domain)?)
            .ok_or_else(|| TestingError::Unexpected(format!("no domain {domain}")))?;
        let holder = self
            .manifest
            .member(&spec.holder)
            .ok_or_else(|| TestingError::Unexpected("no holder".into()))?;
        let linker = self
            .manifest
            .linker()
            .ok_or_else(|| TestingError::Unexpected("no linker".into()))?;
        let operator = self.operator_key(&source, 0)?;
        let variables = extract.columns[1..]
            .iter()
            .map(|c| text(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProjectOrder {
            project: ProjectId::new(id).map_err(|e| TestingError::Unexpected(e.to_string()))?,
            title: text("a delivery into a register domain")?,
            legal_basis: text("the register's regulation")?,
            manifest_digest: self.manifest.digest(),
            linker: linker.name.clone(),
            registers: BoundedVec::new(vec![RegisterRequest {
                register: source.clone(),
                variables: BoundedVec::new(variables)
                    .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            }])
            .map_err(|e| TestingError::Unexpected(e.to_string()))?,
            cohort: text(source.as_str())?,
            expires: super::OrderTerms::default().expires,
            researcher_signing_key: Ed25519Key(operator.verifying_key().to_bytes()),
            researcher_hpke_key: X25519Key(holder.hpke_key.0),
            test_mode: true,
            grant: None,
            delivery: Some(DeliveryInto {
                domain: spec.name.clone(),
            }),
            pseudonymous: BoundedVec::default(),
            identified: None,
        })
    }

    /// Submits delivery `order` to the linker, signed by the source's
    /// operator 0; returns the linker's answer.
    ///
    /// # Errors
    ///
    /// A network or engine failure.
    pub fn submit_delivery(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
    ) -> Result<Vec<kobling_protocol::messages::Message>, TestingError> {
        let source = &order
            .registers
            .first()
            .ok_or_else(|| TestingError::Unexpected("no source".into()))?
            .register;
        let operator = self.operator_key(source, 0)?;
        net.client(&order.linker, order_message(order, net.now(), operator))
    }

    /// Orders delivery `id` of `extract` into `domain` and has two of the
    /// source's operators approve the extract and two of the holder's
    /// approve without one; returns the order.
    ///
    /// # Errors
    ///
    /// A refused order or approval.
    pub fn order_delivery(
        &self,
        net: &mut Net,
        id: &str,
        extract: &Extract,
        domain: &str,
    ) -> Result<ProjectOrder, TestingError> {
        let order = self.delivery_order(id, extract, domain)?;
        expect_ack("the delivery order", self.submit_delivery(net, &order)?)?;
        self.approve_delivery(net, &order, extract)?;
        Ok(order)
    }

    /// Has two of the source's operators approve submitted delivery
    /// `order` with `extract` and two of the holder's approve without an
    /// extract.
    ///
    /// # Errors
    ///
    /// A refused approval.
    pub fn approve_delivery(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        extract: &Extract,
    ) -> Result<(), TestingError> {
        let id = order.project.as_str();
        let domain = order
            .delivery
            .as_ref()
            .map(|d| d.domain.clone())
            .ok_or_else(|| TestingError::Unexpected("not a delivery".into()))?;
        let entry: Entry = net
            .transcript(&order.linker, &order.project)?
            .into_iter()
            .next()
            .ok_or_else(|| TestingError::Unexpected("the linker holds no order".into()))?;
        let file = format!("{id}-{}.csv", extract.name);
        self.write_extract(extract, &file)?;
        for operator in 0..2 {
            self.approve_until_ready(net, extract.name, |fed, now| {
                fed.approval_message(order, &entry, extract, &file, operator, now)
            })?;
        }
        let holder = self
            .manifest
            .domain(&domain)
            .map(|d| d.holder.clone())
            .ok_or_else(|| TestingError::Unexpected(format!("no domain {domain}")))?;
        for operator in 0..2 {
            self.approve_until_ready(net, holder.as_str(), |fed, now| {
                fed.key_holder_approval(order, &entry, holder.as_str(), operator, now)
            })?;
        }
        Ok(())
    }

    /// Runs until `holder` has received delivery `order` in full into
    /// `domain` (for at most ten virtual minutes); returns what the holder
    /// recorded of it.
    ///
    /// # Errors
    ///
    /// [`TestingError::Timeout`], with the refusals seen, or an engine's
    /// failure.
    pub fn await_delivery(
        &self,
        net: &mut Net,
        order: &ProjectOrder,
        holder: &Name,
    ) -> Result<StoredDelivery, TestingError> {
        let delivery = order
            .delivery_id()
            .ok_or_else(|| TestingError::Unexpected("not a delivery".into()))?;
        let domain = order
            .delivery
            .as_ref()
            .map(|d| d.domain.clone())
            .ok_or_else(|| TestingError::Unexpected("not a delivery".into()))?;
        let mut found = None;
        let done = net.run_until(600_000, |net| {
            found = net
                .engine(holder)?
                .received_deliveries(&domain)?
                .into_iter()
                .find(|d| d.delivery == delivery);
            Ok(found.is_some())
        });
        if let Err(TestingError::Timeout(ms)) = done {
            let closure = net
                .transcript(&order.linker, &order.project)?
                .into_iter()
                .find_map(|e| match e.signed.statement.body {
                    Body::Closure(c) => Some(c.reason.to_string()),
                    _ => None,
                });
            return Err(TestingError::Unexpected(format!(
                "delivery {} not received in {ms} ms (closure: {closure:?}); refusals: {:?}",
                order.project,
                net.refusals()
            )));
        }
        done?;
        found.ok_or_else(|| TestingError::Unexpected("no delivery".into()))
    }
}

impl Federation {
    /// The holder's receipt of delivery `order` in progress, as its
    /// `domain_receipts` row says (read from `holder`'s directory): the
    /// next position and row to store; `None` before the header and once
    /// the delivery is received in full.
    ///
    /// # Errors
    ///
    /// [`TestingError::Store`], or [`TestingError::Unexpected`] if `order`
    /// is not a delivery.
    pub fn receipt_progress(
        &self,
        holder: &str,
        order: &ProjectOrder,
    ) -> Result<Option<(u64, u64)>, TestingError> {
        let (Some(into), Some(delivery)) = (&order.delivery, order.delivery_id()) else {
            return Err(TestingError::Unexpected("not a delivery".into()));
        };
        let mut store = Store::open(&self.dir.join(holder))?;
        Ok(store.transaction(|tx| tx.receipt(&into.domain, &delivery))?)
    }
}
