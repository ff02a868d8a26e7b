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

/// The runtime of a command that talks to nodes (or is one): multi-threaded,
/// with I/O and timers.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
