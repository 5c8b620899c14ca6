//! The refresh service: one task per zone that keeps its data current and durable.
//!
//! For zones with primaries it follows the SOA timers (`refresh`), wakes at once on NOTIFY,
//! checks the serial, transfers (IXFR, falling back to AXFR), validates, stores the new version
//! in sled and only then publishes it to the query path. For file zones it reloads the master
//! file when it changes. Failures never touch the served data: they show up in the zone's
//! status, the logs and the metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::clock::{from_unix, to_unix};
use crate::config::{Limits, Primary, TimerClamps, ZoneConfig, ZoneSource};
use crate::dns::serial;
use crate::dns::zone::{Diff, Zone, ZoneLimits};
use crate::dns::zonefile;
use crate::metrics::Metrics;
use crate::store::zoneset::{ZoneHandle, ZoneState};
use crate::store::{JournalLimits, Store, ZoneMeta};
use crate::xfr::client::{self, TransferError, TransferLimits};
use crate::xfr::connect::{Connector, Transports};
use crate::xfr::interpreter::{Outcome, Request};
use crate::xfr::notify;
use crate::xfr::refresh::{LastAttempt, SoaTimers, expire_deadline, next_check};

/// How often a file zone's file is checked for changes, at most.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// File checks (`stat` calls) per second across all file zones, at most: with more file zones
/// than this each one is checked less often than every second.
const FILE_CHECKS_PER_SECOND: u32 = 10_000;

/// The interval between checks of each file, for `file_zones` file zones.
pub fn file_poll_interval(file_zones: usize) -> Duration {
    let spread = (file_zones as u32).div_ceil(FILE_CHECKS_PER_SECOND).max(1);
    FILE_POLL_INTERVAL * spread
}

/// What the refresh tasks share.
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
    pub transports: Arc<Transports>,
    /// How often each zone file is checked for changes (`file_poll_interval`).
    pub file_poll: Duration,
}

/// Records a journaled difference may always hold, however small the zone.
const JOURNAL_DIFF_MIN: usize = 10_000;

/// What follows every new version once it is stored and served: its difference from the
/// previous version goes to the journal (for IXFR out), and downstreams get NOTIFY.
struct Downstream {
    also_notify: Vec<SocketAddr>,
    /// Cancels the previous version's NOTIFY retransmissions.
    round: CancellationToken,
}

impl Downstream {
    async fn new_version(&mut self, context: &Context, old: Option<Arc<Zone>>, new: &Arc<Zone>) {
        if let Some(old) = old {
            let store = context.store.clone();
            let limits = context.journal;
            let new_zone = new.clone();
            let result = tokio::task::spawn_blocking(move || {
                let name = new_zone.origin().clone();
                // A difference over a quarter of the zone is not journaled (as a delta it would
                // outweigh the zone): clients older than this version get AXFR-style answers,
                // which the journal's chain check gives them.
                let max = (new_zone.record_count() / 4).max(JOURNAL_DIFF_MIN);
                if !serial::is_newer(new_zone.serial(), old.serial()) {
                    // History no longer forms a chain: IXFR clients get AXFR-style answers.
                    store.clear_journal(&name)
                } else if let Some(diff) = old.diff_within(&new_zone, max) {
                    store.append_diff(&name, &old.soa_record(), &diff, limits)
                } else {
                    debug!(zone = %name, "difference too large to journal");
                    Ok(())
                }
            })
            .await;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    warn!(zone = %new.origin(), %error, "cannot journal the difference; IXFR clients get AXFR-style answers")
                }
                Err(error) => warn!(zone = %new.origin(), %error, "journal task failed"),
            }
        }
        if !self.also_notify.is_empty() {
            self.round.cancel();
            self.round = CancellationToken::new();
            notify::announce(
                new.origin(),
                new.soa_record(),
                &self.also_notify,
                &self.round,
            );
        }
    }
}

