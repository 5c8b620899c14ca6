//! The task of one zone: for a zone with primaries it drives the refresh state machine
//! (`xfr::refresh::Refresh`) and performs its actions — SOA queries, transfers, storing and
//! publishing new versions, status updates; a file zone's task is `xfr::file`.
//!
//! The machine decides; this task only does I/O. A new version is validated, made durable in
//! the store and only then published to the query path. Failures never touch the served data:
//! they show up in the zone's status (`last_error`, `last_error_kind`), the logs and the
//! metrics (`zonecast_refresh_failures_total{kind}`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::{from_unix, to_unix};
use crate::config::{Limits, Primary, TimerClamps, ZoneConfig, ZoneSource};
use crate::dns::serial;
use crate::dns::zone::{Diff, Zone, ZoneLimits};
use crate::metrics::Metrics;
use crate::store::zoneset::{ZoneHandle, ZoneState};
use crate::store::{JournalLimits, Store, ZoneMeta};
use crate::xfr::client::{self, TransferLimits};
use crate::xfr::connect::{ConnectError, Connector, Connectors};
use crate::xfr::downstream::Downstream;
use crate::xfr::error::{RefreshError, Rejection, RoundFailure};
use crate::xfr::file::FileZone;
use crate::xfr::interpreter::{Outcome, Request};
use crate::xfr::refresh::{Action, Event, Refresh, SoaTimers, TransferKind};

/// What the zone tasks share.
#[derive(Clone)]
pub struct Context {
    /// The zone store.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Timer clamps.
    pub clamps: TimerClamps,
    /// Zone and transfer limits.
    pub limits: Limits,
    /// Bounds on each zone's IXFR journal.
    pub journal: JournalLimits,
    /// TLS material and connections for TLS and QUIC sources.
    pub connectors: Arc<Connectors>,
    /// How often each zone file is checked for changes (`file::poll_interval`).
    pub file_poll: Duration,
    /// Transfers in progress across all zones (`transfer.transfers_in_max`).
    pub transfers_in: Arc<Semaphore>,
    /// SOA checks in flight across all zones (`transfer.soa_checks_max`).
    pub soa_checks: Arc<Semaphore>,
}

/// Runs the task of one zone until `cancel` fires.
pub fn run(
    context: &Context,
    config: ZoneConfig,
    handle: Arc<ZoneHandle>,
    meta: ZoneMeta,
    cancel: CancellationToken,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    // Not an `async fn`: the task keeps only the future of its source kind, not the
    // configuration and metadata it was made from (tens of thousands of zones wait at once).
    let downstream = Downstream::new(
        context.store.clone(),
        context.journal,
        config.also_notify.clone(),
    );
    match config.source {
        ZoneSource::Primaries(primaries) => {
            let sources = primaries
                .iter()
                .map(|primary| Source {
                    primary: primary.clone(),
                    connector: context.connectors.connector(primary).map_err(Arc::new),
                })
                .collect();
            let task = PrimaryTask {
                context: context.clone(),
                sources,
                handle,
                meta,
                downstream,
                failure: RoundFailure::default(),
                loaded: false,
            };
            Box::pin(task.run(cancel))
        }
        ZoneSource::File(path) => Box::pin(
            FileZone {
                path,
                handle,
                downstream,
                metrics: context.metrics.clone(),
                limits: ZoneLimits {
                    records_max: context.limits.zone_records_max,
                },
                poll: context.file_poll,
            }
            .run(cancel),
        ),
    }
}

/// One source of a zone and how to reach it.
struct Source {
    primary: Primary,
    /// The connector, or why it could not be built (a TLS file that went missing).
    connector: Result<Connector, Arc<ConnectError>>,
}

impl Source {
    fn label(&self) -> &'static str {
        match &self.connector {
            Ok(connector) => connector.label(),
            Err(_) => "-",
        }
    }
}

struct PrimaryTask {
    context: Context,
    sources: Vec<Source>,
    handle: Arc<ZoneHandle>,
    meta: ZoneMeta,
    downstream: Downstream,
    /// The errors of the round in progress.
    failure: RoundFailure,
    /// True when the last successful step loaded a new version (false: an SOA check found
    /// nothing new).
    loaded: bool,
}

