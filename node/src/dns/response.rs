//! Writing answers in wire format straight from the zone's wire-format RRsets, and reading the
//! plain queries that make up nearly all traffic without a general message parser.
//!
//! Pure functions over byte buffers: no sockets, no clocks. Names are compressed (RFC 1035
//! 4.1.4) against the question and every name written before, case-insensitively; inside RDATA
//! only the types RFC 3597 4 lists as compressible (NS, CNAME, PTR, MX, SOA) are compressed.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use crate::dns::lookup::{Answer, Entry, Owner};
use crate::dns::name::check_name_wire;

/// Size of the DNS header.
const HEADER: usize = 12;
/// Compression pointers reach only this far into a message.
const POINTER_MAX: usize = 0x3fff;

/// The question being answered and how the answer must be framed.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// Message ID.
    pub id: u16,
    /// RD as the client set it.
    pub recursion_desired: bool,
    /// CD as the client set it.
    pub checking_disabled: bool,
    /// The query name in uncompressed wire form, case as the client wrote it.
    pub qname: &'a [u8],
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
}

/// The OPT record of an answer to an EDNS request.
#[derive(Debug, Clone, Copy)]
pub struct OptReply<'a> {
    /// Our UDP payload size.
    pub payload: u16,
    /// The DO bit, echoed.
    pub dnssec_ok: bool,
    /// EDNS options, already encoded (code, length, data).
    pub options: &'a [u8],
}

/// A plain query read from the wire: one question, no compression in it, at most an OPT record
/// without options in the additional section. Anything else goes to the general parser.
#[derive(Debug, Clone, Copy)]
pub struct PlainQuery<'a> {
    /// The question.
    pub question: Question<'a>,
    /// The request's EDNS (payload size, DO), if it had an OPT record.
    pub edns: Option<(u16, bool)>,
}

/// Reads a plain QUERY; None sends the request down the general path (which answers FORMERR,
/// NOTIMP, BADVERS, TSIG and everything unusual).
pub fn parse_plain_query(request: &[u8]) -> Option<PlainQuery<'_>> {
    let header = request.get(..HEADER)?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let qr = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let counts = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    if qr || opcode != 0 || counts(4) != 1 || counts(6) != 0 || counts(8) != 0 || counts(10) > 1 {
        return None;
    }
    let name_length = check_name_wire(&request[HEADER..])?;
    let qname = &request[HEADER..HEADER + name_length];
    let fixed = request.get(HEADER + name_length..HEADER + name_length + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let mut rest = &request[HEADER + name_length + 4..];
    let mut edns = None;
    if counts(10) == 1 {
        // The OPT record: root owner, type 41, no options, version 0.
        let opt = rest.get(..11)?;
        let ttl = u32::from_be_bytes([opt[5], opt[6], opt[7], opt[8]]);
        let rdlength = u16::from_be_bytes([opt[9], opt[10]]);
        let version = (ttl >> 16) & 0xff;
        if opt[0] != 0
            || u16::from_be_bytes([opt[1], opt[2]]) != 41
            || rdlength != 0
            || version != 0
        {
            return None;
        }
        let payload = u16::from_be_bytes([opt[3], opt[4]]);
        edns = Some((payload, ttl & 0x8000 != 0));
        rest = &rest[11..];
    }
    if !rest.is_empty() {
        return None;
    }
    Some(PlainQuery {
        question: Question {
            id: u16::from_be_bytes([header[0], header[1]]),
            recursion_desired: flags & 0x0100 != 0,
            checking_disabled: flags & 0x0010 != 0,
            qname,
            qtype,
            qclass,
        },
        edns,
    })
}

/// Positions of names already written, for compression.
#[derive(Default)]
struct Compressor {
    /// Offsets of label starts (each one the start of a suffix that can be pointed to).
    labels: SmallVec<[u16; 48]>,
}

impl Compressor {
    /// Writes `name` (uncompressed wire form) at the end of `out`, pointing to an earlier copy
    /// of its longest suffix already in the message.
    fn write_name(&mut self, out: &mut Vec<u8>, name: &[u8]) {
        let mut at = 0usize;
        loop {
            let length = usize::from(name.get(at).copied().unwrap_or(0));
            if length == 0 {
                out.push(0);
                return;
            }
            if let Some(target) = self.find(out, &name[at..]) {
                out.extend_from_slice(&(0xc000 | target).to_be_bytes());
                return;
            }
            if out.len() <= POINTER_MAX {
                self.labels.push(out.len() as u16);
            }
            out.extend_from_slice(&name[at..at + 1 + length]);
            at += 1 + length;
        }
    }

    fn find(&self, message: &[u8], suffix: &[u8]) -> Option<u16> {
        self.labels
            .iter()
            .copied()
            .find(|&start| same_name_at(message, usize::from(start), suffix))
    }

    /// Forgets positions at or after `length` (the message was cut back to it).
    fn truncate(&mut self, length: usize) {
        self.labels.retain(|start| usize::from(*start) < length);
    }
}

