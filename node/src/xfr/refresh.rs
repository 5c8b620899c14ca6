//! The refresh logic of a zone with primaries, as a state machine without I/O (quinn-style):
//! [`Refresh::handle`] takes `now` and an [`Event`] (timer, NOTIFY, an SOA answer, a transfer's
//! outcome) and returns [`Action`]s; [`Refresh::poll_timeout`] says when to wake it next. The
//! per-zone task (`xfr::task`) performs the actions and feeds their results back.
//!
//! It owns RFC 1035 3.3.13 and RFC 1996: REFRESH after a success, RETRY after a failure (with
//! backoff while the zone has no data), EXPIRE since the last success, NOTIFY acted on at once
//! and coalesced while a check runs, primaries asked in order (the one that sent NOTIFY first),
//! IXFR with fallback to AXFR from the same primary, and an EXPIRE inherited from a source that
//! is itself a secondary (RFC 7314). Operator clamps bound every timer; jitter (from a seed the
//! caller gives) spreads thousands of zones apart.
//!
//! Pure logic: time is passed in, nothing sleeps or touches the network.

use std::time::{Duration, SystemTime};

use hickory_proto::rr::rdata::SOA;

use crate::config::TimerClamps;
use crate::dns::serial::is_newer;

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

fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64(1.0 - JITTER_FRACTION * jitter.clamp(0.0, 1.0))
}

/// Something that happened to a zone's refresh.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The time [`Refresh::poll_timeout`] asked for has come.
    Timer,
    /// An accepted NOTIFY, from the source at this index when it is one of ours.
    Notify {
        /// The index of the source that sent it.
        source: Option<usize>,
    },
    /// The SOA query of [`Action::QuerySoa`] was answered.
    SoaAnswer {
        /// The source's serial.
        serial: u32,
        /// The source's EDNS EXPIRE (RFC 7314), when it is a secondary itself.
        source_expire: Option<u32>,
    },
    /// The SOA query failed.
    SoaFailed,
    /// The transfer of [`Action::Transfer`] brought a new version, already stored and served.
    Loaded {
        /// Its serial.
        serial: u32,
        /// Its SOA timers, clamped.
        timers: SoaTimers,
    },
    /// The transfer failed; `fallback` when an IXFR should be retried as AXFR from the same
    /// source (the source does not do IXFR, or its differences do not apply).
    TransferFailed {
        /// Retry as AXFR.
        fallback: bool,
    },
}

/// The kind of transfer to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// Incremental, from the serial held.
    Ixfr {
        /// The serial held.
        from: u32,
    },
    /// The whole zone.
    Axfr,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask source `source` for its SOA.
    QuerySoa {
        /// The source's index.
        source: usize,
    },
    /// Transfer the zone from source `source`.
    Transfer {
        /// The source's index.
        source: usize,
        /// IXFR or AXFR.
        kind: TransferKind,
    },
    /// The check succeeded (the data is current, or a new version was loaded): the copy is
    /// valid until `expire_deadline`; stop answering SERVFAIL if expired.
    Succeeded {
        /// The source that answered.
        source: usize,
        /// When the copy expires unless refreshed again.
        expire_deadline: SystemTime,
    },
    /// Every source failed this round; the next try is at `retry_at`.
    Failed {
        /// Failed rounds in a row.
        failures: u32,
        /// The next round.
        retry_at: SystemTime,
    },
    /// EXPIRE passed without a successful check: answer SERVFAIL until one succeeds.
    Expire,
}

/// The round of checks in progress: sources in the order they are asked.
#[derive(Debug, Clone, PartialEq)]
struct Round {
    order: Vec<usize>,
    position: usize,
    step: Step,
    /// The EDNS EXPIRE the current source gave with its SOA.
    source_expire: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Soa,
    Transfer(TransferKind),
}

