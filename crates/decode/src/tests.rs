//! Unit tests of `decode`: one per link type, then the IP and transport
//! rules, with frames built by etherparse's `PacketBuilder` (link headers
//! etherparse cannot write are prepended by hand).

use std::net::IpAddr;

use etherparse::{LinuxSllPacketType, PacketBuilder};
use tapsentry_types::{Fragment, Frame, IcmpError, LinkType, PacketMeta, TcpFlags, Timestamp};

use crate::{decode, DecodeError};

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [192, 0, 2, 80];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp::from_micros(7),
        wire_len: data.len() as u32,
        link,
        data,
    }
}

fn dec(link: LinkType, data: &[u8]) -> Result<PacketMeta<'_>, DecodeError> {
    decode(&frame(link, data))
}

/// Raw IPv4 TCP SYN 10.0.0.1:40000 -> 192.0.2.80:80 with payload "GET".
fn ipv4_tcp() -> Vec<u8> {
    let b = PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 1024)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"GET").unwrap();
    v
}

/// Raw IPv6 UDP [2001:db8::1]:5353 -> [2001:db8::2]:53 with payload "q".
fn ipv6_udp() -> Vec<u8> {
    let b = PacketBuilder::ipv6(SRC6, DST6, 64).udp(5353, 53);
    let mut v = Vec::new();
    b.write(&mut v, b"q").unwrap();
    v
}

fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&MAC_B);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(rest);
    v
}

fn tag(vid: u16, next: u16) -> Vec<u8> {
    let mut v = vid.to_be_bytes().to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn assert_v4_tcp(m: &PacketMeta<'_>) {
    assert_eq!(m.src, IpAddr::from(SRC4));
    assert_eq!(m.dst, IpAddr::from(DST4));
    assert_eq!((m.proto, m.src_port, m.dst_port), (6, 40000, 80));
    assert_eq!(m.ip_len, 20 + 20 + 3);
    assert!(m.tcp_flags.has(TcpFlags::SYN));
    assert_eq!(m.fragment, Fragment::None);
    assert_eq!(m.payload, b"GET");
    assert!(m.icmp_error.is_none());
    assert_eq!(m.ts, Timestamp::from_micros(7));
}

fn assert_v6_udp(m: &PacketMeta<'_>) {
    assert_eq!(m.src, IpAddr::from(SRC6));
    assert_eq!(m.dst, IpAddr::from(DST6));
    assert_eq!((m.proto, m.src_port, m.dst_port), (17, 5353, 53));
    assert_eq!(m.ip_len, 40 + 8 + 1);
    assert_eq!(m.tcp_flags, TcpFlags(0));
    assert_eq!(m.payload, b"q");
}

// ---------------------------------------------------------------- Ethernet

#[test]
fn ethernet_ipv4_tcp() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 1024)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"GET").unwrap();
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v4_tcp(&m);
    assert_eq!(m.vlan, 0);
}

#[test]
fn ethernet_ipv6_udp() {
    assert_v6_udp(&dec(LinkType::ETHERNET, &eth(0x86dd, &ipv6_udp())).unwrap());
}

#[test]
fn ethernet_single_vlan() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(123.try_into().unwrap())
        .ipv6(SRC6, DST6, 64)
        .udp(5353, 53);
    let mut v = Vec::new();
    b.write(&mut v, b"q").unwrap();
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v6_udp(&m);
    assert_eq!(m.vlan, 123);
}

#[test]
fn ethernet_qinq_outer_id() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(100.try_into().unwrap(), 200.try_into().unwrap())
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 1024)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"GET").unwrap();
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v4_tcp(&m);
    assert_eq!(m.vlan, 100);
}

