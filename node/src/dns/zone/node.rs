//! One owner name and its RRsets in wire form (`Node`), and nodes under change (`NodeBuilder`).

use std::fmt;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

use super::*;
use crate::dns::name::*;

/// Bytes before the RRsets of a node: the owner name's length.
const NAME_LEN_BYTES: usize = 1;
/// Bytes of an RRset header in a node: type (2), TTL (4), record count (2), body length (4).
const SET_HEADER: usize = 12;

/// One owner name and all its RRsets, in wire format, in one shared allocation.
///
/// Layout: name length (1 byte), the owner name (uncompressed wire form, case as received),
/// then RRsets ordered by type code, each a header (type u16, TTL u32, count u16, body length
/// u32, big-endian) and a body of `count` RDATAs, each prefixed by its u16 length.
#[derive(Clone, PartialEq, Eq)]
pub struct Node(Arc<[u8]>);

/// One RRset of a node, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RrSetRef<'a> {
    /// The record type.
    pub rtype: RecordType,
    /// The TTL of the set (RFC 2181 5.2: one TTL per RRset).
    pub ttl: u32,
    count: u16,
    body: &'a [u8],
}

impl<'a> RrSetRef<'a> {
    /// Number of records in the set.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// True when the set holds no record (never for a stored set).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The RDATAs in wire form (names uncompressed).
    pub fn rdatas(&self) -> RdataIter<'a> {
        RdataIter { rest: self.body }
    }

    /// The records of the set with owner `owner`, decoded (slow path).
    pub fn records(&self, owner: &Name) -> Vec<Record> {
        self.rdatas()
            .filter_map(|wire| decode_rdata(self.rtype, wire).ok())
            .map(|data| Record::from_rdata(owner.clone(), self.ttl, data))
            .collect()
    }
}

/// Iterator over the RDATAs of one RRset.
#[derive(Clone)]
pub struct RdataIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RdataIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (length, rest) = self.rest.split_first_chunk::<2>()?;
        let length = usize::from(u16::from_be_bytes(*length));
        let (data, rest) = rest.split_at_checked(length)?;
        self.rest = rest;
        Some(data)
    }
}

/// Iterator over the RRsets of one node.
pub struct RrSetIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RrSetIter<'a> {
    type Item = RrSetRef<'a>;

    fn next(&mut self) -> Option<RrSetRef<'a>> {
        let (header, rest) = self.rest.split_first_chunk::<SET_HEADER>()?;
        let rtype = u16::from_be_bytes([header[0], header[1]]);
        let ttl = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        let count = u16::from_be_bytes([header[6], header[7]]);
        let length = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let (body, rest) = rest.split_at_checked(length)?;
        self.rest = rest;
        Some(RrSetRef {
            rtype: RecordType::from(rtype),
            ttl,
            count,
            body,
        })
    }
}

impl Node {
    /// The owner name in uncompressed wire form, case as received.
    pub fn name_wire(&self) -> &[u8] {
        let length = usize::from(self.0[0]);
        &self.0[NAME_LEN_BYTES..NAME_LEN_BYTES + length]
    }

    /// The owner name (decoded; slow path).
    pub fn name(&self) -> Name {
        name_from_wire(self.name_wire()).unwrap_or_else(Name::root)
    }

