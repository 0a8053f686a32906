//! Property tests: arbitrary and mutated bytes never panic, and frames built
//! by etherparse decode back to the tuple they were built from.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use tapsentry_decode::{decode, dns, DecodeError};
use tapsentry_testkit::DnsMessage;
use tapsentry_types::{Fragment, Frame, LinkType, TcpFlags, Timestamp};

const LINKS: [LinkType; 11] = LinkType::DECODED;

fn frame(link: LinkType, data: &[u8], wire_len: u32) -> Frame<'_> {
    Frame {
        ts: Timestamp::from_micros(1),
        wire_len,
        link,
        data,
    }
}

/// Decoding must return, and whatever it returns must be self-consistent.
fn check(link: LinkType, data: &[u8], wire_len: u32) {
    match decode(&frame(link, data, wire_len)) {
        Ok(m) => {
            assert!(m.payload.len() <= data.len());
            if let Fragment::NonFirst { .. } = m.fragment {
                assert_eq!((m.src_port, m.dst_port), (0, 0));
            }
        }
        Err(e) => assert!(e.index() < DecodeError::COUNT),
    }
}

/// A valid frame of each shape the decoder walks, as a seed for mutation.
fn seeds() -> Vec<(LinkType, Vec<u8>)> {
    let mut out = Vec::new();
    let mut push = |link: LinkType, prefix: &[u8], b: PacketBuilder2| {
        let mut v = prefix.to_vec();
        v.extend_from_slice(&b.0);
        out.push((link, v));
    };
    let v4 = build_ip(true, 6);
    let v6 = build_ip(false, 17);
    let v6icmp = build_ip(false, 58);
    let v4icmp = build_ip(true, 1);
    let eth = |t: u16| {
        let mut h = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        h.extend_from_slice(&t.to_be_bytes());
        h
    };
    push(LinkType::ETHERNET, &eth(0x0800), v4.clone());
    push(
        LinkType::ETHERNET,
        &[
            eth(0x88a8),
            vec![
                0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x81, 0, 0, 4, 0x86, 0xdd,
            ],
        ]
        .concat(),
        v6.clone(),
    );
    push(
        LinkType::ETHERNET,
        &[eth(0x8847), vec![0, 1, 0, 0, 0, 2, 1, 0]].concat(),
        v4icmp.clone(),
    );
    push(
        LinkType::ETHERNET,
        &[eth(0x8864), vec![0x11, 0, 0, 1, 0, 0, 0, 0x57]].concat(),
        v6icmp.clone(),
    );
    push(LinkType::RAW, &[], v4icmp);
    push(LinkType::IPV6, &[], v6icmp);
    push(LinkType::NULL, &[0, 0, 0, 30], v6.clone());
    push(LinkType::LOOP, &[0, 0, 0, 2], v4.clone());
    push(LinkType::PPP, &[0xff, 0x03, 0x00, 0x21], v4.clone());
    push(
        LinkType::LINUX_SLL,
        &[
            0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x81, 0, 0, 9, 0x08, 0,
        ],
        v4,
    );
    push(
        LinkType::LINUX_SLL2,
        &[
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ],
        v6,
    );
    out
}

#[derive(Clone)]
struct PacketBuilder2(Vec<u8>);

fn build_ip(v4: bool, proto: u8) -> PacketBuilder2 {
    let mut v = Vec::new();
    let payload = [0x5au8; 24];
    match (v4, proto) {
        (true, 6) => PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v, &payload)
            .unwrap(),
        (true, _) => {
            // A port unreachable quoting a UDP datagram.
            let mut q = Vec::new();
            PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
                .udp(5, 6)
                .write(&mut q, &[])
                .unwrap();
            PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .icmpv4_raw(3, 3, [0; 4])
                .write(&mut v, &q)
                .unwrap()
        }
        (false, 17) => PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .udp(53, 5353)
            .write(&mut v, &payload)
            .unwrap(),
        (false, _) => {
            let mut q = Vec::new();
            PacketBuilder::ipv6([2; 16], [1; 16], 64)
                .tcp(7, 8, 0, 0)
                .write(&mut q, &[])
                .unwrap();
            PacketBuilder::ipv6([1; 16], [2; 16], 64)
                .icmpv6_raw(1, 4, [0; 4])
                .write(&mut v, &q[..48])
                .unwrap()
        }
    }
    PacketBuilder2(v)
}

