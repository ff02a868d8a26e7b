//! One list attempt's chain as the transcript records it (the owner's
//! list statement, every register hop's record, the linker's), complete:
//! what σ and the backward pass are computed from.

use ed25519_dalek::VerifyingKey;
use kobling_protocol::{
    group::WirePoint,
    project::ProjectView,
    refusal::RefusalCode,
    types::{Digest, ListName, ProjectId},
    v2::{ChainView, HopRecordV2, ListHeader, PassContext},
};

use super::super::error::{not_ready, refuse, Outcome};

/// One list attempt's chain as the transcript records it, complete:
/// what σ and the pass are computed from.
pub(super) struct Chain {
    pub(super) header: ListHeader,
    manifest: Digest,
    pub(super) blinding: Vec<WirePoint>,
    pub(super) owner_list: kobling_protocol::v2::OwnerList,
    pub(super) registers: Vec<HopRecordV2>,
    pub(super) linker: HopRecordV2,
}

impl Chain {
    pub(super) fn of(
        view: &ProjectView<'_>,
        project: &ProjectId,
        list: &ListName,
    ) -> Outcome<Self> {
        let order = view.order().ok_or_else(|| not_ready("no order"))?;
        let l = view
            .v2_list(list)
            .ok_or_else(|| not_ready(format!("list {list} is not announced for chain v2 here")))?;
        let owner_list = l.owner_list.ok_or_else(|| {
            not_ready(format!(
                "list {list}: the owner's list statement is not here"
            ))
        })?;
        if l.hops.len() != view.hops_of(list).len() {
            return Err(not_ready(format!(
                "list {list}: {} of {} hop records are here",
                l.hops.len(),
                view.hops_of(list).len()
            )));
        }
        let (linker, registers) = l
            .hops
            .split_last()
            .ok_or_else(|| not_ready("no hop records"))?;
        Ok(Self {
            header: l.header(super::super::delivery_run::key_domain(view, project)),
            manifest: order.manifest_digest,
            blinding: l.announcement.blinding.to_vec(),
            owner_list: owner_list.clone(),
            registers: registers.iter().map(|r| (*r).clone()).collect(),
            linker: (*linker).clone(),
        })
    }

    pub(super) fn view(&self) -> ChainView<'_> {
        ChainView {
            header: &self.header,
            manifest: self.manifest,
            owner: self.header.list.owner(),
            blinding: &self.blinding,
            owner_list: &self.owner_list,
            hops: &self.registers,
            linker: (&self.linker.member, self.linker.key),
        }
    }

    /// σ and the pass context, after checking that the records chain and
    /// that the linker's record is the chain's last step.
    pub(super) fn context(&self, owner_key: VerifyingKey) -> Outcome<PassContext> {
        let view = self.view();
        let check = |e: kobling_protocol::v2::CheckError| {
            refuse(
                RefusalCode::Check,
                format!("list {}: {e}", self.header.list),
            )
        };
        view.check_linker(&self.linker).map_err(check)?;
        let sigma = view.sigma().map_err(check)?;
        Ok(PassContext {
            sigma,
            owner_key,
            step_keys: view.step_keys(),
        })
    }
}
