//! NOTIFY handling: a NOTIFY from an address that is not a configured primary is REFUSED and
//! triggers nothing; the same NOTIFY from the primary's address, and a real one from BIND, make
//! the node fetch the new serial at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cluster_tests::check::{assert_rcode, assert_soa_serial};
use cluster_tests::client::send_notify;
use cluster_tests::compare::message_text;
use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig, free_port};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";
/// A loopback address that is not the primary's (127.0.0.1); Linux routes all of 127/8 to lo.
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PRIMARY: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Sends `server` an unsigned NOTIFY for the zone announcing serial 2, from `source`; panics if
/// there is no answer.
fn notify_serial_2(server: SocketAddr, source: IpAddr) -> Message {
    send_notify(server, ZONE, Some(2), source, None, Duration::from_secs(2))
        .unwrap_or_else(|error| panic!("{server} did not answer a NOTIFY from {source}: {error:#}"))
}

#[test]
fn notify_from_a_stranger_is_refused_and_ignored() {
    // BIND sends no NOTIFY for this zone, and the SOA refresh is an hour.
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 1, 3600, 600, 86_400),
    )]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 1, Duration::from_secs(15));
    let before =
        node.wait_for_zone_status(ZONE, "last_attempt set", Duration::from_secs(5), |zone| {
            zone["last_attempt"].is_u64()
        });
    bind.nsupdate(ZONE, &["update add added.example.test. 300 A 192.0.2.123"]);

    let response = notify_serial_2(node.addr(), STRANGER);
    assert_rcode(&response, ResponseCode::Refused, "a NOTIFY from a stranger");

    // Nothing happens: no refresh attempt, no new serial.
    std::thread::sleep(Duration::from_secs(2));
    let after = node.zone_status(ZONE);
    assert_eq!(
        after["last_attempt"], before["last_attempt"],
        "before: {before}\nafter: {after}"
    );
    assert_eq!(after["serial"], 1, "{after}");
    assert_soa_serial(
        &node.query(ZONE, RecordType::SOA),
        1,
        "after a NOTIFY from a stranger",
    );

    // The same NOTIFY from the primary's address is accepted and acted on.
    let response = notify_serial_2(node.addr(), PRIMARY);
    assert_rcode(&response, ResponseCode::NoError, "the primary's NOTIFY");
    assert_eq!(response.metadata.op_code, OpCode::Notify);
    assert!(
        response.metadata.authoritative,
        "{}",
        message_text(&response)
    );
    node.wait_for_serial(ZONE, 2, Duration::from_secs(2));
}

#[test]
fn notify_from_bind_is_acted_on() {
    let node_port = free_port();
    let bind = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 1, 3600, 600, 86_400)).notify_port(node_port),
    ]);
    let node = Zonecast::start(&ZonecastConfig::new().dns_port(node_port).primary_zone(
        ZONE,
        bind.addr(),
        None,
    ));
    node.wait_for_serial(ZONE, 1, Duration::from_secs(15));
    let start = Instant::now();
    bind.nsupdate(ZONE, &["update add added.example.test. 300 A 192.0.2.123"]);
    let took = node.wait_for_serial_since(ZONE, 2, start, Duration::from_secs(2));
    eprintln!("NOTIFY from BIND acted on {took:?} after nsupdate started");
}

#[test]
fn the_stranger_address_is_usable_as_a_source() {
    // Harness check: packets from 127.0.0.2 reach a server and its answer comes back (BIND
    // answers a NOTIFY for a zone it is primary for, and ignores it).
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 1, 3600, 600, 86_400),
    )]);
    let response = notify_serial_2(bind.addr(), STRANGER);
    assert_eq!(
        response.metadata.op_code,
        OpCode::Notify,
        "{}",
        message_text(&response)
    );
}
