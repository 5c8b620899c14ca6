//! The query server: UDP and TCP listeners that answer authoritatively from the zone set, and
//! accept NOTIFY from allowed primaries.
//!
//! `Responder` is the whole request-to-answer decision and does no I/O: `answer_plain` is the
//! fast path for plain queries (wire in, wire out, nothing allocated), `reply_to` everything
//! else. The listeners around it (here for TCP, `udp` for UDP) only move bytes. The query path
//! reads zone snapshots through `ZoneSet` and never waits for a transfer or the store.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::unix_now;
use crate::config::ServerConfig;
use crate::dns::lookup::{AnyPolicy, lookup};
use crate::dns::name::{KeyBuf, name_wire, parent_key};
use crate::dns::response::{OptReply, Question, parse_plain_query, write_answer, write_status};
use crate::dns::tsig::{self, TsigKey};
use crate::dns::zone::Zone;
use crate::metrics::{Metrics, NotifyLabels};
use crate::serve::encrypted;
use crate::serve::udp;
use crate::store::Store;
use crate::store::zoneset::ZoneSet;
use crate::xfr::connect::Transports;
use crate::xfr::framing::{read_framed, write_framed};
use crate::xfr::plan::{self, Packer, Plan};

/// Largest answer over UDP without EDNS (RFC 1035 4.2.1).
const UDP_PAYLOAD_PLAIN: usize = 512;

/// Largest DNS message over TCP.
const TCP_PAYLOAD_MAX: usize = 65_535;

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The XoT or XoQ listener could not be configured.
    #[error("{0}")]
    Tls(#[from] crate::tls::CertError),
    /// XoT or XoQ listeners are configured without the certificate they need.
    #[error("{0} needs [tls] with certificate, private_key and ca")]
    NoIdentity(&'static str),
    /// A listen address could not be bound.
    #[error("cannot listen on {address} ({protocol}): {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// UDP or TCP.
        protocol: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// The transport a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: answers are limited in size.
    Udp,
    /// TCP.
    Tcp,
}

/// Who sent a request, as far as answering it is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The source address (IPv4-mapped addresses already folded to IPv4).
    pub ip: IpAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// True when the client proved with a certificate from the cluster CA that it is a member
    /// of this cluster (XoQ, or XoT with client certificates): members may transfer every zone.
    pub cluster_member: bool,
}

impl Client {
    /// A client known only by its address.
    pub fn anonymous(ip: IpAddr, transport: Transport) -> Client {
        Client {
            ip: ip.to_canonical(),
            transport,
            cluster_member: false,
        }
    }
}

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Queries and NOTIFY.
    All,
    /// NOTIFY only.
    NotifyOnly,
}

/// The key and request MAC that the answer to a signed request is signed with.
type Signer = (Arc<TsigKey>, Vec<u8>);

/// Everything `respond` needs.
pub struct Responder {
    /// The zones.
    pub zones: Arc<ZoneSet>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The largest UDP payload we send.
    pub edns_payload_max: u16,
    /// The journal that IXFR answers come from (None: every IXFR is answered AXFR-style).
    pub store: Option<Store>,
    /// Transfers served at once (`transfer.transfers_max`).
    pub transfers: Arc<Semaphore>,
    /// Every configured TSIG key: a signed query is verified with it and answered signed.
    pub keys: Vec<Arc<TsigKey>>,
    /// Longest time one transfer out may take (`limits.transfer_timeout`).
    pub transfer_timeout: std::time::Duration,
}

/// A single-message answer to a transfer request (an error, or our SOA over UDP), signed when
/// the request was.
struct TransferRefusal {
    message: Message,
    signer: Option<Signer>,
    /// The TSIG error (BADKEY, BADSIG, BADTIME) to report when the request's signature failed.
    tsig_error: Option<u16>,
}

/// What to send back for one request.
pub enum Reply {
    /// One message.
    Message(Vec<u8>),
    /// A zone transfer: a stream of messages (TCP only).
    Transfer(Box<TransferJob>),
}

/// An allowed zone transfer, ready to stream.
pub struct TransferJob {
    zone: Arc<Zone>,
    plan: Plan,
    id: u16,
    query: Query,
    signer: Option<Signer>,
    /// The OPT record of the first message (echoing the request's EDNS, with EXPIRE).
    edns: Option<Edns>,
    _permit: OwnedSemaphorePermit,
}

/// Bound sockets, ready to serve.
pub struct Listeners {
    udp: Vec<(Arc<std::net::UdpSocket>, Role)>,
    tcp: Vec<(TcpListener, Role)>,
    encrypted: encrypted::Listeners,
}

