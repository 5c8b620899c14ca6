//! XFR-over-TLS (RFC 9103) with BIND 9.18 on both sides, and between zonecast nodes.
//!
//! In: BIND is an XoT-only primary (plain TCP transfers refused) with a certificate made by
//! `zonecast cert issue`; a node that authenticates it by CA and name loads the zone over TLS and
//! gets an update by NOTIFY (to its plain port) and IXFR over TLS. A wrong CA, a wrong name and a
//! wrong pin each fail with `last_error_kind` "tls" and a `last_error` naming TLS or the
//! certificate, the zone serving SERVFAIL; the right SPKI pin works, and so does the opportunistic profile. Out: the node's own
//! XoT listener serves AXFR to `kdig` (strict: CA and name), to `dig +tls`, to a Python client
//! making two transfers on one connection, and to BIND as an XoT secondary with strict checking.
//! Mutual TLS: with `xot_require_client_cert` only clients with a cluster certificate get the
//! zone (kdig with and without one, a foreign one; a downstream node with and without
//! `tls_client_certificate`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster_tests::check::assert_rcode;
use cluster_tests::client::{
    dig_axfr, dig_unchecked, kdig_unchecked, record_lines, soa_lines, sorted_record_lines,
};
use cluster_tests::doq::{
    ClientTls, ScriptRequest, ScriptTransport, script_transfer, tcp_transfer,
};
use cluster_tests::zones::{rich_zone, simple_zone};
use cluster_tests::{
    AclEntry, Bind, BindOptions, BindPrimary, BindTls, BindZone, ClusterCa, Primary, TlsTrust,
    Transport, ZoneConfig, Zonecast, ZonecastConfig, dig_at, free_port,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const ZONE: &str = "example.test";
/// The name in BIND's certificate.
const XOT_NAME: &str = "xot.example.test";
/// How long a first load (or a failure to load) may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// A zone that a downstream node fetches over XoT without presenting its certificate.
const UNPRESENTED_ZONE: &str = "unpresented.test";
/// Words that a TLS failure's `last_error` must contain one of.
const TLS_WORDS: &[&str] = &["TLS", "certificate", "handshake"];

/// Waits until `zone` on `node` reports a TLS failure of one of `kinds`; returns its status.
fn wait_for_tls_error(node: &Zonecast, zone: &str, kinds: &[&str]) -> Value {
    let status = node.wait_for_error(zone, kinds, TLS_WORDS, LOAD_TIMEOUT);
    eprintln!(
        "{zone}: {} ({})",
        status["last_error"], status["last_error_kind"]
    );
    status
}

/// `kdig @server -p PORT [arguments] ZONE AXFR` over TLS, whatever its exit status.
fn kdig_tls_axfr(server: SocketAddr, zone: &str, arguments: &[&str]) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut all = vec![at.as_str(), "-p", port.as_str(), "+time=3", "+retry=0"];
    all.extend_from_slice(arguments);
    all.extend([zone, "AXFR"]);
    kdig_unchecked(&all).1
}

/// Starts BIND as an XoT-only primary of `zones` with a certificate for `XOT_NAME` from `ca`.
fn xot_bind(ca: &ClusterCa, zones: Vec<BindZone>) -> Bind {
    let certificate = ca.issue(XOT_NAME);
    Bind::start_with(
        zones.into_iter().map(BindZone::xot_only).collect(),
        BindOptions {
            port: None,
            tls: Some(BindTls {
                certificate: certificate.certificate,
                private_key: certificate.private_key,
            }),
        },
    )
}

