//! One module per command group.

pub(crate) mod audit;
pub(crate) mod extract;
pub(crate) mod manifest;
