//! SOA EXPIRE: when the primary is unreachable for longer than the zone's expire time, the node
//! stops answering for the zone (SERVFAIL) and reports it as expired.

use std::time::{Duration, Instant};

use cluster_tests::check::assert_rcode;
use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";
/// SOA timers of the test zone, in seconds; the node's default test clamps (refresh and retry at
/// least 1 s, expire at least 3 s) leave them as they are.
const REFRESH_S: u32 = 2;
const RETRY_S: u32 = 1;
const EXPIRE_S: u32 = 5;

#[test]
fn zone_expires_after_the_primary_is_gone_for_expire_seconds() {
    let mut bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 3, REFRESH_S, RETRY_S, EXPIRE_S),
    )]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 3, Duration::from_secs(15));
    let fresh = node.wait_for_zone_status(ZONE, "fresh", Duration::from_secs(5), |zone| {
        zone["state"] == "fresh"
    });
    let deadline = fresh["expire_deadline"]
        .as_u64()
        .expect("expire_deadline is set");
    let success = fresh["last_success"].as_u64().expect("last_success is set");
    assert!(
        deadline.abs_diff(success + u64::from(EXPIRE_S)) <= 1,
        "expire_deadline is not last_success + {EXPIRE_S} s: {fresh}"
    );

    bind.stop();
    let stopped = Instant::now();
    // Until it expires the zone is still served.
    let answer = node.query("www.example.test", RecordType::A);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);

    let expired = node.wait_for_zone_status(
        ZONE,
        "state expired",
        Duration::from_secs(u64::from(EXPIRE_S) + 5),
        |zone| zone["state"] == "expired",
    );
    eprintln!(
        "expired {:?} after the primary stopped: {expired}",
        stopped.elapsed()
    );
    // The last successful refresh was at most one refresh interval before the stop.
    assert!(
        stopped.elapsed() >= Duration::from_secs(u64::from(EXPIRE_S - REFRESH_S - 1)),
        "expired too early: {:?} after the primary stopped",
        stopped.elapsed()
    );
    for (name, rtype) in [(ZONE, RecordType::SOA), ("www.example.test", RecordType::A)] {
        let answer = node.query(name, rtype);
        assert_rcode(&answer, ResponseCode::ServFail, "after expiry");
    }
}
