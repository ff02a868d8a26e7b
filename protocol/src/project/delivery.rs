//! A delivery's duties (PROTOCOL.md §10; `crate::receipt`): the project
//! machinery run for a list sent into register domain R.
//!
//! ```text
//!  source  : two operators approve the extract ─▶ (a key holder: commit K_{S,R})
//!            ─▶ announce once every key holder committed and two operators
//!               of the holder approved ─▶ owner's pass
//!  holder  : two operators approve without an extract; receives the values
//!            the linker pushes (no duty here)
//!  key holders (registers, then the linker): commit K_{i,R} once an operator
//!            approved, without operator action of their own; step the list
//!  linker  : link (one list: a summary of counts), then deliver to the holder
//!  closed  : every member with a part but the holder records its shredding
//!            (of the delivery's working data: R's shares are long-lived)
//! ```

use super::{Duty, ProjectView};
use crate::{
    receipt::DeliveryPlan,
    types::{ListName, Name},
};

impl ProjectView<'_> {
    /// The order's delivery plan, for a delivery that the manifest admits.
    pub fn delivery_plan(&self) -> Option<DeliveryPlan> {
        let order = self.order?;
        order.delivery.as_ref()?;
        DeliveryPlan::new(self.manifest, order).ok()
    }

    /// What `me` must do next in a delivery.
    pub(super) fn delivery_duties(&self, me: &Name, plan: &DeliveryPlan) -> Vec<Duty> {
        let is_linker = self.manifest.linker().is_some_and(|l| l.name == *me);
        let (is_source, is_holder) = (*me == plan.source, *me == plan.spec.holder);
        let commits = plan.commits(me);
        if !(is_linker || is_source || is_holder || commits) {
            return Vec::new();
        }
        if self.closed {
            return if is_holder || self.shredded.contains(me) {
                Vec::new()
            } else {
                vec![Duty::Shred]
            };
        }
        let mut duties = Vec::new();
        let extract = if is_source || is_holder {
            match self.approved_extract(me) {
                Some(extract) => Some(extract),
                None => {
                    return vec![Duty::AwaitApprovals {
                        approvals: self.approvals_of(me),
                    }];
                }
            }
        } else {
            None
        };
        // R's shares are long-lived: a key holder commits its K_{i,R} once
        // any operator approved, without an approval of its own.
        if commits && !self.committed.contains_key(me) && self.approved_by_anyone() {
            duties.push(Duty::Commit);
        }
        if let (true, Some(extract)) = (is_source, extract) {
            let all_committed = plan
                .key_holders
                .iter()
                .all(|m| self.committed.contains_key(m));
            let holder_approved = self.approved_extract(&plan.spec.holder).is_some();
            let mine = ListName::of(me);
            if all_committed
                && holder_approved
                && !self.announced.contains_key(&mine)
                && !self.v2.contains_key(&mine)
            {
                duties.push(Duty::AnnounceList { extract });
            }
        }
        self.v2_step_duties(me, &mut duties);
        if is_linker {
            self.linker_duties(&mut duties);
        }
        duties
    }
}
