//! Hand-built IPv4 frames for the generated offices: Ethernet, IPv4, and a
//! TCP or UDP segment whose captured payload may be shorter than its wire
//! length (a snap-length cut). Shared by the three-hour office and the
//! week, so both write the same headers; faster than etherparse's builder
//! and able to state a wire length larger than the bytes kept.

use crate::checksum::{fold, internet_checksum, pseudo_header_v4, sum};
use crate::mac_for;

/// An IPv4 header (DF set, no options) with its checksum.
pub(crate) fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    total: u16,
    id: u16,
    ttl: u8,
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = internet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The TTL a packet from `src` arrives with: 64 from inside (10/8), a few
/// hops less from outside, fixed per address so a host's TTL is stable.
pub(crate) fn ttl_of(src: [u8; 4]) -> u8 {
    if src[0] == 10 {
        64
    } else {
        44 + src[3] % 16
    }
}

/// Appends one Ethernet/IPv4 frame to `out`: `l4` is the transport header
/// plus the captured part of its payload, `l4_len` the transport length on
/// the wire. Returns the frame's wire length.
pub(crate) fn push_ipv4_frame(
    out: &mut Vec<u8>,
    (src, dst): ([u8; 4], [u8; 4]),
    proto: u8,
    id: u16,
    l4: &[u8],
    l4_len: usize,
) -> u32 {
    let total = (20 + l4_len).min(usize::from(u16::MAX)) as u16;
    out.extend_from_slice(&mac_for(&dst));
    out.extend_from_slice(&mac_for(&src));
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&ipv4_header(src, dst, proto, total, id, ttl_of(src)));
    out.extend_from_slice(l4);
    14 + u32::from(total)
}

/// One TCP segment's endpoints and header fields.
#[derive(Clone, Copy)]
pub(crate) struct TcpFields {
    pub src: ([u8; 4], u16),
    pub dst: ([u8; 4], u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

/// Appends a TCP segment (20-byte header, then `captured`) to `seg`; on
/// the wire its payload is `wire_payload` bytes, the captured ones followed
/// by zeros, so the checksum is true for the segment as sent: the zeros cut
/// off add nothing to the sum. The acknowledgment number is written only
/// with ACK set.
pub(crate) fn tcp_segment(seg: &mut Vec<u8>, f: &TcpFields, captured: &[u8], wire_payload: usize) {
    let start = seg.len();
    seg.extend_from_slice(&f.src.1.to_be_bytes());
    seg.extend_from_slice(&f.dst.1.to_be_bytes());
    seg.extend_from_slice(&f.seq.to_be_bytes());
    seg.extend_from_slice(&(if f.flags & 0x10 != 0 { f.ack } else { 0 }).to_be_bytes());
    seg.push(5 << 4);
    seg.push(f.flags);
    seg.extend_from_slice(&64_240u16.to_be_bytes());
    seg.extend_from_slice(&[0, 0, 0, 0]);
    seg.extend_from_slice(captured);
    let c = fold(sum(
        pseudo_header_v4(f.src.0, f.dst.0, 6, 20 + wire_payload),
        &seg[start..],
    ));
    seg[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
}

/// Appends a UDP datagram to `seg`: `captured` kept, `wire_payload` bytes
/// on the wire (the tail cut off is zeros, so the checksum stays true).
pub(crate) fn udp_datagram(
    seg: &mut Vec<u8>,
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    captured: &[u8],
    wire_payload: usize,
) {
    let start = seg.len();
    let len = 8 + wire_payload.max(captured.len());
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&(len as u16).to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(captured);
    let c = match fold(sum(pseudo_header_v4(src, dst, 17, len), &seg[start..])) {
        0 => 0xffff,
        c => c,
    };
    seg[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
}
