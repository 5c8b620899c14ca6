//! An independent XFR-over-QUIC client: `scripts/doq_xfr.py`, which uses dnspython's QUIC
//! connection (aioquic underneath) with a TLS client certificate, run with `python3`.
//!
//! The same script also transfers over XFR-over-TLS and plain TCP with the same message
//! handling, so that results can be compared record for record, and can make several requests on
//! one connection. Python and its modules are checked first: a missing one is a failure naming
//! what to install, never a skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::certs::NodeCertificate;
use crate::util::{require_program, run_unchecked};

/// How long the script may run; its own transfer timeout (`--timeout`) is shorter.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the script received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptTransfer {
    /// The rcode of the last message, e.g. `NOERROR`, `REFUSED`.
    pub rcode: String,
    /// How many messages the answer took.
    pub messages: u64,
    /// Every answer record in stream order, in dnspython's presentation format with absolute
    /// names (`www.example.test. 300 IN A 192.0.2.80`).
    pub records: Vec<String>,
    /// Whether the server ended every QUIC stream after its last message (RFC 9250 section
    /// 4.2); always true over TLS and TCP.
    pub stream_finished: bool,
    /// How many transfers were made on the connection (`ScriptRequest::repeat`).
    pub transfers: u64,
    /// Whether every transfer got the same records as the first.
    pub identical: bool,
}

impl ScriptTransfer {
    /// The number of SOA records in the answer.
    pub fn soa_count(&self) -> usize {
        self.records
            .iter()
            .filter(|record| record.split_whitespace().nth(3) == Some("SOA"))
            .count()
    }

    /// The records sorted, for comparisons that ignore order.
    pub fn sorted_records(&self) -> Vec<String> {
        let mut records = self.records.clone();
        records.sort();
        records
    }
}

/// How the script's TLS (over QUIC or TCP) authenticates the server and itself.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The CA the server's certificate must chain to.
    pub ca: PathBuf,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// The client certificate and key to present, if any.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// Checks the server against `client`'s CA and name `server_name`, presenting `client`.
    pub fn with_client(server_name: &str, client: &NodeCertificate) -> ClientTls {
        ClientTls {
            ca: client.ca.clone(),
            server_name: server_name.to_owned(),
            client: Some((client.certificate.clone(), client.private_key.clone())),
        }
    }

    /// The same without a client certificate.
    pub fn without_client_certificate(mut self) -> ClientTls {
        self.client = None;
        self
    }
}

/// The transport the script uses.
#[derive(Clone, Debug)]
pub enum ScriptTransport {
    /// DNS-over-QUIC (RFC 9250).
    Quic(ClientTls),
    /// XFR-over-TLS (RFC 9103).
    Tls(ClientTls),
    /// Plain TCP.
    Tcp,
}

/// What the script asks for.
#[derive(Clone, Debug)]
pub struct ScriptRequest {
    /// The zone.
    pub zone: String,
    /// IXFR from this serial; AXFR when `None`.
    pub ixfr_serial: Option<u32>,
    /// How many times to ask on one connection (QUIC: concurrent streams; TLS and TCP: one
    /// after another).
    pub repeat: u32,
    /// The message ID; `None` is 0 over QUIC (RFC 9250) and random otherwise.
    pub message_id: Option<u16>,
}

impl ScriptRequest {
    /// One AXFR (`ixfr_serial` = `None`) or IXFR of `zone`.
    pub fn new(zone: &str, ixfr_serial: Option<u32>) -> ScriptRequest {
        ScriptRequest {
            zone: zone.to_owned(),
            ixfr_serial,
            repeat: 1,
            message_id: None,
        }
    }
}

/// AXFR (`ixfr_serial` = `None`) or IXFR of `zone` over QUIC from `server`. `Err` carries the
/// script's standard error when the transfer failed at the transport (handshake, timeout).
pub fn quic_transfer(
    server: SocketAddr,
    zone: &str,
    ixfr_serial: Option<u32>,
    tls: &ClientTls,
) -> Result<ScriptTransfer, String> {
    script_transfer(
        server,
        &ScriptTransport::Quic(tls.clone()),
        &ScriptRequest::new(zone, ixfr_serial),
    )
}

