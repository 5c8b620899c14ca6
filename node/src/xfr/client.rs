//! The transfer client: SOA checks over UDP (falling back to TCP) and AXFR/IXFR over TCP, with
//! TSIG on requests and verified on every response message.
//!
//! Owns the sockets of one exchange and the deadlines; the meaning of the stream is decided by
//! `xfr::Interpreter`, and what to do with the outcome by the caller (`secondary`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tracing::info;

use crate::clock::unix_now;
use crate::dns::tsig::{self, StreamVerifier, TsigError, TsigKey};
use crate::dns::zone::ZoneError;
use crate::xfr::connect::{ConnectError, Connector, DnsStream};
use crate::xfr::framing::{read_framed, write_framed};
use crate::xfr::interpreter::{Interpreter, Outcome, Request, XfrError};

/// How often a long transfer logs its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Why an exchange with a primary failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// No answer within the deadline.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The primary's answer is not a DNS message we can decode.
    #[error("undecodable answer: {0}")]
    Malformed(String),
    /// The answer failed TSIG verification, or the primary reported a TSIG error.
    #[error("TSIG: {0}")]
    Tsig(#[from] TsigError),
    /// The transfer stream was rejected.
    #[error("{0}")]
    Stream(#[from] XfrError),
    /// The connection could not be opened (TCP, TLS handshake, QUIC).
    #[error("{0}")]
    Transport(#[from] ConnectError),
    /// Our own request could not be encoded: our fault, not the primary's.
    #[error("cannot encode our own request: {0}")]
    Encode(String),
    /// The SOA answer carried no SOA for the zone.
    #[error("SOA query answered {rcode} without the zone's SOA")]
    NoSoa {
        /// The response code of the answer.
        rcode: ResponseCode,
    },
}

impl TransferError {
    /// True when an IXFR failure should be retried as AXFR from the same primary: the server
    /// does not do IXFR, or its stream did not make sense.
    pub fn wants_axfr(&self) -> bool {
        match self {
            // A stream that made no sense, or an error code (NOTIMP, FORMERR, REFUSED, ...):
            // AXFR may still work where IXFR does not. Exceeded limits would be exceeded again.
            TransferError::Stream(
                XfrError::TooManyRecords { .. }
                | XfrError::TooManyBytes { .. }
                | XfrError::Zone(ZoneError::TooManyRecords { .. }),
            ) => false,
            TransferError::Stream(_) | TransferError::Malformed(_) => true,
            // Transport failures and TSIG failures would fail the same way again.
            TransferError::Io { .. }
            | TransferError::Transport(_)
            | TransferError::Timeout(_)
            | TransferError::Tsig(_)
            | TransferError::Encode(_)
            | TransferError::NoSoa { .. } => false,
        }
    }

    /// A short, stable name of the cause, for status and as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            // In TLS 1.3 a server's refusal of our certificate arrives as an alert on the first
            // read after the handshake: still a TLS failure, not the network's.
            TransferError::Io { source, .. }
                if source
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>()) =>
            {
                "tls"
            }
            TransferError::Io { .. } => "network",
            TransferError::Timeout(_) => "timeout",
            TransferError::Malformed(_) => "malformed",
            TransferError::Tsig(_) => "tsig",
            TransferError::Stream(XfrError::Rcode(_)) | TransferError::NoSoa { .. } => "refused",
            TransferError::Stream(
                XfrError::TooManyRecords { .. }
                | XfrError::TooManyBytes { .. }
                | XfrError::Zone(ZoneError::TooManyRecords { .. }),
            ) => "too_large",
            TransferError::Stream(_) => "bad_stream",
            TransferError::Transport(error) => error.kind(),
            TransferError::Encode(_) => "internal",
        }
    }
}

/// Limits of one transfer.
#[derive(Debug, Clone, Copy)]
pub struct TransferLimits {
    /// Most records.
    pub records_max: u64,
    /// Most message bytes.
    pub bytes_max: u64,
    /// Longest whole transfer.
    pub transfer_timeout: Duration,
    /// Longest wait for one message.
    pub query_timeout: Duration,
}

/// What an SOA query learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaAnswer {
    /// The server's serial.
    pub serial: u32,
    /// The EDNS EXPIRE value (RFC 7314), when the server sent one: seconds its copy stays valid.
    pub expire: Option<u32>,
}

