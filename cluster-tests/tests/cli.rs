//! The operator commands: `zonecast check-config` reports every problem with its field and
//! accepts a good file; `zonecast status` shows a running node's zones as a table and as JSON.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use cluster_tests::util::{COMMAND_TIMEOUT, run_unchecked, write_file};
use cluster_tests::zonecast::zonecast_binary;
use cluster_tests::zones::simple_zone;
use cluster_tests::{Bind, BindZone, Zonecast, ZonecastConfig, free_port, temp_dir};
use serde_json::Value;

const ZONE: &str = "example.test";

/// Runs `zonecast ARGUMENTS...`; returns (success, stdout followed by stderr).
fn zonecast(arguments: &[&str]) -> (bool, String) {
    run_unchecked(
        Command::new(zonecast_binary()).args(arguments),
        COMMAND_TIMEOUT,
    )
}

#[test]
fn check_config_lists_every_problem_with_its_field() {
    let dir = temp_dir("cli");
    let path = dir.path().join("bad.toml");
    let config = format!(
        r#"[node]
data_dir = "data"
[server]
listen = ["127.0.0.1:{dns}"]
[status]
listen = "127.0.0.1:{status}"
[[zone]]
name = "example.test"
primaries = [{{ address = "127.0.0.1:53", tsig_key = "missing-key" }}]
[[zone]]
name = "both.test"
primaries = [{{ address = "127.0.0.1:53" }}]
file = "both.test.zone"
[[zone]]
name = "neither.test"
"#,
        dns = free_port(),
        status = free_port()
    );
    write_file(&path, config);
    let (success, output) = zonecast(&["check-config", &path.display().to_string()]);
    assert!(!success, "a bad configuration was accepted:\n{output}");
    for field in ["zone[0].primaries[0].tsig_key", "zone[1]", "zone[2]"] {
        assert!(
            output.contains(field),
            "no problem reported for {field}:\n{output}"
        );
    }
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = temp_dir("cli");
    let zone_path = dir.path().join("file.test.zone");
    write_file(&zone_path, simple_zone("file.test", 1, 3600, 600, 86_400));
    let primary = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let config = ZonecastConfig::new()
        .primary_zone(ZONE, primary, None)
        .file_zone("file.test", &zone_path);
    let path = dir.path().join("good.toml");
    write_file(
        &path,
        config.to_toml(
            &dir.path().join("data"),
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())),
            SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())),
        ),
    );
    let (success, output) = zonecast(&["check-config", &path.display().to_string()]);
    assert!(success, "a good configuration was rejected:\n{output}");
}

#[test]
fn status_command_shows_the_zones() {
    let bind = Bind::start(vec![BindZone::new(
        ZONE,
        simple_zone(ZONE, 42, 3600, 600, 86_400),
    )]);
    let node = Zonecast::start(&ZonecastConfig::new().primary_zone(ZONE, bind.addr(), None));
    node.wait_for_serial(ZONE, 42, Duration::from_secs(15));
    let url = node.status_url();

    let (success, output) = zonecast(&["status", "--url", &url, "--json"]);
    assert!(success, "{output}");
    let status: Value = serde_json::from_str(&output).unwrap_or_else(|error| {
        panic!("`zonecast status --json` is not JSON ({error}):\n{output}")
    });
    let zone = cluster_tests::zonecast::find_zone(&status, ZONE)
        .unwrap_or_else(|| panic!("no {ZONE} in:\n{output}"));
    assert_eq!(zone["serial"], 42, "{output}");

    let (success, output) = zonecast(&["status", "--url", &url]);
    assert!(success, "{output}");
    let row = output
        .lines()
        .find(|line| line.contains("example.test"))
        .unwrap_or_else(|| panic!("no row for {ZONE}:\n{output}"));
    assert!(row.split_whitespace().any(|cell| cell == "42"), "{output}");
}
