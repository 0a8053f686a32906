//! The flow table from outside: records, counters and caps over built
//! packets, and properties over arbitrary ones.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]
#![allow(
    clippy::too_many_arguments,
    reason = "pkt() takes a packet's fields one to one"
)]

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use tapsentry_flow::{
    FlowConfig, FlowTable, FragmentTracker, IngestOutcome, ENTRY_BYTES, PROBE_GROUP,
};
use tapsentry_testkit::PacketMetaBuilder;
use tapsentry_types::{
    EndReason, FlowRecord, FlowState, Fragment, IcmpError, PacketMeta, QuotedTuple, RecordKind,
    TcpFlags, Timestamp,
};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn pkt(
    ts_s: f64,
    src: IpAddr,
    sp: u16,
    dst: IpAddr,
    dp: u16,
    proto: u8,
    flags: u8,
    len: u32,
) -> PacketMeta<'static> {
    PacketMetaBuilder::new(src, sp, dst, dp, proto)
        .flags(flags)
        .ip_len(len)
        .at_secs(ts_s)
        .build()
}

const SYN: u8 = TcpFlags::SYN;
const SA: u8 = TcpFlags::SYN | TcpFlags::ACK;
const A: u8 = TcpFlags::ACK;
const RA: u8 = TcpFlags::RST | TcpFlags::ACK;
const FA: u8 = TcpFlags::FIN | TcpFlags::ACK;

#[test]
fn handshake_both_directions_one_flow() {
    let t = FlowTable::new(FlowConfig::default());
    t.ingest(&pkt(1.0, ip(1), 40000, ip(2), 22, 6, SYN, 60));
    t.ingest(&pkt(1.1, ip(2), 22, ip(1), 40000, 6, SA, 60));
    t.ingest(&pkt(1.2, ip(1), 40000, ip(2), 22, 6, A, 1500));
    t.ingest(&pkt(1.3, ip(1), 40000, ip(2), 22, 6, FA, 52));
    t.ingest(&pkt(1.4, ip(2), 22, ip(1), 40000, 6, FA, 52));
    assert_eq!(t.live_flows(), 1);
    let mut out = Vec::new();
    t.drain(&mut out);
    let r = out[0];
    assert_eq!(
        (r.client, r.client_port, r.server, r.server_port),
        (ip(1), 40000, ip(2), 22)
    );
    assert_eq!(r.to_server.packets, 3);
    assert_eq!(r.to_server.bytes, 60 + 1500 + 52);
    assert_eq!(r.to_client.packets, 2);
    assert_eq!(r.state, FlowState::ClosedFin);
    assert!(r.responder_answered);
    assert_eq!(r.client_flags.letters(), "FSA");
    assert_eq!(r.kind, RecordKind::End(EndReason::Shutdown));
    assert_eq!(t.live_flows(), 0);
}

#[test]
fn rst_to_syn_is_rejected_and_silence_is_attempt() {
    let t = FlowTable::new(FlowConfig::default());
    t.ingest(&pkt(1.0, ip(9), 5555, ip(2), 23, 6, SYN, 40));
    t.ingest(&pkt(1.0, ip(2), 23, ip(9), 5555, 6, RA, 40));
    t.ingest(&pkt(1.0, ip(9), 5556, ip(2), 24, 6, SYN, 40));
    let mut out = Vec::new();
    t.drain(&mut out);
    let by_port = |p: u16| out.iter().find(|r| r.server_port == p).unwrap();
    assert_eq!(by_port(23).state, FlowState::Rejected);
    assert!(by_port(23).responder_answered);
    assert_eq!(by_port(24).state, FlowState::Attempt);
    assert!(!by_port(24).responder_answered);
}

#[test]
fn synack_first_makes_receiver_the_initiator() {
    let t = FlowTable::new(FlowConfig::default());
    t.ingest(&pkt(1.0, ip(2), 443, ip(1), 50000, 6, SA, 60));
    let mut out = Vec::new();
    t.drain(&mut out);
    assert_eq!((out[0].client, out[0].server_port), (ip(1), 443));
    assert_eq!(out[0].state, FlowState::Established);
}

