//! IXFR over UDP does not hold up plain queries: an allowed IXFR request over UDP is answered
//! with the zone's SOA alone (RFC 1995 section 2: "come back over TCP") without reading the
//! store, so a plain query sent on the same socket right behind a burst of them is answered at
//! once.
//!
//! The zone is a file of 50,000 records, grown twice by 12,000 records so that the node's
//! journal holds two large differences (an IXFR over TCP from the first serial is
//! incremental): the work an IXFR over UDP must not do on the query path is there to be done.
//! Before the UDP workers stopped reading the journal, each such request decoded all of it, and
//! a plain query behind 20 of them on a 300,000-record zone waited 1.7 s.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use cluster_tests::client::{QueryOptions, answer_serial, build_query, soa_record, transfer_tcp};
use cluster_tests::compare::message_text;
use cluster_tests::util::{poll, write_file};
use cluster_tests::zones::simple_zone;
use cluster_tests::{AclEntry, ZoneConfig, ZoneSource, Zonecast, ZonecastConfig, temp_dir};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const ZONE: &str = "big.test";
/// Generated owner names besides those of `simple_zone`, at the first serial.
///
/// Ten records per name rather than one name per record: a reloaded file of more than 10,000
/// names journals no difference at all (see `transfer_out.rs`), and this test needs a journal.
const NAMES: u32 = 5_000;
/// Names added at each of the two changes: 12,000 records, within the largest difference
/// journaled (a quarter of the zone).
const NAMES_ADDED: u32 = 1_200;
/// A records per generated name.
const RECORDS_PER_NAME: u32 = 10;
/// IXFR requests sent back to back before the plain query.
const BURST: u16 = 50;
/// The most the plain query's answer may take, counted from the first IXFR request sent:
/// generous for a debug build on two cores, and far below what reading the journal for each
/// request costs.
const ANSWER_MAX: Duration = Duration::from_millis(500);
/// How long the journal may take to hold both differences after serial 3 is served.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a load of the file (50,000 records, for a debug build) may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// The zone at `serial`: `simple_zone` and `names` names of `RECORDS_PER_NAME` A records each.
fn big_zone(serial: u32, names: u32) -> String {
    let mut text = simple_zone(ZONE, serial, 3600, 600, 86_400);
    text.reserve((names * RECORDS_PER_NAME) as usize * 24);
    for name in 0..names {
        for record in 0..RECORDS_PER_NAME {
            // 198.18.0.0/15 is the benchmarking range (RFC 2544); 74,000 addresses fit in it.
            let index = name * RECORDS_PER_NAME + record;
            text.push_str(&format!(
                "h{name} A 198.{}.{}.{}\n",
                18 + index / 65_536,
                index / 256 % 256,
                index % 256
            ));
        }
    }
    text
}

#[test]
fn a_burst_of_ixfr_over_udp_does_not_delay_a_plain_query() {
    let dir = temp_dir("udp-ixfr");
    let path = dir.path().join("big.test.zone");
    write_file(&path, big_zone(1, NAMES));
    let node = Zonecast::start(
        &ZonecastConfig::new().zone(
            ZoneConfig::new(ZONE, ZoneSource::File(path.clone()))
                .allow_transfer(vec![AclEntry::open("127.0.0.0/8")]),
        ),
    );
    let loaded = node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let started = Instant::now();
    // Two large changes: each difference goes to the journal.
    for serial in [2, 3] {
        write_file(&path, big_zone(serial, NAMES + (serial - 1) * NAMES_ADDED));
        node.wait_for_serial(ZONE, serial, LOAD_TIMEOUT);
    }
    eprintln!(
        "zone loaded {loaded:?} after the node answered, grown twice in {:?}",
        started.elapsed()
    );
    let status = node.zone_status(ZONE);
    assert!(
        status["records"].as_u64() > Some(u64::from(NAMES * RECORDS_PER_NAME)),
        "{status}"
    );

    // The journal holds the differences: IXFR over TCP from serial 1 is incremental (the
    // second record is the old SOA, not the first record of the whole zone). The difference
    // is journaled just after the new version is served, so the first answers may still be
    // AXFR-style.
    let mut last = String::new();
    let incremental = poll(JOURNAL_TIMEOUT, Duration::from_millis(200), || {
        let messages = transfer_tcp(node.addr(), ZONE, Some(1), Duration::from_secs(10))
            .expect("IXFR over TCP from serial 1");
        let records = &messages[0].answers;
        if records.len() > 2 && matches!(&records[1].data, RData::SOA(soa) if soa.serial == 1) {
            Some(())
        } else {
            last = message_text(&messages[0]);
            None
        }
    });
    assert!(
        incremental.is_some(),
        "IXFR over TCP from serial 1 was never incremental within {JOURNAL_TIMEOUT:?}; the last \
         first message:\n{last}"
    );

    // The burst, then the plain query, on one socket: the kernel delivers all of them to the
    // same UDP worker (its SO_REUSEPORT hash is of the addresses and ports).
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP socket");
    socket.connect(node.addr()).expect("connecting the socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let mut requests = Vec::new();
    for index in 0..BURST {
        let mut request = build_query(ZONE, RecordType::IXFR, &QueryOptions::default());
        request.metadata.id = index;
        // Serials the node never had: the request would take the whole zone over TCP.
        request.add_authority(soa_record(ZONE, 1_000 + u32::from(index)));
        requests.push(request.to_vec().expect("an encodable IXFR request"));
    }
    let mut plain = build_query(ZONE, RecordType::SOA, &QueryOptions::default());
    plain.metadata.id = BURST;
    let plain = plain.to_vec().expect("an encodable query");

    let burst_started = Instant::now();
    for request in &requests {
        socket.send(request).expect("sending an IXFR request");
    }
    let plain_sent = Instant::now();
    socket.send(&plain).expect("sending the plain query");
    let mut answers: HashMap<u16, Message> = HashMap::new();
    let mut plain_answered = None;
    let mut buffer = vec![0u8; 65_535];
    // Bounded: one answer per request at most, and every receive has a timeout.
    while answers.len() <= usize::from(BURST) {
        let length = match socket.recv(&mut buffer) {
            Ok(length) => length,
            Err(error) => panic!(
                "{} of {} answers after {:?}: {error}",
                answers.len(),
                BURST + 1,
                burst_started.elapsed()
            ),
        };
        let answer = Message::from_vec(&buffer[..length]).expect("a DNS answer");
        if answer.metadata.id == BURST {
            plain_answered = Some(Instant::now());
        }
        answers.insert(answer.metadata.id, answer);
    }
    let plain_answered = plain_answered.expect("the plain query was answered");
    let from_burst = plain_answered - burst_started;
    let from_query = plain_answered - plain_sent;
    eprintln!(
        "plain SOA answered {from_burst:?} after the first of {BURST} IXFR requests \
         ({from_query:?} after it was sent); all {} answers in {:?}",
        answers.len(),
        burst_started.elapsed()
    );

    for id in 0..BURST {
        let answer = &answers[&id];
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "IXFR request {id}:\n{}",
            message_text(answer)
        );
        assert!(
            answer.answers.len() == 1 && answer_serial(answer) == Some(3),
            "IXFR request {id} over UDP did not get the SOA alone:\n{}",
            message_text(answer)
        );
    }
    let answer = &answers[&BURST];
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_serial(answer), Some(3), "{}", message_text(answer));
    assert!(
        from_burst < ANSWER_MAX,
        "the plain query waited {from_burst:?} behind {BURST} IXFR requests (limit {ANSWER_MAX:?})"
    );
}
