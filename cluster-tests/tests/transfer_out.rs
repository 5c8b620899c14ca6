//! Transfers served by zonecast (RFC 5936, RFC 1995) to real clients: a node that loaded a zone
//! from BIND hands out the same AXFR as BIND (`dig`, `kdig`); its ACL refuses other sources,
//! unsigned requests where a key is required (REFUSED) and wrongly signed ones (NOTAUTH); IXFR
//! comes from its bounded journal (incremental, AXFR-style when the client is older than it,
//! one SOA when it is up to date, the SOA alone over UDP); a downstream zonecast node follows by
//! NOTIFY + IXFR within 2 s; and BIND as a secondary of the node loads the zone and follows
//! updates by IXFR, also when it shares a TSIG key with the node (signed SOA queries get signed
//! answers; bad MACs and unknown keys get NOTAUTH with BADSIG/BADKEY). Each incremental step
//! opens with the node's own SOA of the old version. A reloaded file zone journals its
//! difference, but only below 10,000 names (a FIXME).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use cluster_tests::check::{assert_rcode, assert_soa_serial};
use cluster_tests::client::{
    QueryOptions, build_query, dig_axfr, dig_unchecked, exchange_tcp, kdig_unchecked, query_udp,
    record_lines, soa_lines, sorted_record_lines,
};
use cluster_tests::compare::message_text;
use cluster_tests::zones::{rich_zone, simple_zone};
use cluster_tests::{
    AclEntry, Bind, BindOptions, BindPrimary, BindZone, Primary, TsigKey, ZoneConfig, Zonecast,
    ZonecastConfig, dig_at, free_port, tsig,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::tsig::TsigError;

const ZONE: &str = "example.test";
/// A second zone whose own ACL requires a TSIG key.
const KEYED_ZONE: &str = "keyed.test";
/// How long a first load may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a change on the primary may take to reach a node two hops down.
const PROPAGATION_MAX: Duration = Duration::from_secs(2);
/// A loopback source that no ACL here allows.
const STRANGER: &str = "127.0.0.2";

/// `dig +nocmd +nostats @server -p PORT ZONE TYPE [extra]` (TCP for transfers), whatever its
/// exit status.
fn dig_transfer(server: SocketAddr, zone: &str, request: &str, extra: &[&str]) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut arguments = vec![
        at.as_str(),
        "-p",
        port.as_str(),
        "+time=3",
        "+tries=1",
        "+nocmd",
        "+nostats",
    ];
    arguments.extend_from_slice(extra);
    arguments.extend([zone, request]);
    dig_unchecked(&arguments).1
}

/// `kdig @server -p PORT ZONE AXFR [extra]`, whatever its exit status.
fn kdig_axfr(server: SocketAddr, zone: &str, extra: &[&str]) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut arguments = vec![at.as_str(), "-p", port.as_str(), "+time=3", "+retry=0"];
    arguments.extend_from_slice(extra);
    arguments.extend([zone, "AXFR"]);
    kdig_unchecked(&arguments).1
}

/// Sends an AXFR request for `zone` over TCP, signed with `key` when given, and returns the
/// rcode of the first answer.
fn axfr_rcode(server: SocketAddr, zone: &str, key: Option<&TsigKey>) -> ResponseCode {
    let mut request = build_query(zone, RecordType::AXFR, &QueryOptions::no_edns());
    if let Some(key) = key {
        tsig::sign(&mut request, key, None);
    }
    let response = exchange_tcp(server, &request, Duration::from_secs(3))
        .unwrap_or_else(|error| panic!("no answer to an AXFR of {zone} from {server}: {error:#}"));
    response.metadata.response_code
}

