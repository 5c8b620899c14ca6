//! A real BIND 9 primary (`named -g`) on a loopback port, with its own directory, configuration,
//! rndc control channel and keys.
//!
//! Zones can be changed the two ways operators do: dynamic update (`nsupdate`, signed with the
//! update key) and zone-file edit plus reload. `ixfr-from-differences yes` makes BIND keep a
//! journal either way, so secondaries can use IXFR; `max-ixfr-ratio unlimited` stops BIND from
//! answering IXFR AXFR-style when a test zone is so small that the diff outweighs it. Dropping a
//! `Bind` kills `named`.
//!
//! BIND can also be a secondary (of a zonecast node, to check zonecast's transfers out with a
//! real client), and listen for XFR-over-TLS (RFC 9103) with a certificate the test provides:
//! then a zone may allow transfers over TLS only, and a secondary zone may pull over TLS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use tempfile::TempDir;

use crate::client::{QueryOptions, query_udp, soa_serial};
use crate::process::Daemon;
use crate::tsig::TsigKey;
use crate::util::{
    COMMAND_TIMEOUT, free_port, poll, require_program, run_checked, temp_dir, write_file,
};

/// How long `named` may take to load its zones and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `named` may take to exit after `rndc stop`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a reload or update may take to become visible in the SOA serial.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// One zone served by the BIND primary.
#[derive(Clone, Debug)]
pub struct BindZone {
    /// Zone name without the trailing dot, e.g. `example.test`.
    pub name: String,
    /// Master-file text.
    pub text: String,
    /// Ports on 127.0.0.1 to which BIND sends NOTIFY on every change (`notify explicit`).
    pub also_notify: Vec<u16>,
    /// When set, transfers require this TSIG key (`allow-transfer { key NAME; }`) and NOTIFY
    /// messages are signed with it; otherwise anyone on loopback may transfer.
    pub transfer_key: Option<TsigKey>,
    /// When true, the zone accepts dynamic updates signed with the update key; edits of its
    /// file then go through `rndc freeze`/`thaw`, because BIND refuses to reload a dynamic zone.
    pub dynamic: bool,
    /// When true, transfers are allowed only over XFR-over-TLS on the TLS port (the server
    /// needs `BindOptions::tls`); plain TCP transfers are refused.
    pub xot_only: bool,
    /// When set, BIND is a secondary for the zone, pulling it from this primary; `text` is
    /// ignored and the zone is neither dynamic nor editable.
    pub secondary_of: Option<BindPrimary>,
}

/// The primary of a zone for which BIND is a secondary.
#[derive(Clone, Debug)]
pub struct BindPrimary {
    /// The primary's address: its DNS port, or its XFR-over-TLS port when `tls` is set.
    pub address: SocketAddr,
    /// Pull over XFR-over-TLS, checking the primary's certificate strictly:
    /// (CA file, the name the certificate must carry).
    pub tls: Option<(PathBuf, String)>,
    /// Sign requests to the primary (SOA queries and transfers) with this key and require
    /// signed answers.
    pub key: Option<TsigKey>,
}

impl BindPrimary {
    /// A primary reached over plain TCP (and UDP for SOA queries), without TSIG.
    pub fn plain(address: SocketAddr) -> BindPrimary {
        BindPrimary {
            address,
            tls: None,
            key: None,
        }
    }
}

/// Server-wide options of a BIND instance.
#[derive(Clone, Debug, Default)]
pub struct BindOptions {
    /// The DNS port; `None` picks a free one. Set it when a zonecast node's `also_notify` must
    /// name this server before it starts.
    pub port: Option<u16>,
    /// Listen for XFR-over-TLS on a free port with this certificate.
    pub tls: Option<BindTls>,
}

/// The certificate BIND serves XFR-over-TLS with (`tls local-tls { ... }`).
#[derive(Clone, Debug)]
pub struct BindTls {
    /// PEM certificate (`cert-file`).
    pub certificate: PathBuf,
    /// PEM private key (`key-file`).
    pub private_key: PathBuf,
}

