//! The store's byte formats: sled keys (zone, generation, chunk; journal entries), chunks of
//! records and of nodes, journal entries, and metadata. Pure encoding: `store` does the I/O.

use hickory_proto::rr::{Name, Record};

use crate::dns::zone::{Diff, Node, soa_serial};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

use super::{StoreError, ZoneMeta};

pub(super) fn zone_key(zone: &Name) -> Vec<u8> {
    zone.to_lowercase().to_ascii().into_bytes()
}

pub(super) fn generation_prefix(zone: &Name, generation: u64) -> Vec<u8> {
    let mut key = zone_key(zone);
    key.push(0);
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

pub(super) fn data_key(zone: &Name, generation: u64, chunk: u32) -> Vec<u8> {
    let mut key = generation_prefix(zone, generation);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

pub(super) fn journal_prefix(zone: &Name) -> Vec<u8> {
    let mut key = zone_key(zone);
    key.push(0);
    key
}

/// A journal entry: from-serial (u32), then four length-prefixed record chunks: the new SOA,
/// the deleted records, the added records, the old SOA.
pub(super) fn encode_diff(
    zone: &Name,
    from_soa: &Record,
    diff: &Diff,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = diff.from_serial.to_be_bytes().to_vec();
    for chunk in [
        encode_chunk(zone, std::slice::from_ref(&diff.to_soa))?,
        encode_chunk(zone, &diff.deleted)?,
        encode_chunk(zone, &diff.added)?,
        encode_chunk(zone, std::slice::from_ref(from_soa))?,
    ] {
        bytes.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

pub(super) fn decode_diff(zone: &Name, bytes: &[u8]) -> Result<(Record, Diff), StoreError> {
    let bad = |message: &str| StoreError::Records {
        zone: zone.to_string(),
        message: format!("journal entry: {message}"),
    };
    let (from, mut rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("too short"))?;
    let mut parts: Vec<Vec<Record>> = Vec::with_capacity(4);
    for _ in 0..4 {
        let (length, body) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("truncated"))?;
        let length = u32::from_be_bytes(*length) as usize;
        if body.len() < length {
            return Err(bad("truncated chunk"));
        }
        let mut records = Vec::new();
        decode_chunk(zone, &body[..length], &mut records)?;
        parts.push(records);
        rest = &body[length..];
    }
    let from_soa = parts
        .pop()
        .and_then(|mut soa| soa.pop())
        .filter(|record| soa_serial(record).is_some())
        .ok_or_else(|| bad("no old SOA"))?;
    let added = parts.pop().unwrap_or_default();
    let deleted = parts.pop().unwrap_or_default();
    let to_soa = parts
        .pop()
        .and_then(|mut soa| soa.pop())
        .filter(|record| soa_serial(record).is_some())
        .ok_or_else(|| bad("no SOA"))?;
    let diff = Diff {
        from_serial: u32::from_be_bytes(*from),
        to_soa,
        deleted,
        added,
    };
    if soa_serial(&from_soa) != Some(diff.from_serial) {
        return Err(bad("old SOA does not carry the from-serial"));
    }
    Ok((from_soa, diff))
}

pub(super) fn decode_meta(zone: &Name, bytes: &[u8]) -> Result<ZoneMeta, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Meta {
        zone: zone.to_string(),
        source,
    })
}

/// Reads a chunk of nodes (u32 count, then u32-length-prefixed nodes).
pub(super) fn decode_nodes(
    zone: &Name,
    bytes: &[u8],
    out: &mut Vec<Node>,
) -> Result<(), StoreError> {
    let bad = |message: String| StoreError::Records {
        zone: zone.to_string(),
        message,
    };
    let Some((count, mut rest)) = bytes.split_first_chunk::<4>() else {
        return Err(bad("chunk shorter than its count".into()));
    };
    for _ in 0..u32::from_be_bytes(*count) {
        let Some((length, body)) = rest.split_first_chunk::<4>() else {
            return Err(bad("node length cut short".into()));
        };
        let length = u32::from_be_bytes(*length) as usize;
        let Some((node, after)) = body.split_at_checked(length) else {
            return Err(bad("node cut short".into()));
        };
        out.push(Node::from_bytes(node).map_err(|error| bad(error.to_string()))?);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the nodes of a chunk".into()));
    }
    Ok(())
}

pub(super) fn encode_chunk(zone: &Name, records: &[Record]) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(records.len() * 48 + 4);
    bytes.extend_from_slice(&(records.len() as u32).to_be_bytes());
    let mut record_bytes = Vec::with_capacity(256);
    for record in records {
        // One encoder per record: an encoder is bounded by a DNS message's 65,535 bytes, and
        // a chunk of a large difference is longer than that.
        record_bytes.clear();
        let mut encoder = BinEncoder::new(&mut record_bytes);
        let mut encoder = encoder.with_name_encoding(NameEncoding::Uncompressed);
        record
            .emit(&mut encoder)
            .map_err(|error| StoreError::Encode {
                zone: zone.to_string(),
                message: error.to_string(),
            })?;
        drop(encoder);
        bytes.extend_from_slice(&record_bytes);
    }
    Ok(bytes)
}

fn decode_chunk(zone: &Name, bytes: &[u8], out: &mut Vec<Record>) -> Result<(), StoreError> {
    let bad = |message: String| StoreError::Records {
        zone: zone.to_string(),
        message,
    };
    let Some((count, body)) = bytes.split_first_chunk::<4>() else {
        return Err(bad("chunk shorter than its count".into()));
    };
    let count = u32::from_be_bytes(*count);
    let mut decoder = BinDecoder::new(body);
    for _ in 0..count {
        let record = Record::read(&mut decoder).map_err(|error| bad(error.to_string()))?;
        out.push(record);
    }
    if !decoder.is_empty() {
        return Err(bad("trailing bytes after the records of a chunk".into()));
    }
    Ok(())
}