#[test]
fn axfr_out_equals_bind_and_the_acl_decides_who_gets_it() {
    let key = TsigKey::generate("out-key", "hmac-sha256");
    let bind = Bind::start(vec![
        BindZone::new(ZONE, rich_zone(1)),
        BindZone::new(KEYED_ZONE, simple_zone(KEYED_ZONE, 7, 3600, 600, 86_400)),
    ]);
    let node = Zonecast::start(
        &ZonecastConfig::new()
            .tsig_key(&key)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .primary_zone(ZONE, bind.addr(), None)
            .zone(
                ZoneConfig::primaries(KEYED_ZONE, vec![Primary::tcp(bind.addr())])
                    .allow_transfer(vec![AclEntry::keyed("127.0.0.0/8", &key.name)]),
            ),
    );
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    node.wait_for_serial(KEYED_ZONE, 7, LOAD_TIMEOUT);

    // The same record set as the primary's, through dig and through kdig.
    let ours = dig_transfer(node.addr(), ZONE, "AXFR", &[]);
    let theirs = dig_transfer(bind.addr(), ZONE, "AXFR", &[]);
    assert_eq!(soa_lines(&ours), 2, "dig AXFR from the node:\n{ours}");
    assert!(record_lines(&theirs).len() > 40, "BIND's AXFR:\n{theirs}");
    assert_eq!(
        sorted_record_lines(&ours),
        sorted_record_lines(&theirs),
        "dig AXFR: the node (left) differs from BIND"
    );
    let ours = kdig_axfr(node.addr(), ZONE, &[]);
    let theirs = kdig_axfr(bind.addr(), ZONE, &[]);
    assert_eq!(soa_lines(&ours), 2, "kdig AXFR from the node:\n{ours}");
    assert_eq!(
        sorted_record_lines(&ours),
        sorted_record_lines(&theirs),
        "kdig AXFR: the node (left) differs from BIND"
    );

    // Another source is refused.
    let refused = kdig_axfr(node.addr(), ZONE, &["-b", STRANGER]);
    assert_eq!(soa_lines(&refused), 0, "kdig -b {STRANGER}:\n{refused}");
    assert!(
        refused.contains("REFUSED"),
        "kdig -b {STRANGER}:\n{refused}"
    );
    let refused = dig_transfer(node.addr(), ZONE, "AXFR", &["-b", STRANGER]);
    assert_eq!(soa_lines(&refused), 0, "dig -b {STRANGER}:\n{refused}");

    // The keyed zone: unsigned is refused, a wrong secret is NOTAUTH, the right key works.
    assert_eq!(
        axfr_rcode(node.addr(), KEYED_ZONE, None),
        ResponseCode::Refused,
        "an unsigned AXFR where the ACL names a key"
    );
    assert_eq!(
        axfr_rcode(node.addr(), KEYED_ZONE, Some(&key.with_other_secret())),
        ResponseCode::NotAuth,
        "an AXFR signed with a wrong secret"
    );
    assert_eq!(
        axfr_rcode(
            node.addr(),
            KEYED_ZONE,
            Some(&TsigKey::generate("unknown-key", "hmac-sha256"))
        ),
        ResponseCode::NotAuth,
        "an AXFR signed with an unknown key"
    );
    let unsigned = dig_axfr(node.addr(), KEYED_ZONE, None);
    assert_eq!(soa_lines(&unsigned), 0, "unsigned dig AXFR:\n{unsigned}");
    // dig verifies the TSIG of every answer message: a bad signature fails the transfer.
    let signed = dig_axfr(node.addr(), KEYED_ZONE, Some(&key));
    assert_eq!(soa_lines(&signed), 2, "dig -y AXFR:\n{signed}");
    assert!(!signed.contains("failed"), "dig -y AXFR:\n{signed}");
    let bind_copy = dig_axfr(bind.addr(), KEYED_ZONE, None);
    assert_eq!(
        sorted_record_lines(&signed)
            .into_iter()
            .filter(|line| !line.contains(" TSIG "))
            .collect::<Vec<_>>(),
        sorted_record_lines(&bind_copy),
        "the signed AXFR (left) differs from BIND's"
    );

    let served = node.metric_sum(
        "zonecast_transfers_out_total",
        &[("kind", "axfr"), ("outcome", "success")],
    );
    assert!(served >= 3.0, "{}", node.metrics());
}

