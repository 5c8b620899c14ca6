//! Answer comparison: the same zone served by NSD, by Knot and by zonecast must give the same
//! answers to the questions in `zones::COMPARE_QUERIES`.
//!
//! `reference_servers_agree` is the harness's self-test: it runs the query list against NSD and
//! Knot and asserts that they agree with each other and with the expected rcode/AA/TC of every
//! query; NSD runs with `minimal-responses: yes` (see `Nsd`), and
//! `compare::compare` documents its one leniency (optional MX/SRV target addresses).

use std::net::SocketAddr;
use std::time::Duration;

use cluster_tests::check::assert_rcode;
use cluster_tests::client::transfer_tcp;
use cluster_tests::compare::{compare_servers, message_text};
use cluster_tests::util::write_file;
use cluster_tests::zones::{COMPARE_QUERIES, RICH_ZONE, rich_zone};
use cluster_tests::{
    Bind, BindZone, Knot, Nsd, QueryOptions, Zonecast, ZonecastConfig, query_tcp, query_udp,
    temp_dir,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Asks both servers every question of `COMPARE_QUERIES` and asserts that they answer alike and
/// as each query expects; a failure lists every difference.
fn assert_same_answers(a_name: &str, a: SocketAddr, b_name: &str, b: SocketAddr) {
    let differences = compare_servers(a_name, a, b_name, b, COMPARE_QUERIES);
    let report: Vec<String> = differences.iter().map(ToString::to_string).collect();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        report.join("\n")
    );
}

#[test]
fn reference_servers_agree() {
    let zone = rich_zone(1);
    let nsd = Nsd::start(&[(RICH_ZONE, &zone)]);
    let knot = Knot::start(&[(RICH_ZONE, &zone)]);
    assert_same_answers("nsd", nsd.addr(), "knot", knot.addr());
}

#[test]
fn zonecast_from_a_zone_file_answers_like_nsd() {
    // The zone has a DS record at its delegation on purpose: a master file of a signed parent
    // has one, and BIND, NSD and Knot all load it.
    let zone = rich_zone(1);
    let nsd = Nsd::start(&[(RICH_ZONE, &zone)]);
    let dir = temp_dir("zone-file");
    let path = dir.path().join("example.test.zone");
    write_file(&path, &zone);
    let node = Zonecast::start(&ZonecastConfig::new().file_zone(RICH_ZONE, &path));
    node.wait_for_serial(RICH_ZONE, 1, Duration::from_secs(15));

    assert_same_answers("nsd", nsd.addr(), "zonecast", node.addr());
}

#[test]
fn zonecast_loaded_from_bind_answers_like_knot() {
    let zone = rich_zone(1);
    let knot = Knot::start(&[(RICH_ZONE, &zone)]);
    let bind = Bind::start(vec![BindZone::new(RICH_ZONE, zone.clone())]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(RICH_ZONE, bind.addr(), None));
    node.wait_for_serial(RICH_ZONE, 1, Duration::from_secs(15));

    assert_same_answers("knot", knot.addr(), "zonecast", node.addr());
}

#[test]
fn zonecast_answers_truncated_queries_over_tcp_and_refuses_transfers() {
    let bind = Bind::start(vec![BindZone::new(RICH_ZONE, rich_zone(1))]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(RICH_ZONE, bind.addr(), None));
    node.wait_for_serial(RICH_ZONE, 1, Duration::from_secs(15));

    // What a resolver does after TC: ask again over TCP, and get the whole RRset.
    let truncated = query_udp(
        node.addr(),
        "big.example.test",
        RecordType::TXT,
        &QueryOptions::no_edns(),
    )
    .expect("UDP answer");
    assert!(
        truncated.metadata.truncation,
        "{}",
        message_text(&truncated)
    );
    let full = query_tcp(
        node.addr(),
        "big.example.test",
        RecordType::TXT,
        &QueryOptions::no_edns(),
    )
    .expect("TCP answer");
    assert!(!full.metadata.truncation, "{}", message_text(&full));
    assert_eq!(full.answers.len(), 8, "{}", message_text(&full));

    // Zone transfers to clients are refused.
    for serial in [None, Some(0)] {
        let messages = transfer_tcp(node.addr(), RICH_ZONE, serial, Duration::from_secs(5))
            .expect("the node answers a transfer request");
        assert_eq!(messages.len(), 1, "{serial:?}");
        assert_rcode(&messages[0], ResponseCode::Refused, "a transfer request");
        assert!(messages[0].answers.is_empty());
    }
}