#[test]
fn bind_xot_primary_feeds_the_node_over_tls_only() {
    let ca = ClusterCa::create("xot");
    let node_port = free_port();
    let bind = xot_bind(
        &ca,
        vec![BindZone::new(ZONE, simple_zone(ZONE, 1, 3600, 600, 86_400)).notify_port(node_port)],
    );
    // Harness check: BIND transfers over TLS and refuses plain TCP.
    let ca_argument = format!("+tls-ca={}", ca.certificate().display());
    let hostname_argument = format!("+tls-hostname={XOT_NAME}");
    let direct = kdig_tls_axfr(bind.tls_addr(), ZONE, &[&ca_argument, &hostname_argument]);
    assert_eq!(soa_lines(&direct), 2, "kdig over TLS from BIND:\n{direct}");
    let plain = dig_axfr(bind.addr(), ZONE, None);
    assert_eq!(
        soa_lines(&plain),
        0,
        "BIND allowed plain TCP AXFR:\n{plain}"
    );

    let node = Zonecast::start(&ZonecastConfig::new().dns_port(node_port).zone(
        ZoneConfig::primaries(
            ZONE,
            vec![Primary::tls(
                bind.tls_addr(),
                XOT_NAME,
                TlsTrust::Ca(ca.certificate()),
            )],
        ),
    ));
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let status = node.zone_status(ZONE);
    assert_eq!(status["last_transfer"], "axfr", "{status}");
    assert_eq!(status["source"], bind.tls_addr().to_string(), "{status}");

    // NOTIFY to the plain port, then IXFR over TLS (the only way BIND allows).
    let start = Instant::now();
    bind.nsupdate(ZONE, &["update add tls.example.test. 300 A 192.0.2.43"]);
    let took = node.wait_for_serial_since(ZONE, 2, start, Duration::from_secs(3));
    eprintln!("update served {took:?} after nsupdate started");
    let status = node.zone_status(ZONE);
    assert_eq!(status["last_transfer"], "ixfr", "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    let answer = node.query("tls.example.test", RecordType::A);
    assert_rcode(&answer, ResponseCode::NoError, "the added name");
    assert_eq!(answer.answers.len(), 1);
    // BIND's log: the transfers it served went to the node over TLS, none over plain TCP.
    let log = bind.log_tail(400);
    let served: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("transfer of 'example.test/IN'") && line.contains("started"))
        .collect();
    assert!(
        served.iter().any(|line| line.contains("IXFR started")),
        "BIND served no IXFR:\n{}",
        served.join("\n")
    );
}

#[test]
fn wrong_ca_or_name_fails_clearly_and_the_right_pin_works() {
    let ca = ClusterCa::create("xot-trust");
    let stranger_ca = ClusterCa::create("xot-stranger");
    let zones = [
        "wrong-ca.test",
        "wrong-name.test",
        "pinned.test",
        "wrong-pin.test",
        "opportunistic.test",
    ];
    let bind = xot_bind(
        &ca,
        zones
            .iter()
            .map(|zone| BindZone::new(zone, simple_zone(zone, 5, 3600, 600, 86_400)))
            .collect(),
    );
    let pin = cluster_tests::certs::spki_pin(&ca.dir().join(format!("{XOT_NAME}.crt")));
    let stranger_pin = stranger_ca.issue(XOT_NAME).pin();
    let tls = |name: &str, trust: TlsTrust| Primary::tls(bind.tls_addr(), name, trust);
    let node = Zonecast::start(
        &ZonecastConfig::new()
            .zone(ZoneConfig::primaries(
                "wrong-ca.test",
                vec![tls(XOT_NAME, TlsTrust::Ca(stranger_ca.certificate()))],
            ))
            .zone(ZoneConfig::primaries(
                "wrong-name.test",
                vec![tls("other.example.test", TlsTrust::Ca(ca.certificate()))],
            ))
            .zone(ZoneConfig::primaries(
                "pinned.test",
                vec![tls(XOT_NAME, TlsTrust::Pin(vec![pin]))],
            ))
            .zone(ZoneConfig::primaries(
                "wrong-pin.test",
                vec![tls(XOT_NAME, TlsTrust::Pin(vec![stranger_pin]))],
            ))
            // Opportunistic: any certificate, even one for another name from an unknown CA.
            .zone(ZoneConfig::primaries(
                "opportunistic.test",
                vec![tls("other.example.test", TlsTrust::Opportunistic)],
            )),
    );
    node.wait_for_serial("opportunistic.test", 5, LOAD_TIMEOUT);
    node.wait_for_serial("pinned.test", 5, LOAD_TIMEOUT);
    for zone in ["wrong-ca.test", "wrong-name.test", "wrong-pin.test"] {
        let status = wait_for_tls_error(&node, zone, &["tls"]);
        assert!(status["serial"].is_null(), "{status}");
        assert_ne!(status["state"], "fresh", "{status}");
        let answer = node.query(zone, RecordType::SOA);
        assert_rcode(&answer, ResponseCode::ServFail, zone);
    }
    // The wrong name is named as such, not as some other failure.
    let status = node.zone_status("wrong-name.test");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        ["name", "other.example.test", "NotValidForName"]
            .iter()
            .any(|word| error.contains(word)),
        "the error does not say the name is wrong: {status}"
    );
}

