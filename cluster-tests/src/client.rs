//! A small blocking DNS client for tests, over `std::net` with timeouts, plus wrappers that run
//! the real `dig` and `kdig` programs.
//!
//! Every function here takes an explicit server address; callers only ever pass loopback
//! addresses. Waits are bounded by the per-call timeout.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::tsig::{self, TsigKey};
use crate::util::{COMMAND_TIMEOUT, require_program, run_checked, run_unchecked};

/// Largest number of messages `transfer_tcp` reads before giving up.
const TRANSFER_MESSAGES_MAX: usize = 10_000;

/// How a query is sent.
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// EDNS UDP payload size to advertise; `None` sends no OPT record at all.
    pub edns_payload: Option<u16>,
    /// The EDNS DO bit (ignored without EDNS).
    pub dnssec_ok: bool,
    /// The RD bit; authoritative servers ignore it, recursive behaviour is not tested.
    pub recursion_desired: bool,
    /// How long to wait for the answer.
    pub timeout: Duration,
    /// Source address to send from (UDP only); `None` lets the kernel pick 127.0.0.1.
    pub source: Option<IpAddr>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            edns_payload: Some(1232),
            dnssec_ok: false,
            recursion_desired: false,
            timeout: Duration::from_secs(2),
            source: None,
        }
    }
}

impl QueryOptions {
    /// A query without EDNS (classic 512-byte UDP limit).
    pub fn no_edns() -> QueryOptions {
        QueryOptions {
            edns_payload: None,
            ..QueryOptions::default()
        }
    }

    /// A query with EDNS and the given UDP payload size.
    pub fn edns(payload: u16) -> QueryOptions {
        QueryOptions {
            edns_payload: Some(payload),
            ..QueryOptions::default()
        }
    }

    /// The same options with the DO bit set.
    pub fn with_dnssec_ok(mut self) -> QueryOptions {
        self.dnssec_ok = true;
        self
    }

    /// The same options with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> QueryOptions {
        self.timeout = timeout;
        self
    }
}

/// Parses a name, keeping the case of every letter (`from_ascii`, not the lowercasing IDNA path),
/// and makes it fully qualified.
pub fn name(text: &str) -> Name {
    let fqdn = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(&fqdn).unwrap_or_else(|error| panic!("invalid DNS name {text}: {error}"))
}

/// Alternates the case of the letters in `text` ("example.test" → "ExAmPlE.TeSt"), to check that
/// servers match names case-insensitively and preserve the QNAME's case.
pub fn mixed_case(text: &str) -> String {
    let mut upper = false;
    text.chars()
        .map(|character| {
            if character.is_ascii_alphabetic() {
                upper = !upper;
                if upper {
                    character.to_ascii_uppercase()
                } else {
                    character.to_ascii_lowercase()
                }
            } else {
                character
            }
        })
        .collect()
}

/// Builds a query message for `name`/`rtype` with the given options.
pub fn build_query(qname: &str, rtype: RecordType, options: &QueryOptions) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = options.recursion_desired;
    message.add_query(Query::query(name(qname), rtype));
    if let Some(payload) = options.edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(options.dnssec_ok);
        message.set_edns(edns);
    }
    message
}

/// Sends one query over UDP and returns the answer.
pub fn query_udp(
    server: SocketAddr,
    qname: &str,
    rtype: RecordType,
    options: &QueryOptions,
) -> anyhow::Result<Message> {
    let message = build_query(qname, rtype, options);
    exchange_udp(server, &message, options.source, options.timeout)
}

/// Sends one query over TCP and returns the answer.
pub fn query_tcp(
    server: SocketAddr,
    qname: &str,
    rtype: RecordType,
    options: &QueryOptions,
) -> anyhow::Result<Message> {
    let message = build_query(qname, rtype, options);
    exchange_tcp(server, &message, options.timeout)
}

/// Sends `message` over UDP from `source` (or 127.0.0.1) and waits for the response with the
/// same ID, for at most `timeout`. Datagrams with other IDs are ignored.
pub fn exchange_udp(
    server: SocketAddr,
    message: &Message,
    source: Option<IpAddr>,
    timeout: Duration,
) -> anyhow::Result<Message> {
    let bytes = message.to_vec().context("encoding the query")?;
    let response = exchange_udp_raw(server, &bytes, source, timeout)?;
    matching_response(message, response)
}

