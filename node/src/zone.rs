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

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};
use smallvec::SmallVec;

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
        name_from_wire(self.name_wire()).unwrap_or_else(|_| Name::root())
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
    fn record_count(&self) -> usize {
        self.rrsets().map(|set| set.len()).sum()
    }

    fn check_cname(&self) -> Result<(), ZoneError> {
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
struct NodeBuilder {
    name: Vec<u8>,
    sets: Vec<SetBuilder>,
}

#[derive(Clone, Debug, PartialEq)]
struct SetBuilder {
    rtype: u16,
    ttl: u32,
    rdatas: Vec<Box<[u8]>>,
}

impl NodeBuilder {
    fn new(name: Vec<u8>) -> Self {
        Self {
            name,
            sets: Vec::new(),
        }
    }

    fn from_node(node: &Node) -> Self {
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
    fn insert(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
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
    fn replace(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) {
        self.sets.retain(|set| set.rtype != rtype);
        self.insert(rtype, ttl, rdata);
    }

    /// Removes one record; returns false when it was not present.
    fn remove(&mut self, rtype: u16, rdata: &[u8]) -> bool {
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

    fn merge(&mut self, other: &Node) -> usize {
        let mut added = 0;
        for set in other.rrsets() {
            for rdata in set.rdatas() {
                added += usize::from(self.insert(u16::from(set.rtype), set.ttl, rdata));
            }
        }
        added
    }

    fn freeze(&self) -> Node {
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
fn encode_rdata_into(data: &RData, bytes: &mut Vec<u8>) -> Result<(), ZoneError> {
    bytes.clear();
    let mut encoder = BinEncoder::new(bytes);
    let mut encoder = encoder.with_name_encoding(NameEncoding::Uncompressed);
    data.emit(&mut encoder)
        .map_err(|error| ZoneError::Malformed(error.to_string()))?;
    Ok(())
}

/// The uncompressed wire form of a name, case unchanged.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        bytes.push(label.len() as u8);
        bytes.extend_from_slice(label);
    }
    bytes.push(0);
    bytes
}

/// Decodes an uncompressed wire-form name.
pub fn name_from_wire(wire: &[u8]) -> Result<Name, ZoneError> {
    let mut decoder = BinDecoder::new(wire);
    Name::read(&mut decoder).map_err(|error| ZoneError::Malformed(format!("name: {error}")))
}

/// The length of a valid uncompressed wire name at the start of `wire`, or None.
pub fn check_name_wire(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let length = usize::from(*wire.get(at)?);
        if length == 0 {
            let total = at + 1;
            return (total <= 255).then_some(total);
        }
        if length > 63 {
            return None;
        }
        at += 1 + length;
        if at > 255 {
            return None;
        }
    }
}

/// A key that orders names so that every name's descendants follow it contiguously: labels from
/// the root down, lowercased, each followed by a 0 byte (0 and 1 inside a label are escaped).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NameKey(SmallVec<[u8; 16]>);

/// The first 8 bytes of a key as a big-endian number (zero-padded): comparing these orders
/// keys exactly as their bytes do whenever they differ, without a `memcmp` call.
fn key_head(key: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let length = key.len().min(8);
    head[..length].copy_from_slice(&key[..length]);
    u64::from_be_bytes(head)
}

impl Ord for NameKey {
    /// Byte order (the order `Borrow<[u8]>` lookups use), with a fast first step.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        key_head(&self.0)
            .cmp(&key_head(&other.0))
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl NameKey {
    /// The key of `name` (from the root).
    pub fn new(name: &Name) -> Self {
        Self::from_wire(&name_wire(name))
    }

    /// The key of a valid uncompressed wire name (from the root).
    pub fn from_wire(wire: &[u8]) -> Self {
        Self::from_slice(KeyBuf::of_wire(wire).as_slice())
    }

    /// A key of these bytes.
    fn from_slice(bytes: &[u8]) -> Self {
        Self(SmallVec::from_slice(bytes))
    }

    /// The key of the name of `full` (a key from the root) relative to the zone whose key is
    /// `origin`: a zone's map holds relative keys, which are short enough to be stored inline
    /// and compared fast (they leave out the labels every name of the zone shares).
    fn relative(full: &[u8], origin: &[u8]) -> Self {
        Self::from_slice(full.strip_prefix(origin).unwrap_or(full))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Longest key: every byte of a 255-byte name escaped.
const KEY_MAX: usize = 512;

/// A name key built on the stack, so that the query path allocates nothing to look names up.
#[derive(Clone)]
pub struct KeyBuf {
    bytes: [u8; KEY_MAX],
    len: usize,
}

impl KeyBuf {
    /// The key of a valid uncompressed wire name (labels past the 128th are ignored; a valid
    /// name has at most 127).
    pub fn of_wire(wire: &[u8]) -> KeyBuf {
        let mut key = KeyBuf {
            bytes: [0; KEY_MAX],
            len: 0,
        };
        let mut starts = [0u8; 128];
        let mut count = 0;
        let mut at = 0usize;
        while let Some(&length) = wire.get(at) {
            if length == 0 || count == starts.len() || at > 255 {
                break;
            }
            starts[count] = at as u8;
            count += 1;
            at += 1 + usize::from(length);
        }
        let labels = starts[..count].iter().rev().filter_map(|&start| {
            let start = usize::from(start);
            let length = usize::from(wire[start]);
            wire.get(start + 1..start + 1 + length)
        });
        push_key(labels, &mut |byte| {
            if key.len < KEY_MAX {
                key.bytes[key.len] = byte;
                key.len += 1;
            }
        });
        key
    }

    /// A key from its bytes; None when too long.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyBuf> {
        let mut key = KeyBuf {
            bytes: [0; KEY_MAX],
            len: 0,
        };
        key.push_slice(bytes)?;
        Some(key)
    }

    /// Appends raw key bytes; None when they do not fit.
    pub fn push_slice(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self
            .len
            .checked_add(bytes.len())
            .filter(|end| *end <= KEY_MAX)?;
        self.bytes[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn push_key<'a>(labels: impl Iterator<Item = &'a [u8]>, push: &mut impl FnMut(u8)) {
    for label in labels {
        for &byte in label {
            match byte.to_ascii_lowercase() {
                0 => {
                    push(1);
                    push(1);
                }
                1 => {
                    push(1);
                    push(2);
                }
                other => push(other),
            }
        }
        push(0);
    }
}

/// The key of the parent of the name of `key` (empty for a name one label below the root, and
/// for the root itself): keys end every label with a 0 byte and escape 0 inside labels.
pub fn parent_key(key: &[u8]) -> &[u8] {
    let Some(without_last) = key.len().checked_sub(1) else {
        return key;
    };
    let end = key[..without_last]
        .iter()
        .rposition(|byte| *byte == 0)
        .map_or(0, |at| at + 1);
    &key[..end]
}

/// True when key `key` names a strict descendant of `ancestor`.
fn key_is_below(key: &[u8], ancestor: &[u8]) -> bool {
    key.len() > ancestor.len() && key.starts_with(ancestor)
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

/// Limits a zone snapshot must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLimits {
    /// Most records in one zone.
    pub records_max: u64,
}

/// Entries per chunk of a zone's node map. Changing a name copies its chunk (and the list of
/// chunk pointers), so this bounds the cost of an IXFR per name it touches.
const CHUNK_MAX: usize = 256;

/// One run of consecutive entries, shared between versions until one of them changes it.
type Chunk = Arc<Vec<(NameKey, Node)>>;

/// A zone's nodes by relative key: sorted runs of up to [`CHUNK_MAX`] entries behind shared
/// pointers. A new version copies only the list of pointers and the runs it changes, so a
/// small IXFR into a large zone shares almost everything; a zone received in order is built by
/// appending; a lookup is two binary searches over contiguous memory.
#[derive(Clone, Default)]
struct NodeMap {
    chunks: Arc<Vec<Chunk>>,
}

impl fmt::Debug for NodeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NodeMap({} names in {} chunks)",
            self.len(),
            self.chunks.len()
        )
    }
}

impl PartialEq for NodeMap {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// One difference between two node maps.
enum Change<'a> {
    Add(&'a Node),
    Remove(&'a Node),
    Update(&'a Node, &'a Node),
}

impl NodeMap {
    fn new() -> Self {
        NodeMap::default()
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(|chunk| chunk.len()).sum()
    }

    /// The chunk that holds `key`, or would: the last one whose first key is not above it.
    fn chunk_for(&self, key: &NameKey) -> usize {
        self.chunks
            .partition_point(|chunk| chunk.first().is_some_and(|(first, _)| first <= key))
            .saturating_sub(1)
    }

    fn get(&self, key: &NameKey) -> Option<&Node> {
        let chunk = self.chunks.get(self.chunk_for(key))?;
        chunk
            .binary_search_by(|(candidate, _)| candidate.cmp(key))
            .ok()
            .map(|index| &chunk[index].1)
    }

    /// Appends an entry whose key is above every key held (building from sorted input).
    fn push_last(&mut self, key: NameKey, node: Node) {
        debug_assert!(self.iter().last().is_none_or(|(last, _)| *last < key));
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK_MAX => Arc::make_mut(last).push((key, node)),
            _ => {
                // Grown as needed: most zones are small, and a full chunk reserved for each
                // would be most of their memory.
                chunks.push(Arc::new(vec![(key, node)]));
            }
        }
    }

    /// Gives back the spare capacity of the last chunk (after building by appending).
    fn shrink_last(&mut self) {
        if let Some(last) = Arc::make_mut(&mut self.chunks).last_mut() {
            Arc::make_mut(last).shrink_to_fit();
        }
    }

    /// Inserts or replaces; returns the replaced node.
    fn insert(&mut self, key: NameKey, node: Node) -> Option<Node> {
        let index = self.chunk_for(&key);
        let chunks = Arc::make_mut(&mut self.chunks);
        if chunks.is_empty() {
            chunks.push(Arc::new(Vec::new()));
        }
        let chunk = Arc::make_mut(&mut chunks[index]);
        match chunk.binary_search_by(|(candidate, _)| candidate.cmp(&key)) {
            Ok(at) => return Some(std::mem::replace(&mut chunk[at].1, node)),
            Err(at) => chunk.insert(at, (key, node)),
        }
        if chunk.len() > CHUNK_MAX {
            let upper = chunk.split_off(chunk.len() / 2);
            chunks.insert(index + 1, Arc::new(upper));
        }
        None
    }

    fn remove(&mut self, key: &NameKey) {
        let index = self.chunk_for(key);
        let Some(chunk) = self.chunks.get(index) else {
            return;
        };
        let Ok(at) = chunk.binary_search_by(|(candidate, _)| candidate.cmp(key)) else {
            return;
        };
        let chunks = Arc::make_mut(&mut self.chunks);
        let chunk = Arc::make_mut(&mut chunks[index]);
        chunk.remove(at);
        if chunk.is_empty() {
            chunks.remove(index);
        }
    }

    /// The first entry whose key is greater than `key`.
    fn next_after(&self, key: &NameKey) -> Option<(&NameKey, &Node)> {
        let index = self.chunk_for(key);
        let chunk = self.chunks.get(index)?;
        let at = chunk.partition_point(|(candidate, _)| candidate <= key);
        chunk
            .get(at)
            .or_else(|| self.chunks.get(index + 1).and_then(|next| next.first()))
            .map(|(k, v)| (k, v))
    }

    /// Entries in key order.
    fn iter(&self) -> impl Iterator<Item = (&NameKey, &Node)> + Send + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter().map(|(k, v)| (k, v)))
    }

    fn values(&self) -> impl Iterator<Item = &Node> + Send + '_ {
        self.iter().map(|(_, node)| node)
    }

    /// What changed from `self` to `newer`, walking both in order and skipping runs the two
    /// versions share.
    fn diff<'a>(&'a self, newer: &'a NodeMap, max_changes: usize) -> Option<Vec<Change<'a>>> {
        let mut changes = Vec::new();
        let (old, new) = (&self.chunks, &newer.chunks);
        let (mut oc, mut oi, mut nc, mut ni) = (0usize, 0usize, 0usize, 0usize);
        loop {
            // Skip whole shared runs when both walks stand at the start of the same one.
            while oi == 0
                && ni == 0
                && oc < old.len()
                && nc < new.len()
                && Arc::ptr_eq(&old[oc], &new[nc])
            {
                oc += 1;
                nc += 1;
            }
            let left = old.get(oc).map(|chunk| &chunk[oi]);
            let right = new.get(nc).map(|chunk| &chunk[ni]);
            let step_old = |oc: &mut usize, oi: &mut usize| {
                *oi += 1;
                if *oi == old[*oc].len() {
                    *oc += 1;
                    *oi = 0;
                }
            };
            let step_new = |nc: &mut usize, ni: &mut usize| {
                *ni += 1;
                if *ni == new[*nc].len() {
                    *nc += 1;
                    *ni = 0;
                }
            };
            if changes.len() > max_changes {
                return None;
            }
            match (left, right) {
                (None, None) => return Some(changes),
                (Some((_, node)), None) => {
                    changes.push(Change::Remove(node));
                    step_old(&mut oc, &mut oi);
                }
                (None, Some((_, node))) => {
                    changes.push(Change::Add(node));
                    step_new(&mut nc, &mut ni);
                }
                (Some((old_key, old_node)), Some((new_key, new_node))) => {
                    match old_key.cmp(new_key) {
                        std::cmp::Ordering::Less => {
                            changes.push(Change::Remove(old_node));
                            step_old(&mut oc, &mut oi);
                        }
                        std::cmp::Ordering::Greater => {
                            changes.push(Change::Add(new_node));
                            step_new(&mut nc, &mut ni);
                        }
                        std::cmp::Ordering::Equal => {
                            if !old_node.ptr_eq(new_node) {
                                changes.push(Change::Update(old_node, new_node));
                            }
                            step_old(&mut oc, &mut oi);
                            step_new(&mut nc, &mut ni);
                        }
                    }
                }
            }
        }
    }
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
struct WireRecord {
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

fn wire_record(origin: &Name, record: &Record) -> Result<WireRecord, ZoneError> {
    check_record(origin, record)?;
    Ok(WireRecord {
        rtype: u16::from(record.record_type()),
        ttl: record.ttl,
        rdata: encode_rdata(&record.data)?,
    })
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
                    let owner = name_from_wire(&node.name).unwrap_or_else(|_| Name::root());
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