/// The refresh state of one zone with `sources` primaries.
#[derive(Debug, Clone)]
pub struct Refresh {
    clamps: TimerClamps,
    sources: usize,
    /// The serial and clamped timers of the data held; None before the first load.
    current: Option<(u32, SoaTimers)>,
    last_success: Option<SystemTime>,
    expire_deadline: Option<SystemTime>,
    last: LastAttempt,
    failures: u32,
    expired: bool,
    next_check: SystemTime,
    round: Option<Round>,
    /// A NOTIFY came during the round: check again when it ends (from this source first).
    notified_during_round: Option<Option<usize>>,
    /// xorshift state for jitter; 0 means no jitter (tests).
    jitter_state: u64,
}

impl Refresh {
    /// The state at start: `current` is the stored version (serial and SOA timers), with the
    /// stored time of its last success and expire deadline, so timers continue across restarts.
    pub fn new(
        clamps: TimerClamps,
        sources: usize,
        current: Option<(u32, SoaTimers)>,
        last_success: Option<SystemTime>,
        expire_deadline: Option<SystemTime>,
        seed: u64,
        now: SystemTime,
    ) -> Refresh {
        let mut refresh = Refresh {
            clamps,
            sources,
            current,
            last_success,
            expire_deadline,
            last: LastAttempt::None,
            failures: 0,
            expired: false,
            next_check: now,
            round: None,
            notified_during_round: None,
            jitter_state: seed,
        };
        refresh.schedule(now);
        refresh
    }

