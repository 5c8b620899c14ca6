//! SOA timer decisions (RFC 1035 3.3.13, RFC 1996): when to check a primary next, and when a
//! zone expires. Operator clamps bound every timer; jitter spreads thousands of zones apart.
//!
//! Pure logic: time is passed in, nothing sleeps or touches the network.

use std::time::{Duration, SystemTime};

use hickory_proto::rr::rdata::SOA;

use crate::config::TimerClamps;

/// Up to this fraction of REFRESH is taken off each interval, so that zones loaded together do
/// not poll their primaries together forever.
const JITTER_FRACTION: f64 = 0.1;

/// Longest wait between attempts for a zone that has never loaded: long backoffs would leave a
/// new zone unserved long after its primary came back.
const UNLOADED_RETRY_MAX: Duration = Duration::from_secs(60);

/// The timers of one zone version, clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimers {
    /// Interval between successful checks.
    pub refresh: Duration,
    /// Interval after a failed check.
    pub retry: Duration,
    /// Time without a successful check after which the zone is no longer served.
    pub expire: Duration,
}

impl SoaTimers {
    /// The zone's SOA timers within the operator's clamps.
    pub fn from_soa(soa: &SOA, clamps: &TimerClamps) -> SoaTimers {
        // RFC 1035 defines the timers as unsigned 32-bit; hickory stores them as i32.
        let seconds = |value: i32| Duration::from_secs(u64::from(value as u32));
        SoaTimers {
            refresh: seconds(soa.refresh).clamp(clamps.refresh_min, clamps.refresh_max),
            retry: seconds(soa.retry).clamp(clamps.retry_min, clamps.retry_max),
            expire: seconds(soa.expire).clamp(clamps.expire_min, clamps.expire_max),
        }
    }
}

/// What happened at the last attempt, as far as scheduling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAttempt {
    /// Nothing tried yet (since start).
    None,
    /// The check or transfer succeeded at this time.
    Succeeded(SystemTime),
    /// It failed at this time; `failures` in a row.
    Failed {
        /// When.
        at: SystemTime,
        /// How many failures in a row.
        failures: u32,
    },
}

/// When to check the primaries next. `timers` is None while the zone has no data.
/// `jitter` is a number in [0, 1) drawn by the caller.
pub fn next_check(
    timers: Option<SoaTimers>,
    last_success: Option<SystemTime>,
    last: LastAttempt,
    clamps: &TimerClamps,
    jitter: f64,
    now: SystemTime,
) -> SystemTime {
    match (timers, last) {
        (_, LastAttempt::None) => match (timers, last_success) {
            // After a restart the stored time of the last success keeps counting.
            (Some(timers), Some(success)) => success + jittered(timers.refresh, jitter),
            _ => now,
        },
        (None, LastAttempt::Failed { at, failures }) => {
            let backoff = clamps
                .retry_min
                .saturating_mul(1 << failures.saturating_sub(1).min(16));
            at + jittered(
                backoff.min(UNLOADED_RETRY_MAX.max(clamps.retry_min)),
                jitter,
            )
        }
        // Jitter on retries too: after a primary's outage, thousands of zones fail together
        // and must not retry in lockstep.
        (Some(timers), LastAttempt::Failed { at, .. }) => at + jittered(timers.retry, jitter),
        (Some(timers), LastAttempt::Succeeded(at)) => at + jittered(timers.refresh, jitter),
        (None, LastAttempt::Succeeded(_)) => now,
    }
}

/// The expire deadline after a successful check at `success`.
pub fn expire_deadline(timers: SoaTimers, success: SystemTime) -> SystemTime {
    success + timers.expire
}

fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64(1.0 - JITTER_FRACTION * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clamps() -> TimerClamps {
        TimerClamps {
            refresh_min: Duration::from_secs(60),
            refresh_max: Duration::from_secs(86_400),
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            expire_min: Duration::from_secs(3600),
            expire_max: Duration::from_secs(1_000_000),
        }
    }

    fn soa(refresh: i32, retry: i32, expire: i32) -> SOA {
        SOA::new(
            hickory_proto::rr::Name::root(),
            hickory_proto::rr::Name::root(),
            1,
            refresh,
            retry,
            expire,
            300,
        )
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn timers_are_clamped() {
        let timers = SoaTimers::from_soa(&soa(1, -5, 10_000_000), &clamps());
        assert_eq!(timers.refresh, Duration::from_secs(60));
        // -5 as an RFC 1035 unsigned field is 2^32 - 5 seconds: clamped to the maximum.
        assert_eq!(timers.retry, Duration::from_secs(3600));
        assert_eq!(timers.expire, Duration::from_secs(1_000_000));
        let inside = SoaTimers::from_soa(&soa(7200, 900, 1_209_600), &clamps());
        assert_eq!(inside.refresh, Duration::from_secs(7200));
    }

    #[test]
    fn schedule_follows_refresh_and_retry() {
        let timers = Some(SoaTimers::from_soa(&soa(7200, 900, 1_209_600), &clamps()));
        let now = at(10_000);
        assert_eq!(
            next_check(
                timers,
                None,
                LastAttempt::Succeeded(now),
                &clamps(),
                0.0,
                now
            ),
            at(10_000 + 7200)
        );
        let jittered = next_check(
            timers,
            None,
            LastAttempt::Succeeded(now),
            &clamps(),
            0.999,
            now,
        );
        assert!(jittered > at(10_000 + 6480) && jittered < at(10_000 + 7200));
        assert_eq!(
            next_check(
                timers,
                None,
                LastAttempt::Failed {
                    at: now,
                    failures: 3
                },
                &clamps(),
                0.0,
                now
            ),
            at(10_000 + 900)
        );
    }

    #[test]
    fn restart_continues_stored_timers() {
        let timers = Some(SoaTimers::from_soa(&soa(7200, 900, 1_209_600), &clamps()));
        let stored_success = at(5_000);
        assert_eq!(
            next_check(
                timers,
                Some(stored_success),
                LastAttempt::None,
                &clamps(),
                0.0,
                at(6_000)
            ),
            at(5_000 + 7200)
        );
        assert_eq!(
            next_check(None, None, LastAttempt::None, &clamps(), 0.0, at(6_000)),
            at(6_000)
        );
    }

    #[test]
    fn unloaded_zone_backs_off_with_a_cap() {
        let now = at(1_000);
        let first = next_check(
            None,
            None,
            LastAttempt::Failed {
                at: now,
                failures: 1,
            },
            &clamps(),
            0.0,
            now,
        );
        assert_eq!(first, at(1_010));
        let later = next_check(
            None,
            None,
            LastAttempt::Failed {
                at: now,
                failures: 30,
            },
            &clamps(),
            0.0,
            now,
        );
        assert_eq!(later, at(1_060));
    }

    #[test]
    fn expire_counts_from_success() {
        let timers = SoaTimers::from_soa(&soa(7200, 900, 604_800), &clamps());
        assert_eq!(expire_deadline(timers, at(100)), at(100 + 604_800));
    }
}
