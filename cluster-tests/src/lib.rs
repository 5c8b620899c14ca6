//! Harness for zonecast's loopback integration tests (test tier 2 in DESIGN.md section 8).
//!
//! It starts real processes — BIND 9 as the primary, NSD and Knot as reference servers, and the
//! `zonecast` daemon itself — each with its own temporary directory, configuration and ports, and
//! observes them only through the wire: DNS over UDP/TCP, the `dig`/`kdig` tools, and zonecast's
//! HTTP status endpoint. A hostile primary test double serves deliberately broken transfers.
//! Certificates for XFR-over-TLS and XFR-over-QUIC are made with `zonecast cert` (`certs`), and
//! an independent DNS-over-QUIC client (dnspython with aioquic, `scripts/doq_xfr.py`) checks
//! zonecast's XoQ server from outside.
//!
//! Invariants:
//! - Every socket this crate opens, and every address it writes into a configuration, is on
//!   127.0.0.0/8 or `::1`: tests never send traffic anywhere else. The one exception is a
//!   zonecast node told to listen on the wildcards (`ZonecastConfig::with_wildcards`), which
//!   the tests still reach through loopback only.
//! - Every wait is bounded in time and in number of attempts; a timeout is a test failure with
//!   the relevant daemon's log tail, never a hang.
//! - A missing external program is a failure naming the Debian package to install, never a
//!   silent skip.
//! - Child processes are killed when their handle is dropped, also when a test panics.

pub mod bind;
pub mod certs;
pub mod check;
pub mod client;
pub mod compare;
pub mod doq;
pub mod hostile;
pub mod knot;
pub mod nsd;
pub mod process;
pub mod reference;
pub mod tsig;
pub mod util;
pub mod zonecast;
pub mod zones;

pub use bind::{Bind, BindOptions, BindPrimary, BindTls, BindZone};
pub use certs::{ClusterCa, NodeCertificate};
pub use client::{QueryOptions, dig, dig_at, kdig, query_tcp, query_udp};
pub use compare::compare;
pub use hostile::{HostilePrimary, Mode};
pub use knot::Knot;
pub use nsd::Nsd;
pub use tsig::TsigKey;
pub use util::{free_port, require_program, temp_dir};
pub use zonecast::{
    AclEntry, Peer, Primary, TlsTrust, Transport, ZoneConfig, ZoneSource, Zonecast, ZonecastConfig,
};