/// Sends raw bytes over UDP and returns the first response that parses and carries the query's
/// ID (the first two bytes of `bytes`).
pub fn exchange_udp_raw(
    server: SocketAddr,
    bytes: &[u8],
    source: Option<IpAddr>,
    timeout: Duration,
) -> anyhow::Result<Message> {
    ensure!(bytes.len() >= 2, "a DNS message has at least an ID");
    let default_source = match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    };
    let local = SocketAddr::new(source.unwrap_or(default_source), 0);
    let socket = UdpSocket::bind(local).with_context(|| format!("binding UDP to {local}"))?;
    socket.connect(server).context("connecting UDP socket")?;
    socket.send(bytes).context("sending UDP query")?;
    let deadline = Instant::now() + timeout;
    let mut buffer = vec![0u8; 65_535];
    // Bounded: each iteration either returns or consumes a datagram, and the deadline ends it.
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("no UDP response from {server} within {timeout:?}");
        }
        socket.set_read_timeout(Some(remaining))?;
        let length = match socket.recv(&mut buffer) {
            Ok(length) => length,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no UDP response from {server} within {timeout:?}");
            }
            Err(error) => return Err(error).context(format!("receiving from {server}")),
        };
        if length >= 2 && buffer[..2] == bytes[..2] {
            return Message::from_vec(&buffer[..length])
                .with_context(|| format!("decoding a {length}-byte response from {server}"));
        }
    }
}

/// Sends `message` over a new TCP connection and reads one response.
pub fn exchange_tcp(
    server: SocketAddr,
    message: &Message,
    timeout: Duration,
) -> anyhow::Result<Message> {
    let mut stream = connect_tcp(server, timeout)?;
    write_framed(
        &mut stream,
        &message.to_vec().context("encoding the query")?,
    )?;
    let bytes = read_framed(&mut stream)?.context("connection closed before a response")?;
    let response = Message::from_vec(&bytes).context("decoding the TCP response")?;
    matching_response(message, response)
}

/// `response` if it carries the ID of `query`, an error otherwise: whatever the transport, an
/// answer to another query is never taken for the answer to this one.
fn matching_response(query: &Message, response: Message) -> anyhow::Result<Message> {
    ensure!(
        response.metadata.id == query.metadata.id,
        "response ID {} does not match query ID {}",
        response.metadata.id,
        query.metadata.id
    );
    Ok(response)
}

/// Opens a TCP connection with connect, read and write timeouts.
pub fn connect_tcp(server: SocketAddr, timeout: Duration) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&server, timeout)
        .with_context(|| format!("connecting to {server} over TCP"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes one DNS message with its two-byte length prefix.
pub fn write_framed(stream: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    let length = u16::try_from(bytes.len()).context("message longer than 65535 bytes")?;
    let mut frame = Vec::with_capacity(bytes.len() + 2);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).context("writing to TCP")?;
    Ok(())
}

/// Reads one length-prefixed DNS message; `None` on a clean end of stream before the prefix.
pub fn read_framed(stream: &mut impl Read) -> anyhow::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 2];
    let mut filled = 0;
    while filled < 2 {
        let read = stream.read(&mut prefix[filled..]).context("reading TCP")?;
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            bail!("connection closed inside a length prefix");
        }
        filled += read;
    }
    let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream
        .read_exact(&mut bytes)
        .context("connection closed inside a message")?;
    Ok(Some(bytes))
}