#[test]
fn ethernet_stacked_tags() {
    // 3 tags: etherparse walks them; 4 to 8: our walker takes over.
    for n in 1..=8u16 {
        let mut body = Vec::new();
        for i in 0..n {
            let next = if i + 1 == n { 0x0800 } else { 0x8100 };
            body.extend_from_slice(&tag(0x2000 | (10 + i), next)); // PCP bits set
        }
        body.extend_from_slice(&ipv4_tcp());
        let outer = if n == 1 { 0x8100 } else { 0x88a8 };
        let v = eth(outer, &body);
        let m = dec(LinkType::ETHERNET, &v).unwrap();
        assert_v4_tcp(&m);
        assert_eq!(m.vlan, 10, "{n} tags");
    }
    // Old-style 0x9100 outer tag.
    let v = eth(
        0x9100,
        &cat(&[&tag(7, 0x8100), &tag(8, 0x0800), &ipv4_tcp()]),
    );
    assert_eq!(dec(LinkType::ETHERNET, &v).unwrap().vlan, 7);
    // Nine tags is beyond any real network.
    let mut body = Vec::new();
    for i in 0..9 {
        body.extend_from_slice(&tag(5, if i == 8 { 0x0800 } else { 0x8100 }));
    }
    body.extend_from_slice(&ipv4_tcp());
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8100, &body)).unwrap_err(),
        DecodeError::MalformedLink
    );
}

#[test]
fn ethernet_priority_tag_vid0() {
    let v = eth(0x8100, &cat(&[&tag(0x6000, 0x0800), &ipv4_tcp()]));
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_eq!(m.vlan, 0);
    assert_v4_tcp(&m);
}

#[test]
fn ethernet_mpls() {
    let l1 = [0x00, 0x01, 0x00, 0x40]; // label 16, not bottom
    let l2 = [0x00, 0x02, 0x01, 0x40]; // label 32, bottom of stack
    let v = eth(0x8847, &cat(&[&l1, &l2, &ipv4_tcp()]));
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v4_tcp(&m);
    assert_eq!(m.vlan, 0);
    assert_v6_udp(&dec(LinkType::ETHERNET, &eth(0x8848, &cat(&[&l2, &ipv6_udp()]))).unwrap());
    // MPLS inside a VLAN.
    let v = eth(0x8100, &cat(&[&tag(300, 0x8847), &l1, &l2, &ipv6_udp()]));
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v6_udp(&m);
    assert_eq!(m.vlan, 300);
    // Ethernet pseudowire: control word 0 after the stack.
    let pw = cat(&[&l2, &[0, 0, 0, 0], &eth(0x0800, &ipv4_tcp())]);
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8847, &pw)).unwrap_err(),
        DecodeError::NotIp
    );
    // Stack never ends.
    let endless: Vec<u8> = std::iter::repeat_n(l1, 20).flatten().collect();
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8847, &endless)).unwrap_err(),
        DecodeError::MalformedLink
    );
    // Cut inside and right after the stack.
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8847, &l1[..3])).unwrap_err(),
        DecodeError::TruncatedLink
    );
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8847, &l2)).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

fn pppoe(proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x11, 0x00, 0x12, 0x34];
    v.extend_from_slice(&((inner.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

#[test]
fn ethernet_pppoe_session() {
    assert_v4_tcp(
        &dec(
            LinkType::ETHERNET,
            &eth(0x8864, &pppoe(0x0021, &ipv4_tcp())),
        )
        .unwrap(),
    );
    assert_v6_udp(
        &dec(
            LinkType::ETHERNET,
            &eth(0x8864, &pppoe(0x0057, &ipv6_udp())),
        )
        .unwrap(),
    );
    // PPPoE over QinQ.
    let v = eth(
        0x88a8,
        &cat(&[
            &tag(11, 0x8100),
            &tag(12, 0x8864),
            &pppoe(0x0021, &ipv4_tcp()),
        ]),
    );
    let m = dec(LinkType::ETHERNET, &v).unwrap();
    assert_v4_tcp(&m);
    assert_eq!(m.vlan, 11);
    // LCP, discovery, bad version, cut header.
    let lcp = pppoe(0xc021, &[1, 1, 0, 4]);
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8864, &lcp)).unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8863, &[0x11, 0x09, 0, 0, 0, 0])).unwrap_err(),
        DecodeError::NotIp
    );
    let mut bad = pppoe(0x0021, &ipv4_tcp());
    bad[0] = 0x21;
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8864, &bad)).unwrap_err(),
        DecodeError::MalformedLink
    );
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x8864, &[0x11, 0, 0, 1, 0, 2, 0])).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

