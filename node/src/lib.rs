//! zonecast: a secondary authoritative DNS server built to run as an anycast cluster.
//!
//! Folders by concern, each importing only the ones below it (ARCHITECTURE.md has the map;
//! `tests/tidy.rs` enforces it): `dns` (pure DNS logic) and `tls` (certificate material) at the
//! base; `config`, `metrics` and `clock` beside them; `store` (sled and the served zone set);
//! `xfr` (transfers in, the refresh logic and its per-zone task); `serve` (answering: queries,
//! NOTIFY in, transfers out, the listeners); `ops` (status endpoint and its rendering); `app`
//! wires them together for `main`.

pub mod app;
pub mod clock;
pub mod config;
pub mod dns;
pub mod metrics;
pub mod ops;
pub mod serve;
pub mod store;
pub mod tls;
pub mod xfr;
