//! Transfers from a real BIND primary: a full AXFR of a zone with every common record type is
//! served exactly as BIND serves it (checked with `dig`), and changes on the primary — a dynamic
//! update, or a zone-file edit plus `rndc reload` — reach the node by NOTIFY and IXFR within 2 s.

use std::time::{Duration, Instant};

use cluster_tests::check::assert_rcode;
use cluster_tests::client::transfer_tcp;
use cluster_tests::compare::message_text;
use cluster_tests::zones::{rich_zone, simple_zone};
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig, dig_at, free_port};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";
/// How long the initial AXFR may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a change on the primary may take to be served by the node.
const PROPAGATION_MAX: Duration = Duration::from_secs(2);

/// (name, type) pairs covering every record type of `rich_zone`, compared through `dig`.
const DIG_CHECKS: &[(&str, &str)] = &[
    ("example.test", "SOA"),
    ("example.test", "NS"),
    ("example.test", "A"),
    ("example.test", "AAAA"),
    ("example.test", "MX"),
    ("example.test", "TXT"),
    ("example.test", "CAA"),
    ("www.example.test", "A"),
    ("www.example.test", "AAAA"),
    ("www.example.test", "TXT"),
    ("alias.example.test", "CNAME"),
    ("alias.example.test", "A"),
    ("chain1.example.test", "A"),
    ("multi.example.test", "TXT"),
    ("long.example.test", "TXT"),
    ("big.example.test", "TXT"),
    ("_sip._tcp.example.test", "SRV"),
    ("ptr.example.test", "PTR"),
    ("naptr.example.test", "NAPTR"),
    ("sshfp.example.test", "SSHFP"),
    ("_443._tcp.www.example.test", "TLSA"),
    ("hinfo.example.test", "HINFO"),
    ("sub.example.test", "DS"),
    ("host.ent.example.test", "A"),
    ("foo.wild.example.test", "A"),
    ("foo.wild.example.test", "TXT"),
    ("host.ent.wild.example.test", "A"),
];

/// The records of a `dig +noall +answer +authority +additional` output, sorted, so that order
/// within sections does not matter.
fn sorted_records(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with(';'))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

/// The number of records in the zone as BIND transfers it (the SOA counted once).
fn zone_record_count(bind: &Bind) -> u64 {
    let messages =
        transfer_tcp(bind.addr(), ZONE, None, Duration::from_secs(5)).expect("AXFR from BIND");
    let records: usize = messages.iter().map(|message| message.answers.len()).sum();
    u64::try_from(records - 1).expect("small")
}

/// Asserts that the node's last transfer of the zone was an IXFR, in `/status` and in the
/// metrics: how a change on the primary must arrive.
fn assert_last_transfer_was_ixfr(node: &Zonecast) {
    let status = node.zone_status(ZONE);
    assert_eq!(status["last_transfer"], "ixfr", "{status}");
    assert!(
        node.metric_sum(
            "zonecast_transfers_total",
            &[("kind", "ixfr"), ("outcome", "success")]
        ) >= 1.0,
        "{}",
        node.metrics()
    );
}

