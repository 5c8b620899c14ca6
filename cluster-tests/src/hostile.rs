//! `HostilePrimary`: a tiny primary on loopback (UDP and TCP) that answers SOA queries with a
//! chosen serial and zone transfers with a stream that is correct or deliberately broken.
//!
//! The mode and the serial can be switched while it runs, so a test can first let a secondary
//! load good data and then offer it a broken transfer of a newer serial. Request handling
//! (`Responder::respond`) is separate from the socket loops and unit tested without sockets.
//! It only ever binds 127.0.0.1.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::client::{read_framed, send_notify, write_framed};
use crate::tsig::{self, TsigKey};
use crate::util::free_port;

/// Most TCP connections served at once; further ones are closed at once.
const CONNECTIONS_MAX: usize = 16;
/// How long a TCP connection may stay idle before the double closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the socket loops look at the stop flag.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// An out-of-zone owner for `Mode::RecordOutsideZone`. Its labels deliberately avoid words a
/// secondary's error message is expected to contain ("outside", "zone"), so that a test looking
/// for the reason cannot be satisfied by the echoed owner name alone.
const FOREIGN_OWNER: &str = "www.victim.test.";

/// What the hostile primary does with zone transfer requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A correct transfer: SOA, the zone's records, SOA — signed with the configured key when
    /// the request was signed.
    Good,
    /// The records but no closing SOA; the connection is then closed.
    MissingFinalSoa,
    /// A complete transfer that also contains a record whose owner is outside the zone.
    RecordOutsideZone,
    /// A correct transfer signed with the right key name and algorithm but a different secret.
    /// SOA answers stay correctly signed, so a secondary gets as far as the transfer and the
    /// TSIG verification of the transfer stream is what is tested.
    WrongTsig,
}

/// Counters of what the double has received, for tests that wait for a secondary's attempt.
#[derive(Debug, Default)]
pub struct Counters {
    /// SOA queries received (UDP and TCP).
    pub soa_queries: AtomicUsize,
    /// AXFR and IXFR requests received over TCP.
    pub transfer_requests: AtomicUsize,
    /// Requests that carried a TSIG record.
    pub signed_requests: AtomicUsize,
}

/// The request-handling logic, shared by the socket threads.
#[derive(Debug)]
pub struct Responder {
    zone: Name,
    key: Option<TsigKey>,
    wrong_key: TsigKey,
    mode: Arc<Mutex<Mode>>,
    serial: Arc<Mutex<u32>>,
    counters: Arc<Counters>,
}

/// What to send back for one request.
#[derive(Debug, Default)]
pub struct Reply {
    /// Messages to send, in order (several only for a transfer over TCP).
    pub messages: Vec<Vec<u8>>,
    /// Close the TCP connection after sending.
    pub close: bool,
}

impl Responder {
    /// A responder for `zone` starting in `mode` at `serial`, requiring `key` for transfers when
    /// given.
    pub fn new(zone: &str, serial: u32, mode: Mode, key: Option<TsigKey>) -> Responder {
        let zone = crate::client::name(zone).to_lowercase();
        let wrong_key = match &key {
            Some(key) => key.with_other_secret(),
            None => TsigKey::generate("hostile-key", "hmac-sha256"),
        };
        Responder {
            zone,
            key,
            wrong_key,
            mode: Arc::new(Mutex::new(mode)),
            serial: Arc::new(Mutex::new(serial)),
            counters: Arc::new(Counters::default()),
        }
    }

