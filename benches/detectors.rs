//! Detector cost per input: flow records and DNS events per second through
//! each detector's [`Detector`] hooks, in steady state after learning.
//!
//! Why: the detectors run on the worker threads after the sweep, and a
//! slow one holds back every alert of its shard. This bench says which
//! detector costs what on ordinary traffic, so a change to one can be
//! weighed on its own.
//!
//! Input: a three-hour testkit office (workstations browsing, a mail server
//! delivering outside, a public web and SSH server, SMB shares, an hourly
//! backup upload, router GRE/ESP tunnels, a monitoring host probing every inside
//! host each minute, a recursive resolver) plus the background noise every
//! public network sees: slow outside TCP and UDP scanners walking ports of
//! known servers (SYN-ACK on open ports, RST or ICMP unreachable on closed
//! ones) and of unused addresses (no answer). It is replayed once, outside
//! the timed loop, through decode and the flow table into one-second
//! batches as one worker sees them (see `common/mod.rs`).
//!
//! Each measurement starts from a fresh detector fed the first hour
//! untimed (the 30-minute learning period and half an hour of judged
//! traffic, so baselines, mail history, known protocol pairs and login
//! habits are in place), then times the remaining two hours: every batch's
//! DNS events, flow records and tick, in the order `Worker::process` uses.
//! The Tor list holds 2,000 addresses (none of them the office's peers), so
//! the Tor detector does its lookups rather than return at an empty list.
//! Elements are flow records as routed (a record about two inside hosts
//! counts twice) plus DNS events; each detector gets the records its
//! registered perspective admits, as in the worker. `all_detectors` is
//! the whole `Worker` with the default configuration, for comparison.
//!
//! `cargo bench --bench detectors`

#![allow(
    clippy::expect_used,
    reason = "fixture setup: a missing or broken fixture stops the bench with its message"
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tapsentry_detect::{
    Batch, DetectConfig, DetectCx, Detector, HomeNet, Perspective, View, Worker, DETECTORS,
};
use tapsentry_intel::{IntelSnapshot, TorExitList};
use tapsentry_testkit::office::{Attack, Office, OfficeSpec, ScanKind};
use tapsentry_types::{Alert, FlowState};

mod common;

/// Untimed warm-up: learning (1800 s by default) plus half an hour.
const WARM_UP_SECS: u64 = 3600;

/// The standard office with the background noise of a public network:
/// two slow outside scanners, one over TCP and one over UDP, probing known
/// servers (open ports answer, closed ones refuse) and unused addresses
/// (no answer) through the whole capture.
fn office_spec() -> OfficeSpec {
    let office = Office::standard();
    let unused = |i: u8| IpAddr::V4(Ipv4Addr::new(10, 20, 1, i));
    OfficeSpec {
        attacks: vec![
            Attack::PortScan {
                at_secs: 300.0,
                scanner: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 250)),
                targets: vec![office.web_server, unused(200), office.mail_server],
                ports: (1..=100).collect(),
                proto: 6,
                interval_secs: 30.0,
                kind: ScanKind::Syn,
            },
            Attack::PortScan {
                at_secs: 600.0,
                scanner: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 251)),
                targets: vec![office.resolver, office.domain_controller, unused(201)],
                ports: vec![53, 69, 123, 137, 161, 500, 1900, 5353, 11211, 27015],
                proto: 17,
                interval_secs: 300.0,
                kind: ScanKind::Udp,
            },
        ],
        ..OfficeSpec::default()
    }
}

/// A Tor exit list of `n` addresses in 100.64.0.0/10, which the office
/// never talks to.
fn tor_list(n: u32) -> TorExitList {
    let text: String = (0..n)
        .map(|i| format!("{}\n", Ipv4Addr::from(0x6440_0000 | (i * 7 + 1))))
        .collect();
    let (list, _report) = TorExitList::parse(&text, "bench");
    assert_eq!(
        list.len(),
        n as usize,
        "every generated exit address parses"
    );
    list
}

