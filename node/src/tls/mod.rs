//! Certificates and TLS/QUIC configuration for XFR-over-TLS (RFC 9103) and DNS-over-QUIC
//! (RFC 9250): loading and checking PEM files, SPKI pins, a small cluster CA (`init_ca`,
//! `issue`), and ready-made `rustls`/`quinn` configurations.
//!
//! This module owns certificate files and configuration values only: it opens no socket and
//! starts no task. Every configuration is built with the *ring* provider passed explicitly, so
//! nothing here depends on (or installs) a process-wide default provider, and every
//! configuration speaks TLS 1.3 only.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

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

/// The crypto provider behind every configuration here, chosen explicitly so no process-wide
/// default is needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file (at least one).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Loads a PEM certificate chain (leaf first) and its PEM private key, and checks that the key
/// belongs to the leaf certificate.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, CertError> {
    let chain = load_certificates(cert)?;
    let key_bytes = read(key)?;
    let private_key = match PrivateKeyDer::from_pem_slice(&key_bytes) {
        Ok(private_key) => private_key,
        Err(pem::Error::NoItemsFound) => {
            return Err(CertError::NoKey {
                path: key.to_owned(),
            });
        }
        Err(source) => {
            return Err(CertError::Pem {
                path: key.to_owned(),
                source,
            });
        }
    };
    let signing_key = provider()
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|source| CertError::BadKey {
            path: key.to_owned(),
            source,
        })?;
    ParsedCertificate::try_from(&chain[0]).map_err(|source| CertError::BadCertificate {
        path: cert.to_owned(),
        source,
    })?;
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            // Either a mismatch or a key whose public half the provider cannot derive; the
            // ring provider derives it for every key type it loads, so both mean "wrong key".
            return Err(CertError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            });
        }
        Err(source) => {
            return Err(CertError::BadCertificate {
                path: cert.to_owned(),
                source,
            });
        }
    }
    Ok(Identity {
        chain,
        key: private_key,
    })
}

/// Loads a set of trusted CA certificates from a PEM file (at least one).
pub fn load_ca(path: &Path) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(path)? {
        roots
            .add(certificate)
            .map_err(|source| CertError::BadCertificate {
                path: path.to_owned(),
                source,
            })?;
    }
    Ok(roots)
}

/// Checks that the identity's leaf certificate chains to one of the CA certificates, is valid
/// now, and may be used as a TLS server or a TLS client certificate. The paths only name the
/// files in the error.
pub fn check_signed_by(
    identity: &Identity,
    ca: &RootCertStore,
    ca_path: &Path,
    cert_path: &Path,
) -> Result<(), CertError> {
    let not_signed = |reason| CertError::NotSignedByCa {
        cert: cert_path.to_owned(),
        ca: ca_path.to_owned(),
        reason,
    };
    let Some((leaf, intermediates)) = identity.chain.split_first() else {
        return Err(not_signed(rustls::Error::NoCertificatesPresented));
    };
    let provider = provider();
    let now = UnixTime::now();
    let parsed = ParsedCertificate::try_from(leaf).map_err(not_signed)?;
    let as_server = verify_server_cert_signed_by_trust_anchor(
        &parsed,
        ca,
        intermediates,
        now,
        provider.signature_verification_algorithms.all,
    );
    let Err(server_reason) = as_server else {
        return Ok(());
    };
    // A certificate only meant for clients (EKU clientAuth alone) still chains to the CA.
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca.clone()), provider).build()?;
    match client_verifier.verify_client_cert(leaf, intermediates, now) {
        Ok(_) => Ok(()),
        Err(_) => Err(not_signed(server_reason)),
    }
}

/// The SPKI pin of a certificate: base64 of the SHA-256 digest of its DER
/// SubjectPublicKeyInfo, as in RFC 7858 section 4.2 and `kdig +tls-pin`.
///
/// A certificate that cannot be parsed has no public key; its pin is the empty string, which
/// matches no valid pin. Certificates from `load_identity` and `load_pin` have been parsed.
pub fn spki_pin(cert: &CertificateDer<'_>) -> String {
    match spki_digest(cert) {
        Ok(digest) => BASE64.encode(digest),
        Err(_) => String::new(),
    }
}

