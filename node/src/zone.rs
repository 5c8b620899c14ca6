//! The zone model: an immutable, validated snapshot of one zone's data, and the operations that
//! derive a new snapshot from an old one (applying IXFR differences).
//!
//! A `Zone` is built only through [`Zone::from_records`] or [`Zone::apply`], both of which
//! validate: a snapshot that exists is servable. This module does no I/O and knows nothing about
//! where records came from; lookups that answer queries live in `lookup`.
//!
//! Nodes are kept in a persistent ordered map (`imbl::OrdMap`) so that applying a small diff to
//! a large zone shares almost all of the old snapshot instead of copying it.

use std::fmt;
use std::sync::Arc;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use imbl::OrdMap;

/// At most this many CNAME records are followed while building one answer; longer chains are
/// cut, as NSD and Knot do, to bound the work one query can cause.
pub const CNAME_CHAIN_MAX: usize = 8;

/// Why a set of records cannot become a zone snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// The data has no SOA record at the zone apex.
    #[error("no SOA record at the zone apex {0}")]
    MissingSoa(String),
    /// More than one SOA record was given.
    #[error("more than one SOA record in zone {0}")]
    DuplicateSoa(String),
    /// An SOA record appeared somewhere other than the apex.
    #[error("SOA record at {0}, which is not the zone apex")]
    SoaNotAtApex(String),
    /// The apex has no NS RRset.
    #[error("no NS records at the zone apex {0}")]
    MissingApexNs(String),
    /// A record's owner name is not at or below the zone apex.
    #[error("record owner {owner} is outside the zone {zone}")]
    OutsideZone {
        /// The offending owner name.
        owner: String,
        /// The zone apex.
        zone: String,
    },
    /// A record has a class other than IN.
    #[error("record {owner} has class {class}, only IN is served")]
    WrongClass {
        /// The offending owner name.
        owner: String,
        /// The class it carried.
        class: String,
    },
    /// A CNAME shares its owner with other data (RFC 1034 3.6.2, RFC 2181 10.1).
    #[error("CNAME at {0} beside other data")]
    CnameAndOtherData(String),
    /// A record type that is never zone data (OPT, TSIG, AXFR, ...) appeared in the zone.
    #[error("record of type {rtype} at {owner} is not zone data")]
    MetaType {
        /// The offending owner name.
        owner: String,
        /// The meta type.
        rtype: String,
    },
    /// The zone holds more records than the configured limit.
    #[error("zone has more than {limit} records")]
    TooManyRecords {
        /// The configured limit.
        limit: u64,
    },
    /// A diff starts from a serial other than the one the zone holds.
    #[error("diff starts at serial {diff_from} but the zone holds serial {current}")]
    SerialChainBroken {
        /// The serial the zone holds.
        current: u32,
        /// The serial the diff expects.
        diff_from: u32,
    },
    /// A diff deletes a record the zone does not have.
    #[error("diff deletes a record the zone does not have: {0}")]
    DeleteMissing(String),
}

/// The records of one owner name and type, sharing one TTL.
#[derive(Clone, Debug, PartialEq)]
pub struct RrSet {
    /// The record type.
    pub rtype: RecordType,
    /// The TTL of the set (the last one seen when the records disagreed).
    pub ttl: u32,
    /// The record data, without duplicates, in the order received.
    pub rdatas: Vec<RData>,
}

/// All RRsets of one owner name.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The owner name, with the case it was received in.
    pub name: Name,
    /// RRsets ordered by type code.
    pub rrsets: Vec<RrSet>,
}

impl Node {
    /// The RRset of the given type, if the node has one.
    pub fn rrset(&self, rtype: RecordType) -> Option<&RrSet> {
        self.rrsets.iter().find(|set| set.rtype == rtype)
    }