impl Listeners {
    /// Binds every configured address (UDP and TCP), failing with the address that could not
    /// be bound.
    pub async fn bind(
        config: &ServerConfig,
        transports: &Transports,
    ) -> Result<Listeners, ServeError> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            encrypted: encrypted::Listeners::bind(config, transports).await?,
        };
        let addresses = config
            .listen
            .iter()
            .map(|a| (*a, Role::All))
            .chain(config.notify_listen.iter().map(|a| (*a, Role::NotifyOnly)));
        // One UDP socket and worker per core on every address.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        for (address, role) in addresses {
            let udp = udp::bind(address, workers).map_err(|source| ServeError::Bind {
                address,
                protocol: "UDP",
                source,
            })?;
            let tcp = TcpListener::bind(address)
                .await
                .map_err(|source| ServeError::Bind {
                    address,
                    protocol: "TCP",
                    source,
                })?;
            info!(%address, ?role, udp_sockets = udp.len(), "listening for DNS on UDP and TCP");
            listeners
                .udp
                .extend(udp.into_iter().map(|socket| (Arc::new(socket), role)));
            listeners.tcp.push((tcp, role));
        }
        Ok(listeners)
    }

    /// Serves until `cancel` fires.
    pub async fn serve(
        self,
        responder: Arc<Responder>,
        config: ServerConfig,
        cancel: CancellationToken,
    ) {
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Semaphore::new(config.tcp_connections_max));
        // One blocking worker thread per UDP socket (threads of their own, not the blocking
        // pool: they never end until shutdown, when their socket is shut to wake them).
        for (index, (socket, role)) in self.udp.into_iter().enumerate() {
            let waker = socket.clone();
            let stop = cancel.clone();
            tasks.spawn(async move {
                stop.cancelled().await;
                udp::wake(&waker);
            });
            let (responder, cancel) = (responder.clone(), cancel.clone());
            let (done, finished) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name(format!("udp-{index}"))
                .spawn(move || {
                    udp::worker(socket, role, responder, cancel);
                    let _ = done.send(());
                });
            match spawned {
                Ok(_) => {
                    tasks.spawn(async move {
                        let _ = finished.await;
                    });
                }
                Err(error) => warn!(%error, "cannot start a UDP worker thread"),
            }
        }
        for (listener, role) in self.tcp {
            tasks.spawn(serve_tcp(
                listener,
                role,
                responder.clone(),
                connections.clone(),
                config.tcp_idle_timeout,
                cancel.clone(),
            ));
        }
        self.encrypted
            .spawn(&mut tasks, &responder, &config, connections, &cancel);
        while tasks.join_next().await.is_some() {}
    }
}

async fn serve_tcp(
    listener: TcpListener,
    role: Role,
    responder: Arc<Responder>,
    connections: Arc<Semaphore>,
    idle_timeout: std::time::Duration,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "TCP accept error");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            debug!(%peer, "too many TCP connections; closing the new one");
            continue;
        };
        let responder = responder.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = serve_connection(stream, Client::anonymous(peer.ip(), Transport::Tcp), role, responder, idle_timeout) => {}
            }
        });
    }
}

pub(crate) async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    client: Client,
    role: Role,
    responder: Arc<Responder>,
    idle_timeout: std::time::Duration,
) {
    loop {
        let request = match tokio::time::timeout(idle_timeout, read_framed(&mut stream)).await {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(error)) => {
                debug!(peer = %client.ip, %error, "stream read error");
                return;
            }
        };
        if answer_on(
            &mut stream,
            &request,
            &client,
            role,
            &responder,
            idle_timeout,
        )
        .await
        .is_err()
        {
            return;
        }
    }
}

/// Answers one request on a stream (TCP, TLS or a QUIC stream): one message, or every
/// message of a transfer. An error means the stream is unusable and must be closed.
pub(crate) async fn answer_on<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
    client: &Client,
    role: Role,
    responder: &Responder,
    idle_timeout: std::time::Duration,
) -> Result<(), ()> {
    let answer = match responder.reply_to(request, client, role) {
        None => return Err(()),
        Some(Reply::Message(answer)) => answer,
        Some(Reply::Transfer(job)) => {
            let kind = job.plan.kind();
            let started = std::time::Instant::now();
            // A bound on the whole transfer, as for transfers in: a client that reads slowly but
            // steadily must not hold a transfer slot forever.
            let result = tokio::time::timeout(
                responder.transfer_timeout,
                stream_transfer(stream, *job, idle_timeout),
            )
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the transfer took longer than limits.transfer_timeout",
                ))
            });
            responder.metrics.transfer_out(kind, result.is_ok());
            return match result {
                Ok((messages, bytes)) => {
                    info!(
                        peer = %client.ip,
                        kind,
                        messages,
                        bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "transfer served"
                    );
                    Ok(())
                }
                Err(error) => {
                    warn!(peer = %client.ip, kind, %error, "transfer out failed");
                    Err(())
                }
            };
        }
    };
    // A client that never reads must not hold its connection slot forever.
    match tokio::time::timeout(idle_timeout, write_framed(stream, &answer)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(()),
    }
}

/// Writes every message of a transfer, TSIG-signed when the request was (each message signed,
/// chained through the previous MAC, RFC 8945 5.3.1). Returns messages and bytes sent.
async fn stream_transfer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    job: TransferJob,
    idle_timeout: std::time::Duration,
) -> std::io::Result<(u64, u64)> {
    let mut packer = Packer::new(
        plan::records(&job.zone, &job.plan),
        job.id,
        job.query.clone(),
    );
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
    Ok((messages, bytes))
}

impl Responder {
    /// Answers one request with one message; None means "send nothing" (responses, garbage,
    /// or a transfer, which only TCP streams).
    pub fn respond(
        &self,
        request: &[u8],
        source: IpAddr,
        transport: Transport,
        role: Role,
    ) -> Option<Vec<u8>> {
        match self.reply_to(request, &Client::anonymous(source, transport), role)? {
            Reply::Message(answer) => Some(answer),
            Reply::Transfer(_) => None,
        }
    }

    /// Answers a plain query (one question, no TSIG, no EDNS options: `parse_plain_query`)
    /// into `out`, without the general message parser. False when the request is not plain
    /// and must take the general path.
    pub fn answer_plain(
        &self,
        request: &[u8],
        transport: Transport,
        role: Role,
        out: &mut Vec<u8>,
    ) -> bool {
        if role != Role::All {
            return false;
        }
        let Some(plain) = parse_plain_query(request) else {
            return false;
        };
        let qtype = RecordType::from(plain.question.qtype);
        if matches!(
            qtype,
            RecordType::AXFR | RecordType::IXFR | RecordType::OPT | RecordType::TSIG
        ) {
            return false;
        }
        let rcode = self.answer_question(&plain.question, plain.edns, &[], transport, out);
        self.count(rcode, Some(qtype));
        true
    }

