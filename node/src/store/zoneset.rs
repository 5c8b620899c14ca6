//! The zones this node serves, shared between the query path, the refresh tasks, the zone
//! supervisor and the status endpoint.
//!
//! **Invariant:** readers never wait for writers. The set itself is an `ArcSwap<ZoneIndex>`
//! that the supervisor replaces whole when zones are added or removed; each zone's data is an
//! `Arc<Zone>` behind an `ArcSwapOption` that a refresh task swaps with one atomic store; the
//! expiry flag and deadline are atomics. The status fields sit behind a mutex that only
//! refresh tasks and the status endpoint take, never the query path: `status()` asserts that
//! (in debug builds) through `query_path::assert_off`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption, Guard};
use hickory_proto::rr::Name;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{TransferAcl, ZoneConfig, ZoneSource};
use crate::dns::name::{NameKey, parent_key};
use crate::dns::tsig::TsigKey;
use crate::dns::zone::Zone;
use crate::store::query_path;

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
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// The kind of the last failure (`timeout`, `tls`, `tsig`, `invalid_zone`, ...): a short,
    /// stable label that tests and alerts can match.
    pub last_error_kind: Option<&'static str>,
    /// The kind of the last transfer that changed data (`axfr`, `ixfr`, `file`, `none`).
    pub last_transfer: String,
}

impl ZoneStatus {
    /// Records a failure of `kind`.
    pub fn fail(&mut self, kind: &'static str, message: String) {
        self.last_error = Some(message);
        self.last_error_kind = Some(kind);
    }

    /// Records a success at `now` (UNIX seconds): fresh, errors cleared.
    pub fn succeed(&mut self, now: u64) {
        self.state = ZoneState::Fresh;
        self.last_success = Some(now);
        self.last_error = None;
        self.last_error_kind = None;
    }
}

/// What a zone's configuration says about who may talk to it; replaced whole on reload.
#[derive(Debug)]
pub struct ZonePolicy {
    /// Addresses allowed to send NOTIFY.
    pub notify_allow: Vec<IpAddr>,
    /// Keys that NOTIFY from a given address must be signed with.
    pub notify_keys: Vec<(IpAddr, Arc<TsigKey>)>,
    /// Who may transfer this zone from us.
    pub allow_transfer: TransferAcl,
    /// True for a zone read from a local file: this node is its origin, so its copy never
    /// expires and EDNS EXPIRE answers carry the SOA's EXPIRE.
    pub from_file: bool,
}

impl ZonePolicy {
    /// The policy a zone's configuration sets.
    pub fn of(config: &ZoneConfig) -> ZonePolicy {
        let notify_keys = match &config.source {
            ZoneSource::Primaries(primaries) => primaries
                .iter()
                .filter_map(|p| p.tsig_key.clone().map(|key| (p.address.ip(), key)))
                .collect(),
            ZoneSource::File(_) => Vec::new(),
        };
        ZonePolicy {
            notify_allow: config.notify_allow.clone(),
            notify_keys,
            allow_transfer: config.allow_transfer.clone(),
            from_file: matches!(config.source, ZoneSource::File(_)),
        }
    }
}

/// No expire deadline (`expire_deadline` holds UNIX seconds, or this).
const NO_DEADLINE: u64 = 0;

/// One served zone.
pub struct ZoneHandle {
    /// The apex, lowercase and fully qualified.
    pub name: Name,
    policy: ArcSwap<ZonePolicy>,
    /// Woken by NOTIFY: the refresh task checks the primary at once. `Notify` keeps at most
    /// one pending wake-up, which coalesces a burst of NOTIFYs into one refresh.
    pub refresh_now: Notify,
    /// The address of the last accepted NOTIFY, asked first by the next refresh (as BIND and
    /// Knot do): it has the new serial, while other primaries may still lag.
    notified_by: ArcSwapOption<IpAddr>,
    data: ArcSwapOption<Zone>,
    expired: AtomicBool,
    /// When this copy expires unless refreshed, UNIX seconds ([`NO_DEADLINE`]: none yet).
    expire_deadline: AtomicU64,
    status: Mutex<ZoneStatus>,
}

