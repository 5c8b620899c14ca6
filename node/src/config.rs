//! The configuration file: TOML parsed once into validated types.
//!
//! Every problem is collected (not just the first) and names the field it concerns, so that
//! `zonecast check-config` can list them all. Nothing here opens sockets or databases; the
//! only file system access is reading the config itself, TSIG secret files, and checking that
//! zone files exist.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hickory_proto::rr::Name;
use serde::Deserialize;

use crate::dns::tsig::{Algorithm, TsigKey};
use crate::dns::zone::canonical_origin;
use crate::tls;

/// Default DNS port for primaries given without one.
const DNS_PORT: u16 = 53;

/// Default port of XFR-over-TLS (RFC 9103) and XFR-over-QUIC (RFC 9250).
const XFR_TLS_PORT: u16 = 853;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped fields.
    #[error("{path}: {source}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The parser's message, which names the line and field.
        source: Box<toml::de::Error>,
    },
    /// Values are well-formed but wrong; every problem is listed.
    #[error("{path}: {} problem(s):\n{}", problems.len(), ProblemList(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Each problem, with the field it concerns.
        problems: Vec<Problem>,
    },
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as a path (`zone[2].primaries[0].address`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "  {}: {}", problem.field, problem.message)?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Node-wide settings.
    pub node: NodeConfig,
    /// The DNS listeners.
    pub server: ServerConfig,
    /// The HTTP status endpoint.
    pub status: StatusConfig,
    /// Clamps on SOA timers.
    pub timers: TimerClamps,
    /// Limits on zones and transfers.
    pub limits: Limits,
    /// Serving transfers to other secondaries.
    pub transfer: TransferConfig,
    /// This node's certificate, if it has one.
    pub tls: Option<TlsConfig>,
    /// Every TSIG key defined, for verifying signed queries (RFC 8945 5.2).
    pub tsig_keys: Vec<Arc<TsigKey>>,
    /// The zones this node serves.
    pub zones: Vec<ZoneConfig>,
}

/// Serving transfers to other secondaries.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferConfig {
    /// Most transfers served at once.
    pub transfers_max: usize,
    /// Most transfers in (from primaries or peers) in progress at once, across all zones.
    pub transfers_in_max: usize,
    /// Most SOA checks in flight at once, across all zones.
    pub soa_checks_max: usize,
    /// Most differences kept per zone for IXFR.
    pub journal_diffs_max: usize,
    /// Most bytes of differences kept per zone for IXFR.
    pub journal_bytes_max: u64,
}

/// Who may transfer a zone: a request is allowed when one entry's prefix holds the source
/// address and, if the entry names a key, the request is signed with that key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferAcl {
    /// The entries, any of which may allow a request.
    pub entries: Vec<AclEntry>,
}

/// One ACL entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AclEntry {
    /// Source addresses it covers.
    pub prefix: ipnet::IpNet,
    /// The key requests must be signed with, if any.
    pub tsig_key: Option<Arc<TsigKey>>,
}

impl TransferAcl {
    /// The keys a request from `source` may be signed with (for TSIG verification).
    pub fn keys_for(&self, source: IpAddr) -> impl Iterator<Item = &Arc<TsigKey>> {
        self.entries
            .iter()
            .filter(move |entry| entry.prefix.contains(&source))
            .filter_map(|entry| entry.tsig_key.as_ref())
    }

    /// True when a request from `source`, signed with `key` (verified) or unsigned, is allowed.
    pub fn allows(&self, source: IpAddr, key: Option<&Name>) -> bool {
        self.entries.iter().any(|entry| {
            entry.prefix.contains(&source)
                && match (&entry.tsig_key, key) {
                    (None, _) => true,
                    (Some(required), Some(used)) => required.name.eq_ignore_root(used),
                    (Some(_), None) => false,
                }
        })
    }
}

/// Node-wide settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
}

/// The DNS listeners.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses answering queries and NOTIFY over UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Extra addresses that accept only NOTIFY (UDP and TCP).
    pub notify_listen: Vec<SocketAddr>,
    /// The largest UDP payload this server sends, whatever a client offers (RFC 6891 6.2.5).
    pub edns_payload_max: u16,
    /// Most TCP connections open at once.
    pub tcp_connections_max: usize,
    /// A TCP connection idle this long is closed (RFC 7766 6.2.3).
    pub tcp_idle_timeout: Duration,
    /// XFR-over-TLS listeners (TCP, ALPN "dot"); they answer queries too.
    pub xot_listen: Vec<SocketAddr>,
    /// XoT clients must present a certificate from the cluster CA.
    pub xot_require_client_cert: bool,
    /// XFR-over-QUIC listeners (UDP, ALPN "doq", mutual TLS with the cluster CA).
    pub xoq_listen: Vec<SocketAddr>,
    /// At shutdown, queries are still answered this long after the (future) anycast route is
    /// withdrawn, so that traffic already on its way is not dropped.
    pub shutdown_drain: Duration,
}

