//! Transfers in: the XFR stream interpreter and transfer planning (pure), the refresh state
//! machine (pure), the transfer client and its connectors, the per-zone task that drives them,
//! and NOTIFY out.

pub mod client;
pub mod connect;
pub mod downstream;
pub mod error;
pub mod file;
pub mod framing;
pub mod interpreter;
pub mod notify;
pub mod plan;
pub mod refresh;
pub mod supervisor;
pub mod task;
