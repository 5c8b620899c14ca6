//! Comparison of two DNS responses to the same query, with a readable diff.
//!
//! Two authoritative servers serving the same zone should give the same rcode, AA and TC flags,
//! and the same answer, authority and additional sections — as sets, because record order
//! within a section carries no meaning. Records are compared as (lowercased owner, class, type,
//! TTL, RDATA in DNSSEC canonical form), so that name compression and the case of names copied
//! from the query do not count as differences, while any data difference does.
//!
//! `compare` and `compare_named` do no I/O; `compare_servers` sends a list of queries to two
//! servers and compares each pair of answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::client::query_udp;
use crate::zones::CompareQuery;

/// One record reduced to what must match between servers.
type RecordKey = (String, u16, u16, u32, Vec<u8>);

/// Compares two responses; `Err` holds a readable, multi-line diff naming the servers as "a"
/// and "b".
pub fn compare(a: &Message, b: &Message) -> Result<(), String> {
    compare_named("a", a, "b", b)
}

/// Reads one header field of a response as text, for the diff.
type FieldText = fn(&Message) -> String;

/// The header fields two responses must agree on, each with its label in the diff.
const HEADER_FIELDS: &[(&str, FieldText)] = &[
    ("rcode", |message| {
        message.metadata.response_code.to_string()
    }),
    ("AA", |message| message.metadata.authoritative.to_string()),
    ("TC", |message| message.metadata.truncation.to_string()),
    ("EDNS present", |message| message.edns.is_some().to_string()),
    ("question", |message| format!("{:?}", message.queries)),
];

/// Compares two responses like `compare`, naming the servers in the diff.
pub fn compare_named(a_name: &str, a: &Message, b_name: &str, b: &Message) -> Result<(), String> {
    let mut diff = String::new();
    for (label, field) in HEADER_FIELDS {
        let (left, right) = (field(a), field(b));
        if left != right {
            let _ = writeln!(diff, "  {label}: {a_name}={left} {b_name}={right}");
        }
    }
    // Leniency, on purpose and only here: addresses of MX exchanges and SRV targets in the
    // additional section are optional (RFC 1034 section 4.3.2 step 6 and RFC 2782 say "may"),
    // and servers choose differently — Knot adds them, NSD with minimal responses does not.
    // When only one server adds a target's addresses they are ignored; when both do, they must
    // be equal. Referral glue and everything else stays strict.
    let optional = optional_additional_owners(a, b);
    let a_additional = without_one_sided(&a.additionals, &b.additionals, &optional);
    let b_additional = without_one_sided(&b.additionals, &a.additionals, &optional);
    for (section, a_records, b_records) in [
        ("answer", &a.answers[..], &b.answers[..]),
        ("authority", &a.authorities[..], &b.authorities[..]),
        ("additional", &a_additional[..], &b_additional[..]),
    ] {
        compare_section(section, a_name, a_records, b_name, b_records, &mut diff);
    }
    if diff.is_empty() { Ok(()) } else { Err(diff) }
}

/// Lowercased names of MX exchanges and SRV targets in either response's answer section.
fn optional_additional_owners(a: &Message, b: &Message) -> BTreeSet<String> {
    a.answers
        .iter()
        .chain(&b.answers)
        .filter_map(|record| match &record.data {
            RData::MX(mx) => Some(mx.exchange.to_lowercase().to_ascii()),
            RData::SRV(srv) => Some(srv.target.to_lowercase().to_ascii()),
            _ => None,
        })
        .collect()
}

/// `records` without the A/AAAA records whose owner is in `optional` and has no A/AAAA record
/// in `other`.
fn without_one_sided(
    records: &[Record],
    other: &[Record],
    optional: &BTreeSet<String>,
) -> Vec<Record> {
    let is_address =
        |record: &Record| matches!(record.record_type(), RecordType::A | RecordType::AAAA);
    records
        .iter()
        .filter(|record| {
            let owner = record.name.to_lowercase().to_ascii();
            let one_sided = is_address(record)
                && optional.contains(&owner)
                && !other.iter().any(|candidate| {
                    is_address(candidate) && candidate.name.to_lowercase().to_ascii() == owner
                });
            !one_sided
        })
        .cloned()
        .collect()
}