/// The HTTP status endpoint.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Address of `/status`, `/metrics` and `/healthz`.
    pub listen: SocketAddr,
}

/// Clamps on SOA timers (as in Knot's `refresh-min-interval` and friends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerClamps {
    /// Shortest REFRESH used.
    pub refresh_min: Duration,
    /// Longest REFRESH used.
    pub refresh_max: Duration,
    /// Shortest RETRY used.
    pub retry_min: Duration,
    /// Longest RETRY used.
    pub retry_max: Duration,
    /// Shortest EXPIRE used.
    pub expire_min: Duration,
    /// Longest EXPIRE used.
    pub expire_max: Duration,
}

/// Limits on zones and transfers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most records in one zone.
    pub zone_records_max: u64,
    /// Most bytes of DNS messages in one transfer.
    pub zone_bytes_max: u64,
    /// Longest time one transfer may take.
    pub transfer_timeout: Duration,
    /// Longest wait for one answer (SOA query, NOTIFY, a transfer's next message).
    pub query_timeout: Duration,
}

/// One zone this node serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// The apex, lowercase and fully qualified.
    pub name: Name,
    /// Where the data comes from.
    pub source: ZoneSource,
    /// Addresses allowed to send NOTIFY for this zone.
    pub notify_allow: Vec<IpAddr>,
    /// Who may transfer this zone from us.
    pub allow_transfer: TransferAcl,
    /// Downstream servers told of every new version by NOTIFY.
    pub also_notify: Vec<SocketAddr>,
}

/// Where a zone's data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneSource {
    /// Primaries tried in order.
    Primaries(Vec<Primary>),
    /// A local RFC 1035 master file, reloaded when it changes.
    File(PathBuf),
}

/// One primary server.
#[derive(Debug, Clone, PartialEq)]
pub struct Primary {
    /// Its address and port.
    pub address: SocketAddr,
    /// The key that signs requests to it and must sign its answers.
    pub tsig_key: Option<Arc<TsigKey>>,
    /// How transfers from it travel.
    pub transport: SourceProtocol,
}

/// How a zone's source is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceProtocol {
    /// Plain TCP (and UDP for SOA queries).
    Tcp,
    /// XFR-over-TLS (RFC 9103); never falls back to cleartext.
    Tls {
        /// The name the server's certificate must carry (also sent as SNI).
        name: String,
        /// How the server is authenticated.
        trust: TlsTrust,
        /// Present this node's certificate (`[tls]`) for mutual TLS.
        client_certificate: bool,
    },
    /// XFR-over-QUIC (RFC 9250) to a peer, mutual TLS with the cluster CA.
    Quic {
        /// The name in the peer's cluster certificate.
        name: String,
    },
}

/// How a TLS client authenticates a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// A CA file: the certificate must chain to it and carry the name (strict profile).
    Ca(PathBuf),
    /// SHA-256 SPKI pins (base64), as `kdig +tls-pin` takes them (strict profile).
    Pin(Vec<String>),
    /// Any certificate: protects against passive listeners only (opportunistic profile);
    /// only when the operator asks for it.
    Opportunistic,
}

/// This node's certificate, for XoT serving, XoQ and mutual TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key.
    pub private_key: PathBuf,
    /// The cluster CA (PEM), which peers' certificates must chain to.
    pub ca: Option<PathBuf>,
}

impl Config {
    /// Reads and validates a configuration file. Relative paths in it are resolved against the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|error| match error {
            ParseError::Syntax(source) => ConfigError::Syntax {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
            ParseError::Invalid(problems) => ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            },
        })
    }

    /// Parses and validates configuration text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ParseError> {
        let raw: RawConfig = toml::from_str(text).map_err(ParseError::Syntax)?;
        let mut check = Checker {
            base: base.to_path_buf(),
            problems: Vec::new(),
        };
        let config = check.config(raw);
        match config {
            Some(config) if check.problems.is_empty() => Ok(config),
            _ => Err(ParseError::Invalid(check.problems)),
        }
    }
}

