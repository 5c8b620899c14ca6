//! The `zonecast` daemon under test: configuration writer, process control (start, stop,
//! restart, SIGHUP and `POST /reload` after the configuration file was rewritten) and observation
//! through the wire (DNS on its query port; `/status`, `/metrics`, `/healthz` on its status port).
//!
//! The binary is built once per test process with `cargo build -p zonecast --bin zonecast` into
//! the target directory that holds the running test executable (so `CARGO_TARGET_DIR` and the
//! profile are honoured), or taken from the `ZONECAST_BIN` environment variable when set.
//! Dropping a `Zonecast` kills the daemon; when that happens during a panic, the tail of the
//! daemon's log is printed first.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use tempfile::TempDir;

use crate::client::{QueryOptions, query_udp, soa_serial};
use crate::process::Daemon;
use crate::tsig::TsigKey;
use crate::util::{
    free_port, free_wildcard_port, poll, run_command, send_signal, temp_dir, unix_now, write_file,
};

/// How long zonecast may take from process start to an answer on `/healthz` (200, or 503 while
/// zones load).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `cargo build -p zonecast` may take (a clean debug build takes about 2 minutes here).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// Timeout of one HTTP request to the status endpoint.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a graceful stop (SIGTERM) may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of the zonecast binary, built on first use (see the module documentation).
pub fn zonecast_binary() -> PathBuf {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(locate_or_build) {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ZONECAST_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ZONECAST_BIN={} is not a file", path.display()))
        };
    }
    let executable = std::env::current_exe()
        .map_err(|error| format!("cannot locate the test binary: {error}"))?;
    // Test executables live in <target>/<profile>/deps/.
    let profile_dir = executable
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary path {}", executable.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test binary path {}", executable.display()))?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("cluster-tests has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "zonecast", "--bin", "zonecast"])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let output = run_command(&mut command, BUILD_TIMEOUT);
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p zonecast --bin zonecast` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = profile_dir.join("zonecast");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo built zonecast but {} is missing",
            binary.display()
        ))
    }
}

/// Clamps zonecast applies to SOA timers (`[timers]`), as humantime strings.
#[derive(Clone, Debug)]
pub struct TimerClamps {
    /// `refresh_min`.
    pub refresh_min: String,
    /// `refresh_max`.
    pub refresh_max: String,
    /// `retry_min`.
    pub retry_min: String,
    /// `retry_max`.
    pub retry_max: String,
    /// `expire_min`.
    pub expire_min: String,
    /// `expire_max`.
    pub expire_max: String,
}

impl Default for TimerClamps {
    /// Low minimums, so test zones with timers of a few seconds are honoured as written.
    fn default() -> Self {
        TimerClamps {
            refresh_min: "1s".to_owned(),
            refresh_max: "1d".to_owned(),
            retry_min: "1s".to_owned(),
            retry_max: "1h".to_owned(),
            expire_min: "3s".to_owned(),
            expire_max: "8w".to_owned(),
        }
    }
}

/// How a primary is reached: the `transport` and `tls_*` settings of a `primaries` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP (and UDP for SOA queries): `transport = "tcp"`, the default.
    Tcp,
    /// XFR-over-TLS (RFC 9103): `transport = "tls"`.
    Tls {
        /// `tls_name`: the name the primary's certificate must carry.
        name: String,
        /// How the primary is authenticated.
        trust: TlsTrust,
        /// `tls_client_certificate`: present this node's `[tls]` certificate.
        client_certificate: bool,
    },
}

/// How a TLS primary is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsTrust {
    /// `tls_ca`: the certificate must chain to this CA file and carry the name.
    Ca(PathBuf),
    /// `tls_pin`: SHA-256 SPKI pins (base64).
    Pin(Vec<String>),
    /// `tls_opportunistic = true`: any certificate.
    Opportunistic,
}

/// One entry of a zone's `primaries`.
#[derive(Clone, Debug)]
pub struct Primary {
    /// `address`.
    pub address: SocketAddr,
    /// `tsig_key`: the name of a `[[tsig_key]]`.
    pub tsig_key: Option<String>,
    /// `transport` and the `tls_*` settings.
    pub transport: Transport,
}

impl Primary {
    /// A primary reached over plain TCP, without TSIG.
    pub fn tcp(address: SocketAddr) -> Primary {
        Primary {
            address,
            tsig_key: None,
            transport: Transport::Tcp,
        }
    }

    /// A primary reached over XFR-over-TLS whose certificate carries `name`, trusted as `trust`.
    pub fn tls(address: SocketAddr, name: &str, trust: TlsTrust) -> Primary {
        Primary {
            address,
            tsig_key: None,
            transport: Transport::Tls {
                name: name.to_owned(),
                trust,
                client_certificate: false,
            },
        }
    }

    /// The same primary with requests signed with the `[[tsig_key]]` named `key`.
    pub fn with_key(mut self, key: &str) -> Primary {
        self.tsig_key = Some(key.to_owned());
        self
    }
}

/// One entry of a zone's `peers`: another zonecast node, pulled over QUIC with mutual TLS.
#[derive(Clone, Debug)]
pub struct Peer {
    /// `address`: the peer's `xoq_listen` address.
    pub address: SocketAddr,
    /// `name`: the name in the peer's cluster certificate.
    pub name: String,
}

/// Where a zone's data comes from.
#[derive(Clone, Debug)]
pub enum ZoneSource {
    /// Transfers from these primaries, tried in order.
    Primaries(Vec<Primary>),
    /// Transfers from these zonecast peers over QUIC, tried in order.
    Peers(Vec<Peer>),
    /// A master file, reloaded when it changes.
    File(PathBuf),
}

/// One entry of a transfer ACL (`[transfer].allow` or a zone's `allow_transfer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    /// `prefix`: an address or a prefix such as `127.0.0.0/8`.
    pub prefix: String,
    /// `tsig_key`: when set, requests must be signed with this `[[tsig_key]]`.
    pub tsig_key: Option<String>,
}

