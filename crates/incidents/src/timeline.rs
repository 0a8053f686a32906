//! Incidents of an alert log as readable timelines (`tapsentry incidents`).
//!
//! Reading is two passes over the log, so memory follows what is shown,
//! not the log's size: [`latest_incidents`] keeps the latest record of each
//! incident id, [`member_alerts`] then keeps only the alerts those list.
//! Lines are read with a length bound ([`MAX_LINE`]); a line that is too
//! long, not JSON, or not a record of the expected shape is skipped and
//! counted, never fatal: the log may be damaged or still being written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::net::IpAddr;

use serde::Deserialize;
use tapsentry_types::Timestamp;

use crate::{tactic_name, IncidentRecord};

/// The longest line read (1 MiB): longer lines are skipped.
pub const MAX_LINE: usize = 1 << 20;

/// Reads one line of at most [`MAX_LINE`] bytes into `buf` (without the
/// newline). `Ok(None)` at the end; `Ok(Some(false))` for a line that was
/// too long (its rest is consumed and dropped).
fn next_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let limit = MAX_LINE as u64 + 1;
    let n = io::Read::take(&mut *r, limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Some(true));
    }
    if buf.len() <= MAX_LINE {
        // The last line, without a newline.
        return Ok(Some(true));
    }
    // Too long: drop the rest of it, a block at a time.
    loop {
        let (done, used) = {
            let avail = r.fill_buf()?;
            if avail.is_empty() {
                (true, 0)
            } else {
                match avail.iter().position(|&b| b == b'\n') {
                    Some(i) => (true, i + 1),
                    None => (false, avail.len()),
                }
            }
        };
        r.consume(used);
        if done {
            return Ok(Some(false));
        }
    }
}

/// What a pass skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Lines longer than [`MAX_LINE`].
    pub too_long: u64,
    /// Lines that are not JSON objects of a known shape.
    pub unreadable: u64,
}

#[derive(Deserialize)]
struct EventType<'a> {
    #[serde(borrow)]
    event_type: Option<&'a str>,
}

/// The latest record of every incident in the log, without those merged
/// into another, oldest first (by first alert, then id).
pub fn latest_incidents<R: BufRead>(mut r: R) -> io::Result<(Vec<IncidentRecord>, Skipped)> {
    let mut latest: HashMap<u64, IncidentRecord> = HashMap::new();
    let mut skipped = Skipped::default();
    let mut buf = Vec::new();
    while let Some(ok) = next_line(&mut r, &mut buf)? {
        if !ok {
            skipped.too_long += 1;
            continue;
        }
        match serde_json::from_slice::<EventType>(&buf) {
            Ok(EventType {
                event_type: Some("incident"),
            }) => {}
            Ok(_) => continue,
            Err(_) => {
                skipped.unreadable += u64::from(!buf.iter().all(u8::is_ascii_whitespace));
                continue;
            }
        }
        match serde_json::from_slice::<IncidentRecord>(&buf) {
            Ok(rec) => {
                latest.insert(rec.incident.id, rec);
            }
            Err(_) => skipped.unreadable += 1,
        }
    }
    let mut v: Vec<IncidentRecord> = latest
        .into_values()
        .filter(|r| r.incident.merged_into.is_none())
        .collect();
    v.sort_by_key(|r| (r.incident.first, r.incident.id));
    Ok((v, skipped))
}

/// What the timeline shows of one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSummary {
    /// Its time.
    pub timestamp: Timestamp,
    /// `alert.signature`.
    pub signature: String,
    /// `alert.mitre.tactic`.
    pub tactic: String,
    /// `alert.severity`.
    pub severity: u8,
    /// `src_ip`.
    pub src_ip: IpAddr,
    /// `dest_ip`.
    pub dest_ip: Option<IpAddr>,
    /// `alert.description`.
    pub description: String,
}

#[derive(Deserialize)]
struct AlertLine {
    timestamp: Timestamp,
    event_type: String,
    src_ip: IpAddr,
    dest_ip: Option<IpAddr>,
    alert: AlertLineBody,
}

