//! Prometheus metrics shared by the services.
//!
//! Counters are updated on the query and transfer paths (atomics, no locks); per-zone gauges
//! are filled in at scrape time by `status`.

use std::sync::OnceLock;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the query counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// Response code of the answer.
    pub rcode: String,
    /// Query type (`OTHER` for rare types, to bound the label set).
    pub qtype: String,
}

/// Labels of the transfer counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    /// `axfr`, `ixfr`, `soa` (a check that found nothing new) or `file`.
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
}

/// Labels of per-zone gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabels {
    /// The zone apex.
    pub zone: String,
}

/// Labels of the refresh failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The kind of failure (`timeout`, `tls`, `tsig`, `invalid_zone`, ...): a bounded set.
    pub kind: String,
}

/// Labels of the NOTIFY counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    /// `accepted`, `refused` or `bad_tsig`.
    pub outcome: String,
}

/// What became of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Accepted: the zone's task was woken.
    Accepted = 0,
    /// Refused: not ours, not allowed, or malformed.
    Refused = 1,
    /// Refused for a missing or bad signature.
    BadTsig = 2,
}

impl NotifyOutcome {
    const ALL: [NotifyOutcome; 3] = [
        NotifyOutcome::Accepted,
        NotifyOutcome::Refused,
        NotifyOutcome::BadTsig,
    ];

    fn label(self) -> &'static str {
        match self {
            NotifyOutcome::Accepted => "accepted",
            NotifyOutcome::Refused => "refused",
            NotifyOutcome::BadTsig => "bad_tsig",
        }
    }
}

/// All metrics of a node.
pub struct Metrics {
    /// The registry the status endpoint encodes.
    pub registry: Registry,
    /// Queries answered.
    pub queries: Family<QueryLabels, Counter>,
    /// Transfers and refresh checks.
    pub transfers: Family<TransferLabels, Counter>,
    /// Failed refresh rounds, by the kind of their last error.
    pub refresh_failures: Family<FailureLabels, Counter>,
    /// NOTIFY messages received.
    pub notifies: Family<NotifyLabels, Counter>,
    /// Transfers served to other secondaries.
    pub transfers_out: Family<TransferLabels, Counter>,
    /// Serial held per zone.
    pub zone_serial: Family<ZoneLabels, Gauge>,
    /// Seconds since the last successful refresh, per zone.
    pub zone_seconds_since_refresh: Family<ZoneLabels, Gauge>,
    /// 1 when the zone is expired.
    pub zone_expired: Family<ZoneLabels, Gauge>,
    /// The query counters of the 4-bit response codes by type slot, resolved once so that
    /// counting a query is one atomic add (no label strings, no map lookup).
    query_counters: Vec<OnceLock<Counter>>,
    /// The NOTIFY counters by outcome, resolved once: NOTIFY is counted on the UDP workers,
    /// which must not take the family's lock.
    notify_counters: [Counter; 3],
}

/// Query types counted under their own label; others count as `OTHER`.
const COUNTED_TYPES: [RecordType; 17] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::DS,
    RecordType::DNSKEY,
    RecordType::HTTPS,
    RecordType::SVCB,
    RecordType::ANY,
    RecordType::AXFR,
    RecordType::IXFR,
];

/// Type slots: the counted types, then `OTHER`, then `NONE` (no question).
const TYPE_SLOTS: usize = COUNTED_TYPES.len() + 2;

fn type_slot(qtype: Option<RecordType>) -> usize {
    match qtype {
        Some(rtype) => COUNTED_TYPES
            .iter()
            .position(|counted| *counted == rtype)
            .unwrap_or(COUNTED_TYPES.len()),
        None => COUNTED_TYPES.len() + 1,
    }
}

fn type_label(slot: usize) -> String {
    match COUNTED_TYPES.get(slot) {
        Some(rtype) => rtype.to_string(),
        None if slot == COUNTED_TYPES.len() => "OTHER".into(),
        None => "NONE".into(),
    }
}