/// A version built from a transfer, with the differences it was made of (IXFR).
struct NewVersion {
    zone: Zone,
    kind: &'static str,
    diffs: Option<Vec<Diff>>,
}

impl PrimaryTask {
    async fn run(mut self, cancel: CancellationToken) {
        let clamps = self.context.clamps;
        let current = self
            .handle
            .data()
            .map(|zone| (zone.serial(), SoaTimers::from_soa(zone.soa(), &clamps)));
        let mut machine = Refresh::new(
            clamps,
            self.sources.len(),
            current,
            self.meta.last_success.map(from_unix),
            self.meta.expire_deadline.map(from_unix),
            // Odd, so never the "no jitter" seed.
            rand::random::<u64>() | 1,
            SystemTime::now(),
        );
        let mut pending: VecDeque<Action> = VecDeque::new();
        loop {
            while let Some(action) = pending.pop_front() {
                // Boxed: a step's state exists only while it runs, so that an idle zone's task
                // stays small (tens of thousands of zones wait at once).
                let step = Box::pin(self.perform(action, &machine));
                let event = tokio::select! {
                    _ = cancel.cancelled() => return,
                    event = step => event,
                };
                if let Some(event) = event {
                    pending.extend(machine.handle(SystemTime::now(), event));
                }
            }
            let now = SystemTime::now();
            self.handle.status().next_refresh = Some(to_unix(machine.next_check()));
            // A check in progress always has an action pending, so the machine has a timer.
            let wake = machine.poll_timeout().unwrap_or(now);
            let sleep = wake.duration_since(now).unwrap_or(Duration::ZERO);
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.handle.refresh_now.notified() => {
                    info!(zone = %self.handle.name, "NOTIFY received: checking the primaries now");
                    let notifier = self.handle.take_notifier();
                    Event::Notify {
                        source: self
                            .sources
                            .iter()
                            .position(|source| Some(source.primary.address.ip()) == notifier),
                    }
                }
                _ = tokio::time::sleep(sleep) => Event::Timer,
            };
            pending.extend(machine.handle(SystemTime::now(), event));
        }
    }

    /// Performs one action; returns the event it led to, if any.
    async fn perform(&mut self, action: Action, machine: &Refresh) -> Option<Event> {
        match action {
            Action::QuerySoa { source } => Some(self.query_soa(source).await),
            Action::Transfer { source, kind } => Some(self.transfer(source, kind, machine).await),
            Action::Succeeded {
                expire_deadline, ..
            } => {
                self.succeeded(expire_deadline).await;
                None
            }
            Action::Failed { failures, retry_at } => {
                self.failed(failures, retry_at).await;
                None
            }
            Action::Expire => {
                error!(zone = %self.handle.name, "zone expired: no successful refresh within EXPIRE; answering SERVFAIL");
                self.handle.set_expired(true);
                self.handle.status().state = ZoneState::Expired;
                None
            }
        }
    }

    fn record(&mut self, source: usize, error: RefreshError) {
        let (address, label) = (
            self.sources[source].primary.address,
            self.sources[source].label(),
        );
        self.failure.attempts.push((address, label, error));
    }

    async fn query_soa(&mut self, index: usize) -> Event {
        {
            let mut status = self.handle.status();
            status.last_attempt = Some(to_unix(SystemTime::now()));
            if self.handle.data().is_some() && !self.handle.is_expired() {
                status.state = ZoneState::Refreshing;
            }
        }
        let source = &self.sources[index];
        let connector = match &source.connector {
            Ok(connector) => connector,
            Err(error) => {
                let error = RefreshError::Connector(error.clone());
                self.record(index, error);
                return Event::SoaFailed;
            }
        };
        let answer = {
            // A bound on SOA checks in flight: after an outage thousands of zones retry at once.
            let _permit = self.context.soa_checks.acquire().await;
            client::query_soa(
                source.primary.address,
                &self.handle.name,
                source.primary.tsig_key.as_deref(),
                self.context.limits.query_timeout,
                connector,
            )
            .await
        };
        match answer {
            Ok(soa) => {
                self.loaded = false;
                Event::SoaAnswer {
                    serial: soa.serial,
                    source_expire: soa.expire,
                }
            }
            Err(error) => {
                self.context.metrics.transfer("soa", false);
                self.record(index, RefreshError::Soa(error));
                Event::SoaFailed
            }
        }
    }

    async fn transfer(&mut self, index: usize, kind: TransferKind, machine: &Refresh) -> Event {
        let source = &self.sources[index];
        let Ok(connector) = &source.connector else {
            // Unreachable: an SOA query through the same connector came first.
            return Event::TransferFailed { fallback: false };
        };
        let current = self.handle.data();
        let (request, our_soa) = match kind {
            TransferKind::Ixfr { from } => (
                Request::Ixfr { current: from },
                current.as_ref().map(|zone| zone.soa_record()),
            ),
            TransferKind::Axfr => (Request::Axfr, None),
        };
        let ixfr = matches!(kind, TransferKind::Ixfr { .. });
        let (label, transfer) = if ixfr {
            ("ixfr", "IXFR")
        } else {
            ("axfr", "AXFR")
        };
        let result = {
            // A bound on transfers in progress across all zones.
            let _permit = self.context.transfers_in.acquire().await;
            client::transfer(
                source.primary.address,
                &self.handle.name,
                request,
                our_soa,
                source.primary.tsig_key.as_deref(),
                self.transfer_limits(),
                connector,
            )
            .await
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(error) => {
                self.context.metrics.transfer(label, false);
                if ixfr && error.wants_axfr() {
                    info!(zone = %self.handle.name, %error, "IXFR failed; falling back to AXFR");
                    return Event::TransferFailed { fallback: true };
                }
                let error = if ixfr {
                    RefreshError::Ixfr(error)
                } else {
                    RefreshError::Axfr(error)
                };
                self.record(index, error);
                return Event::TransferFailed { fallback: false };
            }
        };
        let version = match self.build(current.as_ref(), outcome) {
            Ok(version) => version,
            Err(reason) => {
                self.context.metrics.transfer(label, false);
                let fallback = matches!(reason, Rejection::Diff(_) | Rejection::NoCurrentVersion);
                if fallback && ixfr {
                    info!(zone = %self.handle.name, %reason, "IXFR does not apply; falling back to AXFR");
                    return Event::TransferFailed { fallback: true };
                }
                self.record(index, RefreshError::Rejected { transfer, reason });
                return Event::TransferFailed { fallback: false };
            }
        };
        let timers = SoaTimers::from_soa(version.zone.soa(), &self.context.clamps);
        let now = SystemTime::now();
        let deadline = machine.deadline_after_success(timers, machine.source_expire(), now);
        let serial = version.zone.serial();
        let kind = version.kind;
        match self.commit(version, index, now, deadline).await {
            Ok(()) => {
                self.context.metrics.transfer(kind, true);
                self.loaded = true;
                Event::Loaded { serial, timers }
            }
            Err(error) => {
                self.context.metrics.transfer(kind, false);
                self.record(index, error);
                Event::TransferFailed { fallback: false }
            }
        }
    }

    /// Turns a transfer outcome into the next version. Anything that is not strictly newer
    /// than the current version is refused: a stale or rolled-back primary must never move the
    /// serial backwards (RFC 1982 order).
    fn build(
        &self,
        current: Option<&Arc<Zone>>,
        outcome: Outcome,
    ) -> Result<NewVersion, Rejection> {
        let limits = ZoneLimits {
            records_max: self.context.limits.zone_records_max,
        };
        let version = match outcome {
            Outcome::UpToDate { serial } => return Err(Rejection::UpToDate(serial)),
            Outcome::Full { zone } => NewVersion {
                zone: zone.finish().map_err(Rejection::Invalid)?,
                kind: "axfr",
                diffs: None,
            },
            Outcome::Incremental { diffs } => {
                let current = current.ok_or(Rejection::NoCurrentVersion)?;
                NewVersion {
                    zone: current.apply(&diffs, limits).map_err(Rejection::Diff)?,
                    kind: "ixfr",
                    diffs: Some(diffs),
                }
            }
        };
        if let Some(current) = current
            && !serial::is_newer(version.zone.serial(), current.serial())
        {
            return Err(Rejection::NotNewer {
                received: version.zone.serial(),
                ours: current.serial(),
            });
        }
        Ok(version)
    }

    /// Stores a new version with its metadata, then publishes it and journals it.
    async fn commit(
        &mut self,
        version: NewVersion,
        index: usize,
        now: SystemTime,
        deadline: SystemTime,
    ) -> Result<(), RefreshError> {
        let source = self.sources[index].primary.address.to_string();
        let zone = Arc::new(version.zone);
        let mut meta = self.meta.clone();
        meta.last_attempt = Some(to_unix(now));
        meta.last_success = Some(to_unix(now));
        meta.expire_deadline = Some(to_unix(deadline));
        meta.last_error = None;
        meta.serial = Some(zone.serial());
        meta.source = Some(source.clone());
        meta.records = zone.record_count() as u64;
        let (store, stored_meta, to_store) =
            (self.context.store.clone(), meta.clone(), zone.clone());
        let name = self.handle.name.clone();
        let from_soa = self.handle.data().map(|old| old.soa_record());
        let diffs = version.diffs;
        tokio::task::spawn_blocking(move || match (diffs, from_soa) {
            // A small change to a large zone writes only the change.
            (Some(diffs), Some(from_soa)) => {
                store.save_diffs(&name, &stored_meta, &from_soa, &diffs, &to_store)
            }
            _ => store.save_version(&name, &stored_meta, &to_store),
        })
        .await
        .map_err(|_| RefreshError::Task("store"))??;
        self.meta = meta;
        info!(zone = %self.handle.name, serial = zone.serial(), records = zone.record_count(), transfer = version.kind, from = %source, "new version loaded");
        let old = self.handle.data();
        self.handle.publish(zone.clone());
        self.downstream.new_version(old, &zone).await;
        let mut status = self.handle.status();
        status.last_transfer = version.kind.to_string();
        status.source = Some(source);
        Ok(())
    }

    async fn succeeded(&mut self, deadline: SystemTime) {
        let now = SystemTime::now();
        self.failure.attempts.clear();
        if !self.loaded {
            // Nothing new: only the check's times change.
            self.context.metrics.transfer("soa", true);
            let (attempt, deadline) = (Some(to_unix(now)), Some(to_unix(deadline)));
            self.update_meta(move |meta| {
                meta.last_attempt = attempt;
                meta.last_success = attempt;
                meta.expire_deadline = deadline;
                meta.last_error = None;
            })
            .await;
        }
        self.handle.set_expire_deadline(Some(to_unix(deadline)));
        self.handle.set_expired(false);
        self.handle.status().succeed(to_unix(now));
    }

    async fn failed(&mut self, failures: u32, retry_at: SystemTime) {
        let failure = std::mem::take(&mut self.failure);
        let (kind, message) = (failure.kind(), failure.to_string());
        self.context.metrics.refresh_failure(kind);
        let retry_in = retry_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        warn!(zone = %self.handle.name, kind, failures, retry_in_s = retry_in.as_secs(), error = %message, "refresh failed; the current version stays served");
        let has_data = self.handle.data().is_some();
        {
            let mut status = self.handle.status();
            status.fail(kind, message.clone());
            status.state = match (has_data, self.handle.is_expired()) {
                (false, _) => ZoneState::Failed,
                (true, true) => ZoneState::Expired,
                (true, false) => ZoneState::Retrying,
            };
        }
        let attempt = Some(to_unix(SystemTime::now()));
        self.update_meta(move |meta| {
            meta.last_attempt = attempt;
            meta.last_error = Some(message.clone());
        })
        .await;
    }

    async fn update_meta(&mut self, update: impl Fn(&mut ZoneMeta) + Send + 'static) {
        let store = self.context.store.clone();
        let name = self.handle.name.clone();
        match tokio::task::spawn_blocking(move || store.update_meta(&name, update)).await {
            Ok(Ok(meta)) => self.meta = meta,
            Ok(Err(error)) => {
                error!(zone = %self.handle.name, %error, "cannot store zone metadata")
            }
            Err(error) => error!(zone = %self.handle.name, %error, "metadata task failed"),
        }
    }

    fn transfer_limits(&self) -> TransferLimits {
        TransferLimits {
            records_max: self.context.limits.zone_records_max,
            bytes_max: self.context.limits.zone_bytes_max,
            transfer_timeout: self.context.limits.transfer_timeout,
            query_timeout: self.context.limits.query_timeout,
        }
    }
}
