//! The metrics stage (thread `metrics`, with `[metrics] listen` set): the
//! stats record as of each scrape, in the Prometheus text format (0.0.4),
//! on `GET /metrics`.
//!
//! Every number of the stats log is a metric: the record is serialised and
//! walked, so a counter added to [`StatsRecord`] shows up here without a
//! second list to keep. Names are `tapsentry_` and the record's key path
//! (`capture.packets` is `tapsentry_capture_packets_total`); reason and
//! category maps become one family with a label; the latency summaries
//! become Prometheus summaries in seconds.
//!
//! A small `std::net` responder rather than an HTTP server crate: it
//! answers one fixed document, and its bounds are easiest to state when
//! they are all here. One request is served at a time; a request may be at
//! most [`MAX_REQUEST_BYTES`] and must arrive within [`REQUEST_DEADLINE`],
//! the answer must be taken within [`WRITE_TIMEOUT`]; past a bound the
//! connection is closed. A scrape copies the shared counters under their
//! locks (as the stats thread does) and never waits on the capture path.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;
use tapsentry_flow::FlowTable;
use tapsentry_telemetry::wall;

use super::stats::{SharedStats, StatsRecord};

/// The largest request read; a longer one is answered 431 and closed.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time for a client to send its whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time for a client to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle thread looks at its stop queue.
const POLL: Duration = Duration::from_millis(100);

/// Key paths of the stats record whose numbers go up and down.
const GAUGES: [&str; 3] = [
    "flows.active",
    "inventory.hosts",
    "intel.tor_exit_addresses",
];

/// Maps of the record whose keys are a label value of one family.
const LABELLED: [(&str, &str); 4] = [
    ("capture.decode_errors", "reason"),
    ("capture.dns_errors", "reason"),
    ("drops.queues", "reason"),
    ("alerts.by_category", "category"),
];

/// Key paths that are not exported: text, sums of a labelled family
/// (Prometheus adds them up itself), and what is exported another way.
const SKIPPED: [&str; 5] = [
    "timestamp",
    "event_type",
    "capture.decode_errors_total",
    "capture_time",
    "uptime_secs",
];

/// Help text of the main families; the others name their stats-log key.
const HELP: [(&str, &str); 12] = [
    (
        "capture.packets",
        "Frames read from the interface or files.",
    ),
    (
        "capture.wire_bytes",
        "Bytes on the wire of the frames read.",
    ),
    ("capture.decode_errors", "Frames not decoded, by reason."),
    ("flows.active", "Flows in the flow table now."),
    ("flows.created", "Flows created."),
    ("flows.refused", "New flows refused at flow.max_flows."),
    (
        "drops.kernel",
        "Packets dropped by the kernel or the interface.",
    ),
    (
        "drops.queues",
        "Items dropped between pipeline stages (live), by reason.",
    ),
    ("alerts.written", "Alerts written to the alert log."),
    (
        "alerts.suppressed",
        "Repeats of a finding within the suppression window, not written.",
    ),
    ("alerts.by_category", "Alerts written, by category."),
    (
        "intel.tor_exit_addresses",
        "Addresses in the Tor exit list in use (0: Tor detection matches nothing).",
    ),
];

/// The stats record in the Prometheus text format.
pub fn render(record: &StatsRecord) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let v = serde_json::to_value(record).unwrap_or(Value::Null);
    gauge(
        &mut out,
        "tapsentry_uptime_seconds",
        "Seconds since the pipeline started.",
        record.uptime_secs,
    );
    gauge(
        &mut out,
        "tapsentry_capture_time_last_seconds",
        "Capture time of the latest packet, Unix seconds.",
        record.capture_time.last.micros() as f64 / 1e6,
    );
    walk(&mut out, &v, &mut Vec::new());
    out
}

fn walk<'a>(out: &mut String, v: &'a Value, path: &mut Vec<&'a str>) {
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        path.push(k);
        let key = path.join(".");
        if SKIPPED.contains(&key.as_str()) {
        } else if let Some((_, label)) = LABELLED.iter().find(|(p, _)| *p == key) {
            labelled(out, &key, label, child);
        } else if key.starts_with("latency.") && child.is_object() {
            summary(out, k, child);
        } else {
            match child {
                Value::Object(_) => walk(out, child, path),
                Value::Number(n) => number(out, &key, n.as_f64().unwrap_or(0.0)),
                Value::Bool(b) => number(out, &key, f64::from(u8::from(*b))),
                // Text and absent values (`kernel` in a replay) have no number.
                _ => {}
            }
        }
        path.pop();
    }
}