#[derive(Deserialize)]
struct AlertLineBody {
    alert_id: u64,
    signature: String,
    severity: u8,
    description: String,
    mitre: MitreLine,
}

#[derive(Deserialize)]
struct MitreLine {
    tactic: String,
}

/// The alerts of the log whose `alert.alert_id` is in `ids` (the first
/// line of each).
pub fn member_alerts<R: BufRead>(
    mut r: R,
    ids: &HashSet<u64>,
) -> io::Result<(HashMap<u64, AlertSummary>, Skipped)> {
    let mut found = HashMap::new();
    let mut skipped = Skipped::default();
    let mut buf = Vec::new();
    while let Some(ok) = next_line(&mut r, &mut buf)? {
        if !ok {
            skipped.too_long += 1;
            continue;
        }
        match serde_json::from_slice::<EventType>(&buf) {
            Ok(EventType {
                event_type: Some("alert"),
            }) => {}
            Ok(_) => continue,
            Err(_) => {
                skipped.unreadable += u64::from(!buf.iter().all(u8::is_ascii_whitespace));
                continue;
            }
        }
        let Ok(a) = serde_json::from_slice::<AlertLine>(&buf) else {
            skipped.unreadable += 1;
            continue;
        };
        if a.event_type == "alert" && ids.contains(&a.alert.alert_id) {
            found.entry(a.alert.alert_id).or_insert(AlertSummary {
                timestamp: a.timestamp,
                signature: a.alert.signature,
                tactic: a.alert.mitre.tactic,
                severity: a.alert.severity,
                src_ip: a.src_ip,
                dest_ip: a.dest_ip,
                description: a.alert.description,
            });
        }
    }
    Ok((found, skipped))
}

/// ANSI styles, or nothing when not on a terminal.
struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