#[test]
fn ethernet_non_ip() {
    let arp = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];
    assert_eq!(
        dec(LinkType::ETHERNET, &eth(0x0806, &arp)).unwrap_err(),
        DecodeError::NotIp
    );
    // ARP inside a VLAN, LLDP, and an 802.3 length field (STP over LLC).
    let v = eth(0x8100, &cat(&[&tag(5, 0x0806), &arp]));
    assert_eq!(dec(LinkType::ETHERNET, &v).unwrap_err(), DecodeError::NotIp);
    assert_eq!(
        dec(
            LinkType::ETHERNET,
            &eth(0x88cc, &[2, 7, 4, 0, 0, 0, 0, 0, 1])
        )
        .unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(
            LinkType::ETHERNET,
            &eth(0x0026, &[0x42, 0x42, 0x03, 0, 0, 0])
        )
        .unwrap_err(),
        DecodeError::NotIp
    );
}

// ------------------------------------------------------------ cooked (SLL)

#[test]
fn linux_sll() {
    let b = PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0])
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 1024)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"GET").unwrap();
    assert_v4_tcp(&dec(LinkType::LINUX_SLL, &v).unwrap());

    // Hand-made: IPv6, and a VLAN tag left in by the NIC.
    let hdr = |proto: u16, arphrd: u16| {
        let mut h = vec![0, 0];
        h.extend_from_slice(&arphrd.to_be_bytes());
        h.extend_from_slice(&[0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        h.extend_from_slice(&proto.to_be_bytes());
        h
    };
    assert_v6_udp(&dec(LinkType::LINUX_SLL, &cat(&[&hdr(0x86dd, 1), &ipv6_udp()])).unwrap());
    let v = cat(&[&hdr(0x8100, 1), &tag(42, 0x0800), &ipv4_tcp()]);
    let m = dec(LinkType::LINUX_SLL, &v).unwrap();
    assert_eq!(m.vlan, 42);
    assert_v4_tcp(&m);
    assert_eq!(
        dec(LinkType::LINUX_SLL, &cat(&[&hdr(0x0806, 1), &[0; 28]])).unwrap_err(),
        DecodeError::NotIp
    );
    // Netlink: the protocol field is a netlink family, even if it looks IP.
    assert_eq!(
        dec(LinkType::LINUX_SLL, &cat(&[&hdr(0x0800, 824), &ipv4_tcp()])).unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(LinkType::LINUX_SLL, &hdr(0x0800, 1)[..15]).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

#[test]
fn linux_sll2() {
    let hdr = |proto: u16| {
        let mut h = proto.to_be_bytes().to_vec();
        h.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        h
    };
    assert_eq!(hdr(0x0800).len(), 20);
    assert_v4_tcp(&dec(LinkType::LINUX_SLL2, &cat(&[&hdr(0x0800), &ipv4_tcp()])).unwrap());
    assert_v6_udp(&dec(LinkType::LINUX_SLL2, &cat(&[&hdr(0x86dd), &ipv6_udp()])).unwrap());
    assert_eq!(
        dec(LinkType::LINUX_SLL2, &cat(&[&hdr(0x0806), &[0; 28]])).unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(LinkType::LINUX_SLL2, &hdr(0x0800)[..19]).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

// ------------------------------------------------------------------ raw IP

#[test]
fn raw_ip_link_types() {
    for link in [LinkType::RAW, LinkType::RAW_BSD12, LinkType::RAW_BSD14] {
        assert_v4_tcp(&dec(link, &ipv4_tcp()).unwrap());
        assert_v6_udp(&dec(link, &ipv6_udp()).unwrap());
    }
    assert_v4_tcp(&dec(LinkType::IPV4, &ipv4_tcp()).unwrap());
    assert_v6_udp(&dec(LinkType::IPV6, &ipv6_udp()).unwrap());
    // The version-specific link types do not accept the other version.
    assert_eq!(
        dec(LinkType::IPV4, &ipv6_udp()).unwrap_err(),
        DecodeError::MalformedIp
    );
    assert_eq!(
        dec(LinkType::IPV6, &ipv4_tcp()).unwrap_err(),
        DecodeError::MalformedIp
    );
    assert_eq!(
        dec(LinkType::RAW, &[]).unwrap_err(),
        DecodeError::TruncatedIp
    );
    assert_eq!(
        dec(LinkType::RAW, &[0x55; 30]).unwrap_err(),
        DecodeError::MalformedIp
    );
}

// ------------------------------------------------------- BSD loopback, PPP

#[test]
fn null_both_byte_orders() {
    for fam in [2u32, 24, 28, 30] {
        for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
            let inner = if fam == 2 { ipv4_tcp() } else { ipv6_udp() };
            let v = cat(&[&bytes, &inner]);
            let m = dec(LinkType::NULL, &v).unwrap();
            if fam == 2 {
                assert_v4_tcp(&m);
            } else {
                assert_v6_udp(&m);
            }
        }
    }
    assert_eq!(
        dec(LinkType::NULL, &cat(&[&7u32.to_le_bytes(), &ipv4_tcp()])).unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(LinkType::NULL, &[2, 0, 0]).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

#[test]
fn loop_is_big_endian() {
    assert_v4_tcp(&dec(LinkType::LOOP, &cat(&[&2u32.to_be_bytes(), &ipv4_tcp()])).unwrap());
    assert_v6_udp(&dec(LinkType::LOOP, &cat(&[&24u32.to_be_bytes(), &ipv6_udp()])).unwrap());
    // A little-endian family is not what LOOP promises.
    assert_eq!(
        dec(LinkType::LOOP, &cat(&[&2u32.to_le_bytes(), &ipv4_tcp()])).unwrap_err(),
        DecodeError::NotIp
    );
}

#[test]
fn ppp_framing() {
    assert_v4_tcp(
        &dec(
            LinkType::PPP,
            &cat(&[&[0xff, 0x03, 0x00, 0x21], &ipv4_tcp()]),
        )
        .unwrap(),
    );
    assert_v6_udp(&dec(LinkType::PPP, &cat(&[&[0x00, 0x57], &ipv6_udp()])).unwrap());
    // Protocol-field compression.
    assert_v4_tcp(&dec(LinkType::PPP, &cat(&[&[0xff, 0x03, 0x21], &ipv4_tcp()])).unwrap());
    assert_eq!(
        dec(LinkType::PPP, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]).unwrap_err(),
        DecodeError::NotIp
    );
    assert_eq!(
        dec(LinkType::PPP, &[0xff, 0x03, 0x00]).unwrap_err(),
        DecodeError::TruncatedLink
    );
}

#[test]
fn unsupported_and_empty() {
    assert_eq!(
        dec(LinkType(147), &ipv4_tcp()).unwrap_err(),
        DecodeError::UnsupportedLinkType
    );
    assert_eq!(
        dec(LinkType::ETHERNET, &[]).unwrap_err(),
        DecodeError::TruncatedLink
    );
    for link in [
        LinkType::NULL,
        LinkType::LOOP,
        LinkType::PPP,
        LinkType::LINUX_SLL,
        LinkType::LINUX_SLL2,
    ] {
        assert_eq!(dec(link, &[]).unwrap_err(), DecodeError::TruncatedLink);
    }
}

// ------------------------------------------------------------ IP and below

#[test]
fn ipv4_options_are_skipped() {
    let mut h = etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::UDP, SRC4, DST4).unwrap();
    h.options = [0x94, 0x04, 0, 0, 1, 1, 1, 0][..].try_into().unwrap(); // router alert, NOPs, EOL
    let b = PacketBuilder::ip(etherparse::IpHeaders::Ipv4(h, Default::default())).udp(1234, 53);
    let mut v = Vec::new();
    b.write(&mut v, b"abc").unwrap();
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!((m.proto, m.src_port, m.dst_port), (17, 1234, 53));
    assert_eq!(m.ip_len, 28 + 8 + 3);
    assert_eq!(m.payload, b"abc");
}

/// IPv6 header with the given payload length and next header, then `rest`.
fn ipv6_raw(payload_len: u16, next: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&payload_len.to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&SRC6);
    v.extend_from_slice(&DST6);
    v.extend_from_slice(rest);
    v
}

fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

#[test]
fn ipv6_extension_chain() {
    // hop-by-hop -> routing -> destination options -> atomic fragment -> TCP
    let hbh = [43u8, 0, 1, 4, 0, 0, 0, 0];
    let rh = [60u8, 0, 0, 0, 0, 0, 0, 0];
    let dst = [44u8, 0, 1, 4, 0, 0, 0, 0];
    let frag = [6u8, 0, 0, 0, 0, 0, 0, 9]; // offset 0, M=0: atomic
    let t = tcp_header(443, 50000, 0x12);
    let rest = cat(&[&hbh, &rh, &dst, &frag, &t, b"xy"]);
    let v = ipv6_raw(rest.len() as u16, 0, &rest);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!((m.proto, m.src_port, m.dst_port), (6, 443, 50000));
    assert_eq!(m.fragment, Fragment::None);
    assert_eq!(m.tcp_flags, TcpFlags(0x12));
    assert_eq!(m.payload, b"xy");
    assert_eq!(m.ip_len, v.len() as u32);

    // Cut inside the routing header.
    assert_eq!(
        dec(LinkType::RAW, &v[..40 + 8 + 4]).unwrap_err(),
        DecodeError::TruncatedIp
    );
    // Hop-by-hop not first.
    let bad = ipv6_raw(16, 60, &[0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0]);
    assert_eq!(
        dec(LinkType::RAW, &bad).unwrap_err(),
        DecodeError::MalformedIp
    );
}

#[test]
fn ipv4_fragments() {
    let mut v = ipv4_tcp();
    // identification 0x0abc, MF set, offset 0
    v[4..8].copy_from_slice(&[0x0a, 0xbc, 0x20, 0x00]);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!(m.fragment, Fragment::First { id: 0x0abc });
    assert_eq!((m.src_port, m.dst_port), (40000, 80));
    assert!(m.tcp_flags.has(TcpFlags::SYN));
    assert_eq!(m.payload, b"GET");

    // A later fragment: no transport header, ports 0.
    v[6..8].copy_from_slice(&[0x00, 0x03]);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!(m.fragment, Fragment::NonFirst { id: 0x0abc });
    assert_eq!((m.proto, m.src_port, m.dst_port), (6, 0, 0));
    assert_eq!(m.tcp_flags, TcpFlags(0));
    assert!(m.payload.is_empty());
    assert_eq!(m.ip_len, 43);

    // DF alone is not a fragment.
    v[6..8].copy_from_slice(&[0x40, 0x00]);
    assert_eq!(dec(LinkType::RAW, &v).unwrap().fragment, Fragment::None);
}

#[test]
fn tiny_first_fragment_still_has_ports() {
    // A SYN whose TCP header is split: the first fragment carries 8 bytes.
    let t = tcp_header(40000, 22, 0x02);
    let mut v = vec![0x45, 0, 0, 28, 0x12, 0x34, 0x20, 0x00, 64, 6, 0, 0];
    v.extend_from_slice(&SRC4);
    v.extend_from_slice(&DST4);
    v.extend_from_slice(&t[..8]);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!(m.fragment, Fragment::First { id: 0x1234 });
    assert_eq!((m.proto, m.src_port, m.dst_port), (6, 40000, 22));
    assert_eq!(m.tcp_flags, TcpFlags(0));
    assert_eq!(m.ip_len, 28);
}

#[test]
fn ipv6_fragments() {
    let u = [0x13, 0x88, 0, 53, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    let first = cat(&[&[17u8, 0, 0, 1, 0, 0, 0, 77], &u]); // offset 0, M=1
    let v = ipv6_raw(first.len() as u16, 44, &first);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!(m.fragment, Fragment::First { id: 77 });
    assert_eq!((m.proto, m.src_port, m.dst_port), (17, 5000, 53));

    // Non-first, and its data happens to look like a routing header: the
    // fragment header's next header is what counts.
    let later = cat(&[&[43u8, 0, 0, 0x10, 0, 0, 0, 77], &[0xff; 3]]);
    let v = ipv6_raw(later.len() as u16, 44, &later);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!(m.fragment, Fragment::NonFirst { id: 77 });
    assert_eq!((m.proto, m.src_port, m.dst_port), (43, 0, 0));
}

#[test]
fn tunnels_and_other_protocols_are_the_outer_flow() {
    for proto in [47u8, 50, 4, 41, 89, 132, 2] {
        let mut v = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, proto, 0, 0];
        v.extend_from_slice(&SRC4);
        v.extend_from_slice(&DST4);
        v.extend_from_slice(&ipv4_tcp()[..20]);
        let m = dec(LinkType::RAW, &v).unwrap();
        assert_eq!((m.proto, m.src_port, m.dst_port), (proto, 0, 0), "{proto}");
        assert!(m.payload.is_empty());
        assert_eq!(m.ip_len, 40);
    }
    let v = ipv6_raw(4, 50, &[1, 2, 3, 4]);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!((m.proto, m.src_port, m.dst_port, m.ip_len), (50, 0, 0, 44));
}

#[test]
fn transport_errors() {
    // TCP data offset 4.
    let mut v = ipv4_tcp();
    v[32] = 0x40;
    assert_eq!(
        dec(LinkType::RAW, &v).unwrap_err(),
        DecodeError::MalformedTransport
    );
    // UDP header cut.
    let v = ipv6_udp();
    assert_eq!(
        dec(LinkType::RAW, &v[..44]).unwrap_err(),
        DecodeError::TruncatedTransport
    );
}

#[test]
fn ipv4_header_errors() {
    let mut v = ipv4_tcp();
    v[0] = 0x44; // IHL 4
    assert_eq!(
        dec(LinkType::RAW, &v).unwrap_err(),
        DecodeError::MalformedIp
    );
    let mut v = ipv4_tcp();
    v[2..4].copy_from_slice(&12u16.to_be_bytes()); // total length < header
    assert_eq!(
        dec(LinkType::RAW, &v).unwrap_err(),
        DecodeError::MalformedIp
    );
    let v = ipv4_tcp();
    assert_eq!(
        dec(LinkType::RAW, &v[..19]).unwrap_err(),
        DecodeError::TruncatedIp
    );
}

// ---------------------------------------------------------- length rules

#[test]
fn ipv4_total_length_zero_uses_wire_length() {
    let mut v = eth(0x0800, &ipv4_tcp());
    v[16..18].copy_from_slice(&[0, 0]);
    let f = Frame {
        wire_len: 80_066,
        ..frame(LinkType::ETHERNET, &v)
    };
    let m = decode(&f).unwrap();
    assert_eq!(m.ip_len, 80_066 - 14);
    assert_eq!((m.src_port, m.dst_port), (40000, 80));
    assert_eq!(m.payload, b"GET");
}

#[test]
fn ipv6_jumbo_payload_option() {
    // hop-by-hop with PadN then jumbo 70000, then a UDP header (length 0).
    let hbh = [17u8, 0, 0xc2, 4, 0x00, 0x01, 0x11, 0x70];
    let udp = [0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0];
    let v = ipv6_raw(0, 0, &cat(&[&hbh, &udp, b"data"]));
    let f = Frame {
        wire_len: 40 + 70_000,
        ..frame(LinkType::RAW, &v)
    };
    let m = decode(&f).unwrap();
    assert_eq!(m.ip_len, 40 + 70_000);
    assert_eq!((m.proto, m.src_port, m.dst_port), (17, 12345, 53));
    assert_eq!(m.payload, b"data");

    // A jumbo length that fits 16 bits is invalid (RFC 2675).
    let hbh = [17u8, 0, 0xc2, 4, 0, 0, 0x01, 0x00];
    let v = ipv6_raw(0, 0, &cat(&[&hbh, &udp]));
    assert_eq!(
        dec(LinkType::RAW, &v).unwrap_err(),
        DecodeError::MalformedIp
    );
}

#[test]
fn ipv6_zero_length_without_jumbo() {
    // BIG TCP after the stack dropped the option: fall back to the wire.
    let v = ipv6_raw(0, 6, &tcp_header(1, 2, 0x10));
    let f = Frame {
        wire_len: 90_000,
        ..frame(LinkType::RAW, &v)
    };
    assert_eq!(decode(&f).unwrap().ip_len, 90_000);
    // No next header: just the fixed header.
    let v = ipv6_raw(0, 59, &[]);
    let m = dec(LinkType::RAW, &v).unwrap();
    assert_eq!((m.proto, m.ip_len), (59, 40));
}

/// The etherparse-style truncation loop: every prefix of a valid frame
/// decodes to the exact error of the layer it is cut in, or to the same
/// tuple with the header's byte count once the TCP header is whole.
#[test]
fn truncation_loop_ethernet_tcp() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 1024)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, b"GET /index.html HTTP/1.1\r\n").unwrap();
    let full = v.len() as u32;
    for len in 0..v.len() {
        let f = Frame {
            wire_len: full,
            ..frame(LinkType::ETHERNET, &v[..len])
        };
        let r = decode(&f);
        match len {
            0..14 => assert_eq!(r.unwrap_err(), DecodeError::TruncatedLink, "len {len}"),
            14..34 => assert_eq!(r.unwrap_err(), DecodeError::TruncatedIp, "len {len}"),
            34..54 => assert_eq!(r.unwrap_err(), DecodeError::TruncatedTransport, "len {len}"),
            _ => {
                let m = r.unwrap();
                assert_eq!((m.src_port, m.dst_port, m.proto), (40000, 80, 6));
                assert_eq!(m.ip_len, full - 14, "len {len}");
                assert_eq!(m.payload.len(), len - 54);
            }
        }
    }
    // The same with a wire length that lies (caplen == wire_len): still the
    // header's count.
    let m = dec(LinkType::ETHERNET, &v[..60]).unwrap();
    assert_eq!(m.ip_len, full - 14);
}

