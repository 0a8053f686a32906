//! Decode cost on whole captures: packets and captured bytes per second
//! through `tapsentry_decode::decode`, and DNS messages per second through
//! `dns::parse_message` / `dns::parse_tcp_segment`.
//!
//! Why: decode runs on the capture thread for every packet, so its cost
//! per packet bounds the sensor's packet rate. `crates/decode/benches`
//! times single hand-built frames; this bench runs over the bundled
//! captures in `pcaps/` (real ones from `pcaps/linktypes/`, see their
//! provenance in `pcaps/README.md`, and the generated `demo.pcap` office
//! mix), so the mix of link types, header stacks, packet sizes and decode
//! errors (ARP and other non-IP frames) is what the sensor meets. Frames
//! are read once, outside the timed loop; one iteration decodes every frame
//! of one capture.
//!
//! Bytes are captured bytes (what decode can look at), not wire bytes.
//!
//! `cargo bench --bench decode`

#![allow(
    clippy::expect_used,
    reason = "fixture setup: a missing or broken fixture stops the bench with its message"
)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_decode::{decode, dns};
use tapsentry_types::{Frame, LinkType, Timestamp};

/// Benchmark name and the files (under `pcaps/`) read as one capture.
const CAPTURES: &[(&str, &[&str])] = &[
    // Ethernet II, IPv4, TCP: one HTTP GET (real, zeek).
    ("eth_ipv4_tcp_http", &["linktypes/ethernet-http-get.pcap"]),
    // Ten minutes of a generated office: DNS, HTTPS, SMTP, SSH over IPv4.
    ("eth_ipv4_office_demo", &["demo.pcap"]),
    // 802.1Q tag (VLAN 0), HTTP (real, zeek).
    (
        "eth_vlan_ipv4_http",
        &["linktypes/vlan-8021q-vid0-http.pcap"],
    ),
    // Three stacked 802.1Q tags, HTTP (real, zeek).
    (
        "eth_qinqinq_ipv4_http",
        &["linktypes/vlan-qinqinq-http.pcap"],
    ),
    // MPLS inside 802.1Q, HTTP (real, zeek).
    ("eth_vlan_mpls_ipv4_http", &["linktypes/mpls-in-vlan.pcap"]),
    // IPv6 TCP, HTTP over BSD NULL AF_INET6=30 (real, suricata-verify).
    (
        "null_ipv6_tcp_http",
        &["linktypes/bsd-null-ipv6-af30-http.pcap"],
    ),
    // IPv6 with hop-by-hop, routing and fragment headers, UDP DNS (real, zeek).
    (
        "eth_ipv6_ext_hdrs_dns",
        &[
            "linktypes/ipv6-hbh-routing0-dns.pcap",
            "linktypes/ipv6-fragments-dns.pcap",
        ],
    ),
    // Linux cooked v2, HTTP (real, suricata-verify).
    ("sll2_ipv4_http", &["linktypes/linux-sll2-http.pcap"]),
    // PPPoE discovery and session, LCP/IPCP/ICMPv6 (real, zeek).
    ("eth_pppoe_mixed", &["linktypes/pppoe-session.pcap"]),
];

/// Files whose DNS messages make the DNS benchmarks.
const DNS_SOURCES: &[(&str, &[&str])] = &[
    // Generated office: queries to and responses from the inside resolver.
    ("office_demo", &["demo.pcap"]),
    // Real single-message captures (tcpdump, zeek): IPv4 and IPv6 queries
    // and responses over raw IP and Ethernet links.
    (
        "real_captures",
        &[
            "linktypes/raw-linktype-raw-101-ipv4-dns.pcap",
            "linktypes/raw-linktype-raw-101-ipv6-dns.pcap",
            "linktypes/raw-linktype-ipv4-228-dns.pcap",
            "linktypes/raw-linktype-ipv6-229-dns.pcap",
            "linktypes/ipv6-hbh-routing0-dns.pcap",
            "linktypes/ipv6-fragments-dns.pcap",
        ],
    ),
];

/// A frame copied out of the capture reader's buffer.
struct OwnedFrame {
    ts: Timestamp,
    wire_len: u32,
    link: LinkType,
    data: Vec<u8>,
}

impl OwnedFrame {
    fn frame(&self) -> Frame<'_> {
        Frame {
            ts: self.ts,
            wire_len: self.wire_len,
            link: self.link,
            data: &self.data,
        }
    }
}

fn read_frames(files: &[&str]) -> Vec<OwnedFrame> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let paths: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let mut src = FileSource::open(&paths).expect("open the bundled captures in pcaps/");
    let mut out = Vec::new();
    loop {
        match src.next_frame().expect("read the bundled captures") {
            Next::Frame(f) => out.push(OwnedFrame {
                ts: f.ts,
                wire_len: f.wire_len,
                link: f.link,
                data: f.data.to_vec(),
            }),
            Next::Idle => continue,
            Next::End => break,
        }
    }
    assert!(
        src.file_errors().is_empty(),
        "bundled captures read to the end: {:?}",
        src.file_errors()
    );
    assert!(!out.is_empty(), "{files:?} hold frames");
    out
}

/// A DNS message as the pipeline finds it: the transport payload of a
/// port-53 packet, and whether it came over TCP (length-prefixed).
struct DnsPayload {
    tcp: bool,
    bytes: Vec<u8>,
}

fn dns_payloads(frames: &[OwnedFrame]) -> Vec<DnsPayload> {
    frames
        .iter()
        .filter_map(|f| {
            let frame = f.frame();
            let m = decode(&frame).ok()?;
            (m.is_dns_port() && !m.payload.is_empty()).then(|| DnsPayload {
                tcp: m.proto == 6,
                bytes: m.payload.to_vec(),
            })
        })
        .collect()
}

fn parse_dns(p: &DnsPayload) -> Result<dns::DnsSummary, dns::DnsError> {
    if p.tcp {
        dns::parse_tcp_segment(&p.bytes)
    } else {
        dns::parse_message(&p.bytes)
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_capture");
    for (name, files) in CAPTURES {
        let owned = read_frames(files);
        let frames: Vec<Frame<'_>> = owned.iter().map(OwnedFrame::frame).collect();
        let bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
        let ok = frames.iter().filter(|f| decode(f).is_ok()).count();
        eprintln!(
            "decode fixture {name}: {} frames, {bytes} captured bytes, {ok} decode to IP",
            frames.len()
        );
        g.throughput(Throughput::ElementsAndBytes {
            elements: frames.len() as u64,
            bytes,
        });
        g.bench_with_input(BenchmarkId::from_parameter(name), &frames, |b, frames| {
            b.iter(|| {
                for f in frames {
                    let _ = black_box(decode(black_box(f)));
                }
            })
        });
    }
    g.finish();
}

fn bench_dns(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_parse_capture");
    for (name, files) in DNS_SOURCES {
        let msgs = dns_payloads(&read_frames(files));
        let ok = msgs.iter().filter(|p| parse_dns(p).is_ok()).count();
        let bytes: u64 = msgs.iter().map(|p| p.bytes.len() as u64).sum();
        eprintln!(
            "dns fixture {name}: {} port-53 payloads, {bytes} bytes, {ok} parse",
            msgs.len()
        );
        assert!(ok > 0, "{name} holds DNS messages");
        g.throughput(Throughput::ElementsAndBytes {
            elements: msgs.len() as u64,
            bytes,
        });
        g.bench_with_input(BenchmarkId::from_parameter(name), &msgs, |b, msgs| {
            b.iter(|| {
                for p in msgs {
                    let _ = black_box(parse_dns(black_box(p)));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_dns);
criterion_main!(benches);