    /// Records of the RRset of `rtype`, with `owner` as their owner name.
    pub fn records(&self, rtype: RecordType, owner: &Name) -> Vec<Record> {
        self.rrset(rtype)
            .map(|set| set_records(set, owner))
            .unwrap_or_default()
    }

    /// Adds one record; returns false when it was already present.
    fn insert(&mut self, ttl: u32, data: RData) -> bool {
        let rtype = data.record_type();
        match self
            .rrsets
            .binary_search_by_key(&u16::from(rtype), |s| u16::from(s.rtype))
        {
            Ok(index) => {
                let set = &mut self.rrsets[index];
                // An RRset has one TTL (RFC 2181 5.2): the record seen last sets it, so an
                // IXFR that adds a record with a new TTL moves the whole set to it.
                set.ttl = ttl;
                if set.rdatas.contains(&data) {
                    return false;
                }
                set.rdatas.push(data);
                true
            }
            Err(index) => {
                self.rrsets.insert(
                    index,
                    RrSet {
                        rtype,
                        ttl,
                        rdatas: vec![data],
                    },
                );
                true
            }
        }
    }

    /// Removes one record; returns false when it was not present.
    fn remove(&mut self, data: &RData) -> bool {
        let rtype = data.record_type();
        let Some(index) = self.rrsets.iter().position(|s| s.rtype == rtype) else {
            return false;
        };
        let set = &mut self.rrsets[index];
        let Some(position) = set.rdatas.iter().position(|d| d == data) else {
            return false;
        };
        set.rdatas.remove(position);
        if set.rdatas.is_empty() {
            self.rrsets.remove(index);
        }
        true
    }

    fn check_cname(&self) -> Result<(), ZoneError> {
        let Some(cname) = self.rrset(RecordType::CNAME) else {
            return Ok(());
        };
        // DNSSEC records may accompany a CNAME (RFC 4035 2.5); nothing else may.
        let others = self.rrsets.iter().any(|set| {
            !matches!(
                set.rtype,
                RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
            )
        });
        if others || cname.rdatas.len() > 1 {
            return Err(ZoneError::CnameAndOtherData(self.name.to_string()));
        }
        Ok(())
    }
}

/// Makes owned records from an RRset.
pub fn set_records(set: &RrSet, owner: &Name) -> Vec<Record> {
    set.rdatas
        .iter()
        .map(|data| Record::from_rdata(owner.clone(), set.ttl, data.clone()))
        .collect()
}

/// A key that orders names so that every name's descendants follow it contiguously: labels from
/// the root down, lowercased, each followed by a 0 byte (0 and 1 inside a label are escaped).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameKey(Box<[u8]>);

impl NameKey {
    /// The key of `name`.
    pub fn new(name: &Name) -> Self {
        let mut bytes = Vec::with_capacity(name.len() + 2);
        let labels: Vec<&[u8]> = name.iter().collect();
        for label in labels.iter().rev() {
            for &byte in *label {
                match byte.to_ascii_lowercase() {
                    0 => bytes.extend_from_slice(&[1, 1]),
                    1 => bytes.extend_from_slice(&[1, 2]),
                    other => bytes.push(other),
                }
            }
            bytes.push(0);
        }
        Self(bytes.into_boxed_slice())
    }

    /// True when `self` names a strict descendant of `ancestor`.
    fn is_below(&self, ancestor: &NameKey) -> bool {
        self.0.len() > ancestor.0.len() && self.0.starts_with(&ancestor.0)
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameKey({})", String::from_utf8_lossy(&self.0))
    }
}

/// One IXFR difference sequence (RFC 1995): from one serial to the next.
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    /// The serial the zone must hold before this difference applies.
    pub from_serial: u32,
    /// The SOA record of the version this difference produces.
    pub to_soa: Record,
    /// Records to delete (without the old SOA).
    pub deleted: Vec<Record>,
    /// Records to add (without the new SOA).
    pub added: Vec<Record>,
}