impl BindZone {
    /// A dynamic zone with no NOTIFY targets and transfers open to everyone.
    pub fn new(name: &str, text: impl Into<String>) -> BindZone {
        BindZone {
            name: name.trim_end_matches('.').to_owned(),
            text: text.into(),
            also_notify: Vec::new(),
            transfer_key: None,
            dynamic: true,
            xot_only: false,
            secondary_of: None,
        }
    }

    /// A zone for which BIND is a secondary of `primary`.
    pub fn secondary(name: &str, primary: BindPrimary) -> BindZone {
        BindZone {
            dynamic: false,
            secondary_of: Some(primary),
            ..BindZone::new(name, String::new())
        }
    }

    /// Allows transfers over XFR-over-TLS only.
    pub fn xot_only(mut self) -> BindZone {
        self.xot_only = true;
        self
    }

    /// Adds a NOTIFY target on 127.0.0.1.
    pub fn notify_port(mut self, port: u16) -> BindZone {
        self.also_notify.push(port);
        self
    }

    /// Requires `key` for transfers.
    pub fn transfer_key(mut self, key: TsigKey) -> BindZone {
        self.transfer_key = Some(key);
        self
    }

    /// Makes the zone static: no dynamic updates, file edits take effect with `rndc reload`.
    pub fn static_zone(mut self) -> BindZone {
        self.dynamic = false;
        self
    }
}

/// A running BIND 9 primary.
#[derive(Debug)]
pub struct Bind {
    // Field order matters for Drop: the daemon dies before its directory is removed.
    daemon: Option<Daemon>,
    dir: TempDir,
    named: PathBuf,
    port: u16,
    control_port: u16,
    tls: Option<BindTls>,
    tls_port: Option<u16>,
    rndc_key: TsigKey,
    update_key: TsigKey,
    zones: Vec<BindZone>,
}

impl Bind {
    /// Writes the configuration and zone files, starts `named` and waits until every primary
    /// zone answers its SOA (and, for secondary zones, until BIND answers at all: wait for them
    /// to load with `wait_for_serial_within`).
    pub fn start(zones: Vec<BindZone>) -> Bind {
        Bind::start_with(zones, BindOptions::default())
    }

    /// Like `start`, with server-wide `options`.
    pub fn start_with(zones: Vec<BindZone>, options: BindOptions) -> Bind {
        let named = require_program("named", "bind9");
        require_program("rndc", "bind9-utils");
        let dir = temp_dir("bind");
        std::fs::create_dir_all(dir.path().join("zones"))
            .unwrap_or_else(|error| panic!("cannot create the BIND zones directory: {error}"));
        let mut bind = Bind {
            daemon: None,
            dir,
            named,
            port: options.port.unwrap_or_else(free_port),
            control_port: free_port(),
            tls_port: options.tls.as_ref().map(|_| free_port()),
            tls: options.tls,
            rndc_key: TsigKey::generate("rndc-key", "hmac-sha256"),
            update_key: TsigKey::generate("update-key", "hmac-sha256"),
            zones,
        };
        for zone in bind.zones.clone() {
            if zone.secondary_of.is_none() {
                write_file(&bind.zone_path(&zone.name), &zone.text);
            }
        }
        bind.write_config();
        bind.launch();
        bind
    }