impl AclEntry {
    /// Allows `prefix` without TSIG.
    pub fn open(prefix: &str) -> AclEntry {
        AclEntry {
            prefix: prefix.to_owned(),
            tsig_key: None,
        }
    }

    /// Allows `prefix` for requests signed with the `[[tsig_key]]` named `key`.
    pub fn keyed(prefix: &str, key: &str) -> AclEntry {
        AclEntry {
            prefix: prefix.to_owned(),
            tsig_key: Some(key.to_owned()),
        }
    }

    fn to_toml(&self) -> String {
        match &self.tsig_key {
            Some(key) => format!(
                "{{ prefix = {}, tsig_key = {} }}",
                toml_string(&self.prefix),
                toml_string(key)
            ),
            None => format!("{{ prefix = {} }}", toml_string(&self.prefix)),
        }
    }
}

/// The node's own certificate (`[tls]`).
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// `certificate`: PEM certificate chain.
    pub certificate: PathBuf,
    /// `private_key`: PEM private key.
    pub private_key: PathBuf,
    /// `ca`: the cluster CA.
    pub ca: Option<PathBuf>,
}

/// One `[[zone]]`.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// Zone name.
    pub name: String,
    /// Data source.
    pub source: ZoneSource,
    /// `also_notify`: downstreams told of every new version.
    pub also_notify: Vec<SocketAddr>,
    /// `allow_transfer`: replaces `[transfer].allow` for this zone when set.
    pub allow_transfer: Option<Vec<AclEntry>>,
}

impl ZoneConfig {
    /// A zone with `source`, no NOTIFY targets and the node-wide transfer ACL.
    pub fn new(name: &str, source: ZoneSource) -> ZoneConfig {
        ZoneConfig {
            name: name.to_owned(),
            source,
            also_notify: Vec::new(),
            allow_transfer: None,
        }
    }

    /// A zone transferred from `primaries`, tried in order.
    pub fn primaries(name: &str, primaries: Vec<Primary>) -> ZoneConfig {
        ZoneConfig::new(name, ZoneSource::Primaries(primaries))
    }

    /// A zone copied from zonecast `peers` over QUIC.
    pub fn peers(name: &str, peers: Vec<Peer>) -> ZoneConfig {
        ZoneConfig::new(name, ZoneSource::Peers(peers))
    }

    /// Adds a NOTIFY target.
    pub fn also_notify(mut self, target: SocketAddr) -> ZoneConfig {
        self.also_notify.push(target);
        self
    }

    /// Sets the zone's own transfer ACL.
    pub fn allow_transfer(mut self, entries: Vec<AclEntry>) -> ZoneConfig {
        self.allow_transfer = Some(entries);
        self
    }
}

/// A zonecast configuration; the data directory and the status port are filled in by
/// `Zonecast::start`, and so is the DNS port unless `dns_port` is set.
#[derive(Clone, Debug, Default)]
pub struct ZonecastConfig {
    /// Zones to serve.
    pub zones: Vec<ZoneConfig>,
    /// TSIG keys (`[[tsig_key]]`).
    pub tsig_keys: Vec<TsigKey>,
    /// Timer clamps.
    pub timers: TimerClamps,
    /// `limits.transfer_timeout`.
    pub transfer_timeout: Option<String>,
    /// Also listen on `[::1]` at the same DNS port.
    pub ipv6: bool,
    /// Listen on both wildcards, `0.0.0.0` and `[::]`, at one DNS port, instead of on
    /// loopback (`ipv6` is then moot). Tests still send their queries to loopback only.
    pub wildcards: bool,
    /// The DNS port to listen on; `None` picks a free one. Set it when a primary's
    /// `also-notify` must name the node before the node starts.
    pub dns_port: Option<u16>,
    /// `[tls]`: this node's certificate and the cluster CA.
    pub tls: Option<TlsIdentity>,
    /// `server.xot_listen` on 127.0.0.1 at this port.
    pub xot_port: Option<u16>,
    /// `server.xot_require_client_cert`.
    pub xot_require_client_cert: bool,
    /// `server.xoq_listen` on 127.0.0.1 at this (UDP) port.
    pub xoq_port: Option<u16>,
    /// `[transfer].allow`.
    pub transfer_allow: Vec<AclEntry>,
    /// `[transfer].journal_diffs_max`.
    pub journal_diffs_max: Option<usize>,
}