/// The SPKI pin of the first certificate in a PEM file.
pub fn load_pin(cert: &Path) -> Result<String, CertError> {
    let chain = load_certificates(cert)?;
    let digest = spki_digest(&chain[0]).map_err(|source| CertError::BadCertificate {
        path: cert.to_owned(),
        source,
    })?;
    Ok(BASE64.encode(digest))
}

fn spki_digest(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    Ok(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

/// How a client authenticates a TLS server (RFC 9103 section 9: strict or opportunistic).
#[derive(Clone, Debug)]
pub enum ServerTrust {
    /// Strict: the server's certificate chains to one of `roots` and is valid for `name`.
    Ca { roots: RootCertStore, name: String },
    /// Strict: the server's leaf certificate has one of these SPKI pins (see `spki_pin`);
    /// `name` is only sent as SNI.
    Pin { pins: Vec<String>, name: String },
    /// Opportunistic: any certificate is accepted. This protects against passive listeners
    /// only; an active attacker can impersonate the server. `name` is only sent as SNI.
    Opportunistic { name: String },
}

impl ServerTrust {
    /// The name to connect to (the SNI, and for `Ca` the name the certificate must carry).
    pub fn name(&self) -> &str {
        match self {
            ServerTrust::Ca { name, .. }
            | ServerTrust::Pin { name, .. }
            | ServerTrust::Opportunistic { name } => name,
        }
    }

    /// The name as rustls wants it at connect time.
    pub fn server_name(&self) -> Result<ServerName<'static>, CertError> {
        server_name(self.name())
    }
}

/// Parses a DNS name or IP address as a TLS server name.
pub fn server_name(name: &str) -> Result<ServerName<'static>, CertError> {
    ServerName::try_from(name.to_owned()).map_err(|_| CertError::InvalidName {
        name: name.to_owned(),
    })
}

/// A client configuration for XFR-over-TLS: TLS 1.3 only, ALPN "dot", the server checked as
/// `trust` says, and `client` presented when the server asks for a certificate (mutual TLS).
/// The server name is given at connect time (`ServerTrust::server_name`).
pub fn xot_client_config(
    trust: &ServerTrust,
    client: Option<&Identity>,
) -> Result<Arc<rustls::ClientConfig>, CertError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        ServerTrust::Ca { roots, .. } => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .build()?
        }
        ServerTrust::Pin { pins, .. } => Arc::new(PinVerifier::new(pins, &provider)?),
        ServerTrust::Opportunistic { .. } => Arc::new(OpportunisticVerifier {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        Some(identity) => {
            builder.with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_XOT.to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration for XFR-over-TLS: TLS 1.3 only, ALPN "dot". With `client_ca`, every
/// client must present a certificate that chains to it (mutual TLS).
pub fn xot_server_config(
    identity: &Identity,
    client_ca: Option<&RootCertStore>,
) -> Result<Arc<rustls::ServerConfig>, CertError> {
    let provider = provider();
    let verifier = match client_ca {
        Some(roots) => {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .build()?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_XOT.to_vec()];
    Ok(Arc::new(config))
}

/// A QUIC server configuration for DNS-over-QUIC between cluster nodes: TLS 1.3, ALPN "doq",
/// client certificates required and checked against `ca`, no 0-RTT (RFC 9250 section 4.5 forbids
/// transfers in 0-RTT; nothing else we serve over QUIC needs it), and the transport parameters
/// of `transport_config`.
pub fn quic_server_config(
    identity: &Identity,
    ca: &RootCertStore,
) -> Result<quinn::ServerConfig, CertError> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca.clone()), provider.clone())
            .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN_DOQ.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// A QUIC client configuration for DNS-over-QUIC between cluster nodes: presents `identity`,
/// checks the server against `ca` and the name given to `Endpoint::connect_with`, ALPN "doq",
/// TLS 1.3, no 0-RTT, and the transport parameters of `transport_config`.
pub fn quic_client_config(
    identity: &Identity,
    ca: &RootCertStore,
) -> Result<quinn::ClientConfig, CertError> {
    let provider = provider();
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(ca.clone()), provider.clone())
            .build()?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN_DOQ.to_vec()];
    tls.enable_early_data = false;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config()));
    Ok(config)
}