#[test]
fn truncation_loop_every_link_type() {
    let inner4 = ipv4_tcp();
    let frames: Vec<(LinkType, Vec<u8>)> = vec![
        (
            LinkType::ETHERNET,
            eth(
                0x88a8,
                &cat(&[
                    &tag(1, 0x8100),
                    &tag(2, 0x8100),
                    &tag(3, 0x8100),
                    &tag(4, 0x0800),
                    &inner4,
                ]),
            ),
        ),
        (
            LinkType::ETHERNET,
            eth(0x8847, &cat(&[&[0, 1, 1, 64], &ipv6_udp()])),
        ),
        (LinkType::ETHERNET, eth(0x8864, &pppoe(0x0021, &inner4))),
        (LinkType::NULL, cat(&[&30u32.to_be_bytes(), &ipv6_udp()])),
        (LinkType::PPP, cat(&[&[0xff, 3, 0, 0x21], &inner4])),
    ];
    for (link, v) in frames {
        assert!(dec(link, &v).is_ok(), "{link:?}");
        for len in 0..v.len() {
            let _ = dec(link, &v[..len]);
        }
    }
}

// ------------------------------------------------------------------- ICMP

#[test]
fn icmpv4_keys() {
    let cases = [
        ((8u8, 0u8), (8u16, 0u16)),
        ((0, 0), (0, 8)),
        ((13, 0), (13, 14)),
        ((16, 0), (16, 15)),
        ((10, 0), (10, 9)),
        ((9, 0), (9, 10)),
        ((17, 0), (17, 18)),
        ((11, 1), (11, 1)),
        ((5, 2), (5, 2)),
    ];
    for ((ty, code), want) in cases {
        let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_raw(ty, code, [0, 1, 0, 2]);
        let mut v = Vec::new();
        // Timestamp messages need their 12 data bytes.
        b.write(&mut v, &[0u8; 12]).unwrap();
        let m = dec(LinkType::RAW, &v).unwrap();
        assert_eq!(m.proto, 1);
        assert_eq!((m.src_port, m.dst_port), want, "type {ty} code {code}");
        assert!(m.payload.is_empty());
        assert!(m.icmp_error.is_none());
    }
}

