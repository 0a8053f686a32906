//! `tapsentry alerts`: the alert log as one readable line per record,
//! optionally followed across rotation like `tail -F`.
//!
//! Following polls (every [`POLL`]): at the end of the file it compares the
//! path's inode with the open file's (a rename by logrotate: finish the old
//! file, then open the new one from its start) and the file's length with
//! the read position (a `copytruncate`: start again from 0). Polling rather
//! than inotify (`notify`): it needs no watcher thread or extra crate, sees
//! renames, truncation and files on network mounts alike, and a quarter of
//! a second is well under what an operator at a terminal notices.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use time::OffsetDateTime;

use super::records::{LineSplitter, LogRecord};

/// How often `--follow` looks for new lines and rotation.
pub const POLL: Duration = Duration::from_millis(250);

/// Which records to show, and how.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this category (`alert.category`); `incident` or `inventory`
    /// selects those records.
    pub category: Option<String>,
    /// Only records with a severity at least this high (1 high .. 3 low):
    /// `2` shows severities 1 and 2. Records without one are not shown.
    pub severity: Option<u8>,
    /// Only records at or after this capture time.
    pub since: Option<OffsetDateTime>,
    /// Pass the matching lines through unchanged (for jq).
    pub json: bool,
}

/// What a view read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Records shown.
    pub shown: u64,
    /// Lines that were not a record (not JSON, wrong field types, too long).
    pub unreadable: u64,
}

/// The record types the view shows; others (stats, flows) are skipped.
const SHOWN: [&str; 4] = ["alert", "alert_update", "incident", "inventory"];

impl Filter {
    /// Whether `rec` is to be shown.
    pub fn matches(&self, rec: &LogRecord) -> bool {
        if !SHOWN.contains(&rec.event_type.as_str()) {
            return false;
        }
        if let Some(c) = &self.category {
            let own = match rec.event_type.as_str() {
                "incident" | "inventory" => Some(rec.event_type.as_str()),
                _ => rec.category(),
            };
            if own != Some(c.as_str()) {
                return false;
            }
        }
        if let Some(max) = self.severity {
            match rec.severity() {
                Some(s) if s <= max => {}
                _ => return false,
            }
        }
        if let Some(since) = self.since {
            match rec.time() {
                Some(t) if t >= since => {}
                _ => return false,
            }
        }
        true
    }
}

/// Reads every complete line of `input`, writes the matching ones to `out`
/// and counts what it could not read.
struct Viewer<'a, W: Write> {
    filter: &'a Filter,
    out: W,
    counts: Counts,
    err: &'a mut dyn Write,
}

impl<W: Write> Viewer<'_, W> {
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Some(rec) = LogRecord::parse(line) else {
            self.counts.unreadable += 1;
            return Ok(());
        };
        if !self.filter.matches(&rec) {
            return Ok(());
        }
        self.counts.shown += 1;
        if self.filter.json {
            self.out.write_all(line)?;
            self.out.write_all(b"\n")
        } else {
            render(&rec, &mut self.out)
        }
    }
}

/// Shows the records of `input` (a whole file or stdin) and returns the
/// counts. A closed `out` (`| head`) ends the view early without error.
pub fn show(input: &mut dyn Read, filter: &Filter, out: impl Write) -> io::Result<Counts> {
    let mut sink = io::sink();
    let mut v = Viewer {
        filter,
        out,
        counts: Counts::default(),
        err: &mut sink,
    };
    let mut split = LineSplitter::default();
    let mut failed = None;
    split.feed(input, |l| {
        if failed.is_none() {
            failed = v.line(l).err();
        }
    })?;
    if let Some(last) = split.finish() {
        if failed.is_none() {
            failed = v.line(&last).err();
        }
    }
    v.counts.unreadable += split.too_long;
    match failed {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => {
            let _ = v.out.flush();
            Ok(v.counts)
        }
    }
}