    /// The DNS address (UDP and TCP) of this primary.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The DNS port of this primary.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The XFR-over-TLS address; panics unless BIND was started with `BindOptions::tls`.
    pub fn tls_addr(&self) -> SocketAddr {
        let port = self
            .tls_port
            .expect("this BIND was started without BindOptions::tls");
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// The key that signs dynamic updates.
    pub fn update_key(&self) -> &TsigKey {
        &self.update_key
    }

    /// The working directory (configuration, zone files, journals, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The current SOA serial of `zone` as BIND answers it.
    pub fn serial(&self, zone: &str) -> u32 {
        soa_serial(self.addr(), zone, Duration::from_secs(2))
            .unwrap_or_else(|error| panic!("BIND does not answer the SOA of {zone}: {error:#}"))
    }

    /// Replaces the zone file of `zone` with `text` and makes BIND load it, the way an operator
    /// edits a zone: `rndc reload ZONE` for a static zone, `rndc freeze`, edit, `rndc thaw` for
    /// a dynamic one. With `ixfr-from-differences` BIND records the difference in its journal.
    ///
    /// Waits until BIND answers the SOA serial found in `text`'s SOA line if it can be parsed.
    pub fn replace_zone(&mut self, zone: &str, text: &str) {
        let dynamic = self.zone(zone).dynamic;
        if dynamic {
            self.rndc(&["freeze", zone]);
            self.wait_for_dump(zone);
        }
        self.write_zone_file(zone, text);
        if dynamic {
            self.rndc(&["thaw", zone]);
        } else {
            self.reload(zone);
        }
        self.zone_mut(zone).text = text.to_owned();
        if let Some(serial) = serial_in_text(text) {
            self.wait_for_serial(zone, serial);
        }
    }

    /// Waits until the zone file of a frozen dynamic zone holds the served serial: `rndc freeze`
    /// returns before BIND has finished dumping the zone, and a dump that lands after the test
    /// wrote its new file silently restores the old content ("ixfr-from-differences:
    /// unchanged" at thaw).
    fn wait_for_dump(&self, zone: &str) {
        let served = self.serial(zone);
        let path = self.zone_path(zone);
        let dumped = poll(CHANGE_TIMEOUT, Duration::from_millis(10), || {
            let text = std::fs::read_to_string(&path).ok()?;
            (dumped_serial(&text) == Some(served)).then_some(())
        });
        if dumped.is_none() {
            panic!(
                "BIND did not dump serial {served} of {zone} to {} within {CHANGE_TIMEOUT:?} after \
                 `rndc freeze`\n{}",
                path.display(),
                self.log_tail(40)
            );
        }
    }

    /// Only writes the zone file of `zone`; BIND does not notice until `reload` (static zones).
    /// Editing a dynamic zone's file behind BIND's back loses updates: use `replace_zone`.
    pub fn write_zone_file(&self, zone: &str, text: &str) {
        let path = self.zone_path(zone);
        write_file(&path, text);
        // BIND compares whole seconds: a file written in the second BIND last loaded it looks
        // unchanged ("ixfr-from-differences: unchanged"). A modification time one second ahead
        // is always newer than the last load.
        let ahead = std::time::SystemTime::now() + Duration::from_secs(1);
        let bumped = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(ahead));
        if let Err(error) = bumped {
            panic!(
                "cannot set the modification time of {}: {error}",
                path.display()
            );
        }
    }

    /// `rndc reload ZONE`: BIND reads the zone file again (refused by BIND for dynamic zones).
    pub fn reload(&self, zone: &str) {
        self.rndc(&["reload", zone]);
    }

    /// Runs `rndc` against this server with `arguments`; panics on failure. Returns its output.
    pub fn rndc(&self, arguments: &[&str]) -> String {
        let rndc = require_program("rndc", "bind9-utils");
        run_checked(
            Command::new(rndc)
                .arg("-c")
                .arg(self.dir.path().join("rndc.conf"))
                .args(arguments),
            COMMAND_TIMEOUT,
        )
    }

