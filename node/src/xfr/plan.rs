//! Serving zone transfers (AXFR per RFC 5936, IXFR per RFC 1995): which records a transfer
//! response carries, in which order, and how they are cut into messages.
//!
//! Pure logic: the caller (`serve`) checks the ACL, signs and writes the messages. Records are
//! produced lazily from the zone snapshot, so a transfer of a large zone holds one message in
//! memory at a time, not the whole zone.

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dns::serial;
use crate::dns::zone::{Diff, JournalChain, Zone, soa_serial};

/// Payload bytes per transfer message. Well under the 65,535 maximum, as BIND and Knot do, so
/// that one message costs little memory and one TSIG covers a bounded amount of data.
pub const MESSAGE_BYTES: usize = 16_000;

/// What a transfer response carries.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The whole zone: SOA, every record, SOA (AXFR, or IXFR answered AXFR-style).
    Full,
    /// The client is up to date (or newer): the current SOA alone.
    UpToDate,
    /// Differences from the client's version to ours.
    Incremental {
        /// Our SOA record of the client's version, which opens the first step.
        from_soa: Box<Record>,
        /// The chain of differences, oldest first, ending at our serial.
        diffs: Vec<Diff>,
    },
}

impl Plan {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Plan::Full => "axfr",
            Plan::UpToDate => "ixfr_uptodate",
            Plan::Incremental { .. } => "ixfr",
        }
    }
}

/// Chooses how to answer an IXFR whose client holds `client_soa`, given the journal's chain
/// from the client's serial (`journal`, if it reaches back that far).
pub fn plan_ixfr(zone: &Zone, client_soa: Option<&Record>, journal: Option<JournalChain>) -> Plan {
    let Some(client_soa) = client_soa else {
        return Plan::Full;
    };
    let Some(client_serial) = soa_serial(client_soa) else {
        return Plan::Full;
    };
    if !serial::is_newer(zone.serial(), client_serial) {
        return Plan::UpToDate;
    }
    match journal {
        Some(chain)
            if chain.diffs.first().map(|d| d.from_serial) == Some(client_serial)
                && chain.diffs.last().and_then(|d| soa_serial(&d.to_soa))
                    == Some(zone.serial()) =>
        {
            Plan::Incremental {
                from_soa: Box::new(chain.from_soa),
                diffs: chain.diffs,
            }
        }
        // No journal back to the client's version: the whole zone, AXFR-style (RFC 1995 4).
        _ => Plan::Full,
    }
}

/// The records of a transfer response, in order.
pub fn records<'a>(zone: &'a Zone, plan: &'a Plan) -> Box<dyn Iterator<Item = Record> + Send + 'a> {
    let soa = zone.soa_record();
    match plan {
        Plan::UpToDate => Box::new(std::iter::once(soa)),
        Plan::Full => Box::new(
            std::iter::once(soa.clone())
                .chain(zone.records().skip(1))
                .chain(std::iter::once(soa)),
        ),
        Plan::Incremental { from_soa, diffs } => {
            let mut old_soa = from_soa.as_ref().clone();
            let mut sequence = Vec::new();
            for diff in diffs {
                sequence.push(old_soa);
                sequence.extend(diff.deleted.iter().cloned());
                sequence.push(diff.to_soa.clone());
                sequence.extend(diff.added.iter().cloned());
                old_soa = diff.to_soa.clone();
            }
            Box::new(
                std::iter::once(soa.clone())
                    .chain(sequence)
                    .chain(std::iter::once(soa)),
            )
        }
    }
}

/// Cuts a record stream into response messages of at most about `MESSAGE_BYTES` each; the
/// question goes in the first message only (RFC 5936 2.2.1).
pub struct Packer<'a> {
    records: std::iter::Peekable<Box<dyn Iterator<Item = Record> + Send + 'a>>,
    id: u16,
    query: Option<Query>,
    scratch: Vec<u8>,
}

impl<'a> Packer<'a> {
    /// Packs `records` into answers to the request with `id` and `query`.
    pub fn new(
        records: Box<dyn Iterator<Item = Record> + Send + 'a>,
        id: u16,
        query: Query,
    ) -> Self {
        Packer {
            records: records.peekable(),
            id,
            query: Some(query),
            scratch: Vec::with_capacity(512),
        }
    }

    /// The next message, or None when every record was sent.
    pub fn next_message(&mut self) -> Option<Message> {
        let first = self.query.is_some();
        if !first && self.records.peek().is_none() {
            return None;
        }
        let mut message = Message::response(self.id, OpCode::Query);
        message.metadata.authoritative = true;
        message.metadata.response_code = ResponseCode::NoError;
        if let Some(query) = self.query.take() {
            message.add_query(query);
        }
        let mut size = 0;
        while let Some(record) = self.records.peek() {
            let length = encoded_len(&mut self.scratch, record);
            if size > 0 && size + length > MESSAGE_BYTES {
                break;
            }
            size += length;
            if let Some(record) = self.records.next() {
                message.add_answer(record);
            }
        }
        Some(message)
    }
}

