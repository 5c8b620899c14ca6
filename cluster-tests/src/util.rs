//! Small shared helpers: loopback port allocation, temporary directories, locating external
//! programs, running commands under a deadline, and bounded polling.
//!
//! Nothing here talks DNS; nothing here starts a long-lived process (see `process`).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Ports are handed out from this range, below Linux's default ephemeral range (32768–60999), so
/// that outgoing connections made by the daemons under test cannot grab a port between the
/// moment we check it and the moment the daemon binds it.
const PORT_RANGE_START: u32 = 20_000;
/// Size of the port range; see `PORT_RANGE_START`.
const PORT_RANGE_LEN: u32 = 12_000;
/// How many candidate ports `free_port` tries before giving up.
const PORT_ATTEMPTS_MAX: u32 = 4_000;
/// Longest time an external command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports already handed out by this process, so parallel tests in one binary never share one.
static PORTS_GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Next candidate offset into the port range; seeded randomly on first use.
static PORT_CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);

/// A random 64-bit value from the standard library's per-process random hasher keys.
pub fn random_u64() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((nanos, std::process::id()))
}

/// Returns a port on 127.0.0.1 that is free for both UDP and TCP right now and that this process
/// has not handed out before.
///
/// Another process may still take it before the caller binds it; the range and the random start
/// make that unlikely (see `PORT_RANGE_START`).
pub fn free_port() -> u16 {
    let mut given = PORTS_GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    if PORT_CURSOR.load(Ordering::Relaxed) == u32::MAX {
        // Truncation is intended: any value in range is a fine starting point.
        let start = (random_u64() % u64::from(PORT_RANGE_LEN)) as u32;
        PORT_CURSOR.store(start, Ordering::Relaxed);
    }
    for _ in 0..PORT_ATTEMPTS_MAX {
        let offset = PORT_CURSOR.fetch_add(1, Ordering::Relaxed) % PORT_RANGE_LEN;
        let port = u16::try_from(PORT_RANGE_START + offset).expect("port range is below 65536");
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after {PORT_ATTEMPTS_MAX} attempts");
}

/// How many ports from `free_port` `free_wildcard_port` tries before giving up.
const WILDCARD_PORT_ATTEMPTS_MAX: u32 = 50;

/// Returns a port (from `free_port`) that is also free for UDP and TCP on both wildcards,
/// `0.0.0.0` and `[::]`, for a daemon that listens on them.
///
/// The check binds each wildcard for a moment and sends nothing.
pub fn free_wildcard_port() -> u16 {
    for _ in 0..WILDCARD_PORT_ATTEMPTS_MAX {
        let port = free_port();
        let free = [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ]
        .into_iter()
        .all(|ip| {
            // One family at a time: each socket is closed before the next is bound, so a
            // dual-stack `[::]` socket does not collide with the `0.0.0.0` one.
            TcpListener::bind((ip, port)).is_ok() && UdpSocket::bind((ip, port)).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port free on both wildcards after {WILDCARD_PORT_ATTEMPTS_MAX} attempts");
}

/// Creates a temporary directory whose name starts with `zonecast-<prefix>-`; it is removed when
/// the returned handle is dropped.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("zonecast-{prefix}-"))
        .tempdir()
        .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"))
}

/// Finds `program` in `PATH` (and in the sbin directories, which a test environment's `PATH` may
/// lack), or panics with a message naming the Debian package that provides it.
///
/// Tests must fail, never skip, when a peer program is missing.
pub fn require_program(program: &str, debian_package: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut directories: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        directories.push(PathBuf::from(extra));
    }
    for directory in directories {
        let candidate = directory.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required program `{program}` was not found in PATH or /usr/sbin: \
         install the Debian package `{debian_package}` (apt-get install -y {debian_package})"
    );
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Calls `probe` every `interval` until it returns `Some`, for at most `timeout`.
///
/// Returns the value and the time it took, or `None` on timeout. The number of attempts is
/// bounded by `timeout / interval + 1`.
pub fn poll<T>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    let attempts_max = timeout.as_millis() / interval.as_millis().max(1) + 1;
    for _ in 0..attempts_max {
        if let Some(value) = probe() {
            return Some((value, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            break;
        }
        std::thread::sleep(interval);
    }
    probe().map(|value| (value, start.elapsed()))
}

/// Runs `command` to completion, killing it after `timeout`. Stdin is closed.
///
/// Panics if the program cannot be started or does not finish in time: both are harness or
/// environment failures, not outcomes a test wants to inspect.
pub fn run_command(command: &mut Command, timeout: Duration) -> Output {
    let description = describe(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `{description}`: {error}"));
    // Reading both pipes on helper threads keeps a chatty child from blocking on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout was piped above");
    let mut stderr = child.stderr.take().expect("stderr was piped above");
    let stdout_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.read_to_end(&mut buffer);
        buffer
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{description}` did not finish within {timeout:?} and was killed");
            }
            Err(error) => panic!("waiting for `{description}` failed: {error}"),
        }
    };
    Output {
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: stderr_reader.join().unwrap_or_default(),
    }
}

/// Runs `command` like `run_command` and panics with its output unless it exits successfully;
/// returns its standard output.
pub fn run_checked(command: &mut Command, timeout: Duration) -> String {
    let description = describe(command);
    let output = run_command(command, timeout);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!(
            "`{description}` failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stdout
}

/// Runs `command` like `run_command`, whatever its exit status; returns (success, standard output
/// followed by standard error). For checks of commands that are expected to fail.
pub fn run_unchecked(command: &mut Command, timeout: Duration) -> (bool, String) {
    let output = run_command(command, timeout);
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A shell-like rendering of a command for error messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for argument in command.get_args() {
        text.push(' ');
        text.push_str(&argument.to_string_lossy());
    }
    text
}

/// Writes `contents` to `path`, panicking with the path on failure.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::write(path, contents)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

/// The last `lines` lines of the file at `path`, or a note saying why there are none.
pub fn file_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Sends a signal by name (`TERM`, `KILL`, `HUP`) to a process with the `kill` program.
///
/// The workspace forbids `unsafe`, so `libc::kill` is not an option; errors (the process is
/// already gone) are ignored.
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// True when `haystack` contains `needle`, ignoring ASCII case.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for port in ports {
            assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
            assert!(UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        }
    }

    #[test]
    #[should_panic(expected = "install the Debian package `no-such-package`")]
    fn missing_program_names_the_package() {
        require_program("zonecast-no-such-program", "no-such-package");
    }

    #[test]
    fn poll_is_bounded() {
        let mut calls = 0;
        let result: Option<((), Duration)> = poll(
            Duration::from_millis(100),
            Duration::from_millis(10),
            || {
                calls += 1;
                None
            },
        );
        assert!(result.is_none());
        assert!(calls <= 13, "probe called {calls} times");
    }
}