    /// The RRsets, ordered by type code.
    pub fn rrsets(&self) -> RrSetIter<'_> {
        let start = NAME_LEN_BYTES + usize::from(self.0[0]);
        RrSetIter {
            rest: &self.0[start..],
        }
    }

    /// The RRset of the given type, if the node has one.
    pub fn rrset(&self, rtype: RecordType) -> Option<RrSetRef<'_>> {
        self.rrsets().find(|set| set.rtype == rtype)
    }

    /// True when both values are the same shared allocation (an untouched node).
    pub fn ptr_eq(&self, other: &Node) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The node's bytes (the store writes them as they are).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Checks stored bytes and makes a node of them (the store reads them back).
    pub fn from_bytes(bytes: &[u8]) -> Result<Node, ZoneError> {
        let bad = |what: &str| ZoneError::Malformed(format!("stored node: {what}"));
        let name_length = usize::from(*bytes.first().ok_or_else(|| bad("empty"))?);
        let name = bytes
            .get(NAME_LEN_BYTES..NAME_LEN_BYTES + name_length)
            .ok_or_else(|| bad("name cut short"))?;
        check_name_wire(name).ok_or_else(|| bad("bad owner name"))?;
        let node = Node(Arc::from(bytes));
        let mut seen = 0;
        let mut last_type = None;
        let mut iter = node.rrsets();
        for set in iter.by_ref() {
            if last_type.is_some_and(|last| last >= u16::from(set.rtype)) {
                return Err(bad("RRsets out of order"));
            }
            last_type = Some(u16::from(set.rtype));
            let mut rdatas = set.rdatas();
            let count = rdatas.by_ref().count();
            if count != set.len() || count == 0 || !rdatas.rest.is_empty() {
                return Err(bad("RRset body does not match its count"));
            }
            seen += 1;
        }
        if !iter.rest.is_empty() || seen == 0 {
            return Err(bad("trailing or missing RRsets"));
        }
        Ok(node)
    }

    /// Number of records in the node.
    pub(super) fn record_count(&self) -> usize {
        self.rrsets().map(|set| set.len()).sum()
    }

    pub(super) fn check_cname(&self) -> Result<(), ZoneError> {
        let Some(cname) = self.rrset(RecordType::CNAME) else {
            return Ok(());
        };
        // DNSSEC records may accompany a CNAME (RFC 4035 2.5); nothing else may.
        let others = self.rrsets().any(|set| {
            !matches!(
                set.rtype,
                RecordType::CNAME | RecordType::RRSIG | RecordType::NSEC
            )
        });
        if others || cname.len() > 1 {
            return Err(ZoneError::CnameAndOtherData(self.name().to_string()));
        }
        Ok(())
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<String> = self.rrsets().map(|set| set.rtype.to_string()).collect();
        write!(f, "Node({} {})", self.name(), types.join(","))
    }
}

/// A node being changed: RRsets as owned RDATA lists. Frozen into a [`Node`] when done.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct NodeBuilder {
    pub(super) name: Vec<u8>,
    pub(super) sets: Vec<SetBuilder>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct SetBuilder {
    pub(super) rtype: u16,
    pub(super) ttl: u32,
    pub(super) rdatas: Vec<Box<[u8]>>,
}

impl NodeBuilder {
    pub(super) fn new(name: Vec<u8>) -> Self {
        Self {
            name,
            sets: Vec::new(),
        }
    }

    pub(super) fn from_node(node: &Node) -> Self {
        Self {
            name: node.name_wire().to_vec(),
            sets: node
                .rrsets()
                .map(|set| SetBuilder {
                    rtype: u16::from(set.rtype),
                    ttl: set.ttl,
                    rdatas: set.rdatas().map(Box::from).collect(),
                })
                .collect(),
        }
    }

    /// Adds one record; returns false when it was already present.
    pub(super) fn insert(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        match self.sets.binary_search_by_key(&rtype, |s| s.rtype) {
            Ok(index) => {
                let set = &mut self.sets[index];
                // An RRset has one TTL (RFC 2181 5.2): the record seen last sets it, so an
                // IXFR that adds a record with a new TTL moves the whole set to it.
                set.ttl = ttl;
                if set.rdatas.iter().any(|d| rdata_eq(rtype, d, rdata)) {
                    return false;
                }
                set.rdatas.push(Box::from(rdata));
                true
            }
            Err(index) => {
                self.sets.insert(
                    index,
                    SetBuilder {
                        rtype,
                        ttl,
                        rdatas: vec![Box::from(rdata)],
                    },
                );
                true
            }
        }
    }

