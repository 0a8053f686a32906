//! Every packet of every shared capture goes through `decode` (nothing may
//! panic); captures with IP traffic must mostly decode; a few tuples are
//! checked against what tshark reports for the same files.
//!
//! The reader below is test-only (pcap-parser over the whole file in
//! memory); the sensor reads captures through `tapsentry-capture`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::{LegacyPcapSlice, PcapBlockOwned, PcapNGSlice};
use tapsentry_decode::{decode, dns, DecodeError};
use tapsentry_types::{Fragment, Frame, LinkType, PacketMeta, Timestamp};

const PCAPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/pcaps");

/// One packet as stored: link type, original length, captured bytes.
struct Packet<'a> {
    link: u32,
    wire_len: u32,
    data: &'a [u8],
}

/// Reads every packet it can from a pcap or pcapng image; stops quietly at
/// the first damaged record (the malformed set is full of those).
fn packets(bytes: &[u8]) -> Vec<Packet<'_>> {
    let mut out = Vec::new();
    if let Ok(pcap) = LegacyPcapSlice::from_slice(bytes) {
        // The upper bits of the link type field carry FCS information.
        let link = (pcap.header.network.0 as u32) & 0xffff;
        for block in pcap {
            match block {
                Ok(PcapBlockOwned::Legacy(b)) => out.push(Packet {
                    link,
                    wire_len: b.origlen,
                    data: b.data,
                }),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    } else if let Ok(ng) = PcapNGSlice::from_slice(bytes) {
        let mut links: Vec<u32> = Vec::new();
        for block in ng {
            match block {
                Ok(PcapBlockOwned::NG(Block::SectionHeader(_))) => links.clear(),
                Ok(PcapBlockOwned::NG(Block::InterfaceDescription(idb))) => {
                    links.push(idb.linktype.0 as u32);
                }
                Ok(PcapBlockOwned::NG(Block::EnhancedPacket(epb))) => {
                    // An unknown interface id is data too: give it a link
                    // type no decoder supports rather than dropping it.
                    let link = links.get(epb.if_id as usize).copied().unwrap_or(u32::MAX);
                    out.push(Packet {
                        link,
                        wire_len: epb.origlen,
                        data: epb.data,
                    });
                }
                Ok(PcapBlockOwned::NG(Block::SimplePacket(spb))) => out.push(Packet {
                    link: links.first().copied().unwrap_or(u32::MAX),
                    wire_len: spb.origlen,
                    data: spb.data,
                }),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    out
}

fn frame<'a>(p: &Packet<'a>) -> Frame<'a> {
    Frame {
        ts: Timestamp::ZERO,
        wire_len: p.wire_len,
        link: LinkType(p.link),
        data: p.data,
    }
}

#[derive(Default, Debug)]
struct Tally {
    packets: usize,
    ok: usize,
    errors: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn not_ip(&self) -> usize {
        self.errors.get("not_ip").copied().unwrap_or(0)
    }
}

/// Decodes every packet (and DNS-parses every DNS-port payload).
fn run(bytes: &[u8]) -> Tally {
    let mut t = Tally::default();
    for p in packets(bytes) {
        t.packets += 1;
        match decode(&frame(&p)) {
            Ok(m) => {
                t.ok += 1;
                if m.is_dns_port() && !m.payload.is_empty() {
                    let _ = if m.proto == 6 {
                        dns::parse_tcp_segment(m.payload)
                    } else {
                        dns::parse_message(m.payload)
                    };
                }
            }
            Err(e) => *t.errors.entry(e.reason()).or_default() += 1,
        }
    }
    t
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(PCAPS).join(dir))
        .expect("shared/pcaps beside the checkout")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            // Compressed captures would need a gzip dev-dependency.
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng" | "cap")
            )
        })
        .collect();
    v.sort();
    v
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(PCAPS).join(rel)).unwrap()
}

fn first_ok(rel: &str) -> Vec<(String, u32)> {
    // Owned summary (tuple string, ip_len) of every packet that decodes.
    let bytes = read(rel);
    packets(&bytes)
        .iter()
        .filter_map(|p| decode(&frame(p)).ok().map(|m| (describe(&m), m.ip_len)))
        .collect()
}

