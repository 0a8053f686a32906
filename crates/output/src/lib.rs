//! Durable JSON-lines output: alert, flow and stats logs.
//!
//! * [`JsonlSink`] writes one complete JSON object per line to a file
//!   (appending) or to stdout, and flushes after every line so `tail -f` and
//!   log shippers see each record at once. [`JsonlSink::reopen`] closes and
//!   reopens the path, for logrotate's rename-then-SIGHUP.
//! * [`JsonlSink::deliver`] is the same write for a log that must survive
//!   an outage (disk full, permissions changed under it): a line that
//!   cannot be written waits in a backlog bounded in bytes
//!   ([`JsonlSink::with_backlog`]) and is written, in order, by
//!   [`JsonlSink::retry`] once there is room again; what the bound refuses
//!   is counted as lost ([`OutageStats`]). A write that fails part way is
//!   cut back off the file, so no line is ever torn.
//! * [`Suppressor`] keeps one line per finding: an alert with the same
//!   signature, `src_ip` and `dest_ip` as one written less than the window
//!   ago (in capture time) is suppressed and counted. Its memory is bounded.
//!
//! ```
//! use tapsentry_output::{JsonlSink, Suppressor};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("alerts.jsonl");
//! let mut sink = JsonlSink::open_as(path.to_str().unwrap(), "alert log").unwrap();
//! sink.write_record(&serde_json::json!({"event_type": "stats", "packets": 3})).unwrap();
//! // Flushed: readable while the sink is still open.
//! assert_eq!(
//!     std::fs::read_to_string(&path).unwrap(),
//!     "{\"event_type\":\"stats\",\"packets\":3}\n"
//! );
//!
//! let mut suppress = Suppressor::new(3600, 10_000);
//! assert_eq!(suppress.suppressed(), 0);
//! ```
//!
//! This crate does not decide what is an alert, own threads, handle
//! signals, `fsync`, rotate files, or read the clock: the pipeline feeds it
//! records in the order they are to appear and calls `reopen` on SIGHUP.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;

use serde::Serialize;
use tapsentry_types::{Alert, Timestamp};

/// A failure to open or write a log; every message names the log and path,
/// e.g. `cannot open alert log /var/log/x/alerts.jsonl: No such file or
/// directory (os error 2)`.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file could not be opened (missing directory, permissions, ...).
    #[error("cannot open {what} {path}: {source}")]
    Open {
        /// What the file is, e.g. `alert log`.
        what: &'static str,
        /// The path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be written or flushed (disk full, closed pipe, ...).
    #[error("cannot write {what} {path}: {source}")]
    Write {
        /// What the file is, e.g. `alert log`.
        what: &'static str,
        /// The path (`-` for stdout).
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be serialised (a bug, not an input problem).
    #[error("cannot serialise a record for {what} {path}: {source}")]
    Serialize {
        /// What the file is, e.g. `alert log`.
        what: &'static str,
        /// The path.
        path: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

enum Target {
    File(File),
    Stdout,
    /// Tests only: a writer that fails on cue.
    #[cfg(test)]
    Fake(Box<dyn Write + Send>),
}

/// An append-only JSON-lines log. `"-"` means stdout.
pub struct JsonlSink {
    what: &'static str,
    path: String,
    target: Target,
    /// Reused for every record: one buffer per line, written in one go, so
    /// no allocation per record once warm and no interleaving with a
    /// concurrent writer's bytes in between our pieces.
    buf: Vec<u8>,
    /// A failed write left part of a line in the file: the next record
    /// starts with a newline so that it, at least, is a whole line.
    torn: bool,
    lines: u64,
    /// Lines waiting for the file to take them again, oldest first, each
    /// with its newline.
    backlog: VecDeque<Box<[u8]>>,
    backlog_bytes: usize,
    /// The bound on `backlog_bytes`; 0: no backlog, a line that cannot be
    /// written is lost at once.
    backlog_max_bytes: usize,
    /// Set while writes fail: lines lost before this outage began, so
    /// [`Recovery`] can say how many this one cost.
    outage: Option<u64>,
    /// The error that began the current outage, until the caller takes it.
    outage_began: Option<OutputError>,
    /// How the last outage ended, until the caller takes it.
    recovered: Option<Recovery>,
    stats: OutageStats,
}

/// What [`JsonlSink::deliver`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written and flushed.
    Written,
    /// Not written now; waiting in the backlog for [`JsonlSink::retry`].
    Queued,
    /// Not written and not kept: the backlog is full (or off).
    Lost,
}

/// The end of an outage, handed over once by [`JsonlSink::take_recovery`]
/// after [`JsonlSink::retry`] or [`JsonlSink::deliver`] found the file
/// taking lines again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Backlogged lines written when it ended.
    pub written: u64,
    /// Lines lost during the outage (backlog full).
    pub lost: u64,
}

/// A sink's outage counters (all lines, whatever their record type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutageStats {
    /// Outages begun: a write failed after the last one succeeded.
    pub outages: u64,
    /// Write attempts that failed (the first of an outage and each retry).
    pub failed_writes: u64,
    /// Lines waiting in the backlog now.
    pub backlog: u64,
    /// Bytes those lines take.
    pub backlog_bytes: u64,
    /// Lines lost: refused by a full backlog, or still in it at
    /// [`JsonlSink::abandon_backlog`].
    pub lost: u64,
}