/// True when the (possibly compressed) name at `at` in `message` equals `name`, ignoring ASCII
/// case.
fn same_name_at(message: &[u8], mut at: usize, name: &[u8]) -> bool {
    let mut position = 0usize;
    let mut jumps = 0;
    loop {
        let Some(&length) = message.get(at) else {
            return false;
        };
        if length & 0xc0 == 0xc0 {
            let Some(&low) = message.get(at + 1) else {
                return false;
            };
            jumps += 1;
            if jumps > 16 {
                return false;
            }
            at = (usize::from(length & 0x3f) << 8) | usize::from(low);
            continue;
        }
        let length = usize::from(length);
        if name.get(position) != Some(&(length as u8)) {
            return false;
        }
        if length == 0 {
            return true;
        }
        let (Some(ours), Some(theirs)) = (
            message.get(at + 1..at + 1 + length),
            name.get(position + 1..position + 1 + length),
        ) else {
            return false;
        };
        if !ours.eq_ignore_ascii_case(theirs) {
            return false;
        }
        at += 1 + length;
        position += 1 + length;
    }
}

/// Writes one RDATA, compressing the names of the types that allow it.
fn write_rdata(out: &mut Vec<u8>, compressor: &mut Compressor, rtype: RecordType, rdata: &[u8]) {
    match rtype {
        RecordType::NS | RecordType::CNAME | RecordType::PTR => {
            compressor.write_name(out, rdata);
        }
        RecordType::MX if rdata.len() > 2 => {
            out.extend_from_slice(&rdata[..2]);
            compressor.write_name(out, &rdata[2..]);
        }
        RecordType::SOA => {
            let Some(mname) = check_name_wire(rdata) else {
                out.extend_from_slice(rdata);
                return;
            };
            let Some(rname) = check_name_wire(&rdata[mname..]) else {
                out.extend_from_slice(rdata);
                return;
            };
            compressor.write_name(out, &rdata[..mname]);
            compressor.write_name(out, &rdata[mname..mname + rname]);
            out.extend_from_slice(&rdata[mname + rname..]);
        }
        _ => out.extend_from_slice(rdata),
    }
}

/// Writes the records of one entry; returns how many.
fn write_entry(out: &mut Vec<u8>, compressor: &mut Compressor, entry: &Entry<'_>) -> u16 {
    let mut count = 0;
    for rdata in entry.set.rdatas() {
        match entry.owner {
            // The question's name sits right after the header.
            Owner::Query => out.extend_from_slice(&(0xc000u16 | HEADER as u16).to_be_bytes()),
            Owner::Wire(name) => compressor.write_name(out, name),
        }
        out.extend_from_slice(&u16::from(entry.set.rtype).to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&entry.set.ttl.to_be_bytes());
        let length_at = out.len();
        out.extend_from_slice(&[0, 0]);
        write_rdata(out, compressor, entry.set.rtype, rdata);
        let length = (out.len() - length_at - 2) as u16;
        out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
        count += 1;
    }
    count
}

fn write_section(out: &mut Vec<u8>, compressor: &mut Compressor, entries: &[Entry<'_>]) -> u16 {
    entries
        .iter()
        .map(|entry| write_entry(out, compressor, entry))
        .fold(0u16, u16::saturating_add)
}

fn write_opt(out: &mut Vec<u8>, opt: &OptReply<'_>) {
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&opt.payload.to_be_bytes());
    let flags: u32 = if opt.dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&(opt.options.len() as u16).to_be_bytes());
    out.extend_from_slice(opt.options);
}

fn set_count(out: &mut [u8], at: usize, count: u16) {
    out[at..at + 2].copy_from_slice(&count.to_be_bytes());
}

