//! Durable JSON-lines output: alert, flow and stats logs.
//!
//! * [`JsonlSink`] writes one complete JSON object per line to a file
//!   (appending) or to stdout, and flushes after every line so `tail -f` and
//!   log shippers see each record at once. [`JsonlSink::reopen`] closes and
//!   reopens the path, for logrotate's rename-then-SIGHUP.
//! * [`Suppressor`] keeps one line per finding: an alert with the same
//!   signature, `src_ip` and `dest_ip` as one written within the window
//!   (capture time) is suppressed and counted. Its memory is bounded.
//!
//! ```
//! use tapsentry_output::JsonlSink;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("x.jsonl");
//! let mut sink = JsonlSink::open(path.to_str().unwrap()).unwrap();
//! sink.write_record(&serde_json::json!({"event_type": "stats"})).unwrap();
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"event_type\":\"stats\"}\n");
//! ```
//!
//! This crate does not decide what is an alert, own threads, or read the
//! clock: the pipeline feeds it records in the order they are to appear.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;
use tapsentry_types::{Alert, Timestamp};

/// A failure to open or write a log; every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file could not be opened (missing directory, permissions, ...).
    #[error("cannot open log {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be written or flushed (disk full, ...).
    #[error("cannot write log {path}: {source}")]
    Write {
        /// The path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A record could not be serialised (a bug, not an input problem).
    #[error("cannot serialise a record for {path}: {source}")]
    Serialize {
        /// The path.
        path: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

enum Target {
    File(File),
    Stdout,
}

/// An append-only JSON-lines log. `"-"` means stdout.
pub struct JsonlSink {
    path: String,
    target: Target,
    /// Reused for every record: one `write_all` per line, so a reader never
    /// sees half a line from us, and no allocation per record once warm.
    buf: Vec<u8>,
    lines: u64,
}

fn open_append(path: &str) -> Result<File, OutputError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| OutputError::Open {
            path: path.to_string(),
            source,
        })
}

impl JsonlSink {
    /// Opens `path` for appending (created if missing), or stdout for `"-"`.
    pub fn open(path: &str) -> Result<JsonlSink, OutputError> {
        let target = if path == "-" {
            Target::Stdout
        } else {
            Target::File(open_append(path)?)
        };
        Ok(JsonlSink {
            path: path.to_string(),
            target,
            buf: Vec::with_capacity(1024),
            lines: 0,
        })
    }

