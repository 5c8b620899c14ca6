//! The zone transfer stream interpreter (AXFR per RFC 5936, IXFR per RFC 1995): fed the
//! response messages of one transfer in order, it decides when the stream is complete and what
//! it means: up to date, a full zone, or a chain of differences.
//!
//! Protocol logic only: no sockets, no clocks, no TSIG (the transport verifies signatures
//! before a message gets here). It never trusts counts or order: the first and last records
//! must be the zone's SOA, nothing may follow the closing SOA, and every owner must be inside
//! the zone.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};

use crate::dns::serial;
use crate::dns::zone::{Diff, ZoneBuilder, ZoneError, ZoneLimits, soa_serial};

/// Why a transfer stream was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    /// The server answered with an error code.
    #[error("server answered {0}")]
    Rcode(ResponseCode),
    /// A message is not a response to our query (QR, opcode, or question differ).
    #[error("unexpected message: {0}")]
    Unexpected(String),
    /// The server set TC on a stream transfer.
    #[error("server set the TC bit on a transfer over TCP")]
    Truncated,
    /// The first record is not the zone's SOA.
    #[error("the stream does not begin with the zone's SOA")]
    NoInitialSoa,
    /// The stream ended before the closing SOA.
    #[error("the stream ended before its closing SOA (missing final SOA)")]
    MissingFinalSoa,
    /// Records followed the closing SOA.
    #[error("records follow the closing SOA")]
    TrailingRecords,
    /// An SOA inside the stream has a serial that breaks the version chain.
    #[error("SOA with serial {found} where {expected} was expected")]
    SerialMismatch {
        /// The serial the stream should have had here.
        expected: u32,
        /// The serial found.
        found: u32,
    },
    /// A record's owner is outside the zone.
    #[error("record {owner} is outside the zone {zone}")]
    OutsideZone {
        /// The owner name.
        owner: String,
        /// The zone.
        zone: String,
    },
    /// The transfer has more records than the limit.
    #[error("transfer exceeds {limit} records")]
    TooManyRecords {
        /// The limit.
        limit: u64,
    },
    /// The records do not make a valid zone (a class other than IN, a meta type, ...).
    #[error("invalid zone data: {0}")]
    Zone(ZoneError),
    /// The transfer has more bytes than the limit.
    #[error("transfer exceeds {limit} bytes")]
    TooManyBytes {
        /// The limit.
        limit: u64,
    },
}

/// What a complete transfer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server's serial is not newer than ours (a single SOA answer to IXFR).
    UpToDate {
        /// The server's serial.
        serial: u32,
    },
    /// A whole zone (AXFR, or IXFR answered AXFR-style), put into wire form as it arrived;
    /// `ZoneBuilder::finish` validates the whole.
    Full {
        /// The zone's records, SOA included.
        zone: Box<ZoneBuilder>,
    },
    /// Differences to apply in order.
    Incremental {
        /// The difference sequences.
        diffs: Vec<Diff>,
    },
}

impl Outcome {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::UpToDate { .. } => "none",
            Outcome::Full { .. } => "axfr",
            Outcome::Incremental { .. } => "ixfr",
        }
    }
}

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// AXFR.
    Axfr,
    /// IXFR from the serial we hold.
    Ixfr {
        /// Our current serial.
        current: u32,
    },
}

enum State {
    /// Nothing received yet.
    Start,
    /// Only the first SOA: the second record decides the form.
    AfterFirstSoa,
    /// AXFR form: collecting records until the closing SOA.
    Full { zone: Box<ZoneBuilder> },
    /// IXFR form: records being deleted in `diff`.
    Deleting { diffs: Vec<Diff>, diff: Diff },
    /// IXFR form: records being added in `diff`.
    Adding { diffs: Vec<Diff>, diff: Diff },
    /// The closing SOA was seen.
    Done(Outcome),
}

/// Interprets one transfer's messages.
pub struct Interpreter {
    zone: Name,
    request: Request,
    records_max: u64,
    bytes_max: u64,
    records: u64,
    bytes: u64,
    first_soa: Option<Record>,
    state: State,
}

impl Interpreter {
    /// Starts interpreting the answer to `request` for `zone`.
    pub fn new(zone: Name, request: Request, records_max: u64, bytes_max: u64) -> Self {
        Interpreter {
            zone,
            request,
            records_max,
            bytes_max,
            records: 0,
            bytes: 0,
            first_soa: None,
            state: State::Start,
        }
    }

