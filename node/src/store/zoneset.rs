//! The zones this node serves, shared between the query path, the refresh tasks and the status
//! endpoint.
//!
//! **Invariant:** readers never wait for writers. Each zone's data is an `Arc<Zone>` behind an
//! `ArcSwapOption`; a refresh task builds a complete new snapshot and swaps it in with one
//! atomic store. The status fields sit behind a mutex that only refresh tasks and the status
//! endpoint take, never the query path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use hickory_proto::rr::Name;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{TransferAcl, ZoneConfig, ZoneSource};
use crate::dns::name::{NameKey, parent_key};
use crate::dns::tsig::TsigKey;
use crate::dns::zone::Zone;

/// The refresh state of a zone, as shown on the status endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneState {
    /// No data yet and no attempt finished.
    Loading,
    /// Data held and the last refresh succeeded.
    Fresh,
    /// A refresh is running.
    Refreshing,
    /// Data held, the last refresh failed, not yet expired.
    Retrying,
    /// No successful refresh for longer than EXPIRE: answered with SERVFAIL.
    Expired,
    /// No data, and the last attempt failed.
    Failed,
}

/// What the status endpoint shows of a zone; times are UNIX seconds.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    /// The refresh state.
    pub state: ZoneState,
    /// Where the current data came from.
    pub source: Option<String>,
    /// Last refresh attempt.
    pub last_attempt: Option<u64>,
    /// Last successful refresh.
    pub last_success: Option<u64>,
    /// Next scheduled refresh.
    pub next_refresh: Option<u64>,
    /// When the zone expires unless refreshed.
    pub expire_deadline: Option<u64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// The kind of the last transfer that changed data (`axfr`, `ixfr`, `file`, `none`).
    pub last_transfer: String,
}

/// One served zone.
pub struct ZoneHandle {
    /// The apex, lowercase and fully qualified.
    pub name: Name,
    /// Addresses allowed to send NOTIFY.
    pub notify_allow: Vec<IpAddr>,
    /// Keys that NOTIFY from a given address must be signed with.
    pub notify_keys: Vec<(IpAddr, Arc<TsigKey>)>,
    /// Who may transfer this zone from us.
    pub allow_transfer: TransferAcl,
    /// True for a zone read from a local file: this node is its origin, so its copy never
    /// expires and EDNS EXPIRE answers carry the SOA's EXPIRE.
    pub from_file: bool,
    /// Woken by NOTIFY: the refresh task checks the primary at once. `Notify` keeps at most
    /// one pending wake-up, which coalesces a burst of NOTIFYs into one refresh.
    pub refresh_now: Notify,
    /// The address of the last accepted NOTIFY, asked first by the next refresh (as BIND and
    /// Knot do): it has the new serial, while other primaries may still lag.
    notified_by: Mutex<Option<IpAddr>>,
    data: ArcSwapOption<Zone>,
    expired: AtomicBool,
    status: Mutex<ZoneStatus>,
}

impl ZoneHandle {
    /// A handle with no data yet.
    pub fn new(config: &ZoneConfig) -> ZoneHandle {
        let notify_keys = match &config.source {
            ZoneSource::Primaries(primaries) => primaries
                .iter()
                .filter_map(|p| p.tsig_key.clone().map(|key| (p.address.ip(), key)))
                .collect(),
            ZoneSource::File(_) => Vec::new(),
        };
        ZoneHandle {
            name: config.name.clone(),
            notify_allow: config.notify_allow.clone(),
            notify_keys,
            allow_transfer: config.allow_transfer.clone(),
            from_file: matches!(config.source, ZoneSource::File(_)),
            refresh_now: Notify::new(),
            notified_by: Mutex::new(None),
            data: ArcSwapOption::empty(),
            expired: AtomicBool::new(false),
            status: Mutex::new(ZoneStatus {
                state: ZoneState::Loading,
                source: None,
                last_attempt: None,
                last_success: None,
                next_refresh: None,
                expire_deadline: None,
                last_error: None,
                last_transfer: "none".into(),
            }),
        }
    }

