//! Why [`run`](super::run) could not start or keep the node running.

use std::{net::SocketAddr, path::PathBuf};

use kobling_keys::KeystoreError;

use crate::{
    engine::EngineError,
    net::{endpoint::EndpointError, tls::TlsError},
    private_fs::PrivateFsError,
    store::StoreError,
};

/// A node that could not start: each variant names the step and keeps its
/// cause as the error's source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The node's directory is open to others.
    #[error("the node's directory is not private")]
    PrivateDir(#[source] PrivateFsError),
    /// The keystore did not open (wrong passphrase, missing, corrupt).
    #[error("cannot open the node's keystore")]
    Keystore(#[source] KeystoreError),
    /// The keystore's TLS key names no member of the manifest.
    #[error("this keystore's TLS key is in no member's manifest entry: add the entry `kobling keys init` printed")]
    NotInManifest,
    /// The keystore's TLS identity is unusable.
    #[error("the keystore's TLS identity")]
    Tls(#[source] TlsError),
    /// The identifier mapping file is refused.
    #[error("unusable mapping file {}", path.display())]
    Mapping {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The innsyn extract cannot be read or is not keyed by `fnr`.
    #[error("unusable innsyn extract {}", path.display())]
    InnsynExtract {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The state database did not open.
    #[error("cannot open the node's state database")]
    Store(#[source] StoreError),
    /// No OS randomness for the engine's seed.
    #[error("no OS randomness: {0}")]
    Randomness(getrandom::Error),
    /// The engine did not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A socket given or bound is unusable.
    #[error("{what}")]
    Socket {
        /// Which socket step.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The QUIC endpoint could not listen.
    #[error("cannot listen on {bind}")]
    Listen {
        /// The address.
        bind: SocketAddr,
        /// Why.
        #[source]
        source: EndpointError,
    },
    /// The client side's TLS configuration.
    #[error("client configuration")]
    Client(#[source] TlsError),
    /// An address did not resolve.
    #[error("cannot resolve {address}")]
    Resolve {
        /// The address as written.
        address: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// An address resolved to nothing.
    #[error("no address for {address}")]
    NoAddress {
        /// The address as written.
        address: String,
    },
    /// The metrics listener could not bind.
    #[error("cannot listen for metrics on {address}")]
    Metrics {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::daemon::{run, Options};

    #[test]
    fn a_node_directory_open_to_others_is_a_typed_refusal_before_anything_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let manifest = kobling_protocol::manifest::Manifest {
            federation: "test".into(),
            portals: Vec::new(),
            members: Vec::new(),
            authorities: Vec::new(),
            domains: Vec::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(run(
            dir.path(),
            manifest,
            None,
            &Options::default(),
            async {},
        ));
        match result {
            Err(DaemonError::PrivateDir(PrivateFsError::NotPrivate { mode, .. })) => {
                assert_eq!(mode, 0o755);
            }
            other => panic!("expected PrivateDir(NotPrivate), got {other:?}"),
        }
        // Nothing was created in the refused directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 0);
    }
}