    /// Records seen so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Message bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Feeds the next message (`size` is its length on the wire). Returns true when the stream
    /// is complete; feeding more after that is an error.
    pub fn feed(&mut self, message: &Message, size: usize) -> Result<bool, XfrError> {
        self.bytes += size as u64;
        if self.bytes > self.bytes_max {
            return Err(XfrError::TooManyBytes {
                limit: self.bytes_max,
            });
        }
        self.check_header(message)?;
        for record in &message.answers {
            self.records += 1;
            if self.records > self.records_max {
                return Err(XfrError::TooManyRecords {
                    limit: self.records_max,
                });
            }
            self.record(record)?;
        }
        // A lone SOA no newer than ours is the whole answer to an IXFR (RFC 1995 4).
        if let (State::AfterFirstSoa, Request::Ixfr { current }) = (&self.state, self.request) {
            let serial = self.first_serial();
            if !serial::is_newer(serial, current) {
                self.state = State::Done(Outcome::UpToDate { serial });
            }
        }
        Ok(matches!(self.state, State::Done(_)))
    }

    /// Ends the stream (the server closed it, or `feed` returned true) and yields the outcome.
    pub fn finish(self) -> Result<Outcome, XfrError> {
        match self.state {
            State::Done(outcome) => Ok(outcome),
            State::Start => Err(XfrError::NoInitialSoa),
            _ => Err(XfrError::MissingFinalSoa),
        }
    }

    fn check_header(&self, message: &Message) -> Result<(), XfrError> {
        let metadata = &message.metadata;
        if metadata.message_type != MessageType::Response || metadata.op_code != OpCode::Query {
            return Err(XfrError::Unexpected("not a query response".into()));
        }
        if metadata.response_code != ResponseCode::NoError {
            return Err(XfrError::Rcode(metadata.response_code));
        }
        if metadata.truncation {
            return Err(XfrError::Truncated);
        }
        // The question may be absent after the first message (RFC 5936 2.2.1).
        if let Some(query) = message.queries.first() {
            let expected = match self.request {
                Request::Axfr => RecordType::AXFR,
                Request::Ixfr { .. } => RecordType::IXFR,
            };
            if !query.name.eq_ignore_root(&self.zone) || query.query_type != expected {
                return Err(XfrError::Unexpected(format!(
                    "question {} {} does not match the request",
                    query.name, query.query_type
                )));
            }
        }
        Ok(())
    }

    fn first_serial(&self) -> u32 {
        self.first_soa.as_ref().and_then(soa_serial).unwrap_or(0)
    }

    fn record(&mut self, record: &Record) -> Result<(), XfrError> {
        if !self.zone.zone_of(&record.name) {
            return Err(XfrError::OutsideZone {
                owner: record.name.to_string(),
                zone: self.zone.to_string(),
            });
        }
        let soa = soa_serial(record);
        if soa.is_some() && !record.name.eq_ignore_root(&self.zone) {
            return Err(XfrError::OutsideZone {
                owner: format!("SOA at {}", record.name),
                zone: self.zone.to_string(),
            });
        }
        let state = std::mem::replace(&mut self.state, State::Start);
        self.state = match state {
            State::Start => {
                if soa.is_none() {
                    return Err(XfrError::NoInitialSoa);
                }
                self.first_soa = Some(record.clone());
                State::AfterFirstSoa
            }
            State::AfterFirstSoa => {
                let first = self.first_soa.clone().ok_or(XfrError::NoInitialSoa)?;
                match (self.request, soa) {
                    // IXFR form: the second record is the SOA of the version we hold.
                    (Request::Ixfr { current }, Some(serial)) if serial == current => {
                        State::Deleting {
                            diffs: Vec::new(),
                            diff: empty_diff(serial, record),
                        }
                    }
                    (_, Some(serial)) => {
                        // An SOA right after the first one closes an AXFR of a zone with no
                        // other records, which is not a valid zone; reject it clearly.
                        return Err(XfrError::SerialMismatch {
                            expected: self.first_serial(),
                            found: serial,
                        });
                    }
                    (_, None) => {
                        let mut zone = Box::new(ZoneBuilder::new(
                            &self.zone,
                            ZoneLimits {
                                records_max: self.records_max,
                            },
                        ));
                        zone.push(&first).map_err(XfrError::Zone)?;
                        zone.push(record).map_err(XfrError::Zone)?;
                        State::Full { zone }
                    }
                }
            }
            State::Full { mut zone } => match soa {
                Some(serial) if serial == self.first_serial() => {
                    State::Done(Outcome::Full { zone })
                }
                Some(serial) => {
                    return Err(XfrError::SerialMismatch {
                        expected: self.first_serial(),
                        found: serial,
                    });
                }
                None => {
                    zone.push(record).map_err(XfrError::Zone)?;
                    State::Full { zone }
                }
            },
            State::Deleting { diffs, mut diff } => match soa {
                // The new version's SOA ends the deletions.
                Some(_) => {
                    diff.to_soa = record.clone();
                    State::Adding { diffs, diff }
                }
                None => {
                    diff.deleted.push(record.clone());
                    State::Deleting { diffs, diff }
                }
            },
            State::Adding {
                mut diffs,
                mut diff,
            } => match soa {
                Some(serial) => {
                    let reached = soa_serial(&diff.to_soa).unwrap_or(0);
                    if serial != reached {
                        return Err(XfrError::SerialMismatch {
                            expected: reached,
                            found: serial,
                        });
                    }
                    diffs.push(diff);
                    if serial == self.first_serial() {
                        State::Done(Outcome::Incremental { diffs })
                    } else {
                        State::Deleting {
                            diffs,
                            diff: empty_diff(serial, record),
                        }
                    }
                }
                None => {
                    diff.added.push(record.clone());
                    State::Adding { diffs, diff }
                }
            },
            State::Done(_) => return Err(XfrError::TrailingRecords),
        };
        Ok(())
    }
}

