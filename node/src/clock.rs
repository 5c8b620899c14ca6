//! The wall clock, read in one place. Protocol logic never calls these: services read the
//! clock and pass `now` in, so the pure modules stay testable with plain timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the UNIX epoch, as TSIG and the store count time.
pub fn unix_now() -> u64 {
    to_unix(SystemTime::now())
}

/// UNIX seconds of a time (0 before the epoch).
pub fn to_unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The time of UNIX seconds.
pub fn from_unix(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}