    /// Answers one question from the zones into `out`; returns the response code.
    fn answer_question(
        &self,
        question: &Question<'_>,
        edns: Option<(u16, bool)>,
        options: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> ResponseCode {
        let opt = edns.map(|(_, dnssec_ok)| OptReply {
            payload: self.edns_payload_max,
            dnssec_ok,
            options,
        });
        let limit = match (transport, edns) {
            (Transport::Tcp, _) => TCP_PAYLOAD_MAX,
            (Transport::Udp, None) => UDP_PAYLOAD_PLAIN,
            (Transport::Udp, Some((payload, _))) => {
                usize::from(payload.clamp(512, self.edns_payload_max))
            }
        };
        let mut status = |rcode| {
            write_status(out, question, rcode, opt.as_ref());
            rcode
        };
        if question.qclass != u16::from(DNSClass::IN) {
            return status(ResponseCode::Refused);
        }
        let key_buf = KeyBuf::of_wire(question.qname);
        let key = key_buf.as_slice();
        let Some((apex_len, mut handle)) = self.zones.find_key(key) else {
            return status(ResponseCode::Refused);
        };
        let qtype = RecordType::from(question.qtype);
        // The DS RRset at a child's apex belongs to the parent side (RFC 4035 3.1.4.1): when we
        // serve the parent too, answer from it.
        if qtype == RecordType::DS
            && apex_len == key.len()
            && !key.is_empty()
            && let Some((_, parent)) = self.zones.find_key(parent_key(key))
        {
            handle = parent;
        }
        let Some(zone) = handle.servable() else {
            return status(ResponseCode::ServFail);
        };
        let any = match transport {
            Transport::Udp => AnyPolicy::Minimal,
            Transport::Tcp => AnyPolicy::Full,
        };
        let found = lookup(&zone, &key_buf, qtype, any);
        write_answer(out, question, &found, opt.as_ref(), limit);
        found.rcode
    }

    /// Answers one request from `client`: one message, or a transfer to stream.
    pub fn reply_to(&self, request: &[u8], client: &Client, role: Role) -> Option<Reply> {
        let transport = client.transport;
        let mut plain = Vec::new();
        if self.answer_plain(request, transport, role, &mut plain) {
            return Some(Reply::Message(plain));
        }
        let message = match Message::from_vec(request) {
            Ok(message) => message,
            Err(_) => return self.formerr_from_header(request).map(Reply::Message),
        };
        if message.metadata.message_type != MessageType::Query {
            return None;
        }
        // `Client::anonymous` already folded ::ffff:a.b.c.d to IPv4, which is what ACLs hold.
        let source = client.ip;
        if let Some(edns) = &message.edns
            && edns.version() != 0
        {
            self.count(
                ResponseCode::BADVERS,
                message.queries.first().map(|q| q.query_type),
            );
            return self
                .encode(
                    error_response(&message, ResponseCode::BADVERS),
                    &message,
                    transport,
                    false,
                )
                .map(Reply::Message);
        }
        if message.metadata.op_code == OpCode::Notify {
            let (answer, signer) = self.notify(&message, request, source);
            self.count(answer.metadata.response_code, Some(RecordType::SOA));
            let mut wire = self.encode(answer, &message, transport, false)?;
            if let Some((key, request_mac)) = signer {
                // A signed NOTIFY gets a signed answer (RFC 8945 5.3), or the primary logs it
                // as unverifiable.
                tsig::sign_response(&mut wire, &key, unix_now(), &request_mac, true).ok()?;
            }
            return Some(Reply::Message(wire));
        }
        let is_transfer = message.queries.len() == 1
            && matches!(
                message.queries[0].query_type,
                RecordType::AXFR | RecordType::IXFR
            );
        if is_transfer && message.metadata.op_code == OpCode::Query && role == Role::All {
            let qtype = message.queries.first().map(|q| q.query_type);
            return match self.transfer(&message, request, client) {
                Ok(job) => {
                    self.count(ResponseCode::NoError, qtype);
                    Some(Reply::Transfer(Box::new(job)))
                }
                Err(answer) => {
                    self.count(answer.message.metadata.response_code, qtype);
                    let mut wire = self.encode(answer.message, &message, transport, false)?;
                    if let Some((key, request_mac)) = answer.signer {
                        tsig::sign_response(&mut wire, &key, unix_now(), &request_mac, true)
                            .ok()?;
                    }
                    if let (Some(error), Ok(Some(record))) =
                        (answer.tsig_error, tsig::find(request))
                    {
                        tsig::append_error(&mut wire, &record, error, unix_now()).ok()?;
                    }
                    Some(Reply::Message(wire))
                }
            };
        }
        // A signed query (RFC 8945 5.2) is verified with our keys and answered signed; a failed
        // signature gets NOTAUTH with the TSIG error, unsigned.
        let signer = match tsig::find(request) {
            Ok(None) => None,
            Err(_) => {
                self.count(ResponseCode::FormErr, None);
                let answer = error_response(&message, ResponseCode::FormErr);
                return self
                    .encode(answer, &message, transport, false)
                    .map(Reply::Message);
            }
            Ok(Some(record)) => {
                let lookup = |name: &Name| {
                    self.keys
                        .iter()
                        .find(|key| key.name.eq_ignore_root(name))
                        .map(AsRef::as_ref)
                };
                match tsig::verify_request(request, lookup, unix_now()) {
                    Ok(Some((key, mac))) => self
                        .keys
                        .iter()
                        .find(|candidate| candidate.name.eq_ignore_root(&key.name))
                        .map(|key| (key.clone(), mac)),
                    Ok(None) => None,
                    Err(error) => {
                        debug!(%source, %error, "query failed TSIG verification");
                        self.count(
                            ResponseCode::NotAuth,
                            message.queries.first().map(|q| q.query_type),
                        );
                        let answer = error_response(&message, ResponseCode::NotAuth);
                        let mut wire = self.encode(answer, &message, transport, false)?;
                        let code = error.tsig_rcode().unwrap_or(tsig::RCODE_BADSIG);
                        tsig::append_error(&mut wire, &record, code, unix_now()).ok()?;
                        return Some(Reply::Message(wire));
                    }
                }
            }
        };
        let (mut wire, rcode) = match (message.metadata.op_code, role) {
            (OpCode::Query, Role::All) => self.query(&message, transport)?,
            (OpCode::Query, Role::NotifyOnly) => {
                self.error_wire(&message, ResponseCode::Refused, transport)?
            }
            _ => self.error_wire(&message, ResponseCode::NotImp, transport)?,
        };
        let qtype = message.queries.first().map(|q| q.query_type);
        self.count(rcode, qtype);
        if let Some((key, request_mac)) = signer {
            tsig::sign_response(&mut wire, &key, unix_now(), &request_mac, true).ok()?;
        }
        Some(Reply::Message(wire))
    }

    /// Decides a transfer request (RFC 5936 4.1, RFC 1995): the zone must be ours exactly, the
    /// source allowed by the zone's ACL, and the TSIG (when present) valid. Over UDP an allowed
    /// IXFR gets our SOA alone, which tells the client to come back over TCP.
    fn transfer(
        &self,
        request: &Message,
        wire: &[u8],
        client: &Client,
    ) -> Result<TransferJob, Box<TransferRefusal>> {
        let (source, transport) = (client.ip, client.transport);
        let query = &request.queries[0];
        let refuse = |rcode| {
            Box::new(TransferRefusal {
                message: error_response(request, rcode),
                signer: None,
                tsig_error: None,
            })
        };
        let Some(handle) = self.zones.get(&query.name) else {
            return Err(refuse(ResponseCode::NotAuth));
        };
        let keys: Vec<Arc<TsigKey>> = handle.allow_transfer.keys_for(source).cloned().collect();
        let lookup = |name: &Name| {
            keys.iter()
                .find(|key| key.name.eq_ignore_root(name))
                .map(AsRef::as_ref)
        };
        let signer = match tsig::verify_request(wire, lookup, unix_now()) {
            Ok(None) => None,
            Ok(Some((key, mac))) => keys
                .iter()
                .find(|candidate| candidate.name.eq_ignore_root(&key.name))
                .map(|key| (key.clone(), mac)),
            Err(error) => {
                warn!(zone = %handle.name, %source, %error, "transfer request failed TSIG verification; refused");
                return Err(Box::new(TransferRefusal {
                    message: error_response(request, ResponseCode::NotAuth),
                    signer: None,
                    tsig_error: Some(error.tsig_rcode().unwrap_or(tsig::RCODE_BADSIG)),
                }));
            }
        };
        let key_name = signer.as_ref().map(|(key, _)| key.name.clone());
        let refuse_signed = |rcode| {
            Box::new(TransferRefusal {
                message: error_response(request, rcode),
                signer: signer.clone(),
                tsig_error: None,
            })
        };
        if !client.cluster_member && !handle.allow_transfer.allows(source, key_name.as_ref()) {
            warn!(zone = %handle.name, %source, key = ?key_name.as_ref().map(ToString::to_string), "transfer not allowed by the zone's ACL; refused");
            return Err(refuse_signed(ResponseCode::Refused));
        }
        let Some(zone) = handle.servable() else {
            return Err(refuse_signed(ResponseCode::ServFail));
        };
        let plan = match query.query_type {
            RecordType::IXFR => {
                let client = plan::client_soa(request);
                let client_serial = client.and_then(|record| match &record.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                });
                let journal = match (&self.store, client_serial) {
                    (Some(store), Some(serial)) if serial != zone.serial() => {
                        store.diffs_from(&handle.name, serial).unwrap_or_else(|error| {
                            warn!(zone = %handle.name, %error, "cannot read the journal; answering AXFR-style");
                            None
                        })
                    }
                    _ => None,
                };
                plan::plan_ixfr(&zone, client, journal)
            }
            _ => Plan::Full,
        };
        if transport == Transport::Udp {
            // Transfers need a stream; an IXFR over UDP learns our serial and retries over TCP
            // (RFC 1995 2), an AXFR over UDP is refused.
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
        let Ok(permit) = self.transfers.clone().try_acquire_owned() else {
            warn!(zone = %handle.name, %source, "too many transfers running (transfer.transfers_max); refused");
            return Err(refuse_signed(ResponseCode::Refused));
        };
        info!(zone = %handle.name, %source, kind = plan.kind(), serial = zone.serial(), "serving transfer");
        let mut echo = Query::query(query.name.clone(), query.query_type);
        echo.query_class = query.query_class;
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(self.edns_payload_max);
            if let Some(expire) = self.expire_option(request) {
                edns.options_mut().insert(expire);
            }
            edns
        });
        Ok(TransferJob {
            zone,
            plan,
            id: request.metadata.id,
            query: echo,
            signer,
            edns,
            _permit: permit,
        })
    }

    /// A FORMERR answer for a request whose header is readable but whose body is not.
    fn formerr_from_header(&self, request: &[u8]) -> Option<Vec<u8>> {
        if request.len() < 12 || request[2] & 0x80 != 0 {
            return None;
        }
        let id = u16::from_be_bytes([request[0], request[1]]);
        let opcode = OpCode::from_u8((request[2] >> 3) & 0x0f);
        let mut answer = Message::error_msg(id, opcode, ResponseCode::FormErr);
        answer.metadata.recursion_desired = request[2] & 0x01 != 0;
        self.count(ResponseCode::FormErr, None);
        answer.to_vec().ok()
    }

    /// An error answer with no records, encoded, and its code.
    fn error_wire(
        &self,
        request: &Message,
        rcode: ResponseCode,
        transport: Transport,
    ) -> Option<(Vec<u8>, ResponseCode)> {
        let wire = self.encode(error_response(request, rcode), request, transport, false)?;
        Some((wire, rcode))
    }

    /// Answers a QUERY that is not plain (EDNS options, a signature, a compressed question):
    /// the checks the plain path leaves out, then the same lookup and encoder.
    fn query(&self, request: &Message, transport: Transport) -> Option<(Vec<u8>, ResponseCode)> {
        if request.queries.len() != 1 {
            return self.error_wire(request, ResponseCode::FormErr, transport);
        }
        let query = &request.queries[0];
        match query.query_type {
            // `reply_to` sends every transfer request to `transfer` before this point; the guard
            // keeps `query` from ever answering a transfer type out of the zone data.
            RecordType::AXFR | RecordType::IXFR => {
                return self.error_wire(request, ResponseCode::Refused, transport);
            }
            RecordType::OPT | RecordType::TSIG => {
                return self.error_wire(request, ResponseCode::FormErr, transport);
            }
            _ => {}
        }
        let qname = name_wire(&query.name);
        let question = Question {
            id: request.metadata.id,
            recursion_desired: request.metadata.recursion_desired,
            checking_disabled: request.metadata.checking_disabled,
            qname: &qname,
            qtype: u16::from(query.query_type),
            qclass: u16::from(query.query_class),
        };
        let mut options = Vec::new();
        if let Some(EdnsOption::Unknown(code, data)) = self.expire_option(request) {
            options.extend_from_slice(&code.to_be_bytes());
            options.extend_from_slice(&(data.len() as u16).to_be_bytes());
            options.extend_from_slice(&data);
        }
        let edns = request
            .edns
            .as_ref()
            .map(|edns| (edns.max_payload(), edns.flags().dnssec_ok));
        let mut out = Vec::with_capacity(512);
        let rcode = self.answer_question(&question, edns, &options, transport, &mut out);
        Some((out, rcode))
    }

    /// Handles NOTIFY (RFC 1996): only from allowed addresses, signed when a key is configured
    /// for the sender. Returns the answer and, for a signed request, the key and request MAC
    /// to sign the answer with.
    fn notify(&self, request: &Message, wire: &[u8], source: IpAddr) -> (Message, Option<Signer>) {
        let outcome = |label: &str| {
            self.metrics
                .notifies
                .get_or_create(&NotifyLabels {
                    outcome: label.to_string(),
                })
                .inc();
        };
        let Some(query) = request
            .queries
            .first()
            .filter(|_| request.queries.len() == 1)
        else {
            outcome("refused");
            return (error_response(request, ResponseCode::FormErr), None);
        };
        if query.query_type != RecordType::SOA || query.query_class != DNSClass::IN {
            outcome("refused");
            return (error_response(request, ResponseCode::FormErr), None);
        }
        let Some(handle) = self.zones.get(&query.name) else {
            outcome("refused");
            warn!(zone = %query.name, %source, "NOTIFY for a zone we do not serve; refused");
            return (error_response(request, ResponseCode::NotAuth), None);
        };
        if !handle.notify_allow.contains(&source) {
            outcome("refused");
            warn!(zone = %handle.name, %source, "NOTIFY from an address not allowed for this zone; refused");
            return (error_response(request, ResponseCode::Refused), None);
        }
        let mut signer = None;
        if let Some((_, key)) = handle.notify_keys.iter().find(|(ip, _)| *ip == source) {
            let verified = tsig::verify_request(
                wire,
                |name: &Name| (name.eq_ignore_root(&key.name)).then_some(key.as_ref()),
                unix_now(),
            );
            match verified {
                Ok(Some((_, mac))) => signer = Some((key.clone(), mac)),
                Ok(None) => {
                    outcome("bad_tsig");
                    warn!(zone = %handle.name, %source, "unsigned NOTIFY where a TSIG key is configured; refused");
                    return (error_response(request, ResponseCode::NotAuth), None);
                }
                Err(error) => {
                    outcome("bad_tsig");
                    warn!(zone = %handle.name, %source, %error, "NOTIFY failed TSIG verification; refused");
                    return (error_response(request, ResponseCode::NotAuth), None);
                }
            }
        }
        outcome("accepted");
        info!(zone = %handle.name, %source, "NOTIFY accepted");
        handle.notify(source);
        let mut answer = base_response(request, ResponseCode::NoError);
        answer.metadata.authoritative = true;
        (answer, signer)
    }

    /// Encodes an answer within the size the transport allows: additional records are dropped
    /// first (unless they are glue a referral needs), then TC is set with empty sections.
    fn encode(
        &self,
        mut answer: Message,
        request: &Message,
        transport: Transport,
        glue_required: bool,
    ) -> Option<Vec<u8>> {
        if let Some(edns) = &request.edns {
            let mut reply = Edns::new();
            reply.set_max_payload(self.edns_payload_max);
            reply.set_version(0);
            reply.set_dnssec_ok(edns.flags().dnssec_ok);
            if let Some(expire) = self.expire_option(request) {
                reply.options_mut().insert(expire);
            }
            answer.edns = Some(reply);
        }
        let limit = match (transport, &request.edns) {
            (Transport::Tcp, _) => TCP_PAYLOAD_MAX,
            (Transport::Udp, None) => UDP_PAYLOAD_PLAIN,
            (Transport::Udp, Some(edns)) => {
                usize::from(edns.max_payload().clamp(512, self.edns_payload_max))
            }
        };
        let wire = answer.to_vec().ok()?;
        if wire.len() <= limit {
            return Some(wire);
        }
        if !glue_required && !answer.additionals.is_empty() {
            answer.additionals.clear();
            let wire = answer.to_vec().ok()?;
            if wire.len() <= limit {
                return Some(wire);
            }
        }
        answer.metadata.truncation = true;
        answer.answers.clear();
        answer.authorities.clear();
        answer.additionals.clear();
        answer.to_vec().ok()
    }

    /// The EDNS EXPIRE option (RFC 7314) for an SOA, AXFR or IXFR request that asked for it:
    /// the seconds left before our copy expires, which a secondary copying from us inherits.
    fn expire_option(&self, request: &Message) -> Option<EdnsOption> {
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
        let handle = self.zones.get(&query.name)?;
        let remaining = handle.expire_remaining(unix_now())?;
        Some(EdnsOption::Unknown(
            u16::from(EdnsCode::Expire),
            remaining.to_be_bytes().to_vec(),
        ))
    }

    fn count(&self, rcode: ResponseCode, qtype: Option<RecordType>) {
        self.metrics.count_query(rcode, qtype);
    }
}