impl ZoneHandle {
    /// A handle with no data yet.
    pub fn new(config: &ZoneConfig) -> ZoneHandle {
        ZoneHandle {
            name: config.name.clone(),
            policy: ArcSwap::from_pointee(ZonePolicy::of(config)),
            refresh_now: Notify::new(),
            notified_by: ArcSwapOption::empty(),
            data: ArcSwapOption::empty(),
            expired: AtomicBool::new(false),
            expire_deadline: AtomicU64::new(NO_DEADLINE),
            status: Mutex::new(ZoneStatus {
                state: ZoneState::Loading,
                source: None,
                last_attempt: None,
                last_success: None,
                next_refresh: None,
                last_error: None,
                last_error_kind: None,
                last_transfer: "none".into(),
            }),
        }
    }

    /// Who may send NOTIFY and transfer the zone, as configured now.
    pub fn policy(&self) -> Arc<ZonePolicy> {
        self.policy.load_full()
    }

    /// Takes a reloaded configuration's policy; data and status stay.
    pub fn set_policy(&self, config: &ZoneConfig) {
        self.policy.store(Arc::new(ZonePolicy::of(config)));
    }

    /// True for a zone read from a local file.
    pub fn from_file(&self) -> bool {
        self.policy.load().from_file
    }

    /// Records an accepted NOTIFY from `source` and wakes the refresh task. Lock-free:
    /// NOTIFY arrives on the UDP workers.
    pub fn notify(&self, source: IpAddr) {
        self.notified_by.store(Some(Arc::new(source)));
        self.refresh_now.notify_one();
    }

    /// Takes the address of the last accepted NOTIFY, if one is pending.
    pub fn take_notifier(&self) -> Option<IpAddr> {
        self.notified_by.swap(None).map(|source| *source)
    }

    /// The data to answer from, or None when the zone must be answered with SERVFAIL (never
    /// loaded, or expired).
    pub fn servable(&self) -> Option<Arc<Zone>> {
        if self.expired.load(Ordering::Acquire) {
            return None;
        }
        self.data.load_full()
    }

    /// Seconds until this copy expires at `now` (UNIX seconds, RFC 7314), None when it cannot
    /// be served. Lock-free: EDNS EXPIRE is answered on the query path.
    pub fn expire_remaining(&self, now: u64) -> Option<u32> {
        let zone = self.servable()?;
        if self.from_file() {
            return Some(zone.soa().expire as u32);
        }
        let deadline = self.expire_deadline()?;
        Some(u32::try_from(deadline.saturating_sub(now)).unwrap_or(u32::MAX))
    }

    /// When this copy expires unless refreshed (UNIX seconds).
    pub fn expire_deadline(&self) -> Option<u64> {
        match self.expire_deadline.load(Ordering::Acquire) {
            NO_DEADLINE => None,
            deadline => Some(deadline),
        }
    }

    /// Sets the expire deadline (UNIX seconds).
    pub fn set_expire_deadline(&self, deadline: Option<u64>) {
        self.expire_deadline
            .store(deadline.unwrap_or(NO_DEADLINE), Ordering::Release);
    }

    /// The data held, expired or not.
    pub fn data(&self) -> Option<Arc<Zone>> {
        self.data.load_full()
    }

