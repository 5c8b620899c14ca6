//! Transfers out (AXFR per RFC 5936, IXFR per RFC 1995): who may transfer a zone, and streaming
//! the messages of an allowed transfer.
//!
//! Deciding (`decide`) does no I/O and never reads the store: the UDP workers call it through
//! the responder, and an IXFR over UDP is answered with our SOA alone. Only `stream`, on a
//! stream connection and after a transfer slot (`transfer.transfers_max`) was taken, reads the
//! journal, on the blocking pool, never on an async worker thread.

use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::AsyncWrite;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use crate::clock::unix_now;
use crate::dns::tsig::{self, TsigKey};
use crate::dns::zone::Zone;
use crate::serve::request::{Client, Signer, Transport, base_response};
use crate::store::Store;
use crate::store::zoneset::ZoneSet;
use crate::xfr::framing::write_framed;
use crate::xfr::plan::{self, Packer, Plan};

/// A single-message answer to a transfer request (an error, or our SOA over UDP), signed when
/// the request was.
pub(super) struct TransferRefusal {
    /// The answer.
    pub(super) message: Message,
    /// The key to sign it with, when the request was signed and verified.
    pub(super) signer: Option<Signer>,
    /// The TSIG error (BADKEY, BADSIG, BADTIME) to report when the request's signature failed.
    pub(super) tsig_error: Option<u16>,
}

/// An allowed zone transfer, ready to stream. Holds its transfer slot until dropped.
pub struct TransferJob {
    zone: Arc<Zone>,
    /// For IXFR, the client's SOA from the request (None: AXFR). Which records go out is
    /// planned only in `stream`, because an IXFR plan reads the journal.
    ixfr_from: Option<Option<Record>>,
    id: u16,
    query: Query,
    signer: Option<Signer>,
    /// The OPT record of the first message (echoing the request's EDNS, with EXPIRE).
    edns: Option<Edns>,
    _permit: OwnedSemaphorePermit,
}

impl TransferJob {
    /// `ixfr` or `axfr`: what was asked for (the plan may still answer an IXFR AXFR-style).
    pub fn requested_kind(&self) -> &'static str {
        if self.ixfr_from.is_some() {
            "ixfr"
        } else {
            "axfr"
        }
    }
}

/// What a served transfer sent.
pub struct Served {
    /// `axfr`, `ixfr` or `ixfr_uptodate`.
    pub kind: &'static str,
    /// Messages written.
    pub messages: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Decides a transfer request: the zone must be ours exactly, the source allowed by the
/// zone's ACL (or a cluster member), and the TSIG (when present) valid. Over UDP an allowed
/// IXFR gets our SOA alone, which tells the client to come back over TCP (RFC 1995 2); an
/// AXFR over UDP is refused. Over a stream, a free slot in `transfers` is required.
pub(super) fn decide(
    zones: &ZoneSet,
    transfers: &Arc<Semaphore>,
    edns_payload_max: u16,
    request: &Message,
    wire: &[u8],
    client: &Client,
    now: u64,
) -> Result<TransferJob, Box<TransferRefusal>> {
    let source = client.ip;
    let query = &request.queries[0];
    let refuse = |rcode| {
        Box::new(TransferRefusal {
            message: base_response(request, rcode),
            signer: None,
            tsig_error: None,
        })
    };
    let Some(handle) = zones.get(&query.name) else {
        return Err(refuse(ResponseCode::NotAuth));
    };
    let policy = handle.policy();
    let keys: Vec<Arc<TsigKey>> = policy.allow_transfer.keys_for(source).cloned().collect();
    let lookup = |name: &Name| {
        keys.iter()
            .find(|key| key.name.eq_ignore_root(name))
            .map(AsRef::as_ref)
    };
    let signer = match tsig::verify_request(wire, lookup, now) {
        Ok(None) => None,
        Ok(Some((key, mac))) => keys
            .iter()
            .find(|candidate| candidate.name.eq_ignore_root(&key.name))
            .map(|key| (key.clone(), mac)),
        Err(error) => {
            warn!(zone = %handle.name, %source, %error, "transfer request failed TSIG verification; refused");
            return Err(Box::new(TransferRefusal {
                message: base_response(request, ResponseCode::NotAuth),
                signer: None,
                tsig_error: Some(error.tsig_rcode().unwrap_or(tsig::RCODE_BADSIG)),
            }));
        }
    };
    let key_name = signer.as_ref().map(|(key, _)| key.name.clone());
    let refuse_signed = |rcode| {
        Box::new(TransferRefusal {
            message: base_response(request, rcode),
            signer: signer.clone(),
            tsig_error: None,
        })
    };
    if !client.cluster_member && !policy.allow_transfer.allows(source, key_name.as_ref()) {
        warn!(zone = %handle.name, %source, key = ?key_name.as_ref().map(ToString::to_string), "transfer not allowed by the zone's ACL; refused");
        return Err(refuse_signed(ResponseCode::Refused));
    }
    let Some(zone) = handle.servable() else {
        return Err(refuse_signed(ResponseCode::ServFail));
    };
    if client.transport == Transport::Udp {
        if query.query_type == RecordType::IXFR {
            let mut answer = base_response(request, ResponseCode::NoError);
            answer.metadata.authoritative = true;
            answer.add_answer(zone.soa_record());
            return Err(Box::new(TransferRefusal {
                message: answer,
                signer,
                tsig_error: None,
            }));
        }
        return Err(refuse_signed(ResponseCode::Refused));
    }
    let Ok(permit) = transfers.clone().try_acquire_owned() else {
        warn!(zone = %handle.name, %source, "too many transfers running (transfer.transfers_max); refused");
        return Err(refuse_signed(ResponseCode::Refused));
    };
    info!(zone = %handle.name, %source, qtype = %query.query_type, serial = zone.serial(), "serving transfer");
    let mut echo = Query::query(query.name.clone(), query.query_type);
    echo.query_class = query.query_class;
    let edns = request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(edns_payload_max);
        if let Some(expire) = expire_option(zones, request, now) {
            edns.options_mut().insert(expire);
        }
        edns
    });
    Ok(TransferJob {
        zone,
        ixfr_from: (query.query_type == RecordType::IXFR)
            .then(|| plan::client_soa(request).cloned()),
        id: request.metadata.id,
        query: echo,
        signer,
        edns,
        _permit: permit,
    })
}

