//! The HTTP status endpoint: `/status` (JSON), `/metrics` (Prometheus text), `/healthz` and
//! `POST /reload`.
//!
//! It reads zone handles and metrics; its one mutating call, `/reload`, only asks `app` to
//! re-read the configuration (as SIGHUP does). Bound to loopback by default, since it shows
//! operational detail. `/healthz` is the signal a load balancer or the anycast controller
//! reads: 200 only when every zone is loaded and none is expired, 503 with the reasons.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::unix_now;
use crate::metrics::{Metrics, ZoneLabels};
use crate::store::zoneset::{ZoneSet, ZoneState};

/// Why the status endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The address could not be bound.
    #[error("cannot listen on {address} (status HTTP): {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Zones named at most in a `/healthz` answer: at 100k zones the counts say the rest.
const HEALTH_ZONES_LISTED_MAX: usize = 20;

/// A request to re-read the configuration; the answer says what changed or why nothing did.
pub struct ReloadRequest {
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// The outcome of the last reload, shown in `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// When it was tried (UNIX seconds).
    pub at: u64,
    /// True when the new configuration was taken.
    pub ok: bool,
    /// What changed, or why nothing did (every problem found).
    pub message: String,
}

/// What the handlers read.
#[derive(Clone)]
pub struct StatusState {
    /// The zones.
    pub zones: Arc<ZoneSet>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set when the node starts shutting down: `/healthz` answers 503 from then on.
    pub stopping: Arc<AtomicBool>,
    /// The last reload's outcome.
    pub reload: Arc<Mutex<Option<ReloadReport>>>,
    /// Where `POST /reload` sends its request.
    pub control: mpsc::Sender<ReloadRequest>,
}

/// The `/status` document.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// Seconds since the UNIX epoch when the report was made.
    pub now: u64,
    /// One entry per zone.
    pub zones: Vec<ZoneReport>,
    /// The last configuration reload, if there was one.
    #[serde(default)]
    pub reload: Option<ReloadReport>,
}

/// One zone in `/status`.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ZoneReport {
    /// Apex.
    pub name: String,
    /// Refresh state.
    pub state: String,
    /// Serial held.
    pub serial: Option<u32>,
    /// Where the data came from.
    pub source: Option<String>,
    /// Number of records.
    pub records: u64,
    /// Last attempt (UNIX seconds).
    pub last_attempt: Option<u64>,
    /// Last success (UNIX seconds).
    pub last_success: Option<u64>,
    /// Next refresh (UNIX seconds).
    pub next_refresh: Option<u64>,
    /// Expire deadline (UNIX seconds).
    pub expire_deadline: Option<u64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Its kind (`timeout`, `tls`, `tsig`, `invalid_zone`, ...).
    #[serde(default)]
    pub last_error_kind: Option<String>,
    /// Kind of the last transfer that changed data.
    pub last_transfer: String,
}

/// Binds the status address.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, StatusError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StatusError::Bind { address, source })
}

/// Serves the endpoint until `cancel` fires.
pub async fn serve(listener: TcpListener, state: StatusState, cancel: CancellationToken) {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "status endpoint listening (/status, /metrics, /healthz)");
    }
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/reload", post(reload))
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "status endpoint failed");
    }
}