impl ZonecastConfig {
    /// An empty configuration with test-friendly timer clamps.
    pub fn new() -> ZonecastConfig {
        ZonecastConfig::default()
    }

    /// Adds a zone transferred from `primary` over TCP, optionally with a TSIG key (which is
    /// added to the key list, replacing a key of the same name).
    pub fn primary_zone(self, name: &str, primary: SocketAddr, key: Option<&TsigKey>) -> Self {
        let mut entry = Primary::tcp(primary);
        entry.tsig_key = key.map(|key| key.name.clone());
        let config = match key {
            Some(key) => self.tsig_key(key),
            None => self,
        };
        config.zone(ZoneConfig::primaries(name, vec![entry]))
    }

    /// Adds a zone loaded from a master file.
    pub fn file_zone(self, name: &str, path: &Path) -> Self {
        self.zone(ZoneConfig::new(name, ZoneSource::File(path.to_owned())))
    }

    /// Adds a zone.
    pub fn zone(mut self, zone: ZoneConfig) -> Self {
        self.zones.push(zone);
        self
    }

    /// Adds a TSIG key, replacing a key of the same name.
    pub fn tsig_key(mut self, key: &TsigKey) -> Self {
        self.tsig_keys.retain(|existing| existing.name != key.name);
        self.tsig_keys.push(key.clone());
        self
    }

    /// Listens on `[::1]` as well as `127.0.0.1`, at the same port.
    pub fn with_ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Listens on `0.0.0.0` and `[::]` at one port (see `wildcards`).
    pub fn with_wildcards(mut self) -> Self {
        self.wildcards = true;
        self
    }

    /// Listens for DNS on `port` (see `dns_port`).
    pub fn dns_port(mut self, port: u16) -> Self {
        self.dns_port = Some(port);
        self
    }

    /// Replaces the timer clamps.
    pub fn timers(mut self, timers: TimerClamps) -> Self {
        self.timers = timers;
        self
    }