    /// Replaces the whole RRset of `rtype` by one record.
    pub(super) fn replace(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) {
        self.sets.retain(|set| set.rtype != rtype);
        self.insert(rtype, ttl, rdata);
    }

    /// Removes one record; returns false when it was not present.
    pub(super) fn remove(&mut self, rtype: u16, rdata: &[u8]) -> bool {
        let Ok(index) = self.sets.binary_search_by_key(&rtype, |s| s.rtype) else {
            return false;
        };
        let set = &mut self.sets[index];
        let Some(position) = set.rdatas.iter().position(|d| rdata_eq(rtype, d, rdata)) else {
            return false;
        };
        set.rdatas.remove(position);
        if set.rdatas.is_empty() {
            self.sets.remove(index);
        }
        true
    }

    pub(super) fn merge(&mut self, other: &Node) -> usize {
        let mut added = 0;
        for set in other.rrsets() {
            for rdata in set.rdatas() {
                added += usize::from(self.insert(u16::from(set.rtype), set.ttl, rdata));
            }
        }
        added
    }

    pub(super) fn freeze(&self) -> Node {
        let mut size = NAME_LEN_BYTES + self.name.len();
        for set in &self.sets {
            size += SET_HEADER + set.rdatas.iter().map(|d| 2 + d.len()).sum::<usize>();
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.push(self.name.len() as u8);
        bytes.extend_from_slice(&self.name);
        for set in &self.sets {
            let body: usize = set.rdatas.iter().map(|d| 2 + d.len()).sum();
            bytes.extend_from_slice(&set.rtype.to_be_bytes());
            bytes.extend_from_slice(&set.ttl.to_be_bytes());
            bytes.extend_from_slice(&(set.rdatas.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&(body as u32).to_be_bytes());
            for rdata in &set.rdatas {
                bytes.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                bytes.extend_from_slice(rdata);
            }
        }
        Node(Arc::from(bytes))
    }
}

/// Two RDATAs are the same record when their bytes are equal, or, for types whose RDATA holds
/// names, when they decode to equal values (names compare case-insensitively, RFC 4343).
fn rdata_eq(rtype: u16, a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    if a.len() != b.len() || !a.eq_ignore_ascii_case(b) {
        return false;
    }
    let rtype = RecordType::from(rtype);
    match (decode_rdata(rtype, a), decode_rdata(rtype, b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Decodes one RDATA from wire form.
pub fn decode_rdata(rtype: RecordType, wire: &[u8]) -> Result<RData, ZoneError> {
    let length =
        u16::try_from(wire.len()).map_err(|_| ZoneError::Malformed("RDATA too long".into()))?;
    let mut decoder = BinDecoder::new(wire);
    let data = RData::read(&mut decoder, rtype, Restrict::new(length))
        .map_err(|error| ZoneError::Malformed(format!("{rtype} RDATA: {error}")))?;
    if !decoder.is_empty() {
        return Err(ZoneError::Malformed(format!(
            "{rtype} RDATA has trailing bytes"
        )));
    }
    Ok(data)
}

/// Encodes one RDATA in wire form with uncompressed names, case unchanged.
pub fn encode_rdata(data: &RData) -> Result<Vec<u8>, ZoneError> {
    let mut bytes = Vec::with_capacity(32);
    encode_rdata_into(data, &mut bytes)?;
    Ok(bytes)
}

/// Encodes one RDATA into `bytes` (cleared first), reusing its allocation.
pub(super) fn encode_rdata_into(data: &RData, bytes: &mut Vec<u8>) -> Result<(), ZoneError> {
    bytes.clear();
    let mut encoder = BinEncoder::new(bytes);
    let mut encoder = encoder.with_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder)
        .map_err(|error| ZoneError::Malformed(error.to_string()))?;
    Ok(())
}
