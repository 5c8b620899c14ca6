//! A plain authoritative server of given zone files on a loopback port, used as a reference for
//! answer comparison: what NSD and Knot have in common.
//!
//! `ReferenceServer` writes the zone files into its own temporary directory, writes the
//! configuration the program's `ReferenceProgram` implementation produces, starts the program and
//! waits until every zone answers its SOA. What differs between the programs — where to find
//! them, their configuration text and their command line — lives in `knot` and `nsd`, as data.
//! This module knows no program by name. Dropping a `ReferenceServer` kills the daemon.

use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::client::soa_serial;
use crate::process::Daemon;
use crate::util::{free_port, require_program, temp_dir, write_file};

/// How long a reference server may take to load its zones and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How one reference server program is found, configured and started.
pub trait ReferenceProgram {
    /// The executable, also the daemon's name in messages (`knotd`, `nsd`).
    const PROGRAM: &'static str;
    /// The Debian package that provides `PROGRAM`.
    const PACKAGE: &'static str;
    /// Short name of the temporary directory, the configuration file (`NAME.conf`) and the log
    /// (`NAME.log`).
    const NAME: &'static str;
    /// Subdirectories of the working directory to create before the program starts.
    const DIRECTORIES: &'static [&'static str];
    /// Arguments before the configuration file's path on the command line.
    const ARGUMENTS: &'static [&'static str];

    /// The configuration text for a server working in `dir`, listening on 127.0.0.1 at `port`
    /// and serving `zones` (names without the trailing dot), each from `dir/NAME.zone`.
    fn config(dir: &str, port: u16, zones: &[&str]) -> String;
}

/// A running reference server; `P` says which program it is.
#[derive(Debug)]
pub struct ReferenceServer<P: ReferenceProgram> {
    // Field order matters for Drop: the daemon dies before its directory is removed.
    daemon: Daemon,
    dir: TempDir,
    port: u16,
    program: PhantomData<P>,
}

impl<P: ReferenceProgram> ReferenceServer<P> {
    /// Starts the program serving each `(zone name, master-file text)` and waits until every
    /// zone answers its SOA.
    pub fn start(zones: &[(&str, &str)]) -> Self {
        let program = require_program(P::PROGRAM, P::PACKAGE);
        let dir = temp_dir(P::NAME);
        let port = free_port();
        for directory in P::DIRECTORIES {
            std::fs::create_dir_all(dir.path().join(directory)).unwrap_or_else(|error| {
                panic!(
                    "cannot create {}'s {directory} directory: {error}",
                    P::PROGRAM
                )
            });
        }
        let names: Vec<&str> = zones
            .iter()
            .map(|(name, _)| name.trim_end_matches('.'))
            .collect();
        for (name, (_, text)) in names.iter().zip(zones) {
            write_file(&dir.path().join(format!("{name}.zone")), text);
        }
        let config = P::config(&dir.path().display().to_string(), port, &names);
        let config_path = dir.path().join(format!("{}.conf", P::NAME));
        write_file(&config_path, config);
        let mut command = Command::new(program);
        command.args(P::ARGUMENTS).arg(&config_path);
        let log_path = dir.path().join(format!("{}.log", P::NAME));
        let mut daemon = Daemon::spawn(P::PROGRAM, &mut command, &log_path);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for (name, _) in zones {
            daemon.wait_ready(
                &format!("answer the SOA of {name} on {addr}"),
                START_TIMEOUT,
                || soa_serial(addr, name, Duration::from_millis(500)).is_ok(),
            );
        }
        ReferenceServer {
            daemon,
            dir,
            port,
            program: PhantomData,
        }
    }

    /// The DNS address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }
}