/// Asks `server` for the zone's SOA serial. Over plain TCP sources UDP goes first, TCP when the
/// answer is truncated or UDP gets no answer; TLS and QUIC sources are asked over their own
/// encrypted transport only (no fallback to cleartext).
pub async fn query_soa(
    server: SocketAddr,
    zone: &Name,
    key: Option<&TsigKey>,
    timeout: Duration,
    connector: &Connector,
) -> Result<SoaAnswer, TransferError> {
    let SignedRequest {
        wire: request,
        mac: request_mac,
        id,
    } = build_request(zone, RecordType::SOA, None, key, connector)?;
    let udp = async {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal address")
        } else {
            "[::]:0".parse().expect("literal address")
        };
        let socket = UdpSocket::bind(bind)
            .await
            .map_err(|source| TransferError::Io {
                what: "binding a UDP socket",
                source,
            })?;
        socket
            .connect(server)
            .await
            .map_err(|source| TransferError::Io {
                what: "connecting a UDP socket",
                source,
            })?;
        socket
            .send(&request)
            .await
            .map_err(|source| TransferError::Io {
                what: "sending the SOA query",
                source,
            })?;
        let mut buffer = vec![0u8; 65_535];
        // Answers with another ID (late or forged) are ignored until the deadline.
        loop {
            let length = socket
                .recv(&mut buffer)
                .await
                .map_err(|source| TransferError::Io {
                    what: "receiving the SOA answer",
                    source,
                })?;
            let wire = &buffer[..length];
            if wire.len() >= 2 && u16::from_be_bytes([wire[0], wire[1]]) == id {
                return Ok::<Vec<u8>, TransferError>(wire.to_vec());
            }
        }
    };
    let wire = if connector.allows_udp() {
        match tokio::time::timeout(timeout, udp).await {
            Ok(Ok(wire)) if !is_truncated(&wire) => Some(wire),
            Ok(Ok(_)) | Err(_) => None,
            Ok(Err(error)) => return Err(error),
        }
    } else {
        None
    };
    let wire = match wire {
        Some(wire) => wire,
        None => {
            let tcp = async {
                let mut stream = send_query(connector, server, &request).await?;
                read_framed(&mut stream)
                    .await
                    .map_err(|source| TransferError::Io {
                        what: "reading the SOA answer",
                        source,
                    })?
                    .ok_or(TransferError::Timeout("the SOA answer (connection closed)"))
            };
            tokio::time::timeout(timeout, tcp)
                .await
                .map_err(|_| TransferError::Timeout("the SOA answer"))??
        }
    };
    if let (Some(key), Some(mac)) = (key, request_mac) {
        let mut verifier = StreamVerifier::new(key.clone(), mac);
        verifier.verify(&wire, unix_now())?;
        verifier.finish()?;
    }
    let message =
        Message::from_vec(&wire).map_err(|error| TransferError::Malformed(error.to_string()))?;
    if message.metadata.id != id {
        return Err(TransferError::Malformed(
            "answer ID does not match the query".into(),
        ));
    }
    let serial = message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) if record.name.eq_ignore_root(zone) => Some(soa.serial),
            _ => None,
        })
        .ok_or(TransferError::NoSoa {
            rcode: message.metadata.response_code,
        })?;
    let expire = message
        .edns
        .as_ref()
        .and_then(|edns| edns.option(EdnsCode::Expire))
        .and_then(|option| match option {
            EdnsOption::Unknown(_, data) => <[u8; 4]>::try_from(data.as_slice()).ok(),
            _ => None,
        })
        .map(u32::from_be_bytes);
    Ok(SoaAnswer { serial, expire })
}

