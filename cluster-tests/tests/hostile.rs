//! Broken transfers from a hostile primary: after a good load, a transfer without its closing
//! SOA, one with a record outside the zone, and one with a wrong TSIG are each rejected — the old
//! serial stays served, `/status` gives the kind of failure (`last_error_kind`) and names the
//! reason (`last_error`), and the metrics count a failed transfer and a refresh failure of that
//! kind — and a later good transfer still loads.
//!
//! The `hostile_primary_*` tests check the test double itself with `dig` and `kdig`.

use std::time::Duration;

use cluster_tests::check::{assert_rcode, assert_soa_serial};
use cluster_tests::client::{dig_axfr, soa_lines};
use cluster_tests::util::contains_ignore_case;
use cluster_tests::{HostilePrimary, Mode, TsigKey, Zonecast, ZonecastConfig, dig_at, kdig};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const ZONE: &str = "example.test";
/// How long a load or a failed attempt may take (the double's SOA refresh is 2 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Loads serial 1 from a good hostile primary, switches it to `mode` at serial 2, and checks the
/// node rejects the transfer with an error of `kind` whose text contains one of `reasons`.
fn rejected_transfer(mode: Mode, kind: &str, reasons: &[&str]) {
    let key = (mode == Mode::WrongTsig).then(|| TsigKey::generate("xfr-key", "hmac-sha256"));
    let primary = HostilePrimary::start(ZONE, 1, Mode::Good, key.clone());
    let node =
        Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, primary.addr(), key.as_ref()));
    node.wait_for_serial(ZONE, 1, ATTEMPT_TIMEOUT);
    let failures_before = node.metric_sum("zonecast_transfers_total", &[("outcome", "failure")]);
    let kind_before = node.metric_sum("zonecast_refresh_failures_total", &[("kind", kind)]);

    primary.set_mode(mode);
    primary.set_serial(2);
    // The NOTIFY only speeds things up; the 2 s SOA refresh would trigger the attempt anyway,
    // so an unanswered NOTIFY is not a failure of this test.
    let _ = primary.notify(node.addr());
    let status = node.wait_for_last_error_kind(ZONE, &[kind], ATTEMPT_TIMEOUT);
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        reasons
            .iter()
            .any(|reason| contains_ignore_case(error, reason)),
        "{mode:?}: last_error does not name the reason (one of {reasons:?}): {status}"
    );
    assert_eq!(status["serial"], 1, "{mode:?}: {status}");
    let context = format!("{mode:?}, after the rejected transfer");
    let soa = node.query(ZONE, RecordType::SOA);
    assert_soa_serial(&soa, 1, &context);
    let www = node.query("www.example.test", RecordType::A);
    assert_rcode(&www, ResponseCode::NoError, &context);
    let counted =
        cluster_tests::util::poll(Duration::from_secs(3), Duration::from_millis(100), || {
            let failures = node.metric_sum("zonecast_transfers_total", &[("outcome", "failure")]);
            (failures > failures_before).then_some(failures)
        });
    assert!(
        counted.is_some(),
        "{mode:?}: no failed transfer counted:\n{}",
        node.metrics()
    );
    let kind_counted = node.metric_sum("zonecast_refresh_failures_total", &[("kind", kind)]);
    assert!(
        kind_counted > kind_before,
        "{mode:?}: no refresh failure of kind {kind} counted:\n{}",
        node.metrics()
    );
    if mode == Mode::RecordOutsideZone {
        let foreign = node.query("www.victim.test", RecordType::A);
        assert_rcode(&foreign, ResponseCode::Refused, "the out-of-zone owner");
    }

    // A good transfer afterwards still loads.
    primary.set_serial(3);
    primary.set_mode(Mode::Good);
    let _ = primary.notify(node.addr());
    node.wait_for_serial(ZONE, 3, ATTEMPT_TIMEOUT);
}

#[test]
fn transfer_without_final_soa_is_rejected() {
    rejected_transfer(Mode::MissingFinalSoa, "bad_stream", &["SOA"]);
}

#[test]
fn transfer_with_a_record_outside_the_zone_is_rejected() {
    // "outside" is the word the interface promises; the synonyms are accepted because the
    // point is that the reason is named.
    rejected_transfer(
        Mode::RecordOutsideZone,
        "bad_stream",
        &["outside", "out of zone", "out-of-zone", "not in zone"],
    );
}

#[test]
fn transfer_with_a_wrong_tsig_is_rejected() {
    rejected_transfer(Mode::WrongTsig, "tsig", &["TSIG"]);
}

#[test]
fn hostile_primary_good_mode_is_a_valid_signed_transfer_for_dig_and_kdig() {
    let key = TsigKey::generate("xfr-key", "hmac-sha256");
    let primary = HostilePrimary::start(ZONE, 5, Mode::Good, Some(key.clone()));
    let output = dig_at(primary.addr(), &["-y", &key.dig_argument(), ZONE, "AXFR"]);
    assert_eq!(soa_lines(&output), 2, "{output}");
    assert!(!contains_ignore_case(&output, "failure"), "{output}");

    let at = format!("@{}", primary.addr().ip());
    let port = primary.addr().port().to_string();
    let output = kdig(&[&at, "-p", &port, "-y", &key.dig_argument(), ZONE, "AXFR"]);
    assert_eq!(soa_lines(&output), 2, "{output}");

    // Unsigned transfers are refused, SOA queries are answered with the current serial.
    let output = dig_at(primary.addr(), &[ZONE, "AXFR"]);
    assert_eq!(soa_lines(&output), 0, "{output}");
    primary.set_serial(6);
    let output = dig_at(primary.addr(), &["+short", ZONE, "SOA"]);
    assert_eq!(output.split_whitespace().nth(2), Some("6"), "{output}");
    assert!(primary.transfer_requests() >= 3);
}

#[test]
fn hostile_primary_broken_modes_look_broken_to_dig() {
    let key = TsigKey::generate("xfr-key", "hmac-sha256");
    let primary = HostilePrimary::start(ZONE, 5, Mode::MissingFinalSoa, None);
    let output = dig_axfr(primary.addr(), ZONE, None);
    assert_eq!(soa_lines(&output), 1, "{output}");

    primary.set_mode(Mode::RecordOutsideZone);
    let output = dig_axfr(primary.addr(), ZONE, None);
    assert_eq!(soa_lines(&output), 2, "{output}");
    assert!(output.contains("www.victim.test."), "{output}");

    drop(primary);
    let primary = HostilePrimary::start(ZONE, 5, Mode::WrongTsig, Some(key.clone()));
    let output = dig_axfr(primary.addr(), ZONE, Some(&key));
    assert!(
        contains_ignore_case(&output, "tsig verify failure")
            || contains_ignore_case(&output, "couldn't verify"),
        "dig accepted the wrong TSIG:\n{output}"
    );
}