/// A chain of differences, oldest first, with the SOA record of the version it starts from
/// (an IXFR answer opens each step with the old version's SOA, RFC 1995 4).
#[derive(Debug, Clone)]
pub struct JournalChain {
    /// The SOA record of the version the chain starts from.
    pub from_soa: Record,
    /// The differences, each starting where the previous one ended.
    pub diffs: Vec<Diff>,
}

/// Limits a zone snapshot must respect.
#[derive(Clone, Copy, Debug)]
pub struct ZoneLimits {
    /// Most records in one zone.
    pub records_max: u64,
}

/// An immutable, validated snapshot of one zone.
#[derive(Clone)]
pub struct Zone {
    origin: Name,
    origin_key: NameKey,
    nodes: OrdMap<NameKey, Arc<Node>>,
    soa_ttl: u32,
    soa: SOA,
    record_count: usize,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone")
            .field("origin", &self.origin.to_string())
            .field("serial", &self.soa.serial)
            .field("records", &self.record_count)
            .finish()
    }
}

impl Zone {
    /// Builds and validates a zone from records in any order (SOA included).
    pub fn from_records(
        origin: &Name,
        records: impl IntoIterator<Item = Record>,
        limits: ZoneLimits,
    ) -> Result<Zone, ZoneError> {
        let origin = canonical_origin(origin);
        let mut nodes: OrdMap<NameKey, Arc<Node>> = OrdMap::new();
        let mut soa: Option<(u32, SOA)> = None;
        let mut record_count: usize = 0;
        for record in records {
            check_record(&origin, &record)?;
            if let RData::SOA(data) = &record.data {
                if !record.name.eq_ignore_root(&origin) {
                    return Err(ZoneError::SoaNotAtApex(record.name.to_string()));
                }
                if soa.is_some() {
                    return Err(ZoneError::DuplicateSoa(origin.to_string()));
                }
                soa = Some((record.ttl, data.clone()));
                continue;
            }
            let key = NameKey::new(&record.name);
            let node = nodes.entry(key).or_insert_with(|| {
                Arc::new(Node {
                    name: record.name.clone(),
                    rrsets: Vec::new(),
                })
            });
            if Arc::make_mut(node).insert(record.ttl, record.data) {
                record_count += 1;
                if record_count as u64 + 1 > limits.records_max {
                    return Err(ZoneError::TooManyRecords {
                        limit: limits.records_max,
                    });
                }
            }
        }
        let Some((soa_ttl, soa)) = soa else {
            return Err(ZoneError::MissingSoa(origin.to_string()));
        };
        let mut zone = Zone {
            origin_key: NameKey::new(&origin),
            origin,
            nodes,
            soa_ttl,
            soa,
            record_count: record_count + 1,
        };
        zone.put_soa_at_apex();
        for node in zone.nodes.values() {
            node.check_cname()?;
        }
        zone.check_apex()?;
        Ok(zone)
    }