/// QUIC transport parameters shared by both ends: windows large enough for several big
/// transfers at once, room for many concurrent requests, no unidirectional streams (RFC 9250
/// section 4.2 allows none), keep-alive and an idle timeout.
fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(quinn::VarInt::from_u32(QUIC_STREAM_RECEIVE_WINDOW_BYTES))
        .receive_window(quinn::VarInt::from_u32(
            QUIC_CONNECTION_RECEIVE_WINDOW_BYTES,
        ))
        .send_window(u64::from(QUIC_CONNECTION_RECEIVE_WINDOW_BYTES))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(QUIC_BIDI_STREAMS_MAX))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .keep_alive_interval(Some(QUIC_KEEP_ALIVE))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(QUIC_IDLE_TIMEOUT)
                // Invariant: 60 s is far below the 2^62 ms a QUIC idle timeout can express.
                .expect("QUIC_IDLE_TIMEOUT fits a QUIC varint"),
        ));
    transport
}

/// Accepts a server whose leaf certificate's SPKI pin is one of a set (RFC 7858 section 4.2).
/// Names, validity dates and issuers are not checked: the pin is the trust. The handshake
/// signature is still verified, so the server must hold the pinned key.
#[derive(Debug)]
struct PinVerifier {
    digests: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    fn new(pins: &[String], provider: &CryptoProvider) -> Result<Self, CertError> {
        if pins.is_empty() {
            return Err(CertError::NoPins);
        }
        let digests = pins
            .iter()
            .map(|pin| {
                BASE64
                    .decode(pin.trim())
                    .ok()
                    .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                    .ok_or_else(|| CertError::InvalidPin { pin: pin.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PinVerifier {
            digests,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

/// The server's key is not one of the pinned keys.
#[derive(Debug, thiserror::Error)]
#[error("the server's SPKI pin is not among the configured pins")]
struct PinMismatch;

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = spki_digest(end_entity)?;
        if self.digests.contains(&digest) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts any server certificate: RFC 9103 opportunistic TLS. It keeps passive listeners
/// from reading the transfer but does NOT authenticate the server, so an active attacker can
/// impersonate it. The handshake signature is still verified against the presented
/// certificate's key.
#[derive(Debug)]
struct OpportunisticVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for OpportunisticVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Creates a cluster CA: writes `dir/ca.crt` and `dir/ca.key` (mode 0600), creating `dir` if
/// needed. Refuses to overwrite either file. Returns (certificate path, key path).
pub fn init_ca(dir: &Path, common_name: &str) -> Result<(PathBuf, PathBuf), CertError> {
    let cert_path = dir.join("ca.crt");
    let key_path = dir.join("ca.key");
    refuse_existing(&[&cert_path, &key_path])?;
    let generate = |source| CertError::Generate {
        path: cert_path.clone(),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    // A random cluster id makes every CA's subject unique, so that a certificate from another
    // cluster's CA is reported as an unknown issuer, not as a bad signature.
    params.distinguished_name.push(
        DnType::OrganizationalUnitName,
        format!("cluster {:016x}", rand::random::<u64>()),
    );
    // Path length 0: the CA signs node certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY);
    let certificate = params.self_signed(&key).map_err(generate)?;
    write_pair(
        dir,
        &cert_path,
        &certificate.pem(),
        &key_path,
        &key.serialize_pem(),
    )?;
    Ok((cert_path, key_path))
}

/// Issues a node certificate from the CA in `ca_dir` (`ca.crt`, `ca.key`): writes
/// `out_dir/NODE.crt` (the leaf alone) and `out_dir/NODE.key` (mode 0600), creating `out_dir`
/// if needed. Subject alternative names: the DNS name `node` plus `extra_names` (IP literals
/// become IP address names). Extended key usage: TLS server and client. Valid for two years.
/// Refuses to overwrite either file. Returns (certificate path, key path).
pub fn issue(
    ca_dir: &Path,
    node: &str,
    extra_names: &[String],
    out_dir: &Path,
) -> Result<(PathBuf, PathBuf), CertError> {
    // The node name becomes a file name, so it must be a plain DNS name (no '/', no '..').
    if !matches!(server_name(node)?, ServerName::DnsName(_)) {
        return Err(CertError::InvalidName {
            name: node.to_owned(),
        });
    }
    for name in extra_names {
        server_name(name)?;
    }
    let cert_path = out_dir.join(format!("{node}.crt"));
    let key_path = out_dir.join(format!("{node}.key"));
    refuse_existing(&[&cert_path, &key_path])?;

    let ca_cert_path = ca_dir.join("ca.crt");
    let ca_key_path = ca_dir.join("ca.key");
    let ca_cert = load_certificates(&ca_cert_path)?.swap_remove(0);
    let ca_key_pem = String::from_utf8_lossy(&read(&ca_key_path)?).into_owned();
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|source| CertError::BadCaKey {
        path: ca_key_path.clone(),
        source,
    })?;
    let ca_spki = ParsedCertificate::try_from(&ca_cert)
        .map_err(|source| CertError::BadCertificate {
            path: ca_cert_path.clone(),
            source,
        })?
        .subject_public_key_info();
    if ca_spki.as_ref() != ca_key.subject_public_key_info().as_slice() {
        return Err(CertError::KeyMismatch {
            cert: ca_cert_path,
            key: ca_key_path,
        });
    }
    let issuer = Issuer::from_ca_cert_der(&ca_cert, ca_key).map_err(|source| {
        CertError::BadCaCertificate {
            path: ca_cert_path.clone(),
            source,
        }
    })?;

    let generate = |source| CertError::Generate {
        path: cert_path.clone(),
        source,
    };
    let mut names = vec![node.to_owned()];
    names.extend(extra_names.iter().cloned());
    names.dedup();
    // CertificateParams::new turns IP literals into IP address names, the rest into DNS names.
    let mut params = CertificateParams::new(names).map_err(generate)?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, node);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY);
    let key = KeyPair::generate().map_err(generate)?;
    let certificate = params.signed_by(&key, &issuer).map_err(generate)?;

    // Check what we wrote against the CA file before handing it out.
    let identity = Identity {
        chain: vec![certificate.der().clone()],
        key: PrivateKeyDer::try_from(key.serialize_der()).map_err(|_| CertError::NoKey {
            path: key_path.clone(),
        })?,
    };
    check_signed_by(
        &identity,
        &load_ca(&ca_cert_path)?,
        &ca_cert_path,
        &cert_path,
    )?;

    write_pair(
        out_dir,
        &cert_path,
        &certificate.pem(),
        &key_path,
        &key.serialize_pem(),
    )?;
    Ok((cert_path, key_path))
}

/// Whether `name` is an IP literal (it then becomes an IP address SAN).
pub fn is_ip_literal(name: &str) -> bool {
    name.parse::<IpAddr>().is_ok()
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = SystemTime::now();
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + validity).into();
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CertError> {
    for path in paths {
        // symlink_metadata: a dangling symlink also counts as "exists".
        if fs::symlink_metadata(path).is_ok() {
            return Err(CertError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes a key (0600) and then its certificate, both created fresh; if the certificate
/// cannot be written the key is removed again, so a failure leaves no half pair behind.
fn write_pair(
    dir: &Path,
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })?;
    write_new(key_path, key_pem, 0o600)?;
    if let Err(error) = write_new(cert_path, cert_pem, 0o644) {
        let _ = fs::remove_file(key_path);
        return Err(error);
    }
    Ok(())
}

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            CertError::Exists {
                path: path.to_owned(),
            }
        } else {
            CertError::Write {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CertError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

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
