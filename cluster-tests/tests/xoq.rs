//! XFR-over-QUIC (RFC 9250) between zonecast peers with mutual TLS on a cluster CA.
//!
//! A chain BIND → A → (QUIC) → B → (TCP) → C serves the same data on every node and carries an
//! update to the end by NOTIFY and IXFR. A node D whose certificate comes from a foreign CA can
//! neither fetch from A nor feed A: both sides report a TLS failure (`last_error_kind` "tls",
//! the text naming it) and serve SERVFAIL. An
//! independent DoQ client (dnspython + aioquic, `scripts/doq_xfr.py`) with a cluster client
//! certificate gets over QUIC exactly what TCP gives (AXFR, incremental and up-to-date IXFR),
//! with the stream finished after the last message, also for several transfers at once on one
//! connection; a non-zero message ID closes the connection with DOQ_PROTOCOL_ERROR; without a
//! client certificate, or with a foreign one, it gets nothing.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cluster_tests::check::assert_rcode;
use cluster_tests::client::{dig_unchecked, sorted_record_lines};
use cluster_tests::doq::{
    ClientTls, ScriptRequest, ScriptTransport, quic_transfer, script_transfer, tcp_transfer,
};
use cluster_tests::util::write_file;
use cluster_tests::zones::{rich_zone, simple_zone};
use cluster_tests::{
    AclEntry, Bind, BindZone, ClusterCa, Peer, Primary, ZoneConfig, Zonecast, ZonecastConfig,
    dig_at, free_port, temp_dir,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const ZONE: &str = "example.test";
/// A zone that only the foreign node D has, which A is configured to copy from D.
const FED_ZONE: &str = "fed.test";
/// How long a first load (or a failure to load) may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an update may take from BIND to the end of the chain (three hops).
const PROPAGATION_MAX: Duration = Duration::from_secs(3);
/// Words one of which a TLS failure over QUIC must name in `last_error`.
const TLS_WORDS: &[&str] = &["certificate", "TLS", "handshake", "crypto"];

/// Waits until `zone` on `node` reports a TLS failure of one of `kinds`; returns its status.
fn wait_for_tls_error(node: &Zonecast, zone: &str, kinds: &[&str]) -> Value {
    node.wait_for_error(zone, kinds, TLS_WORDS, LOAD_TIMEOUT)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `dig +nocmd +nostats @server -p PORT ZONE AXFR`.
fn dig_axfr_text(server: SocketAddr) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    dig_unchecked(&[
        &at, "-p", &port, "+time=3", "+tries=1", "+nocmd", "+nostats", ZONE, "AXFR",
    ])
    .1
}

#[test]
fn quic_chain_serves_the_same_data_and_keeps_strangers_out() {
    let ca = ClusterCa::create("xoq");
    let stranger_ca = ClusterCa::create("xoq-stranger");
    let (a_port, b_port, c_port, d_xoq_port) = (free_port(), free_port(), free_port(), free_port());
    let bind = Bind::start(vec![BindZone::new(ZONE, rich_zone(1)).notify_port(a_port)]);

    let a = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(a_port)
            .tls(ca.issue("node-a").identity())
            .with_xoq()
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(
                ZoneConfig::primaries(ZONE, vec![Primary::tcp(bind.addr())])
                    .also_notify(loopback(b_port)),
            )
            // D is not in the cluster: A must not take this zone from it.
            .zone(ZoneConfig::peers(
                FED_ZONE,
                vec![Peer {
                    address: loopback(d_xoq_port),
                    name: "node-d".to_owned(),
                }],
            )),
    );
    a.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let b = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(b_port)
            .tls(ca.issue("node-b").identity())
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(
                ZoneConfig::peers(
                    ZONE,
                    vec![Peer {
                        address: a.xoq_addr(),
                        name: "node-a".to_owned(),
                    }],
                )
                .also_notify(loopback(c_port)),
            ),
    );
    b.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let c = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(c_port)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .primary_zone(ZONE, b.addr(), None),
    );
    c.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let status = b.zone_status(ZONE);
    assert_eq!(status["source"], a.xoq_addr().to_string(), "{status}");
    assert_eq!(status["last_transfer"], "axfr", "{status}");

    // The same data everywhere.
    let reference = dig_axfr_text(a.addr());
    assert!(reference.lines().count() > 40, "{reference}");
    for (name, node) in [("B", &b), ("C", &c)] {
        assert_eq!(
            sorted_record_lines(&dig_axfr_text(node.addr())),
            sorted_record_lines(&reference),
            "{name}'s AXFR (left) differs from A's"
        );
    }
    for (qname, rtype) in [
        ("www.example.test", "AAAA"),
        ("chain1.example.test", "A"),
        ("foo.wild.example.test", "TXT"),
        ("host.sub.example.test", "A"),
        ("none.example.test", "A"),
    ] {
        let arguments = ["+norec", "+noall", "+answer", "+authority", qname, rtype];
        let at_a = sorted_record_lines(&dig_at(a.addr(), &arguments));
        for (name, node) in [("B", &b), ("C", &c)] {
            assert_eq!(
                sorted_record_lines(&dig_at(node.addr(), &arguments)),
                at_a,
                "{qname} {rtype}: {name} (left) differs from A"
            );
        }
    }

    // An update travels BIND -> A -> (QUIC) B -> C by NOTIFY and IXFR.
    let start = Instant::now();
    bind.nsupdate(ZONE, &["update add quic.example.test. 300 A 192.0.2.99"]);
    let took = c.wait_for_serial_since(ZONE, 2, start, PROPAGATION_MAX);
    eprintln!("the update reached C {took:?} after nsupdate started");
    let status = b.zone_status(ZONE);
    assert_eq!(status["last_transfer"], "ixfr", "{status}");
    let answer = c.query("quic.example.test", RecordType::A);
    assert_rcode(&answer, ResponseCode::NoError, "the update at C");
    assert_eq!(answer.answers.len(), 1);

    // D: a certificate from a foreign CA. It cannot fetch from A, and A does not take FED_ZONE
    // from it.
    let d_dir = temp_dir("xoq-d");
    let fed_file = d_dir.path().join("fed.test.zone");
    write_file(&fed_file, simple_zone(FED_ZONE, 9, 3600, 600, 86_400));
    let d = Zonecast::start(
        &ZonecastConfig::new()
            .tls(stranger_ca.issue("node-d").identity())
            .xoq_port(d_xoq_port)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(ZoneConfig::peers(
                ZONE,
                vec![Peer {
                    address: a.xoq_addr(),
                    name: "node-a".to_owned(),
                }],
            ))
            .file_zone(FED_ZONE, &fed_file),
    );
    d.wait_for_serial(FED_ZONE, 9, LOAD_TIMEOUT);
    let status = wait_for_tls_error(&d, ZONE, &["tls"]);
    eprintln!(
        "D fetching from A: {} ({})",
        status["last_error"], status["last_error_kind"]
    );
    assert!(status["serial"].is_null(), "{status}");
    assert_rcode(
        &d.query(ZONE, RecordType::SOA),
        ResponseCode::ServFail,
        "D's copy of the zone",
    );
    let status = wait_for_tls_error(&a, FED_ZONE, &["tls"]);
    eprintln!(
        "A fetching from D: {} ({})",
        status["last_error"], status["last_error_kind"]
    );
    assert!(status["serial"].is_null(), "{status}");
    assert_rcode(
        &a.query(FED_ZONE, RecordType::SOA),
        ResponseCode::ServFail,
        "A's copy of D's zone",
    );
    // A still serves its own zone, unchanged.
    assert_rcode(
        &a.query("quic.example.test", RecordType::A),
        ResponseCode::NoError,
        "A after D's attempts",
    );
}