/// Why configuration text was rejected (without the file name).
#[derive(Debug)]
pub enum ParseError {
    /// Not TOML, or unknown or mistyped fields.
    Syntax(toml::de::Error),
    /// Wrong values.
    Invalid(Vec<Problem>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    server: RawServer,
    #[serde(default)]
    status: RawStatus,
    #[serde(default)]
    timers: RawTimers,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    transfer: RawTransfer,
    tls: Option<RawTls>,
    #[serde(default)]
    tsig_key: Vec<RawKey>,
    #[serde(default)]
    zone: Vec<RawZone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTransfer {
    allow: Vec<RawAclEntry>,
    transfers_max: usize,
    transfers_in_max: usize,
    soa_checks_max: usize,
    journal_diffs_max: usize,
    journal_bytes_max: u64,
}

impl Default for RawTransfer {
    fn default() -> Self {
        RawTransfer {
            // Nobody may transfer unless the operator says so (as in NSD and Knot).
            allow: Vec::new(),
            transfers_max: 16,
            // As BIND's `transfers-in` default (10) and a little more: transfers are cheap here.
            transfers_in_max: 16,
            // SOA checks are single datagrams: many may be in flight, but not 100k at once.
            soa_checks_max: 256,
            journal_diffs_max: 100,
            journal_bytes_max: 16 << 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAclEntry {
    prefix: String,
    tsig_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Vec<String>,
    #[serde(default)]
    notify_listen: Vec<String>,
    #[serde(default = "default_edns_payload_max")]
    edns_payload_max: u16,
    #[serde(default = "default_tcp_connections_max")]
    tcp_connections_max: usize,
    #[serde(default = "default_tcp_idle_timeout", with = "humantime_serde")]
    tcp_idle_timeout: Duration,
    #[serde(default)]
    xot_listen: Vec<String>,
    #[serde(default)]
    xot_require_client_cert: bool,
    #[serde(default)]
    xoq_listen: Vec<String>,
    #[serde(default = "default_shutdown_drain", with = "humantime_serde")]
    shutdown_drain: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificate: PathBuf,
    private_key: PathBuf,
    ca: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    address: String,
    name: String,
    tsig_key: Option<String>,
}

fn default_edns_payload_max() -> u16 {
    // The DNS Flag Day 2020 value, which avoids IP fragmentation on common paths.
    1232
}

fn default_tcp_connections_max() -> usize {
    1024
}

fn default_shutdown_drain() -> Duration {
    Duration::from_millis(200)
}

/// Longest drain at shutdown: it delays every stop, and systemd's stop timeout is 90 s.
const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(30);

fn default_tcp_idle_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    #[serde(default = "default_status_listen")]
    listen: String,
}

impl Default for RawStatus {
    fn default() -> Self {
        RawStatus {
            listen: default_status_listen(),
        }
    }
}

fn default_status_listen() -> String {
    "127.0.0.1:8053".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimers {
    #[serde(with = "humantime_serde")]
    refresh_min: Duration,
    #[serde(with = "humantime_serde")]
    refresh_max: Duration,
    #[serde(with = "humantime_serde")]
    retry_min: Duration,
    #[serde(with = "humantime_serde")]
    retry_max: Duration,
    #[serde(with = "humantime_serde")]
    expire_min: Duration,
    #[serde(with = "humantime_serde")]
    expire_max: Duration,
}

impl Default for RawTimers {
    fn default() -> Self {
        // Knot's defaults: short enough minimums not to stall tests, maximums that keep a
        // mistyped SOA from silencing refreshes for years.
        RawTimers {
            refresh_min: Duration::from_secs(2),
            refresh_max: Duration::from_secs(7 * 86_400),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(86_400),
            expire_min: Duration::from_secs(3),
            expire_max: Duration::from_secs(8 * 7 * 86_400),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    zone_records_max: u64,
    zone_bytes_max: u64,
    #[serde(with = "humantime_serde")]
    transfer_timeout: Duration,
    #[serde(with = "humantime_serde")]
    query_timeout: Duration,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            zone_records_max: 10_000_000,
            zone_bytes_max: 2 << 30,
            transfer_timeout: Duration::from_secs(600),
            query_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    algorithm: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: String,
    #[serde(default)]
    primaries: Vec<RawPrimary>,
    #[serde(default)]
    peers: Vec<RawPeer>,
    file: Option<PathBuf>,
    notify_allow: Option<Vec<String>>,
    allow_transfer: Option<Vec<RawAclEntry>>,
    #[serde(default)]
    also_notify: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrimary {
    address: String,
    tsig_key: Option<String>,
    #[serde(default)]
    transport: RawTransport,
    tls_name: Option<String>,
    tls_ca: Option<PathBuf>,
    #[serde(default)]
    tls_pin: Vec<String>,
    #[serde(default)]
    tls_opportunistic: bool,
    #[serde(default)]
    tls_client_certificate: bool,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawTransport {
    #[default]
    Tcp,
    Tls,
}

struct Checker {
    base: PathBuf,
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let data_dir = self.path(&raw.node.data_dir);
        if data_dir.exists() && !data_dir.is_dir() {
            self.problem(
                "node.data_dir",
                format!("{} is not a directory", data_dir.display()),
            );
        }
        let tls = raw.tls.and_then(|raw| self.tls(raw));
        let server = self.server(raw.server, tls.as_ref());
        let status_listen = self.socket_addr("status.listen", &raw.status.listen, None);
        let timers = self.timers(&raw.timers);
        let limits = self.limits(&raw.limits);
        let keys = self.keys(raw.tsig_key);
        let transfer_acl = self.acl("transfer.allow", &raw.transfer.allow, &keys);
        if raw.transfer.transfers_max == 0 {
            self.problem("transfer.transfers_max", "must be at least 1");
        }
        if raw.transfer.transfers_in_max == 0 {
            self.problem("transfer.transfers_in_max", "must be at least 1");
        }
        if raw.transfer.soa_checks_max == 0 {
            self.problem("transfer.soa_checks_max", "must be at least 1");
        }
        if raw.transfer.journal_diffs_max == 0 {
            self.problem("transfer.journal_diffs_max", "must be at least 1");
        }
        let transfer = TransferConfig {
            transfers_max: raw.transfer.transfers_max,
            transfers_in_max: raw.transfer.transfers_in_max,
            soa_checks_max: raw.transfer.soa_checks_max,
            journal_diffs_max: raw.transfer.journal_diffs_max,
            journal_bytes_max: raw.transfer.journal_bytes_max,
        };
        let zones = self.zones(raw.zone, &keys, &transfer_acl, tls.as_ref());
        Some(Config {
            node: NodeConfig { data_dir },
            server: server?,
            status: StatusConfig {
                listen: status_listen?,
            },
            timers,
            limits,
            transfer,
            tls,
            tsig_keys: keys.values().cloned().collect(),
            zones,
        })
    }

    /// Resolves `[tls]` and checks, now rather than at the first handshake, that the key
    /// matches the certificate and that the certificate chains to the cluster CA.
    fn tls(&mut self, raw: RawTls) -> Option<TlsConfig> {
        let tls = TlsConfig {
            certificate: self.path(&raw.certificate),
            private_key: self.path(&raw.private_key),
            ca: raw.ca.as_deref().map(|ca| self.path(ca)),
        };
        let identity = match tls::load_identity(&tls.certificate, &tls.private_key) {
            Ok(identity) => Some(identity),
            Err(error) => {
                self.problem("tls.certificate", error.to_string());
                None
            }
        };
        if let Some(ca_path) = &tls.ca {
            match tls::load_ca(ca_path) {
                Ok(ca) => {
                    if let Some(identity) = &identity
                        && let Err(error) =
                            tls::check_signed_by(identity, &ca, ca_path, &tls.certificate)
                    {
                        self.problem("tls.certificate", error.to_string());
                    }
                }
                Err(error) => self.problem("tls.ca", error.to_string()),
            }
        }
        Some(tls)
    }

    fn acl(
        &mut self,
        field: &str,
        raw: &[RawAclEntry],
        keys: &HashMap<String, Arc<TsigKey>>,
    ) -> TransferAcl {
        let mut entries = Vec::new();
        for (index, entry) in raw.iter().enumerate() {
            let prefix = match entry.prefix.parse::<ipnet::IpNet>() {
                Ok(prefix) => Some(prefix),
                Err(_) => match entry.prefix.parse::<IpAddr>() {
                    Ok(ip) => Some(ipnet::IpNet::from(ip)),
                    Err(_) => {
                        self.problem(
                            format!("{field}[{index}].prefix"),
                            format!("`{}` is not an address or prefix like 192.0.2.0/24 or 2001:db8::/32", entry.prefix),
                        );
                        None
                    }
                },
            };
            let tsig_key = match &entry.tsig_key {
                None => None,
                Some(name) => match keys.get(name) {
                    Some(key) => Some(key.clone()),
                    None => {
                        self.problem(
                            format!("{field}[{index}].tsig_key"),
                            format!("no [[tsig_key]] is named `{name}`"),
                        );
                        continue;
                    }
                },
            };
            if let Some(prefix) = prefix {
                entries.push(AclEntry { prefix, tsig_key });
            }
        }
        TransferAcl { entries }
    }

    fn socket_addr(
        &mut self,
        field: &str,
        text: &str,
        default_port: Option<u16>,
    ) -> Option<SocketAddr> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Some(address);
        }
        if let (Some(port), Ok(ip)) = (default_port, text.parse::<IpAddr>()) {
            return Some(SocketAddr::new(ip, port));
        }
        self.problem(
            field,
            format!(
                "`{text}` is not an address with a port, like 192.0.2.1:53 or [2001:db8::1]:53"
            ),
        );
        None
    }

    fn server(&mut self, raw: RawServer, tls: Option<&TlsConfig>) -> Option<ServerConfig> {
        if raw.listen.is_empty() {
            self.problem("server.listen", "at least one address is needed");
        }
        let mut listen = Vec::new();
        for (index, text) in raw.listen.iter().enumerate() {
            listen.extend(self.socket_addr(&format!("server.listen[{index}]"), text, None));
        }
        let mut notify_listen = Vec::new();
        for (index, text) in raw.notify_listen.iter().enumerate() {
            notify_listen.extend(self.socket_addr(
                &format!("server.notify_listen[{index}]"),
                text,
                None,
            ));
        }
        let mut xot_listen = Vec::new();
        for (index, text) in raw.xot_listen.iter().enumerate() {
            xot_listen.extend(self.socket_addr(
                &format!("server.xot_listen[{index}]"),
                text,
                Some(XFR_TLS_PORT),
            ));
        }
        let mut xoq_listen = Vec::new();
        for (index, text) in raw.xoq_listen.iter().enumerate() {
            xoq_listen.extend(self.socket_addr(
                &format!("server.xoq_listen[{index}]"),
                text,
                Some(XFR_TLS_PORT),
            ));
        }
        let mut seen = HashSet::new();
        for address in listen.iter().chain(&notify_listen).chain(&xot_listen) {
            if !seen.insert(*address) {
                self.problem("server.listen", format!("{address} is listed twice"));
            }
        }
        if !xot_listen.is_empty() && tls.is_none() {
            self.problem(
                "server.xot_listen",
                "XFR-over-TLS needs a certificate: add a [tls] section",
            );
        }
        if raw.xot_require_client_cert && tls.is_none_or(|tls| tls.ca.is_none()) {
            self.problem(
                "server.xot_require_client_cert",
                "checking client certificates needs [tls].ca",
            );
        }
        if !xoq_listen.is_empty() && tls.is_none_or(|tls| tls.ca.is_none()) {
            self.problem(
                "server.xoq_listen",
                "XFR-over-QUIC uses mutual TLS: add [tls] with certificate, private_key and ca",
            );
        }
        if raw.edns_payload_max < 512 {
            self.problem("server.edns_payload_max", "must be at least 512 (RFC 6891)");
        }
        if raw.tcp_connections_max == 0 {
            self.problem("server.tcp_connections_max", "must be at least 1");
        }
        if raw.shutdown_drain > SHUTDOWN_DRAIN_MAX {
            self.problem(
                "server.shutdown_drain",
                format!(
                    "must be at most {}",
                    humantime::format_duration(SHUTDOWN_DRAIN_MAX)
                ),
            );
        }
        if raw.tcp_idle_timeout.is_zero() {
            self.problem("server.tcp_idle_timeout", "must be longer than zero");
        }
        Some(ServerConfig {
            listen,
            notify_listen,
            edns_payload_max: raw.edns_payload_max,
            tcp_connections_max: raw.tcp_connections_max,
            tcp_idle_timeout: raw.tcp_idle_timeout,
            shutdown_drain: raw.shutdown_drain,
            xot_listen,
            xot_require_client_cert: raw.xot_require_client_cert,
            xoq_listen,
        })
    }

    fn timers(&mut self, raw: &RawTimers) -> TimerClamps {
        for (name, min, max) in [
            ("refresh", raw.refresh_min, raw.refresh_max),
            ("retry", raw.retry_min, raw.retry_max),
            ("expire", raw.expire_min, raw.expire_max),
        ] {
            if min.is_zero() {
                self.problem(format!("timers.{name}_min"), "must be longer than zero");
            }
            if min > max {
                self.problem(
                    format!("timers.{name}_min"),
                    format!("is longer than timers.{name}_max"),
                );
            }
        }
        TimerClamps {
            refresh_min: raw.refresh_min,
            refresh_max: raw.refresh_max,
            retry_min: raw.retry_min,
            retry_max: raw.retry_max,
            expire_min: raw.expire_min,
            expire_max: raw.expire_max,
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        if raw.zone_records_max < 2 {
            self.problem(
                "limits.zone_records_max",
                "a zone needs at least an SOA and an NS record",
            );
        }
        if raw.zone_bytes_max < 512 {
            self.problem("limits.zone_bytes_max", "must be at least 512");
        }
        if raw.transfer_timeout.is_zero() {
            self.problem("limits.transfer_timeout", "must be longer than zero");
        }
        if raw.query_timeout.is_zero() {
            self.problem("limits.query_timeout", "must be longer than zero");
        }
        Limits {
            zone_records_max: raw.zone_records_max,
            zone_bytes_max: raw.zone_bytes_max,
            transfer_timeout: raw.transfer_timeout,
            query_timeout: raw.query_timeout,
        }
    }

    fn keys(&mut self, raw: Vec<RawKey>) -> HashMap<String, Arc<TsigKey>> {
        let mut keys = HashMap::new();
        for (index, key) in raw.into_iter().enumerate() {
            let field = format!("tsig_key[{index}]");
            let name = match Name::from_ascii(&key.name) {
                Ok(mut name) => {
                    name.set_fqdn(true);
                    Some(name.to_lowercase())
                }
                Err(error) => {
                    self.problem(
                        format!("{field}.name"),
                        format!("`{}` is not a domain name: {error}", key.name),
                    );
                    None
                }
            };
            let algorithm = Algorithm::from_config_name(&key.algorithm);
            if algorithm.is_none() {
                self.problem(
                    format!("{field}.algorithm"),
                    format!(
                        "`{}` is not supported; use hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1",
                        key.algorithm
                    ),
                );
            }
            let secret = match (key.secret, key.secret_file) {
                (Some(secret), None) => self.secret(&format!("{field}.secret"), &secret),
                (None, Some(file)) => {
                    let path = self.path(&file);
                    match std::fs::read_to_string(&path) {
                        Ok(text) => {
                            self.secret(&format!("{field}.secret_file"), secret_from_file(&text))
                        }
                        Err(error) => {
                            self.problem(
                                format!("{field}.secret_file"),
                                format!("cannot read {}: {error}", path.display()),
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.problem(
                        field.clone(),
                        "give exactly one of `secret` and `secret_file`",
                    );
                    None
                }
            };
            if keys.contains_key(&key.name) {
                self.problem(
                    format!("{field}.name"),
                    format!("key `{}` is defined twice", key.name),
                );
            }
            if let (Some(name), Some(algorithm), Some(secret)) = (name, algorithm, secret) {
                keys.insert(
                    key.name,
                    Arc::new(TsigKey {
                        name,
                        algorithm,
                        secret,
                    }),
                );
            }
        }
        keys
    }

    fn key_ref(
        &mut self,
        field: &str,
        name: Option<&String>,
        keys: &HashMap<String, Arc<TsigKey>>,
    ) -> Option<Arc<TsigKey>> {
        let name = name?;
        let key = keys.get(name).cloned();
        if key.is_none() {
            self.problem(
                format!("{field}.tsig_key"),
                format!("no [[tsig_key]] is named `{name}`"),
            );
        }
        key
    }

    fn primary(
        &mut self,
        field: &str,
        raw: &RawPrimary,
        keys: &HashMap<String, Arc<TsigKey>>,
        tls: Option<&TlsConfig>,
    ) -> Option<Primary> {
        let tsig_key = self.key_ref(field, raw.tsig_key.as_ref(), keys);
        let tls_fields = raw.tls_name.is_some()
            || raw.tls_ca.is_some()
            || !raw.tls_pin.is_empty()
            || raw.tls_opportunistic
            || raw.tls_client_certificate;
        let transport = match raw.transport {
            RawTransport::Tcp => {
                if tls_fields {
                    self.problem(
                        format!("{field}.transport"),
                        "tls_* settings need transport = \"tls\"",
                    );
                }
                SourceProtocol::Tcp
            }
            RawTransport::Tls => {
                let trust = match (&raw.tls_ca, raw.tls_pin.is_empty(), raw.tls_opportunistic) {
                    (Some(ca), true, false) => {
                        let path = self.path(ca);
                        if let Err(error) = tls::load_ca(&path) {
                            self.problem(format!("{field}.tls_ca"), error.to_string());
                        }
                        Some(TlsTrust::Ca(path))
                    }
                    (None, false, false) => Some(TlsTrust::Pin(raw.tls_pin.clone())),
                    (None, true, true) => Some(TlsTrust::Opportunistic),
                    _ => {
                        self.problem(
                            field.to_string(),
                            "give exactly one of tls_ca (strict), tls_pin (strict) and tls_opportunistic = true",
                        );
                        None
                    }
                };
                let name = raw.tls_name.clone().or_else(|| {
                    self.problem(
                        format!("{field}.tls_name"),
                        "the name the primary's certificate carries is needed",
                    );
                    None
                });
                if raw.tls_client_certificate && tls.is_none() {
                    self.problem(
                        format!("{field}.tls_client_certificate"),
                        "needs this node's certificate in [tls]",
                    );
                }
                SourceProtocol::Tls {
                    name: name?,
                    trust: trust?,
                    client_certificate: raw.tls_client_certificate,
                }
            }
        };
        let default_port = match transport {
            SourceProtocol::Tcp => DNS_PORT,
            _ => XFR_TLS_PORT,
        };
        let address = self.socket_addr(
            &format!("{field}.address"),
            &raw.address,
            Some(default_port),
        )?;
        Some(Primary {
            address,
            tsig_key,
            transport,
        })
    }

    fn peer(
        &mut self,
        field: &str,
        raw: &RawPeer,
        keys: &HashMap<String, Arc<TsigKey>>,
        tls: Option<&TlsConfig>,
    ) -> Option<Primary> {
        let tsig_key = self.key_ref(field, raw.tsig_key.as_ref(), keys);
        if tls.is_none_or(|tls| tls.ca.is_none()) {
            self.problem(field.to_string(), "peers are reached over QUIC with mutual TLS: add [tls] with certificate, private_key and ca");
        }
        let address = self.socket_addr(
            &format!("{field}.address"),
            &raw.address,
            Some(XFR_TLS_PORT),
        )?;
        Some(Primary {
            address,
            tsig_key,
            transport: SourceProtocol::Quic {
                name: raw.name.clone(),
            },
        })
    }

    fn secret(&mut self, field: &str, text: &str) -> Option<Vec<u8>> {
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(secret) if !secret.is_empty() => Some(secret),
            Ok(_) => {
                self.problem(field, "the secret is empty");
                None
            }
            Err(error) => {
                self.problem(field, format!("the secret is not valid base64: {error}"));
                None
            }
        }
    }

    fn zones(
        &mut self,
        raw: Vec<RawZone>,
        keys: &HashMap<String, Arc<TsigKey>>,
        transfer_acl: &TransferAcl,
        tls: Option<&TlsConfig>,
    ) -> Vec<ZoneConfig> {
        let mut zones = Vec::new();
        let mut seen = HashSet::new();
        for (index, zone) in raw.into_iter().enumerate() {
            let field = format!("zone[{index}]");
            let name = match Name::from_ascii(&zone.name) {
                Ok(name) => canonical_origin(&name),
                Err(error) => {
                    self.problem(
                        format!("{field}.name"),
                        format!("`{}` is not a domain name: {error}", zone.name),
                    );
                    continue;
                }
            };
            if !seen.insert(name.clone()) {
                self.problem(
                    format!("{field}.name"),
                    format!("zone {name} is configured twice"),
                );
            }
            let no_sources = zone.primaries.is_empty() && zone.peers.is_empty();
            let source = match (zone.file, no_sources) {
                (Some(file), true) => {
                    let path = self.path(&file);
                    if !path.is_file() {
                        self.problem(
                            format!("{field}.file"),
                            format!("{} is not a readable file", path.display()),
                        );
                    }
                    ZoneSource::File(path)
                }
                (None, false) => {
                    let mut primaries = Vec::new();
                    for (position, primary) in zone.primaries.iter().enumerate() {
                        let primary_field = format!("{field}.primaries[{position}]");
                        primaries.extend(self.primary(&primary_field, primary, keys, tls));
                    }
                    for (position, peer) in zone.peers.iter().enumerate() {
                        let peer_field = format!("{field}.peers[{position}]");
                        primaries.extend(self.peer(&peer_field, peer, keys, tls));
                    }
                    ZoneSource::Primaries(primaries)
                }
                (Some(_), false) => {
                    self.problem(field.clone(), "give either `file` or `primaries`, not both");
                    continue;
                }
                (None, true) => {
                    self.problem(field.clone(), "give a source: `primaries` or `file`");
                    continue;
                }
            };
            let notify_allow = match zone.notify_allow {
                Some(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(position, text)| match text.parse::<IpAddr>() {
                        Ok(ip) => Some(ip),
                        Err(_) => {
                            self.problem(
                                format!("{field}.notify_allow[{position}]"),
                                format!("`{text}` is not an IP address"),
                            );
                            None
                        }
                    })
                    .collect(),
                None => match &source {
                    ZoneSource::Primaries(primaries) => {
                        primaries.iter().map(|p| p.address.ip()).collect()
                    }
                    ZoneSource::File(_) => Vec::new(),
                },
            };
            let allow_transfer = match &zone.allow_transfer {
                Some(entries) => self.acl(&format!("{field}.allow_transfer"), entries, keys),
                None => transfer_acl.clone(),
            };
            let mut also_notify = Vec::new();
            for (position, text) in zone.also_notify.iter().enumerate() {
                also_notify.extend(self.socket_addr(
                    &format!("{field}.also_notify[{position}]"),
                    text,
                    Some(DNS_PORT),
                ));
            }
            zones.push(ZoneConfig {
                name,
                source,
                notify_allow,
                allow_transfer,
                also_notify,
            });
        }
        zones
    }
}

/// The base64 secret in a secret file: either the bare secret, or a BIND `key` clause
/// (`secret "..."`), so that the file `tsig-keygen` wrote can be used as it is.
fn secret_from_file(text: &str) -> &str {
    if let Some(start) = text.find("secret") {
        let rest = &text[start + "secret".len()..];
        if let Some(open) = rest.find('"') {
            let rest = &rest[open + 1..];
            if let Some(close) = rest.find('"') {
                return &rest[..close];
            }
        }
    }
    text.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [node]
        data_dir = "data"
        [server]
        listen = ["127.0.0.1:5353", "[::1]:5353"]
        [timers]
        refresh_min = "1s"
        [[tsig_key]]
        name = "xfr-key"
        algorithm = "hmac-sha256"
        secret = "c2VjcmV0c2VjcmV0c2VjcmV0"
        [[zone]]
        name = "Example.Test"
        primaries = [{ address = "127.0.0.1:5300", tsig_key = "xfr-key" }, { address = "192.0.2.1" }]
    "#;

    #[test]
    fn parses_a_good_config() {
        let config = Config::parse(GOOD, Path::new("/etc/zonecast")).expect("valid");
        assert_eq!(config.node.data_dir, PathBuf::from("/etc/zonecast/data"));
        assert_eq!(config.server.listen.len(), 2);
        assert_eq!(
            config.status.listen,
            "127.0.0.1:8053".parse().expect("addr")
        );
        assert_eq!(config.timers.refresh_min, Duration::from_secs(1));
        let zone = &config.zones[0];
        assert_eq!(zone.name.to_string(), "example.test.");
        let ZoneSource::Primaries(primaries) = &zone.source else {
            panic!("primaries expected");
        };
        assert_eq!(primaries[1].address.port(), 53);
        assert!(primaries[0].tsig_key.is_some());
        assert_eq!(zone.notify_allow.len(), 2);
    }

    #[test]
    fn lists_every_problem_with_its_field() {
        let text = r#"
            [node]
            data_dir = "data"
            [server]
            listen = ["localhost:53"]
            [timers]
            retry_min = "2h"
            retry_max = "1h"
            [[tsig_key]]
            name = "k"
            algorithm = "hmac-md5"
            secret = "!!!"
            [[zone]]
            name = "a.test"
            primaries = [{ address = "127.0.0.1:53", tsig_key = "missing" }]
            [[zone]]
            name = "b.test"
        "#;
        let Err(ParseError::Invalid(problems)) = Config::parse(text, Path::new("/")) else {
            panic!("invalid config accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "server.listen[0]",
            "timers.retry_min",
            "tsig_key[0].algorithm",
            "tsig_key[0].secret",
            "zone[0].primaries[0].tsig_key",
            "zone[1]",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = "[node]\ndata_dir = \"d\"\nfoo = 1\n[server]\nlisten = [\"127.0.0.1:53\"]\n";
        let Err(ParseError::Syntax(error)) = Config::parse(text, Path::new("/")) else {
            panic!("unknown field accepted");
        };
        assert!(error.to_string().contains("foo"), "{error}");
    }

    #[test]
    fn shipped_configs_are_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        for zone in ["example.org.zone", "example.test.zone"] {
            std::fs::write(dir.path().join(zone), "").expect("write");
        }
        // The certificates the reference config names, made the way its comments say.
        let ca = dir.path().join("ca");
        std::fs::create_dir(&ca).expect("dir");
        tls::init_ca(&ca, "reference CA").expect("CA");
        tls::issue(&ca, "node-1", &[], dir.path()).expect("issue");
        std::fs::copy(ca.join("ca.crt"), dir.path().join("primary-ca.crt")).expect("copy");
        for text in [
            include_str!("../../configs/reference.toml"),
            include_str!("../../configs/quickstart.toml"),
        ] {
            if let Err(error) = Config::parse(text, dir.path()) {
                panic!("shipped config rejected: {error:?}");
            }
        }
    }

    #[test]
    fn secret_files_may_be_bind_key_clauses() {
        let bind = "key \"xfr\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n";
        assert_eq!(secret_from_file(bind), "c2VjcmV0");
        assert_eq!(secret_from_file("c2VjcmV0\n"), "c2VjcmV0");
    }

    #[test]
    fn tls_sources_and_listeners_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        tls::init_ca(dir.path(), "test CA").expect("CA");
        tls::issue(dir.path(), "node-a", &[], dir.path()).expect("issue");
        let good = r#"
            [node]
            data_dir = "data"
            [server]
            listen = ["127.0.0.1:5353"]
            xot_listen = ["127.0.0.1"]
            xoq_listen = ["127.0.0.1:8853"]
            [tls]
            certificate = "node-a.crt"
            private_key = "node-a.key"
            ca = "ca.crt"
            [[zone]]
            name = "example.test"
            primaries = [{ address = "127.0.0.1", transport = "tls", tls_name = "xot.example.test", tls_ca = "ca.crt" }]
            peers = [{ address = "127.0.0.2", name = "node-b" }]
        "#;
        let config = Config::parse(good, dir.path()).expect("valid");
        assert_eq!(config.server.xot_listen[0].port(), 853);
        let ZoneSource::Primaries(sources) = &config.zones[0].source else {
            panic!("primaries expected");
        };
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].address.port(), 853);
        assert!(matches!(sources[1].transport, SourceProtocol::Quic { .. }));

        let bad = r#"
            [node]
            data_dir = "data"
            [server]
            listen = ["127.0.0.1:5353"]
            xoq_listen = ["127.0.0.1:8853"]
            [[zone]]
            name = "example.test"
            primaries = [{ address = "127.0.0.1", transport = "tls", tls_ca = "ca.crt", tls_pin = ["x"] }, { address = "127.0.0.1", tls_name = "x" }]
            peers = [{ address = "127.0.0.2", name = "node-b" }]
        "#;
        let Err(ParseError::Invalid(problems)) = Config::parse(bad, dir.path()) else {
            panic!("invalid TLS settings accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "server.xoq_listen",
            "zone[0].primaries[0]",
            "zone[0].primaries[0].tls_name",
            "zone[0].primaries[1].transport",
            "zone[0].peers[0]",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }

        // A certificate from another CA, and a key that does not match, are named.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("dir");
        tls::init_ca(&other, "other CA").expect("CA");
        tls::issue(&other, "stranger", &[], &other).expect("issue");
        let foreign = good
            .replace("node-a.crt", "other/stranger.crt")
            .replace("node-a.key", "other/stranger.key");
        let Err(ParseError::Invalid(problems)) = Config::parse(&foreign, dir.path()) else {
            panic!("foreign certificate accepted");
        };
        assert!(
            problems.iter().any(|p| p.field == "tls.certificate"),
            "{problems:?}"
        );
        let mismatched = good.replace("node-a.key", "other/stranger.key");
        let Err(ParseError::Invalid(problems)) = Config::parse(&mismatched, dir.path()) else {
            panic!("mismatched key accepted");
        };
        assert!(
            problems.iter().any(|p| p.field == "tls.certificate"),
            "{problems:?}"
        );
    }
}