    /// Sets this node's certificate (`[tls]`).
    pub fn tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
        self
    }

    /// Listens for XFR-over-TLS on a free port (needs `tls`).
    pub fn with_xot(mut self) -> Self {
        self.xot_port = Some(free_port());
        self
    }

    /// Listens for XFR-over-QUIC on a free port (needs `tls` with a CA).
    pub fn with_xoq(self) -> Self {
        self.xoq_port(free_port())
    }

    /// Listens for XFR-over-QUIC on `port` (set it when another node's `peers` must name this
    /// node before it starts).
    pub fn xoq_port(mut self, port: u16) -> Self {
        self.xoq_port = Some(port);
        self
    }

    /// Adds an entry to `[transfer].allow`.
    pub fn allow_transfer(mut self, entry: AclEntry) -> Self {
        self.transfer_allow.push(entry);
        self
    }

    /// The TOML text for the given data directory and listening addresses.
    pub fn to_toml(&self, data_dir: &Path, dns: SocketAddr, status: SocketAddr) -> String {
        let mut text = String::new();
        let timers = &self.timers;
        let mut listen = vec![toml_string(&dns.to_string())];
        if self.wildcards {
            listen = [
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, dns.port())),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, dns.port())),
            ]
            .iter()
            .map(|address| toml_string(&address.to_string()))
            .collect();
        } else if self.ipv6 {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, dns.port()));
            listen.push(toml_string(&v6.to_string()));
        }
        let _ = write!(
            text,
            "[node]\ndata_dir = {}\n\n[server]\nlisten = [{}]\n",
            toml_string(&data_dir.display().to_string()),
            listen.join(", "),
        );
        if let Some(port) = self.xot_port {
            let _ = writeln!(text, "xot_listen = [\"127.0.0.1:{port}\"]");
        }
        if self.xot_require_client_cert {
            let _ = writeln!(text, "xot_require_client_cert = true");
        }
        if let Some(port) = self.xoq_port {
            let _ = writeln!(text, "xoq_listen = [\"127.0.0.1:{port}\"]");
        }
        let _ = write!(
            text,
            "\n[status]\nlisten = {}\n\n\
             [timers]\nrefresh_min = {}\nrefresh_max = {}\nretry_min = {}\nretry_max = {}\n\
             expire_min = {}\nexpire_max = {}\n\n",
            toml_string(&status.to_string()),
            toml_string(&timers.refresh_min),
            toml_string(&timers.refresh_max),
            toml_string(&timers.retry_min),
            toml_string(&timers.retry_max),
            toml_string(&timers.expire_min),
            toml_string(&timers.expire_max),
        );
        if let Some(timeout) = &self.transfer_timeout {
            let _ = write!(
                text,
                "[limits]\ntransfer_timeout = {}\n\n",
                toml_string(timeout)
            );
        }
        if let Some(tls) = &self.tls {
            let _ = write!(
                text,
                "[tls]\ncertificate = {}\nprivate_key = {}\n",
                toml_path(&tls.certificate),
                toml_path(&tls.private_key)
            );
            if let Some(ca) = &tls.ca {
                let _ = writeln!(text, "ca = {}", toml_path(ca));
            }
            text.push('\n');
        }
        if !self.transfer_allow.is_empty() || self.journal_diffs_max.is_some() {
            text.push_str("[transfer]\n");
            if !self.transfer_allow.is_empty() {
                let _ = writeln!(text, "allow = [{}]", acl_toml(&self.transfer_allow));
            }
            if let Some(diffs) = self.journal_diffs_max {
                let _ = writeln!(text, "journal_diffs_max = {diffs}");
            }
            text.push('\n');
        }
        for key in &self.tsig_keys {
            let _ = write!(
                text,
                "[[tsig_key]]\nname = {}\nalgorithm = {}\nsecret = {}\n\n",
                toml_string(&key.name),
                toml_string(&key.algorithm),
                toml_string(&key.secret)
            );
        }
        for zone in &self.zones {
            let _ = writeln!(text, "[[zone]]\nname = {}", toml_string(&zone.name));
            match &zone.source {
                ZoneSource::Primaries(primaries) => {
                    let list: Vec<String> = primaries.iter().map(primary_toml).collect();
                    let _ = writeln!(text, "primaries = [{}]", list.join(", "));
                }
                ZoneSource::Peers(peers) => {
                    let list: Vec<String> = peers
                        .iter()
                        .map(|peer| {
                            format!(
                                "{{ address = {}, name = {} }}",
                                toml_string(&peer.address.to_string()),
                                toml_string(&peer.name)
                            )
                        })
                        .collect();
                    let _ = writeln!(text, "peers = [{}]", list.join(", "));
                }
                ZoneSource::File(path) => {
                    let _ = writeln!(text, "file = {}", toml_path(path));
                }
            }
            if !zone.also_notify.is_empty() {
                let list: Vec<String> = zone
                    .also_notify
                    .iter()
                    .map(|target| toml_string(&target.to_string()))
                    .collect();
                let _ = writeln!(text, "also_notify = [{}]", list.join(", "));
            }
            if let Some(entries) = &zone.allow_transfer {
                let _ = writeln!(text, "allow_transfer = [{}]", acl_toml(entries));
            }
            text.push('\n');
        }
        text
    }
}

/// One `primaries` entry as an inline TOML table.
fn primary_toml(primary: &Primary) -> String {
    let mut fields = vec![format!(
        "address = {}",
        toml_string(&primary.address.to_string())
    )];
    if let Some(key) = &primary.tsig_key {
        fields.push(format!("tsig_key = {}", toml_string(key)));
    }
    if let Transport::Tls {
        name,
        trust,
        client_certificate,
    } = &primary.transport
    {
        fields.push("transport = \"tls\"".to_owned());
        fields.push(format!("tls_name = {}", toml_string(name)));
        match trust {
            TlsTrust::Ca(path) => fields.push(format!("tls_ca = {}", toml_path(path))),
            TlsTrust::Pin(pins) => {
                let pins: Vec<String> = pins.iter().map(|pin| toml_string(pin)).collect();
                fields.push(format!("tls_pin = [{}]", pins.join(", ")));
            }
            TlsTrust::Opportunistic => fields.push("tls_opportunistic = true".to_owned()),
        }
        if *client_certificate {
            fields.push("tls_client_certificate = true".to_owned());
        }
    }
    format!("{{ {} }}", fields.join(", "))
}

