//! The holder's receipt of a delivery into its register domain
//! (PROTOCOL.md §10, issue 15 item 2; `kobling_protocol::receipt`).
//!
//! ```text
//!  DeliveredList (β or β₁ sealed to the holder, D or D₁, the content key
//!  sealed to the holder, the columns)
//!     │ open β (β₁) with this node's HPKE key; β⁻¹·G == D (D₁)
//!     ▼
//!  DeliveredChunk × n  (β·Ψ_R(x_t), sealed item t)   one transaction each
//!     │ Ψ_R(x_t) = β⁻¹·(β·Ψ_R(x_t)); open item t; one row per value row
//!     ▼
//!  domain_rows (domain, Ψ_R, delivery, row, bytes) · TableDigest
//!     ▼
//!  record_delivery: DomainBody::Delivery (the seam to the domain transcript)
//! ```
//!
//! Memory stays flat in the list's size: chunks are consumed one at a time
//! and each is committed before the next is read. A receipt interrupted
//! by a stop starts over (the partial rows are dropped first); a delivery
//! received in full is refused a second time. No fnr reaches the holder:
//! the items carry the extract's variables only.

use kobling_protocol::{
    domain::transcript::DomainBody,
    group::WirePoint,
    receipt::{DeliveryError, DeliveryPlan, Unblinder},
    seal::{
        decode_rows, open_blinding, open_blinding_part, BlindingPart, HpkeSecretKey, SealError,
        SealedItem, WrappedKey,
    },
    transcript::ProjectOrder,
    types::{Digest, Name, Position},
};

use super::{Engine, EngineError};
use crate::store::StoreError;

/// What the holder receives about a delivered list besides its values.
#[derive(Debug, Clone)]
pub struct DeliveredList {
    /// β (or β₁ of a source without a share), sealed to the holder.
    pub blinding: WrappedKey,
    /// The announced `D` (or `D₁`).
    pub commitment: WirePoint,
    /// The list's content key, sealed to the holder.
    pub content_key: WrappedKey,
    /// The variables of the rows (the order's, for the source).
    pub columns: Vec<String>,
}

/// One chunk of a delivered list: the linker's values `β·Ψ_R(x_t)` and the
/// sealed items of the same positions.
#[derive(Debug, Clone)]
pub struct DeliveredChunk {
    /// `β·Ψ_R(x_t)`, in position order.
    pub values: Vec<WirePoint>,
    /// The sealed items of the same positions.
    pub items: Vec<SealedItem>,
}

/// A delivery the holder cannot receive. Nothing of it is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The order is not a delivery this manifest admits.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// This node does not hold the domain.
    #[error("this node is not the holder of domain {0}")]
    NotHolder(Name),
    /// The blinding or the content key does not open with this node's key.
    #[error("a key of the delivery does not open with this node's key")]
    Seal(#[source] SealError),
    /// A chunk's values and items disagree in number.
    #[error("a chunk has {values} values but {items} sealed items")]
    Mismatch {
        /// Values.
        values: usize,
        /// Items.
        items: usize,
    },
    /// A sealed item does not open or decode.
    #[error("position {0}: the sealed item does not open")]
    Item(u64),
    /// The delivery was received in full before.
    #[error("delivery already received")]
    AlreadyReceived,
    /// This node failed (its store).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for ReceiptError {
    fn from(e: StoreError) -> Self {
        ReceiptError::Engine(e.into())
    }
}

impl Engine {
    /// Receives delivery `order` at this node, its domain's holder: opens
    /// the blinding and the content key, then consumes `chunks` in order,
    /// storing each person's rows under `Ψ_R`, and records the delivery.
    /// Returns the record appended for the domain's transcript.
    ///
    /// # Errors
    ///
    /// A [`ReceiptError`]; on any error the delivery's rows are dropped at
    /// the next attempt and no record is written.
    pub fn receive_delivery(
        &mut self,
        order: &ProjectOrder,
        list: &DeliveredList,
        chunks: impl IntoIterator<Item = DeliveredChunk>,
    ) -> Result<DomainBody, ReceiptError> {
        let plan = DeliveryPlan::new(&self.manifest, order)?;
        if plan.spec.holder != self.me {
            return Err(ReceiptError::NotHolder(plan.spec.name.clone()));
        }
        let sk = HpkeSecretKey::from_bytes(*self.keystore.x25519_secret_bytes());
        let (project, source) = (&order.project, &plan.list());
        let beta = if plan.split {
            open_blinding_part(&sk, project, source, BlindingPart::First, &list.blinding)
        } else {
            open_blinding(&sk, project, source, &list.blinding)
        }
        .map_err(ReceiptError::Seal)?;
        let unblinder = Unblinder::new(&beta, &list.commitment)?;
        drop(beta);
        let content = list
            .content_key
            .unwrap(&sk, project, source)
            .map_err(ReceiptError::Seal)?;
        let (domain, delivery) = (plan.spec.name.clone(), plan.delivery);
        self.store.transaction(|tx| -> Result<(), ReceiptError> {
            if tx.has_domain_delivery(&domain, &delivery)? {
                return Err(ReceiptError::AlreadyReceived);
            }
            Ok(tx.drop_partial_delivery(&domain, &delivery)?)
        })?;
        let (mut position, mut row) = (0u64, 0u64);
        for chunk in chunks {
            if chunk.values.len() != chunk.items.len() {
                return Err(ReceiptError::Mismatch {
                    values: chunk.values.len(),
                    items: chunk.items.len(),
                });
            }
            let psi = unblinder.unblind(&chunk.values, position)?;
            self.store.transaction(|tx| -> Result<(), ReceiptError> {
                for (p, item) in psi.iter().zip(&chunk.items) {
                    let rows = content
                        .open_item(project, source, Position(position), item)
                        .ok()
                        .and_then(|plain| decode_rows(&plain).ok())
                        .ok_or(ReceiptError::Item(position))?;
                    row = tx.put_person_rows(&domain, &delivery, row, p, &rows)?;
                    position += 1;
                }
                Ok(())
            })?;
        }
        let record = self
            .store
            .transaction(|tx| tx.table_digest(&domain, &delivery))?
            .finish(&plan);
        self.record_delivery(&domain, &delivery, &list.columns, &record)?;
        tracing::info!(%domain, source = %plan.source, persons = position, rows = row, "delivery received");
        Ok(record)
    }

    /// Records a delivery received in full: the one place a delivery's
    /// `DomainBody::Delivery` is kept (in `domain_deliveries`, until the
    /// domain transcript's own append takes it).
    fn record_delivery(
        &mut self,
        domain: &Name,
        delivery: &Digest,
        columns: &[String],
        record: &DomainBody,
    ) -> Result<(), ReceiptError> {
        self.store.transaction(|tx| -> Result<(), ReceiptError> {
            Ok(tx.put_domain_delivery(domain, delivery, columns, record)?)
        })
    }
}