/// `capture.packets` → `tapsentry_capture_packets`.
fn base_name(key: &str) -> String {
    let mut name = String::from("tapsentry_");
    name.extend(
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    name
}

fn help_for(key: &str) -> String {
    HELP.iter().find(|(k, _)| *k == key).map_or_else(
        || format!("{key} of the stats log."),
        |(_, h)| (*h).to_string(),
    )
}

/// One sample, a counter (`_total`) unless the key is a gauge.
fn number(out: &mut String, key: &str, value: f64) {
    let base = base_name(key);
    if GAUGES.contains(&key) {
        gauge(out, &base, &help_for(key), value);
    } else {
        let name = format!("{}_total", base.trim_end_matches("_total"));
        let _ = writeln!(out, "# HELP {name} {}", help_for(key));
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", fmt_value(value));
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {}", fmt_value(value));
}

/// A counter family with one sample per key of the map (label values are
/// the record's own reason and category names: `[a-z_]`, nothing to escape,
/// but escaped all the same).
fn labelled(out: &mut String, key: &str, label: &str, map: &Value) {
    let name = format!("{}_total", base_name(key).trim_end_matches("_total"));
    let _ = writeln!(out, "# HELP {name} {}", help_for(key));
    let _ = writeln!(out, "# TYPE {name} counter");
    if let Value::Object(m) = map {
        for (k, v) in m {
            let value = v.as_f64().unwrap_or(0.0);
            let _ = writeln!(
                out,
                "{name}{{{label}=\"{}\"}} {}",
                escape_label(k),
                fmt_value(value)
            );
        }
    }
}

/// A latency summary of the record (`p50_ns`, ..., `count`) as a
/// Prometheus summary in seconds, and its maximum as a gauge.
fn summary(out: &mut String, stage: &str, v: &Value) {
    let ns = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let name = format!("tapsentry_latency_{stage}_seconds");
    let _ = writeln!(
        out,
        "# HELP {name} Latency of {stage} (see the stats log's latency)."
    );
    let _ = writeln!(out, "# TYPE {name} summary");
    for (q, k) in [("0.5", "p50_ns"), ("0.99", "p99_ns"), ("0.999", "p999_ns")] {
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {}", fmt_value(ns(k) / 1e9));
    }
    let _ = writeln!(out, "{name}_count {}", fmt_value(ns("count")));
    gauge(
        out,
        &format!("tapsentry_latency_{stage}_max_seconds"),
        &format!("Largest latency of {stage} sampled."),
        ns("max_ns") / 1e9,
    );
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The stage: accepts scrapes until its stop queue disconnects.
pub(crate) struct MetricsStage {
    pub listener: TcpListener,
    pub shared: Arc<SharedStats>,
    pub table: Arc<FlowTable>,
}

impl MetricsStage {
    pub fn run(self, stop: &Receiver<()>) {
        // Non-blocking accept, so the stop queue is seen within POLL.
        if let Err(e) = self.listener.set_nonblocking(true) {
            eprintln!("tapsentry: error: metrics: {e}; the endpoint is off");
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = self.serve(stream);
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // Out of descriptors and the like: wait a poll and retry.
                Err(e) => eprintln!("tapsentry: warning: metrics: accept: {e}"),
            }
            match stop.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let mut send_body = true;
        let (status, body) = match read_request(&mut stream)? {
            Request::Get { head, path } if path == "/metrics" || path.starts_with("/metrics?") => {
                // HEAD: the headers GET would have, the length included.
                send_body = !head;
                (
                    "200 OK",
                    render(&self.shared.record(&self.table.counters())),
                )
            }
            Request::Get { .. } => ("404 Not Found", "only /metrics is served\n".into()),
            Request::OtherMethod => ("405 Method Not Allowed", "GET only\n".into()),
            Request::TooLarge => ("431 Request Header Fields Too Large", String::new()),
            Request::Bad => ("400 Bad Request", String::new()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        if send_body {
            stream.write_all(body.as_bytes())?;
        }
        stream.flush()
    }
}

enum Request {
    Get { head: bool, path: String },
    OtherMethod,
    TooLarge,
    Bad,
}

/// Reads the request head (up to the blank line) within the deadline and
/// the size bound; the body, if any, is never read.
fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    let deadline = wall::instant() + REQUEST_DEADLINE;
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    loop {
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n")
            || buf[..len].windows(2).any(|w| w == b"\n\n")
        {
            break;
        }
        if len == buf.len() {
            return Ok(Request::TooLarge);
        }
        let left = deadline.saturating_duration_since(wall::instant());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    Ok(match (words.next(), words.next()) {
        (Some(m @ ("GET" | "HEAD")), Some(path)) => Request::Get {
            head: m == "HEAD",
            path: path.to_string(),
        },
        (Some(_), Some(_)) => Request::OtherMethod,
        _ => Request::Bad,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stats::lock;
    use crossbeam_channel::bounded;
    use tapsentry_flow::FlowConfig;
    use tapsentry_telemetry::DropReason;

    fn record() -> StatsRecord {
        let shared = SharedStats::new();
        {
            let mut c = lock(&shared.capture);
            c.packets = 7;
            c.wire_bytes = 900;
            c.decode_errors.bump(0);
            c.packet_time.record_ns(1_500);
        }
        lock(&shared.writer).by_category.insert("tor", 3);
        shared.drops.add(DropReason::AlertQueueFull, 4);
        let table = FlowTable::new(FlowConfig::default());
        shared.record(&table.counters())
    }

    /// Every number of the stats record is a sample, under the name the
    /// module's rules give it.
    #[test]
    fn every_number_of_the_record_is_exported() {
        let r = record();
        let text = render(&r);
        for line in [
            "tapsentry_capture_packets_total 7",
            "tapsentry_capture_wire_bytes_total 900",
            "tapsentry_alerts_by_category_total{category=\"tor\"} 3",
            "tapsentry_alerts_by_category_total{category=\"spambot\"} 0",
            "tapsentry_drops_queues_total{reason=\"alert_queue_full\"} 4",
            "tapsentry_flows_active 0",
            "tapsentry_intel_tor_exit_addresses 0",
            "# TYPE tapsentry_latency_packet_processing_seconds summary",
            "tapsentry_latency_packet_processing_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            text.contains("tapsentry_capture_decode_errors_total{reason="),
            "{text}"
        );
        // Every sample has its HELP and TYPE, and no name is declared twice.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = l.split_whitespace().nth(2).unwrap();
            assert!(declared.insert(name.to_string()), "{name} declared twice");
        }
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name.trim_end_matches("_count");
            assert!(declared.contains(family), "{name} has no TYPE");
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family} has no HELP"
            );
        }
        // Every other number of the record is its own family.
        fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        leaves(c, p, out);
                    }
                }
                Value::Number(_) | Value::Bool(_) => out.push(path),
                _ => {}
            }
        }
        let mut all = Vec::new();
        leaves(&serde_json::to_value(&r).unwrap(), String::new(), &mut all);
        let special = |p: &str| {
            SKIPPED.contains(&p)
                || p.starts_with("latency.")
                || LABELLED
                    .iter()
                    .any(|(l, _)| p.starts_with(&format!("{l}.")))
        };
        let plain: Vec<_> = all.iter().filter(|p| !special(p)).collect();
        assert!(plain.len() > 30, "{plain:?}");
        for p in plain {
            let base = base_name(p);
            let counter = format!("{}_total", base.trim_end_matches("_total"));
            assert!(
                declared.contains(&base) || declared.contains(&counter),
                "{p} is not exported"
            );
        }
    }

    fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The responder answers /metrics, refuses other paths and methods and
    /// oversize requests, closes a silent client after the deadline, and
    /// stops when its queue disconnects.
    #[test]
    fn the_responder_serves_refuses_and_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(SharedStats::new());
        lock(&shared.capture).packets = 11;
        let stage = MetricsStage {
            listener,
            shared,
            table: Arc::new(FlowTable::new(FlowConfig::default())),
        };
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let h = std::thread::spawn(move || stage.run(&stop_rx));

        // A silent client is dropped after the deadline, and the next one
        // is served after it.
        let silent = TcpStream::connect(addr).unwrap();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(
            ok.contains("\ntapsentry_capture_packets_total 11\n"),
            "{ok}"
        );
        drop(silent);
        let nf = get(addr, b"GET / HTTP/1.0\r\n\r\n");
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let head = get(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.ends_with("\r\n\r\n") && !head.contains("Content-Length: 0\r\n"),
            "{head}"
        );
        let post = get(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_BYTES, b'a');
        let big = get(addr, &huge);
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");

        drop(stop_tx);
        h.join().unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening after stop"
        );
    }
}
