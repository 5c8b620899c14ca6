//! Wiring: turns a validated configuration into running services, reloads it on SIGHUP (or
//! `POST /reload`), and shuts everything down in order.
//!
//! Start-up order: open the store, load every stored zone into memory (served at once, without
//! contacting any primary), bind every socket (failing early with the address), then start the
//! query listeners, the status endpoint and the zone supervisor.
//!
//! Shutdown order, under one timeout: `/healthz` turns 503 → the route-withdrawal hook (where
//! the anycast controller will attach) → queries are still answered for `server.shutdown_drain`
//! → the listeners stop → the zone tasks and transfers stop → the status endpoint stops → the
//! store is flushed. Every service runs in a `JoinSet` under a child of the root token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::{from_unix, unix_now};
use crate::config::{Config, ConfigError, ZoneSource};
use crate::dns::zone::ZoneLimits;
use crate::metrics::Metrics;
use crate::ops::status::{self, ReloadReport, ReloadRequest, StatusState};
use crate::serve::responder::Responder;
use crate::serve::stream::StreamContext;
use crate::serve::{Listeners, ServerTls};
use crate::store::zoneset::{ZoneSet, ZoneState};
use crate::store::{JournalLimits, Store, ZoneMeta};
use crate::xfr::connect::{ConnectError, Connectors};
use crate::xfr::file;
use crate::xfr::supervisor::{self, Reload, Supervisor};
use crate::xfr::task::Context;

