//! Pure DNS logic: names and their keys, the zone model, the answer algorithm, writing answers,
//! TSIG, serial arithmetic and master-file parsing.
//!
//! **Invariant:** nothing here does I/O or reads a clock: no sockets, no files, no tokio; time
//! is passed in. `tests/tidy.rs` fails if that changes.

pub mod lookup;
pub mod name;
pub mod response;
pub mod serial;
pub mod tsig;
pub mod zone;
pub mod zonefile;