#[test]
fn ixfr_out_comes_from_the_journal() {
    let node_port = free_port();
    let bind = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 1, 3600, 600, 86_400)).notify_port(node_port),
    ]);
    let mut config = ZonecastConfig::new()
        .dns_port(node_port)
        .allow_transfer(AclEntry::open("127.0.0.1"))
        .primary_zone(ZONE, bind.addr(), None);
    // Three versions after the first, but room for two differences: 1 -> 2 is dropped.
    config.journal_diffs_max = Some(2);
    let node = Zonecast::start(&config);
    node.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let updates: [&[&str]; 3] = [
        &["update add first.example.test. 300 A 192.0.2.101"],
        &[
            "update delete www.example.test. A",
            "update add second.example.test. 300 TXT \"second change\"",
        ],
        &["update add third.example.test. 300 TXT \"third change\""],
    ];
    for (serial, update) in (2..).zip(updates) {
        bind.nsupdate(ZONE, update);
        node.wait_for_serial(ZONE, serial, PROPAGATION_MAX);
    }

    // From serial 2: two version steps, [old SOA, deletions, new SOA, additions] each, between
    // the current SOA at both ends: 2 * 2 + 2 SOAs.
    let incremental = dig_transfer(node.addr(), ZONE, "IXFR=2", &[]);
    assert_eq!(
        soa_lines(&incremental),
        6,
        "IXFR=2 is not incremental:\n{incremental}"
    );
    for change in ["\"second change\"", "192.0.2.80", "\"third change\""] {
        assert!(
            incremental.contains(change),
            "IXFR=2 lacks {change}:\n{incremental}"
        );
    }
    assert!(!incremental.contains("192.0.2.101"), "{incremental}");
    let records = record_lines(&incremental);
    assert!(
        records[1].contains(" SOA ") && records[1].split(' ').nth(6) == Some("2"),
        "the first step does not start at serial 2:\n{incremental}"
    );
    // The first step's old SOA is the node's own SOA of serial 2 (from the journal), not the
    // placeholder SOA dig puts in its request (`. . 2 0 0 0 0`, TTL 0).
    assert_eq!(
        records[1],
        "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2 3600 600 86400 60",
        "the first step does not open with the node's own SOA of serial 2\n{incremental}"
    );

    // From serial 3: one step.
    let one_step = dig_transfer(node.addr(), ZONE, "IXFR=3", &[]);
    assert_eq!(soa_lines(&one_step), 4, "IXFR=3:\n{one_step}");
    assert!(!one_step.contains("second change"), "IXFR=3:\n{one_step}");

    // Older than the journal (serial 1, whose difference was dropped; and 0): the whole zone,
    // AXFR-style (SOA, then a non-SOA record).
    let axfr = dig_transfer(node.addr(), ZONE, "AXFR", &[]);
    for request in ["IXFR=1", "IXFR=0"] {
        let axfr_style = dig_transfer(node.addr(), ZONE, request, &[]);
        let records = record_lines(&axfr_style);
        assert_eq!(soa_lines(&axfr_style), 2, "{request}:\n{axfr_style}");
        assert!(
            records.len() > 2 && !records[1].contains(" SOA "),
            "{request} is not AXFR-style:\n{axfr_style}"
        );
        assert_eq!(
            sorted_record_lines(&axfr_style),
            sorted_record_lines(&axfr),
            "{request} (left) differs from the AXFR"
        );
    }

    // Up to date: the current SOA alone.
    let up_to_date = dig_transfer(node.addr(), ZONE, "IXFR=4", &[]);
    assert_eq!(
        record_lines(&up_to_date).len(),
        1,
        "IXFR=4 at serial 4:\n{up_to_date}"
    );
    assert_eq!(soa_lines(&up_to_date), 1, "{up_to_date}");

    // Over UDP an allowed IXFR gets the SOA alone (come back over TCP).
    let mut request = build_query(ZONE, RecordType::IXFR, &QueryOptions::default());
    request.add_authority(cluster_tests::client::soa_record(ZONE, 1));
    let udp =
        cluster_tests::client::exchange_udp(node.addr(), &request, None, Duration::from_secs(2))
            .expect("an answer to IXFR over UDP");
    assert_rcode(&udp, ResponseCode::NoError, "IXFR over UDP");
    assert_soa_serial(&udp, 4, "IXFR over UDP");
    assert_eq!(udp.answers.len(), 1, "{}", message_text(&udp));

    // A plain query still works, and the metrics saw both kinds.
    let answer = query_udp(
        node.addr(),
        "first.example.test",
        RecordType::A,
        &QueryOptions::default(),
    )
    .expect("an answer");
    assert_eq!(answer.answers.len(), 1, "{}", message_text(&answer));
    let metrics = node.metrics();
    for kind in ["ixfr", "axfr", "ixfr_uptodate"] {
        assert!(
            cluster_tests::zonecast::metric_sum(
                &metrics,
                "zonecast_transfers_out_total",
                &[("kind", kind), ("outcome", "success")]
            ) >= 1.0,
            "no successful {kind} counted:\n{metrics}"
        );
    }
}

