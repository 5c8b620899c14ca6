//! Wiring: turns a validated configuration into running services and shuts them down in order.
//!
//! Start-up order: open the store, load every stored zone into memory (served at once, without
//! contacting any primary), bind every socket (failing early with the address), then start the
//! query server, the status endpoint and one refresh task per zone. Shutdown: cancel the root
//! token, wait for the services under a timeout, flush the store.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::from_unix;
use crate::config::Config;
use crate::dns::zone::ZoneLimits;
use crate::metrics::Metrics;
use crate::ops::status::{self, StatusState};
use crate::serve::responder::{Listeners, Responder};
use crate::store::zoneset::{ZoneSet, ZoneState};
use crate::store::{Store, ZoneMeta};
use crate::xfr::connect::Transports;
use crate::xfr::task;

/// How long services get to stop after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a node until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
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

    let transports = Arc::new(Transports::new(&config).context("loading the TLS material")?);
    let listeners = Listeners::bind(&config.server, &transports).await?;
    let status_listener = status::bind(config.status.listen).await?;

    let root = CancellationToken::new();
    let mut services = JoinSet::new();
    let responder = Arc::new(Responder {
        zones: zones.clone(),
        metrics: metrics.clone(),
        edns_payload_max: config.server.edns_payload_max,
        store: Some(store.clone()),
        transfers: Arc::new(tokio::sync::Semaphore::new(config.transfer.transfers_max)),
        keys: config.tsig_keys.clone(),
        transfer_timeout: config.limits.transfer_timeout,
    });
    services.spawn(listeners.serve(responder, config.server.clone(), root.child_token()));
    services.spawn(status::serve(
        status_listener,
        StatusState {
            zones: zones.clone(),
            metrics: metrics.clone(),
        },
        root.child_token(),
    ));
    let context = task::Context {
        store: store.clone(),
        metrics: metrics.clone(),
        clamps: config.timers,
        limits: config.limits,
        transports: transports.clone(),
        file_poll: task::file_poll_interval(
            config
                .zones
                .iter()
                .filter(|zone| matches!(zone.source, crate::config::ZoneSource::File(_)))
                .count(),
        ),
        journal: crate::store::JournalLimits {
            diffs_max: config.transfer.journal_diffs_max,
            bytes_max: config.transfer.journal_bytes_max,
        },
    };
    for (zone_config, meta) in config.zones.iter().zip(metas) {
        let handle = zones
            .get(&zone_config.name)
            .cloned()
            .context("zone set lost a configured zone")?;
        services.spawn(task::run(
            context.clone(),
            zone_config.clone(),
            handle,
            meta,
            root.child_token(),
        ));
    }
    info!(zones = config.zones.len(), "zonecast running");

    wait_for_signal().await;
    info!("shutting down");
    root.cancel();
    let stopped = tokio::time::timeout(SHUTDOWN_TIMEOUT, async {
        while services.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        warn!("services did not stop within {SHUTDOWN_TIMEOUT:?}; exiting anyway");
    }
    store.flush().context("flushing the database")?;
    info!("stopped");
    Ok(())
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
        let Some(handle) = zones.get(&item.name).filter(|handle| !handle.from_file) else {
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
            status.expire_deadline = item.meta.expire_deadline;
            status.last_error = item.meta.last_error.clone();
            status.source = item.meta.source.clone();
        }
        let zone = match &item.zone {
            Ok(None) => continue,
            Ok(Some(zone)) => zone.clone(),
            Err(error) => {
                warn!(zone = %item.name, %error, "stored version is unreadable; it will be transferred again");
                handle.status().last_error = Some(format!("stored version unreadable: {error}"));
                continue;
            }
        };
        {
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

async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the node");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
