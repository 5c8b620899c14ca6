//! The small cluster CA behind `zonecast cert`: `init_ca` and `issue` write PEM files and never
//! overwrite one.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::server::ParsedCertificate;

use super::material::read;
use super::*;

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