fn clock(t: Timestamp) -> String {
    // RFC 3339 with microseconds: keep the date and the seconds.
    let s = t.to_rfc3339();
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(h)) => format!("{d} {h}"),
        _ => s,
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn ips(list: &[IpAddr]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage(id: &str) -> String {
    match tactic_name(id) {
        Some(n) => format!("{n} ({id})"),
        None => id.to_string(),
    }
}

/// The incidents as timelines: a header per incident (id, score, stages,
/// time span, hosts) and one line per member alert in time order (those
/// not found in the log are named by id). `colour` adds ANSI colours.
pub fn render(
    incidents: &[IncidentRecord],
    alerts: &HashMap<u64, AlertSummary>,
    colour: bool,
) -> String {
    let st = Style { on: colour };
    let mut out = String::new();
    for (n, rec) in incidents.iter().enumerate() {
        let inc = &rec.incident;
        if n > 0 {
            out.push('\n');
        }
        let span = inc.last.micros_since(inc.first) / 1_000_000;
        let _ = writeln!(
            out,
            "{} {}  score {}, {} stages, {} alerts, {} to {} ({})",
            st.paint("1;31", "incident"),
            st.paint("1", &inc.id.to_string()),
            inc.score,
            inc.stages.len(),
            inc.alerts,
            clock(inc.first),
            clock(inc.last),
            duration(span),
        );
        let _ = writeln!(out, "  hosts    {}", st.paint("1", &ips(&inc.hosts)));
        let _ = writeln!(out, "  outside  {}", ips(&inc.outside));
        if !inc.targets.is_empty() {
            let _ = writeln!(out, "  targets  {}", ips(&inc.targets));
        }
        let stages: Vec<String> = inc.stages.iter().map(|s| stage(s)).collect();
        let _ = writeln!(out, "  stages   {}", stages.join(" -> "));
        // Listed alerts in time order (the record's order), tactic names
        // aligned.
        let mut by_time: BTreeMap<(Timestamp, usize), String> = BTreeMap::new();
        for (i, id) in inc.alert_ids.iter().enumerate() {
            let line = match alerts.get(id) {
                Some(a) => {
                    let who = match a.dest_ip {
                        Some(d) => format!("{} -> {}", a.src_ip, d),
                        None => a.src_ip.to_string(),
                    };
                    let sev = match a.severity {
                        1 => st.paint("31", "high"),
                        2 => st.paint("33", "med "),
                        _ => st.paint("36", "low "),
                    };
                    format!(
                        "  {}  {} {:<20} {:<34} {}  {}",
                        clock(a.timestamp),
                        sev,
                        tactic_name(&a.tactic).unwrap_or(&a.tactic),
                        a.signature,
                        who,
                        a.description,
                    )
                }
                None => format!("  alert {id} (not in this log)"),
            };
            let t = alerts
                .get(id)
                .map_or(Timestamp::from_micros(i64::MAX), |a| a.timestamp);
            by_time.insert((t, i), line);
        }
        for line in by_time.into_values() {
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if inc.alerts_not_listed > 0 {
            let _ = writeln!(
                out,
                "  ... and {} more alerts not listed (incidents.max_alerts)",
                inc.alerts_not_listed
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_asked_and_missing_alerts_named_by_id() {
        let line = br#"{"timestamp":"2023-11-14T22:13:20.000000Z","event_type":"incident","host":"h","incident":{"id":5,"hosts":["10.0.0.1"],"outside":[],"targets":[],"stages":["TA0007","TA0010"],"score":5,"alert_ids":[1,2],"alerts":2,"first":"2023-11-14T22:13:20.000000Z","last":"2023-11-14T23:13:20.000000Z"}}"#;
        let (incs, _) = latest_incidents(&line[..]).unwrap();
        let alerts = HashMap::from([(
            1,
            AlertSummary {
                timestamp: Timestamp::from_micros(1_700_000_000_000_000),
                signature: "port_scan.vertical".into(),
                tactic: "TA0007".into(),
                severity: 1,
                src_ip: "10.0.0.1".parse().unwrap(),
                dest_ip: Some("10.0.0.2".parse().unwrap()),
                description: "a scan.".into(),
            },
        )]);
        let plain = render(&incs, &alerts, false);
        let coloured = render(&incs, &alerts, true);
        assert!(!plain.contains('\x1b'));
        assert!(coloured.contains("\x1b[1;31mincident\x1b[0m"), "{coloured}");
        assert!(
            plain.contains("stages   Discovery (TA0007) -> Exfiltration (TA0010)"),
            "{plain}"
        );
        assert!(
            plain.contains("2023-11-14 22:13:20  high Discovery"),
            "{plain}"
        );
        assert!(plain.contains("10.0.0.1 -> 10.0.0.2  a scan."), "{plain}");
        assert!(plain.contains("alert 2 (not in this log)"), "{plain}");
        assert!(plain.contains("(1 h 0 min)"), "{plain}");
    }

    #[test]
    fn overlong_and_broken_lines_are_skipped_not_fatal() {
        let mut log = Vec::new();
        log.extend_from_slice(b"{\"event_type\":\"alert\"}\n");
        log.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        log.extend_from_slice(b"\nnot json\n\n");
        log.extend_from_slice(
            br#"{"timestamp":"2023-11-14T22:13:20.000000Z","event_type":"incident","host":"h","incident":{"id":5,"hosts":[],"outside":[],"targets":[],"stages":["TA0001"],"score":3,"alert_ids":[1],"alerts":1,"first":"2023-11-14T22:13:20.000000Z","last":"2023-11-14T22:13:20.000000Z"}}"#,
        );
        let (incs, skipped) = latest_incidents(&log[..]).unwrap();
        assert_eq!(incs.len(), 1);
        assert_eq!(incs[0].incident.id, 5);
        assert_eq!(
            skipped,
            Skipped {
                too_long: 1,
                unreadable: 1
            }
        );
        // Truncations of a valid log never panic.
        for cut in 0..log.len().min(400) {
            let _ = latest_incidents(&log[..cut]);
            let _ = member_alerts(&log[..cut], &HashSet::from([1]));
        }
    }
}