fn open_append(what: &'static str, path: &str) -> Result<File, OutputError> {
    // No `create_dir_all`: a missing directory is a configuration error the
    // operator should see, not something to paper over as root. Created
    // 0640 (the contract): a log shipper reads it through the group, and
    // alerts name the network's hosts, so others may not (the umask may
    // narrow it further).
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| OutputError::Open {
            what,
            path: path.to_string(),
            source,
        })
}

/// Writes all of `buf`, returning how many bytes got out before an error,
/// which `write_all` does not tell. Then flushes.
#[allow(
    clippy::disallowed_methods,
    reason = "counts the bytes of a partial write, which write_all does not report"
)]
fn write_counted(w: &mut dyn Write, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut done = 0;
    while let Some(rest) = buf.get(done..).filter(|r| !r.is_empty()) {
        match w.write(rest) {
            Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, w.flush())
}

impl JsonlSink {
    /// Opens `path` for appending (created if missing, but not its
    /// directory), or stdout for `"-"`. Errors call the file a "log"; use
    /// [`JsonlSink::open_as`] to name it.
    pub fn open(path: &str) -> Result<JsonlSink, OutputError> {
        JsonlSink::open_as(path, "log")
    }

    /// [`JsonlSink::open`], with `what` (e.g. `"alert log"`) naming the file
    /// in every error message.
    pub fn open_as(path: &str, what: &'static str) -> Result<JsonlSink, OutputError> {
        let target = if path == "-" {
            Target::Stdout
        } else {
            Target::File(open_append(what, path)?)
        };
        Ok(JsonlSink {
            what,
            path: path.to_string(),
            target,
            buf: Vec::with_capacity(1024),
            torn: false,
            lines: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            backlog_max_bytes: 0,
            outage: None,
            outage_began: None,
            recovered: None,
            stats: OutageStats::default(),
        })
    }

    /// Keeps up to `max_bytes` of lines that [`deliver`](Self::deliver)
    /// could not write (0, the default: none). The bound is on the
    /// serialised lines, so it is the backlog's memory, give or take one
    /// allocation per line.
    #[must_use]
    pub fn with_backlog(mut self, max_bytes: usize) -> JsonlSink {
        self.backlog_max_bytes = max_bytes;
        self
    }

    /// Writes one record as one line and flushes it; an error when it
    /// could not be (nothing is kept for later: see [`deliver`](Self::deliver)).
    ///
    /// The line is serialised into a reused buffer first, so a record that
    /// cannot be serialised writes nothing. If the write itself fails part
    /// way (disk full), what got into a file is cut off again; where that is
    /// impossible (stdout, or the cut failed) the next record begins with a
    /// newline, so the damage stays within one line.
    pub fn write_record<T: Serialize>(&mut self, rec: &T) -> Result<(), OutputError> {
        self.serialise(rec)?;
        let line = std::mem::take(&mut self.buf);
        let result = self.write_line(&line);
        self.buf = line;
        result.map_err(|source| self.write_error(source))
    }

    /// Writes one record as one line, or keeps it for later.
    ///
    /// While the log is healthy this is [`write_record`](Self::write_record).
    /// When a write fails an outage begins ([`take_outage`](Self::take_outage)
    /// hands its error over, once): the line, and every later one, goes to
    /// the backlog, in order, until [`retry`](Self::retry) empties it; a
    /// line that does not fit within the backlog's bound is lost and
    /// counted. With no backlog (or an empty one) each call tries the file
    /// again, and a success ends the outage. Only a record that cannot be
    /// serialised is an error.
    pub fn deliver<T: Serialize>(&mut self, rec: &T) -> Result<Delivery, OutputError> {
        self.serialise(rec)?;
        if self.outage.is_some() && !self.backlog.is_empty() {
            // Behind the backlog, to keep the order; `retry` probes the file.
            let line = self.buf.as_slice().into();
            return Ok(self.enqueue(line));
        }
        let line = std::mem::take(&mut self.buf);
        let result = self.write_line(&line);
        let delivery = match result {
            Ok(()) => {
                self.end_outage();
                Delivery::Written
            }
            Err(e) => {
                self.failed(e);
                self.enqueue(line.as_slice().into())
            }
        };
        self.buf = line;
        Ok(delivery)
    }

    /// Writes the backlog, oldest first, until it is empty (which ends the
    /// outage: [`take_recovery`](Self::take_recovery)) or a write fails.
    /// Nothing to do when no outage is under way.
    pub fn retry(&mut self) {
        let Some(lost_before) = self.outage else {
            return;
        };
        let mut written = 0;
        while let Some(line) = self.backlog.pop_front() {
            if let Err(e) = self.write_line(&line) {
                self.backlog.push_front(line);
                self.failed(e);
                return;
            }
            self.backlog_bytes = self.backlog_bytes.saturating_sub(line.len());
            written += 1;
        }
        self.outage = None;
        self.recovered = Some(Recovery {
            written,
            lost: self.stats.lost.saturating_sub(lost_before),
        });
    }

    /// How the last outage ended, once.
    pub fn take_recovery(&mut self) -> Option<Recovery> {
        self.recovered.take()
    }

    /// The error that began the outage now under way, once: the caller
    /// reports it (one message an outage, not one a line).
    pub fn take_outage(&mut self) -> Option<OutputError> {
        self.outage_began.take()
    }

    /// Whether writes are failing (an outage began and has not ended).
    pub fn in_outage(&self) -> bool {
        self.outage.is_some()
    }

    /// Gives up on the backlog (at exit, after a last [`retry`](Self::retry)):
    /// its lines count as lost. Returns how many there were.
    pub fn abandon_backlog(&mut self) -> u64 {
        let n = self.backlog.len() as u64;
        self.backlog.clear();
        self.backlog_bytes = 0;
        self.stats.lost = self.stats.lost.saturating_add(n);
        n
    }

    /// The outage counters, the backlog's size included.
    pub fn outage_stats(&self) -> OutageStats {
        OutageStats {
            backlog: self.backlog.len() as u64,
            backlog_bytes: self.backlog_bytes as u64,
            ..self.stats
        }
    }

    fn serialise<T: Serialize>(&mut self, rec: &T) -> Result<(), OutputError> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, rec).map_err(|source| OutputError::Serialize {
            what: self.what,
            path: self.path.clone(),
            source,
        })?;
        debug_assert!(!self.buf.contains(&b'\n'));
        self.buf.push(b'\n');
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> OutputError {
        OutputError::Write {
            what: self.what,
            path: self.path.clone(),
            source,
        }
    }

    /// A write failed: count it, and begin an outage if none is under way.
    fn failed(&mut self, e: io::Error) {
        self.stats.failed_writes = self.stats.failed_writes.saturating_add(1);
        if self.outage.is_none() {
            self.outage = Some(self.stats.lost);
            self.stats.outages = self.stats.outages.saturating_add(1);
            self.outage_began = Some(self.write_error(e));
        }
    }

    /// A write succeeded with nothing backlogged: the outage (if any) is
    /// over; its lost lines were counted as they went.
    fn end_outage(&mut self) {
        if let Some(lost_before) = self.outage.filter(|_| self.backlog.is_empty()) {
            self.outage = None;
            self.recovered = Some(Recovery {
                written: 0,
                lost: self.stats.lost.saturating_sub(lost_before),
            });
        }
    }

    fn enqueue(&mut self, line: Box<[u8]>) -> Delivery {
        if self.backlog_bytes.saturating_add(line.len()) > self.backlog_max_bytes {
            // The newest line is the one refused: the backlog keeps the
            // outage's beginning, so the log has one gap, not a moving one.
            self.stats.lost = self.stats.lost.saturating_add(1);
            return Delivery::Lost;
        }
        self.backlog_bytes += line.len();
        self.backlog.push_back(line);
        Delivery::Queued
    }

    /// Writes `line` (ending in its newline) and flushes. A partial write
    /// into a file is cut off again, so the file ends at a line boundary.
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.torn {
            let (n, result) = self.write_raw(b"\n");
            result?;
            if n == 1 {
                self.torn = false;
            }
        }
        let (written, result) = self.write_raw(line);
        if let Err(e) = result {
            if written > 0 && written < line.len() && !self.cut_back(written) {
                self.torn = true;
            }
            return Err(e);
        }
        self.lines += 1;
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> (usize, io::Result<()>) {
        match &mut self.target {
            Target::File(f) => write_counted(f, bytes),
            Target::Stdout => write_counted(&mut io::stdout().lock(), bytes),
            #[cfg(test)]
            Target::Fake(w) => write_counted(w.as_mut(), bytes),
        }
    }

    /// Truncates the `written` bytes of a failed line off the end of the
    /// file (appends go to the end, so they are its last bytes). False when
    /// that is impossible.
    fn cut_back(&mut self, written: usize) -> bool {
        let Target::File(f) = &self.target else {
            return false;
        };
        f.metadata()
            .and_then(|m| f.set_len(m.len().saturating_sub(written as u64)))
            .is_ok()
    }

    /// Closes and reopens the path: after logrotate renamed the file, new
    /// lines go to a new file at the configured path. On failure the old
    /// handle is kept, so nothing is lost. A no-op for stdout.
    pub fn reopen(&mut self) -> Result<(), OutputError> {
        if let Target::File(_) = self.target {
            self.target = Target::File(open_append(self.what, &self.path)?);
            // The new file starts clean; a torn line stays in the old one.
            self.torn = false;
        }
        Ok(())
    }

    /// The configured path (`-` for stdout).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Lines written since opening.
    pub fn lines_written(&self) -> u64 {
        self.lines
    }
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("what", &self.what)
            .field("path", &self.path)
            .field("lines", &self.lines)
            .finish()
    }
}