#[test]
fn a_downstream_node_follows_by_notify_and_ixfr_within_2s() {
    let a_port = free_port();
    let b_port = free_port();
    let bind = Bind::start(vec![BindZone::new(ZONE, rich_zone(1)).notify_port(a_port)]);
    let b_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, b_port));
    let a = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(a_port)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(ZoneConfig::primaries(ZONE, vec![Primary::tcp(bind.addr())]).also_notify(b_addr)),
    );
    a.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let b = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(b_port)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .primary_zone(ZONE, a.addr(), None),
    );
    b.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);

    // BIND's refresh is an hour: only NOTIFY BIND -> A -> B brings the change within 2 s.
    let start = Instant::now();
    bind.nsupdate(ZONE, &["update add chained.example.test. 300 A 192.0.2.77"]);
    let took = b.wait_for_serial_since(ZONE, 2, start, PROPAGATION_MAX);
    eprintln!("the update reached the downstream node {took:?} after nsupdate started");

    let status = b.zone_status(ZONE);
    assert_eq!(status["last_transfer"], "ixfr", "{status}");
    assert_eq!(status["source"], a.addr().to_string(), "{status}");
    let from_a = dig_transfer(a.addr(), ZONE, "AXFR", &[]);
    let from_b = dig_transfer(b.addr(), ZONE, "AXFR", &[]);
    assert!(from_b.contains("192.0.2.77"), "{from_b}");
    assert_eq!(
        sorted_record_lines(&from_b),
        sorted_record_lines(&from_a),
        "B's AXFR (left) differs from A's"
    );
    for (name, rtype) in [
        ("chained.example.test", "A"),
        ("alias.example.test", "A"),
        ("foo.wild.example.test", "TXT"),
        ("host.sub.example.test", "A"),
        ("nonexistent.example.test", "A"),
    ] {
        let arguments = ["+norec", "+noall", "+answer", "+authority", name, rtype];
        assert_eq!(
            sorted_record_lines(&dig_at(b.addr(), &arguments)),
            sorted_record_lines(&dig_at(a.addr(), &arguments)),
            "{name} {rtype}: B (left) differs from A"
        );
    }
    assert!(
        a.metric_sum(
            "zonecast_transfers_out_total",
            &[("kind", "ixfr"), ("outcome", "success")]
        ) >= 1.0,
        "{}",
        a.metrics()
    );
}

#[test]
fn bind_as_a_secondary_of_the_node_loads_and_follows_updates() {
    let a_port = free_port();
    let secondary_port = free_port();
    let primary = Bind::start(vec![BindZone::new(ZONE, rich_zone(1)).notify_port(a_port)]);
    let a = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(a_port)
            .allow_transfer(AclEntry::open("127.0.0.1"))
            .zone(
                ZoneConfig::primaries(ZONE, vec![Primary::tcp(primary.addr())])
                    .also_notify(SocketAddr::from((Ipv4Addr::LOCALHOST, secondary_port))),
            ),
    );
    a.wait_for_serial(ZONE, 1, LOAD_TIMEOUT);
    let secondary = Bind::start_with(
        vec![BindZone::secondary(ZONE, BindPrimary::plain(a.addr()))],
        BindOptions {
            port: Some(secondary_port),
            tls: None,
        },
    );
    secondary.wait_for_serial_within(ZONE, 1, LOAD_TIMEOUT);
    let copied = dig_transfer(secondary.addr(), ZONE, "AXFR", &[]);
    let original = dig_transfer(primary.addr(), ZONE, "AXFR", &[]);
    assert_eq!(
        sorted_record_lines(&copied),
        sorted_record_lines(&original),
        "BIND's copy from the node (left) differs from the primary's zone"
    );

    let start = Instant::now();
    primary.nsupdate(
        ZONE,
        &["update add downstream.example.test. 300 A 192.0.2.66"],
    );
    a.wait_for_serial(ZONE, 2, PROPAGATION_MAX);
    let reached =
        cluster_tests::util::poll(Duration::from_secs(10), Duration::from_millis(50), || {
            (cluster_tests::client::soa_serial(secondary.addr(), ZONE, Duration::from_secs(1)).ok()
                == Some(2))
            .then_some(())
        });
    assert!(
        reached.is_some(),
        "BIND did not get serial 2 from the node:\n{}",
        secondary.log_tail(40)
    );
    eprintln!(
        "BIND secondary at serial 2 {:?} after nsupdate",
        start.elapsed()
    );
    let answer = dig_at(
        secondary.addr(),
        &["+norec", "+short", "downstream.example.test", "A"],
    );
    assert_eq!(answer.trim(), "192.0.2.66");
    // BIND logs each transfer in without naming its kind: the update must have come as an
    // IXFR, a handful of records, not the whole zone again.
    let log = secondary.log_tail(400);
    let completed: Vec<(u64, &str)> = log
        .lines()
        .filter_map(|line| {
            let rest = line.split("Transfer completed: ").nth(1)?;
            let records = rest.split(", ").nth(1)?.strip_suffix(" records")?;
            Some((records.parse().ok()?, line))
        })
        .collect();
    let transfers = completed
        .iter()
        .map(|(_, line)| *line)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(completed.len(), 2, "BIND's transfers in:\n{transfers}");
    assert!(
        completed[1].1.contains("(serial 2)") && completed[1].0 < 10,
        "the update did not come incrementally:\n{transfers}"
    );
}

