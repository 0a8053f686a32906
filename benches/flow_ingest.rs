//! Flow-table ingest throughput: packets per second into the dashmap table,
//! for a working set of N flows (each packet updates an existing flow), and
//! for a flood of new flows at the cap (eviction path).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapsentry_flow::{FlowConfig, FlowTable};
use tapsentry_types::{Fragment, PacketMeta, TcpFlags, Timestamp};

fn packet(i: u32, ts_us: i64) -> PacketMeta<'static> {
    PacketMeta {
        ts: Timestamp::from_micros(ts_us),
        vlan: 0,
        src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i & 0xffff))),
        dst: IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
        proto: 6,
        src_port: 1024 + (i >> 16) as u16,
        dst_port: 443,
        ip_len: 1500,
        tcp_flags: TcpFlags(TcpFlags::ACK),
        fragment: Fragment::None,
        icmp_error: None,
        payload: &[],
    }
}

fn working_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_ingest_update");
    for flows in [1_000u32, 100_000, 1_000_000] {
        let table = FlowTable::new(FlowConfig {
            max_flows: flows as usize * 2,
            ..FlowConfig::default()
        });
        let pkts: Vec<PacketMeta<'static>> = (0..flows).map(|i| packet(i, 1_000_000)).collect();
        for p in &pkts {
            table.ingest(p);
        }
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &pkts, |b, pkts| {
            b.iter(|| {
                for p in pkts {
                    black_box(table.ingest(black_box(p)));
                }
            })
        });
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
        b.iter(|| {
            for _ in 0..batch {
                next = next.wrapping_add(1);
                ts += 100;
                black_box(table.ingest(&packet(next, ts)));
            }
            out.clear();
            table.sweep(Timestamp::from_micros(ts), &mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, working_set, new_flow_flood);
criterion_main!(benches);