/// ACL entries as the items of a TOML array.
fn acl_toml(entries: &[AclEntry]) -> String {
    entries
        .iter()
        .map(AclEntry::to_toml)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A path as a TOML basic string.
fn toml_path(path: &Path) -> String {
    toml_string(&path.display().to_string())
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for character in value.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// A running zonecast node.
#[derive(Debug)]
pub struct Zonecast {
    // Field order matters for Drop: the daemon dies before its directory is removed.
    daemon: Option<Daemon>,
    dir: TempDir,
    binary: PathBuf,
    config_path: PathBuf,
    dns_port: u16,
    status_port: u16,
    xot_port: Option<u16>,
    xoq_port: Option<u16>,
    /// The listening settings of the configuration the node started with, kept by
    /// `reconfigure` (sockets change only at a restart).
    ipv6: bool,
    wildcards: bool,
}

impl Zonecast {
    /// Writes `config` (with fresh ports and a data directory in a new temporary directory),
    /// starts `zonecast run --config FILE` and waits until `/healthz` answers.
    pub fn start(config: &ZonecastConfig) -> Zonecast {
        let binary = zonecast_binary();
        let dir = temp_dir("node");
        let dns_port = config.dns_port.unwrap_or_else(|| {
            if config.wildcards {
                free_wildcard_port()
            } else {
                free_port()
            }
        });
        let status_port = free_port();
        let config_path = dir.path().join("zonecast.toml");
        let mut node = Zonecast {
            daemon: None,
            dir,
            binary,
            config_path,
            dns_port,
            status_port,
            xot_port: config.xot_port,
            xoq_port: config.xoq_port,
            ipv6: config.ipv6,
            wildcards: config.wildcards,
        };
        node.write_config(config);
        node.launch();
        node
    }

    /// Rewrites the configuration file from `config` with this node's ports and data
    /// directory, without telling the node (see `sighup`, `reload_by_sighup`, `reload_by_http`).
    ///
    /// What `config` says about listening sockets (`dns_port`, `ipv6`, `wildcards`, `xot_port`,
    /// `xoq_port`) is replaced by what the node started with: sockets change only at a
    /// restart, and `restart` reads this file.
    pub fn reconfigure(&self, config: &ZonecastConfig) {
        self.write_config(config);
    }

    /// Replaces the configuration file with `text` as it is (a broken configuration, say),
    /// without telling the node.
    pub fn write_config_text(&self, text: &str) {
        write_file(&self.config_path, text);
    }

    /// The text `reconfigure` would write for `config`: the base of a hand-broken variant.
    pub fn config_text(&self, config: &ZonecastConfig) -> String {
        let mut config = config.clone();
        config.ipv6 = self.ipv6;
        config.wildcards = self.wildcards;
        config.xot_port = self.xot_port;
        config.xoq_port = self.xoq_port;
        let dns = SocketAddr::from((Ipv4Addr::LOCALHOST, self.dns_port));
        let status = SocketAddr::from((Ipv4Addr::LOCALHOST, self.status_port));
        config.to_toml(&self.dir.path().join("data"), dns, status)
    }

    fn write_config(&self, config: &ZonecastConfig) {
        self.write_config_text(&self.config_text(config));
    }

    /// Sends SIGHUP (re-read the configuration file); returns at once. Panics if the node is
    /// not running.
    pub fn sighup(&self) {
        let pid = self
            .daemon
            .as_ref()
            .and_then(Daemon::pid)
            .expect("SIGHUP to a zonecast node that is not running");
        send_signal(pid, "HUP");
    }

    /// The `reload` object of `/status` (`at`, `ok`, `message`), or `None` before the first
    /// reload.
    pub fn reload_report(&self) -> Option<Value> {
        let report = self.status_json().get("reload").cloned()?;
        (!report.is_null()).then_some(report)
    }

    /// Sends SIGHUP and waits until `/status` shows a reload report other than the one before;
    /// returns it. Panics after `timeout` with the log tail.
    ///
    /// Reports carry their time in whole seconds, so two reloads in one second with the same
    /// outcome would look alike: when the last report is from the current second, this waits
    /// for the next second before sending the signal.
    pub fn reload_by_sighup(&self, timeout: Duration) -> Value {
        let before = self.reload_report();
        if let Some(at) = before.as_ref().and_then(|report| report["at"].as_u64()) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while unix_now() <= at && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.sighup();
        let reached = poll(timeout, Duration::from_millis(20), || {
            let report = self.reload_report()?;
            (Some(&report) != before.as_ref()).then_some(report)
        });
        match reached {
            Some((report, _)) => report,
            None => panic!(
                "no new reload report within {timeout:?} of SIGHUP (before: {before:?}); \
                 log:\n{}",
                self.log_tail(30)
            ),
        }
    }

    /// `POST /reload`: the HTTP status code and the body (what changed, or every problem).
    pub fn reload_by_http(&self) -> (u16, String) {
        // A reload waits for the zone supervisor: longer than a plain read is allowed.
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT * 5).build();
        let url = format!("{}/reload", self.status_url());
        match agent.post(&url).call() {
            Ok(response) => {
                let code = response.status();
                (code, response.into_string().unwrap_or_default())
            }
            Err(ureq::Error::Status(code, response)) => {
                (code, response.into_string().unwrap_or_default())
            }
            Err(error) => panic!("POST {url} failed: {error}"),
        }
    }

    /// The DNS address (UDP and TCP) for queries and NOTIFY.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.dns_port))
    }

    /// The DNS address on `[::1]`, answered when the node listens there (`ipv6` or
    /// `wildcards`).
    pub fn addr_v6(&self) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::LOCALHOST, self.dns_port))
    }

    /// The XFR-over-TLS address; panics unless the configuration has `xot_port`.
    pub fn xot_addr(&self) -> SocketAddr {
        let port = self
            .xot_port
            .expect("this node was configured without xot_listen");
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// The XFR-over-QUIC address (UDP); panics unless the configuration has `xoq_port`.
    pub fn xoq_addr(&self) -> SocketAddr {
        let port = self
            .xoq_port
            .expect("this node was configured without xoq_listen");
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// The base URL of the status endpoint, e.g. `http://127.0.0.1:18053`.
    pub fn status_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.status_port)
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding the configuration, data directory and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process with SIGKILL (no chance to flush or clean up).
    pub fn kill9(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.kill9();
        }
    }

    /// Stops the process with SIGTERM (graceful shutdown), killing it if it takes too long.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.terminate(STOP_TIMEOUT);
        }
    }

    /// Starts the process again with the same configuration and data directory (stopping it
    /// first with SIGTERM if it still runs) and waits until `/healthz` answers.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// GET `/status`, parsed.
    pub fn status_json(&self) -> Value {
        let body = self.http_get("/status");
        serde_json::from_str(&body)
            .unwrap_or_else(|error| panic!("/status is not JSON ({error}):\n{body}"))
    }

    /// The `/status` entry of `zone` (matched without regard to case or the trailing dot).
    pub fn zone_status(&self, zone: &str) -> Value {
        let status = self.status_json();
        find_zone(&status, zone).unwrap_or_else(|| panic!("/status has no zone {zone}: {status}"))
    }

    /// GET `/healthz`: the HTTP status code (200 healthy, 503 not) and the JSON body.
    pub fn healthz(&self) -> (u16, Value) {
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        let url = format!("{}/healthz", self.status_url());
        let (code, body) = match agent.get(&url).call() {
            Ok(response) => (response.status(), response.into_string()),
            Err(ureq::Error::Status(code, response)) => (code, response.into_string()),
            Err(error) => panic!("GET {url} failed: {error}"),
        };
        let body = body.unwrap_or_else(|error| panic!("GET {url}: reading the body: {error}"));
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|error| panic!("/healthz is not JSON ({error}):\n{body}"));
        (code, json)
    }

    /// GET `/metrics` (Prometheus text format).
    pub fn metrics(&self) -> String {
        self.http_get("/metrics")
    }

    /// The sum of every sample of metric `name` whose labels include all of `labels`
    /// (0 when there is none).
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    /// Polls the SOA of `zone` over UDP until it has `serial`; returns how long that took.
    /// Panics after `timeout` with the last answer, `/status` and the log tail.
    pub fn wait_for_serial(&self, zone: &str, serial: u32, timeout: Duration) -> Duration {
        let mut last = String::from("no answer yet");
        let reached = poll(timeout, Duration::from_millis(20), || {
            match soa_serial(self.addr(), zone, Duration::from_millis(500)) {
                Ok(current) if current == serial => Some(()),
                Ok(current) => {
                    last = format!("serial {current}");
                    None
                }
                Err(error) => {
                    last = format!("{error:#}");
                    None
                }
            }
        });
        match reached {
            Some(((), elapsed)) => elapsed,
            None => panic!(
                "zonecast did not serve serial {serial} for {zone} within {timeout:?}; \
                 last: {last}; status: {}",
                self.status_text()
            ),
        }
    }

    /// Like `wait_for_serial`, but the time limit counts from `start`: an instant taken before
    /// the change was made on the primary, so that the primary's own work (an update, a reload,
    /// its NOTIFY) is inside `limit`. Returns the time from `start` until the serial was served.
    pub fn wait_for_serial_since(
        &self,
        zone: &str,
        serial: u32,
        start: Instant,
        limit: Duration,
    ) -> Duration {
        self.wait_for_serial(zone, serial, limit.saturating_sub(start.elapsed()));
        start.elapsed()
    }

    /// Polls `/status` until `predicate` holds for `zone`'s entry; returns that entry. Panics
    /// after `timeout` naming `what` and showing the last entry.
    pub fn wait_for_zone_status(
        &self,
        zone: &str,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let reached = poll(timeout, Duration::from_millis(50), || {
            let body = self.try_http_get("/status").ok()?;
            let status: Value = serde_json::from_str(&body).ok()?;
            let entry = find_zone(&status, zone)?;
            if predicate(&entry) {
                Some(entry)
            } else {
                last = entry;
                None
            }
        });
        match reached {
            Some((entry, _)) => entry,
            None => panic!(
                "zonecast /status for {zone} never showed {what} within {timeout:?}; last: {last}"
            ),
        }
    }

    /// Polls `/status` until `zone`'s `last_error` contains one of `words` (ignoring case);
    /// returns that entry. Panics after `timeout` with the last entry.
    pub fn wait_for_last_error(&self, zone: &str, words: &[&str], timeout: Duration) -> Value {
        let what = format!("a last_error naming one of {words:?}");
        self.wait_for_zone_status(zone, &what, timeout, |entry| {
            entry["last_error"].as_str().is_some_and(|error| {
                words
                    .iter()
                    .any(|word| crate::util::contains_ignore_case(error, word))
            })
        })
    }

    /// Polls `/status` until `zone`'s `last_error_kind` is one of `kinds`; returns that entry.
    /// Panics after `timeout` with the last entry.
    pub fn wait_for_last_error_kind(&self, zone: &str, kinds: &[&str], timeout: Duration) -> Value {
        let what = format!("a last_error_kind among {kinds:?}");
        self.wait_for_zone_status(zone, &what, timeout, |entry| {
            entry["last_error_kind"]
                .as_str()
                .is_some_and(|kind| kinds.contains(&kind))
        })
    }

    /// Waits until `zone` reports a failure of one of `kinds` whose `last_error` names one of
    /// `words` (ignoring case), and returns the zone's status; panics otherwise.
    pub fn wait_for_error(
        &self,
        zone: &str,
        kinds: &[&str],
        words: &[&str],
        timeout: Duration,
    ) -> Value {
        let status = self.wait_for_last_error_kind(zone, kinds, timeout);
        let error = status["last_error"].as_str().unwrap_or_default();
        assert!(
            words
                .iter()
                .any(|word| crate::util::contains_ignore_case(error, word)),
            "{zone}: last_error names none of {words:?}: {status}"
        );
        status
    }

    /// One UDP query with default options; panics if there is no answer.
    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        query_udp(self.addr(), name, rtype, &QueryOptions::default())
            .unwrap_or_else(|error| panic!("zonecast did not answer {name} {rtype}: {error:#}"))
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::util::file_tail(&self.log_path(), lines)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zonecast.log")
    }

    /// `/status` as text, or the reason it could not be fetched, for failure messages.
    fn status_text(&self) -> String {
        self.try_http_get("/status")
            .unwrap_or_else(|error| format!("(unavailable: {error})"))
    }

    fn http_get(&self, path: &str) -> String {
        self.try_http_get(path)
            .unwrap_or_else(|error| panic!("GET {}{path} failed: {error}", self.status_url()))
    }

    fn try_http_get(&self, path: &str) -> Result<String, String> {
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        let url = format!("{}{path}", self.status_url());
        match agent.get(&url).call() {
            Ok(response) => response
                .into_string()
                .map_err(|error| format!("reading the body: {error}")),
            Err(ureq::Error::Status(code, response)) => Err(format!(
                "HTTP {code}: {}",
                response.into_string().unwrap_or_default()
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Starts the process and waits for `/healthz`.
    fn launch(&mut self) {
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_BACKTRACE", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let mut daemon = Daemon::spawn("zonecast", &mut command, &self.log_path());
        let start = Instant::now();
        let mut last_error = String::new();
        let mut exited = None;
        let healthy = poll(START_TIMEOUT, Duration::from_millis(50), || {
            if let Some(status) = daemon.exit_status() {
                exited = Some(status);
                // Stop polling: a dead process never becomes healthy.
                return Some(false);
            }
            // 503 is an answer too: it says which zones are not loaded yet, and tests start
            // nodes whose zones cannot load on purpose.
            match self.try_http_get("/healthz") {
                Ok(_) => Some(true),
                Err(error) if error.starts_with("HTTP 503") => Some(true),
                Err(error) => {
                    last_error = error;
                    None
                }
            }
        });
        match (healthy, exited) {
            (Some((true, _)), _) => {
                self.daemon = Some(daemon);
            }
            (_, Some(status)) => panic!(
                "zonecast exited ({status}) before /healthz answered, {:?} after start",
                start.elapsed()
            ),
            _ => {
                panic!("zonecast's /healthz did not answer within {START_TIMEOUT:?}: {last_error}")
            }
        }
    }
}

/// The entry of `zone` in a `/status` document.
pub fn find_zone(status: &Value, zone: &str) -> Option<Value> {
    let wanted = zone.trim_end_matches('.').to_ascii_lowercase();
    status
        .get("zones")?
        .as_array()?
        .iter()
        .find(|entry| {
            entry
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| name.trim_end_matches('.').eq_ignore_ascii_case(&wanted))
        })
        .cloned()
}

/// The sum of the samples of `name` in Prometheus text `metrics` whose labels include all of
/// `labels`.
pub fn metric_sum(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((series_name, rest)) => (series_name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let all_present = labels.iter().all(|(key, value)| {
                series_labels
                    .split(',')
                    .any(|pair| pair.trim() == format!("{key}=\"{value}\""))
            });
            if all_present {
                value.trim().parse::<f64>().ok()
            } else {
                None
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_matches_label_subsets() {
        let text = "# HELP zonecast_transfers_total Transfers.\n\
                    # TYPE zonecast_transfers_total counter\n\
                    zonecast_transfers_total{kind=\"ixfr\",outcome=\"success\"} 2\n\
                    zonecast_transfers_total{kind=\"axfr\",outcome=\"success\"} 1\n\
                    zonecast_transfers_total{kind=\"axfr\",outcome=\"failure\"} 3\n\
                    zonecast_zone_serial{zone=\"example.test.\"} 7\n";
        assert_eq!(
            metric_sum(text, "zonecast_transfers_total", &[("kind", "ixfr")]),
            2.0
        );
        assert_eq!(
            metric_sum(text, "zonecast_transfers_total", &[("outcome", "failure")]),
            3.0
        );
        assert_eq!(metric_sum(text, "zonecast_transfers_total", &[]), 6.0);
        assert_eq!(metric_sum(text, "zonecast_missing", &[]), 0.0);
    }

    #[test]
    fn configuration_is_valid_toml_shape() {
        let key = TsigKey::generate("xfr-key", "hmac-sha256");
        let primary = SocketAddr::from((Ipv4Addr::LOCALHOST, 15300));
        let config = ZonecastConfig::new()
            .primary_zone("example.test", primary, Some(&key))
            .file_zone("file.test", Path::new("/tmp/file.test.zone"));
        let text = config.to_toml(
            Path::new("/tmp/data"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 15353)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 18053)),
        );
        assert!(text.contains("listen = [\"127.0.0.1:15353\"]"), "{text}");
        assert!(
            text.contains(
                "primaries = [{ address = \"127.0.0.1:15300\", tsig_key = \"xfr-key\" }]"
            ),
            "{text}"
        );
        assert!(text.contains("file = \"/tmp/file.test.zone\""), "{text}");
        assert_eq!(text.matches("[[tsig_key]]").count(), 1);
    }

    #[test]
    fn encrypted_sources_listeners_and_acls_are_written() {
        let config = ZonecastConfig::new()
            .tls(TlsIdentity {
                certificate: PathBuf::from("/tmp/ca/node-a.crt"),
                private_key: PathBuf::from("/tmp/ca/node-a.key"),
                ca: Some(PathBuf::from("/tmp/ca/ca.crt")),
            })
            .xoq_port(15853)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .allow_transfer(AclEntry::keyed("127.0.0.0/8", "k"))
            .zone(
                ZoneConfig::primaries(
                    "tls.test",
                    vec![
                        Primary::tls(
                            SocketAddr::from((Ipv4Addr::LOCALHOST, 8530)),
                            "xot.example.test",
                            TlsTrust::Pin(vec!["cGlu".to_owned()]),
                        )
                        .with_key("k"),
                    ],
                )
                .also_notify(SocketAddr::from((Ipv4Addr::LOCALHOST, 15354))),
            )
            .zone(ZoneConfig::peers(
                "peer.test",
                vec![Peer {
                    address: SocketAddr::from((Ipv4Addr::LOCALHOST, 15855)),
                    name: "node-b".to_owned(),
                }],
            ));
        let text = config.to_toml(
            Path::new("/tmp/data"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 15353)),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 18053)),
        );
        for expected in [
            "xoq_listen = [\"127.0.0.1:15853\"]",
            "[tls]\ncertificate = \"/tmp/ca/node-a.crt\"\nprivate_key = \"/tmp/ca/node-a.key\"\nca = \"/tmp/ca/ca.crt\"",
            "allow = [{ prefix = \"127.0.0.1\" }, { prefix = \"127.0.0.0/8\", tsig_key = \"k\" }]",
            "primaries = [{ address = \"127.0.0.1:8530\", tsig_key = \"k\", transport = \"tls\", \
             tls_name = \"xot.example.test\", tls_pin = [\"cGlu\"] }]",
            "also_notify = [\"127.0.0.1:15354\"]",
            "peers = [{ address = \"127.0.0.1:15855\", name = \"node-b\" }]",
        ] {
            assert!(text.contains(expected), "{expected}\nnot in\n{text}");
        }
        assert!(!text.contains("xot_listen"), "{text}");
    }

    #[test]
    fn wildcards_replace_the_loopback_listeners() {
        let dns = SocketAddr::from((Ipv4Addr::LOCALHOST, 15353));
        let status = SocketAddr::from((Ipv4Addr::LOCALHOST, 18053));
        let text = ZonecastConfig::new().with_ipv6().with_wildcards().to_toml(
            Path::new("/tmp/data"),
            dns,
            status,
        );
        assert!(
            text.contains("listen = [\"0.0.0.0:15353\", \"[::]:15353\"]"),
            "{text}"
        );
        let text = ZonecastConfig::new()
            .with_ipv6()
            .to_toml(Path::new("/tmp/data"), dns, status);
        assert!(
            text.contains("listen = [\"127.0.0.1:15353\", \"[::1]:15353\"]"),
            "{text}"
        );
    }

    #[test]
    fn zones_are_found_without_regard_to_case_or_dot() {
        let status: Value = serde_json::json!({"zones": [{"name": "Example.test.", "serial": 3}]});
        assert_eq!(
            find_zone(&status, "example.test").and_then(|zone| zone["serial"].as_u64()),
            Some(3)
        );
        assert!(find_zone(&status, "other.test").is_none());
    }
}
