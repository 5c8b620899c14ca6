//! Ready-made rustls and quinn configurations (TLS 1.3 only, ALPN "dot" or "doq") and the
//! server verifiers behind the strict and opportunistic profiles.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::material::{provider, spki_digest};
use super::*;

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
pub(super) struct PinVerifier {
    digests: Vec<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    pub(super) fn new(pins: &[String], provider: &CryptoProvider) -> Result<Self, CertError> {
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
