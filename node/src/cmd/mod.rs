//! One module per command group.

pub(crate) mod audit;
pub(crate) mod delivery;
pub(crate) mod delivery_order;
pub(crate) mod delivery_status;
pub(crate) mod domain;
pub(crate) mod extract;
pub(crate) mod innsyn;
pub(crate) mod keys;
pub(crate) mod manifest;
pub(crate) mod node;
pub(crate) mod project;