    /// Replaces the data atomically.
    pub fn publish(&self, zone: Arc<Zone>) {
        if let Some(old) = self.data.load().as_ref() {
            // Serials never go backwards on commit, unless an operator's file says so, which
            // the file task logs; a transfer path never gets here with an older serial.
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

    /// The status fields, for update or display. Never on the query path.
    pub fn status(&self) -> MutexGuard<'_, ZoneStatus> {
        query_path::assert_off("a zone's status mutex");
        // A poisoned lock only means a panic elsewhere while updating status fields; the
        // fields themselves are plain values and stay usable.
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The zones served at one moment, found by the longest apex that encloses a name.
#[derive(Clone, Default)]
pub struct ZoneIndex {
    /// The zones by name key (`dns::name::NameKey`).
    by_key: HashMap<Box<[u8]>, Arc<ZoneHandle>>,
    /// Configuration order, for status.
    order: Vec<Arc<ZoneHandle>>,
}

impl ZoneIndex {
    /// The zone with exactly this apex.
    pub fn get(&self, apex: &Name) -> Option<&Arc<ZoneHandle>> {
        self.by_key.get(NameKey::new(apex).as_bytes())
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

    /// Number of zones.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no zone is served.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// All served zones. Changed only by the zone supervisor (`add`, `remove`), read by everyone.
pub struct ZoneSet {
    index: ArcSwap<ZoneIndex>,
}

impl ZoneSet {
    /// The zone set of a configuration, with no data loaded.
    pub fn new(configs: &[ZoneConfig]) -> ZoneSet {
        let set = ZoneSet {
            index: ArcSwap::from_pointee(ZoneIndex::default()),
        };
        set.change(
            configs
                .iter()
                .map(|config| Arc::new(ZoneHandle::new(config)))
                .collect(),
            &[],
        );
        set
    }

    /// The zones now: an atomic load, for the query path (no lock, no allocation).
    pub fn load(&self) -> Guard<Arc<ZoneIndex>> {
        self.index.load()
    }

    /// The zone with exactly this apex.
    pub fn get(&self, apex: &Name) -> Option<Arc<ZoneHandle>> {
        self.index.load().get(apex).cloned()
    }

    /// The zones now, to iterate.
    pub fn snapshot(&self) -> Arc<ZoneIndex> {
        self.index.load_full()
    }

    /// Adds zones (replacing one with the same apex) and removes others, in one atomic switch:
    /// a query sees the old set or the new one.
    pub fn change(&self, add: Vec<Arc<ZoneHandle>>, remove: &[Name]) {
        let key = |name: &Name| -> Box<[u8]> { Box::from(NameKey::new(name).as_bytes()) };
        let mut index = ZoneIndex::clone(&self.index.load());
        // Zones leaving: those removed, and those an added handle replaces.
        let dropped: HashSet<Box<[u8]>> = remove
            .iter()
            .chain(add.iter().map(|handle| &handle.name))
            .map(key)
            .filter(|key| index.by_key.remove(key).is_some())
            .collect();
        if !dropped.is_empty() {
            index
                .order
                .retain(|handle| !dropped.contains(NameKey::new(&handle.name).as_bytes()));
        }
        index.order.reserve(add.len());
        for handle in add {
            index.by_key.insert(key(&handle.name), handle.clone());
            index.order.push(handle);
        }
        self.index.store(Arc::new(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zone::tests::{LIMITS, base_records, name};

    fn file_zone(apex: &str) -> ZoneConfig {
        ZoneConfig {
            name: name(apex),
            source: ZoneSource::File("/nonexistent.zone".into()),
            notify_allow: Vec::new(),
            allow_transfer: TransferAcl::default(),
            also_notify: Vec::new(),
        }
    }

    #[test]
    fn zones_come_and_go_atomically() {
        let set = ZoneSet::new(&[file_zone("example.test.")]);
        let www = NameKey::new(&name("www.example.test."));
        let before = set.load();
        assert!(before.find_key(www.as_bytes()).is_some());
        set.change(
            vec![Arc::new(ZoneHandle::new(&file_zone("sub.example.test.")))],
            &[],
        );
        let deep = NameKey::new(&name("a.sub.example.test."));
        let (_, found) = set
            .load()
            .find_key(deep.as_bytes())
            .map(|(l, h)| (l, h.clone()))
            .expect("found");
        assert_eq!(
            found.name,
            name("sub.example.test."),
            "the most specific zone wins"
        );
        set.change(Vec::new(), &[name("EXAMPLE.test")]);
        assert!(
            set.load().find_key(www.as_bytes()).is_none(),
            "removed: REFUSED"
        );
        assert_eq!(set.snapshot().len(), 1);
        // A reader holding the old index still sees the old set.
        assert!(before.find_key(www.as_bytes()).is_some());
    }

    #[test]
    fn expire_deadline_and_notifier_need_no_lock() {
        let handle = ZoneHandle::new(&ZoneConfig {
            source: ZoneSource::Primaries(Vec::new()),
            ..file_zone("example.test.")
        });
        let zone =
            Zone::from_records(&name("example.test."), base_records(), LIMITS).expect("valid");
        handle.publish(Arc::new(zone));
        assert_eq!(handle.expire_remaining(100), None, "no deadline yet");
        handle.set_expire_deadline(Some(1_000));
        assert_eq!(handle.expire_remaining(100), Some(900));
        handle.set_expired(true);
        assert_eq!(handle.expire_remaining(100), None, "expired: not servable");
        handle.notify("192.0.2.1".parse().expect("ip"));
        assert_eq!(
            handle.take_notifier(),
            Some("192.0.2.1".parse().expect("ip"))
        );
        assert_eq!(handle.take_notifier(), None);
    }
}
