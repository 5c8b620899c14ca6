//! Durable zone storage in sled.
//!
//! Schema (two trees, a fixed set no matter how many zones; see DESIGN.md 6):
//! - `zones`: key = zone apex (lowercase text), value = JSON [`ZoneMeta`].
//! - `data`: key = apex, 0, generation (u64 BE), chunk (u32 BE). Chunks below [`DELTA_BASE`]
//!   hold the generation's base version as zone nodes in their in-memory wire form (u32 count,
//!   then u32-length-prefixed nodes), so that loading is copying; chunks from `DELTA_BASE + n`
//!   hold the n-th difference applied on top of the base (an IXFR), so that a small change to
//!   a large zone writes only the change.
//! - `journal`: differences kept to answer IXFR requests (bounded, a cache).
//!
//! **Invariant:** a version is written completely (a new generation, or new deltas past the
//! ones the metadata counts) and flushed before one small compare-and-swap points the zone's
//! metadata at it; a replaced generation is deleted only afterwards. A crash at any moment
//! leaves the old version or the new one, never a mixture. Reading checks the record count and
//! the SOA serial against the metadata.
//!
//! The query path never reads sled: zones are loaded into memory at start-up.

mod codec;
pub mod query_path;
pub mod zoneset;

use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, Record};

use crate::dns::zone::{Diff, JournalChain, Zone, ZoneError, ZoneLimits, soa_serial};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use codec::{
    data_key, decode_diff, decode_meta, decode_nodes, encode_diff, generation_prefix,
    journal_prefix, zone_key,
};

/// Bytes of nodes per sled value: large enough to keep keys few, small enough that one batch
/// never holds sled's process-wide lock for long (DESIGN.md 6: a 200k-entry batch stalls
/// readers).
const CHUNK_BYTES: usize = 64 * 1024;

/// sled's page cache.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Chunk numbers from here on hold differences applied on top of the base version.
const DELTA_BASE: u32 = 0x8000_0000;

/// The storage format `save_version` writes; metadata of another format is not read.
const FORMAT: u32 = 2;

/// Records in deltas on top of a base, beyond which the next change rewrites the whole zone:
/// this many, or a quarter of the zone if that is more.
const DELTA_RECORDS_MIN: u64 = 10_000;

/// Chunks per sled batch.
const BATCH_CHUNKS: usize = 10;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("database: {0}")]
    Database(#[from] sled::Error),
    /// Metadata could not be decoded.
    #[error("zone metadata for {zone} is unreadable: {source}")]
    Meta {
        /// The zone.
        zone: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// Stored records could not be decoded.
    #[error("stored records of {zone} are unreadable: {message}")]
    Records {
        /// The zone.
        zone: String,
        /// What was wrong.
        message: String,
    },
    /// The data does not match its metadata (a count or serial differs).
    #[error("stored data of {zone} does not match its metadata: {message}")]
    Mismatch {
        /// The zone.
        zone: String,
        /// What differs.
        message: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode a record of {zone}: {message}")]
    Encode {
        /// The zone.
        zone: String,
        /// The encoder's message.
        message: String,
    },
    /// Another writer changed the zone's metadata between our read and our switch.
    #[error("zone {0} was changed concurrently")]
    Conflict(String),
    /// The stored data does not make a valid zone.
    #[error("stored data of {zone} is not a valid zone: {source}")]
    Invalid {
        /// The zone.
        zone: String,
        /// What is wrong.
        source: ZoneError,
    },
    /// The data was written by an older version of zonecast in another format.
    #[error("stored data of {0} is in an older format")]
    OldFormat(String),
}

/// What is known about one zone's stored version; times are UNIX seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneMeta {
    /// The SOA serial of the stored version (None before the first load).
    pub serial: Option<u32>,
    /// The generation holding the records.
    pub generation: u64,
    /// Number of records stored, SOA included.
    pub records: u64,
    /// Where the version came from (`127.0.0.1:53`, `file:/path`).
    pub source: Option<String>,
    /// Last attempt to refresh.
    pub last_attempt: Option<u64>,
    /// Last successful refresh (the SOA check or transfer succeeded).
    pub last_success: Option<u64>,
    /// When the zone expires unless refreshed.
    pub expire_deadline: Option<u64>,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Storage format of the data (see `FORMAT`); 0 for data of older releases.
    #[serde(default)]
    pub format: u32,
    /// Differences stored on top of the generation's base version.
    #[serde(default)]
    pub deltas: u32,
    /// Records in those differences (deleted plus added).
    #[serde(default)]
    pub delta_records: u64,
}

/// A zone read back from the store.
pub struct StoredZone {
    /// The apex.
    pub name: Name,
    /// Its metadata (the default when it could not be read).
    pub meta: ZoneMeta,
    /// Its data (None when no version was stored yet), or why it cannot be read: one damaged
    /// zone must not keep the others from being served.
    pub zone: Result<Option<Zone>, StoreError>,
}

/// The zone store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    zones: sled::Tree,
    data: sled::Tree,
    journal: sled::Tree,
}