/// The EDNS EXPIRE option (RFC 7314) for an SOA, AXFR or IXFR request that asked for it: the
/// seconds left before our copy expires, which a secondary copying from us inherits. Reads an
/// atomic, never a lock: SOA queries with EXPIRE come over UDP.
pub(super) fn expire_option(zones: &ZoneSet, request: &Message, now: u64) -> Option<EdnsOption> {
    request.edns.as_ref()?.option(EdnsCode::Expire)?;
    let query = request
        .queries
        .first()
        .filter(|_| request.queries.len() == 1)?;
    if !matches!(
        query.query_type,
        RecordType::SOA | RecordType::AXFR | RecordType::IXFR
    ) {
        return None;
    }
    let remaining = zones.get(&query.name)?.expire_remaining(now)?;
    Some(EdnsOption::Unknown(
        u16::from(EdnsCode::Expire),
        remaining.to_be_bytes().to_vec(),
    ))
}

/// Plans the transfer (reading the journal for an IXFR, on the blocking pool) and writes every
/// message, TSIG-signed when the request was (each message signed, chained through the
/// previous MAC, RFC 8945 5.3.1). `store` None answers every IXFR AXFR-style.
pub async fn stream<S: AsyncWrite + Unpin>(
    stream: &mut S,
    job: TransferJob,
    store: Option<&Store>,
    idle_timeout: std::time::Duration,
) -> std::io::Result<Served> {
    let plan = match &job.ixfr_from {
        None => Plan::Full,
        Some(client) => {
            let client_serial = client.as_ref().and_then(|record| match &record.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            });
            let journal = match (store, client_serial) {
                (Some(store), Some(serial)) if serial != job.zone.serial() => {
                    let (store, name) = (store.clone(), job.zone.origin().clone());
                    tokio::task::spawn_blocking(move || store.diffs_from(&name, serial))
                        .await
                        .map_err(std::io::Error::other)?
                        .unwrap_or_else(|error| {
                            warn!(zone = %job.zone.origin(), %error, "cannot read the journal; answering AXFR-style");
                            None
                        })
                }
                _ => None,
            };
            plan::plan_ixfr(&job.zone, client.as_ref(), journal)
        }
    };
    let mut packer = Packer::new(plan::records(&job.zone, &plan), job.id, job.query.clone());
    let mut prior_mac = job.signer.as_ref().map(|(_, mac)| mac.clone());
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut edns = job.edns.clone();
    while let Some(mut message) = packer.next_message() {
        if let Some(edns) = edns.take() {
            message.set_edns(edns);
        }
        let mut wire = message.to_vec().map_err(std::io::Error::other)?;
        if let (Some((key, _)), Some(prior)) = (&job.signer, &prior_mac) {
            let mac = tsig::sign_response(&mut wire, key, unix_now(), prior, messages == 0)
                .map_err(std::io::Error::other)?;
            prior_mac = Some(mac);
        }
        tokio::time::timeout(idle_timeout, write_framed(stream, &wire))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")
            })??;
        messages += 1;
        bytes += wire.len() as u64;
    }
    Ok(Served {
        kind: plan.kind(),
        messages,
        bytes,
    })
}