fn describe(m: &PacketMeta<'_>) -> String {
    format!(
        "{} {}:{} > {}:{} vlan {}",
        m.proto, m.src, m.src_port, m.dst, m.dst_port, m.vlan
    )
}

#[test]
fn every_capture_decodes_without_panic() {
    let mut total = 0;
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    for dir in ["linktypes", "malformed"] {
        let list = files(dir);
        assert!(list.len() > 20, "{dir}: {} files", list.len());
        for path in list {
            let bytes = std::fs::read(&path).unwrap();
            let t = run(&bytes);
            // Visible with --nocapture: what each capture decodes to.
            eprintln!(
                "{:<60} {:>5} packets {:>5} ok {:?}",
                path.file_name().unwrap().to_string_lossy(),
                t.packets,
                t.ok,
                t.errors
            );
            total += t.packets;
            for (r, n) in t.errors {
                *reasons.entry(r).or_default() += n;
            }
        }
    }
    assert!(total > 1000, "only {total} packets read");
    for r in reasons.keys() {
        assert!(DecodeError::ALL_REASONS.contains(r));
    }
}

/// Captures whose traffic is IP: at least 90% of the IP-carrying packets
/// decode, and at most 10% of all packets fail for any reason but `not_ip`.
/// (pppoe-session.pcap is mostly PPPoE discovery and LCP: tshark counts 25
/// IP packets among 65, so the share is taken over IP packets.)
#[test]
fn ip_captures_mostly_decode() {
    // (file, IP packets according to `tshark -Y "ip or ipv6"`)
    let cases = [
        ("ethernet-http-get.pcap", 14),
        ("linux-sll2-http.pcap", 5),
        ("raw-linktype-ipv6-229-dns.pcap", 1),
        ("bsd-null-ipv6-af30-http.pcap", 14),
        ("bsd-null-ipv6-af28-icmpv6.pcap", 6),
        ("linux-sll-tcp-fastopen.pcap", 16),
        ("vlan-qinqinq-http.pcap", 14),
        ("mpls-in-vlan.pcap", 3),
        ("pppoe-session.pcap", 25),
        ("ppp-fragmented-syn.pcap", 3),
        ("bsd-null-ipv4-http.pcap", 0),
        ("linux-sll2-tls.pcap", 0),
        ("qinq-8021ad.pcap", 0),
        ("vlan-stacked-3-tags-icmp.pcap", 0),
        ("pppoe-over-qinq-tls.pcap", 0),
        ("raw-linktype-raw-101-ipv4-dns.pcap", 0),
        ("raw-linktype-ipv4-228-dns.pcap", 0),
        ("ipv6-routing-header.pcap", 0),
        ("ipv4-bigtcp-totlen0.pcap", 0),
        ("ipv6-bigtcp-hbh.pcap", 0),
        ("mixed-linktypes-merged.pcapng", 0),
    ];
    for (name, ip_packets) in cases {
        let t = run(&read(&format!("linktypes/{name}")));
        assert!(t.packets > 0, "{name}: no packets read");
        let ip = if ip_packets == 0 {
            t.packets - t.not_ip()
        } else {
            ip_packets
        };
        assert!(ip > 0, "{name}: {t:?}");
        assert!(t.ok * 10 >= ip * 9, "{name}: {t:?}, {ip} IP packets");
        let failed = t.packets - t.ok - t.not_ip();
        assert!(failed * 10 <= t.packets, "{name}: {t:?}");
    }
}

// Expected values below come from tshark on the same files, e.g.
// `tshark -r F -T fields -e vlan.id -e ip.src -e ip.dst -e tcp.srcport -e tcp.dstport -e ip.len`.

#[test]
fn tshark_ethernet_and_vlan_stack() {
    let eth = first_ok("linktypes/ethernet-http-get.pcap");
    assert_eq!(eth.len(), 14);
    assert_eq!(
        eth[0],
        (
            "6 141.142.228.5:59856 > 192.150.187.43:80 vlan 0".into(),
            64
        )
    );
    assert_eq!(
        eth[1],
        (
            "6 192.150.187.43:80 > 141.142.228.5:59856 vlan 0".into(),
            60
        )
    );
    // The same conversation under three tags (30 outer-most, then 20, 10).
    let q = first_ok("linktypes/vlan-qinqinq-http.pcap");
    assert_eq!(q.len(), 14);
    assert_eq!(
        q[0],
        (
            "6 141.142.228.5:59856 > 192.150.187.43:80 vlan 30".into(),
            64
        )
    );
}