/// Runs one AXFR or IXFR over TCP and returns its interpreted outcome. For IXFR,
/// `current_soa` is our SOA record (RFC 1995 3: it goes in the authority section).
pub async fn transfer(
    server: SocketAddr,
    zone: &Name,
    request: Request,
    current_soa: Option<Record>,
    key: Option<&TsigKey>,
    limits: TransferLimits,
    connector: &Connector,
) -> Result<Outcome, TransferError> {
    let started = Instant::now();
    let work = async {
        let qtype = match request {
            Request::Axfr => RecordType::AXFR,
            Request::Ixfr { .. } => RecordType::IXFR,
        };
        let authority = match request {
            Request::Ixfr { .. } => current_soa,
            Request::Axfr => None,
        };
        let SignedRequest {
            wire,
            mac: request_mac,
            id,
        } = build_request(zone, qtype, authority, key, connector)?;
        let mut stream = send_query(connector, server, &wire).await?;
        let mut verifier = match (key, request_mac) {
            (Some(key), Some(mac)) => Some(StreamVerifier::new(key.clone(), mac)),
            _ => None,
        };
        let mut interpreter =
            Interpreter::new(zone.clone(), request, limits.records_max, limits.bytes_max);
        let mut last_progress = Instant::now();
        loop {
            let next = tokio::time::timeout(limits.query_timeout, read_framed(&mut stream))
                .await
                .map_err(|_| TransferError::Timeout("the next transfer message"))?
                .map_err(|source| TransferError::Io {
                    what: "reading the transfer stream",
                    source,
                })?;
            let Some(wire) = next else {
                // The server closed the stream: complete only if the closing SOA was seen.
                return Ok(interpreter.finish()?);
            };
            if let Some(verifier) = verifier.as_mut() {
                verifier.verify(&wire, unix_now())?;
            }
            let message = Message::from_vec(&wire)
                .map_err(|error| TransferError::Malformed(error.to_string()))?;
            if message.metadata.id != id {
                return Err(TransferError::Malformed(
                    "message ID does not match the request".into(),
                ));
            }
            let done = interpreter.feed(&message, wire.len())?;
            if last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                info!(
                    zone = %zone,
                    %server,
                    records = interpreter.records(),
                    bytes = interpreter.bytes(),
                    records_per_s = (interpreter.records() as f64 / seconds) as u64,
                    "transfer in progress"
                );
            }
            if done {
                if let Some(verifier) = &verifier {
                    verifier.finish()?;
                }
                let elapsed = started.elapsed();
                if elapsed >= PROGRESS_INTERVAL {
                    info!(
                        zone = %zone,
                        %server,
                        records = interpreter.records(),
                        bytes = interpreter.bytes(),
                        elapsed_ms = elapsed.as_millis() as u64,
                        records_per_s = (interpreter.records() as f64 / elapsed.as_secs_f64()) as u64,
                        "transfer complete"
                    );
                }
                return Ok(interpreter.finish()?);
            }
        }
    };
    tokio::time::timeout(limits.transfer_timeout, work)
        .await
        .map_err(|_| TransferError::Timeout("the whole transfer (limits.transfer_timeout)"))?
}

/// Opens a stream with the connector and sends one query on it (closing the sending side
/// afterwards where the transport wants that: QUIC).
async fn send_query(
    connector: &Connector,
    server: SocketAddr,
    query: &[u8],
) -> Result<Box<dyn DnsStream>, TransferError> {
    let (mut stream, finish) = connector.open(server).await?;
    write_framed(&mut stream, query)
        .await
        .map_err(|source| TransferError::Io {
            what: "sending the query",
            source,
        })?;
    if finish {
        stream
            .shutdown()
            .await
            .map_err(|source| TransferError::Io {
                what: "finishing the QUIC stream",
                source,
            })?;
    }
    Ok(stream)
}

/// A query ready to send.
struct SignedRequest {
    /// Its wire form, TSIG included when signed.
    wire: Vec<u8>,
    /// The request MAC, when signed: the first response's MAC covers it.
    mac: Option<Vec<u8>>,
    /// The message ID that answers must carry.
    id: u16,
}

/// Builds a query, signed when a key is given.
fn build_request(
    zone: &Name,
    qtype: RecordType,
    authority: Option<Record>,
    key: Option<&TsigKey>,
    connector: &Connector,
) -> Result<SignedRequest, TransferError> {
    // DoQ messages carry ID 0 (RFC 9250 4.2.1): the stream identifies the exchange.
    let id: u16 = match connector {
        Connector::Quic { .. } => 0,
        _ => rand::random(),
    };
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.op_code = OpCode::Query;
    message.add_query(Query::query(zone.clone(), qtype));
    if let Some(record) = authority {
        message.add_authority(record);
    }
    // Ask for EDNS EXPIRE (RFC 7314): a source that is itself a secondary tells how long its
    // copy stays valid, and ours must not outlive it.
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Unknown(u16::from(EdnsCode::Expire), Vec::new()));
    message.set_edns(edns);
    let mut wire = message
        .to_vec()
        .map_err(|error| TransferError::Encode(error.to_string()))?;
    let mac = match key {
        Some(key) => Some(tsig::sign(&mut wire, key, unix_now(), None)?),
        None => None,
    };
    Ok(SignedRequest { wire, mac, id })
}

fn is_truncated(wire: &[u8]) -> bool {
    wire.len() > 2 && wire[2] & 0x02 != 0
}
