//! Messages from the testkit's DNS encoder read back through the sensor's
//! own DNS summary, and frames carrying them through the packet decoder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use tapsentry_decode::dns::{parse_message, DnsError};
use tapsentry_testkit::{udp_v4, DnsMessage};
use tapsentry_types::{Frame, LinkType, Timestamp};

#[test]
fn query_round_trips() {
    let q = DnsMessage::query(0xbeef, "Mail.Google.com", 28).encode();
    let s = parse_message(&q).unwrap();
    assert_eq!(s.id, 0xbeef);
    assert!(!s.is_response);
    assert_eq!(s.qname.as_bytes(), b"mail.google.com");
    assert_eq!((s.qtype, s.rcode, s.answers), (28, 0, 0));
    assert_eq!(usize::from(s.msg_len), q.len());
}

#[test]
fn response_round_trips_with_its_answers_and_rcode() {
    let r = DnsMessage::query(0x1a2b, "www.example.com.", 1)
        .response(0)
        .answer(5, 60, b"\x03cdn\xc0\x10")
        .answer(1, 60, &[192, 0, 2, 1])
        .encode();
    let s = parse_message(&r).unwrap();
    assert!(s.is_response);
    assert_eq!(s.qname.as_bytes(), b"www.example.com");
    assert_eq!((s.id, s.qtype, s.rcode, s.answers), (0x1a2b, 1, 0, 2));

    let nx = DnsMessage::query(7, "nope.example", 12)
        .response(3)
        .encode();
    let s = parse_message(&nx).unwrap();
    assert_eq!((s.rcode, s.answers, s.is_response), (3, 0, true));
}

#[test]
fn the_root_and_raw_wire_names() {
    let s = parse_message(&DnsMessage::query(1, "", 2).encode()).unwrap();
    assert!(s.qname.is_empty());
    assert_eq!(
        parse_message(&DnsMessage::query_wire(1, b"\xc0\x0c", 1).encode()),
        Err(DnsError::BadPointer)
    );
}

#[test]
fn a_query_in_a_frame_is_seen_as_dns_by_the_decoder() {
    let q = DnsMessage::query(9, "a.example", 1).encode();
    let frame = udp_v4([10, 0, 0, 1], 5353, [10, 0, 0, 53], 53, &q);
    let f = Frame {
        ts: Timestamp::ZERO,
        wire_len: frame.len() as u32,
        link: LinkType::ETHERNET,
        data: &frame,
    };
    let m = tapsentry_decode::decode(&f).unwrap();
    assert_eq!(m.payload, &q[..]);
    assert_eq!(parse_message(m.payload).unwrap().id, 9);
}