    /// Records an accepted NOTIFY from `source` and wakes the refresh task.
    pub fn notify(&self, source: IpAddr) {
        *self
            .notified_by
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(source);
        self.refresh_now.notify_one();
    }

    /// Takes the address of the last accepted NOTIFY, if one is pending.
    pub fn take_notifier(&self) -> Option<IpAddr> {
        self.notified_by
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// The data to answer from, or None when the zone must be answered with SERVFAIL (never
    /// loaded, or expired).
    pub fn servable(&self) -> Option<Arc<Zone>> {
        if self.expired.load(Ordering::Acquire) {
            return None;
        }
        self.data.load_full()
    }

    /// Seconds until this copy expires (RFC 7314), None when it cannot be served.
    pub fn expire_remaining(&self, now: u64) -> Option<u32> {
        let zone = self.servable()?;
        if self.from_file {
            return Some(zone.soa().expire as u32);
        }
        let deadline = self.status().expire_deadline?;
        Some(u32::try_from(deadline.saturating_sub(now)).unwrap_or(u32::MAX))
    }

    /// The data held, expired or not.
    pub fn data(&self) -> Option<Arc<Zone>> {
        self.data.load_full()
    }

    /// Replaces the data atomically.
    pub fn publish(&self, zone: Arc<Zone>) {
        if let Some(old) = self.data.load().as_ref() {
            // Serials never go backwards on commit, unless an operator's file says so, which
            // `secondary` logs; a transfer path never gets here with an older serial.
            debug_assert!(old.origin() == zone.origin());
        }
        self.data.store(Some(zone));
    }

    /// Marks the zone expired (SERVFAIL) or not.
    pub fn set_expired(&self, expired: bool) {
        self.expired.store(expired, Ordering::Release);
    }

    /// True when the zone is expired.
    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    /// The status fields, for update or display.
    pub fn status(&self) -> MutexGuard<'_, ZoneStatus> {
        // A poisoned lock only means a panic elsewhere while updating status fields; the
        // fields themselves are plain values and stay usable.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// All served zones, found by the longest apex that encloses a name.
pub struct ZoneSet {
    zones: HashMap<Name, Arc<ZoneHandle>>,
    /// The same zones by name key (`zone::NameKey`), for the query path.
    by_key: HashMap<Box<[u8]>, Arc<ZoneHandle>>,
    order: Vec<Arc<ZoneHandle>>,
}

impl ZoneSet {
    /// The zone set of a configuration, with no data loaded.
    pub fn new(configs: &[ZoneConfig]) -> ZoneSet {
        let order: Vec<Arc<ZoneHandle>> = configs
            .iter()
            .map(|config| Arc::new(ZoneHandle::new(config)))
            .collect();
        let zones = order
            .iter()
            .map(|handle| (handle.name.clone(), handle.clone()))
            .collect();
        let by_key = order
            .iter()
            .map(|handle| {
                (
                    Box::from(NameKey::new(&handle.name).as_bytes()),
                    handle.clone(),
                )
            })
            .collect();
        ZoneSet {
            zones,
            by_key,
            order,
        }
    }

    /// The zone with exactly this apex.
    pub fn get(&self, apex: &Name) -> Option<&Arc<ZoneHandle>> {
        self.zones.get(&apex.to_lowercase())
    }

    /// The most specific zone containing the name whose key is `key`, with the length of the
    /// zone's own key (equal to `key.len()` when the name is the apex).
    pub fn find_key(&self, key: &[u8]) -> Option<(usize, &Arc<ZoneHandle>)> {
        let mut end = key.len();
        loop {
            if let Some(zone) = self.by_key.get(&key[..end]) {
                return Some((end, zone));
            }
            if end == 0 {
                return None;
            }
            end = parent_key(&key[..end]).len();
        }
    }

    /// Every zone, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ZoneHandle>> {
        self.order.iter()
    }
}
