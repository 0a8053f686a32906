//! Frames written with the testkit come back unchanged through the capture
//! crate's reader, and the builders produce the headers they promise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_testkit::*;
use tapsentry_types::{LinkType, Timestamp};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [192, 0, 2, 7];
const A6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn read_back(path: &std::path::Path) -> Vec<(i64, u32, LinkType, Vec<u8>)> {
    let mut src = FileSource::open(&[path.to_path_buf()]).unwrap();
    let mut out = Vec::new();
    loop {
        match src.next_frame().unwrap() {
            Next::Frame(f) => out.push((f.ts.micros(), f.wire_len, f.link, f.data.to_vec())),
            Next::Idle => unreachable!(),
            Next::End => break,
        }
    }
    assert!(src.file_errors().is_empty(), "{:?}", src.file_errors());
    out
}

#[test]
fn written_frames_read_back_unchanged() {
    let frames = vec![
        (
            Timestamp::from_micros(1_700_000_000_000_001),
            tcp_v4(A, 40000, B, 22, TcpFlagsSpec::SYN, b""),
        ),
        (
            Timestamp::from_micros(1_700_000_000_500_000),
            udp_v4(A, 5353, B, 53, b"query"),
        ),
        (
            Timestamp::from_micros(1_700_000_001_000_000),
            tcp_v6(A6, 40001, B6, 443, 0x18, b"hello"),
        ),
        (
            Timestamp::from_micros(1_700_000_002_000_000),
            udp_v6(A6, 1, B6, 2, b""),
        ),
        (
            Timestamp::from_micros(1_700_000_003_000_000),
            icmp_echo_v4(A, B, 7, 1, b"ping"),
        ),
        (
            Timestamp::from_micros(1_700_000_004_000_000),
            icmp_echo_v6(A6, B6, 7, 2, b"ping6"),
        ),
        (
            Timestamp::from_micros(1_700_000_005_000_000),
            ip_proto_v4(A, B, 47, &[0; 8]),
        ),
        (
            Timestamp::from_micros(1_700_000_006_000_000),
            with_vlan(&udp_v4(A, 1, B, 2, b"v"), 42),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round-trip.pcap");
    write_pcap(&path, LinkType::ETHERNET, &frames).unwrap();
    let got = read_back(&path);
    assert_eq!(got.len(), frames.len());
    for ((ts, data), (gts, wire, link, gdata)) in frames.iter().zip(&got) {
        assert_eq!(*gts, ts.micros());
        assert_eq!(*wire as usize, data.len());
        assert_eq!(*link, LinkType::ETHERNET);
        assert_eq!(gdata, data);
    }
}

#[test]
fn snap_length_cut_keeps_the_wire_length() {
    let frame = udp_v4(A, 1, B, 2, &[0xab; 500]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.pcap");
    let mut w = PcapWriter::create(&path, LinkType::ETHERNET).unwrap();
    w.write_with_wire_len(Timestamp::from_micros(5), &frame[..96], frame.len() as u32);
    w.finish().unwrap();
    let got = read_back(&path);
    assert_eq!(
        got,
        vec![(
            5,
            frame.len() as u32,
            LinkType::ETHERNET,
            frame[..96].to_vec()
        )]
    );
}

#[test]
fn raw_link_type_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.pcap");
    let eth = udp_v4(A, 1, B, 2, b"x");
    write_pcap(
        &path,
        LinkType::RAW,
        &[(Timestamp::ZERO, eth[14..].to_vec())],
    )
    .unwrap();
    let got = read_back(&path);
    assert_eq!(got[0].2, LinkType::RAW);
    assert_eq!(got[0].3, eth[14..]);
}

#[test]
fn builders_set_the_promised_headers() {
    let syn_ack = tcp_v4(B, 22, A, 40000, TcpFlagsSpec::SYN_ACK, b"");
    let p = SlicedPacket::from_ethernet(&syn_ack).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP")
    };
    assert!(tcp.syn() && tcp.ack() && !tcp.fin() && !tcp.rst() && !tcp.psh());
    assert_eq!((tcp.source_port(), tcp.destination_port()), (22, 40000));
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().source(), B);
    assert_eq!(ip.header().destination(), A);
    assert_eq!(&syn_ack[6..12], &mac_for(&B));

    let rst = tcp_v4(A, 1, B, 2, 0x04u8, b"");
    let p = SlicedPacket::from_ethernet(&rst).unwrap();
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("not TCP")
    };
    assert!(tcp.rst() && !tcp.syn() && !tcp.ack());

    let gre = ip_proto_v4(A, B, 47, &[1, 2, 3, 4]);
    let p = SlicedPacket::from_ethernet(&gre).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    assert_eq!(ip.header().protocol().0, 47);
    assert_eq!(ip.payload().payload, &[1, 2, 3, 4]);

    let tagged = with_vlan(&udp_v4(A, 1, B, 2, b"v"), 42);
    let p = SlicedPacket::from_ethernet(&tagged).unwrap();
    assert!(
        p.vlan_ids().iter().any(|v| v.value() == 42),
        "{:?}",
        p.vlan_ids()
    );
}

#[test]
fn every_supported_link_type_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    for lt in [0u32, 1, 9, 101, 108, 113, 228, 229, 276] {
        let path = dir.path().join(format!("lt-{lt}.pcap"));
        write_pcap(
            &path,
            LinkType(lt),
            &[(Timestamp::ZERO, vec![0x45, 0, 0, 20])],
        )
        .unwrap();
        let got = read_back(&path);
        assert_eq!(got[0].2, LinkType(lt), "link type {lt}");
    }
}