/// Bounds on one zone's journal of differences (oldest dropped first).
#[derive(Debug, Clone, Copy)]
pub struct JournalLimits {
    /// Most differences kept.
    pub diffs_max: usize,
    /// Most encoded bytes kept.
    pub bytes_max: u64,
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        // The query path never reads sled, so its page cache only speeds up start-up reads:
        // keep it small instead of sled's default 1 GiB.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let zones = db.open_tree("zones")?;
        let data = db.open_tree("data")?;
        let journal = db.open_tree("journal")?;
        Ok(Store {
            db,
            zones,
            data,
            journal,
        })
    }

    /// The metadata of one zone, if stored.
    pub fn meta(&self, zone: &Name) -> Result<Option<ZoneMeta>, StoreError> {
        query_path::assert_off("the store");
        let key = zone_key(zone);
        match self.zones.get(&key)? {
            None => Ok(None),
            Some(bytes) => decode_meta(zone, &bytes).map(Some),
        }
    }

    /// Writes `data` as the zone's new version with metadata `meta` (whose storage fields are
    /// filled in here) under a fresh generation, then switches to it atomically and durably.
    pub fn save_version(
        &self,
        zone: &Name,
        meta: &ZoneMeta,
        data: &Zone,
    ) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        let started = Instant::now();
        let generation = self.db.generate_id()?;
        let mut chunk_index: u32 = 0;
        let mut batch = sled::Batch::default();
        let mut batch_chunks = 0;
        let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + 1024);
        let mut in_chunk: u32 = 0;
        let mut nodes = data.nodes().peekable();
        while let Some(node) = nodes.next() {
            if in_chunk == 0 {
                chunk.clear();
                chunk.extend_from_slice(&[0; 4]);
            }
            let bytes = node.as_bytes();
            chunk.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            chunk.extend_from_slice(bytes);
            in_chunk += 1;
            if chunk.len() >= CHUNK_BYTES || nodes.peek().is_none() {
                chunk[..4].copy_from_slice(&in_chunk.to_be_bytes());
                batch.insert(data_key(zone, generation, chunk_index), chunk.as_slice());
                in_chunk = 0;
                chunk_index += 1;
                batch_chunks += 1;
                if batch_chunks == BATCH_CHUNKS {
                    self.data.apply_batch(std::mem::take(&mut batch))?;
                    batch_chunks = 0;
                }
            }
        }
        self.data.apply_batch(batch)?;
        // The new generation must be on disk before anything points at it.
        self.db.flush()?;
        let mut meta = meta.clone();
        meta.generation = generation;
        meta.records = data.record_count() as u64;
        meta.format = FORMAT;
        meta.deltas = 0;
        meta.delta_records = 0;
        let old = self.switch(zone, &meta)?;
        // The switch is done: the new version stands whatever happens to the cleanup, which a
        // later start-up sweep (`sweep_orphans`) finishes if it fails here.
        if let Some(old) = old {
            let cleanup = decode_meta(zone, &old).and_then(|old| {
                if old.generation != generation && old.serial.is_some() {
                    self.delete_generation(zone, old.generation)
                } else {
                    Ok(())
                }
            });
            if let Err(error) = cleanup {
                warn!(zone = %zone, %error, "cannot delete the previous version; it is swept at the next start");
            }
        }
        let count = data.record_count();
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        if elapsed > Duration::from_secs(1) {
            let records_per_s = (count as f64 / elapsed.as_secs_f64()) as u64;
            info!(zone = %zone, records = count, generation, elapsed_ms, records_per_s, "stored zone version");
        } else {
            debug!(zone = %zone, records = count, generation, elapsed_ms, "stored zone version");
        }
        Ok(())
    }

    /// Stores the version `data` that `diffs` made from the stored one: as deltas on top of the
    /// stored base when they are small against the zone, else as a whole new generation.
    pub fn save_diffs(
        &self,
        zone: &Name,
        meta: &ZoneMeta,
        from_soa: &Record,
        diffs: &[Diff],
        data: &Zone,
    ) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        let Some(stored) = self.meta(zone)? else {
            return self.save_version(zone, meta, data);
        };
        let size: u64 = diffs.iter().map(|diff| diff.size() as u64).sum();
        let budget = DELTA_RECORDS_MIN.max(stored.records / 4);
        let chains = stored.serial == Some(soa_serial(from_soa).unwrap_or(0))
            && diffs.first().map(|d| d.from_serial) == stored.serial;
        if stored.format != FORMAT
            || !chains
            || stored.delta_records + size > budget
            || stored.deltas as usize + diffs.len() >= (u32::MAX - DELTA_BASE) as usize
        {
            return self.save_version(zone, meta, data);
        }
        let started = Instant::now();
        let mut batch = sled::Batch::default();
        let mut previous = from_soa.clone();
        for (index, diff) in diffs.iter().enumerate() {
            let chunk = DELTA_BASE + stored.deltas + index as u32;
            batch.insert(
                data_key(zone, stored.generation, chunk),
                encode_diff(zone, &previous, diff)?,
            );
            previous = diff.to_soa.clone();
        }
        self.data.apply_batch(batch)?;
        self.db.flush()?;
        let mut meta = meta.clone();
        meta.generation = stored.generation;
        meta.records = data.record_count() as u64;
        meta.format = FORMAT;
        meta.deltas = stored.deltas + diffs.len() as u32;
        meta.delta_records = stored.delta_records + size;
        self.switch(zone, &meta)?;
        debug!(zone = %zone, records = size, deltas = meta.deltas, elapsed_us = started.elapsed().as_micros() as u64, "stored differences");
        Ok(())
    }

    /// Points the zone's metadata at a written version, durably; returns the previous value.
    fn switch(&self, zone: &Name, meta: &ZoneMeta) -> Result<Option<sled::IVec>, StoreError> {
        let key = zone_key(zone);
        let old = self.zones.get(&key)?;
        let new = serde_json::to_vec(meta).map_err(|source| StoreError::Meta {
            zone: zone.to_string(),
            source,
        })?;
        self.zones
            .compare_and_swap(&key, old.clone(), Some(new))?
            .map_err(|_| StoreError::Conflict(zone.to_string()))?;
        self.db.flush()?;
        Ok(old)
    }

    /// Updates only the metadata (timers, errors) of the stored version; flushed at once so that
    /// timers continue from the stored times after a crash.
    pub fn update_meta(
        &self,
        zone: &Name,
        update: impl Fn(&mut ZoneMeta),
    ) -> Result<ZoneMeta, StoreError> {
        query_path::assert_off("the store");
        let key = zone_key(zone);
        loop {
            let old = self.zones.get(&key)?;
            let mut meta = match &old {
                Some(bytes) => decode_meta(zone, bytes)?,
                None => ZoneMeta::default(),
            };
            update(&mut meta);
            let new = serde_json::to_vec(&meta).map_err(|source| StoreError::Meta {
                zone: zone.to_string(),
                source,
            })?;
            if self.zones.compare_and_swap(&key, old, Some(new))?.is_ok() {
                self.db.flush()?;
                return Ok(meta);
            }
        }
    }

    /// Reads every stored zone, checking each against its metadata. A zone whose data cannot be
    /// read comes back with the error in `records`; only a failure of the database itself fails
    /// the whole call.
    pub fn load_all(&self, limits: ZoneLimits) -> Result<Vec<StoredZone>, StoreError> {
        query_path::assert_off("the store");
        let mut zones = Vec::new();
        for entry in self.zones.iter() {
            let (key, value) = entry?;
            let text = String::from_utf8_lossy(&key).into_owned();
            let Ok(name) = Name::from_ascii(&text) else {
                warn!(key = %text, "ignoring a stored zone whose key is not a domain name");
                continue;
            };
            let (meta, zone) = match decode_meta(&name, &value) {
                Ok(meta) if meta.serial.is_some() => {
                    let zone = self.load_zone(&name, &meta, limits).map(Some);
                    (meta, zone)
                }
                Ok(meta) => (meta, Ok(None)),
                Err(error) => (ZoneMeta::default(), Err(error)),
            };
            zones.push(StoredZone { name, meta, zone });
        }
        Ok(zones)
    }

    /// Deletes record chunks that no zone's metadata points at: the leftovers of a crash
    /// between writing a version and switching to it, or of a failed cleanup. Returns how many
    /// chunks were deleted.
    pub fn sweep_orphans(&self) -> Result<usize, StoreError> {
        let mut live = std::collections::HashSet::new();
        for entry in self.zones.iter() {
            let (key, value) = entry?;
            if let Ok(meta) = serde_json::from_slice::<ZoneMeta>(&value) {
                let mut prefix = key.to_vec();
                prefix.push(0);
                prefix.extend_from_slice(&meta.generation.to_be_bytes());
                live.insert(prefix);
            }
        }
        let mut orphans = Vec::new();
        for key in self.data.iter().keys() {
            let key = key?;
            // A data key is zone, 0, generation (8 octets), chunk (4 octets).
            let is_live = key.len() > 12 && live.contains(&key[..key.len() - 4]);
            if !is_live {
                orphans.push(key);
            }
        }
        self.remove_data(&orphans)?;
        if !orphans.is_empty() {
            self.db.flush()?;
        }
        Ok(orphans.len())
    }

    /// Reads one zone's version: the base nodes, then the deltas the metadata counts.
    fn load_zone(
        &self,
        zone: &Name,
        meta: &ZoneMeta,
        limits: ZoneLimits,
    ) -> Result<Zone, StoreError> {
        if meta.format != FORMAT {
            return Err(StoreError::OldFormat(zone.to_string()));
        }
        let started = Instant::now();
        let invalid = |source| StoreError::Invalid {
            zone: zone.to_string(),
            source,
        };
        let prefix = generation_prefix(zone, meta.generation);
        let mut nodes = Vec::new();
        let mut deltas = Vec::new();
        for entry in self.data.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let chunk = key
                .get(prefix.len()..)
                .and_then(|rest| rest.try_into().ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            if chunk < DELTA_BASE {
                decode_nodes(zone, &value, &mut nodes)?;
            } else if chunk - DELTA_BASE < meta.deltas {
                deltas.push(decode_diff(zone, &value)?.1);
            }
        }
        if deltas.len() != meta.deltas as usize {
            return Err(StoreError::Mismatch {
                zone: zone.to_string(),
                message: format!(
                    "{} differences stored, metadata says {}",
                    deltas.len(),
                    meta.deltas
                ),
            });
        }
        let node_count = nodes.len();
        let mut data = Zone::from_nodes(zone, nodes, limits).map_err(invalid)?;
        if !deltas.is_empty() {
            data = data.apply(&deltas, limits).map_err(invalid)?;
        }
        if data.record_count() as u64 != meta.records {
            return Err(StoreError::Mismatch {
                zone: zone.to_string(),
                message: format!(
                    "{} records stored, metadata says {}",
                    data.record_count(),
                    meta.records
                ),
            });
        }
        if Some(data.serial()) != meta.serial {
            return Err(StoreError::Mismatch {
                zone: zone.to_string(),
                message: format!(
                    "stored serial {}, metadata says {:?}",
                    data.serial(),
                    meta.serial
                ),
            });
        }
        let elapsed = started.elapsed();
        if elapsed > Duration::from_secs(1) {
            info!(zone = %zone, records = data.record_count(), names = node_count, deltas = deltas.len(), elapsed_ms = elapsed.as_millis() as u64, "read zone from store");
        }
        Ok(data)
    }

    /// Deletes every key of one generation of a zone.
    fn delete_generation(&self, zone: &Name, generation: u64) -> Result<(), StoreError> {
        let keys: Vec<_> = self
            .data
            .scan_prefix(generation_prefix(zone, generation))
            .keys()
            .collect::<Result<_, _>>()?;
        self.remove_data(&keys)
    }

    /// Removes data keys in bounded batches (each batch holds sled's lock only briefly).
    fn remove_data(&self, keys: &[sled::IVec]) -> Result<(), StoreError> {
        for keys in keys.chunks(BATCH_CHUNKS * 10) {
            let mut batch = sled::Batch::default();
            for key in keys {
                batch.remove(key.clone());
            }
            self.data.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Appends the difference that produced the zone's current version to its journal (which
    /// feeds IXFR out), then drops the oldest differences beyond `limits`. The journal is a
    /// cache: a crash that loses its newest entry only makes IXFR answers fall back to AXFR
    /// style, so it is not flushed here.
    pub fn append_diff(
        &self,
        zone: &Name,
        from_soa: &Record,
        diff: &Diff,
        limits: JournalLimits,
    ) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        let mut key = zone_key(zone);
        key.push(0);
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        self.journal
            .insert(key, encode_diff(zone, from_soa, diff)?)?;
        let entries: Vec<(sled::IVec, usize)> = self
            .journal
            .scan_prefix(journal_prefix(zone))
            .map(|entry| entry.map(|(key, value)| (key, value.len())))
            .collect::<Result<_, _>>()?;
        let mut bytes: u64 = entries.iter().map(|(_, size)| *size as u64).sum();
        let mut count = entries.len();
        let mut stale = Vec::new();
        for (key, size) in &entries {
            // The newest difference always stays, whatever its size.
            if count <= 1 || (count <= limits.diffs_max && bytes <= limits.bytes_max) {
                break;
            }
            stale.push(key.clone());
            count -= 1;
            bytes -= *size as u64;
        }
        for key in stale {
            self.journal.remove(key)?;
        }
        Ok(())
    }

    /// The chain of differences from `serial` to the newest one journaled, with the SOA record
    /// of version `serial` (an IXFR answer starts each step with the old version's SOA), or None
    /// when the journal does not reach back to `serial` or its chain is broken.
    pub fn diffs_from(&self, zone: &Name, serial: u32) -> Result<Option<JournalChain>, StoreError> {
        query_path::assert_off("the store");
        let mut chain: Option<JournalChain> = None;
        for entry in self.journal.scan_prefix(journal_prefix(zone)) {
            let (_, value) = entry?;
            let (from_soa, diff) = decode_diff(zone, &value)?;
            match chain.as_mut() {
                None if diff.from_serial == serial => {
                    chain = Some(JournalChain {
                        from_soa,
                        diffs: vec![diff],
                    });
                }
                None => {}
                Some(chain) => {
                    let joins = chain
                        .diffs
                        .last()
                        .is_some_and(|last| soa_serial(&last.to_soa) == Some(diff.from_serial));
                    if !joins {
                        return Ok(None);
                    }
                    chain.diffs.push(diff);
                }
            }
        }
        Ok(chain)
    }

    /// Forgets the zone's journal (when its history no longer forms a chain, e.g. after a
    /// serial went backwards).
    pub fn clear_journal(&self, zone: &Name) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        let keys: Vec<sled::IVec> = self
            .journal
            .scan_prefix(journal_prefix(zone))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.journal.remove(key)?;
        }
        Ok(())
    }

    /// Removes zones that are no longer configured, with all their data.
    pub fn remove_zone(&self, zone: &Name) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        self.clear_journal(zone)?;
        if let Some(meta) = self.meta(zone)? {
            self.zones.remove(zone_key(zone))?;
            self.delete_generation(zone, meta.generation)?;
            self.db.flush()?;
        }
        Ok(())
    }

    /// Flushes everything to disk (used at shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        query_path::assert_off("the store");
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zone::tests::{LIMITS, a, base_records, name, soa, txt};
    use codec::encode_chunk;

    fn zone_of(records: Vec<Record>) -> Zone {
        Zone::from_records(&name("example.test."), records, LIMITS_BIG).expect("valid")
    }

    fn loaded(store: &Store) -> Zone {
        let mut zones = store.load_all(LIMITS_BIG).expect("load");
        zones
            .remove(0)
            .zone
            .expect("readable")
            .expect("a version is stored")
    }

    const LIMITS_BIG: ZoneLimits = ZoneLimits {
        records_max: 100_000,
    };

    fn meta(serial: u32) -> ZoneMeta {
        ZoneMeta {
            serial: Some(serial),
            source: Some("test".into()),
            last_success: Some(100),
            ..ZoneMeta::default()
        }
    }

    /// Opens the store again after the previous handle was dropped. sled's background flusher
    /// can hold the directory's lock for a moment after the drop (a process restart never sees
    /// this: the lock dies with the process), so the open is retried, for at most 5 s.
    fn reopen(dir: &Path) -> Store {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Ok(store) => return store,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => panic!("reopen: {error}"),
            }
        }
    }

    #[test]
    fn saves_switches_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        {
            let store = Store::open(dir.path()).expect("open");
            store
                .save_version(&zone, &meta(1), &zone_of(base_records()))
                .expect("save 1");
            let mut bigger = base_records();
            bigger[0] = soa(2);
            bigger.extend((0..2500).map(|i| a(&format!("h{i}.example.test."), "192.0.2.1")));
            store
                .save_version(&zone, &meta(2), &zone_of(bigger))
                .expect("save 2");
            store
                .update_meta(&zone, |m| m.last_error = Some("boom".into()))
                .expect("update");
        }
        let store = reopen(dir.path());
        let zones = store.load_all(LIMITS_BIG).expect("load");
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0].meta.serial, Some(2));
        assert_eq!(zones[0].meta.last_error.as_deref(), Some("boom"));
        assert_eq!(loaded(&store).record_count(), 2504);
        // The first generation is gone: only the chunks of the new one remain.
        let prefix = generation_prefix(&zone, zones[0].meta.generation);
        assert!(
            store.data.len() >= 2,
            "a zone this size takes several chunks"
        );
        assert!(
            store
                .data
                .iter()
                .keys()
                .all(|key| key.expect("key").starts_with(&prefix))
        );
        store.remove_zone(&zone).expect("remove");
        assert!(store.load_all(LIMITS_BIG).expect("load").is_empty());
        assert_eq!(store.data.len(), 0);
    }

    #[test]
    fn detects_a_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        let store = Store::open(dir.path()).expect("open");
        store
            .save_version(&zone, &meta(1), &zone_of(base_records()))
            .expect("save");
        store
            .update_meta(&zone, |m| m.records = 99)
            .expect("update");
        let zones = store.load_all(LIMITS).expect("the database itself is fine");
        assert!(matches!(zones[0].zone, Err(StoreError::Mismatch { .. })));
        store.update_meta(&zone, |m| m.format = 0).expect("update");
        let zones = store.load_all(LIMITS).expect("the database itself is fine");
        assert!(matches!(zones[0].zone, Err(StoreError::OldFormat(_))));
    }

    #[test]
    fn sweeps_chunks_nothing_points_at() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        let store = Store::open(dir.path()).expect("open");
        store
            .save_version(&zone, &meta(1), &zone_of(base_records()))
            .expect("save");
        // A crash after writing a generation but before the switch leaves this behind.
        let chunk = encode_chunk(&zone, &base_records()).expect("encode");
        store
            .data
            .insert(data_key(&zone, 999_999, 0), chunk)
            .expect("insert");
        store
            .data
            .insert(data_key(&name("gone.test."), 5, 0), vec![0, 0, 0, 0])
            .expect("insert");
        assert_eq!(store.sweep_orphans().expect("sweep"), 2);
        assert_eq!(store.data.len(), 1);
        assert_eq!(loaded(&store).record_count(), 4);
    }

    #[test]
    fn differences_longer_than_a_message_are_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        let store = Store::open(dir.path()).expect("open");
        let version = zone_of(base_records());
        store.save_version(&zone, &meta(1), &version).expect("save");
        let diff = Diff {
            from_serial: 1,
            to_soa: soa(2),
            deleted: vec![],
            added: (0..5000)
                .map(|i| a(&format!("host-{i}.example.test."), "192.0.2.1"))
                .collect(),
        };
        let next = version
            .apply(std::slice::from_ref(&diff), LIMITS_BIG)
            .expect("applies");
        store
            .save_diffs(
                &zone,
                &meta(2),
                &version.soa_record(),
                std::slice::from_ref(&diff),
                &next,
            )
            .expect("a 5,000-record delta is stored");
        let limits = JournalLimits {
            diffs_max: 10,
            bytes_max: 1 << 24,
        };
        store
            .append_diff(&zone, &version.soa_record(), &diff, limits)
            .expect("and journaled");
        assert_eq!(loaded(&store).record_count(), next.record_count());
        let chain = store.diffs_from(&zone, 1).expect("read").expect("chain");
        assert_eq!(chain.diffs[0].added.len(), 5000);
    }

    #[test]
    fn small_changes_are_stored_as_deltas_and_big_ones_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        let store = Store::open(dir.path()).expect("open");
        let mut version = zone_of(base_records());
        store.save_version(&zone, &meta(1), &version).expect("save");
        let generation = store.meta(&zone).expect("meta").expect("stored").generation;
        for serial in 1..=3u32 {
            let diff = Diff {
                from_serial: serial,
                to_soa: soa(serial + 1),
                deleted: vec![],
                added: vec![txt("t.example.test.", &serial.to_string())],
            };
            let next = version
                .apply(std::slice::from_ref(&diff), LIMITS_BIG)
                .expect("applies");
            store
                .save_diffs(
                    &zone,
                    &meta(serial + 1),
                    &version.soa_record(),
                    &[diff],
                    &next,
                )
                .expect("save diffs");
            version = next;
        }
        let stored = store.meta(&zone).expect("meta").expect("stored");
        assert_eq!(
            stored.generation, generation,
            "no new generation for small changes"
        );
        assert_eq!((stored.deltas, stored.delta_records), (3, 3));
        let back = loaded(&store);
        assert_eq!(back.serial(), 4);
        assert_eq!(
            back.records().collect::<Vec<_>>(),
            version.records().collect::<Vec<_>>()
        );
        // A change bigger than the budget writes a whole new generation.
        let diff = Diff {
            from_serial: 4,
            to_soa: soa(5),
            deleted: vec![],
            added: (0..DELTA_RECORDS_MIN + 1)
                .map(|i| a(&format!("h{i}.example.test."), "192.0.2.1"))
                .collect(),
        };
        let next = version
            .apply(std::slice::from_ref(&diff), LIMITS_BIG)
            .expect("applies");
        store
            .save_diffs(&zone, &meta(5), &version.soa_record(), &[diff], &next)
            .expect("save diffs");
        let stored = store.meta(&zone).expect("meta").expect("stored");
        assert_ne!(stored.generation, generation);
        assert_eq!((stored.deltas, stored.delta_records), (0, 0));
        assert_eq!(loaded(&store).record_count(), next.record_count());
    }

    #[test]
    fn journal_chains_and_stays_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = name("example.test.");
        let store = Store::open(dir.path()).expect("open");
        let limits = JournalLimits {
            diffs_max: 3,
            bytes_max: 1 << 20,
        };
        for serial in 1..=5u32 {
            let diff = Diff {
                from_serial: serial,
                to_soa: soa(serial + 1),
                deleted: vec![],
                added: vec![txt("t.example.test.", &serial.to_string())],
            };
            store
                .append_diff(&zone, &soa(serial), &diff, limits)
                .expect("append");
        }
        assert!(
            store.diffs_from(&zone, 1).expect("read").is_none(),
            "dropped as oldest"
        );
        let chain = store.diffs_from(&zone, 3).expect("read").expect("chain");
        assert_eq!(chain.from_soa, soa(3), "the old version's own SOA");
        let chain = chain.diffs;
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[2].added[0], txt("t.example.test.", "5"));
        assert_eq!(soa_serial(&chain[2].to_soa), Some(6));
        assert!(store.diffs_from(&zone, 6).expect("read").is_none());
        let tiny = JournalLimits {
            diffs_max: 10,
            bytes_max: 1,
        };
        store
            .append_diff(
                &zone,
                &soa(6),
                &Diff {
                    from_serial: 6,
                    to_soa: soa(7),
                    deleted: vec![],
                    added: vec![],
                },
                tiny,
            )
            .expect("append");
        assert_eq!(
            store
                .diffs_from(&zone, 6)
                .expect("read")
                .map(|c| c.diffs.len()),
            Some(1),
            "the newest always stays"
        );
        store.clear_journal(&zone).expect("clear");
        assert!(store.diffs_from(&zone, 6).expect("read").is_none());
    }
}
