//! NSD as a plain authoritative server of given zone files on a loopback port, used as a
//! reference for answer comparison.
//!
//! Own configuration, pid file, zones directory and log; response rate limiting is off
//! (`rrl-ratelimit: 0`) so a burst of test queries is never dropped, and `database: ""` keeps NSD
//! from writing anything besides its own files. `minimal-responses: yes` makes NSD leave the apex
//! NS RRset out of the authority section of positive answers, as Knot and zonecast do (both are
//! valid; RFC 1034 leaves it to the server), so answers can be compared exactly. Starting, waiting
//! and stopping are shared with Knot in `reference`; this module only says how NSD is configured.
//! Dropping an `Nsd` kills the daemon.

use crate::reference::{ReferenceProgram, ReferenceServer};

/// A running NSD.
pub type Nsd = ReferenceServer<NsdDns>;

/// How NSD is found, configured and started.
#[derive(Debug)]
pub enum NsdDns {}

impl ReferenceProgram for NsdDns {
    const PROGRAM: &'static str = "nsd";
    const PACKAGE: &'static str = "nsd";
    const NAME: &'static str = "nsd";
    const DIRECTORIES: &'static [&'static str] = &[];
    /// `-d`: stay in the foreground, so the harness owns the process.
    const ARGUMENTS: &'static [&'static str] = &["-d", "-c"];

    fn config(dir: &str, port: u16, zones: &[&str]) -> String {
        let mut config = format!(
            r#"server:
    ip-address: 127.0.0.1@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    database: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    zonelistfile: "{dir}/zone.list"
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
        for name in zones {
            config.push_str(&format!(
                "zone:\n    name: \"{name}\"\n    zonefile: \"{name}.zone\"\n"
            ));
        }
        config
    }
}