/// Builds the status report.
pub fn report(zones: &ZoneSet, reload: Option<ReloadReport>) -> StatusReport {
    let zones = zones
        .snapshot()
        .iter()
        .map(|handle| {
            let data = handle.data();
            let status = handle.status().clone();
            ZoneReport {
                name: handle.name.to_string(),
                state: serde_json::to_value(status.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                serial: data.as_ref().map(|z| z.serial()),
                source: status.source,
                records: data.as_ref().map(|z| z.record_count() as u64).unwrap_or(0),
                last_attempt: status.last_attempt,
                last_success: status.last_success,
                next_refresh: status.next_refresh,
                expire_deadline: handle.expire_deadline(),
                last_error: status.last_error,
                last_error_kind: status.last_error_kind.map(str::to_string),
                last_transfer: status.last_transfer,
            }
        })
        .collect();
    StatusReport {
        now: unix_now(),
        zones,
        reload,
    }
}

async fn status(State(state): State<StatusState>) -> Json<StatusReport> {
    let reload = state
        .reload
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    Json(report(&state.zones, reload))
}

async fn metrics(State(state): State<StatusState>) -> Response {
    let now = unix_now();
    for handle in state.zones.snapshot().iter() {
        let labels = ZoneLabels {
            zone: handle.name.to_string(),
        };
        if let Some(zone) = handle.data() {
            state
                .metrics
                .zone_serial
                .get_or_create(&labels)
                .set(i64::from(zone.serial()));
        }
        let status = handle.status().clone();
        if let Some(success) = status.last_success {
            state
                .metrics
                .zone_seconds_since_refresh
                .get_or_create(&labels)
                .set(now.saturating_sub(success) as i64);
        }
        state
            .metrics
            .zone_expired
            .get_or_create(&labels)
            .set(i64::from(status.state == ZoneState::Expired));
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The `/healthz` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, `unhealthy` or `stopping`.
    pub status: String,
    /// Zones served.
    pub zones: usize,
    /// Zones with no data yet.
    pub loading: usize,
    /// Zones past EXPIRE (answered SERVFAIL).
    pub expired: usize,
    /// Some of the zones at fault, with why.
    pub reasons: Vec<String>,
}

/// The health of the zone set: every zone loaded and none expired.
pub fn health(zones: &ZoneSet, stopping: bool) -> Health {
    let index = zones.snapshot();
    let mut health = Health {
        status: "ok".into(),
        zones: index.len(),
        loading: 0,
        expired: 0,
        reasons: Vec::new(),
    };
    for handle in index.iter() {
        let reason = if handle.data().is_none() {
            health.loading += 1;
            "not loaded yet"
        } else if handle.is_expired() {
            health.expired += 1;
            "expired"
        } else {
            continue;
        };
        if health.reasons.len() < HEALTH_ZONES_LISTED_MAX {
            health.reasons.push(format!("{}: {reason}", handle.name));
        }
    }
    if health.loading + health.expired > 0 {
        health.status = "unhealthy".into();
    }
    if stopping {
        health.status = "stopping".into();
        health.reasons.insert(0, "the node is shutting down".into());
    }
    health
}

async fn healthz(State(state): State<StatusState>) -> Response {
    let health = health(&state.zones, state.stopping.load(Ordering::Acquire));
    let code = if health.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health)).into_response()
}

async fn reload(State(state): State<StatusState>) -> Response {
    let (reply, answer) = oneshot::channel();
    if state.control.try_send(ReloadRequest { reply }).is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "a reload is already waiting\n",
        )
            .into_response();
    }
    match answer.await {
        Ok(Ok(message)) => (StatusCode::OK, format!("{message}\n")).into_response(),
        Ok(Err(message)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{message}\n")).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is shutting down\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ZoneConfig, ZoneSource};
    use crate::dns::zone::Zone;
    use crate::dns::zone::tests::{LIMITS, base_records, name};

    #[test]
    fn healthy_only_when_every_zone_is_loaded_and_fresh() {
        let config = ZoneConfig {
            name: name("example.test."),
            source: ZoneSource::File("/nonexistent.zone".into()),
            notify_allow: Vec::new(),
            allow_transfer: Default::default(),
            also_notify: Vec::new(),
        };
        let zones = ZoneSet::new(&[config]);
        let report = health(&zones, false);
        assert_eq!((report.status.as_str(), report.loading), ("unhealthy", 1));
        assert_eq!(report.reasons, ["example.test.: not loaded yet"]);
        let handle = zones.get(&name("example.test.")).expect("zone");
        let zone =
            Zone::from_records(&name("example.test."), base_records(), LIMITS).expect("valid");
        handle.publish(Arc::new(zone));
        assert_eq!(health_status(&zones, false), "ok");
        handle.set_expired(true);
        let report = health(&zones, false);
        assert_eq!((report.status.as_str(), report.expired), ("unhealthy", 1));
        handle.set_expired(false);
        assert_eq!(health_status(&zones, true), "stopping");
        assert_eq!(health_status(&ZoneSet::new(&[]), false), "ok");
    }

    fn health_status(zones: &ZoneSet, stopping: bool) -> String {
        health(zones, stopping).status
    }
}