    /// When to call `handle(Event::Timer)` next; None while a check is in progress (the
    /// driver waits for its outcome, which is bounded by the transfer limits).
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        if self.round.is_some() {
            return None;
        }
        match self.expire_deadline {
            Some(deadline) if !self.expired && self.current.is_some() => {
                Some(deadline.min(self.next_check))
            }
            _ => Some(self.next_check),
        }
    }

    /// True while the zone is expired.
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// When the next check is due (when none is in progress).
    pub fn next_check(&self) -> SystemTime {
        self.next_check
    }

    /// The expire deadline after a success at `now` from a source that gave `source_expire`:
    /// SOA EXPIRE, but never later than the source's own copy expires.
    pub fn deadline_after_success(
        &self,
        timers: SoaTimers,
        source_expire: Option<u32>,
        now: SystemTime,
    ) -> SystemTime {
        let mut expire = timers.expire;
        if let Some(seconds) = source_expire {
            expire = expire.min(Duration::from_secs(u64::from(seconds)));
        }
        now + expire
    }

    /// The EDNS EXPIRE of the source being asked now.
    pub fn source_expire(&self) -> Option<u32> {
        self.round.as_ref().and_then(|round| round.source_expire)
    }

    /// Takes one event; returns what to do.
    pub fn handle(&mut self, now: SystemTime, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Timer => {
                if self.round.is_none() {
                    if let Some(deadline) = self.expire_deadline
                        && now >= deadline
                        && !self.expired
                        && self.current.is_some()
                    {
                        self.expired = true;
                        actions.push(Action::Expire);
                    }
                    if now >= self.next_check {
                        actions.push(self.start_round(None));
                    }
                }
            }
            Event::Notify { source } => {
                if self.round.is_some() {
                    // Coalesced: however many come during a round, one more round follows it.
                    self.notified_during_round =
                        Some(source.or(self.notified_during_round.flatten()));
                } else {
                    actions.push(self.start_round(source));
                }
            }
            Event::SoaAnswer {
                serial,
                source_expire,
            } => {
                let Some(round) = self.round.as_mut().filter(|round| round.step == Step::Soa)
                else {
                    return actions;
                };
                round.source_expire = source_expire;
                let source = round.order[round.position];
                match self.current {
                    Some((ours, timers)) if !is_newer(serial, ours) => {
                        let deadline = self.deadline_after_success(timers, source_expire, now);
                        self.succeed(now, source, deadline, &mut actions);
                    }
                    Some((ours, _)) => {
                        let kind = TransferKind::Ixfr { from: ours };
                        round.step = Step::Transfer(kind);
                        actions.push(Action::Transfer { source, kind });
                    }
                    None => {
                        round.step = Step::Transfer(TransferKind::Axfr);
                        actions.push(Action::Transfer {
                            source,
                            kind: TransferKind::Axfr,
                        });
                    }
                }
            }
            Event::SoaFailed => {
                if self
                    .round
                    .as_ref()
                    .is_some_and(|round| round.step == Step::Soa)
                {
                    self.next_source(now, &mut actions);
                }
            }
            Event::Loaded { serial, timers } => {
                let Some(round) = self
                    .round
                    .as_ref()
                    .filter(|round| matches!(round.step, Step::Transfer(_)))
                else {
                    return actions;
                };
                let source = round.order[round.position];
                let deadline = self.deadline_after_success(timers, round.source_expire, now);
                self.current = Some((serial, timers));
                self.succeed(now, source, deadline, &mut actions);
            }
            Event::TransferFailed { fallback } => {
                let Some(round) = self.round.as_mut() else {
                    return actions;
                };
                let source = round.order[round.position];
                match round.step {
                    Step::Transfer(TransferKind::Ixfr { .. }) if fallback => {
                        round.step = Step::Transfer(TransferKind::Axfr);
                        actions.push(Action::Transfer {
                            source,
                            kind: TransferKind::Axfr,
                        });
                    }
                    Step::Transfer(_) => self.next_source(now, &mut actions),
                    Step::Soa => {}
                }
            }
        }
        actions
    }

    fn start_round(&mut self, first: Option<usize>) -> Action {
        let mut order: Vec<usize> = (0..self.sources).collect();
        if let Some(first) = first.filter(|first| *first < self.sources) {
            // Stable: the notifying source first, the others in configured order.
            order.sort_by_key(|source| *source != first);
        }
        let source = order.first().copied().unwrap_or(0);
        self.round = Some(Round {
            order,
            position: 0,
            step: Step::Soa,
            source_expire: None,
        });
        Action::QuerySoa { source }
    }

    fn next_source(&mut self, now: SystemTime, actions: &mut Vec<Action>) {
        let Some(round) = self.round.as_mut() else {
            return;
        };
        round.position += 1;
        round.step = Step::Soa;
        round.source_expire = None;
        if let Some(&source) = round.order.get(round.position) {
            actions.push(Action::QuerySoa { source });
            return;
        }
        self.round = None;
        self.failures = self.failures.saturating_add(1);
        self.last = LastAttempt::Failed {
            at: now,
            failures: self.failures,
        };
        self.schedule(now);
        actions.push(Action::Failed {
            failures: self.failures,
            retry_at: self.next_check,
        });
        self.after_round(actions);
    }

    fn succeed(
        &mut self,
        now: SystemTime,
        source: usize,
        deadline: SystemTime,
        actions: &mut Vec<Action>,
    ) {
        self.round = None;
        self.failures = 0;
        self.last = LastAttempt::Succeeded(now);
        self.last_success = Some(now);
        self.expire_deadline = Some(deadline);
        self.expired = false;
        self.schedule(now);
        actions.push(Action::Succeeded {
            source,
            expire_deadline: deadline,
        });
        self.after_round(actions);
    }

    /// A NOTIFY that came during the round that just ended starts the next one at once.
    fn after_round(&mut self, actions: &mut Vec<Action>) {
        if let Some(source) = self.notified_during_round.take() {
            actions.push(self.start_round(source));
        }
    }

    fn schedule(&mut self, now: SystemTime) {
        let jitter = self.next_jitter();
        self.next_check = next_check(
            self.current.map(|(_, timers)| timers),
            self.last_success,
            self.last,
            &self.clamps,
            jitter,
            now,
        );
    }

    /// A number in [0, 1) from the seed (xorshift64*); always 0 with seed 0.
    fn next_jitter(&mut self) -> f64 {
        if self.jitter_state == 0 {
            return 0.0;
        }
        let mut x = self.jitter_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.jitter_state = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
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

    fn timers() -> SoaTimers {
        SoaTimers::from_soa(&soa(7200, 900, 604_800), &clamps())
    }

    /// A zone holding serial 10, loaded at `loaded`, with `sources` primaries.
    fn loaded(sources: usize, loaded: u64) -> Refresh {
        Refresh::new(
            clamps(),
            sources,
            Some((10, timers())),
            Some(at(loaded)),
            Some(at(loaded + 604_800)),
            0,
            at(loaded),
        )
    }

    #[test]
    fn refresh_then_retry_then_expire() {
        let mut zone = loaded(1, 1_000);
        assert_eq!(zone.poll_timeout(), Some(at(1_000 + 7200)));
        assert!(zone.handle(at(1_500), Event::Timer).is_empty());
        assert_eq!(
            zone.handle(at(8_200), Event::Timer),
            [Action::QuerySoa { source: 0 }]
        );
        assert_eq!(zone.poll_timeout(), None, "no timer while a check runs");
        assert_eq!(
            zone.handle(at(8_201), Event::SoaFailed),
            [Action::Failed {
                failures: 1,
                retry_at: at(8_201 + 900)
            }]
        );
        // Retries every RETRY until EXPIRE, counted from the last success, passes.
        let mut now;
        loop {
            let wake = zone.poll_timeout().expect("a timer");
            now = wake
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after")
                .as_secs();
            let actions = zone.handle(wake, Event::Timer);
            if actions.contains(&Action::Expire) {
                break;
            }
            assert_eq!(actions, [Action::QuerySoa { source: 0 }]);
            zone.handle(wake, Event::SoaFailed);
        }
        assert_eq!(now, 1_000 + 604_800);
        assert!(zone.is_expired());
        // The next success ends the expiry, with a fresh deadline.
        let actions = zone.handle(at(now), Event::SoaFailed);
        assert!(actions.is_empty(), "{actions:?}");
        zone.handle(at(now + 900), Event::Timer);
        let actions = zone.handle(
            at(now + 901),
            Event::SoaAnswer {
                serial: 10,
                source_expire: None,
            },
        );
        assert_eq!(
            actions,
            [Action::Succeeded {
                source: 0,
                expire_deadline: at(now + 901 + 604_800)
            }]
        );
        assert!(!zone.is_expired());
    }

    #[test]
    fn newer_serial_transfers_ixfr_then_falls_back_to_axfr() {
        let mut zone = loaded(1, 0);
        zone.handle(at(1), Event::Notify { source: Some(0) });
        let actions = zone.handle(
            at(2),
            Event::SoaAnswer {
                serial: 11,
                source_expire: None,
            },
        );
        assert_eq!(
            actions,
            [Action::Transfer {
                source: 0,
                kind: TransferKind::Ixfr { from: 10 }
            }]
        );
        assert_eq!(
            zone.handle(at(3), Event::TransferFailed { fallback: true }),
            [Action::Transfer {
                source: 0,
                kind: TransferKind::Axfr
            }]
        );
        assert_eq!(
            zone.handle(
                at(4),
                Event::Loaded {
                    serial: 11,
                    timers: timers()
                }
            ),
            [Action::Succeeded {
                source: 0,
                expire_deadline: at(4 + 604_800)
            }]
        );
        assert_eq!(zone.poll_timeout(), Some(at(4 + 7200)));
    }

    #[test]
    fn a_zone_without_data_asks_for_axfr() {
        let mut zone = Refresh::new(clamps(), 1, None, None, None, 0, at(0));
        assert_eq!(zone.poll_timeout(), Some(at(0)));
        assert_eq!(
            zone.handle(at(0), Event::Timer),
            [Action::QuerySoa { source: 0 }]
        );
        assert_eq!(
            zone.handle(
                at(1),
                Event::SoaAnswer {
                    serial: 1,
                    source_expire: None
                }
            ),
            [Action::Transfer {
                source: 0,
                kind: TransferKind::Axfr
            }]
        );
        // An AXFR failure does not fall back to anything: the round fails, with backoff.
        assert_eq!(
            zone.handle(at(2), Event::TransferFailed { fallback: true }),
            [Action::Failed {
                failures: 1,
                retry_at: at(2 + 10)
            }]
        );
    }

    #[test]
    fn primaries_in_order_the_notifier_first() {
        let mut zone = loaded(3, 0);
        assert_eq!(
            zone.handle(at(1), Event::Notify { source: Some(2) }),
            [Action::QuerySoa { source: 2 }]
        );
        assert_eq!(
            zone.handle(at(2), Event::SoaFailed),
            [Action::QuerySoa { source: 0 }]
        );
        assert_eq!(
            zone.handle(
                at(3),
                Event::SoaAnswer {
                    serial: 11,
                    source_expire: None
                }
            ),
            [Action::Transfer {
                source: 0,
                kind: TransferKind::Ixfr { from: 10 }
            }]
        );
        // A failed transfer moves on to the next source, starting again from its SOA.
        assert_eq!(
            zone.handle(at(4), Event::TransferFailed { fallback: false }),
            [Action::QuerySoa { source: 1 }]
        );
        let last = zone.handle(at(5), Event::SoaFailed);
        assert_eq!(
            last,
            [Action::Failed {
                failures: 1,
                retry_at: at(5 + 900)
            }]
        );
    }

    #[test]
    fn notify_during_a_check_is_coalesced_into_one_more_round() {
        let mut zone = loaded(2, 0);
        assert_eq!(
            zone.handle(at(1), Event::Notify { source: None }),
            [Action::QuerySoa { source: 0 }]
        );
        for second in 2..20 {
            assert!(
                zone.handle(at(second), Event::Notify { source: Some(1) })
                    .is_empty()
            );
        }
        let actions = zone.handle(
            at(20),
            Event::SoaAnswer {
                serial: 10,
                source_expire: None,
            },
        );
        assert_eq!(
            actions,
            [
                Action::Succeeded {
                    source: 0,
                    expire_deadline: at(20 + 604_800)
                },
                Action::QuerySoa { source: 1 }
            ]
        );
        let actions = zone.handle(
            at(21),
            Event::SoaAnswer {
                serial: 10,
                source_expire: None,
            },
        );
        assert_eq!(actions.len(), 1, "no third round: {actions:?}");
    }

    #[test]
    fn expire_is_inherited_from_a_secondary_source() {
        let mut zone = loaded(1, 0);
        zone.handle(at(100), Event::Notify { source: Some(0) });
        zone.handle(
            at(101),
            Event::SoaAnswer {
                serial: 12,
                source_expire: Some(3_600),
            },
        );
        assert_eq!(zone.source_expire(), Some(3_600));
        let actions = zone.handle(
            at(102),
            Event::Loaded {
                serial: 12,
                timers: timers(),
            },
        );
        assert_eq!(
            actions,
            [Action::Succeeded {
                source: 0,
                expire_deadline: at(102 + 3_600)
            }]
        );
        // A longer remaining time than our own EXPIRE does not stretch ours.
        assert_eq!(
            zone.deadline_after_success(timers(), Some(u32::MAX), at(0)),
            at(604_800)
        );
    }

    #[test]
    fn restart_continues_the_stored_schedule_and_expiry() {
        let zone = Refresh::new(
            clamps(),
            1,
            Some((10, timers())),
            Some(at(5_000)),
            Some(at(5_000 + 604_800)),
            0,
            at(6_000),
        );
        assert_eq!(zone.poll_timeout(), Some(at(5_000 + 7200)));
        let mut late = Refresh::new(
            clamps(),
            1,
            Some((10, timers())),
            Some(at(0)),
            Some(at(604_800)),
            0,
            at(700_000),
        );
        let actions = late.handle(at(700_000), Event::Timer);
        assert_eq!(actions, [Action::Expire, Action::QuerySoa { source: 0 }]);
    }

    #[test]
    fn jitter_spreads_checks_but_stays_within_a_tenth() {
        let mut seen = std::collections::HashSet::new();
        for seed in 1..50u64 {
            let zone = Refresh::new(clamps(), 1, Some((10, timers())), None, None, seed, at(0));
            let mut zone = zone;
            zone.handle(at(0), Event::Timer);
            zone.handle(
                at(0),
                Event::SoaAnswer {
                    serial: 10,
                    source_expire: None,
                },
            );
            let next = zone.poll_timeout().expect("timer");
            assert!(next > at(6_480) && next <= at(7_200), "{next:?}");
            seen.insert(next);
        }
        assert!(seen.len() > 40, "jitter spreads zones apart");
    }
}
