//! Differences between versions (RFC 1995): `Diff`, `JournalChain`, applying a diff to a zone
//! and computing one between two zones.

use std::collections::BTreeMap;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::builder::{WireRecord, wire_record};
use super::map::Change;
use super::*;
use crate::dns::name::*;

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

impl Diff {
    /// Records deleted plus records added.
    pub fn size(&self) -> usize {
        self.deleted.len() + self.added.len()
    }
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

impl Zone {
    /// Applies IXFR differences in order and returns the new snapshot; `self` is unchanged.
    ///
    /// Fails (so the caller falls back to AXFR) when the serial chain does not join or a
    /// deletion names a record the zone does not hold (RFC 1995 4).
    pub fn apply(&self, diffs: &[Diff], limits: ZoneLimits) -> Result<Zone, ZoneError> {
        let mut zone = self.clone();
        // Touched nodes are changed as builders and frozen once at the end.
        let mut pending: BTreeMap<NameKey, NodeBuilder> = BTreeMap::new();
        let mut builder = |zone: &Zone, name: &Name| -> NameKey {
            let key = NameKey::relative(NameKey::new(name).as_bytes(), &zone.origin_key);
            if !pending.contains_key(&key) {
                let builder = match zone.nodes.get(&key) {
                    Some(node) => NodeBuilder::from_node(node),
                    None => NodeBuilder::new(name_wire(name)),
                };
                pending.insert(key.clone(), builder);
            }
            key
        };
        let mut edits: Vec<(NameKey, bool, WireRecord, usize)> = Vec::new();
        for (index, diff) in diffs.iter().enumerate() {
            for record in &diff.deleted {
                let key = builder(&zone, &record.name);
                edits.push((key, false, wire_record(&zone.origin, record)?, index));
            }
            for record in &diff.added {
                if matches!(record.data, RData::SOA(_)) {
                    return Err(ZoneError::DuplicateSoa(zone.origin.to_string()));
                }
                let key = builder(&zone, &record.name);
                edits.push((key, true, wire_record(&zone.origin, record)?, index));
            }
        }
        let mut serial = zone.soa.serial;
        let mut edits = edits.into_iter().peekable();
        for (index, diff) in diffs.iter().enumerate() {
            if diff.from_serial != serial {
                return Err(ZoneError::SerialChainBroken {
                    current: serial,
                    diff_from: diff.from_serial,
                });
            }
            while let Some((key, add, record, _)) = edits.next_if(|edit| edit.3 == index) {
                let node = pending
                    .get_mut(&key)
                    .expect("every edited key has a builder");
                if add {
                    if node.insert(record.rtype, record.ttl, &record.rdata) {
                        zone.record_count += 1;
                    }
                } else if node.remove(record.rtype, &record.rdata) {
                    zone.record_count -= 1;
                } else {
                    let owner = name_from_wire(&node.name).unwrap_or_else(Name::root);
                    let rtype = RecordType::from(record.rtype);
                    let data = decode_rdata(rtype, &record.rdata)
                        .map(|d| d.to_string())
                        .unwrap_or_default();
                    return Err(ZoneError::DeleteMissing(format!("{owner} {rtype} {data}")));
                }
            }
            let RData::SOA(new_soa) = &diff.to_soa.data else {
                return Err(ZoneError::MissingSoa(zone.origin.to_string()));
            };
            serial = new_soa.serial;
            zone.soa = new_soa.clone();
            zone.soa_ttl = diff.to_soa.ttl;
        }
        let mut touched = Vec::with_capacity(pending.len());
        for (key, builder) in pending {
            // The SOA RRset of the apex is put back from `zone.soa` below.
            if builder.sets.is_empty()
                || (key.0.is_empty()
                    && builder
                        .sets
                        .iter()
                        .all(|s| s.rtype == u16::from(RecordType::SOA)))
            {
                zone.nodes.remove(&key);
            } else {
                let node = builder.freeze();
                node.check_cname()?;
                // The flags only ever turn on here: a stale `true` costs a search, never an
                // answer.
                let (wildcard, cut) = search_flags(&key, &node);
                zone.has_wildcards |= wildcard;
                zone.has_cuts |= cut;
                zone.nodes.insert(key.clone(), node);
            }
            touched.push(key);
        }
        zone.put_soa_at_apex()?;
        if zone.record_count as u64 > limits.records_max {
            return Err(ZoneError::TooManyRecords {
                limit: limits.records_max,
            });
        }
        zone.check_apex()?;
        Ok(zone)
    }

    /// The difference from this version to `newer` (as BIND's `ixfr-from-differences`): what
    /// an IXFR client holding this version must delete and add. Untouched nodes shared between
    /// the two snapshots are skipped without comparing their contents.
    pub fn diff_to(&self, newer: &Zone) -> Diff {
        self.diff_within(newer, usize::MAX)
            .expect("no limit on the difference")
    }

    /// Like `diff_to`, but gives up (None) once the difference holds more than `max_records`
    /// records: a change that large is better sent AXFR-style, and building it would hold a
    /// second copy of much of the zone as decoded records.
    pub fn diff_within(&self, newer: &Zone, max_records: usize) -> Option<Diff> {
        let mut deleted = Vec::new();
        let mut added = Vec::new();
        // Every changed name is at least one changed record: count them before decoding any.
        for item in self.nodes.diff(&newer.nodes, max_records)? {
            if deleted.len() + added.len() > max_records {
                return None;
            }
            match item {
                Change::Add(node) => added.extend(node_records(node)),
                Change::Remove(node) => deleted.extend(node_records(node)),
                Change::Update(old, new) => {
                    if old.ptr_eq(new) || old == new {
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
        (deleted.len() + added.len() <= max_records).then(|| Diff {
            from_serial: self.serial(),
            to_soa: newer.soa_record(),
            deleted,
            added,
        })
    }
}