#[test]
fn icmp_port_unreachable_rejects_udp_probe() {
    let t = FlowTable::new(FlowConfig::default());
    t.ingest(&pkt(1.0, ip(9), 40000, ip(2), 161, 17, 0, 40));
    let mut err = pkt(1.01, ip(2), 3, ip(9), 3, 1, 0, 68);
    err.icmp_error = Some((
        IcmpError::PortUnreachable,
        QuotedTuple {
            src: ip(9),
            dst: ip(2),
            proto: 17,
            src_port: 40000,
            dst_port: 161,
        },
    ));
    t.ingest(&err);
    let mut out = Vec::new();
    t.drain(&mut out);
    let udp = out.iter().find(|r| r.proto == 17).unwrap();
    assert_eq!(udp.state, FlowState::Rejected);
    assert_eq!(t.counters().icmp_rejections, 1);
}

#[test]
fn timeouts_follow_protocol_and_state() {
    let t = FlowTable::new(FlowConfig::default());
    // UDP unanswered: 30 s. TCP established: 600 s.
    t.ingest(&pkt(0.0, ip(1), 1000, ip(2), 53, 17, 0, 70));
    t.ingest(&pkt(0.0, ip(1), 40000, ip(2), 80, 6, SYN, 60));
    t.ingest(&pkt(0.1, ip(2), 80, ip(1), 40000, 6, SA, 60));
    let mut out = Vec::new();
    t.sweep(Timestamp::from_micros(29_900_000), &mut out);
    assert!(out.is_empty());
    t.sweep(Timestamp::from_micros(30_000_000), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].proto, 17);
    assert_eq!(out[0].kind, RecordKind::End(EndReason::Timeout));
    out.clear();
    t.sweep(Timestamp::from_micros(599_000_000), &mut out);
    assert!(out.iter().all(|r| r.kind == RecordKind::Interim));
    out.clear();
    t.sweep(Timestamp::from_micros(600_100_000), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, RecordKind::End(EndReason::Timeout));
    assert_eq!(t.live_flows(), 0);
    assert_eq!(t.counters().expired, 2);
}

#[test]
fn interim_records_carry_deltas() {
    let cfg = FlowConfig {
        interim_interval_secs: 10,
        ..FlowConfig::default()
    };
    let t = FlowTable::new(cfg);
    t.ingest(&pkt(0.0, ip(1), 40000, ip(2), 443, 6, SYN, 60));
    t.ingest(&pkt(0.0, ip(2), 443, ip(1), 40000, 6, SA, 60));
    for i in 0..100 {
        t.ingest(&pkt(
            f64::from(i) * 0.2,
            ip(1),
            40000,
            ip(2),
            443,
            6,
            A,
            1000,
        ));
    }
    let mut out = Vec::new();
    t.sweep(Timestamp::from_micros(10_000_000), &mut out);
    assert_eq!(out.len(), 1);
    let first = out[0];
    assert_eq!(first.kind, RecordKind::Interim);
    assert!(first.is_first_report());
    let sent_so_far = first.to_server.bytes;
    for i in 0..10 {
        t.ingest(&pkt(
            20.0 + f64::from(i),
            ip(1),
            40000,
            ip(2),
            443,
            6,
            A,
            1000,
        ));
    }
    out.clear();
    t.sweep(Timestamp::from_micros(30_000_000), &mut out);
    assert_eq!(out[0].new_bytes_to_server(), 10_000);
    assert_eq!(out[0].reported_to_server.bytes, sent_so_far);
    // No new traffic: no interim record.
    out.clear();
    t.sweep(Timestamp::from_micros(45_000_000), &mut out);
    assert!(out.is_empty());
}

