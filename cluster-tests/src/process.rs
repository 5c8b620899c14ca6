//! A long-lived child process (a DNS daemon) whose output goes to a log file.
//!
//! `Daemon` owns the child: dropping it kills the process, and when the drop happens during a
//! panic (a failing test) it first prints the tail of the log so the failure explains itself.
//! It knows nothing about DNS; readiness checks belong to the callers.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{describe, file_tail, send_signal};

/// How many log lines a failing test prints per daemon.
const LOG_TAIL_LINES: usize = 60;

/// A running child process with its output appended to `log_path`.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Daemon {
    /// Starts `command` with stdout and stderr appended to `log_path`.
    ///
    /// `name` identifies the daemon in messages ("named", "zonecast", ...).
    pub fn spawn(name: &str, command: &mut Command, log_path: &Path) -> Daemon {
        let log = open_log(log_path);
        let log_for_stderr = log
            .try_clone()
            .unwrap_or_else(|error| panic!("cannot clone log file handle: {error}"));
        let description = describe(command);
        append_line(log_path, &format!("### harness: starting `{description}`"));
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} (`{description}`): {error}"));
        Daemon {
            name: name.to_owned(),
            child: Some(child),
            log_path: log_path.to_owned(),
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The exit status text if the child has exited, for error messages.
    pub fn exit_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            append_line(&self.log_path, "### harness: killed with SIGKILL");
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then kills it.
    pub fn terminate(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(child.id(), "TERM");
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    append_line(
                        &self.log_path,
                        "### harness: did not stop after SIGTERM, killed with SIGKILL",
                    );
                    return;
                }
            }
        }
        append_line(&self.log_path, "### harness: stopped with SIGTERM");
    }

    /// Waits up to `timeout` for the process to exit by itself (after `rndc stop`, say).
    /// Returns true if it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => {
                    self.child = None;
                    return true;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return false,
            }
        }
    }

    /// Polls `ready` until it holds; panics with the log tail (naming `what` was awaited) if it
    /// does not within `timeout`.
    pub fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self.exit_status().unwrap_or_else(|| "running".to_owned());
        panic!(
            "{} ({status}) did not {what} within {timeout:?}\n{}",
            self.name,
            self.log_tail(40)
        );
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path, lines)
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- last {LOG_TAIL_LINES} lines of the {} log ({}) -----\n{}\n-----",
                self.name,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.kill9();
    }
}

/// Opens (creating) the log file for appending.
fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open log file {}: {error}", path.display()))
}

/// Appends one harness note to the log, so restarts and kills are visible in the log tail.
fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    let mut file = open_log(path);
    let _ = writeln!(file, "{line}");
}
