//! The HTTP status endpoint: `/status` (JSON), `/metrics` (Prometheus text) and `/healthz`.
//!
//! Read-only: it reads zone handles and metrics and changes nothing. Bound to loopback by
//! default, since it shows operational detail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
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

/// What the handlers read.
#[derive(Clone)]
pub struct StatusState {
    /// The zones.
    pub zones: Arc<ZoneSet>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// The `/status` document.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// Seconds since the UNIX epoch when the report was made.
    pub now: u64,
    /// One entry per zone.
    pub zones: Vec<ZoneReport>,
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
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "status endpoint failed");
    }
}

/// Builds the status report.
pub fn report(zones: &ZoneSet) -> StatusReport {
    let zones = zones
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
                expire_deadline: status.expire_deadline,
                last_error: status.last_error,
                last_transfer: status.last_transfer,
            }
        })
        .collect();
    StatusReport {
        now: unix_now(),
        zones,
    }
}

async fn status(State(state): State<StatusState>) -> Json<StatusReport> {
    Json(report(&state.zones))
}

async fn metrics(State(state): State<StatusState>) -> Response {
    let now = unix_now();
    for handle in state.zones.iter() {
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

async fn healthz() -> &'static str {
    "ok\n"
}