#[test]
fn cap_evicts_oldest_idle_then_refuses() {
    let cfg = FlowConfig {
        max_flows: 128,
        evict_min_idle_secs: 5,
        ..FlowConfig::default()
    };
    let t = FlowTable::new(cfg);
    for i in 0..128u16 {
        t.ingest(&pkt(
            f64::from(i) * 0.01,
            ip(1),
            1000 + i,
            ip(2),
            53,
            17,
            0,
            60,
        ));
    }
    assert_eq!(t.live_flows(), 128);
    // Everything is fresh: the next new flow is refused.
    let o = t.ingest(&pkt(2.0, ip(1), 9999, ip(2), 53, 17, 0, 60));
    assert_eq!(o, IngestOutcome::Refused);
    // Ten seconds later all are idle: eviction of the oldest makes room.
    let o = t.ingest(&pkt(10.0, ip(1), 9998, ip(2), 53, 17, 0, 60));
    assert_eq!(o, IngestOutcome::CreatedAfterEviction);
    assert!(t.live_flows() <= 128);
    let c = t.counters();
    assert_eq!(c.refused, 1);
    assert_eq!(c.evicted, 16); // batch = max_flows / 8
    let mut out = Vec::new();
    t.sweep(Timestamp::from_micros(10_000_000), &mut out);
    let evicted: Vec<_> = out
        .iter()
        .filter(|r| r.kind == RecordKind::End(EndReason::Evicted))
        .collect();
    assert_eq!(evicted.len(), 16);
    // The oldest went: exactly the first sixteen flows created.
    let mut ports: Vec<u16> = evicted.iter().map(|r| r.client_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, (1000..1016).collect::<Vec<u16>>());
}

#[test]
fn flood_of_unique_tuples_never_exceeds_cap() {
    let cfg = FlowConfig {
        max_flows: 1000,
        evict_min_idle_secs: 1,
        ..FlowConfig::default()
    };
    let t = FlowTable::new(cfg);
    let mut out = Vec::new();
    for i in 0..50_000u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        t.ingest(&pkt(f64::from(i) * 0.001, src, 1, ip(2), 80, 6, SYN, 40));
        assert!(t.live_flows() <= 1000);
        if t.needs_sweep() {
            t.sweep(Timestamp::from_micros(i64::from(i) * 1000), &mut out);
        }
    }
    t.drain(&mut out);
    let c = t.counters();
    // Every flow created was reported exactly once, nothing lost.
    assert_eq!(c.created, c.expired + c.evicted + c.flushed);
    assert_eq!(out.len() as u64, c.created);
    assert_eq!(c.created + c.refused, 50_000);
}

#[test]
fn a_flood_at_the_cap_scans_the_table_rarely() {
    // 1,000 new tuples a second of capture time for 60 s into a table of
    // 1,000: after the first eviction, flows turn idle enough only a few at
    // a time. Each scan is O(table), so there must be about one a second,
    // not one per new flow.
    let cfg = FlowConfig {
        max_flows: 1000,
        evict_min_idle_secs: 5,
        ..FlowConfig::default()
    };
    let t = FlowTable::new(cfg);
    let mut out = Vec::new();
    for i in 0..60_000u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        t.ingest(&pkt(f64::from(i) * 0.001, src, 1, ip(2), 80, 6, SYN, 40));
        if t.needs_sweep() {
            t.sweep(Timestamp::from_micros(i64::from(i) * 1000), &mut out);
        }
    }
    let c = t.counters();
    assert!(c.evicted > 5_000, "{c:?}");
    assert!(c.eviction_scans <= 2 * 60 + c.evicted / 125 + 10, "{c:?}");
}

#[test]
fn entry_size_is_stated_and_small() {
    // The performance target is at most 300 bytes a live flow, table
    // overhead included (load factor 7/8 and doubling slack).
    const { assert!(ENTRY_BYTES * 8 / 7 < 200) };
    println!("flow entry: {ENTRY_BYTES} bytes");
}