#[test]
fn an_independent_doq_client_gets_what_tcp_gives() {
    let ca = ClusterCa::create("xoq-doq");
    let a_port = free_port();
    let bind = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 1, 3600, 600, 86_400)).notify_port(a_port),
    ]);
    let a = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(a_port)
            .tls(ca.issue("node-a").identity())
            .with_xoq()
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .primary_zone(ZONE, bind.addr(), None),
    );
    a.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    bind.nsupdate(
        ZONE,
        &[
            "update delete www.example.test. A",
            "update add doq.example.test. 300 TXT \"over quic\"",
        ],
    );
    a.wait_for_serial(ZONE, 2, Duration::from_secs(2));

    let client = ca.issue("doq-client");
    let tls = ClientTls::with_client("node-a", &client);
    for (what, ixfr_serial, soa_count) in [
        ("AXFR", None, 2),
        ("IXFR from serial 1 (incremental)", Some(1), 4),
        ("IXFR from the current serial", Some(2), 1),
    ] {
        let quic = quic_transfer(a.xoq_addr(), ZONE, ixfr_serial, &tls)
            .unwrap_or_else(|error| panic!("{what} over QUIC failed:\n{error}"));
        let tcp = tcp_transfer(a.addr(), ZONE, ixfr_serial)
            .unwrap_or_else(|error| panic!("{what} over TCP failed:\n{error}"));
        assert_eq!(quic.rcode, "NOERROR", "{what}: {quic:?}");
        assert_eq!(quic.soa_count(), soa_count, "{what}: {quic:?}");
        assert!(
            quic.stream_finished,
            "{what}: the server did not finish the stream: {quic:?}"
        );
        // The same records in the same order: IXFR order matters.
        assert_eq!(
            quic.records, tcp.records,
            "{what}: QUIC (left) differs from TCP"
        );
    }
    let axfr = quic_transfer(a.xoq_addr(), ZONE, None, &tls).expect("AXFR over QUIC");
    assert!(
        axfr.records
            .iter()
            .any(|record| record == "doq.example.test. 300 IN TXT \"over quic\""),
        "{axfr:?}"
    );
    assert!(
        !axfr.records.iter().any(|record| record.starts_with("www.")),
        "{axfr:?}"
    );

    // Several transfers at once on one connection, one stream each (RFC 9250 section 4.2).
    let mut concurrent = ScriptRequest::new(ZONE, None);
    concurrent.repeat = 3;
    let quic = ScriptTransport::Quic(tls.clone());
    let got = script_transfer(a.xoq_addr(), &quic, &concurrent)
        .unwrap_or_else(|error| panic!("three AXFRs on one QUIC connection failed:\n{error}"));
    assert!(
        got.transfers == 3 && got.identical && got.stream_finished && got.soa_count() == 2,
        "three AXFRs on one QUIC connection: {got:?}"
    );
    // A non-zero message ID is a protocol error that closes the connection (RFC 9250 4.2.1:
    // DOQ_PROTOCOL_ERROR, 0x2).
    let mut nonzero = ScriptRequest::new(ZONE, None);
    nonzero.message_id = Some(4321);
    match script_transfer(a.xoq_addr(), &quic, &nonzero) {
        Err(error) => assert!(
            error.contains("error code 0x2:"),
            "a non-zero message ID did not get DOQ_PROTOCOL_ERROR: {error}"
        ),
        Ok(got) => panic!("a non-zero message ID over QUIC got an answer: {got:?}"),
    }

    // Without a client certificate, or with one from a foreign CA: no transfer.
    let stranger_ca = ClusterCa::create("xoq-doq-stranger");
    let foreign = stranger_ca.issue("doq-client");
    let refused_clients = [
        (
            "no client certificate",
            tls.clone().without_client_certificate(),
        ),
        (
            "a foreign CA's client certificate",
            ClientTls {
                client: Some((foreign.certificate, foreign.private_key)),
                ..tls.clone()
            },
        ),
    ];
    for (what, client_tls) in refused_clients {
        match quic_transfer(a.xoq_addr(), ZONE, None, &client_tls) {
            Err(error) => {
                eprintln!("{what}: {}", error.trim());
                assert!(
                    error.contains("certificate"),
                    "{what}: the failure does not name the certificate: {error}"
                );
            }
            Ok(got) => panic!("a DoQ client with {what} got an answer: {got:?}"),
        }
    }
    let metrics = a.metrics();
    assert!(
        cluster_tests::zonecast::metric_sum(
            &metrics,
            "zonecast_transfers_out_total",
            &[("kind", "ixfr"), ("outcome", "success")]
        ) >= 2.0,
        "{metrics}"
    );
}