    /// Applies IXFR differences in order and returns the new snapshot; `self` is unchanged.
    ///
    /// Fails (so the caller falls back to AXFR) when the serial chain does not join or a
    /// deletion names a record the zone does not hold (RFC 1995 4).
    pub fn apply(&self, diffs: &[Diff], limits: ZoneLimits) -> Result<Zone, ZoneError> {
        let mut zone = self.clone();
        let mut touched: Vec<NameKey> = Vec::new();
        for diff in diffs {
            if diff.from_serial != zone.soa.serial {
                return Err(ZoneError::SerialChainBroken {
                    current: zone.soa.serial,
                    diff_from: diff.from_serial,
                });
            }
            for record in &diff.deleted {
                check_record(&zone.origin, record)?;
                let key = NameKey::new(&record.name);
                let removed = match zone.nodes.get_mut(&key) {
                    Some(node) => Arc::make_mut(node).remove(&record.data),
                    None => false,
                };
                if !removed {
                    return Err(ZoneError::DeleteMissing(format!(
                        "{} {} {}",
                        record.name,
                        record.record_type(),
                        record.data
                    )));
                }
                if zone.nodes.get(&key).is_some_and(|n| n.rrsets.is_empty()) {
                    zone.nodes.remove(&key);
                }
                zone.record_count -= 1;
            }
            for record in &diff.added {
                check_record(&zone.origin, record)?;
                if matches!(record.data, RData::SOA(_)) {
                    return Err(ZoneError::DuplicateSoa(zone.origin.to_string()));
                }
                let key = NameKey::new(&record.name);
                let node = zone.nodes.entry(key.clone()).or_insert_with(|| {
                    Arc::new(Node {
                        name: record.name.clone(),
                        rrsets: Vec::new(),
                    })
                });
                if Arc::make_mut(node).insert(record.ttl, record.data.clone()) {
                    zone.record_count += 1;
                }
                touched.push(key);
            }
            let RData::SOA(new_soa) = &diff.to_soa.data else {
                return Err(ZoneError::MissingSoa(zone.origin.to_string()));
            };
            zone.soa = new_soa.clone();
            zone.soa_ttl = diff.to_soa.ttl;
        }
        zone.put_soa_at_apex();
        if zone.record_count as u64 > limits.records_max {
            return Err(ZoneError::TooManyRecords {
                limit: limits.records_max,
            });
        }
        for key in &touched {
            if let Some(node) = zone.nodes.get(key) {
                node.check_cname()?;
            }
        }
        zone.check_apex()?;
        Ok(zone)
    }

    /// Mirrors the SOA into the apex node, so that lookups find it like any other RRset.
    fn put_soa_at_apex(&mut self) {
        let soa = RrSet {
            rtype: RecordType::SOA,
            ttl: self.soa_ttl,
            rdatas: vec![RData::SOA(self.soa.clone())],
        };
        let origin = self.origin.clone();
        let apex = self
            .nodes
            .entry(self.origin_key.clone())
            .or_insert_with(|| {
                Arc::new(Node {
                    name: origin,
                    rrsets: Vec::new(),
                })
            });
        let apex = Arc::make_mut(apex);
        apex.rrsets.retain(|set| set.rtype != RecordType::SOA);
        let index = apex
            .rrsets
            .partition_point(|set| u16::from(set.rtype) < u16::from(RecordType::SOA));
        apex.rrsets.insert(index, soa);
    }

    fn check_apex(&self) -> Result<(), ZoneError> {
        let apex = self.nodes.get(&self.origin_key);
        if apex.and_then(|n| n.rrset(RecordType::NS)).is_none() {
            return Err(ZoneError::MissingApexNs(self.origin.to_string()));
        }
        Ok(())
    }

    /// The zone apex (lowercase, fully qualified).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA serial of this version.
    pub fn serial(&self) -> u32 {
        self.soa.serial
    }

    /// The SOA record data.
    pub fn soa(&self) -> &SOA {
        &self.soa
    }

    /// The SOA as a record, owned by the apex.
    pub fn soa_record(&self) -> Record {
        Record::from_rdata(
            self.origin.clone(),
            self.soa_ttl,
            RData::SOA(self.soa.clone()),
        )
    }

    /// The SOA record to put in the authority section of negative answers: its TTL is
    /// min(SOA TTL, SOA MINIMUM) (RFC 2308 3).
    pub fn negative_soa_record(&self) -> Record {
        let mut record = self.soa_record();
        record.ttl = self.soa_ttl.min(self.soa.minimum);
        record
    }

    /// Number of records, SOA included.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// The node at exactly `name`, if it holds data.
    pub fn node(&self, name: &Name) -> Option<&Arc<Node>> {
        self.nodes.get(&NameKey::new(name))
    }