/// The same transfer over plain TCP, with the same message handling.
pub fn tcp_transfer(
    server: SocketAddr,
    zone: &str,
    ixfr_serial: Option<u32>,
) -> Result<ScriptTransfer, String> {
    script_transfer(
        server,
        &ScriptTransport::Tcp,
        &ScriptRequest::new(zone, ixfr_serial),
    )
}

/// Runs the script: `request` to `server` over `transport`. `Err` carries the script's
/// standard error when the transfer failed at the transport (handshake, closed connection,
/// timeout).
pub fn script_transfer(
    server: SocketAddr,
    transport: &ScriptTransport,
    request: &ScriptRequest,
) -> Result<ScriptTransfer, String> {
    let python = require_python_modules();
    let mut command = Command::new(python);
    command
        .arg(script_path())
        .args(["--server", &server.ip().to_string()])
        .args(["--port", &server.port().to_string()])
        .args(["--zone", &request.zone])
        .args(["--timeout", "5"])
        .args(["--repeat", &request.repeat.to_string()]);
    if let Some(serial) = request.ixfr_serial {
        command.args(["--ixfr", &serial.to_string()]);
    }
    if let Some(id) = request.message_id {
        command.args(["--message-id", &id.to_string()]);
    }
    let tls = match transport {
        ScriptTransport::Quic(tls) => Some(tls),
        ScriptTransport::Tls(tls) => {
            command.arg("--tls");
            Some(tls)
        }
        ScriptTransport::Tcp => {
            command.arg("--tcp");
            None
        }
    };
    if let Some(tls) = tls {
        command
            .arg("--ca")
            .arg(&tls.ca)
            .args(["--hostname", &tls.server_name]);
        if let Some((certificate, key)) = &tls.client {
            command.arg("--cert").arg(certificate).arg("--key").arg(key);
        }
    }
    let (success, output) = run_unchecked(&mut command, SCRIPT_TIMEOUT);
    if !success {
        return Err(output);
    }
    let json: Value = serde_json::from_str(output.trim())
        .map_err(|error| format!("the script printed no JSON ({error}):\n{output}"))?;
    let records = json["records"]
        .as_array()
        .ok_or_else(|| format!("no records in {json}"))?
        .iter()
        .map(|record| record.as_str().unwrap_or_default().to_owned())
        .collect();
    Ok(ScriptTransfer {
        rcode: json["rcode"].as_str().unwrap_or_default().to_owned(),
        messages: json["messages"].as_u64().unwrap_or_default(),
        records,
        stream_finished: json["stream_finished"].as_bool().unwrap_or_default(),
        transfers: json["transfers"].as_u64().unwrap_or_default(),
        identical: json["identical"].as_bool().unwrap_or_default(),
    })
}

/// `cluster-tests/scripts/doq_xfr.py`.
fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("doq_xfr.py")
}

/// `python3`, after checking once that dnspython's QUIC support and aioquic import; panics with
/// what to install otherwise.
pub fn require_python_modules() -> PathBuf {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let python = require_program("python3", "python3");
        let (success, output) = run_unchecked(
            Command::new(&python).args([
                "-c",
                "import aioquic, dns.quic, dns.version; assert dns.quic.have_quic; \
                 assert dns.version.MAJOR * 100 + dns.version.MINOR >= 206, 'dnspython < 2.6'",
            ]),
            SCRIPT_TIMEOUT,
        );
        if success {
            Ok(python)
        } else {
            Err(format!(
                "the XFR-over-QUIC client needs the Python packages dnspython (>= 2.6) and \
                 aioquic: install them with `python3 -m pip install 'dnspython>=2.6' aioquic` \
                 (scripts/test.sh does):\n{output}"
            ))
        }
    });
    match checked {
        Ok(python) => python.clone(),
        Err(message) => panic!("{message}"),
    }
}
