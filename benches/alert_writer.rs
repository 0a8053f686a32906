//! Alert log cost: alerts (and bytes) per second through the JSON-lines
//! alert writer, `tapsentry_output::JsonlSink::write_record`.
//!
//! Why: the `alert-out` thread writes every alert as one line and flushes
//! it, so a burst of alerts (a scan, a flood of Tor connections) is paid
//! for here, one `write` system call per alert. This bench says how large
//! a burst the writer absorbs per second and how much of that is JSON
//! serialisation rather than the system call.
//!
//! Input: the alerts the detectors raise on a three-hour testkit office
//! with one attack of every kind (`Attack::examples`: exfiltration, DNS
//! tunnel, staging, Tor both ways, port scans, ping sweep, spambot, GRE,
//! brute force, outside login, slow exfiltration), made once outside the
//! timed loop. They carry their real evidence, ATT&CK mapping and block
//! commands. The office's outside addresses are documentation ranges that
//! no GeoIP database knows, so each alert with an outside party gets a
//! GeoIP block (country, city, ASN, organisation) for it, as a production
//! alert with the databases configured would. One iteration writes every
//! alert once.
//!
//! * `file`: a file in a temporary directory (truncated, untimed, whenever
//!   it passes 64 MiB). The write lands in the page cache: no `fsync`.
//! * `dev_null`: the same sink on `/dev/null`: serialisation plus the
//!   system call, no file system.
//! * `serialize_only`: `serde_json::to_writer` into a reused buffer, the
//!   part of the cost that is not I/O.
//!
//! The suppression window in front of the writer is not part of this.
//!
//! `cargo bench --bench alert_writer`
#![allow(clippy::disallowed_methods, reason = "a bench measures wall time")]
#![allow(
    clippy::expect_used,
    reason = "fixture setup: a missing or broken fixture stops the bench with its message"
)]

use std::fs::OpenOptions;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapsentry_detect::{DetectConfig, Worker};
use tapsentry_intel::{IntelSnapshot, TorExitList};
use tapsentry_output::JsonlSink;
use tapsentry_testkit::office::{Attack, Office, OfficeSpec};
use tapsentry_types::{Alert, GeoInfo};

mod common;

/// The temporary alert log is emptied (untimed) past this size.
const MAX_LOG_BYTES: u64 = 64 << 20;

/// Every alert the detectors raise on the office with every attack.
fn office_alerts() -> Vec<Alert> {
    let spec = OfficeSpec {
        attacks: Attack::examples(&Office::standard()),
        ..OfficeSpec::default()
    };
    let replay = common::replay_office(&spec);
    // The exits `Attack::examples` uses.
    let (tor, _report) = TorExitList::parse("203.0.113.50\n203.0.113.51\n", "bench");
    let intel = Arc::new(IntelSnapshot {
        tor,
        ..IntelSnapshot::default()
    });
    let mut worker = Worker::new(&DetectConfig::default(), replay.home.clone(), intel);
    let mut alerts = Vec::new();
    for b in &replay.batches {
        worker.process(b, &mut alerts);
    }
    for a in &mut alerts {
        let outside = [Some(a.src_ip), a.dest_ip]
            .into_iter()
            .flatten()
            .find(|ip| !replay.home.contains(*ip));
        if let Some(ip) = outside {
            a.geo.get_or_insert_with(|| geo_for(ip));
        }
    }
    alerts
}

/// A GeoIP block of the size a City plus ASN lookup gives.
fn geo_for(ip: IpAddr) -> GeoInfo {
    GeoInfo {
        ip: Some(ip),
        country: Some("SE".into()),
        city: Some("Linköping".into()),
        asn: Some(29518),
        as_org: Some("Bredband2 AB".into()),
    }
}

fn bench_alert_writer(c: &mut Criterion) {
    let alerts = office_alerts();
    assert!(
        alerts.len() >= 10,
        "the attack office raises alerts of every kind ({} raised)",
        alerts.len()
    );
    let mut line = Vec::new();
    let mut bytes = 0u64;
    for a in &alerts {
        line.clear();
        serde_json::to_writer(&mut line, a).expect("an alert serialises");
        bytes += line.len() as u64 + 1;
    }
    let mut signatures: Vec<&str> = alerts.iter().map(|a| a.alert.signature).collect();
    signatures.sort_unstable();
    signatures.dedup();
    eprintln!(
        "alert_writer fixture: {} alerts, {} bytes of JSON lines ({} per line on average), \
         {} with GeoIP; signatures: {}",
        alerts.len(),
        bytes,
        bytes / alerts.len() as u64,
        alerts.iter().filter(|a| a.geo.is_some()).count(),
        signatures.join(" ")
    );

    let mut g = c.benchmark_group("alert_writer");
    g.throughput(Throughput::ElementsAndBytes {
        elements: alerts.len() as u64,
        bytes,
    });

    let dir = tempfile::tempdir().expect("create a temporary directory for the alert log");
    let path = dir.path().join("alerts.jsonl");
    let path_str = path.to_str().expect("the temporary path is UTF-8");
    let mut sink = JsonlSink::open_as(path_str, "alert log").expect("open the alert log");
    let truncate = OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the alert log for truncation");
    g.bench_function(BenchmarkId::from_parameter("file"), |b| {
        let mut written = 0u64;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if written > MAX_LOG_BYTES {
                    truncate.set_len(0).expect("truncate the alert log");
                    written = 0;
                }
                let t0 = Instant::now();
                for a in &alerts {
                    sink.write_record(black_box(a))
                        .expect("write to the temporary alert log");
                }
                total += t0.elapsed();
                written += bytes;
            }
            total
        })
    });

    let mut null = JsonlSink::open_as("/dev/null", "alert log").expect("open /dev/null");
    g.bench_function(BenchmarkId::from_parameter("dev_null"), |b| {
        b.iter(|| {
            for a in &alerts {
                null.write_record(black_box(a)).expect("write to /dev/null");
            }
        })
    });

    g.bench_function(BenchmarkId::from_parameter("serialize_only"), |b| {
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            for a in &alerts {
                buf.clear();
                serde_json::to_writer(&mut buf, black_box(a)).expect("an alert serialises");
                buf.push(b'\n');
                black_box(&buf);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_alert_writer);
criterion_main!(benches);