/// How long the whole shutdown may take before the remaining services are abandoned.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a node until SIGTERM or SIGINT; `config_path` is read again on SIGHUP.
pub async fn run(mut config: Config, config_path: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.node.data_dir).with_context(|| {
        format!(
            "cannot create node.data_dir {}",
            config.node.data_dir.display()
        )
    })?;
    let store = Store::open(&config.node.data_dir).with_context(|| {
        format!(
            "cannot open the database in {}",
            config.node.data_dir.display()
        )
    })?;
    let zones = Arc::new(ZoneSet::new(&config.zones));
    let metas = load_stored(&store, &zones, &config)?;
    let metrics = Arc::new(Metrics::new());

    let connectors = Arc::new(Connectors::new(&config).context("loading the TLS material")?);
    let (identity, ca) = connectors.server_material();
    let listeners = Listeners::bind(&config.server, ServerTls { identity, ca }).await?;
    let status_listener = status::bind(config.status.listen).await?;

    let root = CancellationToken::new();
    let responder = Arc::new(Responder {
        zones: zones.clone(),
        metrics: metrics.clone(),
        edns_payload_max: config.server.edns_payload_max,
        transfers: Arc::new(Semaphore::new(config.transfer.transfers_max)),
        keys: ArcSwap::from_pointee(config.tsig_keys.clone()),
    });
    let streams = Arc::new(StreamContext {
        responder: responder.clone(),
        store: Some(store.clone()),
        transfer_timeout: config.limits.transfer_timeout,
        idle_timeout: config.server.tcp_idle_timeout,
    });
    let serve_token = root.child_token();
    let mut serving = JoinSet::new();
    serving.spawn(listeners.serve(streams, config.server.clone(), serve_token.clone()));

    let stopping = Arc::new(AtomicBool::new(false));
    let reload_report = Arc::new(Mutex::new(None));
    let (control, mut reload_requests) = mpsc::channel::<ReloadRequest>(supervisor::COMMANDS_MAX);
    let status_token = root.child_token();
    let mut status_service = JoinSet::new();
    status_service.spawn(status::serve(
        status_listener,
        StatusState {
            zones: zones.clone(),
            metrics: metrics.clone(),
            stopping: stopping.clone(),
            reload: reload_report.clone(),
            control,
        },
        status_token.clone(),
    ));

    let zones_token = root.child_token();
    let context = zone_context(&config, &store, &metrics, connectors);
    let mut supervisor = Supervisor::new(context.clone(), zones.clone(), zones_token.clone());
    // The supervisor keeps each zone's configuration; `app` keeps the rest (one copy each, at
    // 100k zones that is tens of MiB).
    let zone_count = config.zones.len();
    for (zone_config, meta) in std::mem::take(&mut config.zones).into_iter().zip(metas) {
        supervisor.start(zone_config, meta);
    }
    let (reloads, commands) = mpsc::channel::<Reload>(supervisor::COMMANDS_MAX);
    let mut zone_service = JoinSet::new();
    zone_service.spawn(supervisor.run(commands));
    info!(zones = zone_count, "zonecast running");

    let mut node = Node {
        config,
        config_path,
        context,
        responder,
        reloads,
        report: reload_report,
    };
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = hangup.recv() => {
                info!("SIGHUP: reloading the configuration");
                let _ = node.reload().await;
            }
            Some(request) = reload_requests.recv() => {
                info!("reload requested on the status endpoint");
                let _ = request.reply.send(node.reload().await);
            }
        }
    }

    info!("shutting down");
    let deadline = tokio::time::Instant::now() + SHUTDOWN_TIMEOUT;
    let started = Instant::now();
    stopping.store(true, Ordering::Release);
    // The anycast route controller will withdraw the node's routes here, before the drain.
    info!("no anycast route to withdraw (no route controller configured)");
    let drain = node.config.server.shutdown_drain;
    if !drain.is_zero() {
        info!(
            drain_ms = drain.as_millis() as u64,
            "still answering queries while traffic drains"
        );
        tokio::time::sleep(drain).await;
    }
    let stages = [
        ("query listeners", serve_token, &mut serving),
        ("zone tasks and transfers", zones_token, &mut zone_service),
        ("status endpoint", status_token, &mut status_service),
    ];
    let mut abandoned = false;
    for (name, token, tasks) in stages {
        token.cancel();
        let stopped = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        match stopped {
            Ok(()) => info!(
                service = name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "stopped"
            ),
            Err(_) => {
                warn!(
                    service = name,
                    "did not stop within the shutdown timeout; abandoned"
                );
                abandoned = true;
            }
        }
    }
    root.cancel();
    store.flush().context("flushing the database")?;
    if abandoned {
        warn!("stopped, with services abandoned at the shutdown timeout of {SHUTDOWN_TIMEOUT:?}");
    } else {
        info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
    }
    Ok(())
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    /// The file could not be read or is invalid; every problem is listed.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The TLS material it names could not be loaded.
    #[error("loading the TLS material: {0}")]
    Tls(#[from] ConnectError),
    /// A task this needs is gone (the node is stopping).
    #[error("the {0} has stopped")]
    Stopped(&'static str),
}

/// What reloading needs.
struct Node {
    config: Config,
    config_path: PathBuf,
    /// The zone tasks' context now: kept across reloads that do not change it, so that the
    /// caps on transfers and SOA checks stay one set of permits and QUIC connections stay open.
    context: Context,
    responder: Arc<Responder>,
    reloads: mpsc::Sender<Reload>,
    report: Arc<Mutex<Option<ReloadReport>>>,
}

impl Node {
    /// Re-reads the configuration file and applies it; an invalid file changes nothing.
    async fn reload(&mut self) -> Result<String, String> {
        let outcome = self.try_reload().await.map_err(|error| error.to_string());
        match &outcome {
            Ok(message) => info!(%message, "configuration reloaded"),
            Err(message) => error!(
                "configuration reload failed; the node keeps running on the previous one:\n{message}"
            ),
        }
        *self
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ReloadReport {
            at: unix_now(),
            ok: outcome.is_ok(),
            message: match &outcome {
                Ok(message) | Err(message) => message.clone(),
            },
        });
        outcome
    }

    async fn try_reload(&mut self) -> Result<String, ReloadError> {
        let path = self.config_path.clone();
        let mut config = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|_| ReloadError::Stopped("configuration reader"))??;
        let mut notes = restart_only_changes(&self.config, &config);
        let context_changed = self.config.timers != config.timers
            || self.config.limits != config.limits
            || self.config.transfer != config.transfer
            || self.config.tls != config.tls;
        let context = if context_changed {
            let connectors = Connectors::new(&config)?;
            zone_context(
                &config,
                &self.context.store,
                &self.context.metrics,
                Arc::new(connectors),
            )
        } else {
            Context {
                file_poll: file_poll(&config),
                ..self.context.clone()
            }
        };
        let context_now = context.clone();
        let (reply, summary) = oneshot::channel();
        self.reloads
            .send(Reload {
                zones: std::mem::take(&mut config.zones),
                context,
                context_changed,
                reply,
            })
            .await
            .map_err(|_| ReloadError::Stopped("zone supervisor"))?;
        let summary = summary
            .await
            .map_err(|_| ReloadError::Stopped("zone supervisor"))?;
        self.responder
            .keys
            .store(Arc::new(config.tsig_keys.clone()));
        self.config = config;
        self.context = context_now;
        let names = |names: &[hickory_proto::rr::Name]| {
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        notes.insert(
            0,
            format!(
                "{} zone(s) added [{}], {} removed [{}], {} changed [{}]",
                summary.added.len(),
                names(&summary.added),
                summary.removed.len(),
                names(&summary.removed),
                summary.changed.len(),
                names(&summary.changed),
            ),
        );
        Ok(notes.join("; "))
    }
}

