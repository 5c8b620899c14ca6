//! NOTIFY in (RFC 1996): accepted only from a zone's allowed addresses, and only signed when a
//! key is configured for the sender; an accepted NOTIFY wakes the zone's refresh task.
//!
//! No I/O: it decides and answers; the listener sends the answer.

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tracing::{info, warn};

use crate::dns::tsig;
use crate::metrics::{Metrics, NotifyOutcome};
use crate::serve::request::{Signer, base_response};
use crate::store::zoneset::ZoneSet;

/// Handles NOTIFY (RFC 1996): only from allowed addresses, signed when a key is configured
/// for the sender. Returns the answer and, for a signed request, the key and request MAC
/// to sign the answer with.
pub(super) fn handle(
    zones: &ZoneSet,
    metrics: &Metrics,
    request: &Message,
    wire: &[u8],
    source: IpAddr,
    now: u64,
) -> (Message, Option<Signer>) {
    let outcome = |outcome: NotifyOutcome| metrics.count_notify(outcome);
    let Some(query) = request
        .queries
        .first()
        .filter(|_| request.queries.len() == 1)
    else {
        outcome(NotifyOutcome::Refused);
        return (base_response(request, ResponseCode::FormErr), None);
    };
    if query.query_type != RecordType::SOA || query.query_class != DNSClass::IN {
        outcome(NotifyOutcome::Refused);
        return (base_response(request, ResponseCode::FormErr), None);
    }
    let Some(handle) = zones.get(&query.name) else {
        outcome(NotifyOutcome::Refused);
        warn!(zone = %query.name, %source, "NOTIFY for a zone we do not serve; refused");
        return (base_response(request, ResponseCode::NotAuth), None);
    };
    let policy = handle.policy();
    if !policy.notify_allow.contains(&source) {
        outcome(NotifyOutcome::Refused);
        warn!(zone = %handle.name, %source, "NOTIFY from an address not allowed for this zone; refused");
        return (base_response(request, ResponseCode::Refused), None);
    }
    let mut signer = None;
    if let Some((_, key)) = policy.notify_keys.iter().find(|(ip, _)| *ip == source) {
        let verified = tsig::verify_request(
            wire,
            |name: &Name| (name.eq_ignore_root(&key.name)).then_some(key.as_ref()),
            now,
        );
        match verified {
            Ok(Some((_, mac))) => signer = Some((key.clone(), mac)),
            Ok(None) => {
                outcome(NotifyOutcome::BadTsig);
                warn!(zone = %handle.name, %source, "unsigned NOTIFY where a TSIG key is configured; refused");
                return (base_response(request, ResponseCode::NotAuth), None);
            }
            Err(error) => {
                outcome(NotifyOutcome::BadTsig);
                warn!(zone = %handle.name, %source, %error, "NOTIFY failed TSIG verification; refused");
                return (base_response(request, ResponseCode::NotAuth), None);
            }
        }
    }
    outcome(NotifyOutcome::Accepted);
    info!(zone = %handle.name, %source, "NOTIFY accepted");
    handle.notify(source);
    let mut answer = base_response(request, ResponseCode::NoError);
    answer.metadata.authoritative = true;
    (answer, signer)
}
