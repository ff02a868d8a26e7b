//! One module per command group.

pub(crate) mod audit;
pub(crate) mod delivery;
pub(crate) mod domain;
pub(crate) mod extract;
pub(crate) mod keys;
pub(crate) mod manifest;
pub(crate) mod node;
pub(crate) mod project;