/// Runs the refresh task of one zone until `cancel` fires.
pub fn run(
    context: Context,
    config: ZoneConfig,
    handle: Arc<ZoneHandle>,
    meta: ZoneMeta,
    cancel: CancellationToken,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    // Not an `async fn`: the task keeps only the future of its source kind, not the
    // configuration and metadata it was made from (tens of thousands of zones wait at once).
    let downstream = Downstream {
        also_notify: config.also_notify.clone(),
        round: CancellationToken::new(),
    };
    match config.source {
        ZoneSource::Primaries(primaries) => {
            let sources = primaries
                .iter()
                .map(|primary| Source {
                    primary: primary.clone(),
                    connector: context
                        .transports
                        .connector(primary)
                        .map_err(|error| error.to_string()),
                })
                .collect();
            let task = PrimaryTask {
                context,
                sources,
                handle,
                meta,
                downstream,
            };
            Box::pin(task.run(cancel))
        }
        ZoneSource::File(path) => Box::pin(run_file(context, path, handle, downstream, cancel)),
    }
}

/// One source of a zone and how to reach it.
#[derive(Clone)]
struct Source {
    primary: Primary,
    /// The connector, or why it could not be built (a TLS file that went missing).
    connector: Result<Connector, String>,
}

struct PrimaryTask {
    context: Context,
    sources: Vec<Source>,
    handle: Arc<ZoneHandle>,
    meta: ZoneMeta,
    downstream: Downstream,
}