#[test]
fn the_node_serves_xot_to_kdig_dig_and_bind() {
    let ca = ClusterCa::create("xot-out");
    let source = Bind::start(vec![BindZone::new(ZONE, rich_zone(1))]);
    let node_a = ca.issue("node-a");
    let node = Zonecast::start(
        &ZonecastConfig::new()
            .tls(node_a.identity())
            .with_xot()
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .primary_zone(ZONE, source.addr(), None),
    );
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let plain = dig_at(node.addr(), &["+nocmd", "+nostats", ZONE, "AXFR"]);
    assert_eq!(soa_lines(&plain), 2, "{plain}");

    // kdig, strict: the node's certificate chains to the CA and carries "node-a".
    let ca_argument = format!("+tls-ca={}", ca.certificate().display());
    let strict = kdig_tls_axfr(
        node.xot_addr(),
        ZONE,
        &[&ca_argument, "+tls-hostname=node-a"],
    );
    assert_eq!(soa_lines(&strict), 2, "kdig +tls-ca AXFR:\n{strict}");
    assert_eq!(
        record_lines(&strict).len(),
        record_lines(&plain).len(),
        "kdig over TLS:\n{strict}\ndig over TCP:\n{plain}"
    );
    // The wrong hostname is rejected by kdig: the node's certificate is really checked.
    let wrong = kdig_tls_axfr(
        node.xot_addr(),
        ZONE,
        &[&ca_argument, "+tls-hostname=node-b"],
    );
    assert_eq!(
        soa_lines(&wrong),
        0,
        "kdig accepted the wrong name:\n{wrong}"
    );

    // dig +tls (BIND's client, opportunistic).
    let at = format!("@{}", node.xot_addr().ip());
    let port = node.xot_addr().port().to_string();
    let (_, over_tls) = dig_unchecked(&[
        &at, "-p", &port, "+tls", "+time=3", "+tries=1", "+nocmd", "+nostats", ZONE, "AXFR",
    ]);
    assert_eq!(
        sorted_record_lines(&over_tls),
        sorted_record_lines(&plain),
        "dig +tls AXFR (left) differs from dig AXFR over TCP"
    );

    // An independent client (Python's ssl, ALPN "dot", TLS 1.3 only) makes two transfers one
    // after the other on one connection (RFC 9103 section 5.2).
    let tls = ScriptTransport::Tls(ClientTls {
        ca: ca.certificate(),
        server_name: "node-a".to_owned(),
        client: None,
    });
    let mut twice = ScriptRequest::new(ZONE, None);
    twice.repeat = 2;
    let got = script_transfer(node.xot_addr(), &tls, &twice)
        .unwrap_or_else(|error| panic!("two AXFRs on one TLS connection failed:\n{error}"));
    let tcp = tcp_transfer(node.addr(), ZONE, None).expect("AXFR over TCP");
    assert!(
        got.transfers == 2 && got.identical && got.soa_count() == 2,
        "two AXFRs on one TLS connection: {got:?}"
    );
    assert_eq!(got.records, tcp.records, "XoT (left) differs from TCP");

    // BIND as an XoT secondary of the node, checking its certificate strictly.
    let secondary = Bind::start_with(
        vec![BindZone::secondary(
            ZONE,
            BindPrimary {
                address: node.xot_addr(),
                tls: Some((ca.certificate(), "node-a".to_owned())),
                key: None,
            },
        )],
        BindOptions::default(),
    );
    secondary.wait_for_serial_within(ZONE, 1, LOAD_TIMEOUT);
    let copied = dig_at(secondary.addr(), &["+nocmd", "+nostats", ZONE, "AXFR"]);
    assert_eq!(
        sorted_record_lines(&copied),
        sorted_record_lines(&plain),
        "BIND's copy over XoT (left) differs from the node's zone"
    );
    assert!(
        secondary
            .log_tail(200)
            .lines()
            .any(|line| line.contains("Transfer completed") && line.contains("(serial 1)")),
        "{}",
        secondary.log_tail(60)
    );
}