/// RFC 8945 on every request, not only transfers: the answer to a signed query is signed with the
/// same key (section 5.3); a bad MAC or an unknown key gets NOTAUTH with TSIG error BADSIG or
/// BADKEY in an unsigned TSIG record (sections 5.2.1, 5.2.2, 5.3.2). A BIND secondary that shares
/// a key with the node, the usual setup with a keyed ACL entry, signs its SOA queries and
/// transfers with it: it loads the zone and follows an update by NOTIFY and IXFR.
#[test]
fn a_keyed_bind_secondary_loads_and_follows_through_signed_queries() {
    let key = TsigKey::generate("down-key", "hmac-sha256");
    let (a_port, secondary_port) = (free_port(), free_port());
    let primary = Bind::start(vec![
        BindZone::new(ZONE, simple_zone(ZONE, 4, 3600, 600, 86_400)).notify_port(a_port),
    ]);
    let a = Zonecast::start(
        &ZonecastConfig::new()
            .dns_port(a_port)
            .tsig_key(&key)
            .allow_transfer(AclEntry::keyed("127.0.0.1", &key.name))
            .zone(
                ZoneConfig::primaries(ZONE, vec![Primary::tcp(primary.addr())])
                    .also_notify(SocketAddr::from((Ipv4Addr::LOCALHOST, secondary_port))),
            ),
    );
    a.wait_for_serial(ZONE, 4, LOAD_TIMEOUT);

    let signed_query = |key: &TsigKey| {
        let mut query = build_query(ZONE, RecordType::SOA, &QueryOptions::default());
        tsig::sign(&mut query, key, None);
        cluster_tests::client::exchange_udp(a.addr(), &query, None, Duration::from_secs(2))
            .expect("an answer to a signed SOA query")
    };
    let answer = signed_query(&key);
    assert_soa_serial(&answer, 4, "a signed SOA query");
    let signature = tsig::message_tsig(&answer);
    assert!(
        signature
            .as_ref()
            .is_some_and(|tsig| !tsig.mac.is_empty() && tsig.error.is_none()),
        "the answer to a signed SOA query is not signed:\n{}",
        message_text(&answer)
    );
    for (what, wrong_key, error) in [
        ("a bad MAC", key.with_other_secret(), TsigError::BadSig),
        (
            "an unknown key",
            TsigKey::generate("unknown-key", "hmac-sha256"),
            TsigError::BadKey,
        ),
    ] {
        let answer = signed_query(&wrong_key);
        assert_rcode(
            &answer,
            ResponseCode::NotAuth,
            &format!("a SOA query with {what}"),
        );
        assert_eq!(
            tsig::message_tsig(&answer).and_then(|tsig| tsig.error),
            Some(error),
            "a SOA query with {what}:\n{}",
            message_text(&answer)
        );
        let mut request = build_query(ZONE, RecordType::AXFR, &QueryOptions::no_edns());
        tsig::sign(&mut request, &wrong_key, None);
        let refusal = exchange_tcp(a.addr(), &request, Duration::from_secs(3)).expect("an answer");
        assert_rcode(
            &refusal,
            ResponseCode::NotAuth,
            &format!("an AXFR with {what}"),
        );
        assert_eq!(
            tsig::message_tsig(&refusal).and_then(|tsig| tsig.error),
            Some(error),
            "an AXFR with {what}:\n{}",
            message_text(&refusal)
        );
    }

    let secondary = Bind::start_with(
        vec![BindZone::secondary(
            ZONE,
            BindPrimary {
                key: Some(key.clone()),
                ..BindPrimary::plain(a.addr())
            },
        )],
        BindOptions {
            port: Some(secondary_port),
            tls: None,
        },
    );
    secondary.wait_for_serial_within(ZONE, 4, LOAD_TIMEOUT);
    primary.nsupdate(ZONE, &["update add keyed.example.test. 300 A 192.0.2.44"]);
    a.wait_for_serial(ZONE, 5, PROPAGATION_MAX);
    secondary.wait_for_serial_within(ZONE, 5, Duration::from_secs(10));
    let log = secondary.log_tail(400);
    assert!(
        !log.contains("expected a TSIG"),
        "BIND saw unsigned answers:\n{log}"
    );
}