    /// Writes one record as one line and flushes it.
    pub fn write_record<T: Serialize>(&mut self, rec: &T) -> Result<(), OutputError> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, rec).map_err(|source| OutputError::Serialize {
            path: self.path.clone(),
            source,
        })?;
        self.buf.push(b'\n');
        let r = match &mut self.target {
            Target::File(f) => f.write_all(&self.buf).and_then(|()| f.flush()),
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|()| out.flush())
            }
        };
        r.map_err(|source| OutputError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.lines += 1;
        Ok(())
    }

    /// Closes and reopens the path: after logrotate renamed the file, new
    /// lines go to a new file at the configured path. On failure the old
    /// handle is kept, so nothing is lost.
    pub fn reopen(&mut self) -> Result<(), OutputError> {
        if let Target::File(_) = self.target {
            self.target = Target::File(open_append(&self.path)?);
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

/// The identity of one finding.
type FindingKey = (&'static str, IpAddr, Option<IpAddr>);

/// One line per finding: repeats within the window are suppressed.
///
/// Bounded by `max_entries`: at the bound, findings whose window has passed
/// (relative to the newest alert) are forgotten first, then the least
/// recently raised; each forgotten entry is counted in [`Suppressor::evicted`].
pub struct Suppressor {
    window_us: i64,
    max_entries: usize,
    /// Finding -> time it was last written.
    last: HashMap<FindingKey, Timestamp>,
    /// (time last written, finding): the eviction order, oldest first.
    order: BTreeSet<(Timestamp, FindingKey)>,
    suppressed: u64,
    evicted: u64,
}

impl Suppressor {
    /// A suppressor with a window in seconds of capture time.
    pub fn new(window_secs: u64, max_entries: usize) -> Suppressor {
        Suppressor {
            window_us: i64::try_from(window_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            max_entries: max_entries.max(1),
            last: HashMap::new(),
            order: BTreeSet::new(),
            suppressed: 0,
            evicted: 0,
        }
    }

    /// True when the alert should be written (and remembers it); false when
    /// it repeats a finding written less than the window ago.
    pub fn admit(&mut self, alert: &Alert) -> bool {
        let key = alert.identity();
        let now = alert.timestamp;
        if let Some(&prev) = self.last.get(&key) {
            if now.micros().saturating_sub(prev.micros()) < self.window_us {
                self.suppressed += 1;
                return false;
            }
            self.order.remove(&(prev, key));
        } else if self.last.len() >= self.max_entries {
            self.make_room(now);
        }
        self.last.insert(key, now);
        self.order.insert((now, key));
        true
    }

    fn make_room(&mut self, now: Timestamp) {
        // Expired entries go first; if none, the least recently written one.
        while self.last.len() >= self.max_entries {
            let Some(&(t, key)) = self.order.iter().next() else {
                break;
            };
            let expired = now.micros().saturating_sub(t.micros()) >= self.window_us;
            self.order.remove(&(t, key));
            self.last.remove(&key);
            self.evicted += 1;
            if !expired {
                break;
            }
        }
    }

    /// Alerts suppressed as repeats.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Findings forgotten to stay within `max_entries`.
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
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use tapsentry_types::{AlertBody, Category, Mitre};

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
                category: Category::Tor,
                signature: sig,
                severity: 2,
                description: "d".into(),
                mitre: Mitre {
                    tactic: "TA0011",
                    technique: "T1090.003",
                },
            },
            evidence: BTreeMap::new(),
            community_id: None,
            geo: None,
            response: None,
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
            let text = std::fs::read_to_string(&p).unwrap();
            assert_eq!(text.lines().count() as i64, i + 1);
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
        assert_eq!(s.lines_written(), 3);
    }

    #[test]
    fn alert_has_the_contract_fields() {
        let v = serde_json::to_value(alert(1_700_000_000, "tor.exit_outbound", "10.0.0.1", None))
            .unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["src_ip"], "10.0.0.1");
        assert!(v.get("dest_ip").is_none());
        assert!(v.get("src_port").is_none());
        assert_eq!(v["dest_port"], 443);
        assert_eq!(v["alert"]["category"], "tor");
        assert_eq!(v["alert"]["signature"], "tor.exit_outbound");
        assert_eq!(v["alert"]["severity"], 2);
        assert_eq!(v["alert"]["mitre"]["tactic"], "TA0011");
        assert_eq!(v["alert"]["mitre"]["technique"], "T1090.003");
        assert!(v.get("geo").is_none());
        assert!(v.get("community_id").is_none());
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
    }

    #[test]
    fn open_error_names_the_path() {
        let e = JsonlSink::open("/nonexistent-dir/x.jsonl").err().unwrap();
        assert!(e.to_string().contains("/nonexistent-dir/x.jsonl"));
        assert!(JsonlSink::open("-").is_ok());
    }

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        let mut s = Suppressor::new(3600, 100);
        assert!(s.admit(&alert(0, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(!s.admit(&alert(3599, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(s.admit(&alert(100, "a", "10.0.0.1", Some("2.2.2.2"))));
        assert!(s.admit(&alert(100, "b", "10.0.0.1", Some("1.1.1.1"))));
        assert!(s.admit(&alert(100, "a", "10.0.0.1", None)));
        // The window counts from the last line written, in capture time.
        assert!(s.admit(&alert(3600, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert!(!s.admit(&alert(7000, "a", "10.0.0.1", Some("1.1.1.1"))));
        assert_eq!(s.suppressed(), 2);
    }

    #[test]
    fn memory_is_bounded() {
        let mut s = Suppressor::new(3600, 100);
        for i in 0..10_000u32 {
            let src = IpAddr::from(i.to_be_bytes());
            let mut a = alert(i64::from(i), "a", "10.0.0.1", None);
            a.src_ip = src;
            assert!(s.admit(&a));
            assert!(s.len() <= 100);
        }
        assert_eq!(s.evicted(), 9_900);
        // Eviction prefers expired entries: after the window everything
        // remembered is expired, and a new finding evicts one of them.
        let mut late = alert(100_000, "z", "10.0.0.9", None);
        late.src_ip = "10.9.9.9".parse().unwrap();
        assert!(s.admit(&late));
        assert!(s.len() <= 100);
    }
}