impl PrimaryTask {
    async fn run(mut self, cancel: CancellationToken) {
        let mut last = LastAttempt::None;
        let mut failures: u32 = 0;
        loop {
            let now = SystemTime::now();
            let zone = self.handle.data();
            let timers = zone
                .as_ref()
                .map(|z| SoaTimers::from_soa(z.soa(), &self.context.clamps));
            let next = next_check(
                timers,
                self.meta.last_success.map(from_unix),
                last,
                &self.context.clamps,
                rand::random::<f64>(),
                now,
            );
            let deadline = self.meta.expire_deadline.map(from_unix);
            self.check_expiry(now, deadline);
            self.handle.status().next_refresh = Some(to_unix(next));
            // Wake for the next check, a NOTIFY, or the expire deadline, whichever is first.
            let wake = match deadline {
                Some(deadline) if deadline > now && deadline < next => deadline,
                _ => next,
            };
            let sleep = wake.duration_since(now).unwrap_or(Duration::ZERO);
            let check = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.handle.refresh_now.notified() => {
                    info!(zone = %self.handle.name, "NOTIFY received: checking the primaries now");
                    true
                }
                _ = tokio::time::sleep(sleep) => wake >= next,
            };
            if !check {
                continue;
            }
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return,
                // Boxed: the transfer's state exists only while one runs, so that an idle
                // zone's task stays small (tens of thousands of zones wait at once).
                outcome = Box::pin(self.refresh()) => outcome,
            };
            let now = SystemTime::now();
            match outcome {
                Ok(()) => {
                    failures = 0;
                    last = LastAttempt::Succeeded(now);
                }
                Err(message) => {
                    failures = failures.saturating_add(1);
                    last = LastAttempt::Failed { at: now, failures };
                    warn!(zone = %self.handle.name, error = %message, "refresh failed; the current version stays served");
                }
            }
        }
    }

    fn check_expiry(&self, now: SystemTime, deadline: Option<SystemTime>) {
        let expired =
            deadline.is_some_and(|deadline| now >= deadline) && self.handle.data().is_some();
        if expired && !self.handle.is_expired() {
            error!(zone = %self.handle.name, "zone expired: no successful refresh within EXPIRE; answering SERVFAIL");
            self.handle.status().state = ZoneState::Expired;
        }
        self.handle.set_expired(expired);
    }

    /// One refresh: every primary in order until one succeeds.
    async fn refresh(&mut self) -> Result<(), String> {
        let now = SystemTime::now();
        {
            let mut status = self.handle.status();
            status.last_attempt = Some(to_unix(now));
            if self.handle.data().is_some() && !self.handle.is_expired() {
                status.state = ZoneState::Refreshing;
            }
        }
        let mut errors = Vec::new();
        let mut sources = self.sources.clone();
        if let Some(notifier) = self.handle.take_notifier() {
            // Stable sort: the notifying source first, the others in configured order.
            sources.sort_by_key(|source| source.primary.address.ip() != notifier);
        }
        for source in sources {
            let label = match &source.connector {
                Ok(connector) => connector.label(),
                Err(_) => "-",
            };
            match self.refresh_from(&source).await {
                Ok(()) => return Ok(()),
                Err(error) => errors.push(format!("{} ({label}): {error}", source.primary.address)),
            }
        }
        let message = errors.join("; ");
        let has_data = self.handle.data().is_some();
        {
            let mut status = self.handle.status();
            status.last_error = Some(message.clone());
            status.state = match (has_data, self.handle.is_expired()) {
                (false, _) => ZoneState::Failed,
                (true, true) => ZoneState::Expired,
                (true, false) => ZoneState::Retrying,
            };
        }
        let attempt = to_unix(now);
        let stored_error = message.clone();
        self.update_meta(move |meta| {
            meta.last_attempt = Some(attempt);
            meta.last_error = Some(stored_error.clone());
        })
        .await;
        Err(message)
    }

    async fn refresh_from(&mut self, source: &Source) -> Result<(), String> {
        let primary = &source.primary;
        let connector = source.connector.as_ref().map_err(Clone::clone)?;
        let zone_name = self.handle.name.clone();
        let key = primary.tsig_key.as_deref();
        let limits = self.transfer_limits();
        let current = self.handle.data();
        let soa = match client::query_soa(
            primary.address,
            &zone_name,
            key,
            limits.query_timeout,
            connector,
        )
        .await
        {
            Ok(soa) => soa,
            Err(error) => {
                self.context.metrics.transfer("soa", false);
                return Err(format!("SOA query: {error}"));
            }
        };
        let serial = soa.serial;
        let mut new_zone: Option<NewVersion> = None;
        match &current {
            Some(zone) if !serial::is_newer(serial, zone.serial()) => {
                if serial != zone.serial() {
                    warn!(zone = %zone_name, primary = %primary.address, primary_serial = serial, our_serial = zone.serial(), "primary's serial is not newer than ours; keeping ours");
                }
                self.context.metrics.transfer("soa", true);
            }
            Some(zone) => {
                let request = Request::Ixfr {
                    current: zone.serial(),
                };
                let result = client::transfer(
                    primary.address,
                    &zone_name,
                    request,
                    Some(zone.soa_record()),
                    key,
                    limits,
                    connector,
                )
                .await;
                let fallback = match result {
                    Ok(outcome) => match self.build(Some(zone), outcome) {
                        Ok(built) => {
                            self.context.metrics.transfer(built.kind, true);
                            new_zone = Some(built);
                            false
                        }
                        Err(BuildError::Diff(error)) => {
                            info!(zone = %zone_name, %error, "IXFR does not apply; falling back to AXFR");
                            self.context.metrics.transfer("ixfr", false);
                            true
                        }
                        Err(BuildError::Invalid(error)) => {
                            self.context.metrics.transfer("ixfr", false);
                            return Err(format!("IXFR: {error}"));
                        }
                    },
                    Err(error) if error.wants_axfr() => {
                        info!(zone = %zone_name, %error, "IXFR failed; falling back to AXFR");
                        self.context.metrics.transfer("ixfr", false);
                        true
                    }
                    Err(error) => {
                        self.context.metrics.transfer("ixfr", false);
                        return Err(format!("IXFR: {error}"));
                    }
                };
                if fallback {
                    new_zone = Some(self.axfr(primary, connector, limits).await?);
                }
            }
            None => new_zone = Some(self.axfr(primary, connector, limits).await?),
        }
        self.commit(new_zone, primary.address.to_string(), soa.expire)
            .await
    }

    async fn axfr(
        &self,
        primary: &Primary,
        connector: &Connector,
        limits: TransferLimits,
    ) -> Result<NewVersion, String> {
        let result = client::transfer(
            primary.address,
            &self.handle.name,
            Request::Axfr,
            None,
            primary.tsig_key.as_deref(),
            limits,
            connector,
        )
        .await;
        let current = self.handle.data();
        let built = result
            .map_err(|error: TransferError| error.to_string())
            .and_then(|outcome| match self.build(current.as_ref(), outcome) {
                Ok(built) => Ok(built),
                Err(BuildError::Diff(error) | BuildError::Invalid(error)) => Err(error),
            });
        self.context.metrics.transfer("axfr", built.is_ok());
        built.map_err(|error| format!("AXFR: {error}"))
    }

    /// Turns a transfer outcome into the next version. Anything that is not strictly newer
    /// than the current version is refused: a stale or rolled-back primary must never move the
    /// serial backwards (RFC 1982 order).
    fn build(
        &self,
        current: Option<&Arc<Zone>>,
        outcome: Outcome,
    ) -> Result<NewVersion, BuildError> {
        let limits = ZoneLimits {
            records_max: self.context.limits.zone_records_max,
        };
        let (zone, kind, diffs) = match outcome {
            Outcome::UpToDate { serial } => {
                return Err(BuildError::Invalid(format!(
                    "the primary answered \"up to date\" at serial {serial} after announcing a newer one"
                )));
            }
            Outcome::Full { zone } => zone
                .finish()
                .map(|zone| (zone, "axfr", None))
                .map_err(|error| BuildError::Invalid(error.to_string()))?,
            Outcome::Incremental { diffs } => {
                let Some(current) = current else {
                    return Err(BuildError::Diff(
                        "differences without a current version".into(),
                    ));
                };
                current
                    .apply(&diffs, limits)
                    .map(|zone| (zone, "ixfr", Some(diffs)))
                    .map_err(|error| BuildError::Diff(error.to_string()))?
            }
        };
        if let Some(current) = current
            && !serial::is_newer(zone.serial(), current.serial())
        {
            return Err(BuildError::Invalid(format!(
                "the transfer brought serial {}, which is not newer than ours ({})",
                zone.serial(),
                current.serial()
            )));
        }
        Ok(NewVersion { zone, kind, diffs })
    }

    /// Records a successful check; stores and publishes a new version if there is one.
    async fn commit(
        &mut self,
        new_zone: Option<NewVersion>,
        source: String,
        source_expire: Option<u32>,
    ) -> Result<(), String> {
        let now = SystemTime::now();
        let zone_name = self.handle.name.clone();
        let mut timers = match (&new_zone, self.handle.data()) {
            (Some(new), _) => SoaTimers::from_soa(new.zone.soa(), &self.context.clamps),
            (None, Some(zone)) => SoaTimers::from_soa(zone.soa(), &self.context.clamps),
            (None, None) => return Err("no data after a successful check".into()),
        };
        // A source that is itself a secondary said how long its copy stays valid (RFC 7314):
        // ours must not outlive it.
        if let Some(seconds) = source_expire {
            timers.expire = timers.expire.min(Duration::from_secs(u64::from(seconds)));
        }
        let deadline = expire_deadline(timers, now);
        let mut meta = self.meta.clone();
        meta.last_attempt = Some(to_unix(now));
        meta.last_success = Some(to_unix(now));
        meta.expire_deadline = Some(to_unix(deadline));
        meta.last_error = None;
        let mut kind = None;
        if let Some(NewVersion {
            zone,
            kind: transfer_kind,
            diffs,
        }) = new_zone
        {
            let zone = Arc::new(zone);
            meta.serial = Some(zone.serial());
            meta.source = Some(source.clone());
            let store = self.context.store.clone();
            let stored_meta = meta.clone();
            let to_store = zone.clone();
            let name = zone_name.clone();
            let from_soa = self.handle.data().map(|old| old.soa_record());
            tokio::task::spawn_blocking(move || match (diffs, from_soa) {
                // A small change to a large zone writes only the change.
                (Some(diffs), Some(from_soa)) => {
                    store.save_diffs(&name, &stored_meta, &from_soa, &diffs, &to_store)
                }
                _ => store.save_version(&name, &stored_meta, &to_store),
            })
            .await
            .map_err(|error| format!("store task failed: {error}"))?
            .map_err(|error| format!("storing the new version: {error}"))?;
            meta.records = zone.record_count() as u64;
            info!(zone = %zone_name, serial = zone.serial(), records = zone.record_count(), transfer = transfer_kind, from = %source, "new version loaded");
            let old = self.handle.data();
            self.handle.publish(zone.clone());
            self.downstream.new_version(&self.context, old, &zone).await;
            kind = Some(transfer_kind);
        } else {
            let stored = meta.clone();
            self.update_meta(move |m| {
                m.last_attempt = stored.last_attempt;
                m.last_success = stored.last_success;
                m.expire_deadline = stored.expire_deadline;
                m.last_error = None;
            })
            .await;
        }
        self.meta = meta;
        self.handle.set_expired(false);
        let mut status = self.handle.status();
        status.state = ZoneState::Fresh;
        status.last_success = Some(to_unix(now));
        status.expire_deadline = Some(to_unix(deadline));
        status.last_error = None;
        if let Some(kind) = kind {
            status.last_transfer = kind.to_string();
            status.source = Some(source);
        }
        Ok(())
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

/// A version built from a transfer, with the differences it was made of (IXFR).
struct NewVersion {
    zone: Zone,
    kind: &'static str,
    diffs: Option<Vec<Diff>>,
}

enum BuildError {
    /// Differences do not apply: fall back to AXFR.
    Diff(String),
    /// The data is invalid.
    Invalid(String),
}

/// Keeps a file zone loaded: reads the file at start and whenever its size or modification
/// time changes.
async fn run_file(
    context: Context,
    path: PathBuf,
    handle: Arc<ZoneHandle>,
    mut downstream: Downstream,
    cancel: CancellationToken,
) {
    let mut seen: Option<(SystemTime, u64)> = None;
    loop {
        let stamp = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len()));
        if stamp.is_some() && stamp != seen {
            seen = stamp;
            // Boxed, like a transfer: only the idle loop stays in every zone's task.
            Box::pin(load_file(&context, &path, &handle, &mut downstream)).await;
        } else if stamp.is_none() && seen.is_some() {
            seen = None;
            let message = format!("cannot read {}", path.display());
            warn!(zone = %handle.name, error = %message, "zone file disappeared; the current version stays served");
            handle.status().last_error = Some(message);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(context.file_poll) => {}
        }
    }
}

