//! A client that speaks the wire protocol itself (QUIC on 127.0.0.1, no
//! certificate, the length-prefixed frames of `node/src/net/frame.rs`), for
//! attack tests that send messages the `kobling` commands never would: a
//! captured request again, a request for another node, an envelope a man
//! in the middle rewrote, an order without an authority's signature.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use kobling_protocol::{
    manifest::Manifest,
    messages::{decode, encode, Message, Request, NONCE_LEN},
    types::{Name, ProjectId},
};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

/// This client does not check who it talks to (it is the attacker).
#[derive(Debug)]
pub(crate) struct AnyServer(rustls::crypto::WebPkiSupportedAlgorithms);

/// A verifier that accepts any server's certificate (TLS 1.3 signatures
/// still checked), for the attacker's and the strangers' clients.
pub(crate) fn any_server() -> Arc<AnyServer> {
    Arc::new(AnyServer(
        rustls::crypto::ring::default_provider().signature_verification_algorithms,
    ))
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A client configuration with no certificate that accepts any server.
pub(crate) fn client_config() -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(any_server())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"kobling/1".to_vec()];
    quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).expect("QUIC TLS")))
}

/// Sends `msg` to `member` of `manifest` on a new connection and returns
/// every reply frame (at most 30 s).
pub(crate) fn send(manifest: &Manifest, member: &str, msg: &Message) -> Vec<Message> {
    let addr: SocketAddr = manifest
        .members
        .iter()
        .find(|m| m.name.as_str() == member)
        .expect("member")
        .address
        .parse()
        .expect("address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        endpoint.set_default_client_config(client_config());
        let exchange = async {
            let conn = endpoint
                .connect(addr, "kobling.invalid")
                .expect("connect")
                .await
                .expect("handshake");
            let (mut tx, mut rx) = conn.open_bi().await.expect("stream");
            let body = encode(msg);
            tx.write_all(&(body.len() as u32).to_le_bytes())
                .await
                .expect("write");
            tx.write_all(&body).await.expect("write");
            tx.finish().expect("finish");
            let mut replies = Vec::new();
            loop {
                let mut len = [0u8; 4];
                if rx.read_exact(&mut len).await.is_err() {
                    break;
                }
                let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
                rx.read_exact(&mut body).await.expect("a whole frame");
                replies.push(decode(&body).expect("a message"));
            }
            conn.close(0u32.into(), b"");
            replies
        };
        let replies = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .expect("an answer within 30 s");
        endpoint.wait_idle().await;
        replies
    })
}

/// The signing key of a `kobling keys researcher|operator|authority` file.
pub(crate) fn signing_key(path: &Path) -> SigningKey {
    let text = std::fs::read_to_string(path).expect("key file");
    let table: toml::Table = toml::from_str(&text).expect("toml");
    let hex_key = table["signing_key"].as_str().expect("signing_key");
    let bytes: [u8; 32] = hex::decode(hex_key)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    SigningKey::from_bytes(&bytes)
}

/// The manifest at `path`.
pub(crate) fn manifest(path: &Path) -> Manifest {
    toml::from_str(&std::fs::read_to_string(path).expect("manifest")).expect("toml")
}

/// A request for `node`, now, with a fresh nonce (as the commands make).
pub(crate) fn request(
    manifest: &Manifest,
    node: &str,
    project: &str,
    action: kobling_protocol::messages::Action,
) -> Request {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("randomness");
    Request {
        project: ProjectId::new(project).expect("valid"),
        action,
        time: kobling_node::daemon::unix_now(),
        node: Name::new(node).expect("valid"),
        manifest: manifest.digest(),
        nonce,
    }
}

/// A federation of node processes (`common::setup`) as the raw client's
/// attack tests use it: the running nodes, the manifest, and the keys of
/// the files in the federation's directory.
pub(crate) struct Fixture {
    pub(crate) s: crate::common::Setup,
    /// Kept: dropping it stops the nodes.
    pub(crate) nodes: crate::common::Nodes,
    pub(crate) manifest: Manifest,
}

impl Fixture {
    /// Five node processes on 127.0.0.1 with a population of `persons`.
    pub(crate) fn start(persons: usize) -> Self {
        let (s, nodes) = crate::common::setup(persons);
        let manifest = manifest(&s.manifest);
        Self { s, nodes, manifest }
    }

    /// The federation's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.s.dir.path()
    }

    /// The signing key of the key file `file` in the federation's directory
    /// (`NPR-operator-1.key`, `authority.key`, …) or at its path.
    pub(crate) fn key(&self, file: impl AsRef<Path>) -> SigningKey {
        signing_key(&self.dir().join(file))
    }

    /// [`send`] to `member` of this federation.
    pub(crate) fn send(&self, member: &str, msg: &Message) -> Vec<Message> {
        send(&self.manifest, member, msg)
    }

    /// [`request`] for `node` of this federation.
    pub(crate) fn request(
        &self,
        node: &str,
        project: &str,
        action: kobling_protocol::messages::Action,
    ) -> Request {
        request(&self.manifest, node, project, action)
    }

    /// Waits (at most a minute each) until every member's node has set up
    /// its state database.
    pub(crate) fn wait_started(&self) {
        for m in crate::common::MEMBERS {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !has_tables(&self.dir().join(m)) {
                assert!(std::time::Instant::now() < deadline, "{m} never started");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Whether the node in `dir` has set up its state database.
fn has_tables(dir: &Path) -> bool {
    rusqlite::Connection::open_with_flags(
        dir.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|db| {
        db.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'requests'",
            [],
            |r| r.get::<_, i64>(0),
        )
    })
    .is_ok_and(|n| n == 1)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> u64 {
    kobling_node::daemon::unix_now().0
}