/// Writes the answer to `question` into `out` (cleared first), within `limit` bytes: the
/// additional section is dropped first (unless it holds glue a referral needs), then TC is set
/// with empty sections (RFC 2181 9, RFC 9471).
pub fn write_answer(
    out: &mut Vec<u8>,
    question: &Question<'_>,
    answer: &Answer<'_>,
    opt: Option<&OptReply<'_>>,
    limit: usize,
) {
    out.clear();
    let rcode = u16::from(answer.rcode) & 0x0f;
    let mut flags: u16 = 0x8000 | rcode;
    if answer.authoritative {
        flags |= 0x0400;
    }
    if question.recursion_desired {
        flags |= 0x0100;
    }
    if question.checking_disabled {
        flags |= 0x0010;
    }
    out.extend_from_slice(&question.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let mut compressor = Compressor::default();
    compressor.write_name(out, question.qname);
    out.extend_from_slice(&question.qtype.to_be_bytes());
    out.extend_from_slice(&question.qclass.to_be_bytes());
    let after_question = out.len();
    let opt_length = opt.map_or(0, |opt| 11 + opt.options.len());
    let answers = write_section(out, &mut compressor, &answer.answer);
    let authorities = write_section(out, &mut compressor, &answer.authority);
    let after_authority = out.len();
    let mut additionals = write_section(out, &mut compressor, &answer.additional);
    if out.len() + opt_length > limit && additionals > 0 && !answer.glue_required {
        out.truncate(after_authority);
        compressor.truncate(after_authority);
        additionals = 0;
    }
    let (answers, authorities) = if out.len() + opt_length > limit {
        out.truncate(after_question);
        out[2] |= 0x02;
        additionals = 0;
        (0, 0)
    } else {
        (answers, authorities)
    };
    set_count(out, 6, answers);
    set_count(out, 8, authorities);
    if let Some(opt) = opt {
        write_opt(out, opt);
        additionals += 1;
    }
    set_count(out, 10, additionals);
}

/// Writes an answer with no records and `rcode` (REFUSED, SERVFAIL) to `question`.
pub fn write_status(
    out: &mut Vec<u8>,
    question: &Question<'_>,
    rcode: ResponseCode,
    opt: Option<&OptReply<'_>>,
) {
    write_answer(out, question, &Answer::empty(rcode), opt, usize::MAX);
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RData};

    use super::*;
    use crate::dns::lookup::{AnyPolicy, lookup};
    use crate::dns::name::{KeyBuf, name_wire};
    use crate::dns::zone::Zone;
    use crate::dns::zone::tests::{LIMITS, a, base_records, cname, name, ns};

    fn zone() -> Zone {
        let mut records = base_records();
        records.extend([
            cname("Alias.example.test.", "WWW.example.test."),
            ns("child.example.test.", "ns.child.example.test."),
            a("ns.child.example.test.", "192.0.2.30"),
        ]);
        Zone::from_records(&name("example.test."), records, LIMITS).expect("valid")
    }

    fn answer(qname: &str, qtype: RecordType, limit: usize) -> Message {
        let zone = zone();
        let wire = name_wire(&Name::from_ascii(qname).expect("name"));
        let found = lookup(&zone, &KeyBuf::of_wire(&wire), qtype, AnyPolicy::Full);
        let question = Question {
            id: 77,
            recursion_desired: true,
            checking_disabled: false,
            qname: &wire,
            qtype: u16::from(qtype),
            qclass: 1,
        };
        let opt = OptReply {
            payload: 1232,
            dnssec_ok: true,
            options: &[],
        };
        let mut out = Vec::new();
        write_answer(&mut out, &question, &found, Some(&opt), limit);
        Message::from_vec(&out).expect("our answers parse")
    }

    #[test]
    fn answers_parse_with_compressed_names() {
        let message = answer("ALIAS.example.test.", RecordType::A, 1232);
        assert_eq!(message.metadata.id, 77);
        assert!(message.metadata.authoritative);
        assert!(message.metadata.recursion_desired);
        assert_eq!(message.answers.len(), 2);
        assert_eq!(message.answers[0].name.to_string(), "ALIAS.example.test.");
        let RData::CNAME(target) = &message.answers[0].data else {
            panic!("CNAME first");
        };
        assert_eq!(target.0.to_string(), "WWW.example.test.");
        assert_eq!(message.answers[1].name.to_string(), "WWW.example.test.");
        assert!(message.edns.as_ref().expect("OPT").flags().dnssec_ok);

        let soa = answer("example.test.", RecordType::SOA, 1232);
        let RData::SOA(data) = &soa.answers[0].data else {
            panic!("SOA");
        };
        assert_eq!(data.serial, 1);
        assert_eq!(data.mname.to_string(), "ns1.example.test.");
    }

    #[test]
    fn referrals_keep_glue_or_truncate() {
        let referral = answer("x.child.example.test.", RecordType::A, 1232);
        assert!(!referral.metadata.authoritative);
        assert_eq!(referral.authorities.len(), 1);
        assert_eq!(referral.additionals.len(), 1);
        let tight = answer("x.child.example.test.", RecordType::A, 80);
        assert!(tight.metadata.truncation);
        assert!(tight.authorities.is_empty() && tight.additionals.is_empty());
    }

    #[test]
    fn plain_queries_are_recognised_and_others_are_not() {
        let mut query = Message::query();
        query.metadata.id = 5;
        query.add_query(hickory_proto::op::Query::query(
            name("www.example.test."),
            RecordType::A,
        ));
        let wire = query.to_vec().expect("encodes");
        let plain = parse_plain_query(&wire).expect("plain");
        assert_eq!(plain.question.id, 5);
        assert_eq!(plain.question.qtype, 1);
        assert!(plain.edns.is_none());
        // Trailing garbage, a response, or a truncated question go the general way.
        let mut longer = wire.clone();
        longer.push(0);
        assert!(parse_plain_query(&longer).is_none());
        let mut response = wire.clone();
        response[2] |= 0x80;
        assert!(parse_plain_query(&response).is_none());
        assert!(parse_plain_query(&wire[..wire.len() - 1]).is_none());
    }
}