/// Requests a zone transfer over TCP and returns every response message until the stream's
/// closing SOA (or the first error response, or end of stream).
///
/// For IXFR, `ixfr_serial` is put into the authority section as the client's current SOA.
pub fn transfer_tcp(
    server: SocketAddr,
    zone: &str,
    ixfr_serial: Option<u32>,
    timeout: Duration,
) -> anyhow::Result<Vec<Message>> {
    let rtype = if ixfr_serial.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut request = build_query(zone, rtype, &QueryOptions::no_edns());
    if let Some(serial) = ixfr_serial {
        request.add_authority(soa_record(zone, serial));
    }
    let mut stream = connect_tcp(server, timeout)?;
    write_framed(&mut stream, &request.to_vec()?)?;
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut soa_seen = 0usize;
    let mut first_serial = None;
    while messages.len() < TRANSFER_MESSAGES_MAX && Instant::now() < deadline {
        let Some(bytes) = read_framed(&mut stream)? else {
            break;
        };
        let message = Message::from_vec(&bytes).context("decoding a transfer message")?;
        let is_error = message.metadata.response_code != ResponseCode::NoError;
        for record in &message.answers {
            if let RData::SOA(soa) = &record.data {
                soa_seen += 1;
                match first_serial {
                    None => first_serial = Some(soa.serial),
                    // The stream ends with the second occurrence of the first SOA's serial.
                    Some(serial) if serial == soa.serial && soa_seen > 1 => {
                        messages.push(message);
                        return Ok(messages);
                    }
                    Some(_) => {}
                }
            }
        }
        messages.push(message);
        // A single-SOA IXFR answer ("up to date") and error answers end the exchange.
        if is_error || (ixfr_serial.is_some() && soa_seen == 1 && messages[0].answers.len() == 1) {
            break;
        }
    }
    Ok(messages)
}

/// A SOA record for `zone` with `serial` and fixed other fields, for IXFR requests and NOTIFY.
pub fn soa_record(zone: &str, serial: u32) -> Record {
    let soa = hickory_proto::rr::rdata::SOA::new(
        name(&format!("ns1.{}", zone.trim_end_matches('.'))),
        name(&format!("hostmaster.{}", zone.trim_end_matches('.'))),
        serial,
        3600,
        600,
        86_400,
        300,
    );
    Record::from_rdata(name(zone), 0, RData::SOA(soa))
}

/// Sends a NOTIFY for `zone` from `source` to `server` over UDP and returns the response.
///
/// `serial`, when given, goes into the answer section as the (advisory) new SOA; `key`, when
/// given, signs the message.
pub fn send_notify(
    server: SocketAddr,
    zone: &str,
    serial: Option<u32>,
    source: IpAddr,
    key: Option<&TsigKey>,
    timeout: Duration,
) -> anyhow::Result<Message> {
    let mut message = Message::new(
        crate::util::random_u64() as u16,
        MessageType::Query,
        OpCode::Notify,
    );
    message.metadata.authoritative = true;
    message.add_query(Query::query(name(zone), RecordType::SOA));
    if let Some(serial) = serial {
        message.add_answer(soa_record(zone, serial));
    }
    if let Some(key) = key {
        tsig::sign(&mut message, key, None);
    }
    exchange_udp(server, &message, Some(source), timeout)
}

/// The serial of the SOA record in the answer section of `message`, if any.
pub fn answer_serial(message: &Message) -> Option<u32> {
    message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
}

/// Queries `zone`'s SOA over UDP and returns its serial, or an error saying why not (timeout,
/// rcode, no SOA).
pub fn soa_serial(server: SocketAddr, zone: &str, timeout: Duration) -> anyhow::Result<u32> {
    let options = QueryOptions::default().with_timeout(timeout);
    let response = query_udp(server, zone, RecordType::SOA, &options)?;
    ensure!(
        response.metadata.response_code == ResponseCode::NoError,
        "SOA query for {zone} answered {}",
        response.metadata.response_code
    );
    answer_serial(&response).with_context(|| format!("no SOA in the answer for {zone}"))
}

/// Asks `zone`/`rtype` (SOA, AXFR, or IXFR from `ixfr_serial`) over TCP with an empty EDNS
/// EXPIRE option (RFC 7314) and returns the EXPIRE value in the (first) answer message, or
/// `None` when the answer has no EXPIRE option.
pub fn expire_over_tcp(
    server: SocketAddr,
    zone: &str,
    rtype: RecordType,
    ixfr_serial: Option<u32>,
) -> anyhow::Result<Option<u32>> {
    let mut request = build_query(zone, rtype, &QueryOptions::default());
    if let Some(serial) = ixfr_serial {
        request.add_authority(soa_record(zone, serial));
    }
    if let Some(edns) = request.edns.as_mut() {
        edns.options_mut()
            .insert(EdnsOption::Unknown(u16::from(EdnsCode::Expire), Vec::new()));
    }
    let response = exchange_tcp(server, &request, Duration::from_secs(3))?;
    ensure!(
        response.metadata.response_code == ResponseCode::NoError,
        "{zone} {rtype} answered {}",
        response.metadata.response_code
    );
    let Some(option) = response
        .edns
        .as_ref()
        .and_then(|edns| edns.option(EdnsCode::Expire))
    else {
        return Ok(None);
    };
    let bytes = Vec::<u8>::try_from(option).context("encoding the EXPIRE option")?;
    let value: [u8; 4] = bytes
        .as_slice()
        .try_into()
        .with_context(|| format!("an EXPIRE option of {} bytes", bytes.len()))?;
    Ok(Some(u32::from_be_bytes(value)))
}

