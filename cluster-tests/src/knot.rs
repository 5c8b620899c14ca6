//! Knot DNS as a plain authoritative server of given zone files on a loopback port, used as a
//! reference for answer comparison.
//!
//! Own configuration, rundir, pid file, control socket, database `storage:` and zone `template`
//! (otherwise Knot would use /var/lib/knot); zone files are never written back
//! (`zonefile-sync: -1`) and no journal is kept. Starting, waiting and stopping are shared with
//! NSD in `reference`; this module only says how Knot is configured. Dropping a `Knot` kills the
//! daemon.

use crate::reference::{ReferenceProgram, ReferenceServer};

/// A running Knot DNS.
pub type Knot = ReferenceServer<KnotDns>;

/// How Knot DNS is found, configured and started.
#[derive(Debug)]
pub enum KnotDns {}

impl ReferenceProgram for KnotDns {
    const PROGRAM: &'static str = "knotd";
    const PACKAGE: &'static str = "knot";
    const NAME: &'static str = "knot";
    /// The database `storage:` directory, which Knot does not create itself.
    const DIRECTORIES: &'static [&'static str] = &["db"];
    const ARGUMENTS: &'static [&'static str] = &["-c"];

    fn config(dir: &str, port: u16, zones: &[&str]) -> String {
        let mut config = format!(
            r#"server:
    rundir: "{dir}"
    pidfile: "{dir}/knot.pid"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{dir}/db"
log:
  - target: stderr
    any: info
control:
    listen: "{dir}/knot.sock"
template:
  - id: default
    storage: "{dir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
"#
        );
        for name in zones {
            config.push_str(&format!("  - domain: {name}\n"));
        }
        config
    }
}