/// Settings a reload cannot change in a running node (sockets, the database), each named.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    let mut check = |changed: bool, field: &str| {
        if changed {
            warn!(
                field,
                "changed in the configuration; takes effect at the next restart"
            );
            notes.push(format!("{field} changes at the next restart"));
        }
    };
    check(old.node.data_dir != new.node.data_dir, "node.data_dir");
    check(old.server.listen != new.server.listen, "server.listen");
    check(
        old.server.notify_listen != new.server.notify_listen,
        "server.notify_listen",
    );
    check(
        old.server.xot_listen != new.server.xot_listen,
        "server.xot_listen",
    );
    check(
        old.server.xoq_listen != new.server.xoq_listen,
        "server.xoq_listen",
    );
    check(
        old.server.edns_payload_max != new.server.edns_payload_max,
        "server.edns_payload_max",
    );
    check(
        old.server.tcp_connections_max != new.server.tcp_connections_max,
        "server.tcp_connections_max",
    );
    check(
        old.server.tcp_idle_timeout != new.server.tcp_idle_timeout,
        "server.tcp_idle_timeout",
    );
    check(
        old.server.xot_require_client_cert != new.server.xot_require_client_cert,
        "server.xot_require_client_cert",
    );
    check(old.status.listen != new.status.listen, "status.listen");
    notes
}

/// The shared context of the zone tasks under `config`.
fn zone_context(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    connectors: Arc<Connectors>,
) -> Context {
    Context {
        store: store.clone(),
        metrics: metrics.clone(),
        clamps: config.timers,
        limits: config.limits,
        connectors,
        file_poll: file_poll(config),
        journal: JournalLimits {
            diffs_max: config.transfer.journal_diffs_max,
            bytes_max: config.transfer.journal_bytes_max,
        },
        transfers_in: Arc::new(Semaphore::new(config.transfer.transfers_in_max)),
        soa_checks: Arc::new(Semaphore::new(config.transfer.soa_checks_max)),
    }
}

/// How often each zone file is checked, for the file zones of `config`.
fn file_poll(config: &Config) -> Duration {
    file::poll_interval(
        config
            .zones
            .iter()
            .filter(|zone| matches!(zone.source, ZoneSource::File(_)))
            .count(),
    )
}

/// Loads every configured zone's stored version into memory; returns each zone's metadata in
/// configuration order. Stored zones no longer configured are removed.
fn load_stored(store: &Store, zones: &ZoneSet, config: &Config) -> anyhow::Result<Vec<ZoneMeta>> {
    let started = Instant::now();
    let swept = store
        .sweep_orphans()
        .context("sweeping unreferenced data")?;
    if swept > 0 {
        info!(
            chunks = swept,
            "deleted stored data no zone points at (an interrupted write)"
        );
    }
    let limits = ZoneLimits {
        records_max: config.limits.zone_records_max,
    };
    let stored = store.load_all(limits).context("reading stored zones")?;
    let now = SystemTime::now();
    let mut records_total = 0usize;
    let mut loaded = 0usize;
    for item in &stored {
        let Some(handle) = zones.get(&item.name).filter(|handle| !handle.from_file()) else {
            // A file zone's file is its durable copy; a stored copy (older releases kept one)
            // could be older than the file and must not be served.
            info!(zone = %item.name, "removing a stored zone that is no longer configured from primaries");
            store
                .remove_zone(&item.name)
                .context("removing a stored zone")?;
            continue;
        };
        {
            let mut status = handle.status();
            status.last_attempt = item.meta.last_attempt;
            status.last_success = item.meta.last_success;
            status.last_error = item.meta.last_error.clone();
            status.source = item.meta.source.clone();
        }
        handle.set_expire_deadline(item.meta.expire_deadline);
        let zone = match &item.zone {
            Ok(None) => continue,
            Ok(Some(zone)) => zone.clone(),
            Err(error) => {
                warn!(zone = %item.name, %error, "stored version is unreadable; it will be transferred again");
                handle
                    .status()
                    .fail("store", format!("stored version unreadable: {error}"));
                continue;
            }
        };
        records_total += zone.record_count();
        loaded += 1;
        handle.publish(Arc::new(zone));
        let expired = item
            .meta
            .expire_deadline
            .is_some_and(|deadline| from_unix(deadline) <= now);
        handle.set_expired(expired);
        handle.status().state = if expired {
            ZoneState::Expired
        } else {
            ZoneState::Fresh
        };
    }
    info!(
        zones = loaded,
        records = records_total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stored zones loaded and served"
    );
    let metas = config
        .zones
        .iter()
        .map(|zone| {
            stored
                .iter()
                .find(|item| item.name.eq_ignore_root(&zone.name))
                .map(|item| item.meta.clone())
                .unwrap_or_default()
        })
        .collect();
    Ok(metas)
}
