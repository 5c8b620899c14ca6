//! Text rendering for the `zonecast status` command: the status report as a table.
//!
//! Pure formatting; fetching the report is `main`'s job.

use crate::status::StatusReport;

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
            zone.last_error.clone().unwrap_or_else(|| "-".into()),
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
    use crate::status::ZoneReport;

    #[test]
    fn renders_a_row_per_zone() {
        let report = StatusReport {
            now: 1000,
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
}
