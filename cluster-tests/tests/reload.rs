//! Configuration reloads (SIGHUP and `POST /reload`) on a running node, as a scenario read from
//! a table of steps.
//!
//! Zone A (a file) is in every configuration. Zone B is added from one file, moved to another
//! file with a newer serial, then to a BIND primary, and removed; A's transfer ACL is opened on
//! the way. After each good reload the report says what changed, every zone of the new
//! configuration is served with the serial of its source and `/status` names that source, A's
//! AXFR is allowed exactly when its ACL says so, and a removed zone is REFUSED and gone from
//! `/status` and from every per-zone series of `/metrics`. Three broken files (a TOML syntax
//! error, an unknown field, two invalid values) change nothing: the report says `ok: false` and
//! names every problem. A background client queries A throughout and must never miss an answer.
//! At the end a restart with B configured again, from a primary that does not answer, shows
//! that B's stored copy was deleted on removal: B is not served from the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cluster_tests::check::assert_rcode;
use cluster_tests::client::{soa_serial, transfer_tcp};
use cluster_tests::util::write_file;
use cluster_tests::zones::simple_zone;
use cluster_tests::{
    AclEntry, Bind, BindZone, Primary, ZoneConfig, ZoneSource, Zonecast, ZonecastConfig, free_port,
    temp_dir,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const ZONE_A: &str = "a.test";
const ZONE_B: &str = "b.test";
/// The serial BIND serves for B.
const BIND_SERIAL: u32 = 30;
/// Zone files: file name, zone, serial.
const FILES: &[(&str, &str, u32)] = &[
    ("a.zone", ZONE_A, 1),
    ("b-first.zone", ZONE_B, 10),
    ("b-second.zone", ZONE_B, 20),
];
/// How long a reload may take to be reported, and a zone to be served after it.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one query of the background client may wait: generous, since a debug build on two
/// cores is also reloading; a miss means the zone was not answered, not that it was slow.
const WATCH_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a zone's data comes from in one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// One of `FILES`, by file name.
    File(&'static str),
    /// The BIND primary.
    Bind,
}

/// One zone of a configuration.
#[derive(Clone, Copy, Debug)]
struct ZoneSpec {
    name: &'static str,
    source: Source,
    /// True: `allow_transfer` opens AXFR to 127.0.0.0/8; false: nobody may transfer.
    open_transfers: bool,
}

const fn zone(name: &'static str, source: Source) -> ZoneSpec {
    ZoneSpec {
        name,
        source,
        open_transfers: false,
    }
}

const fn open_zone(name: &'static str, source: Source) -> ZoneSpec {
    ZoneSpec {
        name,
        source,
        open_transfers: true,
    }
}

/// What the configuration file holds for one step.
#[derive(Clone, Copy, Debug)]
enum ConfigFile {
    /// A valid configuration with these zones.
    Zones(&'static [ZoneSpec]),
    /// The configuration in effect, with this text appended: a broken file.
    BrokenByAppending(&'static str),
}

/// How the node is told to reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Sighup,
    Http,
}

/// One reload of the scenario.
struct Step {
    what: &'static str,
    file: ConfigFile,
    trigger: Trigger,
    /// Words the reload report's message must contain.
    message_words: &'static [&'static str],
}

const A: ZoneSpec = zone(ZONE_A, Source::File("a.zone"));
const A_OPEN: ZoneSpec = open_zone(ZONE_A, Source::File("a.zone"));

/// The scenario. A step with a valid file must be taken (`reload.ok`); a broken one must
/// change nothing (`reload.ok == false`), so the zones of the previous step stay as they were.
const STEPS: &[Step] = &[
    Step {
        what: "B is added from a file",
        file: ConfigFile::Zones(&[A, zone(ZONE_B, Source::File("b-first.zone"))]),
        trigger: Trigger::Sighup,
        message_words: &["1 zone(s) added [b.test.]", "0 removed []", "0 changed []"],
    },
    Step {
        what: "B moves to another file and A's transfer ACL opens",
        file: ConfigFile::Zones(&[A_OPEN, zone(ZONE_B, Source::File("b-second.zone"))]),
        trigger: Trigger::Sighup,
        message_words: &[
            "0 zone(s) added []",
            "0 removed []",
            "2 changed",
            "a.test.",
            "b.test.",
        ],
    },
    Step {
        what: "B moves to a BIND primary (POST /reload)",
        file: ConfigFile::Zones(&[A_OPEN, zone(ZONE_B, Source::Bind)]),
        trigger: Trigger::Http,
        message_words: &["0 zone(s) added []", "0 removed []", "1 changed [b.test.]"],
    },
    Step {
        what: "a TOML syntax error",
        file: ConfigFile::BrokenByAppending("\n[[zone]\nname = \"c.test\"\n"),
        trigger: Trigger::Sighup,
        message_words: &["TOML parse error", "invalid table header"],
    },
    Step {
        what: "an unknown field (POST /reload)",
        file: ConfigFile::BrokenByAppending(
            "\n[[zone]]\nname = \"c.test\"\nfile = \"c.zone\"\ncolour = \"blue\"\n",
        ),
        trigger: Trigger::Http,
        message_words: &["unknown field", "colour"],
    },
    Step {
        what: "two invalid values, both named",
        file: ConfigFile::BrokenByAppending(
            "\n[[zone]]\nname = \"bad..name\"\nfile = \"c.zone\"\n\n\
             [[zone]]\nname = \"d.test\"\nprimaries = [{ address = \"not-an-address\" }]\n",
        ),
        trigger: Trigger::Sighup,
        message_words: &["bad..name", "not-an-address"],
    },
    Step {
        what: "B is removed",
        file: ConfigFile::Zones(&[A_OPEN]),
        trigger: Trigger::Sighup,
        message_words: &["0 zone(s) added []", "1 removed [b.test.]", "0 changed []"],
    },
];

/// The zone files and the BIND primary the configurations refer to.
struct Sources {
    dir: tempfile::TempDir,
    bind: Bind,
}

impl Sources {
    fn start() -> Sources {
        let dir = temp_dir("reload-zones");
        for (file, zone, serial) in FILES {
            write_file(
                &dir.path().join(file),
                simple_zone(zone, *serial, 3600, 600, 86_400),
            );
        }
        let bind = Bind::start(vec![BindZone::new(
            ZONE_B,
            simple_zone(ZONE_B, BIND_SERIAL, 3600, 600, 86_400),
        )]);
        Sources { dir, bind }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The serial a zone from `source` must be served with.
    fn serial(source: Source) -> u32 {
        match source {
            Source::Bind => BIND_SERIAL,
            Source::File(file) => FILES
                .iter()
                .find(|(name, _, _)| *name == file)
                .map(|(_, _, serial)| *serial)
                .unwrap_or_else(|| panic!("{file} is not in FILES")),
        }
    }

    /// What `/status` must show as the zone's `source`.
    fn status_source(&self, source: Source) -> String {
        match source {
            Source::Bind => self.bind.addr().to_string(),
            Source::File(file) => format!("file:{}", self.path(file).display()),
        }
    }

    fn config(&self, zones: &[ZoneSpec]) -> ZonecastConfig {
        zones.iter().fold(ZonecastConfig::new(), |config, spec| {
            let source = match spec.source {
                Source::File(file) => ZoneSource::File(self.path(file)),
                Source::Bind => ZoneSource::Primaries(vec![Primary::tcp(self.bind.addr())]),
            };
            let acl = if spec.open_transfers {
                vec![AclEntry::open("127.0.0.0/8")]
            } else {
                Vec::new()
            };
            config.zone(ZoneConfig::new(spec.name, source).allow_transfer(acl))
        })
    }
}

/// A client that asks for A's SOA every few milliseconds until stopped, and collects every
/// query that did not get serial 1.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Vec<String>)>,
}

impl Watcher {
    fn start(server: SocketAddr) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut queries = 0usize;
            let mut misses = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                queries += 1;
                match soa_serial(server, ZONE_A, WATCH_QUERY_TIMEOUT) {
                    Ok(1) => {}
                    Ok(other) => misses.push(format!("serial {other}")),
                    Err(error) => misses.push(format!("{error:#}")),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (queries, misses)
        });
        Watcher { stop, thread }
    }

    /// Stops the client; returns how many queries it made and the misses.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the watcher thread panicked")
    }
}