    /// Sends one dynamic update for `zone` with `nsupdate`, signed with the update key.
    ///
    /// `lines` are nsupdate commands such as `update add new.example.test. 300 A 192.0.2.9`;
    /// the `server`, `zone` and `send` lines are added here. Waits until the SOA serial has
    /// changed (BIND increments it on every update).
    pub fn nsupdate(&self, zone: &str, lines: &[&str]) {
        let nsupdate = require_program("nsupdate", "bind9-dnsutils");
        let before = self.serial(zone);
        let mut script = format!("server 127.0.0.1 {}\nzone {zone}\n", self.port);
        for line in lines {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("send\n");
        let script_path = self.dir.path().join("nsupdate.txt");
        write_file(&script_path, &script);
        run_checked(
            Command::new(nsupdate)
                .arg("-y")
                .arg(self.update_key.dig_argument())
                .arg("-t")
                .arg("5")
                .arg(&script_path),
            COMMAND_TIMEOUT,
        );
        let changed = poll(CHANGE_TIMEOUT, Duration::from_millis(20), || {
            let serial = soa_serial(self.addr(), zone, Duration::from_secs(1)).ok()?;
            (serial != before).then_some(serial)
        });
        if changed.is_none() {
            panic!(
                "BIND's serial for {zone} stayed {before} after nsupdate:\n{script}\n{}",
                self.log_tail(40)
            );
        }
    }

    /// Changes (or removes) the TSIG key that transfers of `zone` require, and makes BIND
    /// re-read its configuration (`rndc reconfig`).
    pub fn set_transfer_key(&mut self, zone: &str, key: Option<TsigKey>) {
        self.zone_mut(zone).transfer_key = key;
        self.write_config();
        self.rndc(&["reconfig"]);
    }

    /// Stops `named` cleanly with `rndc stop` (dynamic zones' journals are kept) and waits for
    /// the process to exit.
    pub fn stop(&mut self) {
        let Some(mut daemon) = self.daemon.take() else {
            return;
        };
        let rndc = require_program("rndc", "bind9-utils");
        let _ = crate::util::run_command(
            Command::new(rndc)
                .arg("-c")
                .arg(self.dir.path().join("rndc.conf"))
                .arg("stop"),
            COMMAND_TIMEOUT,
        );
        if !daemon.wait_exit(STOP_TIMEOUT) {
            daemon.terminate(STOP_TIMEOUT);
        }
        // The daemon handle is dropped here without printing: the stop was requested.
        drop(daemon);
    }

    /// Starts `named` again with the same configuration, directory and port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The last `lines` lines of the `named` log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::util::file_tail(&self.dir.path().join("named.log"), lines)
    }

    fn zone(&self, zone: &str) -> &BindZone {
        let wanted = zone.trim_end_matches('.');
        self.zones
            .iter()
            .find(|candidate| candidate.name.eq_ignore_ascii_case(wanted))
            .unwrap_or_else(|| panic!("BIND does not serve zone {zone}"))
    }

    fn zone_mut(&mut self, zone: &str) -> &mut BindZone {
        let wanted = zone.trim_end_matches('.');
        self.zones
            .iter_mut()
            .find(|candidate| candidate.name.eq_ignore_ascii_case(wanted))
            .unwrap_or_else(|| panic!("BIND does not serve zone {zone}"))
    }

    fn zone_path(&self, zone: &str) -> PathBuf {
        self.dir
            .path()
            .join("zones")
            .join(format!("{}.zone", zone.trim_end_matches('.')))
    }

    fn wait_for_serial(&self, zone: &str, serial: u32) {
        self.wait_for_serial_within(zone, serial, CHANGE_TIMEOUT);
    }

    /// Polls the SOA of `zone` until BIND answers `serial` (a secondary zone loading or
    /// following its primary); panics with the log tail after `timeout`.
    pub fn wait_for_serial_within(&self, zone: &str, serial: u32, timeout: Duration) {
        let reached = poll(timeout, Duration::from_millis(20), || {
            let current = soa_serial(self.addr(), zone, Duration::from_secs(1)).ok()?;
            (current == serial).then_some(())
        });
        if reached.is_none() {
            panic!(
                "BIND did not reach serial {serial} for {zone} within {timeout:?}\n{}",
                self.log_tail(40)
            );
        }
    }

