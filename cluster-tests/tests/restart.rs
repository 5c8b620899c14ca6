//! Crash recovery: a node killed with SIGKILL restarts from its own data directory and serves
//! the zone at once, even though the primary is gone.

use std::time::{Duration, Instant};

use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";

#[test]
fn node_serves_its_stored_zone_after_kill9_with_the_primary_down() {
    let mut bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 7, 3600, 600, 86_400),
    )]);
    let mut node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 7, Duration::from_secs(15));
    // The status reports the version committed before the process is killed.
    node.wait_for_zone_status(ZONE, "fresh at serial 7", Duration::from_secs(5), |zone| {
        zone["state"] == "fresh" && zone["serial"] == 7
    });

    node.kill9();
    bind.stop();
    node.restart();
    let healthy = Instant::now();

    let took = node.wait_for_serial(ZONE, 7, Duration::from_secs(1));
    eprintln!(
        "serial 7 served {took:?} after /healthz ({:?} in total)",
        healthy.elapsed()
    );
    let answer = node.query("www.example.test", RecordType::A);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);

    let status = node.zone_status(ZONE);
    assert_eq!(status["state"], "fresh", "{status}");
    assert_eq!(status["serial"], 7, "{status}");
}