#[test]
fn axfr_from_bind_serves_every_record_type() {
    let bind = Bind::start(vec![BindZone::new(ZONE, rich_zone(1))]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);

    for (name, rtype) in DIG_CHECKS {
        let arguments = ["+norec", "+noall", "+answer", name, rtype];
        let ours = sorted_records(&dig_at(node.addr(), &arguments));
        let theirs = sorted_records(&dig_at(bind.addr(), &arguments));
        assert!(!theirs.is_empty(), "BIND has no {name} {rtype}");
        assert_eq!(
            ours, theirs,
            "{name} {rtype}: zonecast (left) differs from BIND"
        );
    }

    // The delegation: a referral with the NS RRset in authority and glue, without AA.
    let referral = node.query("host.sub.example.test", RecordType::A);
    assert_rcode(&referral, ResponseCode::NoError, "the referral");
    assert!(
        !referral.metadata.authoritative,
        "{}",
        message_text(&referral)
    );
    assert!(referral.answers.is_empty(), "{}", message_text(&referral));
    assert_eq!(
        referral
            .authorities
            .iter()
            .filter(|record| record.record_type() == RecordType::NS)
            .count(),
        2,
        "{}",
        message_text(&referral)
    );
    assert!(
        referral
            .additionals
            .iter()
            .any(|record| record.name.to_ascii() == "ns.sub.example.test."),
        "no glue: {}",
        message_text(&referral)
    );

    // The empty non-terminal exists (NODATA, not NXDOMAIN), and answers are authoritative.
    let ent = node.query("ent.example.test", RecordType::A);
    assert_rcode(&ent, ResponseCode::NoError, "the empty non-terminal");
    assert!(ent.metadata.authoritative);
    assert!(ent.answers.is_empty());

    let status = node.zone_status(ZONE);
    assert_eq!(status["state"], "fresh", "{status}");
    assert_eq!(status["serial"], 1, "{status}");
    assert_eq!(status["last_transfer"], "axfr", "{status}");
    assert_eq!(status["records"], zone_record_count(&bind), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
}

#[test]
fn dynamic_update_reaches_the_node_by_notify_and_ixfr_within_2s() {
    let node_port = free_port();
    let bind = Bind::start(vec![
        BindZone::new(ZONE, rich_zone(1)).notify_port(node_port),
    ]);
    let node = Zonecast::start(&ZonecastConfig::new().dns_port(node_port).primary_zone(
        ZONE,
        bind.addr(),
        None,
    ));
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let axfr_before = node.metric_sum("zonecast_transfers_total", &[("kind", "axfr")]);

    // The SOA refresh is an hour: only NOTIFY can bring the change within 2 s.
    // Measured from before the update is sent, so the 2 s include BIND's own work.
    let start = Instant::now();
    bind.nsupdate(ZONE, &["update add added.example.test. 300 A 192.0.2.123"]);
    let serial = bind.serial(ZONE);
    let took = node.wait_for_serial_since(ZONE, serial, start, PROPAGATION_MAX);
    eprintln!("dynamic update served by the node {took:?} after nsupdate started");

    let answer = node.query("added.example.test", RecordType::A);
    assert_rcode(&answer, ResponseCode::NoError, "the added name");
    assert_eq!(answer.answers.len(), 1, "{}", message_text(&answer));

    assert_last_transfer_was_ixfr(&node);
    assert_eq!(
        node.metric_sum("zonecast_transfers_total", &[("kind", "axfr")]),
        axfr_before,
        "the change was fetched by AXFR:\n{}",
        node.metrics()
    );
}

#[test]
fn zone_file_edit_and_rndc_reload_reach_the_node_by_ixfr_within_2s() {
    let node_port = free_port();
    let mut bind = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 1, 3600, 600, 86_400))
            .static_zone()
            .notify_port(node_port),
    ]);
    let node = Zonecast::start(&ZonecastConfig::new().dns_port(node_port).primary_zone(
        ZONE,
        bind.addr(),
        None,
    ));
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);

    let edited =
        simple_zone(ZONE, 2, 3600, 600, 86_400).replace("www A 192.0.2.80", "www A 192.0.2.81");
    // Measured from before the file is written, so the 2 s include BIND's reload.
    let start = Instant::now();
    bind.replace_zone(ZONE, &edited);
    let took = node.wait_for_serial_since(ZONE, 2, start, PROPAGATION_MAX);
    eprintln!("zone file edit served by the node {took:?} after the edit");

    let answer = node.query("www.example.test", RecordType::A);
    assert_eq!(
        answer
            .answers
            .iter()
            .map(|record| record.data.to_string())
            .collect::<Vec<_>>(),
        vec!["192.0.2.81".to_owned()],
        "{}",
        message_text(&answer)
    );
    assert_last_transfer_was_ixfr(&node);
}