    /// Polls BIND's log until a line contains `needle`; returns that line, or `None` after
    /// `timeout`.
    pub fn wait_for_log_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let log_path = self.dir.path().join("named.log");
        poll(timeout, Duration::from_millis(50), || {
            let text = std::fs::read_to_string(&log_path).ok()?;
            text.lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        })
        .map(|(line, _)| line)
    }

    /// Writes `named.conf` and `rndc.conf` from the current zone list.
    fn write_config(&self) {
        let dir = self.dir.path().display().to_string();
        let mut config = format!(
            r#"options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    listen-on port {port} {{ 127.0.0.1; }};
{tls_listen}    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify explicit;
    notify-delay 0;
    ixfr-from-differences yes;
    max-ixfr-ratio unlimited;
    transfer-source 127.0.0.1;
    notify-source 127.0.0.1;
}};
controls {{
    inet 127.0.0.1 port {control_port} allow {{ 127.0.0.1; }} keys {{ "{rndc_key}"; }};
}};
logging {{
    channel to_stderr {{ stderr; severity info; print-time yes; print-category yes; }};
    category default {{ to_stderr; }};
    category lame-servers {{ null; }};
}};
"#,
            port = self.port,
            control_port = self.control_port,
            rndc_key = self.rndc_key.name,
            tls_listen = match self.tls_port {
                Some(port) =>
                    format!("    listen-on port {port} tls local-tls {{ 127.0.0.1; }};\n"),
                None => String::new(),
            },
        );
        if let Some(tls) = &self.tls {
            config.push_str(&format!(
                "tls local-tls {{ key-file \"{}\"; cert-file \"{}\"; }};\n",
                tls.private_key.display(),
                tls.certificate.display()
            ));
        }
        config.push_str(&self.rndc_key.bind_statement());
        config.push_str(&self.update_key.bind_statement());
        let mut key_names = Vec::new();
        for zone in &self.zones {
            let primary_key = zone
                .secondary_of
                .as_ref()
                .and_then(|primary| primary.key.as_ref());
            for key in [zone.transfer_key.as_ref(), primary_key]
                .into_iter()
                .flatten()
            {
                if !key_names.contains(&key.name) {
                    key_names.push(key.name.clone());
                    config.push_str(&key.bind_statement());
                }
            }
        }
        for (index, zone) in self.zones.iter().enumerate() {
            if let Some(primary) = &zone.secondary_of {
                config.push_str(&self.secondary_zone_config(index, zone, primary));
                continue;
            }
            let allow_transfer = match (&zone.transfer_key, zone.xot_only) {
                (Some(key), false) => format!("{{ key \"{}\"; }}", key.name),
                (None, false) => "{ 127.0.0.0/8; }".to_owned(),
                (Some(key), true) => format!(
                    "port {} transport tls {{ key \"{}\"; }}",
                    self.tls_addr().port(),
                    key.name
                ),
                (None, true) => format!(
                    "port {} transport tls {{ 127.0.0.0/8; }}",
                    self.tls_addr().port()
                ),
            };
            let allow_update = if zone.dynamic {
                format!("key \"{}\";", self.update_key.name)
            } else {
                "none;".to_owned()
            };
            let notify = if zone.also_notify.is_empty() {
                "notify no;".to_owned()
            } else {
                // With a transfer key, NOTIFY is signed with it too, as a primary that shares
                // a key with its secondaries is normally configured.
                let key = zone
                    .transfer_key
                    .as_ref()
                    .map(|key| format!(" key \"{}\"", key.name))
                    .unwrap_or_default();
                let targets: String = zone
                    .also_notify
                    .iter()
                    .map(|port| format!("127.0.0.1 port {port}{key}; "))
                    .collect();
                format!("notify explicit; also-notify {{ {targets}}};")
            };
            config.push_str(&format!(
                "zone \"{name}\" {{\n    type primary;\n    file \"{file}\";\n    \
                 allow-transfer {allow_transfer};\n    allow-update {{ {allow_update} }};\n    \
                 {notify}\n}};\n",
                name = zone.name,
                file = self.zone_path(&zone.name).display(),
            ));
        }
        write_file(&self.dir.path().join("named.conf"), config);
        let rndc_config = format!(
            "{}options {{ default-key \"{}\"; default-server 127.0.0.1; default-port {}; }};\n",
            self.rndc_key.bind_statement(),
            self.rndc_key.name,
            self.control_port
        );
        write_file(&self.dir.path().join("rndc.conf"), rndc_config);
    }

    /// The configuration of zone number `index`, for which BIND is a secondary of `primary`:
    /// transfers from it open to loopback, NOTIFY accepted from the primary's address.
    fn secondary_zone_config(
        &self,
        index: usize,
        zone: &BindZone,
        primary: &BindPrimary,
    ) -> String {
        let mut text = String::new();
        let tls = match &primary.tls {
            Some((ca_file, remote_hostname)) => {
                let name = format!("xot-client-{index}");
                text.push_str(&format!(
                    "tls {name} {{ ca-file \"{}\"; remote-hostname \"{remote_hostname}\"; }};\n",
                    ca_file.display()
                ));
                format!(" tls {name}")
            }
            None => String::new(),
        };
        text.push_str(&format!(
            "zone \"{name}\" {{\n    type secondary;\n    file \"{file}\";\n    \
             primaries {{ {ip} port {port}{key}{tls}; }};\n    allow-transfer {{ 127.0.0.0/8; }};\n    \
             notify no;\n}};\n",
            name = zone.name,
            file = self.zone_path(&zone.name).display(),
            ip = primary.address.ip(),
            port = primary.address.port(),
            key = primary
                .key
                .as_ref()
                .map(|key| format!(" key \"{}\"", key.name))
                .unwrap_or_default(),
        ));
        text
    }

    /// Starts `named` in the foreground and waits until every zone answers its SOA.
    fn launch(&mut self) {
        let mut command = Command::new(&self.named);
        command
            .arg("-g")
            .arg("-n")
            .arg("1")
            .arg("-c")
            .arg(self.dir.path().join("named.conf"));
        let mut daemon = Daemon::spawn("named", &mut command, &self.dir.path().join("named.log"));
        for zone in &self.zones {
            // A primary zone is ready when its SOA is answered; a secondary zone loads from
            // its primary later (see `wait_for_serial_within`): any answer means BIND is up.
            let secondary = zone.secondary_of.is_some();
            let answered = poll(START_TIMEOUT, Duration::from_millis(50), || {
                if secondary {
                    let options = QueryOptions::default().with_timeout(Duration::from_millis(500));
                    query_udp(self.addr(), &zone.name, RecordType::SOA, &options)
                        .ok()
                        .map(|_| 0)
                } else {
                    soa_serial(self.addr(), &zone.name, Duration::from_millis(500)).ok()
                }
            });
            if answered.is_none() {
                let status = daemon.exit_status().unwrap_or_else(|| "running".to_owned());
                panic!(
                    "BIND ({status}) did not answer the SOA of {} on {} within {START_TIMEOUT:?}\n{}",
                    zone.name,
                    self.addr(),
                    daemon.log_tail(40)
                );
            }
        }
        self.daemon = Some(daemon);
    }
}

