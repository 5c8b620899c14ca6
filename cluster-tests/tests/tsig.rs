//! TSIG-protected transfers from BIND, for each of hmac-sha256, hmac-sha1 and hmac-sha512:
//! a node with the right key loads the zone; a node with a wrong secret never loads it, serves
//! SERVFAIL and reports a TSIG failure in `/status` (`last_error_kind` "tsig", the text naming
//! TSIG); and a node that loaded the zone keeps serving the old serial when the primary's key
//! changes under it.

use std::time::Duration;

use cluster_tests::check::{assert_rcode, assert_soa_serial};
use cluster_tests::util::contains_ignore_case;
use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, TsigKey, Zonecast, ZonecastConfig, free_port};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const ZONE: &str = "example.test";
/// The zone's SOA refresh: short, so that after the key change the node's own refresh finds the
/// new serial even if it refuses BIND's NOTIFY (now signed with a key it does not have).
const REFRESH_S: u32 = 2;
/// How long loading, or failing to load, may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Waits until `node` reports a TSIG failure for the zone (`last_error_kind` "tsig"), checks
/// that `last_error` names it too, and returns the zone's status.
fn wait_for_tsig_error(node: &Zonecast, algorithm: &str) -> Value {
    let status = node.wait_for_last_error_kind(ZONE, &["tsig"], ATTEMPT_TIMEOUT);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        ["TSIG", "BADSIG", "BADKEY"]
            .iter()
            .any(|word| contains_ignore_case(error, word)),
        "{algorithm}: last_error does not name the TSIG failure: {status}"
    );
    status
}

fn tsig_scenario(algorithm: &str) {
    let key = TsigKey::generate("xfr-key", algorithm);
    let node_port = free_port();
    let mut bind = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 1, REFRESH_S, 1, 86_400))
            .transfer_key(key.clone())
            .notify_port(node_port),
    ]);

    // The right key: the zone loads.
    let node = Zonecast::start(&ZonecastConfig::new().dns_port(node_port).primary_zone(
        ZONE,
        bind.addr(),
        Some(&key),
    ));
    node.wait_for_serial(ZONE, 1, ATTEMPT_TIMEOUT);

    // A wrong secret: never loaded, SERVFAIL, and the reason in /status.
    let wrong_key = key.with_other_secret();
    let stranger =
        Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), Some(&wrong_key)));
    let status = wait_for_tsig_error(&stranger, algorithm);
    assert!(status["serial"].is_null(), "{algorithm}: {status}");
    assert_ne!(status["state"], "fresh", "{algorithm}: {status}");
    for (name, rtype) in [(ZONE, RecordType::SOA), ("www.example.test", RecordType::A)] {
        let answer = stranger.query(name, rtype);
        let context = format!("{algorithm}: {name} {rtype} from a node that never loaded");
        assert_rcode(&answer, ResponseCode::ServFail, &context);
    }

    // The key changes on the primary, then the zone changes: the loaded node's next refresh
    // fails, and it keeps serving serial 1.
    bind.set_transfer_key(ZONE, Some(key.with_other_secret()));
    bind.nsupdate(ZONE, &["update add added.example.test. 300 A 192.0.2.123"]);
    let status = wait_for_tsig_error(&node, algorithm);
    assert_eq!(status["serial"], 1, "{algorithm}: {status}");
    let context = format!("{algorithm}, after the key change");
    let soa = node.query(ZONE, RecordType::SOA);
    assert_soa_serial(&soa, 1, &context);
    let added = node.query("added.example.test", RecordType::A);
    assert_rcode(&added, ResponseCode::NXDomain, &context);
}

#[test]
fn hmac_sha256() {
    tsig_scenario("hmac-sha256");
}

#[test]
fn hmac_sha1() {
    tsig_scenario("hmac-sha1");
}

#[test]
fn hmac_sha512() {
    tsig_scenario("hmac-sha512");
}