/// The contract's `alert_update` record: a finding's evidence as it stands
/// when its activity stopped, naming the alert already written by
/// `alert.alert_id`. Never a second `alert` line.
#[derive(Debug, Serialize)]
pub struct AlertUpdateRecord<'a> {
    /// Capture time of the finding's last activity.
    pub timestamp: Timestamp,
    /// Always `"alert_update"`.
    pub event_type: &'static str,
    /// As on the alert.
    pub src_ip: IpAddr,
    /// As on the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_ip: Option<IpAddr>,
    /// As on the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// As on the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proto: Option<&'a str>,
    /// The alert's id and names, and the final sentence.
    pub alert: AlertUpdateBody<'a>,
    /// The final figures.
    pub evidence: &'a std::collections::BTreeMap<&'static str, serde_json::Value>,
    /// As on the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo: Option<&'a tapsentry_types::GeoInfo>,
}

/// The `alert` object of an [`AlertUpdateRecord`].
#[derive(Debug, Serialize)]
pub struct AlertUpdateBody<'a> {
    /// The id of the alert updated ([`tapsentry_types::alert_id`]).
    pub alert_id: u64,
    /// As on the alert.
    pub category: tapsentry_types::Category,
    /// As on the alert.
    pub signature: &'static str,
    /// As on the alert.
    pub severity: u8,
    /// The final figures in one sentence.
    pub description: &'a str,
}