async fn load_file(
    context: &Context,
    path: &Path,
    handle: &Arc<ZoneHandle>,
    downstream: &mut Downstream,
) {
    let now = SystemTime::now();
    handle.status().last_attempt = Some(to_unix(now));
    let name = handle.name.clone();
    let file = path.to_path_buf();
    let limits = ZoneLimits {
        records_max: context.limits.zone_records_max,
    };
    let parsed = tokio::task::spawn_blocking(move || parse_zone_file(&file, &name, limits))
        .await
        .unwrap_or_else(|error| Err(format!("parser task failed: {error}")));
    let result = match parsed {
        Ok(zone) => {
            let zone = Arc::new(zone);
            if let Some(old) = handle.data()
                && old.serial() == zone.serial()
                && old.records().eq(zone.records())
            {
                // Nothing changed since the last load.
                let mut status = handle.status();
                status.state = ZoneState::Fresh;
                status.last_success = Some(to_unix(now));
                status.last_error = None;
                return;
            }
            if let Some(old) = handle.data()
                && !serial::is_newer(zone.serial(), old.serial())
            {
                warn!(zone = %handle.name, old_serial = old.serial(), new_serial = zone.serial(), "zone file changed without a newer serial; loading it anyway");
            }
            // The file is the zone's durable copy: it is read again at every start, so it is
            // not copied into the store (thousands of file zones load without a write each).
            Ok(zone)
        }
        Err(error) => Err(error),
    };
    context.metrics.transfer("file", result.is_ok());
    match result {
        Ok(zone) => {
            info!(zone = %handle.name, serial = zone.serial(), records = zone.record_count(), file = %path.display(), "zone file loaded");
            let old = handle.data();
            handle.publish(zone.clone());
            downstream.new_version(context, old, &zone).await;
            let mut status = handle.status();
            status.state = ZoneState::Fresh;
            status.source = Some(format!("file:{}", path.display()));
            status.last_success = Some(to_unix(now));
            status.last_error = None;
            status.last_transfer = "file".into();
        }
        Err(error) => {
            warn!(zone = %handle.name, %error, "zone file rejected; the current version stays served");
            let has_data = handle.data().is_some();
            let mut status = handle.status();
            status.last_error = Some(error);
            if !has_data {
                status.state = ZoneState::Failed;
            }
        }
    }
}

/// Reads and validates an RFC 1035 master file.
pub fn parse_zone_file(path: &Path, origin: &Name, limits: ZoneLimits) -> Result<Zone, String> {
    let records = zonefile::read(path, origin).map_err(|error| error.to_string())?;
    Zone::from_records(origin, records, limits)
        .map_err(|error| format!("{}: {error}", path.display()))
}