/// `--follow`: shows the file, then what is appended to it, across
/// rotation, until `stop` is set or `out` is closed. A path that does not
/// exist yet is waited for. Each unreadable line is reported on `err` as it
/// is met (a follow has no end at which to sum them up).
pub fn follow(
    path: &Path,
    filter: &Filter,
    out: impl Write,
    err: &mut dyn Write,
    stop: &AtomicBool,
) -> io::Result<Counts> {
    let mut v = Viewer {
        filter,
        out,
        counts: Counts::default(),
        err,
    };
    let mut split = LineSplitter::default();
    let mut open: Option<(File, u64, u64)> = None; // file, dev, inode
    let mut reported = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if open.is_none() {
            open = File::open(path).ok().and_then(|f| {
                let m = f.metadata().ok()?;
                Some((f, m.dev(), m.ino()))
            });
        }
        if let Some((file, dev, ino)) = open.as_mut() {
            let mut failed = None;
            split.feed(file, |l| {
                if failed.is_none() {
                    failed = v.line(l).err();
                }
            })?;
            if let Some(e) = failed {
                return if e.kind() == io::ErrorKind::BrokenPipe {
                    Ok(v.counts)
                } else {
                    Err(e)
                };
            }
            let unreadable = v.counts.unreadable + split.too_long;
            if unreadable > reported {
                reported = unreadable;
                let _ = writeln!(
                    v.err,
                    "tapsentry alerts: {}: skipped a line that is not a record ({reported} so far)",
                    path.display()
                );
            }
            match v.out.flush() {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(v.counts),
                r => r?,
            }
            // At the end of what is there: rotated or truncated?
            let pos = file.stream_position()?;
            let len = file.metadata()?.len();
            match std::fs::metadata(path) {
                Ok(m) if m.dev() != *dev || m.ino() != *ino => {
                    // Renamed away and replaced: the old file was read to
                    // its end above; a partial line there stays partial.
                    split.reset();
                    open = None;
                    continue;
                }
                Ok(_) if len < pos => {
                    split.reset();
                    file.seek(SeekFrom::Start(0))?;
                    continue;
                }
                // Removed: keep the old file until a new one appears.
                _ => {}
            }
        }
        std::thread::sleep(POLL);
    }
    v.counts.unreadable += split.too_long;
    Ok(v.counts)
}

/// Where `alerts` reads from: a path, or stdin for `-`.
pub fn input_path(file: Option<PathBuf>, alert_log: &str) -> PathBuf {
    file.unwrap_or_else(|| PathBuf::from(alert_log))
}

fn sev_style(sev: Option<u8>) -> (Style, &'static str) {
    match sev {
        Some(1) => (AnsiColor::Red.on_default().bold(), "HIGH"),
        Some(2) => (AnsiColor::Yellow.on_default().bold(), "MED "),
        Some(3) => (AnsiColor::Cyan.on_default(), "LOW "),
        _ => (Style::new(), "    "),
    }
}

/// The evidence fields worth a glance, in this order, when present.
const KEY_EVIDENCE: [&str; 15] = [
    "sessions",
    "distinct_ports",
    "distinct_targets",
    "failures",
    "attempts",
    "bytes_out",
    "bytes",
    "ratio",
    "queries",
    "messages",
    "recipients",
    "duration_secs",
    "rate_per_sec",
    "sources",
    "probes",
];