/// Runs the real `dig` with `arguments` and returns its standard output; panics if `dig` is
/// missing or exits with an error.
pub fn dig(arguments: &[&str]) -> String {
    let program = require_program("dig", "bind9-dnsutils");
    run_checked(Command::new(program).args(arguments), COMMAND_TIMEOUT)
}

/// Runs the real `dig` with `arguments` whatever its exit status; returns (success, standard
/// output followed by standard error). For checks of failures, such as a refused transfer.
pub fn dig_unchecked(arguments: &[&str]) -> (bool, String) {
    let program = require_program("dig", "bind9-dnsutils");
    run_unchecked(Command::new(program).args(arguments), COMMAND_TIMEOUT)
}

/// Runs `dig @server -p port +time=2 +tries=2 ARGUMENTS...`.
pub fn dig_at(server: SocketAddr, arguments: &[&str]) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut all = vec![at.as_str(), "-p", port.as_str(), "+time=2", "+tries=2"];
    all.extend_from_slice(arguments);
    dig(&all)
}

/// Runs `dig @server -p port +time=2 +tries=1 [-y KEY] ZONE AXFR` whatever its outcome and
/// returns its standard output followed by its standard error, for checks of transfers that must
/// fail as well as ones that must succeed (count the SOA records with `soa_lines`). One try only,
/// so that a refused transfer is not asked again.
pub fn dig_axfr(server: SocketAddr, zone: &str, key: Option<&TsigKey>) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let key_argument = key.map(TsigKey::dig_argument);
    let mut arguments = vec![at.as_str(), "-p", port.as_str(), "+time=2", "+tries=1"];
    if let Some(key_argument) = &key_argument {
        arguments.extend(["-y", key_argument.as_str()]);
    }
    arguments.extend([zone, "AXFR"]);
    dig_unchecked(&arguments).1
}

/// The number of SOA records in `dig` or `kdig` output with one record a line (comment lines
/// are skipped): 2 for a complete AXFR, 0 for a refused one.
pub fn soa_lines(output: &str) -> usize {
    output
        .lines()
        .filter(|line| !line.starts_with(';') && line.split_whitespace().nth(3) == Some("SOA"))
        .count()
}

/// The records of `dig` or `kdig` output with one record a line, in output order, with runs of
/// whitespace collapsed to one space (comment and empty lines are skipped).
pub fn record_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with(';'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// `record_lines`, sorted: for comparing record sets whatever their order.
pub fn sorted_record_lines(output: &str) -> Vec<String> {
    let mut lines = record_lines(output);
    lines.sort();
    lines
}

/// Runs the real `kdig` with `arguments` whatever its exit status; returns (success, standard
/// output followed by standard error).
pub fn kdig_unchecked(arguments: &[&str]) -> (bool, String) {
    let program = require_program("kdig", "knot-dnsutils");
    run_unchecked(Command::new(program).args(arguments), COMMAND_TIMEOUT)
}

/// Runs the real `kdig` with `arguments` and returns its standard output; panics if `kdig` is
/// missing or exits with an error.
pub fn kdig(arguments: &[&str]) -> String {
    let program = require_program("kdig", "knot-dnsutils");
    run_checked(Command::new(program).args(arguments), COMMAND_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_case_alternates_letters_only() {
        assert_eq!(mixed_case("www.example.test"), "WwW.eXaMpLe.TeSt");
    }

    #[test]
    fn names_keep_their_case() {
        assert_eq!(name("WwW.Example.test").to_ascii(), "WwW.Example.test.");
    }

    #[test]
    fn framing_round_trips() {
        let mut buffer = Vec::new();
        write_framed(&mut buffer, b"hello").expect("writes");
        let mut reader = &buffer[..];
        assert_eq!(
            read_framed(&mut reader).expect("reads"),
            Some(b"hello".to_vec())
        );
        assert_eq!(read_framed(&mut reader).expect("reads"), None);
    }
}