/// True when some series in `metrics` carries the label `zone="<zone>."`.
fn has_zone_series(metrics: &str, zone: &str) -> bool {
    let label = format!("zone=\"{zone}.\"");
    metrics
        .lines()
        .any(|line| !line.starts_with('#') && line.contains(&label))
}

/// Reloads as `step` says; returns the report from `/status`. For `POST /reload`, also checks
/// the HTTP answer: 200 with the report's message, or 422 with it when the file is broken.
fn reload(node: &Zonecast, step: &Step) -> Value {
    match step.trigger {
        Trigger::Sighup => node.reload_by_sighup(RELOAD_TIMEOUT),
        Trigger::Http => {
            let (code, body) = node.reload_by_http();
            let report = node
                .reload_report()
                .unwrap_or_else(|| panic!("{}: no reload report after POST /reload", step.what));
            let expected = if matches!(step.file, ConfigFile::Zones(_)) {
                200
            } else {
                422
            };
            assert_eq!(
                code, expected,
                "{}: POST /reload answered {body}",
                step.what
            );
            assert_eq!(
                body.trim_end(),
                report["message"].as_str().unwrap_or_default().trim_end(),
                "{}: the HTTP answer differs from the report",
                step.what
            );
            report
        }
    }
}

/// Checks that every zone of `zones` is served as its spec says, and that every zone of
/// `gone` is REFUSED and absent from `/status` and `/metrics`.
fn check_zones(node: &Zonecast, sources: &Sources, zones: &[ZoneSpec], gone: &[&str], what: &str) {
    for spec in zones {
        let serial = Sources::serial(spec.source);
        node.wait_for_serial(spec.name, serial, RELOAD_TIMEOUT);
        let source = sources.status_source(spec.source);
        let status = node.wait_for_zone_status(
            spec.name,
            &format!("source {source}"),
            RELOAD_TIMEOUT,
            |entry| entry["source"] == source.as_str() && entry["serial"] == serial,
        );
        assert!(status["last_error"].is_null(), "{what}: {status}");
        let axfr = transfer_tcp(node.addr(), spec.name, None, Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("{what}: AXFR of {}: {error:#}", spec.name));
        let rcode = axfr[0].metadata.response_code;
        if spec.open_transfers {
            assert_eq!(
                rcode,
                ResponseCode::NoError,
                "{what}: AXFR of {}",
                spec.name
            );
            assert!(axfr[0].answers.len() > 1, "{what}: AXFR of {}", spec.name);
        } else {
            assert_eq!(
                rcode,
                ResponseCode::Refused,
                "{what}: AXFR of {}",
                spec.name
            );
        }
    }
    let status = node.status_json();
    let metrics = node.metrics();
    for spec in zones {
        assert!(
            has_zone_series(&metrics, spec.name),
            "{what}: no series for {} in /metrics:\n{metrics}",
            spec.name
        );
    }
    for zone in gone {
        let answer = node.query(zone, RecordType::SOA);
        assert_rcode(&answer, ResponseCode::Refused, &format!("{what}: {zone}"));
        assert!(
            cluster_tests::zonecast::find_zone(&status, zone).is_none(),
            "{what}: {zone} is still in /status: {status}"
        );
        assert!(
            !has_zone_series(&metrics, zone),
            "{what}: {zone} still has series in /metrics:\n{metrics}"
        );
    }
    let (code, health) = node.healthz();
    assert_eq!(code, 200, "{what}: /healthz {health}");
    assert_eq!(health["status"], "ok", "{what}: /healthz {health}");
}