#[test]
fn fragments_attributed_to_their_datagram() {
    let t = FlowTable::new(FlowConfig::default());
    let mut fr = FragmentTracker::new(16);
    let mut first = pkt(1.0, ip(1), 5353, ip(2), 53, 17, 0, 1500);
    first.fragment = Fragment::First { id: 77 };
    let mut later = pkt(1.0, ip(1), 0, ip(2), 0, 17, 0, 600);
    later.fragment = Fragment::NonFirst { id: 77 };
    let mut orphan = pkt(1.0, ip(1), 0, ip(2), 0, 17, 0, 300);
    orphan.fragment = Fragment::NonFirst { id: 99 };
    for m in [&mut first, &mut later, &mut orphan] {
        fr.resolve(m);
        t.ingest(m);
    }
    let mut out = Vec::new();
    t.drain(&mut out);
    let main = out.iter().find(|r| r.server_port == 53).unwrap();
    assert_eq!(main.to_server.bytes, 2100);
    assert_eq!(main.to_server.packets, 2);
    let port0 = out.iter().find(|r| r.server_port == 0).unwrap();
    assert_eq!(port0.to_server.bytes, 300);
    assert_eq!(fr.unattributed(), 1);
}

#[test]
fn fragment_tracker_is_bounded() {
    let mut fr = FragmentTracker::new(8);
    for id in 0..100u32 {
        let mut m = pkt(1.0, ip(1), 1, ip(2), 2, 17, 0, 100);
        m.fragment = Fragment::First { id };
        fr.resolve(&mut m);
        assert!(fr.len() <= 8);
    }
    assert_eq!(fr.not_remembered(), 92);
}

proptest! {
    #[test]
    fn bytes_in_equal_bytes_out(pkts in proptest::collection::vec((0u8..4, 0u16..4, 0u8..4, 0u16..4, any::<bool>(), 1u32..9000, 0u32..200), 1..300)) {
        let t = FlowTable::new(FlowConfig { max_flows: 10_000, ..FlowConfig::default() });
        let mut total = 0u64;
        let mut ts = 0.0;
        for (s, sp, d, dp, tcp, len, gap) in pkts {
            ts += f64::from(gap) * 0.5;
            total += u64::from(len);
            t.ingest(&pkt(ts, ip(s), sp, ip(d), dp, if tcp { 6 } else { 17 }, if tcp { A } else { 0 }, len));
        }
        let mut out = Vec::new();
        t.sweep(Timestamp::from_micros((ts * 1e6) as i64), &mut out);
        t.drain(&mut out);
        let ended: u64 = out.iter().filter(|r| matches!(r.kind, RecordKind::End(_)))
            .map(|r| r.to_server.bytes + r.to_client.bytes).sum();
        prop_assert_eq!(ended, total);
    }
}

/// Packets for the session properties: TCP with any flags, UDP, and ICMP
/// port unreachables quoting a UDP probe, between six hosts on four ports,
/// `gap` tenths of a second apart.
fn mixed_packet(
    (s, sp, d, dp, kind, flags, len, gap): (u8, u16, u8, u16, u8, u8, u32, u32),
    ts: &mut f64,
) -> PacketMeta<'static> {
    *ts += f64::from(gap) * 0.1;
    match kind {
        0 => pkt(*ts, ip(s), sp, ip(d), dp, 6, flags, len),
        1 => pkt(*ts, ip(s), sp, ip(d), dp, 17, 0, len),
        _ => {
            let mut err = pkt(*ts, ip(d), 3, ip(s), 3, 1, 0, 68);
            err.icmp_error = Some((
                IcmpError::PortUnreachable,
                QuotedTuple {
                    src: ip(s),
                    dst: ip(d),
                    proto: 17,
                    src_port: sp,
                    dst_port: dp,
                },
            ));
            err
        }
    }
}

type MixedSpec = (u8, u16, u8, u16, u8, u8, u32, u32);

fn mixed_specs() -> impl Strategy<Value = Vec<MixedSpec>> {
    proptest::collection::vec(
        (
            1u8..7,
            0u16..4,
            1u8..7,
            0u16..4,
            0u8..3,
            any::<u8>(),
            1u32..9000,
            0u32..40,
        ),
        1..400,
    )
}