    fn mode(&self) -> Mode {
        *self
            .mode
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn serial(&self) -> u32 {
        *self
            .serial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Handles one request received over UDP (`tcp == false`) or TCP.
    pub fn respond(&self, request_bytes: &[u8], tcp: bool) -> Reply {
        let Ok(request) = Message::from_vec(request_bytes) else {
            return Reply {
                messages: Vec::new(),
                close: true,
            };
        };
        if request.metadata.message_type != MessageType::Query {
            return Reply::default();
        }
        let request_mac = tsig::message_mac(&request);
        if request_mac.is_some() {
            self.counters
                .signed_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        let mode = self.mode();
        let serial = self.serial();
        let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.op_code = request.metadata.op_code;
        response.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            response.set_edns(edns);
        }
        let Some(question) = request.queries.first() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return self.finish(response, request_mac.as_deref(), mode, false);
        };
        if request.metadata.op_code == OpCode::Notify {
            response.metadata.authoritative = true;
            return self.finish(response, request_mac.as_deref(), mode, false);
        }
        if !self.zone.zone_of(&question.name().to_lowercase()) {
            response.metadata.response_code = ResponseCode::Refused;
            return self.finish(response, request_mac.as_deref(), mode, false);
        }
        response.metadata.authoritative = true;
        match question.query_type() {
            RecordType::SOA => {
                self.counters.soa_queries.fetch_add(1, Ordering::Relaxed);
                response.add_answer(self.soa(serial));
                self.finish(response, request_mac.as_deref(), mode, false)
            }
            RecordType::AXFR | RecordType::IXFR if !tcp => {
                // Over UDP, a single SOA means "ask again over TCP" (RFC 1995 section 2).
                response.add_answer(self.soa(serial));
                self.finish(response, request_mac.as_deref(), mode, false)
            }
            RecordType::AXFR | RecordType::IXFR => {
                self.counters
                    .transfer_requests
                    .fetch_add(1, Ordering::Relaxed);
                if self.key.is_some() && request_mac.is_none() && mode != Mode::WrongTsig {
                    // Like BIND with `allow-transfer { key ...; }`: unsigned requests are refused.
                    response.metadata.authoritative = false;
                    response.metadata.response_code = ResponseCode::Refused;
                    return self.finish(response, None, mode, false);
                }
                // IXFR requests get the AXFR-style answer, which RFC 1995 section 4 allows.
                response.add_answers(self.transfer_records(serial, mode));
                let close = mode == Mode::MissingFinalSoa;
                self.finish(response, request_mac.as_deref(), mode, close)
            }
            _ => self.finish(response, request_mac.as_deref(), mode, false),
        }
    }

    /// Signs (as the mode dictates) and encodes `response`.
    fn finish(
        &self,
        mut response: Message,
        request_mac: Option<&[u8]>,
        mode: Mode,
        close: bool,
    ) -> Reply {
        let transfer =
            response.queries.first().is_some_and(|query| {
                matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
            }) && !response.answers.is_empty();
        match (mode, &self.key, request_mac) {
            (Mode::WrongTsig, _, _) if transfer => {
                tsig::sign(&mut response, &self.wrong_key, request_mac);
            }
            (_, Some(key), Some(request_mac)) => {
                tsig::sign(&mut response, key, Some(request_mac));
            }
            _ => {}
        }
        match response.to_vec() {
            Ok(bytes) => Reply {
                messages: vec![bytes],
                close,
            },
            Err(error) => panic!("the hostile primary cannot encode its own response: {error}"),
        }
    }

    fn soa(&self, serial: u32) -> Record {
        let rdata = SOA::new(
            self.relative("ns1"),
            self.relative("hostmaster"),
            serial,
            // Short refresh and retry so a secondary polls by itself even without NOTIFY; a long
            // expire so broken transfers never make the zone expire during a test.
            2,
            1,
            86_400,
            60,
        );
        Record::from_rdata(self.zone.clone(), 300, RData::SOA(rdata))
    }

    /// The records of one transfer answer in `mode`.
    fn transfer_records(&self, serial: u32, mode: Mode) -> Vec<Record> {
        let mut records = vec![
            self.soa(serial),
            Record::from_rdata(self.zone.clone(), 300, RData::NS(NS(self.relative("ns1")))),
            Record::from_rdata(
                self.relative("ns1"),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
            ),
            Record::from_rdata(
                self.relative("www"),
                300,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 80))),
            ),
            Record::from_rdata(
                self.relative("version"),
                300,
                RData::TXT(TXT::new(vec![format!("serial {serial}")])),
            ),
        ];
        match mode {
            Mode::MissingFinalSoa => {}
            Mode::RecordOutsideZone => {
                records.insert(
                    3,
                    Record::from_rdata(
                        crate::client::name(FOREIGN_OWNER),
                        300,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 66))),
                    ),
                );
                records.push(self.soa(serial));
            }
            Mode::Good | Mode::WrongTsig => records.push(self.soa(serial)),
        }
        records
    }

    fn relative(&self, label: &str) -> Name {
        crate::client::name(&format!("{label}.{}", self.zone.to_ascii()))
    }
}

