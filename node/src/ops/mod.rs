//! What operators see: the status endpoint (`/status`, `/metrics`, `/healthz`), the status
//! report and its rendering for the command line.

pub mod render;
pub mod status;
