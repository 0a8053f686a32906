//! Flow-table ingest throughput: packets per second into the sharded table,
//! for a working set of N flows (each packet updates an existing flow), and
//! for a flood of new flows at the cap (eviction path).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapsentry_flow::{FlowConfig, FlowTable, PROBE_GROUP};
use tapsentry_testkit::PacketMetaBuilder;
use tapsentry_types::{PacketMeta, TcpFlags, Timestamp};

fn packet(i: u32, ts_us: i64) -> PacketMeta<'static> {
    let client = Ipv4Addr::from(0x0a00_0000 | (i & 0xffff));
    PacketMetaBuilder::tcp(
        client,
        1024 + (i >> 16) as u16,
        [93, 184, 216, 34],
        443,
        TcpFlags::ACK,
    )
    .ip_len(1500)
    .at_micros(ts_us)
    .build()
}

/// Updates of existing flows three ways: [`FlowTable::ingest`] per packet
/// (a lock round trip each), one session per 512-packet batch, and the
/// pipeline's way, a session that probes groups of packets ahead. The gap
/// between the last two grows with the table: it is cache misses overlapped.
fn working_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_ingest_update");
    for flows in [1_000u32, 100_000, 1_000_000] {
        let table = FlowTable::new(FlowConfig {
            max_flows: flows as usize * 2,
            ..FlowConfig::default()
        });
        // Visit the flows in a scattered order, as interleaved traffic does.
        let pkts: Vec<PacketMeta<'static>> = (0..flows)
            .map(|i| packet(i.wrapping_mul(2_654_435_761) % flows, 1_000_000))
            .collect();
        for p in &pkts {
            table.ingest(p);
        }
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_with_input(BenchmarkId::new("table", flows), &pkts, |b, pkts| {
            b.iter(|| {
                for p in pkts {
                    black_box(table.ingest(black_box(p)));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("session", flows), &pkts, |b, pkts| {
            let mut session = table.session();
            b.iter(|| {
                for batch in pkts.chunks(512) {
                    for p in batch {
                        black_box(session.ingest(black_box(p)));
                    }
                    session.release();
                }
            })
        });
        g.bench_with_input(
            BenchmarkId::new("session_probed", flows),
            &pkts,
            |b, pkts| {
                let mut session = table.session();
                b.iter(|| {
                    for batch in pkts.chunks(512) {
                        for group in batch.chunks(PROBE_GROUP) {
                            let probes = session.probe(group.iter().map(Some));
                            for (p, probe) in group.iter().zip(probes.iter().flatten()) {
                                black_box(session.ingest_probed(black_box(p), probe));
                            }
                        }
                        session.release();
                    }
                })
            },
        );
    }
    g.finish();
}

fn new_flow_flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_ingest_flood_at_cap");
    let cap = 100_000usize;
    let batch = 50_000u32;
    g.throughput(Throughput::Elements(u64::from(batch)));
    g.bench_function(BenchmarkId::from_parameter(cap), |b| {
        let table = FlowTable::new(FlowConfig {
            max_flows: cap,
            evict_min_idle_secs: 1,
            ..FlowConfig::default()
        });
        let mut next = 0u32;
        let mut ts = 0i64;
        let mut out = Vec::new();
        let mut session = table.session();
        b.iter(|| {
            for _ in 0..batch {
                next = next.wrapping_add(1);
                ts += 100;
                black_box(session.ingest(&packet(next, ts)));
            }
            session.release();
            out.clear();
            table.sweep(Timestamp::from_micros(ts), &mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, working_set, new_flow_flood);
criterion_main!(benches);