/// The serial in the first SOA line of a master file written the way this crate writes them
/// (`@ TTL IN SOA mname rname SERIAL ...` on one line).
pub fn serial_in_text(text: &str) -> Option<u32> {
    let line = text.lines().find(|line| line.contains(" SOA "))?;
    let mut fields = line.split_whitespace().skip_while(|field| *field != "SOA");
    fields.nth(3)?.parse().ok()
}

/// The SOA serial of a master file in any layout, including BIND's dumps, which spread the SOA
/// over several lines with parentheses and comments.
pub fn dumped_serial(text: &str) -> Option<u32> {
    let tokens: Vec<&str> = text
        .lines()
        .map(|line| line.split(';').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .flat_map(|token| token.split(['(', ')']))
        .filter(|token| !token.is_empty())
        .collect();
    let soa = tokens.iter().position(|token| *token == "SOA")?;
    // SOA MNAME RNAME SERIAL
    tokens.get(soa + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_found_in_a_bind_dump() {
        let dump = "$ORIGIN .\n$TTL 3600\nexample.test\t\tIN SOA\tns1.example.test. \
                    hostmaster.example.test. (\n\t\t\t\t2          ; serial\n\t\t\t\t3600 ; \
                    refresh (1 hour)\n\t\t\t\t)\n\t\t\tNS\tns1.example.test.\n";
        assert_eq!(dumped_serial(dump), Some(2));
        let text = crate::zones::simple_zone("example.test", 42, 2, 1, 5);
        assert_eq!(dumped_serial(&text), Some(42));
    }

    #[test]
    fn serial_is_found_in_a_soa_line() {
        let text = crate::zones::simple_zone("example.test", 42, 2, 1, 5);
        assert_eq!(serial_in_text(&text), Some(42));
        assert_eq!(serial_in_text(&crate::zones::rich_zone(7)), Some(7));
    }
}
