//! Certificates for the encrypted-transport tests, made the way an operator makes them: with
//! `zonecast cert init-ca`, `zonecast cert issue` and `zonecast cert pin`.
//!
//! A `ClusterCa` owns a temporary directory holding the CA and every certificate issued from it;
//! keep it alive as long as a daemon may read the files. Nothing here opens a socket.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::util::{COMMAND_TIMEOUT, run_checked, temp_dir};
use crate::zonecast::{TlsIdentity, zonecast_binary};

/// A cluster CA (`ca.crt`, `ca.key`) in its own temporary directory.
#[derive(Debug)]
pub struct ClusterCa {
    dir: TempDir,
}

/// A certificate and key issued by a `ClusterCa`, valid as a TLS server and client certificate
/// for `name`.
#[derive(Clone, Debug)]
pub struct NodeCertificate {
    /// The DNS name in the certificate's SAN (also the files' base name).
    pub name: String,
    /// PEM certificate.
    pub certificate: PathBuf,
    /// PEM private key (mode 0600).
    pub private_key: PathBuf,
    /// The CA certificate that signed it.
    pub ca: PathBuf,
}

impl ClusterCa {
    /// Creates a CA with `zonecast cert init-ca`; `label` names the temporary directory.
    pub fn create(label: &str) -> ClusterCa {
        let dir = temp_dir(&format!("ca-{label}"));
        zonecast_cert(&["init-ca".as_ref(), "--dir".as_ref(), dir.path().as_os_str()]);
        let ca = ClusterCa { dir };
        assert!(
            ca.certificate().is_file() && ca.dir().join("ca.key").is_file(),
            "`zonecast cert init-ca` did not write ca.crt and ca.key in {}",
            ca.dir().display()
        );
        ca
    }

    /// The directory holding the CA and the certificates issued so far.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ca.crt`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Issues a certificate for `name` with `zonecast cert issue NAME --ca-dir DIR`.
    pub fn issue(&self, name: &str) -> NodeCertificate {
        zonecast_cert(&[
            "issue".as_ref(),
            name.as_ref(),
            "--ca-dir".as_ref(),
            self.dir.path().as_os_str(),
        ]);
        let issued = NodeCertificate {
            name: name.to_owned(),
            certificate: self.dir.path().join(format!("{name}.crt")),
            private_key: self.dir.path().join(format!("{name}.key")),
            ca: self.certificate(),
        };
        assert!(
            issued.certificate.is_file() && issued.private_key.is_file(),
            "`zonecast cert issue {name}` did not write {name}.crt and {name}.key in {}",
            self.dir().display()
        );
        issued
    }
}

impl NodeCertificate {
    /// The node's `[tls]` section: this certificate and key, and its CA as the cluster CA.
    pub fn identity(&self) -> TlsIdentity {
        TlsIdentity {
            certificate: self.certificate.clone(),
            private_key: self.private_key.clone(),
            ca: Some(self.ca.clone()),
        }
    }

    /// The SPKI pin of the certificate (`zonecast cert pin`).
    pub fn pin(&self) -> String {
        spki_pin(&self.certificate)
    }
}

/// The base64 SHA-256 SPKI pin of the PEM certificate at `path`, from `zonecast cert pin`.
pub fn spki_pin(path: &Path) -> String {
    let output = zonecast_cert(&["pin".as_ref(), path.as_os_str()]);
    let pin = output.trim().to_owned();
    // A SHA-256 digest is 32 bytes: 44 base64 characters with padding.
    assert_eq!(
        pin.len(),
        44,
        "`zonecast cert pin {}` printed no pin: {output:?}",
        path.display()
    );
    pin
}

/// Runs `zonecast cert ARGUMENTS...`, panicking on failure; returns its standard output.
fn zonecast_cert(arguments: &[&std::ffi::OsStr]) -> String {
    run_checked(
        Command::new(zonecast_binary()).arg("cert").args(arguments),
        COMMAND_TIMEOUT,
    )
}