/// Sweeps `t` whenever capture time crosses a whole second, as the
/// pipeline does, and at the end drains it.
fn sweep_if_due(t: &FlowTable, next: &mut i64, now: Timestamp, out: &mut Vec<FlowRecord>) -> bool {
    if now.micros() >= *next {
        t.sweep(now, out);
        *next = (now.micros() / 1_000_000 + 1) * 1_000_000;
        return true;
    }
    false
}

proptest! {
    /// A session that probes groups of packets ahead, holds its shards across
    /// them and lets go for each sweep ends with the same records and
    /// counters as packets counted one at a time, whatever the traffic, with
    /// the cap small enough to evict and refuse.
    #[test]
    fn a_session_counts_like_single_packets(specs in mixed_specs(), cap in 4usize..48) {
        let cfg = FlowConfig { max_flows: cap, evict_min_idle_secs: 1, interim_interval_secs: 2, ..FlowConfig::default() };
        let mut ts = 0.0;
        let pkts: Vec<PacketMeta<'static>> = specs.into_iter().map(|p| mixed_packet(p, &mut ts)).collect();

        let single = FlowTable::new(cfg.clone());
        let mut single_out = Vec::new();
        let mut next = 0i64;
        for m in &pkts {
            single.ingest(m);
            sweep_if_due(&single, &mut next, m.ts, &mut single_out);
        }
        single.drain(&mut single_out);

        let grouped = FlowTable::new(cfg);
        let mut grouped_out = Vec::new();
        let mut next = 0i64;
        let mut session = grouped.session();
        for group in pkts.chunks(PROBE_GROUP) {
            let probes = session.probe(group.iter().map(Some));
            for (m, probe) in group.iter().zip(probes) {
                let probe = probe.expect("every packet has a probe");
                session.ingest_probed(m, &probe);
                if m.ts.micros() >= next {
                    session.release();
                    sweep_if_due(&grouped, &mut next, m.ts, &mut grouped_out);
                }
            }
        }
        drop(session);
        grouped.drain(&mut grouped_out);

        prop_assert_eq!(grouped_out, single_out);
        prop_assert_eq!(grouped.counters(), single.counters());
    }
}

/// Live capture sweeps on its own thread while the ingest thread holds
/// shards for a batch at a time: neither waits for the other for ever, and
/// every byte reaches a record.
#[test]
fn a_session_and_a_concurrent_sweeper_share_the_table() {
    let table = FlowTable::new(FlowConfig {
        max_flows: 2_000,
        ..FlowConfig::default()
    });
    let batches = 400u32;
    let per_batch = 256u32;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = std::sync::atomic::AtomicBool::new(false);
    let (ingested, swept) = std::thread::scope(|scope| {
        let sweeper = scope.spawn(|| {
            let mut out = Vec::new();
            let mut sweeps = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                table.sweep(Timestamp::from_micros(1_000_000 + sweeps), &mut out);
                sweeps += 1;
                started.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            (out, sweeps)
        });
        let mut session = table.session();
        let mut bytes = 0u64;
        for b in 0..batches {
            for i in 0..per_batch {
                let n = b * per_batch + i;
                let m = pkt(
                    1.0,
                    ip((n % 200) as u8),
                    1000 + (n % 7) as u16,
                    ip(250),
                    80,
                    6,
                    A,
                    100,
                );
                session.ingest(&m);
                bytes += 100;
            }
            session.release();
        }
        drop(session);
        // On a loaded machine the sweeper may not have run yet: the test is
        // about sharing the table, so let it sweep at least once.
        while !started.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (bytes, sweeper.join().expect("sweeper"))
    });
    let (mut out, sweeps) = swept;
    assert!(sweeps > 0);
    table.drain(&mut out);
    let recorded: u64 = out
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::End(_)))
        .map(|r| r.to_server.bytes + r.to_client.bytes)
        .sum();
    assert_eq!(recorded, ingested);
}
