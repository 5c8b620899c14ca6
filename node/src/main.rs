//! The `zonecast` command: `run` a node, `check-config` a file, show a node's `status`, make a
//! running node `reload` its configuration, and `cert` tools.
//!
//! Only argument handling and output live here; the node itself is `zonecast::app`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zonecast::config::{Config, ConfigError};
use zonecast::ops::status::StatusReport;

#[derive(Parser)]
#[command(
    name = "zonecast",
    version,
    about = "Secondary authoritative DNS server for anycast clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Run {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Check a configuration file and print every problem found.
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
    },
    /// Show a running node's zones.
    Status {
        /// The node's status URL.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        url: String,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a running node re-read its configuration file (as SIGHUP does) and print what
    /// changed, or every problem found (the node then keeps its previous configuration).
    Reload {
        /// The node's status URL.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        url: String,
    },
    /// Make and inspect certificates for encrypted transfers and the cluster.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create a cluster CA: DIR/ca.crt and DIR/ca.key.
    InitCa {
        /// Where to write the CA (created if missing; existing files are never overwritten).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "zonecast cluster CA")]
        name: String,
    },
    /// Issue a node certificate (TLS server and client) signed by the cluster CA.
    Issue {
        /// The node's DNS name; also names the files NODE.crt and NODE.key.
        node: String,
        /// The directory holding ca.crt and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Where to write the certificate and key (default: the CA directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Another name for the node: a DNS name or an IP address (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Print the SPKI pin (base64 SHA-256) of a PEM certificate, as `kdig +tls-pin` wants it.
    Pin {
        /// The PEM certificate file.
        cert: PathBuf,
    },
}

/// Threads for blocking work (file parsing, store writes).
const BLOCKING_THREADS: usize = 8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Status { url, json } => status(&url, json),
        Command::Reload { url } => reload(&url),
        Command::Cert { command } => cert(command),
    }
}

fn run(path: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("zonecast: {error}");
            return ExitCode::from(2);
        }
    };
    // Blocking work (parsing zone files, writing the store) runs on a small pool: with
    // thousands of zones loading at once, tokio's default of 512 threads cost ~20 KiB of
    // memory per zone in stacks and allocator arenas. The UDP workers have threads of their
    // own.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("zonecast: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(zonecast::app::run(config, path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zonecast: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: PathBuf) -> ExitCode {
    match Config::load(&path) {
        Ok(config) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}: OK", path.display());
            let _ = write!(out, "{}", zonecast::ops::render::config_summary(&config));
            ExitCode::SUCCESS
        }
        Err(error @ ConfigError::Invalid { .. }) | Err(error @ ConfigError::Syntax { .. }) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn status(url: &str, json: bool) -> ExitCode {
    let endpoint = format!("{}/status", url.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let response = match agent.get(&endpoint).call() {
        Ok(response) => response,
        Err(error) => {
            eprintln!("zonecast: cannot reach {endpoint}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let body = match response.into_string() {
        Ok(body) => body,
        Err(error) => {
            eprintln!("zonecast: cannot read {endpoint}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{body}");
        return ExitCode::SUCCESS;
    }
    let report: StatusReport = match serde_json::from_str(&body) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("zonecast: {endpoint} did not return a status report: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _ = write!(out, "{}", zonecast::ops::render::status_table(&report));
    ExitCode::SUCCESS
}

fn reload(url: &str) -> ExitCode {
    let endpoint = format!("{}/reload", url.trim_end_matches('/'));
    // Reading a large configuration and applying it can take a while at 100k zones.
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    match agent.post(&endpoint).call() {
        Ok(response) => {
            let body = response.into_string().unwrap_or_default();
            let _ = write!(std::io::stdout().lock(), "reloaded: {body}");
            ExitCode::SUCCESS
        }
        Err(ureq::Error::Status(code, response)) => {
            let body = response.into_string().unwrap_or_default();
            eprintln!(
                "zonecast: reload refused (HTTP {code}); the node keeps its configuration:\n{body}"
            );
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("zonecast: cannot reach {endpoint}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn cert(command: CertCommand) -> ExitCode {
    let written = match command {
        CertCommand::InitCa { dir, name } => zonecast::tls::init_ca(&dir, &name),
        CertCommand::Issue {
            node,
            ca_dir,
            out,
            sans,
        } => {
            let out = out.unwrap_or_else(|| ca_dir.clone());
            zonecast::tls::issue(&ca_dir, &node, &sans, &out)
        }
        CertCommand::Pin { cert } => {
            return match zonecast::tls::load_pin(&cert) {
                Ok(pin) => {
                    let _ = writeln!(std::io::stdout().lock(), "{pin}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("zonecast: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match written {
        Ok((cert, key)) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "wrote {}", cert.display());
            let _ = writeln!(out, "wrote {} (private key, mode 0600)", key.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("zonecast: {error}");
            ExitCode::FAILURE
        }
    }
}
