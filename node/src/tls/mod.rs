//! Certificates and TLS/QUIC configuration for XFR-over-TLS (RFC 9103) and DNS-over-QUIC
//! (RFC 9250): loading and checking PEM files, SPKI pins, a small cluster CA (`init_ca`,
//! `issue`), and ready-made `rustls`/`quinn` configurations.
//!
//! This module owns certificate files and configuration values only: it opens no socket and
//! starts no task. Every configuration is built with the *ring* provider passed explicitly, so
//! nothing here depends on (or installs) a process-wide default provider, and every
//! configuration speaks TLS 1.3 only.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::pem::{self};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

mod ca;
mod configs;
mod material;

pub use ca::{init_ca, is_ip_literal, issue};
pub use configs::{
    ServerTrust, quic_client_config, quic_server_config, server_name, xot_client_config,
    xot_server_config,
};
pub use material::{
    check_signed_by, load_ca, load_certificates, load_identity, load_pin, spki_pin,
};

/// ALPN identifier of XFR-over-TLS (RFC 9103 section 7.1).
pub const ALPN_XOT: &[u8] = b"dot";
/// ALPN identifier of DNS-over-QUIC (RFC 9250 section 4.1).
pub const ALPN_DOQ: &[u8] = b"doq";

/// Per-stream QUIC receive window. A 1M-record AXFR is tens of megabytes; a window this large
/// keeps one transfer from stalling on flow-control round trips across a WAN.
pub const QUIC_STREAM_RECEIVE_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Per-connection QUIC receive window: room for several transfers at once on one connection
/// (RFC 9250 section 5.4: transfers may run in parallel).
pub const QUIC_CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
/// Concurrent bidirectional streams a peer may open: one per request (RFC 9250 section 4.2).
pub const QUIC_BIDI_STREAMS_MAX: u32 = 100;
/// Keep-alive interval, well under the idle timeout so an idle peer connection survives.
pub const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A connection that has heard nothing for this long is closed.
pub const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

// Checked when compiling: the windows fit 1M-record transfers, several at once.
const _: () = assert!(
    QUIC_STREAM_RECEIVE_WINDOW_BYTES >= 16 * 1024 * 1024
        && QUIC_CONNECTION_RECEIVE_WINDOW_BYTES >= 4 * QUIC_STREAM_RECEIVE_WINDOW_BYTES
        && QUIC_BIDI_STREAMS_MAX >= 100
);

/// Validity of a node certificate made by `issue`.
const NODE_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Validity of a cluster CA made by `init_ca`: long, because replacing it means reissuing
/// every node certificate.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// New certificates start being valid this much in the past, to tolerate clock skew between
/// the machine that issues them and the nodes that check them.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Everything that can go wrong with certificate files and TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A file is not valid PEM.
    #[error("{path} is not valid PEM: {source}")]
    Pem { path: PathBuf, source: pem::Error },
    /// A certificate file holds no certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    /// A certificate in a file cannot be parsed or used.
    #[error("{path} holds an unusable certificate: {source}")]
    BadCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    /// A key file holds no private key.
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    /// A private key is of a kind the crypto provider cannot sign with.
    #[error("{path} holds an unusable private key: {source}")]
    BadKey {
        path: PathBuf,
        source: rustls::Error,
    },
    /// A CA private key cannot be loaded for signing.
    #[error("{path} holds an unusable CA private key: {source}")]
    BadCaKey { path: PathBuf, source: rcgen::Error },
    /// A CA certificate cannot be used to issue certificates.
    #[error("{path} cannot be used as an issuing CA: {source}")]
    BadCaCertificate { path: PathBuf, source: rcgen::Error },
    /// The private key does not belong to the (leaf) certificate.
    #[error("the key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The certificate does not chain to the given CA.
    #[error("{cert} is not signed by the CA in {ca}: {reason}")]
    NotSignedByCa {
        cert: PathBuf,
        ca: PathBuf,
        reason: rustls::Error,
    },
    /// A file that would be written already exists.
    #[error("{path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
    /// Generating a key or a certificate failed.
    #[error("cannot generate {path}: {source}")]
    Generate { path: PathBuf, source: rcgen::Error },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// A name is not a valid DNS name (or IP address, where one is allowed).
    #[error("{name:?} is not a valid DNS name or IP address")]
    InvalidName { name: String },
    /// An SPKI pin is not base64 of a SHA-256 digest.
    #[error("{pin:?} is not an SPKI pin (base64 of a 32-octet SHA-256 digest)")]
    InvalidPin { pin: String },
    /// A pin set is empty, so no server could ever be accepted.
    #[error("no SPKI pin given")]
    NoPins,
    /// rustls refused to build a configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A certificate verifier could not be built (for example from an empty CA set).
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn refused the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A certificate chain (leaf first) and the private key of its leaf.
pub struct Identity {
    /// The leaf certificate, then any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    // The private key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leaf_pin = self.chain.first().map(spki_pin);
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .field("leaf_pin", &leaf_pin)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use rustls::RootCertStore;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::configs::PinVerifier;
    use super::material::provider;
    use super::*;

