//! The zone model: an immutable, validated snapshot of one zone's data, and the operations that
//! derive a new snapshot from an old one (applying IXFR differences).
//!
//! A `Zone` is built only through [`Zone::from_records`], [`Zone::from_nodes`] or
//! [`Zone::apply`], all of which validate: a snapshot that exists is servable. This module does
//! no I/O and knows nothing about where records came from; lookups that answer queries live in
//! `lookup`.
//!
//! Data is kept in wire format, the form answers are written in: one [`Node`] per owner name is
//! a single shared allocation holding the owner name and its RRsets (type, TTL, RDATA with
//! uncompressed names in the case received). Nodes sit in sorted runs behind shared pointers
//! (`NodeMap`), keyed by [`NameKey`], so applying a small diff to a large zone shares almost all
//! of the old snapshot instead of copying it. hickory `Record`s are made from nodes only
//! where a slow path needs them (transfers out, diffs, the store's checks).

use std::fmt;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

mod builder;
mod diff;
mod map;
mod node;

use crate::dns::name::*;
pub use builder::ZoneBuilder;
pub use diff::{Diff, JournalChain};
use map::NodeMap;
use node::NodeBuilder;
pub use node::{Node, RdataIter, RrSetIter, RrSetRef, decode_rdata, encode_rdata};

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
    /// A record could not be put into wire form, or stored wire data does not parse.
    #[error("malformed record data: {0}")]
    Malformed(String),
}

/// Limits a zone snapshot must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLimits {
    /// Most records in one zone.
    pub records_max: u64,
}

/// An immutable, validated snapshot of one zone.
#[derive(Clone)]
pub struct Zone {
    origin: Name,
    /// The apex's key from the root; the map's keys are relative to it.
    origin_key: Box<[u8]>,
    nodes: NodeMap,
    soa_ttl: u32,
    soa: SOA,
    record_count: usize,
    /// False only when no name below the apex has NS records (no zone cut to look for).
    has_cuts: bool,
    /// False only when no wildcard name exists (no synthesis to look for).
    has_wildcards: bool,
}

/// Whether a node makes lookups search for wildcards (a `*` name) or zone cuts (NS below the
/// apex), given its relative key.
fn search_flags(key: &NameKey, node: &Node) -> (bool, bool) {
    let cut = !key.0.is_empty() && node.rrset(RecordType::NS).is_some();
    (key_is_wildcard(key.as_bytes()), cut)
}

