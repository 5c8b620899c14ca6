//! `ZoneBuilder`: a zone received record by record (AXFR), put into wire form as it arrives.

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};

use super::node::encode_rdata_into;
use super::*;
use crate::dns::name::*;

/// A zone being received record by record (an AXFR): each record goes into wire form as it
/// arrives, so a transfer never holds the whole zone as decoded records.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneBuilder {
    origin: Name,
    origin_key: Box<[u8]>,
    limits: ZoneLimits,
    /// Nodes that arrived in key order (as transfers send them), inserted as they complete so
    /// that building the map overlaps the transfer.
    nodes: NodeMap,
    /// The largest key in `nodes`.
    last_key: Option<NameKey>,
    /// Nodes that arrived out of order, or whose owner came back later: merged at the end.
    stragglers: Vec<(NameKey, Node)>,
    current: Option<(Name, NodeBuilder)>,
    soa: Option<(u32, SOA)>,
    record_count: usize,
    /// Reused for each record's RDATA.
    scratch: Vec<u8>,
}

impl ZoneBuilder {
    /// An empty zone of apex `origin`.
    pub fn new(origin: &Name, limits: ZoneLimits) -> ZoneBuilder {
        let origin = canonical_origin(origin);
        ZoneBuilder {
            origin_key: Box::from(NameKey::new(&origin).as_bytes()),
            origin,
            limits,
            nodes: NodeMap::new(),
            last_key: None,
            stragglers: Vec::new(),
            current: None,
            soa: None,
            record_count: 0,
            scratch: Vec::with_capacity(256),
        }
    }

    /// Records taken so far (duplicates counted once), the SOA included.
    pub fn records(&self) -> usize {
        self.record_count + usize::from(self.soa.is_some())
    }

    /// Adds one record, checking what can be checked alone.
    pub fn push(&mut self, record: &Record) -> Result<(), ZoneError> {
        let origin = &self.origin;
        if let RData::SOA(data) = &record.data {
            check_record(origin, record)?;
            if !record.name.eq_ignore_root(origin) {
                return Err(ZoneError::SoaNotAtApex(record.name.to_string()));
            }
            if self.soa.is_some() {
                return Err(ZoneError::DuplicateSoa(origin.to_string()));
            }
            self.soa = Some((record.ttl, data.clone()));
            return Ok(());
        }
        check_record(origin, record)?;
        encode_rdata_into(&record.data, &mut self.scratch)?;
        let same_owner = self
            .current
            .as_ref()
            .is_some_and(|(name, _)| *name == record.name);
        if !same_owner {
            self.finish_node();
            self.current = Some((
                record.name.clone(),
                NodeBuilder::new(name_wire(&record.name)),
            ));
        }
        let (_, builder) = self.current.as_mut().expect("set above");
        let rtype = u16::from(record.record_type());
        if builder.insert(rtype, record.ttl, &self.scratch) {
            self.record_count += 1;
            if self.record_count as u64 + 1 > self.limits.records_max {
                return Err(ZoneError::TooManyRecords {
                    limit: self.limits.records_max,
                });
            }
        }
        Ok(())
    }

    /// Moves the node being built to the built ones.
    fn finish_node(&mut self) {
        if let Some((_, builder)) = self.current.take() {
            let key =
                NameKey::relative(KeyBuf::of_wire(&builder.name).as_slice(), &self.origin_key);
            let node = builder.freeze();
            if self.last_key.as_ref().is_none_or(|last| key > *last) {
                self.last_key = Some(key.clone());
                self.nodes.push_last(key, node);
            } else {
                self.stragglers.push((key, node));
            }
        }
    }

    /// Validates the whole and makes the zone snapshot.
    pub fn finish(mut self) -> Result<Zone, ZoneError> {
        self.finish_node();
        let Some((soa_ttl, soa)) = self.soa else {
            return Err(ZoneError::MissingSoa(self.origin.to_string()));
        };
        let mut record_count = self.record_count;
        // Owners that came in more than one run are merged; duplicates across runs count once.
        let mut nodes = self.nodes;
        nodes.shrink_last();
        for (key, node) in self.stragglers {
            match nodes.get(&key) {
                Some(existing) => {
                    let mut builder = NodeBuilder::from_node(existing);
                    let before = node.record_count();
                    let added = builder.merge(&node);
                    record_count -= before - added;
                    nodes.insert(key, builder.freeze());
                }
                None => {
                    nodes.insert(key, node);
                }
            }
        }
        Zone::finish(self.origin, nodes, soa_ttl, soa, record_count + 1)
    }
}

/// A record split into the parts a node stores.
pub(super) struct WireRecord {
    pub(super) rtype: u16,
    pub(super) ttl: u32,
    pub(super) rdata: Vec<u8>,
}

pub(super) fn wire_record(origin: &Name, record: &Record) -> Result<WireRecord, ZoneError> {
    check_record(origin, record)?;
    Ok(WireRecord {
        rtype: u16::from(record.record_type()),
        ttl: record.ttl,
        rdata: encode_rdata(&record.data)?,
    })
}