    /// A CA and two node identities issued by it, in a temporary directory.
    struct Cluster {
        dir: tempfile::TempDir,
        ca: RootCertStore,
        node1: Identity,
        node2: Identity,
    }

    fn cluster(name: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), name).unwrap();
        let (c1, k1) = issue(
            dir.path(),
            "node1.example",
            &["127.0.0.1".to_owned()],
            dir.path(),
        )
        .unwrap();
        let (c2, k2) = issue(dir.path(), "node2.example", &[], dir.path()).unwrap();
        Cluster {
            ca: load_ca(&dir.path().join("ca.crt")).unwrap(),
            node1: load_identity(&c1, &k1).unwrap(),
            node2: load_identity(&c2, &k2).unwrap(),
            dir,
        }
    }

    #[test]
    fn issued_certificates_load_and_chain_to_their_ca() {
        let a = cluster("A");
        let ca_path = a.dir.path().join("ca.crt");
        let cert_path = a.dir.path().join("node1.example.crt");
        check_signed_by(&a.node1, &a.ca, &ca_path, &cert_path).unwrap();
        check_signed_by(&a.node2, &a.ca, &ca_path, &cert_path).unwrap();

        let b = cluster("B");
        let error = check_signed_by(&b.node1, &a.ca, &ca_path, &cert_path).unwrap_err();
        assert!(matches!(error, CertError::NotSignedByCa { .. }), "{error}");
        assert!(error.to_string().contains("ca.crt"), "{error}");
    }

    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let a = cluster("A");
        for file in ["ca.key", "node1.example.key"] {
            let mode = fs::metadata(a.dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn a_key_from_another_certificate_is_a_mismatch() {
        let a = cluster("A");
        let error = load_identity(
            &a.dir.path().join("node1.example.crt"),
            &a.dir.path().join("node2.example.key"),
        )
        .unwrap_err();
        assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        assert!(matches!(
            load_ca(&empty),
            Err(CertError::NoCertificate { .. })
        ));
        let missing = dir.path().join("missing.pem");
        let error = load_ca(&missing).unwrap_err();
        assert!(matches!(error, CertError::Read { .. }));
        assert!(error.to_string().contains("missing.pem"));

        init_ca(dir.path(), "A").unwrap();
        let error = load_identity(&dir.path().join("ca.crt"), &empty).unwrap_err();
        assert!(matches!(error, CertError::NoKey { .. }), "{error}");
    }

    #[test]
    fn existing_files_are_never_overwritten() {
        let a = cluster("A");
        let before = fs::read(a.dir.path().join("ca.key")).unwrap();
        let error = init_ca(a.dir.path(), "again").unwrap_err();
        assert!(matches!(error, CertError::Exists { .. }), "{error}");
        let error = issue(a.dir.path(), "node1.example", &[], a.dir.path()).unwrap_err();
        assert!(matches!(error, CertError::Exists { .. }), "{error}");
        assert_eq!(fs::read(a.dir.path().join("ca.key")).unwrap(), before);
    }

    #[test]
    fn node_names_must_be_dns_names() {
        let a = cluster("A");
        for bad in ["../evil", "a b", "10.0.0.1", ""] {
            let error = issue(a.dir.path(), bad, &[], a.dir.path()).unwrap_err();
            assert!(matches!(error, CertError::InvalidName { .. }), "{bad}");
        }
        let error = issue(
            a.dir.path(),
            "node3.example",
            &["not a name".to_owned()],
            a.dir.path(),
        )
        .unwrap_err();
        assert!(matches!(error, CertError::InvalidName { .. }));
    }

    #[test]
    fn pins_are_base64_sha256_of_the_spki() {
        let a = cluster("A");
        let pin = spki_pin(&a.node1.chain[0]);
        assert_eq!(BASE64.decode(&pin).unwrap().len(), 32);
        assert_ne!(pin, spki_pin(&a.node2.chain[0]));
        let from_file = load_pin(&a.dir.path().join("node1.example.crt")).unwrap();
        assert_eq!(pin, from_file);
        assert_eq!(spki_pin(&CertificateDer::from(vec![1, 2, 3])), "");
        assert!(matches!(
            PinVerifier::new(&["abc".to_owned()], &provider()),
            Err(CertError::InvalidPin { .. })
        ));
        assert!(matches!(
            PinVerifier::new(&[], &provider()),
            Err(CertError::NoPins)
        ));
    }

    /// What the client saw of a successful XoT handshake.
    #[derive(Debug)]
    struct Negotiated {
        alpn: Option<Vec<u8>>,
        version: Option<rustls::ProtocolVersion>,
    }

    /// One TLS connection on loopback: the server answers one byte after its handshake, so a
    /// client certificate the server rejects (which TLS 1.3 reports after the client's
    /// handshake completes) still fails here.
    async fn xot_handshake(
        server: Arc<rustls::ServerConfig>,
        trust: ServerTrust,
        client: Option<&Identity>,
    ) -> Result<Negotiated, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let server_task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
            tls.write_all(b"k").await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())
        });
        let config = xot_client_config(&trust, client).map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = TcpStream::connect(address).await.unwrap();
        let name = trust.server_name().map_err(|e| e.to_string())?;
        let client_side = async {
            let mut tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| e.to_string())?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
            let (_, connection) = tls.get_ref();
            Ok(Negotiated {
                alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
                version: connection.protocol_version(),
            })
        };
        let result = tokio::time::timeout(Duration::from_secs(10), client_side)
            .await
            .map_err(|_| "timed out".to_owned())?;
        let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;
        result
    }

    #[tokio::test]
    async fn xot_with_ca_trust_negotiates_dot_over_tls13() {
        let a = cluster("A");
        let server = xot_server_config(&a.node1, None).unwrap();
        let trust = ServerTrust::Ca {
            roots: a.ca.clone(),
            name: "node1.example".to_owned(),
        };
        let negotiated = xot_handshake(server.clone(), trust, None).await.unwrap();
        assert_eq!(negotiated.alpn.as_deref(), Some(ALPN_XOT));
        assert_eq!(negotiated.version, Some(rustls::ProtocolVersion::TLSv1_3));

        // The IP SAN works too.
        let trust = ServerTrust::Ca {
            roots: a.ca.clone(),
            name: "127.0.0.1".to_owned(),
        };
        xot_handshake(server.clone(), trust, None).await.unwrap();

        let wrong_name = ServerTrust::Ca {
            roots: a.ca.clone(),
            name: "node2.example".to_owned(),
        };
        let error = xot_handshake(server.clone(), wrong_name, None)
            .await
            .unwrap_err();
        assert!(error.contains("not valid for name"), "{error}");

        let b = cluster("B");
        let foreign_ca = ServerTrust::Ca {
            roots: b.ca.clone(),
            name: "node1.example".to_owned(),
        };
        let error = xot_handshake(server, foreign_ca, None).await.unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[tokio::test]
    async fn xot_with_pins() {
        let a = cluster("A");
        let server = xot_server_config(&a.node1, None).unwrap();
        let right = ServerTrust::Pin {
            pins: vec![spki_pin(&a.node2.chain[0]), spki_pin(&a.node1.chain[0])],
            name: "anything.example".to_owned(),
        };
        let negotiated = xot_handshake(server.clone(), right, None).await.unwrap();
        assert_eq!(negotiated.alpn.as_deref(), Some(ALPN_XOT));
        let wrong = ServerTrust::Pin {
            pins: vec![spki_pin(&a.node2.chain[0])],
            name: "node1.example".to_owned(),
        };
        let error = xot_handshake(server, wrong, None).await.unwrap_err();
        assert!(error.contains("PinMismatch"), "{error}");
    }

    #[tokio::test]
    async fn xot_opportunistic_accepts_any_certificate() {
        let b = cluster("B");
        let server = xot_server_config(&b.node1, None).unwrap();
        let trust = ServerTrust::Opportunistic {
            name: "whatever.example".to_owned(),
        };
        let negotiated = xot_handshake(server, trust, None).await.unwrap();
        assert_eq!(negotiated.version, Some(rustls::ProtocolVersion::TLSv1_3));
    }

    #[tokio::test]
    async fn xot_mutual_tls_requires_a_cluster_certificate() {
        let a = cluster("A");
        let b = cluster("B");
        let server = xot_server_config(&a.node1, Some(&a.ca)).unwrap();
        let trust = ServerTrust::Ca {
            roots: a.ca.clone(),
            name: "node1.example".to_owned(),
        };
        let error = xot_handshake(server.clone(), trust.clone(), None)
            .await
            .unwrap_err();
        assert!(error.contains("CertificateRequired"), "{error}");
        let error = xot_handshake(server.clone(), trust.clone(), Some(&b.node2))
            .await
            .unwrap_err();
        assert!(error.contains("UnknownCA"), "{error}");
        let negotiated = xot_handshake(server, trust, Some(&a.node2)).await.unwrap();
        assert_eq!(negotiated.alpn.as_deref(), Some(ALPN_XOT));
    }

    /// One QUIC connection on loopback: the client sends `hello` on a bidirectional stream and
    /// the server echoes it back.
    async fn quic_exchange(
        server: quinn::ServerConfig,
        client: quinn::ClientConfig,
        name: &str,
    ) -> Result<Vec<u8>, String> {
        let server_endpoint =
            quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
        let address: SocketAddr = server_endpoint.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let incoming = server_endpoint.accept().await.ok_or("endpoint closed")?;
            let connection = incoming.await.map_err(|e| e.to_string())?;
            let alpn = connection
                .handshake_data()
                .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|data| data.protocol);
            assert_eq!(alpn.as_deref(), Some(ALPN_DOQ));
            let (mut send, mut receive) =
                connection.accept_bi().await.map_err(|e| e.to_string())?;
            let request = receive.read_to_end(1024).await.map_err(|e| e.to_string())?;
            send.write_all(&request).await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            connection.closed().await;
            Ok::<(), String>(())
        });
        let client_endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let exchange = async {
            let connection = client_endpoint
                .connect_with(client, address, name)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (mut send, mut receive) = connection.open_bi().await.map_err(|e| e.to_string())?;
            send.write_all(b"hello").await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())?;
            let answer = receive
                .read_to_end(1024)
                .await
                .map_err(|e| format!("{e:?}"))?;
            connection.close(0u32.into(), b"done");
            Ok::<_, String>(answer)
        };
        let result = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "timed out".to_owned())?;
        client_endpoint.wait_idle().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), server_task).await;
        result
    }

    #[tokio::test]
    async fn quic_cluster_nodes_talk() {
        let a = cluster("A");
        let server = quic_server_config(&a.node1, &a.ca).unwrap();
        let client = quic_client_config(&a.node2, &a.ca).unwrap();
        let answer = quic_exchange(server, client, "node1.example")
            .await
            .unwrap();
        assert_eq!(answer, b"hello");
    }

    #[tokio::test]
    async fn quic_refuses_a_client_from_a_foreign_ca() {
        let a = cluster("A");
        let b = cluster("B");
        let server = quic_server_config(&a.node1, &a.ca).unwrap();
        // The client trusts A's servers but holds a certificate from B.
        let client = quic_client_config(&b.node2, &a.ca).unwrap();
        let error = quic_exchange(server, client, "node1.example")
            .await
            .unwrap_err();
        // The server closes the connection with the TLS alert unknown_ca (QUIC crypto error).
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[tokio::test]
    async fn quic_refuses_a_server_from_a_foreign_ca() {
        let a = cluster("A");
        let b = cluster("B");
        let server = quic_server_config(&b.node1, &a.ca).unwrap();
        let client = quic_client_config(&a.node2, &a.ca).unwrap();
        let error = quic_exchange(server, client, "node1.example")
            .await
            .unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{error}");
    }

    #[tokio::test]
    async fn quic_checks_the_server_name() {
        let a = cluster("A");
        let server = quic_server_config(&a.node1, &a.ca).unwrap();
        let client = quic_client_config(&a.node2, &a.ca).unwrap();
        let error = quic_exchange(server, client, "node2.example")
            .await
            .unwrap_err();
        assert!(error.contains("not valid for name"), "{error}");
    }
}