/// A response carrying the request's question, ID, opcode and RD/CD flags.
fn base_response(request: &Message, rcode: ResponseCode) -> Message {
    let mut answer = Message::response(request.metadata.id, request.metadata.op_code);
    answer.metadata.recursion_desired = request.metadata.recursion_desired;
    answer.metadata.checking_disabled = request.metadata.checking_disabled;
    answer.metadata.response_code = rcode;
    if let Some(query) = request.queries.first() {
        let mut echo = Query::query(query.name.clone(), query.query_type);
        echo.query_class = query.query_class;
        answer.add_query(echo);
    }
    answer
}

fn error_response(request: &Message, rcode: ResponseCode) -> Message {
    base_response(request, rcode)
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Edns;

    use super::*;
    use crate::config::{Primary, ZoneConfig, ZoneSource};
    use crate::dns::zone::Zone;
    use crate::dns::zone::tests::{LIMITS, base_records, name, txt};

    const PRIMARY: &str = "192.0.2.53";

    fn responder(loaded: bool) -> Responder {
        let config = ZoneConfig {
            name: name("example.test."),
            source: ZoneSource::Primaries(vec![Primary {
                address: SocketAddr::new(PRIMARY.parse().expect("ip"), 53),
                tsig_key: None,
                transport: crate::config::SourceTransport::Tcp,
            }]),
            notify_allow: vec![PRIMARY.parse().expect("ip")],
            allow_transfer: Default::default(),
            also_notify: Vec::new(),
        };
        let zones = Arc::new(ZoneSet::new(&[config]));
        if loaded {
            let mut records = base_records();
            for index in 0..40 {
                records.push(txt("big.example.test.", &format!("{index:0>60}")));
            }
            let zone = Zone::from_records(&name("example.test."), records, LIMITS).expect("valid");
            zones
                .get(&name("example.test."))
                .expect("zone")
                .publish(Arc::new(zone));
        }
        Responder {
            zones,
            metrics: Arc::new(Metrics::new()),
            edns_payload_max: 1232,
            store: None,
            transfers: Arc::new(Semaphore::new(4)),
            keys: Vec::new(),
            transfer_timeout: std::time::Duration::from_secs(60),
        }
    }

    fn request(qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
        let mut message = Message::query();
        message.metadata.id = 4242;
        message.add_query(Query::query(name(qname), qtype));
        if let Some(size) = edns {
            let mut edns = Edns::new();
            edns.set_max_payload(size);
            message.set_edns(edns);
        }
        message
    }

    fn ask(responder: &Responder, message: &Message, transport: Transport) -> Message {
        let wire = message.to_vec().expect("encode");
        let answer = responder
            .respond(
                &wire,
                "198.51.100.7".parse().expect("ip"),
                transport,
                Role::All,
            )
            .expect("an answer");
        Message::from_vec(&answer).expect("decodable answer")
    }

    #[test]
    fn answers_authoritatively_preserving_case() {
        let answer = ask(
            &responder(true),
            &request("WwW.Example.TEST.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(answer.metadata.id, 4242);
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert_eq!(answer.queries[0].name.to_ascii(), "WwW.Example.TEST.");
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.answers[0].name.to_ascii(), "WwW.Example.TEST.");
    }

    #[test]
    fn refuses_outside_zones_and_transfers() {
        let responder = responder(true);
        for (qname, qtype) in [
            ("www.other.test.", RecordType::A),
            ("example.test.", RecordType::AXFR),
            ("example.test.", RecordType::IXFR),
        ] {
            let answer = ask(&responder, &request(qname, qtype, None), Transport::Tcp);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{qname} {qtype}"
            );
            assert!(!answer.metadata.authoritative);
        }
    }

    #[test]
    fn servfail_before_the_first_load() {
        let answer = ask(
            &responder(false),
            &request("www.example.test.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn servfail_when_expired() {
        let responder = responder(true);
        responder
            .zones
            .get(&name("example.test."))
            .expect("zone")
            .set_expired(true);
        let answer = ask(
            &responder,
            &request("www.example.test.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn truncates_to_the_offered_payload() {
        let responder = responder(true);
        let plain = ask(
            &responder,
            &request("big.example.test.", RecordType::TXT, None),
            Transport::Udp,
        );
        assert!(plain.metadata.truncation);
        assert!(plain.answers.is_empty());
        let small = ask(
            &responder,
            &request("big.example.test.", RecordType::TXT, Some(1232)),
            Transport::Udp,
        );
        assert!(small.metadata.truncation);
        assert_eq!(small.edns.as_ref().map(Edns::max_payload), Some(1232));
        let large = ask(
            &responder,
            &request("big.example.test.", RecordType::TXT, Some(4096)),
            Transport::Udp,
        );
        assert!(large.metadata.truncation, "our own limit of 1232 applies");
        let tcp = ask(
            &responder,
            &request("big.example.test.", RecordType::TXT, None),
            Transport::Tcp,
        );
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 40);
    }

    #[test]
    fn rejects_bad_requests() {
        let responder = responder(true);
        let source = "198.51.100.7".parse().expect("ip");
        // A readable header with a body that does not parse: FORMERR with the same ID.
        let mut garbage = request("www.example.test.", RecordType::A, None)
            .to_vec()
            .expect("encode");
        garbage.truncate(15);
        let answer = responder
            .respond(&garbage, source, Transport::Udp, Role::All)
            .expect("FORMERR");
        let answer = Message::from_vec(&answer).expect("decodable");
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(answer.metadata.id, 4242);
        // Too short for a header, or a response: silence.
        assert!(
            responder
                .respond(&[1, 2, 3], source, Transport::Udp, Role::All)
                .is_none()
        );
        let mut response = request("www.example.test.", RecordType::A, None);
        response.metadata.message_type = MessageType::Response;
        assert!(
            responder
                .respond(
                    &response.to_vec().expect("encode"),
                    source,
                    Transport::Udp,
                    Role::All
                )
                .is_none()
        );
        // Unknown EDNS version: BADVERS.
        let mut versioned = request("www.example.test.", RecordType::A, Some(1232));
        versioned.edns.as_mut().expect("edns").set_version(1);
        // BADVERS and BADSIG share the value 16; hickory decodes it as BADSIG.
        let badvers = ask(&responder, &versioned, Transport::Udp)
            .metadata
            .response_code;
        assert_eq!(u16::from(badvers), 16);
        // UPDATE is not implemented.
        let mut update = request("example.test.", RecordType::SOA, None);
        update.metadata.op_code = OpCode::Update;
        assert_eq!(
            ask(&responder, &update, Transport::Udp)
                .metadata
                .response_code,
            ResponseCode::NotImp
        );
        // Two questions: FORMERR.
        let mut two = request("www.example.test.", RecordType::A, None);
        two.add_query(Query::query(name("example.test."), RecordType::SOA));
        assert_eq!(
            ask(&responder, &two, Transport::Udp).metadata.response_code,
            ResponseCode::FormErr
        );
    }

    #[test]
    fn notify_only_from_allowed_addresses() {
        let responder = responder(true);
        let mut notify = request("example.test.", RecordType::SOA, None);
        notify.metadata.op_code = OpCode::Notify;
        notify.metadata.authoritative = true;
        let wire = notify.to_vec().expect("encode");
        let from_primary = responder
            .respond(
                &wire,
                PRIMARY.parse().expect("ip"),
                Transport::Udp,
                Role::NotifyOnly,
            )
            .expect("answer");
        let from_primary = Message::from_vec(&from_primary).expect("decodable");
        assert_eq!(from_primary.metadata.response_code, ResponseCode::NoError);
        assert_eq!(from_primary.metadata.op_code, OpCode::Notify);
        let stranger = responder
            .respond(
                &wire,
                "203.0.113.9".parse().expect("ip"),
                Transport::Udp,
                Role::All,
            )
            .expect("answer");
        assert_eq!(
            Message::from_vec(&stranger)
                .expect("decodable")
                .metadata
                .response_code,
            ResponseCode::Refused
        );
        // A query on a NOTIFY-only listener is refused.
        let query = request("www.example.test.", RecordType::A, None)
            .to_vec()
            .expect("encode");
        let refused = responder
            .respond(
                &query,
                PRIMARY.parse().expect("ip"),
                Transport::Udp,
                Role::NotifyOnly,
            )
            .expect("answer");
        assert_eq!(
            Message::from_vec(&refused)
                .expect("decodable")
                .metadata
                .response_code,
            ResponseCode::Refused
        );
    }

    /// Mutated requests (bit flips, truncation, random bytes) are answered or dropped, never a
    /// panic. Seeded, so a failure reproduces; the seed is in the message.
    #[test]
    fn survives_mutated_requests() {
        use rand::{Rng, SeedableRng};
        let seed = 0x5eed_2026;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let responder = responder(true);
        let base = request("www.example.test.", RecordType::A, Some(1232))
            .to_vec()
            .expect("encode");
        let source = "198.51.100.7".parse().expect("ip");
        for round in 0..20_000 {
            let mut wire = base.clone();
            match round % 3 {
                0 => {
                    for _ in 0..rng.random_range(1..4) {
                        let index = rng.random_range(0..wire.len());
                        wire[index] ^= 1 << rng.random_range(0..8);
                    }
                }
                1 => wire.truncate(rng.random_range(0..wire.len())),
                _ => wire = (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            }
            let transport = if round % 2 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            if let Some(answer) = responder.respond(&wire, source, transport, Role::All) {
                assert!(
                    answer.len() >= 12,
                    "seed {seed}, round {round}: short answer"
                );
            }
        }
    }

    #[test]
    fn ds_at_a_child_apex_comes_from_the_parent() {
        use crate::dns::zone::tests::{a, ns};
        use hickory_proto::rr::rdata::SOA;
        use hickory_proto::rr::{RData, Record};
        let configs: Vec<ZoneConfig> = ["example.test.", "child.example.test."]
            .iter()
            .map(|zone| ZoneConfig {
                name: name(zone),
                source: ZoneSource::File("unused".into()),
                notify_allow: Vec::new(),
                allow_transfer: Default::default(),
                also_notify: Vec::new(),
            })
            .collect();
        let zones = Arc::new(ZoneSet::new(&configs));
        let mut parent = base_records();
        parent.push(ns("child.example.test.", "ns.child.example.test."));
        parent.push(a("ns.child.example.test.", "192.0.2.30"));
        let child_soa = Record::from_rdata(
            name("child.example.test."),
            300,
            RData::SOA(SOA::new(
                name("ns.child.example.test."),
                name("h.child.example.test."),
                3,
                1,
                1,
                1,
                60,
            )),
        );
        let child = vec![
            child_soa,
            ns("child.example.test.", "ns.child.example.test."),
            a("ns.child.example.test.", "192.0.2.30"),
        ];
        for (apex, records) in [("example.test.", parent), ("child.example.test.", child)] {
            let zone = Zone::from_records(&name(apex), records, LIMITS).expect("valid");
            zones
                .get(&name(apex))
                .expect("zone")
                .publish(Arc::new(zone));
        }
        let responder = Responder {
            zones,
            metrics: Arc::new(Metrics::new()),
            edns_payload_max: 1232,
            store: None,
            transfers: Arc::new(Semaphore::new(4)),
            keys: Vec::new(),
            transfer_timeout: std::time::Duration::from_secs(60),
        };
        let ds = ask(
            &responder,
            &request("child.example.test.", RecordType::DS, None),
            Transport::Udp,
        );
        assert!(ds.metadata.authoritative);
        assert_eq!(ds.authorities.len(), 1);
        assert_eq!(
            ds.authorities[0].name,
            name("example.test."),
            "the parent's SOA, not the child's"
        );
        let ns_query = ask(
            &responder,
            &request("child.example.test.", RecordType::NS, None),
            Transport::Udp,
        );
        assert!(
            ns_query.metadata.authoritative,
            "NS at the child apex comes from the child"
        );
    }

    #[test]
    fn notify_acl_sees_ipv4_through_mapped_addresses() {
        let responder = responder(true);
        let mut notify = request("example.test.", RecordType::SOA, None);
        notify.metadata.op_code = OpCode::Notify;
        let wire = notify.to_vec().expect("encode");
        let mapped: IpAddr = format!("::ffff:{PRIMARY}").parse().expect("ip");
        let answer = responder
            .respond(&wire, mapped, Transport::Udp, Role::All)
            .expect("answer");
        assert_eq!(
            Message::from_vec(&answer)
                .expect("decodable")
                .metadata
                .response_code,
            ResponseCode::NoError
        );
    }

    #[test]
    fn signed_queries_get_signed_answers_and_bad_signatures_notauth() {
        use crate::dns::tsig::{Algorithm, StreamVerifier};
        let key = Arc::new(TsigKey {
            name: name("query-key."),
            algorithm: Algorithm::HmacSha256,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        });
        let mut responder = responder(true);
        responder.keys = vec![key.clone()];
        let source = "198.51.100.7".parse().expect("ip");
        let mut wire = request("example.test.", RecordType::SOA, None)
            .to_vec()
            .expect("encode");
        let mac = tsig::sign(&mut wire, &key, unix_now(), None).expect("sign");
        let answer = responder
            .respond(&wire, source, Transport::Udp, Role::All)
            .expect("answer");
        let mut verifier = StreamVerifier::new(key.as_ref().clone(), mac);
        verifier
            .verify(&answer, unix_now())
            .expect("the answer is signed with the query's key");
        verifier.finish().expect("complete");

        let wrong = TsigKey {
            secret: b"another secret, not the shared one".to_vec(),
            ..key.as_ref().clone()
        };
        let mut wire = request("example.test.", RecordType::SOA, None)
            .to_vec()
            .expect("encode");
        tsig::sign(&mut wire, &wrong, unix_now(), None).expect("sign");
        let answer = responder
            .respond(&wire, source, Transport::Udp, Role::All)
            .expect("answer");
        assert_eq!(
            Message::from_vec(&answer)
                .expect("decodable")
                .metadata
                .response_code,
            ResponseCode::NotAuth
        );
        let record = tsig::find(&answer)
            .expect("well formed")
            .expect("a TSIG record");
        assert!(record.rdata.mac.is_empty(), "BADSIG answers are unsigned");
        assert_eq!(record.rdata.error.map(u16::from), Some(tsig::RCODE_BADSIG));
    }
}