/// Appends to `diff` the records present in only one of the two sections.
fn compare_section(
    section: &str,
    a_name: &str,
    a: &[Record],
    b_name: &str,
    b: &[Record],
    diff: &mut String,
) {
    let a_set = record_set(a);
    let b_set = record_set(b);
    if a.len() != a_set.len() || b.len() != b_set.len() {
        let _ = writeln!(
            diff,
            "  {section}: duplicate records ({a_name} has {} records, {} distinct; \
             {b_name} has {} records, {} distinct)",
            a.len(),
            a_set.len(),
            b.len(),
            b_set.len()
        );
    }
    for (name, set, other) in [(a_name, &a_set, &b_set), (b_name, &b_set, &a_set)] {
        for (_, text) in set.iter().filter(|(key, _)| !other.contains_key(*key)) {
            let _ = writeln!(diff, "  {section}: only {name}: {text}");
        }
    }
}

/// The records of a section keyed for comparison, each with its presentation text.
fn record_set(records: &[Record]) -> BTreeMap<RecordKey, String> {
    records
        .iter()
        .map(|record| {
            let key = (
                record.name.to_lowercase().to_ascii(),
                u16::from(record.dns_class),
                u16::from(record.record_type()),
                record.ttl,
                canonical_rdata(record),
            );
            (key, record_text(record))
        })
        .collect()
}

/// RDATA in DNSSEC canonical form (RFC 4034 section 6.2: names in the listed types lowercased,
/// no compression), so only real data differences remain.
fn canonical_rdata(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    if let Err(error) = record.data.emit(&mut encoder) {
        // Never equal to a successfully encoded RDATA, and visible in the diff text.
        return format!("unencodable: {error}").into_bytes();
    }
    bytes
}

/// A record in presentation format, one line.
pub fn record_text(record: &Record) -> String {
    format!(
        "{} {} {} {} {}",
        record.name,
        record.ttl,
        record.dns_class,
        record.record_type(),
        record.data
    )
}

/// One query on which two servers answered differently (or one did not answer).
#[derive(Debug)]
pub struct Difference {
    /// The query.
    pub query: CompareQuery,
    /// The diff, or the error that prevented comparing.
    pub diff: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "{} {} ({}; EDNS {:?}):",
            self.query.name, self.query.rtype, self.query.purpose, self.query.edns
        )?;
        write!(formatter, "{}", self.diff)
    }
}

/// Sends every query in `queries` over UDP to both servers and returns the differences: between
/// the two answers, and between each answer's header and the query's expected rcode/AA/TC.
pub fn compare_servers(
    a_name: &str,
    a: SocketAddr,
    b_name: &str,
    b: SocketAddr,
    queries: &[CompareQuery],
) -> Vec<Difference> {
    let mut differences = Vec::new();
    for query in queries {
        let options = query.options();
        let answers = (
            query_udp(a, query.name, query.rtype, &options),
            query_udp(b, query.name, query.rtype, &options),
        );
        let diff = match answers {
            (Ok(a_answer), Ok(b_answer)) => {
                let mut diff = match compare_named(a_name, &a_answer, b_name, &b_answer) {
                    Ok(()) => String::new(),
                    Err(diff) => diff,
                };
                for (server, answer) in [(a_name, &a_answer), (b_name, &b_answer)] {
                    if let Err(problem) = query.check_header(answer) {
                        let _ = writeln!(diff, "  {server}: {problem}");
                    }
                }
                if diff.is_empty() {
                    continue;
                }
                diff
            }
            (Err(error), _) => format!("  {a_name} did not answer: {error:#}\n"),
            (_, Err(error)) => format!("  {b_name} did not answer: {error:#}\n"),
        };
        differences.push(Difference {
            query: query.clone(),
            diff,
        });
    }
    differences
}