/// True when the name of `key` is a wildcard (its first label is `*`).
fn key_is_wildcard(key: &[u8]) -> bool {
    key.ends_with(b"*\0") && (key.len() == 2 || key[key.len() - 3] == 0)
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
    /// Builds and validates a zone from records in any order (SOA included). Records that
    /// arrive grouped by owner (as transfers and files have them) are built in one pass.
    pub fn from_records(
        origin: &Name,
        records: impl IntoIterator<Item = Record>,
        limits: ZoneLimits,
    ) -> Result<Zone, ZoneError> {
        let mut builder = ZoneBuilder::new(origin, limits);
        for record in records {
            builder.push(&record)?;
        }
        builder.finish()
    }

    /// Builds and validates a zone from nodes (as the store keeps them), SOA included in the
    /// apex node.
    pub fn from_nodes(
        origin: &Name,
        nodes: impl IntoIterator<Item = Node>,
        limits: ZoneLimits,
    ) -> Result<Zone, ZoneError> {
        let origin = canonical_origin(origin);
        let origin_key = NameKey::new(&origin);
        let origin_key = origin_key.as_bytes();
        let mut map = NodeMap::new();
        let mut last: Option<NameKey> = None;
        let mut record_count = 0usize;
        let mut soa = None;
        for node in nodes {
            let full = KeyBuf::of_wire(node.name_wire());
            let full = full.as_slice();
            if full != origin_key && !key_is_below(full, origin_key) {
                return Err(ZoneError::OutsideZone {
                    owner: node.name().to_string(),
                    zone: origin.to_string(),
                });
            }
            if let Some(set) = node.rrset(RecordType::SOA) {
                if full != origin_key {
                    return Err(ZoneError::SoaNotAtApex(node.name().to_string()));
                }
                let Some(RData::SOA(data)) = set
                    .rdatas()
                    .next()
                    .and_then(|w| decode_rdata(RecordType::SOA, w).ok())
                else {
                    return Err(ZoneError::MissingSoa(origin.to_string()));
                };
                soa = Some((set.ttl, data));
            }
            record_count += node.record_count();
            if record_count as u64 > limits.records_max {
                return Err(ZoneError::TooManyRecords {
                    limit: limits.records_max,
                });
            }
            let key = NameKey::relative(full, origin_key);
            // The store writes nodes in key order: append them; anything else is inserted.
            if last.as_ref().is_none_or(|last| key > *last) {
                last = Some(key.clone());
                map.push_last(key, node);
            } else if map.insert(key, node).is_some() {
                return Err(ZoneError::Malformed("an owner name stored twice".into()));
            }
        }
        map.shrink_last();
        let Some((soa_ttl, soa)) = soa else {
            return Err(ZoneError::MissingSoa(origin.to_string()));
        };
        // The apex node's SOA is counted already; `finish` only rewrites it.
        Self::finish(origin, map, soa_ttl, soa, record_count)
    }

    fn finish(
        origin: Name,
        nodes: NodeMap,
        soa_ttl: u32,
        soa: SOA,
        record_count: usize,
    ) -> Result<Zone, ZoneError> {
        let mut zone = Zone {
            origin_key: Box::from(NameKey::new(&origin).as_bytes()),
            origin,
            nodes,
            soa_ttl,
            soa,
            record_count,
            has_cuts: false,
            has_wildcards: false,
        };
        let (mut wildcards, mut cuts) = (false, false);
        for (key, node) in zone.nodes.iter() {
            let (wildcard, cut) = search_flags(key, node);
            wildcards |= wildcard;
            cuts |= cut;
        }
        (zone.has_wildcards, zone.has_cuts) = (wildcards, cuts);
        zone.put_soa_at_apex()?;
        for node in zone.nodes.values() {
            node.check_cname()?;
        }
        zone.check_apex()?;
        Ok(zone)
    }

    /// Mirrors the SOA into the apex node, so that lookups find it like any other RRset.
    fn put_soa_at_apex(&mut self) -> Result<(), ZoneError> {
        let rdata = encode_rdata(&RData::SOA(self.soa.clone()))?;
        let mut builder = match self.nodes.get(&NameKey::default()) {
            Some(apex) => NodeBuilder::from_node(apex),
            None => NodeBuilder::new(name_wire(&self.origin)),
        };
        builder.replace(u16::from(RecordType::SOA), self.soa_ttl, &rdata);
        self.nodes.insert(NameKey::default(), builder.freeze());
        Ok(())
    }

    fn check_apex(&self) -> Result<(), ZoneError> {
        let apex = self.nodes.get(&NameKey::default());
        if apex.and_then(|n| n.rrset(RecordType::NS)).is_none() {
            return Err(ZoneError::MissingApexNs(self.origin.to_string()));
        }
        Ok(())
    }

    /// The zone apex (lowercase, fully qualified).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The key of the apex.
    pub fn origin_key(&self) -> &[u8] {
        &self.origin_key
    }

    /// The apex node (it always exists: it holds the SOA and NS RRsets).
    pub fn apex(&self) -> &Node {
        self.nodes
            .get(&NameKey::default())
            .expect("a valid zone has an apex node")
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

    /// The TTL of the SOA in negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 3).
    pub fn negative_ttl(&self) -> u32 {
        self.soa_ttl.min(self.soa.minimum)
    }

    /// Number of records, SOA included.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// False only when the zone has no delegation (a zone cut below the apex).
    pub fn has_cuts(&self) -> bool {
        self.has_cuts
    }

    /// False only when the zone has no wildcard name.
    pub fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }

    /// The node at exactly `name`, if it holds data.
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.node_by_key(NameKey::new(name).as_bytes())
    }

    /// The node whose key is `key` (see [`key_of_wire`]).
    pub fn node_by_key(&self, key: &[u8]) -> Option<&Node> {
        let relative = key.strip_prefix(&*self.origin_key)?;
        self.nodes.get(&NameKey::from_slice(relative))
    }

    /// True when some name strictly below the name of `key` holds data.
    pub fn has_descendants_key(&self, key: &[u8]) -> bool {
        let Some(relative) = key.strip_prefix(&*self.origin_key) else {
            return false;
        };
        self.nodes
            .next_after(&NameKey::from_slice(relative))
            .is_some_and(|(candidate, _)| key_is_below(candidate.as_bytes(), relative))
    }

    /// True when some name strictly below `name` holds data (so `name` exists, possibly as an
    /// empty non-terminal).
    pub fn has_descendants(&self, name: &Name) -> bool {
        self.has_descendants_key(NameKey::new(name).as_bytes())
    }

    /// True when the name of `key` is at or below the apex.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        key.starts_with(&self.origin_key)
    }

    /// Every node in canonical order (the apex first).
    pub fn nodes(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.values()
    }

    /// Every record of the zone, SOA first, then nodes in canonical order.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        std::iter::once(self.soa_record()).chain(self.nodes.values().flat_map(node_records))
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
    let owner = node.name();
    let sets: Vec<RrSetRef<'_>> = node
        .rrsets()
        .filter(|set| set.rtype != RecordType::SOA)
        .collect();
    sets.into_iter().flat_map(move |set| set.records(&owner))
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
    use std::collections::BTreeMap;
    use std::ops::Bound;
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
    fn node_map_matches_an_ordered_map_under_random_changes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let node = |i: u32| {
            let mut builder = NodeBuilder::new(name_wire(&name(&format!("h{i}.example.test."))));
            builder.insert(1, 300, &i.to_be_bytes());
            builder.freeze()
        };
        let key = |i: u32| NameKey::from_slice(format!("h{i:05}\0").as_bytes());
        let mut model = BTreeMap::new();
        let mut map = NodeMap::new();
        // Built in order first, then changed at random, keeping every version to diff.
        for i in (0..2000).step_by(2) {
            map.push_last(key(i), node(i));
            model.insert(key(i), node(i));
        }
        for _ in 0..20 {
            let before = (map.clone(), model.clone());
            for _ in 0..200 {
                let i = rng.random_range(0..2100);
                if rng.random_bool(0.5) {
                    assert_eq!(
                        map.insert(key(i), node(i)).is_some(),
                        model.insert(key(i), node(i)).is_some()
                    );
                } else {
                    map.remove(&key(i));
                    model.remove(&key(i));
                }
            }
            assert_eq!(map.len(), model.len());
            assert!(map.iter().map(|(k, _)| k).eq(model.keys()));
            for i in 0..2100 {
                assert_eq!(map.get(&key(i)), model.get(&key(i)));
                assert_eq!(
                    map.next_after(&key(i)).map(|(k, _)| k),
                    model
                        .range((Bound::Excluded(key(i)), Bound::Unbounded))
                        .next()
                        .map(|(k, _)| k)
                );
            }
            // The diff from the previous version names exactly the keys that differ.
            let (old_map, old_model) = before;
            let changed = old_map.diff(&map, usize::MAX).expect("no limit").len();
            let expected = old_model
                .keys()
                .chain(model.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| match (old_model.get(*k), model.get(*k)) {
                    (Some(a), Some(b)) => !a.ptr_eq(b),
                    _ => true,
                })
                .count();
            assert_eq!(changed, expected);
        }
    }

    #[test]
    fn parent_keys_drop_the_last_label() {
        let key = NameKey::new(&name("a.b.example.test."));
        let parent = NameKey::new(&name("b.example.test."));
        assert_eq!(parent_key(key.as_bytes()), parent.as_bytes());
        let top = NameKey::new(&name("test."));
        assert_eq!(parent_key(top.as_bytes()), b"");
        assert_eq!(parent_key(b""), b"");
        // A 0 byte inside a label is escaped, so it never looks like a label end.
        let odd = NameKey::from_wire(b"\x03a\x00b\x04test\x00");
        assert_eq!(parent_key(odd.as_bytes()), b"test\0");
    }

    #[test]
    fn key_order_is_byte_order() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"ab",
            b"ab\0",
            b"ab\0x",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"b",
            b"test\0h1\0",
            b"test\0h10\0",
            b"test\0h1\0x\0",
        ];
        for a in &keys {
            for b in &keys {
                let (ka, kb) = (NameKey::from_slice(a), NameKey::from_slice(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
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
        assert_eq!(www.rrsets().next().expect("a set").len(), 1);
        assert!(
            old.node(&name("ns1.example.test."))
                .expect("ns1")
                .ptr_eq(new.node(&name("ns1.example.test.")).expect("ns1"))
        );
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
