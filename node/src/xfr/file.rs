//! The task of a zone read from a local master file: reads it at start and whenever its size
//! or modification time changes. A rejected file changes nothing that is served; the reason
//! lands in the zone's status (`last_error`, `last_error_kind`), the logs and the metrics.
//!
//! The file is the zone's durable copy: it is read again at every start, so it is not copied
//! into the store (thousands of file zones load without a write each).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::to_unix;
use crate::dns::serial;
use crate::dns::zone::{Zone, ZoneLimits};
use crate::dns::zonefile;
use crate::metrics::Metrics;
use crate::store::zoneset::{ZoneHandle, ZoneState};
use crate::xfr::downstream::Downstream;
use crate::xfr::error::FileError;

/// How often a file zone's file is checked for changes, at most.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// File checks (`stat` calls) per second across all file zones, at most: with more file zones
/// than this each one is checked less often than every second.
const FILE_CHECKS_PER_SECOND: u32 = 10_000;

/// The interval between checks of each file, for `file_zones` file zones.
pub fn poll_interval(file_zones: usize) -> Duration {
    let spread = (file_zones as u32).div_ceil(FILE_CHECKS_PER_SECOND).max(1);
    FILE_POLL_INTERVAL * spread
}

/// What a file zone's task needs.
pub struct FileZone {
    /// The master file.
    pub path: PathBuf,
    /// The served zone.
    pub handle: Arc<ZoneHandle>,
    /// Journal and NOTIFY duties.
    pub downstream: Downstream,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Records per zone at most.
    pub limits: ZoneLimits,
    /// How often the file is checked.
    pub poll: Duration,
}

impl FileZone {
    /// Keeps the zone loaded until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut seen: Option<(SystemTime, u64)> = None;
        loop {
            let stamp = std::fs::metadata(&self.path)
                .ok()
                .map(|m| (m.modified().unwrap_or(UNIX_EPOCH), m.len()));
            if stamp.is_some() && stamp != seen {
                seen = stamp;
                // Boxed, like a transfer: only the idle loop stays in every zone's task.
                Box::pin(self.load()).await;
            } else if stamp.is_none() && seen.is_some() {
                seen = None;
                let error = FileError::Read {
                    path: self.path.display().to_string(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                };
                warn!(zone = %self.handle.name, %error, "zone file disappeared; the current version stays served");
                self.handle.status().fail(error.kind(), error.to_string());
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    async fn load(&mut self) {
        let now = SystemTime::now();
        let handle = self.handle.clone();
        handle.status().last_attempt = Some(to_unix(now));
        let (name, file, limits) = (handle.name.clone(), self.path.clone(), self.limits);
        let parsed = tokio::task::spawn_blocking(move || parse_zone_file(&file, &name, limits))
            .await
            .unwrap_or(Err(FileError::Task));
        self.metrics.transfer("file", parsed.is_ok());
        let zone = match parsed {
            Ok(zone) => Arc::new(zone),
            Err(error) => {
                self.metrics.refresh_failure(error.kind());
                warn!(zone = %handle.name, %error, "zone file rejected; the current version stays served");
                let has_data = handle.data().is_some();
                let mut status = handle.status();
                status.fail(error.kind(), error.to_string());
                if !has_data {
                    status.state = ZoneState::Failed;
                }
                return;
            }
        };
        let old = handle.data();
        if let Some(old) = &old
            && old.serial() == zone.serial()
            && old.records().eq(zone.records())
        {
            // Nothing changed since the last load.
            handle.status().succeed(to_unix(now));
            return;
        }
        if let Some(old) = &old
            && !serial::is_newer(zone.serial(), old.serial())
        {
            warn!(zone = %handle.name, old_serial = old.serial(), new_serial = zone.serial(), "zone file changed without a newer serial; loading it anyway");
        }
        info!(zone = %handle.name, serial = zone.serial(), records = zone.record_count(), file = %self.path.display(), "zone file loaded");
        handle.publish(zone.clone());
        self.downstream.new_version(old, &zone).await;
        let mut status = handle.status();
        status.succeed(to_unix(now));
        status.source = Some(format!("file:{}", self.path.display()));
        status.last_transfer = "file".into();
    }
}

/// Reads and validates an RFC 1035 master file.
pub fn parse_zone_file(path: &Path, origin: &Name, limits: ZoneLimits) -> Result<Zone, FileError> {
    let label = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| FileError::Read {
        path: label.clone(),
        source,
    })?;
    let records = zonefile::parse(&text, origin, &label)?;
    Zone::from_records(origin, records, limits)
        .map_err(|error| FileError::Invalid { path: label, error })
}