/// A whole response in a dig-like multi-line form, for failure messages.
pub fn message_text(message: &Message) -> String {
    let mut text = String::new();
    let metadata = &message.metadata;
    let _ = writeln!(
        text,
        ";; rcode={} aa={} tc={} edns={}",
        metadata.response_code,
        metadata.authoritative,
        metadata.truncation,
        message
            .edns
            .as_ref()
            .map(|edns| edns.max_payload().to_string())
            .unwrap_or_else(|| "none".to_owned())
    );
    for query in &message.queries {
        let _ = writeln!(text, ";; question: {} {}", query.name(), query.query_type());
    }
    for (section, records) in [
        ("answer", &message.answers),
        ("authority", &message.authorities),
        ("additional", &message.additionals),
    ] {
        for record in records {
            let _ = writeln!(text, ";; {section}: {}", record_text(record));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, CNAME};

    use super::*;

    fn response(records: Vec<Record>) -> Message {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        message.add_answers(records);
        message
    }

    fn a(owner: &str, ttl: u32, last: u8) -> Record {
        Record::from_rdata(
            Name::from_ascii(owner).expect("valid"),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        )
    }

    #[test]
    fn order_and_owner_case_do_not_matter() {
        let left = response(vec![
            a("www.example.test.", 60, 1),
            a("www.example.test.", 60, 2),
        ]);
        let right = response(vec![
            a("WWW.example.test.", 60, 2),
            a("www.Example.test.", 60, 1),
        ]);
        assert_eq!(compare(&left, &right), Ok(()));
    }

    #[test]
    fn ttl_rdata_and_flags_matter() {
        let left = response(vec![a("www.example.test.", 60, 1)]);
        let mut right = response(vec![a("www.example.test.", 61, 1)]);
        right.metadata.authoritative = false;
        right.metadata.response_code = ResponseCode::ServFail;
        let diff = compare(&left, &right).expect_err("differs");
        assert!(diff.contains("rcode"), "{diff}");
        assert!(diff.contains("AA"), "{diff}");
        assert!(diff.contains("only a: www.example.test. 60"), "{diff}");
        assert!(diff.contains("only b: www.example.test. 61"), "{diff}");
    }

    #[test]
    fn mx_target_addresses_are_optional_but_must_agree_when_both_add_them() {
        let mx = Record::from_rdata(
            Name::from_ascii("example.test.").expect("valid"),
            60,
            RData::MX(hickory_proto::rr::rdata::MX::new(
                10,
                Name::from_ascii("mail.example.test.").expect("valid"),
            )),
        );
        let plain = response(vec![mx.clone()]);
        let mut with_address = response(vec![mx.clone()]);
        with_address.add_additional(a("mail.example.test.", 60, 25));
        assert_eq!(compare(&plain, &with_address), Ok(()));

        let mut other_address = response(vec![mx]);
        other_address.add_additional(a("mail.example.test.", 60, 26));
        assert!(compare(&with_address, &other_address).is_err());

        // Glue-like additional data for names that are not MX/SRV targets stays strict.
        let mut unrelated = plain.clone();
        unrelated.add_additional(a("ns1.example.test.", 60, 53));
        assert!(compare(&plain, &unrelated).is_err());
    }

    #[test]
    fn case_of_names_inside_rdata_does_not_matter() {
        let cname = |target: &str| {
            Record::from_rdata(
                Name::from_ascii("alias.example.test.").expect("valid"),
                60,
                RData::CNAME(CNAME(Name::from_ascii(target).expect("valid"))),
            )
        };
        let left = response(vec![cname("www.example.test.")]);
        let right = response(vec![cname("www.EXAMPLE.test.")]);
        assert_eq!(compare(&left, &right), Ok(()));
    }
}
