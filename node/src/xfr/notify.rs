//! NOTIFY to downstream secondaries (RFC 1996): after a new version is served, every
//! `also_notify` target is told, and the message is retransmitted with backoff until answered.
//!
//! Owns only the sending; `downstream` decides when a version is new. A newer version cancels
//! the retransmissions of the older one, so a burst of changes sends a bounded number of
//! messages.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Waits between attempts: 1, 2, 4, 8 and 16 seconds, then give up (BIND retries five times).
const RETRY_WAITS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Tells every target about the zone's current SOA, each in its own task, until answered or
/// out of attempts, or until `cancel` fires (a newer version supersedes this one).
pub fn announce(
    tasks: &mut JoinSet<()>,
    zone: &Name,
    soa: Record,
    targets: &[SocketAddr],
    cancel: &CancellationToken,
) {
    for &target in targets {
        let zone = zone.clone();
        let soa = soa.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => debug!(zone = %zone, %target, "NOTIFY superseded by a newer version"),
                result = notify(&zone, soa, target) => match result {
                    Ok(attempts) => info!(zone = %zone, %target, attempts, "NOTIFY answered"),
                    Err(error) => warn!(zone = %zone, %target, %error, "NOTIFY not answered; the downstream will catch up at its next refresh"),
                },
            }
        });
    }
}

/// Why a NOTIFY was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The socket could not be set up.
    #[error("{what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Our own message could not be encoded.
    #[error("encoding the NOTIFY: {0}")]
    Encode(String),
    /// The target answered with an error code.
    #[error("answered {0}")]
    Refused(ResponseCode),
    /// No answer after every retransmission.
    #[error("no answer after {0} attempts")]
    NoAnswer(usize),
}

/// Sends NOTIFY to one target until it answers; returns the number of attempts.
async fn notify(zone: &Name, soa: Record, target: SocketAddr) -> Result<usize, NotifyError> {
    let bind: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind)
        .await
        .map_err(|source| NotifyError::Socket {
            what: "binding a UDP socket",
            source,
        })?;
    socket
        .connect(target)
        .await
        .map_err(|source| NotifyError::Socket {
            what: "connecting",
            source,
        })?;
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(zone.clone(), RecordType::SOA));
    // The SOA in the answer section is a hint of the new serial (RFC 1996 3.7).
    message.add_answer(soa);
    let wire = message
        .to_vec()
        .map_err(|error| NotifyError::Encode(error.to_string()))?;
    let mut buffer = vec![0u8; 4096];
    for (attempt, wait) in RETRY_WAITS.iter().enumerate() {
        // A send error (no route, ICMP) is retried like a lost answer.
        let _ = socket.send(&wire).await;
        let answered = tokio::time::timeout(*wait, async {
            loop {
                let Ok(length) = socket.recv(&mut buffer).await else {
                    // An ICMP error (nobody listens): wait out this attempt instead of spinning.
                    std::future::pending::<()>().await;
                    continue;
                };
                if let Ok(answer) = Message::from_vec(&buffer[..length])
                    && answer.metadata.id == id
                    && answer.metadata.message_type == MessageType::Response
                    && answer.metadata.op_code == OpCode::Notify
                {
                    return answer.metadata.response_code;
                }
            }
        })
        .await;
        if let Ok(rcode) = answered {
            if rcode != ResponseCode::NoError {
                return Err(NotifyError::Refused(rcode));
            }
            return Ok(attempt + 1);
        }
    }
    Err(NotifyError::NoAnswer(RETRY_WAITS.len()))
}
