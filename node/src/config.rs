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

use crate::tsig::{Algorithm, TsigKey};
use crate::zone::canonical_origin;

/// Default DNS port for primaries given without one.
const DNS_PORT: u16 = 53;

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
    /// The zones this node serves.
    pub zones: Vec<ZoneConfig>,
}

/// Serving transfers to other secondaries.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Most transfers served at once.
    pub transfers_max: usize,
    /// Most differences kept per zone for IXFR.
    pub journal_diffs_max: usize,
    /// Most bytes of differences kept per zone for IXFR.
    pub journal_bytes_max: u64,
}

/// Who may transfer a zone: a request is allowed when one entry's prefix holds the source
/// address and, if the entry names a key, the request is signed with that key.
#[derive(Debug, Clone, Default)]
pub struct TransferAcl {
    /// The entries, any of which may allow a request.
    pub entries: Vec<AclEntry>,
}

/// One ACL entry.
#[derive(Debug, Clone)]
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
}

/// The HTTP status endpoint.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Address of `/status`, `/metrics` and `/healthz`.
    pub listen: SocketAddr,
}

/// Clamps on SOA timers (as in Knot's `refresh-min-interval` and friends).
#[derive(Debug, Clone, Copy)]
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
#[derive(Debug, Clone, Copy)]
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
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
pub enum ZoneSource {
    /// Primaries tried in order.
    Primaries(Vec<Primary>),
    /// A local RFC 1035 master file, reloaded when it changes.
    File(PathBuf),
}

/// One primary server.
#[derive(Debug, Clone)]
pub struct Primary {
    /// Its address and port.
    pub address: SocketAddr,
    /// The key that signs requests to it and must sign its answers.
    pub tsig_key: Option<Arc<TsigKey>>,
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
    journal_diffs_max: usize,
    journal_bytes_max: u64,
}

impl Default for RawTransfer {
    fn default() -> Self {
        RawTransfer {
            // Nobody may transfer unless the operator says so (as in NSD and Knot).
            allow: Vec::new(),
            transfers_max: 16,
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
}

fn default_edns_payload_max() -> u16 {
    // The DNS Flag Day 2020 value, which avoids IP fragmentation on common paths.
    1232
}

fn default_tcp_connections_max() -> usize {
    1024
}

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
        let server = self.server(raw.server);
        let status_listen = self.socket_addr("status.listen", &raw.status.listen, None);
        let timers = self.timers(&raw.timers);
        let limits = self.limits(&raw.limits);
        let keys = self.keys(raw.tsig_key);
        let transfer_acl = self.acl("transfer.allow", &raw.transfer.allow, &keys);
        if raw.transfer.transfers_max == 0 {
            self.problem("transfer.transfers_max", "must be at least 1");
        }
        if raw.transfer.journal_diffs_max == 0 {
            self.problem("transfer.journal_diffs_max", "must be at least 1");
        }
        let transfer = TransferConfig {
            transfers_max: raw.transfer.transfers_max,
            journal_diffs_max: raw.transfer.journal_diffs_max,
            journal_bytes_max: raw.transfer.journal_bytes_max,
        };
        let zones = self.zones(raw.zone, &keys, &transfer_acl);
        Some(Config {
            node: NodeConfig { data_dir },
            server: server?,
            status: StatusConfig {
                listen: status_listen?,
            },
            timers,
            limits,
            transfer,
            zones,
        })
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

    fn server(&mut self, raw: RawServer) -> Option<ServerConfig> {
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
        let mut seen = HashSet::new();
        for address in listen.iter().chain(&notify_listen) {
            if !seen.insert(*address) {
                self.problem("server.listen", format!("{address} is listed twice"));
            }
        }
        if raw.edns_payload_max < 512 {
            self.problem("server.edns_payload_max", "must be at least 512 (RFC 6891)");
        }
        if raw.tcp_connections_max == 0 {
            self.problem("server.tcp_connections_max", "must be at least 1");
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
            let source = match (zone.file, zone.primaries.is_empty()) {
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
                        let address = self.socket_addr(
                            &format!("{primary_field}.address"),
                            &primary.address,
                            Some(DNS_PORT),
                        );
                        let tsig_key = match &primary.tsig_key {
                            None => None,
                            Some(key_name) => match keys.get(key_name) {
                                Some(key) => Some(key.clone()),
                                None => {
                                    self.problem(
                                        format!("{primary_field}.tsig_key"),
                                        format!("no [[tsig_key]] is named `{key_name}`"),
                                    );
                                    None
                                }
                            },
                        };
                        if let Some(address) = address {
                            primaries.push(Primary { address, tsig_key });
                        }
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
}
