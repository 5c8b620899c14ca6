//! Loading and checking certificate material: PEM chains, keys, CA sets, SPKI pins.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::RootCertStore;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::*;

/// The crypto provider behind every configuration here, chosen explicitly so no process-wide
/// default is needed.
pub(super) fn provider() -> Arc<CryptoProvider> {
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

pub(super) fn spki_digest(cert: &CertificateDer<'_>) -> Result<[u8; 32], rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    Ok(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}