fn any_link() -> impl Strategy<Value = LinkType> {
    prop_oneof![
        4 => proptest::sample::select(LINKS.to_vec()),
        1 => any::<u32>().prop_map(LinkType),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        link in any_link(),
        data in proptest::collection::vec(any::<u8>(), 0..256),
        extra in 0u32..100_000,
    ) {
        check(link, &data, data.len() as u32 + extra);
        check(link, &data, 0);
    }

    /// Random bytes behind a plausible prefix reach the deeper layers.
    #[test]
    fn plausible_prefix_then_random(
        seed_idx in 0usize..11,
        cut in 0usize..80,
        tail in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let seeds = seeds();
        let (link, v) = &seeds[seed_idx % seeds.len()];
        let mut data = v[..cut.min(v.len())].to_vec();
        data.extend_from_slice(&tail);
        check(*link, &data, data.len() as u32);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        seed_idx in 0usize..11,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let seeds = seeds();
        let (link, v) = &seeds[seed_idx % seeds.len()];
        prop_assert!(decode(&frame(*link, v, v.len() as u32)).is_ok());
        let mut data = v.clone();
        for (at, b) in flips {
            let at = at % data.len();
            data[at] = b;
        }
        check(*link, &data, data.len() as u32);
        let cut = cut % (data.len() + 1);
        check(*link, &data[..cut], data.len() as u32);
    }

    #[test]
    fn builder_round_trip_v4(
        src in any::<[u8; 4]>(),
        dst in any::<[u8; 4]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        tcp in any::<bool>(),
        vlan in proptest::option::of(0u16..4096),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut v = Vec::new();
        let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
        match (vlan, tcp) {
            (Some(id), true) => eth.single_vlan(id.try_into().unwrap()).ipv4(src, dst, 9)
                .tcp(sport, dport, 1, 2).ack(5).write(&mut v, &payload),
            (Some(id), false) => eth.single_vlan(id.try_into().unwrap()).ipv4(src, dst, 9)
                .udp(sport, dport).write(&mut v, &payload),
            (None, true) => eth.ipv4(src, dst, 9).tcp(sport, dport, 1, 2).ack(5)
                .write(&mut v, &payload),
            (None, false) => eth.ipv4(src, dst, 9).udp(sport, dport).write(&mut v, &payload),
        }
        .unwrap();
        let m = decode(&frame(LinkType::ETHERNET, &v, v.len() as u32)).unwrap();
        prop_assert_eq!(m.src, IpAddr::from(src));
        prop_assert_eq!(m.dst, IpAddr::from(dst));
        prop_assert_eq!((m.src_port, m.dst_port), (sport, dport));
        prop_assert_eq!(m.proto, if tcp { 6 } else { 17 });
        prop_assert_eq!(m.vlan, vlan.unwrap_or(0));
        prop_assert_eq!(m.payload, &payload[..]);
        prop_assert_eq!(m.ip_len as usize, 20 + if tcp { 20 } else { 8 } + payload.len());
        prop_assert_eq!(m.tcp_flags, TcpFlags(if tcp { TcpFlags::ACK } else { 0 }));
    }

    #[test]
    fn builder_round_trip_v6_raw(
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        tcp in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        snap in 48usize..400,
    ) {
        let mut v = Vec::new();
        let ip = PacketBuilder::ipv6(src, dst, 9);
        if tcp {
            ip.tcp(sport, dport, 1, 2).syn().fin().write(&mut v, &payload)
        } else {
            ip.udp(sport, dport).write(&mut v, &payload)
        }
        .unwrap();
        let full = v.len();
        // Also snap-length cut, as long as the transport header is whole.
        let data = &v[..snap.min(full).max(if tcp { 60 } else { 48 })];
        let m = decode(&frame(LinkType::RAW, data, full as u32)).unwrap();
        prop_assert_eq!(m.src, IpAddr::from(src));
        prop_assert_eq!(m.dst, IpAddr::from(dst));
        prop_assert_eq!((m.src_port, m.dst_port), (sport, dport));
        prop_assert_eq!(m.ip_len as usize, full);
        prop_assert!(payload.starts_with(m.payload));
    }

    #[test]
    fn dns_random_bytes_never_panic(msg in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = dns::parse_message(&msg);
        let _ = dns::parse_tcp_segment(&msg);
    }

    #[test]
    fn dns_name_round_trip(
        labels in proptest::collection::vec("[a-zA-Z0-9-]{1,20}", 1..8),
        id in any::<u16>(),
        qtype in any::<u16>(),
    ) {
        let msg = DnsMessage::query(id, &labels.join("."), qtype).encode();
        let s = dns::parse_message(&msg).unwrap();
        let want = labels.join(".").to_ascii_lowercase();
        prop_assert_eq!(s.qname.as_bytes(), want.as_bytes());
        prop_assert_eq!((s.id, s.qtype), (id, qtype));
        for len in 0..msg.len() {
            prop_assert!(dns::parse_message(&msg[..len]).is_err());
        }
    }
}
