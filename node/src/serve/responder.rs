//! The responder: the whole request-to-answer decision, with no I/O. `answer_plain` is the
//! fast path for plain queries (wire in, wire out, nothing allocated); `reply_to` handles
//! everything else, handing NOTIFY to `notify` and transfer requests to `transfer`.
//!
//! **Invariant:** the responder holds no store and takes no lock on the query path: it reads
//! zone snapshots through `ZoneSet` (atomic loads) and never waits for a transfer. The journal
//! that IXFR answers need is read only by `transfer::stream`, on a stream connection.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::clock::unix_now;
use crate::dns::lookup::{AnyPolicy, lookup};
use crate::dns::name::{KeyBuf, name_wire, parent_key};
use crate::dns::response::{OptReply, Question, parse_plain_query, write_answer, write_status};
use crate::dns::tsig::{self, TsigKey};
use crate::metrics::Metrics;
use crate::serve::notify;
use crate::serve::request::{Client, Role, Transport, base_response};
use crate::serve::transfer::{self, TransferJob};
use crate::store::zoneset::ZoneSet;

/// Largest answer over UDP without EDNS (RFC 1035 4.2.1).
const UDP_PAYLOAD_PLAIN: usize = 512;

/// Largest DNS message over TCP.
const TCP_PAYLOAD_MAX: usize = 65_535;

/// Everything `respond` needs.
pub struct Responder {
    /// The zones.
    pub zones: Arc<ZoneSet>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The largest UDP payload we send.
    pub edns_payload_max: u16,
    /// Transfers served at once (`transfer.transfers_max`).
    pub transfers: Arc<Semaphore>,
    /// Every configured TSIG key: a signed query is verified with it and answered signed.
    /// Replaced whole on reload.
    pub keys: ArcSwap<Vec<Arc<TsigKey>>>,
}

/// What to send back for one request.
pub enum Reply {
    /// One message.
    Message(Vec<u8>),
    /// A zone transfer: a stream of messages (TCP only).
    Transfer(Box<TransferJob>),
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
        let zones = self.zones.load();
        let Some((apex_len, mut handle)) = zones.find_key(key) else {
            return status(ResponseCode::Refused);
        };
        let qtype = RecordType::from(question.qtype);
        // The DS RRset at a child's apex belongs to the parent side (RFC 4035 3.1.4.1): when we
        // serve the parent too, answer from it.
        if qtype == RecordType::DS
            && apex_len == key.len()
            && !key.is_empty()
            && let Some((_, parent)) = zones.find_key(parent_key(key))
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
                    base_response(&message, ResponseCode::BADVERS),
                    &message,
                    transport,
                    false,
                )
                .map(Reply::Message);
        }
        if message.metadata.op_code == OpCode::Notify {
            let (answer, signer) = notify::handle(
                &self.zones,
                &self.metrics,
                &message,
                request,
                source,
                unix_now(),
            );
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
            return match transfer::decide(
                &self.zones,
                &self.transfers,
                self.edns_payload_max,
                &message,
                request,
                client,
                unix_now(),
            ) {
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
                let answer = base_response(&message, ResponseCode::FormErr);
                return self
                    .encode(answer, &message, transport, false)
                    .map(Reply::Message);
            }
            Ok(Some(record)) => {
                let keys = self.keys.load();
                let lookup = |name: &Name| {
                    keys.iter()
                        .find(|key| key.name.eq_ignore_root(name))
                        .map(AsRef::as_ref)
                };
                match tsig::verify_request(request, lookup, unix_now()) {
                    Ok(Some((key, mac))) => keys
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
                        let answer = base_response(&message, ResponseCode::NotAuth);
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
        let wire = self.encode(base_response(request, rcode), request, transport, false)?;
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
        if let Some(EdnsOption::Unknown(code, data)) =
            transfer::expire_option(&self.zones, request, unix_now())
        {
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
            if let Some(expire) = transfer::expire_option(&self.zones, request, unix_now()) {
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

    fn count(&self, rcode: ResponseCode, qtype: Option<RecordType>) {
        self.metrics.count_query(rcode, qtype);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::Query;

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
                transport: crate::config::SourceProtocol::Tcp,
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
            transfers: Arc::new(Semaphore::new(4)),
            keys: ArcSwap::from_pointee(Vec::new()),
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
            transfers: Arc::new(Semaphore::new(4)),
            keys: ArcSwap::from_pointee(Vec::new()),
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
        let responder = responder(true);
        responder.keys.store(Arc::new(vec![key.clone()]));
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