/// One line for one record (colour codes in it; the stream strips them
/// when stdout is not a terminal).
pub fn render(rec: &LogRecord, out: &mut impl Write) -> io::Result<()> {
    let dim = Style::new().dimmed();
    let bold = Style::new().bold();
    let time = rec
        .timestamp
        .as_deref()
        .map(|t| t.replacen('T', " ", 1))
        .unwrap_or_else(|| "-".into());
    write!(out, "{dim}{time}{dim:#} ")?;
    match rec.event_type.as_str() {
        "incident" => {
            let i = rec.incident.clone().unwrap_or_default();
            let id = i.id.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
            let hosts: Vec<String> = i.hosts.iter().map(ToString::to_string).collect();
            write!(
                out,
                "{bold}INCIDENT{bold:#} #{id} score {} hosts {} stages {} ({} alerts)",
                i.score.map_or_else(|| "?".into(), |s| format!("{s:.1}")),
                hosts.join(","),
                i.stages.join(">"),
                i.alert_ids.len()
            )?;
        }
        "inventory" => {
            let i = rec.inventory.clone().unwrap_or_default();
            let host = i
                .host
                .or(rec.src_ip)
                .map_or_else(|| "?".into(), |h| h.to_string());
            write!(
                out,
                "{bold}INVENTORY{bold:#} {} {host}",
                i.kind.as_deref().unwrap_or("?")
            )?;
            if let Some(p) = i.port {
                write!(out, " {}/{}", p, i.transport.as_deref().unwrap_or("?"))?;
            }
            if let Some(a) = i.app_proto.as_deref() {
                write!(out, " ({a})")?;
            }
        }
        kind => {
            let (style, word) = sev_style(rec.severity());
            let cat = rec.category().unwrap_or("?");
            write!(out, "{style}{word}{style:#} {bold}{cat:<17}{bold:#} ")?;
            write!(
                out,
                "{}",
                rec.src_ip.map_or_else(|| "?".into(), |i| i.to_string())
            )?;
            if let Some(port) = rec.src_port {
                write!(out, ":{port}")?;
            }
            if rec.dest_ip.is_some() || rec.dest_port.is_some() {
                write!(out, " -> ")?;
                if let Some(d) = rec.dest_ip {
                    write!(out, "{d}")?;
                }
                if let Some(port) = rec.dest_port {
                    write!(out, ":{port}")?;
                }
            }
            if let Some(p) = rec.proto.as_deref() {
                write!(out, "/{p}")?;
            }
            let a = rec.alert.clone().unwrap_or_default();
            if kind == "alert_update" {
                write!(out, "  {bold}update{bold:#}")?;
            }
            if let Some(sig) = a.signature.as_deref() {
                write!(out, "  {sig}")?;
            }
            if let Some(d) = a.description.as_deref() {
                write!(out, ": {d}")?;
            }
            let key: Vec<String> = KEY_EVIDENCE
                .iter()
                .filter_map(|k| rec.evidence.get(*k).map(|v| format!("{k}={v}")))
                .take(4)
                .collect();
            if !key.is_empty() {
                write!(out, "  [{}]", key.join(" "))?;
            }
            if let Some(g) = &rec.geo {
                let mut parts = Vec::new();
                if let Some(c) = &g.country {
                    parts.push(c.clone());
                }
                if let Some(n) = g.asn {
                    parts.push(format!("AS{n}"));
                }
                if let Some(o) = &g.as_org {
                    parts.push(o.clone());
                }
                if !parts.is_empty() {
                    write!(out, "  {}", parts.join(" "))?;
                }
            }
            if let Some(id) = a.alert_id {
                write!(out, "  {dim}#{id}{dim:#}")?;
            }
        }
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"timestamp":"2024-05-01T10:00:00.000001Z","event_type":"alert","src_ip":"198.51.100.7","dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","alert":{"category":"external_login","signature":"external_login.brute_force","severity":1,"description":"brute force","alert_id":42},"evidence":{"failures":120},"geo":{"ip":"198.51.100.7","country":"SE"}}"#,
        "\n",
        "not json\n",
        r#"{"timestamp":"2024-05-01T11:00:00.000000Z","event_type":"alert","src_ip":"10.0.0.9","alert":{"category":"port_scan","signature":"port_scan.horizontal","severity":3,"description":"scan"}}"#,
        "\n",
        r#"{"timestamp":"2024-05-01T11:00:00.000000Z","event_type":"stats","packets":3}"#,
        "\n",
        r#"{"timestamp":"2024-05-01T12:00:00.000000Z","event_type":"alert_update","src_ip":"10.0.0.9","alert":{"alert_id":7,"category":"port_scan","severity":3},"evidence":{"distinct_ports":1000}}"#,
        "\n",
    );

    fn run(f: &Filter) -> (String, Counts) {
        let mut out = Vec::new();
        let c = show(&mut LOG.as_bytes(), f, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), c)
    }

    #[test]
    fn plain_lines_name_who_what_evidence_and_country() {
        let (text, c) = run(&Filter::default());
        assert_eq!(
            c,
            Counts {
                shown: 3,
                unreadable: 1
            }
        );
        let first = text.lines().next().unwrap();
        // Rendered into a Vec: the escapes are still there; strip them.
        let plain = anstream::adapter::strip_str(first).to_string();
        assert_eq!(
            plain,
            "2024-05-01 10:00:00.000001Z HIGH external_login    198.51.100.7 -> 10.0.0.5:22/TCP  external_login.brute_force: brute force  [failures=120]  SE  #42"
        );
        assert!(text.lines().nth(2).unwrap().contains("update"));
    }

    #[test]
    fn filters_by_category_severity_and_time() {
        let f = Filter {
            severity: Some(1),
            ..Filter::default()
        };
        assert_eq!(run(&f).1.shown, 1);
        let f = Filter {
            category: Some("port_scan".into()),
            json: true,
            ..Filter::default()
        };
        let (text, c) = run(&f);
        assert_eq!(c.shown, 2);
        // Passed through unchanged.
        assert!(LOG.contains(text.lines().next().unwrap()));
        let f = Filter {
            since: super::super::records::parse_time("2024-05-01T10:30:00Z"),
            ..Filter::default()
        };
        assert_eq!(run(&f).1.shown, 2);
    }
}
