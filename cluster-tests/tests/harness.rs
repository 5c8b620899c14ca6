//! Self-tests of the harness's peers, independent of zonecast: the BIND primary starts, accepts
//! dynamic updates, applies zone-file edits with `rndc`, produces IXFR, enforces TSIG on
//! transfers with each algorithm zonecast supports, picks up a key change, and survives a
//! restart with its data; and the harness's own TSIG signer is accepted by BIND.
//!
//! If these fail, the zonecast scenarios that use the same peers cannot be trusted either.

use std::time::Duration;

use cluster_tests::client::{QueryOptions, build_query, dig_axfr, exchange_tcp, soa_lines};
use cluster_tests::compare::message_text;
use cluster_tests::zones::{rich_zone, simple_zone};
use cluster_tests::{Bind, BindZone, TsigKey, dig_at, tsig};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// Asserts that BIND answers an IXFR of `zone` from `serial` incrementally (more than the two
/// SOAs of an AXFR-style answer: current, old, new, changes, current) and that the answer
/// contains `changed`.
fn assert_incremental_ixfr(bind: &Bind, zone: &str, serial: u32, changed: &str) {
    let request = format!("IXFR={serial}");
    let ixfr = dig_at(bind.addr(), &["+nocmd", "+nostats", zone, &request]);
    assert!(ixfr.contains(changed), "{ixfr}");
    assert!(soa_lines(&ixfr) >= 3, "IXFR was not incremental:\n{ixfr}");
}

#[test]
fn bind_applies_updates_and_edits_as_incremental_transfers() {
    let mut bind = Bind::start(vec![
        BindZone::new("example.test", rich_zone(1)),
        BindZone::new(
            "static.test",
            simple_zone("static.test", 1, 3600, 600, 86_400),
        )
        .static_zone(),
    ]);

    // Dynamic update: serial 1 -> 2, and the journal answers IXFR from 1 incrementally
    // (current SOA, old SOA, new SOA, added record, current SOA: more than two SOAs).
    bind.nsupdate(
        "example.test",
        &["update add added.example.test. 300 A 192.0.2.123"],
    );
    assert_eq!(bind.serial("example.test"), 2);
    assert_incremental_ixfr(&bind, "example.test", 1, "192.0.2.123");

    // File edit of the dynamic zone (freeze, write, thaw) to serial 10.
    let edited = rich_zone(10).replace("www A 192.0.2.80", "www A 192.0.2.81");
    bind.replace_zone("example.test", &edited);
    assert_eq!(bind.serial("example.test"), 10);
    assert_incremental_ixfr(&bind, "example.test", 2, "192.0.2.81");

    // File edit of the static zone and `rndc reload`.
    let edited = simple_zone("static.test", 2, 3600, 600, 86_400) + "new A 192.0.2.9\n";
    bind.replace_zone("static.test", &edited);
    assert_eq!(bind.serial("static.test"), 2);
    assert_incremental_ixfr(&bind, "static.test", 1, "192.0.2.9");
}

#[test]
fn bind_enforces_tsig_on_transfers_for_each_algorithm() {
    for algorithm in ["hmac-sha1", "hmac-sha256", "hmac-sha512"] {
        let key = TsigKey::generate("xfr-key", algorithm);
        let mut bind = Bind::start(vec![
            BindZone::new("example.test", rich_zone(1)).transfer_key(key.clone()),
        ]);
        let output = dig_axfr(bind.addr(), "example.test", Some(&key));
        assert_eq!(
            soa_lines(&output),
            2,
            "{algorithm}: signed AXFR failed:\n{output}"
        );

        let output = dig_axfr(bind.addr(), "example.test", None);
        assert_eq!(
            soa_lines(&output),
            0,
            "{algorithm}: unsigned AXFR allowed:\n{output}"
        );
        assert!(output.contains("Transfer failed"), "{output}");

        let output = dig_axfr(bind.addr(), "example.test", Some(&key.with_other_secret()));
        assert_eq!(
            soa_lines(&output),
            0,
            "{algorithm}: wrong key allowed:\n{output}"
        );

        // A key change on the primary takes effect with `rndc reconfig`.
        let new_key = key.with_other_secret();
        bind.set_transfer_key("example.test", Some(new_key.clone()));
        let output = dig_axfr(bind.addr(), "example.test", Some(&key));
        assert_eq!(
            soa_lines(&output),
            0,
            "{algorithm}: old key still allowed:\n{output}"
        );
        let output = dig_axfr(bind.addr(), "example.test", Some(&new_key));
        assert_eq!(
            soa_lines(&output),
            2,
            "{algorithm}: new key refused:\n{output}"
        );
    }
}

#[test]
fn bind_keeps_its_data_across_a_restart() {
    let mut bind = Bind::start(vec![BindZone::new(
        "example.test",
        simple_zone("example.test", 5, 3600, 600, 86_400),
    )]);
    bind.nsupdate(
        "example.test",
        &["update add added.example.test. 300 A 192.0.2.123"],
    );
    assert_eq!(bind.serial("example.test"), 6);
    bind.stop();
    assert!(
        cluster_tests::client::soa_serial(bind.addr(), "example.test", Duration::from_millis(300))
            .is_err(),
        "BIND still answers after stop"
    );
    bind.restart();
    assert_eq!(bind.serial("example.test"), 6);
    let answer = dig_at(bind.addr(), &["+short", "added.example.test", "A"]);
    assert_eq!(answer.trim(), "192.0.2.123");
}

#[test]
fn harness_tsig_signer_is_accepted_by_bind_for_each_algorithm() {
    // The hostile primary signs with `cluster_tests::tsig`; BIND verifying requests signed by
    // it shows the MAC computation is right (dig verifies the responses in tests/hostile.rs).
    for algorithm in ["hmac-sha1", "hmac-sha256", "hmac-sha512"] {
        let key = TsigKey::generate("xfr-key", algorithm);
        let bind = Bind::start(vec![
            BindZone::new(
                "example.test",
                simple_zone("example.test", 1, 3600, 600, 86_400),
            )
            .transfer_key(key.clone()),
        ]);
        for (signing_key, accepted) in [(key.clone(), true), (key.with_other_secret(), false)] {
            let mut request =
                build_query("example.test", RecordType::AXFR, &QueryOptions::no_edns());
            tsig::sign(&mut request, &signing_key, None);
            let response =
                exchange_tcp(bind.addr(), &request, Duration::from_secs(2)).expect("BIND answers");
            assert_eq!(
                response.metadata.response_code == ResponseCode::NoError,
                accepted,
                "{algorithm}, right key: {accepted}:\n{}",
                message_text(&response)
            );
        }
    }
}