    /// True when some name strictly below `name` holds data (so `name` exists, possibly as an
    /// empty non-terminal).
    pub fn has_descendants(&self, name: &Name) -> bool {
        let key = NameKey::new(name);
        self.nodes
            .range(key.clone()..)
            .find(|(candidate, _)| **candidate != key)
            .is_some_and(|(candidate, _)| candidate.is_below(&key))
    }

    /// True when `name` is at or below the apex.
    pub fn contains(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    /// The difference from this version to `newer` (as BIND's `ixfr-from-differences`): what
    /// an IXFR client holding this version must delete and add. Untouched nodes shared between
    /// the two snapshots are skipped without comparing their contents.
    pub fn diff_to(&self, newer: &Zone) -> Diff {
        let mut deleted = Vec::new();
        let mut added = Vec::new();
        for item in self.nodes.diff(&newer.nodes) {
            match item {
                imbl::ordmap::DiffItem::Add(_, node) => added.extend(node_records(node)),
                imbl::ordmap::DiffItem::Remove(_, node) => deleted.extend(node_records(node)),
                imbl::ordmap::DiffItem::Update { old, new } => {
                    let (old, new) = (old.1, new.1);
                    if Arc::ptr_eq(old, new) {
                        continue;
                    }
                    let old_records: Vec<Record> = node_records(old).collect();
                    let new_records: Vec<Record> = node_records(new).collect();
                    // A record counts as unchanged only with the same TTL, so that a TTL change
                    // travels as delete + add, the way IXFR expresses it.
                    let same = |a: &Record, b: &Record| {
                        a.ttl == b.ttl && a.data == b.data && a.name == b.name
                    };
                    deleted.extend(
                        old_records
                            .iter()
                            .filter(|r| !new_records.iter().any(|n| same(r, n)))
                            .cloned(),
                    );
                    added.extend(
                        new_records
                            .iter()
                            .filter(|n| !old_records.iter().any(|r| same(r, n)))
                            .cloned(),
                    );
                }
            }
        }
        Diff {
            from_serial: self.serial(),
            to_soa: newer.soa_record(),
            deleted,
            added,
        }
    }

    /// Every record of the zone, SOA first, then nodes in canonical order.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        std::iter::once(self.soa_record())
            .chain(self.nodes.values().flat_map(|node| node_records(node)))
    }
}

/// The serial of an SOA record; None for any other record.
pub fn soa_serial(record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// The records of a node, without the SOA (which a `Diff` carries separately).
fn node_records(node: &Node) -> impl Iterator<Item = Record> + '_ {
    node.rrsets
        .iter()
        .filter(|set| set.rtype != RecordType::SOA)
        .flat_map(|set| set_records(set, &node.name))
}

/// Lowercased, fully qualified form of an apex name.
pub fn canonical_origin(origin: &Name) -> Name {
    let mut origin = origin.to_lowercase();
    origin.set_fqdn(true);
    origin
}

