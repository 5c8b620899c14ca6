//! EDNS EXPIRE (RFC 7314): a node that copies a zone from another zonecast node inherits the
//! source's remaining expire time instead of starting a fresh SOA EXPIRE clock, over QUIC from a
//! peer as over TCP from a node acting as primary; and the option is answered with the remaining
//! seconds for SOA (`dig +expire`), AXFR and IXFR.

use std::time::Duration;

use cluster_tests::client::expire_over_tcp;
use cluster_tests::util::unix_now;
use cluster_tests::zones::simple_zone;
use cluster_tests::{
    AclEntry, Bind, BindZone, ClusterCa, Peer, ZoneConfig, Zonecast, ZonecastConfig, dig_at,
};
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";
/// The zone's SOA EXPIRE, in seconds; REFRESH is shorter, as RFC 1912 asks, yet longer than the
/// test, so that no refresh moves a deadline while it runs.
const EXPIRE_S: u64 = 60;
const REFRESH_S: u32 = 50;
/// How long the first node holds the zone before the second copies it: long enough that an
/// inherited deadline and a fresh one are told apart beyond clock granularity.
const HOLD: Duration = Duration::from_secs(5);
/// Slack for whole-second timestamps and the time a transfer takes.
const SLACK_S: u64 = 2;
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);

/// The `expire_deadline` and `last_success` of `zone` once it is fresh.
fn deadline_and_success(node: &Zonecast) -> (u64, u64) {
    let status = node.wait_for_zone_status(ZONE, "fresh", LOAD_TIMEOUT, |zone| {
        zone["state"] == "fresh" && zone["expire_deadline"].is_u64()
    });
    let field = |name: &str| {
        status[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("expire_deadline"), field("last_success"))
}

/// The EXPIRE value `dig +expire` shows for the zone's SOA.
fn dig_expire(node: &Zonecast) -> u64 {
    let output = dig_at(node.addr(), &["+norec", "+expire", ZONE, "SOA"]);
    output
        .lines()
        .find_map(|line| line.strip_prefix("; EXPIRE: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no EXPIRE in dig +expire:\n{output}"))
}

#[test]
fn copies_inherit_the_remaining_expire_time() {
    let ca = ClusterCa::create("expire");
    let expire = u32::try_from(EXPIRE_S).expect("small");
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 1, REFRESH_S, 10, expire),
    )]);
    let a = Zonecast::start(
        &ZonecastConfig::new()
            .tls(ca.issue("node-a").identity())
            .with_xoq()
            .primary_zone(ZONE, bind.addr(), None),
    );
    a.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let (a_deadline, a_success) = deadline_and_success(&a);
    assert!(
        a_deadline.abs_diff(a_success + EXPIRE_S) <= 1,
        "A's deadline is not its last success + {EXPIRE_S} s"
    );

    std::thread::sleep(HOLD);
    // B copies from A over QUIC; C from B over TCP.
    let b = Zonecast::start(
        &ZonecastConfig::new()
            .tls(ca.issue("node-b").identity())
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(ZoneConfig::peers(
                ZONE,
                vec![Peer {
                    address: a.xoq_addr(),
                    name: "node-a".to_owned(),
                }],
            )),
    );
    b.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let (b_deadline, b_success) = deadline_and_success(&b);
    let c = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, b.addr(), None));
    c.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let (c_deadline, c_success) = deadline_and_success(&c);
    let report = |node: &str, deadline: u64, success: u64| {
        format!(
            "{node}: expire_deadline {deadline}, last_success {success} (A: expire_deadline \
             {a_deadline}, last_success {a_success}); B: {}",
            b.zone_status(ZONE)
        )
    };

    // B's clock is A's, not a fresh EXPIRE_S from its own load HOLD later.
    assert!(
        b_success >= a_success + HOLD.as_secs() - 1,
        "{}",
        report("B", b_deadline, b_success)
    );
    assert!(
        b_deadline <= a_deadline + 1 && b_deadline + SLACK_S >= a_deadline,
        "B did not inherit A's remaining expire time: {}",
        report("B", b_deadline, b_success)
    );
    assert!(
        b_deadline + HOLD.as_secs() - SLACK_S <= b_success + EXPIRE_S,
        "B restarted the clock: {}",
        report("B", b_deadline, b_success)
    );
    // C inherits B's (which is A's) over TCP.
    assert!(
        c_deadline <= b_deadline + 1 && c_deadline + SLACK_S >= b_deadline,
        "C did not inherit B's remaining expire time: {}",
        report("C", c_deadline, c_success)
    );

    // The remaining seconds, as the EXPIRE option says them.
    let remaining = a_deadline.saturating_sub(unix_now());
    let shown = dig_expire(&a);
    eprintln!("dig +expire at A: {shown} s; A's deadline is {remaining} s away");
    assert!(shown < EXPIRE_S, "dig +expire at A shows {shown}");
    assert!(
        shown.abs_diff(remaining) <= SLACK_S,
        "dig +expire at A shows {shown}, the deadline is {remaining} s away"
    );
    let at_b = dig_expire(&b);
    assert!(
        at_b <= shown + 1,
        "B shows EXPIRE {at_b}, more than A's {shown}"
    );
    // The option also rides on transfers (first message of AXFR and IXFR).
    for (what, rtype, serial) in [
        ("AXFR", RecordType::AXFR, None),
        ("IXFR", RecordType::IXFR, Some(1)),
    ] {
        let value = expire_over_tcp(b.addr(), ZONE, rtype, serial)
            .unwrap_or_else(|error| panic!("{what} with EXPIRE from B: {error:#}"))
            .unwrap_or_else(|| panic!("B's {what} answer has no EXPIRE option"));
        assert!(
            u64::from(value) <= at_b + 1 && u64::from(value) + SLACK_S >= at_b,
            "B's {what} says EXPIRE {value}, its SOA said {at_b}"
        );
    }
}
