//! Decode cost per packet and per byte for representative frames, plus a
//! DNS summary. Frames are built once, outside the timed loop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use tapsentry_decode::{decode, dns};
use tapsentry_testkit::DnsMessage;
use tapsentry_types::{Frame, LinkType, Timestamp};

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn frames() -> Vec<(&'static str, LinkType, Vec<u8>)> {
    let mut out = Vec::new();

    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv4([10, 0, 0, 1], [93, 184, 216, 34], 64)
        .tcp(40000, 443, 1, 65535)
        .ack(1)
        .write(&mut v, &[])
        .unwrap();
    out.push(("eth_ipv4_tcp_ack", LinkType::ETHERNET, v));

    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv4([10, 0, 0, 1], [93, 184, 216, 34], 64)
        .tcp(40000, 443, 1, 65535)
        .ack(1)
        .psh()
        .write(&mut v, &[0x17; 1448])
        .unwrap();
    out.push(("eth_ipv4_tcp_1448", LinkType::ETHERNET, v));

    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .double_vlan(100.try_into().unwrap(), 200.try_into().unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5000, 6000)
        .write(&mut v, &[0; 100])
        .unwrap();
    out.push(("eth_qinq_ipv4_udp", LinkType::ETHERNET, v));

    let mut v = Vec::new();
    PacketBuilder::ethernet2(A, B)
        .ipv6(
            [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x26, 0x20, 0, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            64,
        )
        .udp(53000, 53)
        .write(&mut v, &dns_query())
        .unwrap();
    out.push(("eth_ipv6_udp_dns", LinkType::ETHERNET, v));

    let mut v = vec![0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    v[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut v, &[0; 56])
        .unwrap();
    out.push(("sll2_ipv4_icmp", LinkType::LINUX_SLL2, v));

    out
}

fn dns_query() -> Vec<u8> {
    DnsMessage::query(0x1234, "www.example.com", 1).encode()
}

/// Mixed case, so the summary's lower-casing is part of the cost.
fn dns_response() -> Vec<u8> {
    DnsMessage::query(0x1234, "www.Example.COM", 1)
        .response(0)
        .answer(1, 3600, &[93, 184, 216, 34])
        .encode()
}

fn bench_decode(c: &mut Criterion) {
    let owned = frames();
    let frames: Vec<(&str, Frame<'_>)> = owned
        .iter()
        .map(|(name, link, data)| {
            let f = Frame {
                ts: Timestamp::ZERO,
                wire_len: data.len() as u32,
                link: *link,
                data,
            };
            (*name, f)
        })
        .collect();
    let mut g = c.benchmark_group("decode_packets");
    g.throughput(Throughput::Elements(1));
    for (name, f) in &frames {
        g.bench_function(*name, |b| b.iter(|| decode(black_box(f))));
    }
    g.finish();

    let mut g = c.benchmark_group("decode_bytes");
    for (name, f) in &frames {
        g.throughput(Throughput::Bytes(f.data.len() as u64));
        g.bench_function(*name, |b| b.iter(|| decode(black_box(f))));
    }
    g.finish();
}

fn bench_dns(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_parse");
    g.throughput(Throughput::Elements(1));
    let q = dns_query();
    let r = dns_response();
    g.bench_function("query", |b| b.iter(|| dns::parse_message(black_box(&q))));
    g.bench_function("response", |b| b.iter(|| dns::parse_message(black_box(&r))));
    g.finish();
}

/// etherparse alone on the TCP ACK frame, for comparison: why the Ethernet
/// header is walked by hand and only `from_ip` is called.
fn bench_baseline(c: &mut Criterion) {
    let frames = frames();
    let data = &frames[0].2;
    let mut g = c.benchmark_group("etherparse_baseline");
    g.throughput(Throughput::Elements(1));
    g.bench_function("lax_from_ethernet", |b| {
        b.iter(|| etherparse::LaxSlicedPacket::from_ethernet(black_box(data)).is_ok())
    });
    g.bench_function("lax_from_ip", |b| {
        b.iter(|| etherparse::LaxSlicedPacket::from_ip(black_box(&data[14..])).is_ok())
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_dns, bench_baseline);
criterion_main!(benches);