/// The uncompressed size of a record: an upper bound of what it adds to a message.
fn encoded_len(scratch: &mut Vec<u8>, record: &Record) -> usize {
    scratch.clear();
    let mut encoder = BinEncoder::new(scratch);
    let mut encoder = encoder.with_name_encoding(NameEncoding::Uncompressed);
    match record.emit(&mut encoder) {
        Ok(()) => {}
        // A record that cannot be encoded would fail the message anyway; count it large so it
        // travels alone and the failure names it.
        Err(_) => return MESSAGE_BYTES,
    }
    drop(encoder);
    scratch.len()
}

/// The client's SOA from an IXFR request's authority section.
pub fn client_soa(request: &Message) -> Option<&Record> {
    request
        .authorities
        .iter()
        .find(|record| record.record_type() == RecordType::SOA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::zone::tests::{LIMITS, a, base_records, name, soa, txt};
    use crate::xfr::interpreter::{Interpreter, Outcome, Request};

    fn zone(serial: u32, extra: usize) -> Zone {
        let mut records = base_records();
        records[0] = soa(serial);
        records.extend((0..extra).map(|i| txt(&format!("t{i}.example.test."), &"x".repeat(200))));
        Zone::from_records(&name("example.test."), records, LIMITS).expect("valid")
    }

    /// Feeds our own messages to our own interpreter: what we send is a valid stream.
    fn round_trip(zone: &Zone, plan: &Plan, request: Request) -> (Outcome, usize) {
        let rtype = match request {
            Request::Axfr => RecordType::AXFR,
            Request::Ixfr { .. } => RecordType::IXFR,
        };
        let mut packer = Packer::new(
            records(zone, plan),
            9,
            Query::query(name("example.test."), rtype),
        );
        let mut interpreter = Interpreter::new(name("example.test."), request, 10_000, 10_000_000);
        let mut messages = 0;
        while let Some(message) = packer.next_message() {
            let wire = message.to_vec().expect("encode");
            assert!(wire.len() <= 65_535);
            messages += 1;
            let decoded = Message::from_vec(&wire).expect("decode");
            if interpreter
                .feed(&decoded, wire.len())
                .expect("valid stream")
            {
                assert!(
                    packer.next_message().is_none(),
                    "records after the closing SOA"
                );
                break;
            }
        }
        (interpreter.finish().expect("complete"), messages)
    }

    #[test]
    fn axfr_spans_several_messages() {
        let zone = zone(5, 300);
        let (outcome, messages) = round_trip(&zone, &Plan::Full, Request::Axfr);
        assert!(messages >= 4, "{messages} messages for ~60 kB");
        let Outcome::Full { zone: received } = outcome else {
            panic!("full zone expected");
        };
        let received = received.finish().expect("valid");
        assert_eq!(
            received.records().collect::<Vec<_>>(),
            zone.records().collect::<Vec<_>>()
        );
    }

    #[test]
    fn ixfr_plans() {
        let old = zone(1, 2);
        let new = old
            .apply(
                &[Diff {
                    from_serial: 1,
                    to_soa: soa(2),
                    deleted: vec![a("www.example.test.", "192.0.2.10")],
                    added: vec![a("www.example.test.", "192.0.2.11")],
                }],
                LIMITS,
            )
            .expect("applies");
        let journal = JournalChain {
            from_soa: old.soa_record(),
            diffs: vec![old.diff_to(&new)],
        };
        // A client whose SOA differs from ours in anything but the serial still gets our SOA.
        let mut client = soa(1);
        client.ttl = 0;
        let plan = plan_ixfr(&new, Some(&client), Some(journal.clone()));
        assert_eq!(plan.kind(), "ixfr");
        let (outcome, _) = round_trip(&new, &plan, Request::Ixfr { current: 1 });
        let Outcome::Incremental { diffs } = outcome else {
            panic!("diffs expected");
        };
        let first_old_soa = records(&new, &plan).nth(1).expect("the old SOA");
        assert_eq!(
            first_old_soa,
            old.soa_record(),
            "the step opens with our own old SOA"
        );
        let rebuilt = old.apply(&diffs, LIMITS).expect("our diffs apply");
        assert_eq!(
            rebuilt.records().collect::<Vec<_>>(),
            new.records().collect::<Vec<_>>()
        );

        assert_eq!(plan_ixfr(&new, Some(&soa(2)), None).kind(), "ixfr_uptodate");
        assert_eq!(plan_ixfr(&new, Some(&soa(3)), None).kind(), "ixfr_uptodate");
        assert_eq!(
            plan_ixfr(&new, Some(&soa(1)), None).kind(),
            "axfr",
            "no journal"
        );
        assert_eq!(
            plan_ixfr(&new, None, Some(journal)).kind(),
            "axfr",
            "no client SOA"
        );
        let (outcome, _) = round_trip(&new, &Plan::Full, Request::Ixfr { current: 1 });
        assert!(matches!(outcome, Outcome::Full { .. }), "AXFR-style IXFR");
    }
}