fn check_record(origin: &Name, record: &Record) -> Result<(), ZoneError> {
    if !origin.zone_of(&record.name) {
        return Err(ZoneError::OutsideZone {
            owner: record.name.to_string(),
            zone: origin.to_string(),
        });
    }
    if record.dns_class != DNSClass::IN {
        return Err(ZoneError::WrongClass {
            owner: record.name.to_string(),
            class: record.dns_class.to_string(),
        });
    }
    let rtype = record.record_type();
    if matches!(
        rtype,
        RecordType::OPT
            | RecordType::TSIG
            | RecordType::AXFR
            | RecordType::IXFR
            | RecordType::ANY
            | RecordType::SIG
    ) || matches!(record.data, RData::Update0(_))
    {
        return Err(ZoneError::MetaType {
            owner: record.name.to_string(),
            rtype: rtype.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::rdata::{A, CNAME, NS, TXT};

    use super::*;

    pub(crate) const LIMITS: ZoneLimits = ZoneLimits { records_max: 1000 };

    pub(crate) fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("test names are valid")
    }

    pub(crate) fn soa(serial: u32) -> Record {
        Record::from_rdata(
            name("example.test."),
            3600,
            RData::SOA(SOA::new(
                name("ns1.example.test."),
                name("hostmaster.example.test."),
                serial,
                7200,
                900,
                1_209_600,
                300,
            )),
        )
    }

    pub(crate) fn a(owner: &str, ip: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::A(A::from_str(ip).expect("ip")))
    }

    pub(crate) fn ns(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 3600, RData::NS(NS(name(target))))
    }

    pub(crate) fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    pub(crate) fn txt(owner: &str, text: &str) -> Record {
        Record::from_rdata(
            name(owner),
            300,
            RData::TXT(TXT::new(vec![text.to_string()])),
        )
    }

    pub(crate) fn base_records() -> Vec<Record> {
        vec![
            soa(1),
            ns("example.test.", "ns1.example.test."),
            a("ns1.example.test.", "192.0.2.1"),
            a("www.example.test.", "192.0.2.10"),
        ]
    }

    fn zone(records: Vec<Record>) -> Result<Zone, ZoneError> {
        Zone::from_records(&name("Example.TEST."), records, LIMITS)
    }

    #[test]
    fn builds_and_counts() {
        let zone = zone(base_records()).expect("valid zone");
        assert_eq!(zone.serial(), 1);
        assert_eq!(zone.record_count(), 4);
        assert_eq!(zone.origin(), &name("example.test."));
        assert!(zone.node(&name("WWW.example.test.")).is_some());
        let first = zone.records().next().expect("soa first");
        assert_eq!(first.record_type(), RecordType::SOA);
        assert_eq!(zone.records().count(), 4);
    }

    #[test]
    fn duplicates_collapse() {
        let mut records = base_records();
        records.push(a("www.example.test.", "192.0.2.10"));
        assert_eq!(zone(records).expect("valid").record_count(), 4);
    }

    #[test]
    fn rejects_invalid_data() {
        let mut outside = base_records();
        outside.push(a("www.other.test.", "192.0.2.1"));
        assert!(matches!(zone(outside), Err(ZoneError::OutsideZone { .. })));

        let mut no_soa = base_records();
        no_soa.remove(0);
        assert!(matches!(zone(no_soa), Err(ZoneError::MissingSoa(_))));

        let mut two_soa = base_records();
        two_soa.push(soa(2));
        assert!(matches!(zone(two_soa), Err(ZoneError::DuplicateSoa(_))));

        let mut cname_clash = base_records();
        cname_clash.push(cname("www.example.test.", "ns1.example.test."));
        assert!(matches!(
            zone(cname_clash),
            Err(ZoneError::CnameAndOtherData(_))
        ));

        let mut chaos = base_records();
        let mut record = a("x.example.test.", "192.0.2.3");
        record.dns_class = DNSClass::CH;
        chaos.push(record);
        assert!(matches!(zone(chaos), Err(ZoneError::WrongClass { .. })));

        let no_ns = vec![soa(1), a("www.example.test.", "192.0.2.1")];
        assert!(matches!(zone(no_ns), Err(ZoneError::MissingApexNs(_))));

        let many: Vec<Record> = base_records()
            .into_iter()
            .chain((0..2000).map(|i| a(&format!("h{i}.example.test."), "192.0.2.1")))
            .collect();
        assert!(matches!(
            zone(many),
            Err(ZoneError::TooManyRecords { limit: 1000 })
        ));
    }

    #[test]
    fn empty_non_terminals_exist_through_descendants() {
        let mut records = base_records();
        records.push(a("a.b.c.example.test.", "192.0.2.5"));
        let zone = zone(records).expect("valid");
        assert!(zone.has_descendants(&name("b.c.example.test.")));
        assert!(zone.has_descendants(&name("C.example.test.")));
        assert!(!zone.has_descendants(&name("a.b.c.example.test.")));
        assert!(!zone.has_descendants(&name("d.example.test.")));
        assert!(zone.node(&name("c.example.test.")).is_none());
        // A sibling sorting right after the key must not count as a descendant.
        assert!(!zone.has_descendants(&name("b.example.test.")));
    }

    #[test]
    fn applies_diffs_and_shares_untouched_data() {
        let old = zone(base_records()).expect("valid");
        let diff = Diff {
            from_serial: 1,
            to_soa: soa(2),
            deleted: vec![a("www.example.test.", "192.0.2.10")],
            added: vec![
                a("www.example.test.", "192.0.2.11"),
                txt("new.example.test.", "hello"),
            ],
        };
        let new = old.apply(&[diff], LIMITS).expect("applies");
        assert_eq!(new.serial(), 2);
        assert_eq!(new.record_count(), 5);
        assert_eq!(old.serial(), 1, "the old snapshot is untouched");
        let www = new.node(&name("www.example.test.")).expect("www");
        assert_eq!(www.rrsets[0].rdatas.len(), 1);
        assert!(Arc::ptr_eq(
            old.node(&name("ns1.example.test.")).expect("ns1"),
            new.node(&name("ns1.example.test.")).expect("ns1")
        ));
    }

    #[test]
    fn diff_failures_fall_back() {
        let old = zone(base_records()).expect("valid");
        let wrong_start = Diff {
            from_serial: 5,
            to_soa: soa(6),
            deleted: vec![],
            added: vec![],
        };
        assert!(matches!(
            old.apply(&[wrong_start], LIMITS),
            Err(ZoneError::SerialChainBroken { .. })
        ));
        let missing = Diff {
            from_serial: 1,
            to_soa: soa(2),
            deleted: vec![a("nothere.example.test.", "192.0.2.99")],
            added: vec![],
        };
        assert!(matches!(
            old.apply(&[missing], LIMITS),
            Err(ZoneError::DeleteMissing(_))
        ));
        let clash = Diff {
            from_serial: 1,
            to_soa: soa(2),
            deleted: vec![],
            added: vec![cname("www.example.test.", "ns1.example.test.")],
        };
        assert!(matches!(
            old.apply(&[clash], LIMITS),
            Err(ZoneError::CnameAndOtherData(_))
        ));
        let chain = [
            Diff {
                from_serial: 1,
                to_soa: soa(2),
                deleted: vec![],
                added: vec![txt("t.example.test.", "one")],
            },
            Diff {
                from_serial: 2,
                to_soa: soa(3),
                deleted: vec![txt("t.example.test.", "one")],
                added: vec![],
            },
        ];
        let new = old.apply(&chain, LIMITS).expect("chain applies");
        assert_eq!(new.serial(), 3);
        assert!(
            new.node(&name("t.example.test.")).is_none(),
            "empty node removed"
        );
    }

    #[test]
    fn diff_between_versions_applies_back() {
        let old = zone(base_records()).expect("valid");
        let mut records = base_records();
        records[0] = soa(2);
        records.retain(|r| r.name != name("www.example.test."));
        records.push(a("www.example.test.", "192.0.2.11"));
        let mut longer = a("ns1.example.test.", "192.0.2.1");
        longer.ttl = 999;
        records.retain(|r| r.name != name("ns1.example.test."));
        records.push(longer);
        records.push(txt("new.example.test.", "hello"));
        let new = zone(records).expect("valid");
        let diff = old.diff_to(&new);
        assert_eq!(diff.from_serial, 1);
        assert_eq!(
            diff.deleted.len(),
            2,
            "old www address and ns1 with its old TTL"
        );
        assert_eq!(diff.added.len(), 3);
        let rebuilt = old.apply(&[diff], LIMITS).expect("the diff applies");
        assert_eq!(
            rebuilt.records().collect::<Vec<_>>(),
            new.records().collect::<Vec<_>>()
        );
        assert!(new.diff_to(&new).added.is_empty());
    }
}
