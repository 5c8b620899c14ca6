//! Knot DNS as a plain authoritative server of given zone files on a loopback port, used as a
//! reference for answer comparison.
//!
//! Own configuration, rundir, pid file, control socket, database `storage:` and zone `template`
//! (otherwise Knot would use /var/lib/knot); zone files are never written back
//! (`zonefile-sync: -1`) and no journal is kept. Dropping a `Knot` kills the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::client::soa_serial;
use crate::process::Daemon;
use crate::util::{free_port, require_program, temp_dir, write_file};

/// How long Knot may take to load its zones and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Knot DNS.
#[derive(Debug)]
pub struct Knot {
    // Field order matters for Drop: the daemon dies before its directory is removed.
    daemon: Daemon,
    dir: TempDir,
    port: u16,
}

impl Knot {
    /// Starts Knot serving each `(zone name, master-file text)` and waits until every zone
    /// answers its SOA.
    pub fn start(zones: &[(&str, &str)]) -> Knot {
        let knotd = require_program("knotd", "knot");
        let dir = temp_dir("knot");
        let port = free_port();
        let path = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("db"))
            .unwrap_or_else(|error| panic!("cannot create Knot's database directory: {error}"));
        let mut config = format!(
            r#"server:
    rundir: "{path}"
    pidfile: "{path}/knot.pid"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{path}/db"
log:
  - target: stderr
    any: info
control:
    listen: "{path}/knot.sock"
template:
  - id: default
    storage: "{path}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
"#
        );
        for (name, text) in zones {
            let name = name.trim_end_matches('.');
            write_file(&dir.path().join(format!("{name}.zone")), text);
            config.push_str(&format!("  - domain: {name}\n"));
        }
        let config_path = dir.path().join("knot.conf");
        write_file(&config_path, config);
        let mut command = Command::new(knotd);
        command.arg("-c").arg(&config_path);
        let mut daemon = Daemon::spawn("knotd", &mut command, &dir.path().join("knot.log"));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for (name, _) in zones {
            daemon.wait_ready(
                &format!("answer the SOA of {name} on {addr}"),
                START_TIMEOUT,
                || soa_serial(addr, name, Duration::from_millis(500)).is_ok(),
            );
        }
        Knot { daemon, dir, port }
    }

    /// The DNS address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The working directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The last `lines` lines of Knot's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}