#[test]
fn zones_are_added_changed_and_removed_and_broken_files_change_nothing() {
    let sources = Sources::start();
    let first: &[ZoneSpec] = &[A];
    let mut node = Zonecast::start(&sources.config(first));
    check_zones(&node, &sources, first, &[ZONE_B], "at start");
    assert!(node.reload_report().is_none(), "{}", node.status_json());

    let watcher = Watcher::start(node.addr());
    let mut in_effect = first;
    let mut gone: Vec<&str> = Vec::new();
    for step in STEPS {
        let text = match step.file {
            ConfigFile::Zones(zones) => node.config_text(&sources.config(zones)),
            ConfigFile::BrokenByAppending(broken) => {
                node.config_text(&sources.config(in_effect)) + broken
            }
        };
        node.write_config_text(&text);
        let report = reload(&node, step);
        eprintln!("{}: {report}", step.what);
        let message = report["message"].as_str().unwrap_or_default();
        let valid = matches!(step.file, ConfigFile::Zones(_));
        assert_eq!(report["ok"], valid, "{}: {report}", step.what);
        for word in step.message_words {
            assert!(
                message.contains(word),
                "{}: the report does not say {word:?}: {report}",
                step.what
            );
        }
        if let ConfigFile::Zones(zones) = step.file {
            for old in in_effect {
                if !zones.iter().any(|spec| spec.name == old.name) {
                    gone.push(old.name);
                }
            }
            gone.retain(|name| !zones.iter().any(|spec| spec.name == *name));
            in_effect = zones;
        }
        check_zones(&node, &sources, in_effect, &gone, step.what);
    }
    let (queries, misses) = watcher.finish();
    eprintln!("A was asked {queries} times during the reloads");
    assert!(
        misses.is_empty(),
        "A was not answered with serial 1 {} time(s) of {queries}: {misses:?}",
        misses.len()
    );
    assert!(
        queries > 10,
        "the background client made only {queries} queries"
    );

    // B's stored copy (from BIND) went with its removal: configured again, from a primary that
    // does not answer, it is not served from the store after a restart.
    let silent = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = sources
        .config(&[A_OPEN])
        .zone(ZoneConfig::primaries(ZONE_B, vec![Primary::tcp(silent)]));
    node.reconfigure(&config);
    node.restart();
    node.wait_for_serial(ZONE_A, 1, RELOAD_TIMEOUT);
    let answer = node.query(ZONE_B, RecordType::SOA);
    assert_rcode(
        &answer,
        ResponseCode::ServFail,
        "B after its removal, a restart and its return from a silent primary",
    );
    let status = node.zone_status(ZONE_B);
    assert!(status["serial"].is_null(), "{status}");
    let (code, health) = node.healthz();
    assert_eq!(code, 503, "/healthz with B not loaded: {health}");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["loading"], 1, "{health}");
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains("b.test"), "{health}");
}