/// Runs `d` over `batches` as `Worker::process` does: per batch, DNS
/// events, then flow records, then one tick.
fn feed(
    d: &mut dyn Detector,
    perspective: Perspective,
    batches: &[Batch],
    home: &HomeNet,
    intel: &IntelSnapshot,
    alerts: &mut Vec<Alert>,
) {
    for b in batches {
        let mut cx = DetectCx::new(home, intel, alerts).at(b.now, b.capture_start);
        for ev in &b.dns {
            d.on_dns(ev, &mut cx);
        }
        // As `Worker::process` does: only the records the detector judges.
        for (host, rec) in &b.flows {
            if perspective.admits(View::of(*host, rec, home)) {
                d.on_flow(*host, rec, &mut cx);
            }
        }
        d.on_tick(b.now, &mut cx);
    }
}

/// What the measured part holds, printed once so a reader can see that
/// every detector's input is there.
fn describe(replay: &common::Replay, measured: &[Batch]) {
    let mut states = [0u64; 5];
    let mut first = 0u64;
    for (host, rec) in measured.iter().flat_map(|b| &b.flows) {
        if !rec.is_first_report() || *host != rec.client {
            continue;
        }
        first += 1;
        let i = match rec.state {
            FlowState::Attempt => 0,
            FlowState::Rejected => 1,
            FlowState::Established => 2,
            FlowState::ClosedFin => 3,
            FlowState::ClosedRst => 4,
        };
        states[i] += 1;
    }
    let dns: usize = measured.iter().map(|b| b.dns.len()).sum();
    eprintln!(
        "detectors fixture: {} packets, {} batches; measured part: {} batches, {} elements \
         ({} DNS events); first records from the client's side: {} (attempt {}, rejected {}, \
         established {}, closed_fin {}, closed_rst {})",
        replay.packets,
        replay.batches.len(),
        measured.len(),
        common::Replay::elements(measured),
        dns,
        first,
        states[0],
        states[1],
        states[2],
        states[3],
        states[4],
    );
}

fn bench_detectors(c: &mut Criterion) {
    let replay = common::replay_office(&office_spec());
    let (warm, measured) = replay.split_at_secs(WARM_UP_SECS);
    assert!(
        !warm.is_empty() && !measured.is_empty(),
        "the office capture covers the warm-up and a measured part"
    );
    describe(&replay, measured);
    let home = replay.home.clone();
    let intel = Arc::new(IntelSnapshot {
        tor: tor_list(2000),
        ..IntelSnapshot::default()
    });
    let cfg = DetectConfig::default();
    let elements = common::Replay::elements(measured);

    let mut g = c.benchmark_group("detectors");
    // One iteration replays two hours of office: tens of milliseconds.
    g.sample_size(10);
    g.throughput(Throughput::Elements(elements));
    for entry in DETECTORS {
        let (name, perspective) = (entry.name, entry.perspective);
        let warmed = || {
            let mut d = entry.build(&cfg);
            let mut alerts = Vec::new();
            feed(d.as_mut(), perspective, warm, &home, &intel, &mut alerts);
            alerts.clear();
            (d, alerts)
        };
        // Alerts of one pass, for the fixture line (not timed).
        let (mut d, mut alerts) = warmed();
        feed(
            d.as_mut(),
            perspective,
            measured,
            &home,
            &intel,
            &mut alerts,
        );
        eprintln!("  {name}: {} alerts in the measured part", alerts.len());

        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                warmed,
                |(mut d, mut alerts)| {
                    feed(
                        d.as_mut(),
                        perspective,
                        black_box(measured),
                        &home,
                        &intel,
                        &mut alerts,
                    );
                    (d, alerts)
                },
                BatchSize::PerIteration,
            )
        });
    }

    g.bench_function(BenchmarkId::from_parameter("all_detectors"), |b| {
        b.iter_batched(
            || {
                let mut w = Worker::new(&cfg, home.clone(), intel.clone());
                let mut alerts = Vec::new();
                for batch in warm {
                    w.process(batch, &mut alerts);
                }
                alerts.clear();
                (w, alerts)
            },
            |(mut w, mut alerts)| {
                for batch in black_box(measured) {
                    w.process(batch, &mut alerts);
                }
                (w, alerts)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_detectors);
criterion_main!(benches);
