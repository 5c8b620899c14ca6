//! Text rendering for the command line: the status report as a table, and the summary that
//! `zonecast check-config` prints of a valid configuration.
//!
//! Pure formatting; fetching the report and reading the config are `main`'s job.

use std::fmt::Write as _;

use crate::config::{Config, SourceProtocol, TlsTrust, TransferAcl, ZoneSource};
use crate::ops::status::StatusReport;

/// What a valid configuration will do, one line per listener and zone.
pub fn config_summary(config: &Config) -> String {
    let mut out = String::new();
    let list = |addresses: &[std::net::SocketAddr]| {
        addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  data_dir: {}", config.node.data_dir.display());
    let _ = writeln!(out, "  listen (UDP, TCP): {}", list(&config.server.listen));
    if !config.server.xot_listen.is_empty() {
        let clients = if config.server.xot_require_client_cert {
            ", cluster client certificates required"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  XFR-over-TLS: {}{clients}",
            list(&config.server.xot_listen)
        );
    }
    if !config.server.xoq_listen.is_empty() {
        let _ = writeln!(
            out,
            "  XFR-over-QUIC (mutual TLS): {}",
            list(&config.server.xoq_listen)
        );
    }
    let _ = writeln!(out, "  status: http://{}", config.status.listen);
    if let Some(tls) = &config.tls {
        let ca = tls
            .ca
            .as_ref()
            .map(|ca| format!(", cluster CA {}", ca.display()))
            .unwrap_or_default();
        let _ = writeln!(out, "  certificate: {}{ca}", tls.certificate.display());
    }
    for zone in &config.zones {
        let source = match &zone.source {
            ZoneSource::File(file) => format!("file {}", file.display()),
            ZoneSource::Primaries(primaries) => {
                let sources: Vec<String> = primaries
                    .iter()
                    .map(|primary| {
                        let transport = match &primary.transport {
                            SourceProtocol::Tcp => "TCP".to_string(),
                            SourceProtocol::Tls { name, trust, .. } => {
                                let trust = match trust {
                                    TlsTrust::Ca(path) => format!("CA {}", path.display()),
                                    TlsTrust::Pin(_) => "SPKI pin".to_string(),
                                    TlsTrust::Opportunistic => "opportunistic".to_string(),
                                };
                                format!("TLS {name}, {trust}")
                            }
                            SourceProtocol::Quic { name } => format!("QUIC peer {name}"),
                        };
                        match &primary.tsig_key {
                            Some(key) => {
                                format!("{} ({transport}, TSIG {})", primary.address, key.name)
                            }
                            None => format!("{} ({transport})", primary.address),
                        }
                    })
                    .collect();
                format!("from {}", sources.join(", "))
            }
        };
        let _ = writeln!(out, "  zone {}: {source}", zone.name);
        let _ = writeln!(
            out,
            "    transfers to: {}",
            acl_summary(&zone.allow_transfer)
        );
        if !zone.also_notify.is_empty() {
            let _ = writeln!(out, "    also-notify: {}", list(&zone.also_notify));
        }
    }
    out
}

fn acl_summary(acl: &TransferAcl) -> String {
    if acl.entries.is_empty() {
        return "nobody (cluster members over QUIC or XoT client certificates only)".to_string();
    }
    acl.entries
        .iter()
        .map(|entry| match &entry.tsig_key {
            Some(key) => format!("{} with TSIG {}", entry.prefix, key.name),
            None => entry.prefix.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders the report as an aligned table, times relative to the report's `now`.
pub fn status_table(report: &StatusReport) -> String {
    let header = [
        "ZONE",
        "STATE",
        "SERIAL",
        "RECORDS",
        "SOURCE",
        "LAST SUCCESS",
        "NEXT REFRESH",
        "EXPIRES",
        "LAST ERROR",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_string)];
    for zone in &report.zones {
        rows.push([
            zone.name.clone(),
            zone.state.clone(),
            zone.serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            zone.records.to_string(),
            zone.source.clone().unwrap_or_else(|| "-".into()),
            relative(report.now, zone.last_success),
            relative(report.now, zone.next_refresh),
            relative(report.now, zone.expire_deadline),
            match (&zone.last_error_kind, &zone.last_error) {
                (Some(kind), Some(error)) => format!("[{kind}] {error}"),
                (None, Some(error)) => error.clone(),
                (_, None) => "-".into(),
            },
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(index, (cell, width))| {
                if index == 8 {
                    cell.clone()
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(reload) = &report.reload {
        let outcome = if reload.ok {
            "applied"
        } else {
            "FAILED, the previous configuration stays in force"
        };
        let _ = writeln!(
            out,
            "\nlast reload {}: {outcome}: {}",
            relative(report.now, Some(reload.at)),
            reload.message
        );
    }
    out
}

/// "12s ago", "in 5m", or "-".
fn relative(now: u64, time: Option<u64>) -> String {
    let Some(time) = time else {
        return "-".into();
    };
    let (seconds, past) = if time <= now {
        (now - time, true)
    } else {
        (time - now, false)
    };
    let text = humantime::format_duration(std::time::Duration::from_secs(seconds))
        .to_string()
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let text = if seconds == 0 { "0s".to_string() } else { text };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::status::{ReloadReport, ZoneReport};

    #[test]
    fn summarises_a_config() {
        let text = r#"
            [node]
            data_dir = "/var/lib/zonecast"
            [server]
            listen = ["127.0.0.1:53"]
            [transfer]
            allow = [{ prefix = "192.0.2.0/24" }]
            [[zone]]
            name = "example.test"
            primaries = [{ address = "192.0.2.1" }]
            also_notify = ["192.0.2.9"]
        "#;
        let config = Config::parse(text, std::path::Path::new("/")).expect("valid");
        let summary = config_summary(&config);
        assert!(
            summary.contains("zone example.test.: from 192.0.2.1:53 (TCP)"),
            "{summary}"
        );
        assert!(summary.contains("transfers to: 192.0.2.0/24"), "{summary}");
        assert!(summary.contains("also-notify: 192.0.2.9:53"), "{summary}");
    }

    #[test]
    fn renders_a_row_per_zone() {
        let report = StatusReport {
            now: 1000,
            reload: None,
            zones: vec![ZoneReport {
                name: "example.test.".into(),
                state: "fresh".into(),
                serial: Some(7),
                source: Some("127.0.0.1:53".into()),
                records: 12,
                last_attempt: Some(990),
                last_success: Some(990),
                next_refresh: Some(1300),
                expire_deadline: None,
                last_error: None,
                last_error_kind: None,
                last_transfer: "axfr".into(),
            }],
        };
        let table = status_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ZONE"));
        assert!(lines[1].contains("example.test."));
        assert!(lines[1].contains("10s ago"));
        assert!(lines[1].contains("in 5m"));
    }

    #[test]
    fn shows_the_error_kind_and_a_failed_reload() {
        let report = StatusReport {
            now: 1000,
            reload: Some(ReloadReport {
                at: 995,
                ok: false,
                message: "zone[1].name: not a domain name".into(),
            }),
            zones: vec![ZoneReport {
                name: "example.test.".into(),
                state: "retrying".into(),
                serial: Some(7),
                source: None,
                records: 12,
                last_attempt: Some(990),
                last_success: Some(900),
                next_refresh: Some(1300),
                expire_deadline: None,
                last_error: Some("192.0.2.1:53 (tcp): SOA query: timed out".into()),
                last_error_kind: Some("timeout".into()),
                last_transfer: "axfr".into(),
            }],
        };
        let table = status_table(&report);
        assert!(table.contains("[timeout] 192.0.2.1:53"), "{table}");
        assert!(
            table.contains("last reload 5s ago: FAILED") && table.contains("not a domain name"),
            "{table}"
        );
    }
}