/// The registry mnemonic of a response code (`NOERROR`, `NXDOMAIN`), as operators read it.
fn rcode_mnemonic(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::BADVERS => "BADVERS".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zonecast");
        let queries = Family::<QueryLabels, Counter>::default();
        let transfers = Family::<TransferLabels, Counter>::default();
        let notifies = Family::<NotifyLabels, Counter>::default();
        let refresh_failures = Family::<FailureLabels, Counter>::default();
        let transfers_out = Family::<TransferLabels, Counter>::default();
        let zone_serial = Family::<ZoneLabels, Gauge>::default();
        let zone_seconds_since_refresh = Family::<ZoneLabels, Gauge>::default();
        let zone_expired = Family::<ZoneLabels, Gauge>::default();
        registry.register(
            "queries",
            "DNS queries answered, by response code and type",
            queries.clone(),
        );
        registry.register(
            "transfers",
            "Zone refreshes, by kind and outcome",
            transfers.clone(),
        );
        registry.register(
            "transfers_out",
            "Transfers served, by kind (axfr, ixfr, ixfr_uptodate) and outcome",
            transfers_out.clone(),
        );
        registry.register(
            "refresh_failures",
            "Refresh rounds in which every source failed (or a zone file was rejected), by kind",
            refresh_failures.clone(),
        );
        registry.register(
            "notifies",
            "NOTIFY messages received, by outcome",
            notifies.clone(),
        );
        registry.register(
            "zone_serial",
            "SOA serial held per zone",
            zone_serial.clone(),
        );
        registry.register(
            "zone_seconds_since_refresh",
            "Seconds since the last successful refresh per zone",
            zone_seconds_since_refresh.clone(),
        );
        registry.register(
            "zone_expired",
            "1 when the zone is expired and answered SERVFAIL",
            zone_expired.clone(),
        );
        let notify_counters = NotifyOutcome::ALL.map(|outcome| {
            notifies
                .get_or_create(&NotifyLabels {
                    outcome: outcome.label().to_string(),
                })
                .clone()
        });
        Metrics {
            registry,
            queries,
            transfers,
            notifies,
            refresh_failures,
            transfers_out,
            zone_serial,
            zone_seconds_since_refresh,
            zone_expired,
            query_counters: (0..16 * TYPE_SLOTS).map(|_| OnceLock::new()).collect(),
            notify_counters,
        }
    }

    /// Counts one query answered with `rcode`.
    pub fn count_query(&self, rcode: ResponseCode, qtype: Option<RecordType>) {
        let slot = type_slot(qtype);
        let code = usize::from(u16::from(rcode));
        let labels = || QueryLabels {
            rcode: rcode_mnemonic(rcode),
            qtype: type_label(slot),
        };
        match self.query_counters.get(code * TYPE_SLOTS + slot) {
            Some(cell) => cell
                .get_or_init(|| self.queries.get_or_create(&labels()).clone())
                .inc(),
            None => self.queries.get_or_create(&labels()).inc(),
        };
    }

    /// Counts one NOTIFY received: one atomic add.
    pub fn count_notify(&self, outcome: NotifyOutcome) {
        self.notify_counters[outcome as usize].inc();
    }

    /// Counts one refresh outcome.
    pub fn transfer(&self, kind: &str, success: bool) {
        self.transfers
            .get_or_create(&TransferLabels {
                kind: kind.to_string(),
                outcome: if success { "success" } else { "failure" }.to_string(),
            })
            .inc();
    }
}

impl Metrics {
    /// Counts one failed refresh round (or rejected zone file) of `kind`.
    pub fn refresh_failure(&self, kind: &str) {
        self.refresh_failures
            .get_or_create(&FailureLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Drops every per-zone series of a zone that is no longer served.
    pub fn remove_zone(&self, zone: &str) {
        let labels = ZoneLabels {
            zone: zone.to_string(),
        };
        self.zone_serial.remove(&labels);
        self.zone_seconds_since_refresh.remove(&labels);
        self.zone_expired.remove(&labels);
    }

    /// Counts one transfer served.
    pub fn transfer_out(&self, kind: &str, success: bool) {
        self.transfers_out
            .get_or_create(&TransferLabels {
                kind: kind.to_string(),
                outcome: if success { "success" } else { "failure" }.to_string(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
