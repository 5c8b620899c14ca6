//! NSD as a plain authoritative server of given zone files on a loopback port, used as a
//! reference for answer comparison.
//!
//! Own configuration, pid file, zones directory and log; response rate limiting is off
//! (`rrl-ratelimit: 0`) so a burst of test queries is never dropped, and `database: ""` keeps NSD
//! from writing anything besides its own files. `minimal-responses: yes` makes NSD leave the apex
//! NS RRset out of the authority section of positive answers, as Knot and zonecast do (both are
//! valid; RFC 1034 leaves it to the server), so answers can be compared exactly. Dropping an
//! `Nsd` kills the daemon.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::client::soa_serial;
use crate::process::Daemon;
use crate::util::{free_port, require_program, temp_dir, write_file};

/// How long NSD may take to load its zones and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running NSD.
#[derive(Debug)]
pub struct Nsd {
    // Field order matters for Drop: the daemon dies before its directory is removed.
    daemon: Daemon,
    dir: TempDir,
    port: u16,
}

impl Nsd {
    /// Starts NSD serving each `(zone name, master-file text)` and waits until every zone
    /// answers its SOA.
    pub fn start(zones: &[(&str, &str)]) -> Nsd {
        let nsd = require_program("nsd", "nsd");
        let dir = temp_dir("nsd");
        let port = free_port();
        let path = dir.path().display().to_string();
        let mut config = format!(
            r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    database: ""
    zonesdir: "{path}"
    pidfile: "{path}/nsd.pid"
    xfrdfile: "{path}/xfrd.state"
    xfrdir: "{path}"
    zonelistfile: "{path}/zone.list"
    username: ""
    chroot: ""
    server-count: 1
    rrl-ratelimit: 0
    minimal-responses: yes
    verbosity: 1
remote-control:
    control-enable: no
"#
        );
        for (name, text) in zones {
            let name = name.trim_end_matches('.');
            write_file(&dir.path().join(format!("{name}.zone")), text);
            config.push_str(&format!(
                "zone:\n    name: \"{name}\"\n    zonefile: \"{name}.zone\"\n"
            ));
        }
        let config_path = dir.path().join("nsd.conf");
        write_file(&config_path, config);
        let mut command = Command::new(nsd);
        command.arg("-d").arg("-c").arg(&config_path);
        let mut daemon = Daemon::spawn("nsd", &mut command, &dir.path().join("nsd.log"));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for (name, _) in zones {
            daemon.wait_ready(
                &format!("answer the SOA of {name} on {addr}"),
                START_TIMEOUT,
                || soa_serial(addr, name, Duration::from_millis(500)).is_ok(),
            );
        }
        Nsd { daemon, dir, port }
    }

    /// The DNS address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The working directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The last `lines` lines of NSD's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}
