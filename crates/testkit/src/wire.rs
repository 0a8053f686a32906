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

/// Moves a real capture's service to another port: rewrites TCP and UDP
/// port `from` to `to` (source and destination) in one Ethernet frame
/// (802.1Q/QinQ tags, IPv4 without fragmentation offset, IPv6 without
/// extension headers), and patches the transport checksum incrementally
/// (RFC 1624), so it stays right even for a snap-length-cut segment.
/// Returns whether a port changed; other frames are left as they are.
///
/// For tests that replay public captures of a protocol on a port it was
/// not captured on (an SSH brute force on 902, a DNS tunnel on 1053): the
/// packets stay real, only the port moves.
pub fn remap_port(frame: &mut [u8], from: u16, to: u16) -> bool {
    let be16 = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    let mut off = 12;
    let mut ethertype = match be16(frame, off) {
        Some(t) => t,
        None => return false,
    };
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        off += 4;
        ethertype = match be16(frame, off) {
            Some(t) => t,
            None => return false,
        };
    }
    let ip = off + 2;
    let (proto, l4) = match (ethertype, frame.get(ip)) {
        (0x0800, Some(&vihl)) => {
            let frag = be16(frame, ip + 6).unwrap_or(0) & 0x1fff;
            if frag != 0 {
                return false;
            }
            (
                frame.get(ip + 9).copied(),
                ip + usize::from(vihl & 0x0f) * 4,
            )
        }
        (0x86dd, Some(_)) => (frame.get(ip + 6).copied(), ip + 40),
        _ => return false,
    };
    let csum_at = match proto {
        Some(6) => l4 + 16,
        Some(17) => l4 + 6,
        _ => return false,
    };
    let mut changed = false;
    for at in [l4, l4 + 2] {
        if be16(frame, at) != Some(from) {
            continue;
        }
        frame[at..at + 2].copy_from_slice(&to.to_be_bytes());
        changed = true;
        // UDP over IPv4 may carry no checksum (0): leave it so.
        if let Some(old) = be16(frame, csum_at).filter(|c| !(proto == Some(17) && *c == 0)) {
            // HC' = ~(~HC + ~m + m'), one's complement (RFC 1624 eq. 3).
            let s = u32::from(!old) + u32::from(!from) + u32::from(to);
            let folded = (s & 0xffff) + (s >> 16);
            let folded = (folded & 0xffff) + (folded >> 16);
            let mut new = !(folded as u16);
            if proto == Some(17) && new == 0 {
                new = 0xffff;
            }
            frame[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{tcp_v4, udp_v4, TcpFlagsSpec};

    /// The checksum of a frame's TCP or UDP segment verifies (sums to 0).
    fn verifies(frame: &[u8], proto: u8) -> bool {
        let ip = &frame[14..34];
        let l4 = &frame[34..];
        let src: [u8; 4] = ip[12..16].try_into().unwrap();
        let dst: [u8; 4] = ip[16..20].try_into().unwrap();
        fold(sum(pseudo_header_v4(src, dst, proto, l4.len()), l4)) == 0
    }

    #[test]
    fn remapped_ports_keep_a_valid_checksum() {
        let mut t = tcp_v4(
            [10, 0, 0, 1],
            40000,
            [10, 0, 0, 2],
            22,
            TcpFlagsSpec::PSH_ACK,
            b"SSH-2.0-x\r\n",
        );
        assert!(verifies(&t, 6));
        assert!(remap_port(&mut t, 22, 902));
        assert_eq!(&t[36..38], &902u16.to_be_bytes());
        assert!(verifies(&t, 6));
        let mut u = udp_v4([10, 0, 0, 1], 53, [10, 0, 0, 2], 40000, b"\x12\x34abc");
        assert!(remap_port(&mut u, 53, 1053));
        assert_eq!(&u[34..36], &1053u16.to_be_bytes());
        assert!(verifies(&u, 17));
        assert!(!remap_port(&mut u, 53, 1053));
    }
}