fn empty_diff(from_serial: u32, soa: &Record) -> Diff {
    Diff {
        from_serial,
        to_soa: soa.clone(),
        deleted: Vec::new(),
        added: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::*;
    use crate::dns::zone::tests::{a, name, ns, soa};

    fn response(records: Vec<Record>, rtype: RecordType) -> Message {
        let mut message = Message::response(7, OpCode::Query);
        message.add_query(Query::query(name("example.test."), rtype));
        message.add_answers(records);
        message
    }

    fn run(request: Request, messages: Vec<Vec<Record>>) -> Result<Outcome, XfrError> {
        let rtype = match request {
            Request::Axfr => RecordType::AXFR,
            Request::Ixfr { .. } => RecordType::IXFR,
        };
        let mut interpreter = Interpreter::new(name("example.test."), request, 100, 100_000);
        for records in messages {
            if interpreter.feed(&response(records, rtype), 100)? {
                break;
            }
        }
        interpreter.finish()
    }

    #[test]
    fn axfr_in_several_messages() {
        let outcome = run(
            Request::Axfr,
            vec![
                vec![soa(5)],
                vec![
                    ns("example.test.", "ns1.example.test."),
                    a("ns1.example.test.", "192.0.2.1"),
                ],
                vec![soa(5)],
            ],
        )
        .expect("complete");
        let Outcome::Full { zone } = outcome else {
            panic!("full zone expected");
        };
        assert_eq!(zone.records(), 3);
    }

    #[test]
    fn axfr_errors() {
        assert_eq!(
            run(
                Request::Axfr,
                vec![vec![soa(5), ns("example.test.", "ns1.example.test.")]]
            ),
            Err(XfrError::MissingFinalSoa)
        );
        assert_eq!(
            run(
                Request::Axfr,
                vec![vec![ns("example.test.", "ns1.example.test.")]]
            ),
            Err(XfrError::NoInitialSoa)
        );
        assert!(matches!(
            run(
                Request::Axfr,
                vec![vec![soa(5), a("www.other.test.", "192.0.2.1"), soa(5)]]
            ),
            Err(XfrError::OutsideZone { .. })
        ));
        assert!(matches!(
            run(
                Request::Axfr,
                vec![vec![soa(5), a("w.example.test.", "192.0.2.1"), soa(6)]]
            ),
            Err(XfrError::SerialMismatch { .. })
        ));
        let mut interpreter = Interpreter::new(name("example.test."), Request::Axfr, 100, 100_000);
        let done = interpreter.feed(
            &response(
                vec![
                    soa(5),
                    a("w.example.test.", "192.0.2.1"),
                    soa(5),
                    a("x.example.test.", "192.0.2.1"),
                ],
                RecordType::AXFR,
            ),
            10,
        );
        assert_eq!(done, Err(XfrError::TrailingRecords));
        let mut refused = response(vec![], RecordType::AXFR);
        refused.metadata.response_code = ResponseCode::NotAuth;
        let mut interpreter = Interpreter::new(name("example.test."), Request::Axfr, 100, 100_000);
        assert_eq!(
            interpreter.feed(&refused, 10),
            Err(XfrError::Rcode(ResponseCode::NotAuth))
        );
    }

    #[test]
    fn limits_are_enforced() {
        let records: Vec<Record> = std::iter::once(soa(5))
            .chain((0..200).map(|i| a(&format!("h{i}.example.test."), "192.0.2.1")))
            .collect();
        assert_eq!(
            run(Request::Axfr, vec![records]),
            Err(XfrError::TooManyRecords { limit: 100 })
        );
        let mut interpreter = Interpreter::new(name("example.test."), Request::Axfr, 100, 1000);
        assert_eq!(
            interpreter.feed(&response(vec![soa(5)], RecordType::AXFR), 1001),
            Err(XfrError::TooManyBytes { limit: 1000 })
        );
    }

    #[test]
    fn ixfr_up_to_date() {
        assert_eq!(
            run(Request::Ixfr { current: 5 }, vec![vec![soa(5)]]),
            Ok(Outcome::UpToDate { serial: 5 })
        );
    }

    #[test]
    fn ixfr_incremental_chain() {
        let outcome = run(
            Request::Ixfr { current: 1 },
            vec![
                vec![soa(3), soa(1), a("old.example.test.", "192.0.2.1"), soa(2)],
                vec![
                    a("new.example.test.", "192.0.2.2"),
                    soa(2),
                    soa(3),
                    a("newer.example.test.", "192.0.2.3"),
                ],
                vec![soa(3)],
            ],
        )
        .expect("complete");
        let Outcome::Incremental { diffs } = outcome else {
            panic!("diffs expected");
        };
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].from_serial, 1);
        assert_eq!(diffs[0].deleted.len(), 1);
        assert_eq!(diffs[0].added.len(), 1);
        assert_eq!(diffs[1].from_serial, 2);
        assert!(diffs[1].deleted.is_empty());
        assert_eq!(soa_serial(&diffs[1].to_soa), Some(3));
    }

    #[test]
    fn ixfr_answered_axfr_style() {
        let outcome = run(
            Request::Ixfr { current: 1 },
            vec![vec![
                soa(3),
                ns("example.test.", "ns1.example.test."),
                soa(3),
            ]],
        )
        .expect("complete");
        assert!(matches!(outcome, Outcome::Full { .. }));
    }

    #[test]
    fn ixfr_broken_chain() {
        assert!(matches!(
            run(
                Request::Ixfr { current: 1 },
                vec![vec![soa(3), soa(1), soa(2), soa(9), soa(3), soa(3)]],
            ),
            Err(XfrError::SerialMismatch {
                expected: 2,
                found: 9
            })
        ));
        assert_eq!(
            run(
                Request::Ixfr { current: 1 },
                vec![vec![soa(3), soa(1), soa(2)]]
            ),
            Err(XfrError::MissingFinalSoa)
        );
    }

    /// Arbitrary sequences of SOAs (of a few serials) and other records, cut into messages
    /// anywhere, never panic the interpreter, and every outcome it accepts is well formed.
    #[test]
    fn arbitrary_sequences_never_panic() {
        use rand::{Rng, SeedableRng};
        let seed = 0x1f_2026;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for round in 0..5_000 {
            let length = rng.random_range(0..12);
            let records: Vec<Record> = (0..length)
                .map(|index| match rng.random_range(0..3) {
                    0 => soa(rng.random_range(1..4)),
                    1 => a(&format!("h{index}.example.test."), "192.0.2.1"),
                    _ => a("www.example.test.", "192.0.2.2"),
                })
                .collect();
            let request = if rng.random() {
                Request::Axfr
            } else {
                Request::Ixfr {
                    current: rng.random_range(1..4),
                }
            };
            let mut messages = Vec::new();
            let mut rest = records.as_slice();
            while !rest.is_empty() {
                let take = rng.random_range(1..=rest.len());
                messages.push(rest[..take].to_vec());
                rest = &rest[take..];
            }
            match run(request, messages) {
                Ok(Outcome::Full { zone }) => {
                    // The builder refuses a second SOA, so a full zone holds the opening SOA
                    // once and at least one other record.
                    assert!(zone.records() >= 2, "seed {seed} round {round}");
                }
                Ok(Outcome::Incremental { diffs }) => {
                    assert!(!diffs.is_empty(), "seed {seed} round {round}");
                    for pair in diffs.windows(2) {
                        assert_eq!(soa_serial(&pair[0].to_soa), Some(pair[1].from_serial));
                    }
                }
                Ok(Outcome::UpToDate { .. }) | Err(_) => {}
            }
        }
    }
}
