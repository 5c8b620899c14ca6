//! `NodeMap`: a zone's nodes in sorted runs behind shared pointers, so versions share what they
//! do not change.

use std::fmt;
use std::sync::Arc;

use super::*;
use crate::dns::name::*;

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
pub(super) struct NodeMap {
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
pub(super) enum Change<'a> {
    Add(&'a Node),
    Remove(&'a Node),
    Update(&'a Node, &'a Node),
}

impl NodeMap {
    pub(super) fn new() -> Self {
        NodeMap::default()
    }

    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(|chunk| chunk.len()).sum()
    }

    /// The chunk that holds `key`, or would: the last one whose first key is not above it.
    pub(super) fn chunk_for(&self, key: &NameKey) -> usize {
        self.chunks
            .partition_point(|chunk| chunk.first().is_some_and(|(first, _)| first <= key))
            .saturating_sub(1)
    }

    pub(super) fn get(&self, key: &NameKey) -> Option<&Node> {
        let chunk = self.chunks.get(self.chunk_for(key))?;
        chunk
            .binary_search_by(|(candidate, _)| candidate.cmp(key))
            .ok()
            .map(|index| &chunk[index].1)
    }

    /// Appends an entry whose key is above every key held (building from sorted input).
    pub(super) fn push_last(&mut self, key: NameKey, node: Node) {
        // Only the last key: walking the map here made a debug build's AXFR quadratic.
        debug_assert!(
            self.chunks
                .last()
                .and_then(|chunk| chunk.last())
                .is_none_or(|(last, _)| *last < key)
        );
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
    pub(super) fn shrink_last(&mut self) {
        if let Some(last) = Arc::make_mut(&mut self.chunks).last_mut() {
            Arc::make_mut(last).shrink_to_fit();
        }
    }

    /// Inserts or replaces; returns the replaced node.
    pub(super) fn insert(&mut self, key: NameKey, node: Node) -> Option<Node> {
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

    pub(super) fn remove(&mut self, key: &NameKey) {
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
    pub(super) fn next_after(&self, key: &NameKey) -> Option<(&NameKey, &Node)> {
        let index = self.chunk_for(key);
        let chunk = self.chunks.get(index)?;
        let at = chunk.partition_point(|(candidate, _)| candidate <= key);
        chunk
            .get(at)
            .or_else(|| self.chunks.get(index + 1).and_then(|next| next.first()))
            .map(|(k, v)| (k, v))
    }

    /// Entries in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&NameKey, &Node)> + Send + '_ {
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.iter().map(|(k, v)| (k, v)))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Node> + Send + '_ {
        self.iter().map(|(_, node)| node)
    }

    /// What changed from `self` to `newer`, walking both in order and skipping runs the two
    /// versions share.
    pub(super) fn diff<'a>(
        &'a self,
        newer: &'a NodeMap,
        max_changes: usize,
    ) -> Option<Vec<Change<'a>>> {
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