#[test]
fn tshark_cooked_and_loopback() {
    let s = first_ok("linktypes/linux-sll2-http.pcap");
    assert_eq!(
        s[0],
        ("6 192.168.1.253:56478 > 192.168.1.21:80 vlan 0".into(), 60)
    );
    let n = first_ok("linktypes/bsd-null-ipv6-af30-http.pcap");
    assert_eq!(n[0], ("6 ::1:55717 > ::1:8000 vlan 0".into(), 84));
    // ICMPv6 router renumbering (138) is one-way: dst_port is the code.
    let n = first_ok("linktypes/bsd-null-ipv6-af28-icmpv6.pcap");
    assert_eq!(n.len(), 6);
    assert!(n[0]
        .0
        .starts_with("58 2001:db8:1:0:a00:27ff:fef4:4dcf:138 > "));
    assert!(n[0].0.ends_with(":0 vlan 0"));
    assert_eq!(n[0].1, 112);
}

#[test]
fn tshark_raw_ipv6_dns() {
    let bytes = read("linktypes/raw-linktype-ipv6-229-dns.pcap");
    let pk = packets(&bytes);
    let m = decode(&frame(&pk[0])).unwrap();
    assert_eq!(m.src, "2001:db8::1".parse::<IpAddr>().unwrap());
    assert_eq!(m.dst, "2620:fe::9".parse::<IpAddr>().unwrap());
    assert_eq!(
        (m.proto, m.src_port, m.dst_port, m.ip_len),
        (17, 12345, 53, 77)
    );
    let d = dns::parse_message(m.payload).unwrap();
    assert_eq!(d.qname.as_bytes(), b"example.com");
    assert_eq!((d.id, d.qtype, d.is_response), (0x1234, 1, false));
}

#[test]
fn tshark_mpls_in_vlan() {
    let v = first_ok("linktypes/mpls-in-vlan.pcap");
    let vlans: Vec<&str> = v
        .iter()
        .map(|(d, _)| d.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(vlans, ["3199", "0", "3399"]);
    assert_eq!(
        v[0],
        ("6 65.65.65.65:19244 > 65.65.65.65:80 vlan 3199".into(), 257)
    );
    assert_eq!(v[1].1, 1500);
}

#[test]
fn tshark_ppp_tiny_fragments() {
    // Three 9-byte fragments of one SYN (id 1); the first holds only the
    // first 8 bytes of the TCP header, enough for the ports.
    let bytes = read("linktypes/ppp-fragmented-syn.pcap");
    let pk = packets(&bytes);
    let m: Vec<PacketMeta<'_>> = pk.iter().map(|p| decode(&frame(p)).unwrap()).collect();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].fragment, Fragment::First { id: 1 });
    assert_eq!((m[0].src_port, m[0].dst_port), (12345, 8080));
    assert_eq!(m[1].fragment, Fragment::NonFirst { id: 1 });
    assert_eq!(m[2].fragment, Fragment::NonFirst { id: 1 });
    for x in &m {
        assert_eq!(x.ip_len, 28);
        assert_eq!(x.src, "1.1.1.1".parse::<IpAddr>().unwrap());
    }
    assert_eq!((m[2].src_port, m[2].dst_port), (0, 0));
}

#[test]
fn tshark_big_packets_length_rule() {
    // IPv4 BIG TCP: total_length 0, frame 80066 bytes -> 80052.
    let v = first_ok("linktypes/ipv4-bigtcp-totlen0.pcap");
    assert!(v[0].0.starts_with("6 ") && v[0].0.contains(":35871 > "));
    assert_eq!(v[0].1, 80_052);
    // IPv6 BIG TCP with a jumbo option of 80040 -> 40 + 80040.
    let v = first_ok("linktypes/ipv6-bigtcp-hbh.pcap");
    assert!(v[0].0.contains(":41851 > ") && v[0].0.contains(":43913 "));
    assert_eq!(v[0].1, 80_080);
    // A jumbogram carrying ICMPv6, jumbo length 65536.
    let v = first_ok("linktypes/ipv6-jumbogram.pcap");
    assert!(v[0].0.starts_with("58 "));
    assert_eq!(v[0].1, 65_576);
}