/// A running hostile primary; dropping it stops the socket threads.
#[derive(Debug)]
pub struct HostilePrimary {
    addr: SocketAddr,
    responder: Arc<Responder>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HostilePrimary {
    /// Starts serving `zone` at `serial` in `mode` on a free loopback port. With `key`, transfer
    /// requests must be signed with it (and `Mode::Good` signs its answers with it).
    pub fn start(zone: &str, serial: u32, mode: Mode, key: Option<TsigKey>) -> HostilePrimary {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind(addr)
            .unwrap_or_else(|error| panic!("hostile primary cannot bind UDP {addr}: {error}"));
        let tcp = TcpListener::bind(addr)
            .unwrap_or_else(|error| panic!("hostile primary cannot bind TCP {addr}: {error}"));
        udp.set_read_timeout(Some(STOP_POLL_INTERVAL))
            .unwrap_or_else(|error| panic!("cannot set a UDP timeout: {error}"));
        tcp.set_nonblocking(true)
            .unwrap_or_else(|error| panic!("cannot make the listener non-blocking: {error}"));
        let responder = Arc::new(Responder::new(zone, serial, mode, key));
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let responder = Arc::clone(&responder);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || serve_udp(&udp, &responder, &stop))
        };
        let tcp_thread = {
            let responder = Arc::clone(&responder);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || serve_tcp(&tcp, &responder, &stop))
        };
        HostilePrimary {
            addr,
            responder,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// The address (UDP and TCP) to configure as the primary.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the transfer behaviour.
    pub fn set_mode(&self, mode: Mode) {
        *self
            .responder
            .mode
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = mode;
    }

    /// Changes the serial announced in SOA answers and transfers.
    pub fn set_serial(&self, serial: u32) {
        *self
            .responder
            .serial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = serial;
    }

    /// What the double has received so far.
    pub fn counters(&self) -> &Counters {
        &self.responder.counters
    }

    /// Number of AXFR/IXFR requests received over TCP so far.
    pub fn transfer_requests(&self) -> usize {
        self.responder
            .counters
            .transfer_requests
            .load(Ordering::Relaxed)
    }

    /// Sends a NOTIFY for the zone, from 127.0.0.1 (the primary's own address), to `target`;
    /// signed with the key when the double has one.
    pub fn notify(&self, target: SocketAddr) -> anyhow::Result<Message> {
        send_notify(
            target,
            &self.responder.zone.to_ascii(),
            Some(self.responder.serial()),
            self.addr.ip(),
            self.responder.key.as_ref(),
            Duration::from_secs(2),
        )
    }
}

impl Drop for HostilePrimary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The UDP loop: one datagram in, at most one out, until `stop`.
fn serve_udp(socket: &UdpSocket, responder: &Responder, stop: &AtomicBool) {
    let mut buffer = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let (length, peer) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => continue,
        };
        let reply = responder.respond(&buffer[..length], false);
        if let Some(message) = reply.messages.first() {
            let _ = socket.send_to(message, peer);
        }
    }
}

