//! A node's life around its primaries: several primaries tried in order, answers over IPv6 as
//! well as IPv4, a clean stop on SIGTERM, and a zone whose EXPIRE ran out while the node was
//! down starting expired (timers continue from the stored times).

use std::net::{Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use cluster_tests::check::assert_rcode;
use cluster_tests::client::{QueryOptions, answer_serial, query_tcp, query_udp};
use cluster_tests::util::free_port;
use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";

#[test]
fn primaries_are_tried_in_order_and_ipv6_is_served() {
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 11, 3600, 600, 86_400),
    )]);
    // Nothing listens on the first primary's port: the node must move on to BIND.
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut config = ZonecastConfig::new().with_ipv6();
    config = config.primary_zone(ZONE, dead, None);
    if let cluster_tests::zonecast::ZoneSource::Primaries(primaries) = &mut config.zones[0].source {
        primaries.push(cluster_tests::zonecast::Primary::tcp(bind.addr()));
    }
    let node = Zonecast::start(&config);
    node.wait_for_serial(ZONE, 11, Duration::from_secs(20));
    let status = node.wait_for_zone_status(ZONE, "fresh", Duration::from_secs(5), |zone| {
        zone["state"] == "fresh"
    });
    assert_eq!(status["source"], bind.addr().to_string(), "{status}");

    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, node.addr().port()));
    let options = QueryOptions::default();
    let udp = query_udp(v6, "www.example.test", RecordType::A, &options).expect("UDP over IPv6");
    assert_eq!(udp.metadata.response_code, ResponseCode::NoError);
    assert!(udp.metadata.authoritative);
    assert_eq!(udp.answers.len(), 1);
    let tcp = query_tcp(v6, ZONE, RecordType::SOA, &options).expect("TCP over IPv6");
    assert_eq!(answer_serial(&tcp), Some(11));
}

#[test]
fn sigterm_stops_the_node_cleanly() {
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 4, 3600, 600, 86_400),
    )]);
    let mut node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 4, Duration::from_secs(15));
    node.stop();
    let log = std::fs::read_to_string(node.dir().join("zonecast.log")).unwrap_or_default();
    assert!(log.contains("shutting down"), "no shutdown logged:\n{log}");
    assert!(
        log.contains("stopped"),
        "the node did not finish its shutdown:\n{log}"
    );
    assert!(
        !log.contains("killed with SIGKILL"),
        "the node needed SIGKILL after SIGTERM:\n{log}"
    );
    // Every service, the UDP worker threads blocked in the kernel included, must end by
    // itself: the shutdown timeout is a last resort, not the way out.
    assert!(
        !log.contains("did not stop within"),
        "a service had to be abandoned at shutdown:\n{log}"
    );
}

#[test]
fn a_zone_that_expired_while_the_node_was_down_starts_expired() {
    const EXPIRE_S: u64 = 5;
    let mut bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 9, 3600, 600, EXPIRE_S as u32),
    )]);
    let mut node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 9, Duration::from_secs(15));
    let fresh = node.wait_for_zone_status(ZONE, "fresh", Duration::from_secs(5), |zone| {
        zone["state"] == "fresh"
    });
    let deadline = fresh["expire_deadline"].as_u64().expect("expire_deadline");
    node.kill9();
    bind.stop();
    // Stay down until the stored deadline has passed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    std::thread::sleep(Duration::from_secs(deadline.saturating_sub(now) + 2));
    node.restart();
    let started = Instant::now();
    let answer = node.query("www.example.test", RecordType::A);
    assert_rcode(
        &answer,
        ResponseCode::ServFail,
        "an expired zone was answered after the restart",
    );
    let status = node.zone_status(ZONE);
    assert_eq!(status["state"], "expired", "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(EXPIRE_S),
        "took {:?}",
        started.elapsed()
    );
}