#[test]
fn icmpv6_keys() {
    let cases = [
        ((128u8, 0u8), (128u16, 129u16)),
        ((129, 0), (129, 128)),
        ((133, 0), (133, 134)),
        ((134, 0), (134, 133)),
        ((135, 0), (135, 136)),
        ((136, 0), (136, 135)),
        ((130, 0), (130, 131)),
        ((131, 0), (131, 130)),
        ((143, 0), (143, 0)),
        ((3, 1), (3, 1)),
    ];
    for ((ty, code), want) in cases {
        let b = PacketBuilder::ipv6(SRC6, DST6, 255).icmpv6_raw(ty, code, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, &[0u8; 16]).unwrap();
        let m = dec(LinkType::RAW, &v).unwrap();
        assert_eq!(m.proto, 58);
        assert_eq!((m.src_port, m.dst_port), want, "type {ty}");
    }
}

#[test]
fn icmpv4_port_unreachable_quotes_the_tuple() {
    // The UDP datagram 192.0.2.80:5353 -> 10.0.0.1:33434 that was refused.
    let b = PacketBuilder::ipv4(DST4, SRC4, 1).udp(5353, 33434);
    let mut orig = Vec::new();
    b.write(&mut orig, &[0u8; 32]).unwrap();
    for (code, kind) in [
        (3u8, IcmpError::PortUnreachable),
        (1, IcmpError::Unreachable),
    ] {
        let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_raw(3, code, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, &orig[..28]).unwrap();
        let m = dec(LinkType::RAW, &v).unwrap();
        assert_eq!((m.src_port, m.dst_port), (3, u16::from(code)));
        let (k, q) = m.icmp_error.unwrap();
        assert_eq!(k, kind);
        assert_eq!(q.src, IpAddr::from(DST4));
        assert_eq!(q.dst, IpAddr::from(SRC4));
        assert_eq!((q.proto, q.src_port, q.dst_port), (17, 5353, 33434));
    }
    // A quote cut after the IP header: ports unknown.
    let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_raw(3, 3, [0; 4]);
    let mut v = Vec::new();
    b.write(&mut v, &orig[..22]).unwrap();
    let (_, q) = dec(LinkType::RAW, &v).unwrap().icmp_error.unwrap();
    assert_eq!((q.proto, q.src_port, q.dst_port), (17, 0, 0));
    // Garbage or an IPv6 quote: no tuple, packet still fine.
    for quote in [&[0x45u8, 0, 0][..], &[0x11; 28][..], &ipv6_udp()[..]] {
        let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_raw(3, 3, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, quote).unwrap();
        let m = dec(LinkType::RAW, &v).unwrap();
        assert!(m.icmp_error.is_none());
        assert_eq!((m.src_port, m.dst_port), (3, 3));
    }
    // Time exceeded is not an unreachable.
    let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_raw(11, 0, [0; 4]);
    let mut v = Vec::new();
    b.write(&mut v, &orig[..28]).unwrap();
    assert!(dec(LinkType::RAW, &v).unwrap().icmp_error.is_none());
}