#[test]
fn mutual_tls_shuts_out_clients_without_a_cluster_certificate() {
    let ca = ClusterCa::create("xot-mutual");
    let stranger_ca = ClusterCa::create("xot-mutual-stranger");
    let source = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 3, 3600, 600, 86_400)),
        BindZone::new(
            UNPRESENTED_ZONE,
            simple_zone(UNPRESENTED_ZONE, 3, 3600, 600, 86_400),
        ),
    ]);
    let mut config = ZonecastConfig::new()
        .tls(ca.issue("node-a").identity())
        .with_xot()
        .primary_zone(ZONE, source.addr(), None)
        .primary_zone(UNPRESENTED_ZONE, source.addr(), None);
    // No ACL entry at all: a cluster certificate is what allows the transfer.
    config.xot_require_client_cert = true;
    let node = Zonecast::start(&config);
    node.wait_for_serial(ZONE, 3, LOAD_TIMEOUT);

    let ca_argument = format!("+tls-ca={}", ca.certificate().display());
    let member = ca.issue("node-b");
    let certfile = format!("+tls-certfile={}", member.certificate.display());
    let keyfile = format!("+tls-keyfile={}", member.private_key.display());
    let with_cert = kdig_tls_axfr(
        node.xot_addr(),
        ZONE,
        &[&ca_argument, "+tls-hostname=node-a", &certfile, &keyfile],
    );
    assert_eq!(
        soa_lines(&with_cert),
        2,
        "a cluster member's AXFR over mutual TLS:\n{with_cert}"
    );

    let without = kdig_tls_axfr(
        node.xot_addr(),
        ZONE,
        &[&ca_argument, "+tls-hostname=node-a"],
    );
    assert_eq!(soa_lines(&without), 0, "no client certificate:\n{without}");

    let outsider = stranger_ca.issue("node-x");
    let certfile = format!("+tls-certfile={}", outsider.certificate.display());
    let keyfile = format!("+tls-keyfile={}", outsider.private_key.display());
    let foreign = kdig_tls_axfr(
        node.xot_addr(),
        ZONE,
        &[&ca_argument, "+tls-hostname=node-a", &certfile, &keyfile],
    );
    assert_eq!(
        soa_lines(&foreign),
        0,
        "a foreign CA's client certificate:\n{foreign}"
    );

    // Plain TCP has no client certificate and there is no ACL entry: refused.
    let plain = dig_axfr(node.addr(), ZONE, None);
    assert_eq!(soa_lines(&plain), 0, "plain TCP AXFR:\n{plain}");

    // Node to node over mutual TLS: with `tls_client_certificate` the downstream presents its
    // cluster certificate and loads; without, it is shut out and says why.
    let upstream = Primary::tls(node.xot_addr(), "node-a", TlsTrust::Ca(ca.certificate()));
    let mut presenting = upstream.clone();
    if let Transport::Tls {
        client_certificate, ..
    } = &mut presenting.transport
    {
        *client_certificate = true;
    }
    let downstream = Zonecast::start(
        &ZonecastConfig::new()
            .tls(member.identity())
            .zone(ZoneConfig::primaries(ZONE, vec![presenting]))
            .zone(ZoneConfig::primaries(UNPRESENTED_ZONE, vec![upstream])),
    );
    downstream.wait_for_serial(ZONE, 3, LOAD_TIMEOUT);
    // In TLS 1.3 the client's handshake is over before the server has checked the client's
    // certificate: the server's refusal (a CertificateRequired alert) arrives on the first
    // read of the SOA answer. The node still names it a TLS failure.
    let status = wait_for_tls_error(&downstream, UNPRESENTED_ZONE, &["tls"]);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("CertificateRequired"),
        "the refusal is not named as the server's alert: {status}"
    );
    assert!(status["serial"].is_null(), "{status}");
}
