//! Names in wire form and `NameKey`: a byte key that orders names so that a name's descendants
//! follow it contiguously (labels from the root, lowercased). `KeyBuf` builds one on the stack.
//!
//! Pure: no I/O, no clock.

use std::fmt;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use smallvec::SmallVec;

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
pub fn name_from_wire(wire: &[u8]) -> Option<Name> {
    let mut decoder = BinDecoder::new(wire);
    Name::read(&mut decoder).ok()
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
pub struct NameKey(pub(crate) SmallVec<[u8; 16]>);

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
    pub(crate) fn from_slice(bytes: &[u8]) -> Self {
        Self(SmallVec::from_slice(bytes))
    }

    /// The key of the name of `full` (a key from the root) relative to the zone whose key is
    /// `origin`: a zone's map holds relative keys, which are short enough to be stored inline
    /// and compared fast (they leave out the labels every name of the zone shares).
    pub(crate) fn relative(full: &[u8], origin: &[u8]) -> Self {
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
pub(crate) fn key_is_below(key: &[u8], ancestor: &[u8]) -> bool {
    key.len() > ancestor.len() && key.starts_with(ancestor)
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameKey({})", String::from_utf8_lossy(&self.0))
    }
}
