//! zonecast: a secondary authoritative DNS server built to run as an anycast cluster.
//!
//! The crate is layered (see ARCHITECTURE.md): base modules (`config`, `serial`, `zone`,
//! `lookup`, `tsig`, `wire`, `xfr`) know nothing of tasks and decide without I/O; `store`,
//! `transfer` and `zoneset` hold state and sockets; services (`serve`, `secondary`, `status`)
//! sit above them; `app` wires everything together for `main`.

pub mod app;
pub mod certs;
pub mod cli;
pub mod config;
pub mod encrypted;
pub mod lookup;
pub mod metrics;
pub mod notify_out;
pub mod refresh;
pub mod response;
pub mod secondary;
pub mod serial;
pub mod serve;
pub mod status;
pub mod store;
pub mod transfer;
pub mod transport;
pub mod tsig;
pub mod udp;
pub mod wire;
pub mod xfr;
pub mod xfr_out;
pub mod zone;
pub mod zonefile;
pub mod zoneset;