#[test]
fn icmpv6_port_unreachable_quotes_the_tuple() {
    let b = PacketBuilder::ipv6(DST6, SRC6, 1)
        .tcp(443, 50123, 1, 100)
        .syn();
    let mut orig = Vec::new();
    b.write(&mut orig, &[]).unwrap();
    for (code, kind) in [
        (4u8, IcmpError::PortUnreachable),
        (3, IcmpError::Unreachable),
    ] {
        let b = PacketBuilder::ipv6(SRC6, DST6, 64).icmpv6_raw(1, code, [0; 4]);
        let mut v = Vec::new();
        b.write(&mut v, &orig[..48]).unwrap();
        let m = dec(LinkType::RAW, &v).unwrap();
        assert_eq!((m.proto, m.src_port, m.dst_port), (58, 1, u16::from(code)));
        let (k, q) = m.icmp_error.unwrap();
        assert_eq!(k, kind);
        assert_eq!((q.src, q.dst), (IpAddr::from(DST6), IpAddr::from(SRC6)));
        assert_eq!((q.proto, q.src_port, q.dst_port), (6, 443, 50123));
    }
}

#[test]
fn icmp_cut_header() {
    let b = PacketBuilder::ipv4(SRC4, DST4, 64).icmpv4_echo_request(1, 1);
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    assert_eq!(
        dec(LinkType::RAW, &v[..24]).unwrap_err(),
        DecodeError::TruncatedTransport
    );
}