/// True when an IXFR over TCP from serial 1 is answered incrementally: the second record of the
/// answer is the SOA of serial 1 (an AXFR-style answer has the zone's other records there).
fn ixfr_from_1_is_incremental(server: SocketAddr, zone: &str) -> bool {
    let messages = cluster_tests::client::transfer_tcp(server, zone, Some(1), LOAD_TIMEOUT)
        .unwrap_or_else(|error| panic!("IXFR of {zone} from serial 1: {error:#}"));
    messages.first().is_some_and(|first| {
        first.answers.get(1).is_some_and(
            |record| matches!(&record.data, hickory_proto::rr::RData::SOA(soa) if soa.serial == 1),
        )
    })
}

#[test]
fn a_reloaded_file_zone_journals_its_difference_only_below_10000_names() {
    // Two file zones, one name per record, each changed by one added name.
    const FEW: u32 = 2_000;
    const MANY: u32 = 12_000;
    let dir = cluster_tests::temp_dir("journal-names");
    let file = |zone: &str, serial: u32, names: u32| {
        let mut text = simple_zone(zone, serial, 3600, 600, 86_400);
        for index in 0..names {
            text.push_str(&format!(
                "h{index} A 198.18.{}.{}\n",
                index / 256,
                index % 256
            ));
        }
        let path = dir.path().join(format!("{zone}.zone"));
        cluster_tests::util::write_file(&path, text);
        path
    };
    let zones = [("few.test", FEW), ("many.test", MANY)];
    let mut config = ZonecastConfig::new().allow_transfer(AclEntry::open("127.0.0.1"));
    for (zone, names) in zones {
        config = config.file_zone(zone, &file(zone, 1, names));
    }
    let node = Zonecast::start(&config);
    for (zone, names) in zones {
        node.wait_for_serial(zone, 1, LOAD_TIMEOUT);
        file(zone, 2, names + 1);
    }
    for (zone, _) in zones {
        node.wait_for_serial(zone, 2, LOAD_TIMEOUT);
    }
    // The difference is journaled just after the new version is served: poll.
    let few = cluster_tests::util::poll(LOAD_TIMEOUT, Duration::from_millis(200), || {
        ixfr_from_1_is_incremental(node.addr(), "few.test").then_some(())
    });
    assert!(
        few.is_some(),
        "few.test: IXFR from serial 1 never incremental"
    );
    // FIXME: a file zone of more than 10,000 names journals nothing: after a reload every node
    // of the new version is a new allocation, `NodeMap::diff` counts each one as a change
    // before comparing contents, and with more changes than the journal limit (a quarter of
    // the zone, at least 10,000) the difference is dropped as "too large to journal". IXFR
    // clients then get the whole zone, AXFR-style. (The same holds for a zone received by
    // AXFR.) Assert `true` here once the difference counts only nodes that really changed.
    let many =
        cluster_tests::util::poll(Duration::from_secs(3), Duration::from_millis(300), || {
            ixfr_from_1_is_incremental(node.addr(), "many.test").then_some(())
        });
    assert!(
        many.is_none(),
        "many.test: IXFR from serial 1 is incremental now: the FIXME above is fixed"
    );
}