impl<'a> AlertUpdateRecord<'a> {
    /// The record of `update` (an [`Alert`] with `updates` set), naming the
    /// alert `alert_id`.
    pub fn of(update: &'a Alert, alert_id: u64) -> Self {
        AlertUpdateRecord {
            timestamp: update.timestamp,
            event_type: "alert_update",
            src_ip: update.src_ip,
            dest_ip: update.dest_ip,
            dest_port: update.dest_port,
            proto: update.proto.as_deref(),
            alert: AlertUpdateBody {
                alert_id,
                category: update.alert.category,
                signature: update.alert.signature,
                severity: update.alert.severity,
                description: &update.alert.description,
            },
            evidence: &update.evidence,
            geo: update.geo.as_ref(),
        }
    }
}

/// The identity of one finding: signature, `src_ip`, `dest_ip`.
type FindingKey = (&'static str, IpAddr, Option<IpAddr>);

/// One line per finding: repeats within the window are suppressed.
///
/// The window runs from the capture time of the last line *written* for a
/// finding, so evidence that keeps coming yields one line per window, never
/// the wall clock, so a replay decides exactly as the live run did. The
/// decisions depend only on the sequence of alerts given.
///
/// Memory is bounded by `max_entries`. When a new finding arrives at the
/// bound, findings whose window has passed (relative to the newest alert
/// time seen) are forgotten first, which changes no decision; only if none
/// has, the least recently written finding is forgotten and counted in
/// [`Suppressor::evicted`] (a repeat of it could then be written early).
#[derive(Debug)]
pub struct Suppressor {
    window_us: i64,
    max_entries: usize,
    /// Finding -> capture time it was last written.
    last: HashMap<FindingKey, Timestamp>,
    /// (time last written, finding), oldest first: both the expiry and the
    /// least-recently-written order.
    order: BTreeSet<(Timestamp, FindingKey)>,
    /// The latest alert time seen (alerts from several workers may arrive
    /// slightly out of order).
    newest: Timestamp,
    suppressed: u64,
    evicted: u64,
}

impl Suppressor {
    /// A suppressor with a window in seconds of capture time, remembering
    /// at most `max_entries` findings (at least 1). A zero window suppresses
    /// nothing and remembers nothing.
    pub fn new(window_secs: u64, max_entries: usize) -> Suppressor {
        Suppressor {
            window_us: i64::try_from(window_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            max_entries: max_entries.max(1),
            last: HashMap::new(),
            order: BTreeSet::new(),
            newest: Timestamp::from_micros(i64::MIN),
            suppressed: 0,
            evicted: 0,
        }
    }

    /// True when the alert should be written (and remembers it); false when
    /// it repeats a finding written less than the window ago, or one written
    /// later than this alert's time (an out-of-order straggler).
    pub fn admit(&mut self, alert: &Alert) -> bool {
        if self.window_us == 0 {
            return true;
        }
        let key = alert.identity();
        let now = alert.timestamp;
        self.newest = self.newest.max(now);
        if let Some(&prev) = self.last.get(&key) {
            if now.micros().saturating_sub(prev.micros()) < self.window_us {
                self.suppressed += 1;
                return false;
            }
            self.order.remove(&(prev, key));
        } else if self.last.len() >= self.max_entries {
            self.make_room();
        }
        self.last.insert(key, now);
        self.order.insert((now, key));
        true
    }

    /// Frees at least one slot: every expired finding, else the least
    /// recently written one.
    fn make_room(&mut self) {
        while let Some(&(t, key)) = self.order.first() {
            if self.newest.micros().saturating_sub(t.micros()) < self.window_us {
                break;
            }
            self.order.pop_first();
            self.last.remove(&key);
        }
        if self.last.len() >= self.max_entries {
            if let Some((_, key)) = self.order.pop_first() {
                self.last.remove(&key);
                self.evicted += 1;
            }
        }
    }

    /// The capture time of the line last written for `alert`'s finding,
    /// while it is remembered: what an `alert_update` names when the alert
    /// it updates was itself suppressed as a repeat of that line.
    pub fn written_at(&self, alert: &Alert) -> Option<Timestamp> {
        self.last.get(&alert.identity()).copied()
    }

    /// Alerts suppressed as repeats.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Findings forgotten inside their window to stay within `max_entries`.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Findings remembered now.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use tapsentry_types::{AlertBody, Category, GeoInfo, Mitre};

    fn alert(t_s: i64, sig: &'static str, src: &str, dst: Option<&str>) -> Alert {
        Alert {
            timestamp: Timestamp::from_micros(t_s * 1_000_000),
            event_type: "alert",
            src_ip: src.parse().unwrap(),
            dest_ip: dst.map(|d| d.parse().unwrap()),
            src_port: None,
            dest_port: Some(443),
            proto: Some("TCP".into()),
            alert: AlertBody {
                category: Category::TOR,
                signature: sig,
                severity: 2,
                description: "10.0.0.1 connected to Tor exit 1.2.3.4 (3 flows).".into(),
                mitre: Mitre {
                    tactic: "TA0011",
                    technique: "T1090.003",
                },
            },
            evidence: BTreeMap::new(),
            community_id: None,
            flow_id: None,
            app_proto: None,
            geo: None,
            response: None,
            updates: None,
        }
    }

    #[test]
    fn lines_are_complete_and_flushed_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let mut s = JsonlSink::open(p.to_str().unwrap()).unwrap();
        for i in 0..3 {
            s.write_record(&alert(i, "tor.exit_outbound", "10.0.0.1", Some("1.2.3.4")))
                .unwrap();
            // Read through another handle while the sink is open.
            let text = std::fs::read_to_string(&p).unwrap();
            assert_eq!(text.lines().count() as i64, i + 1);
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(v.is_object());
            }
        }
        assert_eq!(s.lines_written(), 3);
        assert_eq!(s.path(), p.to_str().unwrap());
    }

    #[test]
    fn opening_appends_to_an_existing_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, "{\"old\":1}\n").unwrap();
        let mut s = JsonlSink::open(p.to_str().unwrap()).unwrap();
        s.write_record(&serde_json::json!({"new": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"old\":1}\n{\"new\":2}\n"
        );
    }

    #[test]
    fn alert_has_the_contract_fields() {
        let mut a = alert(1_700_000_000, "tor.exit_outbound", "10.0.0.1", None);
        a.timestamp = Timestamp::from_micros(1_700_000_000_000_042);
        let v = serde_json::to_value(&a).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alert",
                "dest_port",
                "event_type",
                "evidence",
                "proto",
                "src_ip",
                "timestamp"
            ]
        );
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000042Z");
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["src_ip"], "10.0.0.1");
        assert_eq!(v["dest_port"], 443);
        assert_eq!(v["proto"], "TCP");
        let body: Vec<&str> = v["alert"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            body,
            ["category", "description", "mitre", "severity", "signature"]
        );
        assert_eq!(v["alert"]["category"], "tor");
        assert_eq!(v["alert"]["signature"], "tor.exit_outbound");
        assert_eq!(v["alert"]["severity"], 2);
        assert!(v["alert"]["description"].as_str().unwrap().ends_with('.'));
        assert_eq!(
            v["alert"]["mitre"],
            serde_json::json!({"tactic": "TA0011", "technique": "T1090.003"})
        );

        // The optional fields appear when set.
        a.dest_ip = Some("1.2.3.4".parse().unwrap());
        a.src_port = Some(51000);
        a.community_id = Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=".into());
        a.geo = Some(GeoInfo {
            ip: a.dest_ip,
            country: Some("GB".into()),
            asn: Some(1221),
            ..GeoInfo::default()
        });
        a.evidence.insert("flows", serde_json::json!(3));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["dest_ip"], "1.2.3.4");
        assert_eq!(v["src_port"], 51000);
        assert_eq!(v["community_id"], "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(v["geo"]["country"], "GB");
        assert_eq!(v["geo"]["asn"], 1221);
        assert!(v["geo"].get("city").is_none());
        assert_eq!(v["evidence"]["flows"], 3);
    }

    #[test]
    fn reopen_after_rename_writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let rotated = dir.path().join("a.jsonl.1");
        let mut s = JsonlSink::open(p.to_str().unwrap()).unwrap();
        s.write_record(&1).unwrap();
        std::fs::rename(&p, &rotated).unwrap();
        s.write_record(&2).unwrap(); // still the old, renamed file
        s.reopen().unwrap();
        s.write_record(&3).unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "1\n2\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "3\n");
        assert_eq!(s.lines_written(), 3);
    }

    #[test]
    fn failed_reopen_keeps_writing_to_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let p = logs.join("a.jsonl");
        let mut s = JsonlSink::open_as(p.to_str().unwrap(), "alert log").unwrap();
        s.write_record(&1).unwrap();
        let moved = dir.path().join("moved");
        std::fs::rename(&logs, &moved).unwrap();
        let e = s.reopen().unwrap_err().to_string();
        assert!(e.starts_with("cannot open alert log "), "{e}");
        assert!(e.contains(p.to_str().unwrap()), "{e}");
        s.write_record(&2).unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("a.jsonl")).unwrap(),
            "1\n2\n"
        );
    }

    #[test]
    fn open_error_names_the_log_and_path() {
        let e = JsonlSink::open_as("/nonexistent-dir/x/alerts.jsonl", "alert log")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot open alert log /nonexistent-dir/x/alerts.jsonl: "),
            "{e}"
        );
        assert!(e.contains("No such file or directory"), "{e}");
        let e = JsonlSink::open("/nonexistent-dir/f.jsonl").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot open log /nonexistent-dir/f.jsonl"));
    }

    /// The contract's mode for logs: 0640 at most (the umask may take more
    /// away), never readable or writable by others.
    #[test]
    fn a_new_log_is_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let sink = JsonlSink::open_as(path.to_str().unwrap(), "alert log").unwrap();
        drop(sink);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
        assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
    }

    #[test]
    fn stdout_mode_constructs() {
        let mut s = JsonlSink::open("-").unwrap();
        assert_eq!(s.path(), "-");
        assert_eq!(s.lines_written(), 0);
        s.reopen().unwrap();
    }

    #[test]
    fn write_error_names_the_path() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        if !std::path::Path::new("/dev/full").exists() {
            return;
        }
        let mut s = JsonlSink::open_as("/dev/full", "alert log").unwrap();
        let e = s.write_record(&1).unwrap_err().to_string();
        assert!(e.starts_with("cannot write alert log /dev/full: "), "{e}");
        assert_eq!(s.lines_written(), 0);
    }

    /// Accepts `budget` bytes into a shared buffer, then fails.
    struct Failing {
        out: Arc<Mutex<Vec<u8>>>,
        budget: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::StorageFull.into());
            }
            // Dribble a few bytes at a time, as a short write would.
            let n = buf.len().min(self.budget).min(3);
            self.out.lock().unwrap().extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_torn_write_damages_one_line_only() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut s = JsonlSink::open("-").unwrap();
        s.target = Target::Fake(Box::new(Failing {
            out: Arc::clone(&out),
            budget: 12,
        }));
        s.write_record(&serde_json::json!({"n": 1})).unwrap(); // 8 bytes
        assert!(s.write_record(&serde_json::json!({"n": 2})).is_err()); // 4 of 8
        assert!(s.torn);
        // The disk has room again.
        if let Target::Fake(w) = &mut s.target {
            *w = Box::new(Failing {
                out: Arc::clone(&out),
                budget: usize::MAX,
            });
        }
        s.write_record(&serde_json::json!({"n": 3})).unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\"\n{\"n\":3}\n");
        assert_eq!(s.lines_written(), 2);
        assert!(!s.torn);
    }

    /// Takes whole writes while `open`, refuses every write (disk full)
    /// while not.
    struct Gate {
        out: Arc<Mutex<Vec<u8>>>,
        open: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !self.open.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::ErrorKind::StorageFull.into());
            }
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn gated(
        backlog: usize,
    ) -> (
        JsonlSink,
        Arc<Mutex<Vec<u8>>>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut s = JsonlSink::open("-").unwrap().with_backlog(backlog);
        s.target = Target::Fake(Box::new(Gate {
            out: Arc::clone(&out),
            open: Arc::clone(&open),
        }));
        (s, out, open)
    }

    fn text(out: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn an_outage_backlogs_lines_and_writes_them_in_order_when_room_returns() {
        use std::sync::atomic::Ordering::SeqCst;
        let (mut s, out, open) = gated(1 << 20);
        assert_eq!(s.deliver(&1).unwrap(), Delivery::Written);
        open.store(false, SeqCst);
        assert_eq!(s.deliver(&2).unwrap(), Delivery::Queued);
        assert_eq!(s.deliver(&3).unwrap(), Delivery::Queued);
        // Reported once an outage, not once a line.
        let e = s.take_outage().unwrap().to_string();
        assert!(e.starts_with("cannot write log -: "), "{e}");
        assert!(s.take_outage().is_none());
        assert!(s.in_outage());
        s.retry(); // still full
        assert!(s.take_recovery().is_none());
        open.store(true, SeqCst);
        // The file has room, but a new line waits behind the backlog.
        assert_eq!(s.deliver(&4).unwrap(), Delivery::Queued);
        assert_eq!(text(&out), "1\n");
        let st = s.outage_stats();
        assert_eq!(
            (
                st.outages,
                st.failed_writes,
                st.backlog,
                st.backlog_bytes,
                st.lost
            ),
            (1, 2, 3, 6, 0)
        );
        s.retry();
        assert_eq!(
            s.take_recovery(),
            Some(Recovery {
                written: 3,
                lost: 0
            })
        );
        assert!(!s.in_outage());
        assert_eq!(text(&out), "1\n2\n3\n4\n");
        assert_eq!(s.deliver(&5).unwrap(), Delivery::Written);
        assert_eq!(s.outage_stats().backlog, 0);
        assert_eq!(s.lines_written(), 5);
    }

    #[test]
    fn a_full_backlog_loses_the_newest_lines_and_says_how_many() {
        use std::sync::atomic::Ordering::SeqCst;
        // Room for two 6-byte lines.
        let (mut s, out, open) = gated(12);
        open.store(false, SeqCst);
        let got: Vec<Delivery> = (10_000..10_004).map(|n| s.deliver(&n).unwrap()).collect();
        assert_eq!(
            got,
            [
                Delivery::Queued,
                Delivery::Queued,
                Delivery::Lost,
                Delivery::Lost
            ]
        );
        assert_eq!(s.outage_stats().lost, 2);
        open.store(true, SeqCst);
        s.retry();
        assert_eq!(
            s.take_recovery(),
            Some(Recovery {
                written: 2,
                lost: 2
            })
        );
        assert_eq!(text(&out), "10000\n10001\n");
        // A second outage, abandoned at exit: its line counts as lost too.
        open.store(false, SeqCst);
        assert_eq!(s.deliver(&7).unwrap(), Delivery::Queued);
        assert_eq!(s.outage_stats().outages, 2);
        s.retry();
        assert_eq!(s.abandon_backlog(), 1);
        assert_eq!(s.outage_stats().lost, 3);
    }

    #[test]
    fn without_a_backlog_each_line_probes_the_file() {
        use std::sync::atomic::Ordering::SeqCst;
        let (mut s, out, open) = gated(0);
        open.store(false, SeqCst);
        assert_eq!(s.deliver(&1).unwrap(), Delivery::Lost);
        assert!(s.take_outage().is_some());
        assert_eq!(s.deliver(&2).unwrap(), Delivery::Lost);
        assert!(s.take_outage().is_none());
        open.store(true, SeqCst);
        assert_eq!(s.deliver(&3).unwrap(), Delivery::Written);
        assert_eq!(
            s.take_recovery(),
            Some(Recovery {
                written: 0,
                lost: 2
            })
        );
        assert_eq!(text(&out), "3\n");
    }

    #[test]
    fn logs_are_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let _s = JsonlSink::open(path.to_str().unwrap()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{mode:o}");
    }

    /// A real full filesystem (a 16 KiB tmpfs, when this runs as root):
    /// the write that does not fit is cut back off the file, so every line
    /// in it is whole; the backlog goes in, in order, once room is made.
    #[test]
    fn a_full_tmpfs_never_holds_a_torn_line_and_the_backlog_goes_in_later() {
        let dir = tempfile::tempdir().unwrap();
        let Some(fs) = tapsentry_testkit::fs::Tmpfs::mount(dir.path(), 16 << 10) else {
            return;
        };
        let mnt = fs.path();
        // Room that can be given back later.
        assert_eq!(fs.fill("filler", 8192), 8192);
        let path = mnt.join("alerts.jsonl");
        let mut s = JsonlSink::open(path.to_str().unwrap())
            .unwrap()
            .with_backlog(1 << 20);
        let pad = "x".repeat(700);
        let mut sent = 0u32;
        while !s.in_outage() {
            s.deliver(&serde_json::json!({"n": sent, "pad": pad}))
                .unwrap();
            sent += 1;
            assert!(sent < 1000, "the tmpfs never filled");
        }
        for _ in 0..5 {
            assert_eq!(
                s.deliver(&serde_json::json!({"n": sent, "pad": pad}))
                    .unwrap(),
                Delivery::Queued
            );
            sent += 1;
        }
        let lines = |p: &std::path::Path| -> Vec<u64> {
            let t = std::fs::read_to_string(p).unwrap();
            assert!(t.is_empty() || t.ends_with('\n'), "a torn last line");
            t.lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        let before = lines(&path);
        assert!(!before.is_empty());
        assert_eq!(
            s.take_outage()
                .map(|e| e.to_string().contains("No space left")),
            Some(true)
        );
        std::fs::remove_file(mnt.join("filler")).unwrap();
        s.retry();
        assert_eq!(s.take_recovery().map(|r| r.lost), Some(0));
        assert_eq!(lines(&path), (0..u64::from(sent)).collect::<Vec<_>>());
    }

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        let mut s = Suppressor::new(3600, 100);
        assert!(s.admit(&alert(0, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(!s.admit(&alert(3599, "a", "10.0.0.1", Some("1.1.1.1"))));
        // A different counterpart, signature, or none, is another finding.
        assert!(s.admit(&alert(100, "a", "10.0.0.1", Some("2.2.2.2"))));
        assert!(s.admit(&alert(100, "b", "10.0.0.1", Some("1.1.1.1"))));
        assert!(s.admit(&alert(100, "a", "10.0.0.1", None)));
        assert!(s.admit(&alert(100, "a", "10.0.0.2", Some("1.1.1.1"))));
        // The window counts from the last line written, in capture time.
        assert!(s.admit(&alert(3600, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(!s.admit(&alert(7000, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(s.admit(&alert(7200, "a", "10.0.0.1", Some("1.1.1.1"))));
        // A straggler older than the last line is a repeat too.
        assert!(!s.admit(&alert(10, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert_eq!(s.suppressed(), 3);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn zero_window_suppresses_nothing() {
        let mut s = Suppressor::new(0, 100);
        for _ in 0..3 {
            assert!(s.admit(&alert(5, "a", "10.0.0.1", None)));
        }
        assert_eq!((s.suppressed(), s.len()), (0, 0));
    }

    fn numbered(i: u32, t_s: i64) -> Alert {
        let mut a = alert(t_s, "a", "10.0.0.1", None);
        a.src_ip = IpAddr::from(i.to_be_bytes());
        a
    }

    #[test]
    fn memory_is_bounded() {
        let mut s = Suppressor::new(3600, 100);
        // 10k distinct findings, all within one window of each other.
        for i in 0..10_000u32 {
            assert!(s.admit(&numbered(i, i64::from(i) / 10)));
            assert!(s.len() <= 100);
        }
        assert_eq!(s.evicted(), 9_900);
        // The 100 most recent are remembered and still suppressed.
        assert!(!s.admit(&numbered(9_999, 1_000)));
        assert!(!s.admit(&numbered(9_900, 1_000)));
        assert!(s.admit(&numbered(9_899, 1_000)));
    }

    #[test]
    fn expired_findings_make_room_before_live_ones_are_evicted() {
        let mut s = Suppressor::new(60, 3);
        assert!(s.admit(&numbered(1, 0)));
        assert!(s.admit(&numbered(2, 0)));
        assert!(s.admit(&numbered(3, 100)));
        // At the bound: 1 and 2 have expired (100 - 0 >= 60) and go first,
        // uncounted; 3 is still live and stays.
        assert!(s.admit(&numbered(4, 100)));
        assert_eq!((s.len(), s.evicted()), (2, 0));
        assert!(!s.admit(&numbered(3, 101)));
        // Nothing expired now: the least recently written (3) is evicted.
        assert!(s.admit(&numbered(5, 101)));
        assert!(s.admit(&numbered(6, 102)));
        assert_eq!((s.len(), s.evicted()), (3, 1));
        assert!(s.admit(&numbered(3, 103)), "forgotten, so written again");
    }

    proptest::proptest! {
        /// Under any stream of alerts (a few signatures, many sources,
        /// with or without a counterpart, capture time going back and
        /// forth) the suppressor never remembers more than `max_entries`
        /// findings, and suppresses only findings it has written before.
        #[test]
        fn memory_stays_within_max_entries(
            window in 0u64..120,
            max_entries in 1usize..16,
            stream in proptest::collection::vec(
                (0usize..3, 0u32..40, proptest::option::of(0u32..4), -30i64..90),
                1..400,
            ),
        ) {
            let mut s = Suppressor::new(window, max_entries);
            let mut written = std::collections::HashSet::new();
            let mut t = 1_700_000_000i64;
            for (sig, src, dst, dt) in stream {
                t += dt;
                let mut a = numbered(src, t);
                a.alert.signature = ["a", "b", "c"][sig];
                a.dest_ip = dst.map(|d| IpAddr::from((d + 1).to_be_bytes()));
                let identity = a.identity();
                if s.admit(&a) {
                    written.insert(identity);
                } else {
                    proptest::prop_assert!(written.contains(&identity), "{:?}", identity);
                }
                proptest::prop_assert!(s.len() <= max_entries, "{} findings", s.len());
            }
        }
    }

    #[test]
    fn decisions_are_deterministic() {
        // A pseudo-random but fixed stream: two suppressors agree exactly.
        let stream: Vec<Alert> = (0..5_000u32)
            .map(|i| {
                let h = i.wrapping_mul(2_654_435_761);
                numbered((h >> 16) % 80, i64::from(i / 7))
            })
            .collect();
        let run = || {
            let mut s = Suppressor::new(30, 64);
            let out: Vec<bool> = stream.iter().map(|a| s.admit(a)).collect();
            (out, s.suppressed(), s.evicted(), s.len())
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert!(
            a.1 > 0 && a.2 > 0,
            "the stream exercises both paths: {:?}",
            (a.1, a.2, a.3)
        );
    }
}