/// The TCP accept loop: each connection gets a thread, at most `CONNECTIONS_MAX` at once.
fn serve_tcp(listener: &TcpListener, responder: &Arc<Responder>, stop: &Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        if active.load(Ordering::Relaxed) >= CONNECTIONS_MAX {
            continue;
        }
        active.fetch_add(1, Ordering::Relaxed);
        let responder = Arc::clone(responder);
        let stop = Arc::clone(stop);
        let active = Arc::clone(&active);
        std::thread::spawn(move || {
            serve_connection(stream, &responder, &stop);
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Serves requests on one TCP connection until the peer closes it, it idles out, a reply asks
/// to close, or `stop`.
fn serve_connection(mut stream: TcpStream, responder: &Responder, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(TCP_IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(TCP_IDLE_TIMEOUT)).is_err()
    {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(request)) = read_framed(&mut stream) else {
            return;
        };
        let reply = responder.respond(&request, true);
        for message in &reply.messages {
            if write_framed(&mut stream, message).is_err() {
                return;
            }
        }
        if reply.close {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{QueryOptions, build_query};

    fn answers(responder: &Responder, rtype: RecordType, tcp: bool) -> (Message, bool) {
        let request = build_query("example.test", rtype, &QueryOptions::no_edns());
        let reply = responder.respond(&request.to_vec().expect("encodes"), tcp);
        assert_eq!(reply.messages.len(), 1);
        (
            Message::from_vec(&reply.messages[0]).expect("decodes"),
            reply.close,
        )
    }

    /// Sends `responder` a request for `rtype` signed with `key`; returns the first message of
    /// the reply and the request's MAC, which signs (and verifies) that reply.
    fn signed_answer(
        responder: &Responder,
        key: &TsigKey,
        rtype: RecordType,
        tcp: bool,
    ) -> (Message, Vec<u8>) {
        let mut request = build_query("example.test", rtype, &QueryOptions::no_edns());
        let request_mac = tsig::sign(&mut request, key, None);
        let reply = responder.respond(&request.to_vec().expect("encodes"), tcp);
        let received = Message::from_vec(&reply.messages[0]).expect("decodes");
        (received, request_mac)
    }

    fn soa_count(message: &Message) -> usize {
        message
            .answers
            .iter()
            .filter(|record| record.record_type() == RecordType::SOA)
            .count()
    }

    #[test]
    fn good_transfer_starts_and_ends_with_the_soa() {
        let responder = Responder::new("example.test", 7, Mode::Good, None);
        let (message, close) = answers(&responder, RecordType::AXFR, true);
        assert!(!close);
        assert_eq!(soa_count(&message), 2);
        assert_eq!(
            message.answers.first().map(Record::record_type),
            Some(RecordType::SOA)
        );
        assert_eq!(
            message.answers.last().map(Record::record_type),
            Some(RecordType::SOA)
        );
    }

    #[test]
    fn broken_modes_break_the_stream() {
        let responder = Responder::new("example.test", 7, Mode::MissingFinalSoa, None);
        let (message, close) = answers(&responder, RecordType::AXFR, true);
        assert!(close);
        assert_eq!(soa_count(&message), 1);

        *responder.mode.lock().expect("not poisoned") = Mode::RecordOutsideZone;
        let (message, _) = answers(&responder, RecordType::IXFR, true);
        let zone = crate::client::name("example.test");
        assert!(
            message
                .answers
                .iter()
                .any(|record| !zone.zone_of(&record.name))
        );
        assert_eq!(soa_count(&message), 2);
    }

    #[test]
    fn wrong_tsig_signs_with_another_secret() {
        let key = TsigKey::generate("xfr-key", "hmac-sha256");
        let responder = Responder::new("example.test", 7, Mode::WrongTsig, Some(key.clone()));
        let (received, request_mac) = signed_answer(&responder, &key, RecordType::AXFR, true);
        let received_mac = tsig::message_mac(&received).expect("signed");

        // Re-signing the same response reproduces the MAC with the wrong key only.
        let time = tsig::message_tsig(&received).expect("signed").time;
        let mut resigned = received.clone();
        let wrong_mac = tsig::sign_at(
            &mut resigned,
            &responder.wrong_key,
            Some(&request_mac),
            time,
        );
        assert_eq!(received_mac, wrong_mac);
        let right_mac = tsig::sign_at(&mut resigned, &key, Some(&request_mac), time);
        assert_ne!(received_mac, right_mac);
    }

    #[test]
    fn wrong_tsig_mode_signs_soa_answers_with_the_right_key() {
        let key = TsigKey::generate("xfr-key", "hmac-sha256");
        let responder = Responder::new("example.test", 7, Mode::WrongTsig, Some(key.clone()));
        let (received, request_mac) = signed_answer(&responder, &key, RecordType::SOA, false);
        let tsig = tsig::message_tsig(&received).expect("signed");
        let mut resigned = received.clone();
        let right_mac = tsig::sign_at(&mut resigned, &key, Some(&request_mac), tsig.time);
        assert_eq!(tsig.mac, right_mac);
    }

    #[test]
    fn unsigned_transfer_is_refused_when_a_key_is_required() {
        let key = TsigKey::generate("xfr-key", "hmac-sha256");
        let responder = Responder::new("example.test", 7, Mode::Good, Some(key));
        let (message, _) = answers(&responder, RecordType::AXFR, true);
        assert_eq!(message.metadata.response_code, ResponseCode::Refused);
        let (message, _) = answers(&responder, RecordType::SOA, false);
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    }
}
